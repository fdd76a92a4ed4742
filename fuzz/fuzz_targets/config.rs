//! Fuzzes `Config::load_with_env` on arbitrary TOML (plus environment);
//! invariants in `fuzz/checks/mod.rs` (also replayed by tests/fuzz_corpus.rs).
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::config(data));
