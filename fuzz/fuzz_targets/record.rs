//! `cargo +nightly fuzz run record`: see `spindel_protocol::fuzz::record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spindel_protocol::fuzz::record(data));
