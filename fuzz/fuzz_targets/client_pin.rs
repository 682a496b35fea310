//! clientPIN subcommands through the whole authenticator: raw bodies and
//! well-formed encrypted, MACed requests with fuzzed contents.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lp_fuzz::run_authenticator(data, lp_fuzz::Focus::ClientPin));
