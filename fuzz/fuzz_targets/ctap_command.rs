//! Every CTAP command through `Authenticator::handle`, with the fast fake
//! custody and key agreement (`ctap_real` keeps the real ones),
//! the in-memory store and a fuzzed person (see fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lp_fuzz::run_authenticator(data, lp_fuzz::Focus::AllCommands));
