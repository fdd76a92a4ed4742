//! Fuzzes DANE's TLSA records and the certificate check against them; the
//! invariants live in `ugem::delivery::dane::fuzzing::check` (also replayed
//! by tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem::delivery::dane::fuzzing::check(data));
