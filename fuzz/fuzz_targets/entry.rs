//! `cargo +nightly fuzz run entry`: see `spindel_protocol::fuzz::entry`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spindel_protocol::fuzz::entry(data));
