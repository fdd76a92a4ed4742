//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the same
//! invariant checks as the cargo-fuzz targets, so that stable CI covers every
//! seed and every saved crash without a nightly toolchain.

use std::path::Path;

#[path = "../fuzz/checks/mod.rs"]
mod checks;

/// Runs `check` on every file of one target's corpus.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for path in files {
        let data = std::fs::read(&path).expect("corpus file");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} fails its fuzz invariants", path.display());
        }
    }
}

#[test]
fn command_corpus() {
    replay("command", ugem::smtp::command::fuzzing::check);
}

#[test]
fn line_corpus() {
    replay("line", ugem::smtp::line::fuzzing::check);
}

#[test]
fn data_corpus() {
    replay("data", ugem::smtp::data::fuzzing::check);
}

#[test]
fn address_corpus() {
    replay("address", ugem::address::fuzzing::check);
}

#[test]
fn queue_record_corpus() {
    replay("queue_record", ugem_queue::fuzzing::check);
}

#[test]
fn queue_journal_corpus() {
    replay("queue_journal", ugem_queue::fuzzing::journal);
}

#[test]
fn config_corpus() {
    replay("config", checks::config);
}

#[test]
fn reply_corpus() {
    replay("reply", checks::reply);
}

#[test]
fn message_corpus() {
    replay("message", checks::message);
}

#[test]
fn mta_sts_corpus() {
    replay("mta_sts", ugem::delivery::mta_sts::fuzzing::check);
}

#[test]
fn dane_corpus() {
    replay("dane", ugem::delivery::dane::fuzzing::check);
}

#[test]
fn classify_corpus() {
    replay("classify", ugem::governor::classify::fuzzing::check);
}

#[test]
fn tlsrpt_corpus() {
    replay("tlsrpt", ugem::delivery::tlsrpt::report::fuzzing::check);
}
