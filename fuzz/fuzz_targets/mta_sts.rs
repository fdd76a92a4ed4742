//! Fuzzes the MTA-STS parsers (HTTPS response, policy, TXT record); the
//! invariants live in `ugem::delivery::mta_sts::fuzzing::check` (also
//! replayed by tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem::delivery::mta_sts::fuzzing::check(data));
