//! `cargo +nightly fuzz run query_string`: see `spindel_node::fuzz_query_string`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spindel_node::fuzz_query_string(data));
