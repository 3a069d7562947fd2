//! `cargo +nightly fuzz run checkpoint`: see `spindel_protocol::fuzz::checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spindel_protocol::fuzz::checkpoint(data));
