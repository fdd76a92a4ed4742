//! Fuzzes the detector's reply classifier (`classify`, `enhanced_code`,
//! `names_address`) on arbitrary bytes; the invariants live in
//! `ugem::governor::classify::fuzzing::check` (also replayed by
//! tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem::governor::classify::fuzzing::check(data));
