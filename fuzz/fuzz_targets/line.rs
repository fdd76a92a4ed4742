//! Fuzzes LineBuffer framing under arbitrary splits; the invariants live in
//! `ugem::smtp::line::fuzzing::check` (also replayed by tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem::smtp::line::fuzzing::check(data));
