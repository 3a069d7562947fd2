//! `cargo +nightly fuzz run frame`: see `spindel_protocol::fuzz::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spindel_protocol::fuzz::frame(data));
