//! Fuzzes the TLS-RPT record parser (`_smtp._tls` TXT strings); the
//! invariants live in `ugem::delivery::tlsrpt::report::fuzzing::check`
//! (also replayed by tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem::delivery::tlsrpt::report::fuzzing::check(data));
