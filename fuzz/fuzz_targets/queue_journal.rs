//! Fuzzes the queue's acceptance journal reader (what `Queue::open` runs on
//! `accept.journal`); invariants in `ugem_queue::fuzzing::journal`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem_queue::fuzzing::journal(data));
