//! Every CTAP command through `Authenticator::handle` as `ctap_command`
//! does, but on the real crypto: the software custody's P-256/P-384/P-521
//! and RSA keys and the real P-256 key agreement (see fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lp_fuzz::run_authenticator_real(data));
