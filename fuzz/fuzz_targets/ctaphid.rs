//! The CTAPHID reassembler fed arbitrary report sequences, polls at advancing
//! times and application answers.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lp_fuzz::run_ctaphid(data));
