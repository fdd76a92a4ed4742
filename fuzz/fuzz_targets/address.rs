//! Fuzzes parse_path and the display round trip; the invariants live in
//! `ugem::address::fuzzing::check` (also replayed by tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem::address::fuzzing::check(data));
