//! Fuzzes parse_command on one command line; the invariants live in
//! `ugem::smtp::command::fuzzing::check` (also replayed by tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem::smtp::command::fuzzing::check(data));
