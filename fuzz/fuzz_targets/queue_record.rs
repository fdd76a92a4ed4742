//! Fuzzes the queue's envelope record decoder (what `Queue::open` runs on
//! every stored record); invariants in `ugem_queue::fuzzing::check`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ugem_queue::fuzzing::check(data));
