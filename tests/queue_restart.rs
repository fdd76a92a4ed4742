//! Restart with mail queued (issue #20 item 3): the gateway serves as soon as the queue is open
//! and its background check (`queue/src/check.rs`) reads the rest meanwhile. A kill -9 during
//! that check loses nothing and delivers nothing twice; a body without an envelope is removed
//! and never delivered; a queue written by an older ugem (format 0) opens and delivers.
//! Timings are benchmarked in `bench/restart.py`, not tested here.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::fake_mx::{Behaviour, FakeMx, Hostile};
use common::*;

/// Enough for two chunks of the check, so a rest separates them.
const MESSAGES: usize = 2000;

/// A test folder with a configuration routing everything to `route`.
fn folder(route: &str, extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ugem.toml");
    write_config(&config, route, extra);
    (dir, config)
}

fn write_config(config: &Path, route: &str, extra: &str) {
    let text = config_text(&format!(
        "[delivery]\nmin_backoff = \"1s\"\n{extra}\n[delivery.routes]\n\"*\" = \"{route}\"\n"
    ));
    std::fs::write(config, text).unwrap();
}

/// Queues `n` outbound messages straight into the queue folder (as `queue/examples/fill.rs`
/// does), each with an `X-Restart-Test: TAG-i` header; returns their ids.
fn fill(data_dir: &Path, n: usize, tag: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let q = ugem_queue::Queue::open(
            &data_dir.join("queue"),
            ugem_queue::QueueOptions {
                min_free_bytes: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let q = q.clone();
            let body = format!(
                "From: clerk@{AGENCY}\r\nTo: citizen@remote.example\r\nSubject: m{i}\r\n\
                 X-Restart-Test: {tag}-{i}\r\n\r\nhello\r\n"
            );
            let env = ugem_queue::NewEnvelope {
                sender: format!("clerk@{AGENCY}"),
                recipients: vec!["citizen@remote.example".into()],
                client_ip: Some("127.0.0.1".parse().unwrap()),
                helo: "agency".into(),
                tls: None,
                domain: Some(AGENCY.into()),
                direction: ugem_queue::Direction::Outbound,
                arrived_at_ms: ugem_queue::unix_ms(),
                size: body.len() as u64,
            };
            tasks.spawn(async move { q.enqueue(env, body.into_bytes()).await.unwrap() });
        }
        let mut ids = Vec::new();
        while let Some(id) = tasks.join_next().await {
            ids.push(id.unwrap().to_string());
        }
        ids
    })
}

/// How many times each `X-Restart-Test` value reached `mx`.
fn received(mx: &FakeMx) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in mx.messages() {
        let text = String::from_utf8_lossy(&m.body);
        for line in text.lines() {
            if let Some(tag) = line.strip_prefix("X-Restart-Test: ") {
                *seen.entry(tag.to_string()).or_insert(0) += 1;
            }
        }
    }
    seen
}

fn lines_with(gw: &Gateway, needle: &str) -> Vec<String> {
    gw.log_text()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn kill_during_the_queue_check_loses_nothing_and_delivers_each_message_once() {
    // First run: the next hop never answers, so some messages are under a lease when the
    // gateway dies and none is delivered; the check rests 10 s between its two chunks.
    let silent = FakeMx::start(Behaviour::hostile(Hostile::Silent));
    let (dir, config) = folder(&silent.addr().to_string(), "max_connections = 4");
    fill(&dir.path().join("var"), MESSAGES, "kill");
    let mut gw = Gateway::start_in_env(
        dir,
        config.clone(),
        vec![("UGEM_TEST_QUEUE_CHECK_PAUSE_MS".into(), "10000".into())],
    );
    // Serving and delivering while the check runs.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO agency.example", 250);
    assert!(
        wait_for(10, || silent.connections() > 0),
        "no delivery attempt while the check runs"
    );
    drop(s);
    gw.kill();
    let log = gw.log_text();
    assert!(log.contains("queue check started"), "{log}");
    assert!(
        !log.contains("queue check finished"),
        "the check ended before the kill; the test proves nothing:\n{log}"
    );
    assert!(silent.messages().is_empty());

    // Second run: a next hop that takes everything.
    let mx = FakeMx::start(Behaviour::accept());
    write_config(&config, &mx.addr().to_string(), "");
    gw.env.clear();
    gw.spawn();
    assert!(
        mx.wait_for_messages(MESSAGES, Duration::from_secs(180)),
        "{} of {MESSAGES} delivered; log:\n{}",
        mx.messages().len(),
        gw.log_text()
    );
    assert!(wait_for(60, || !lines_with(&gw, "queue check finished").is_empty()));
    assert!(wait_for(30, || queued(&gw).is_empty()), "{:?}", queued(&gw));
    // Nothing more arrives: every message was delivered exactly once.
    std::thread::sleep(Duration::from_secs(1));
    let seen = received(&mx);
    assert_eq!(seen.len(), MESSAGES, "distinct messages delivered");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!(
        lines_with(&gw, "queue check finished")[0].contains("\"repaired\":0"),
        "a crash left the tables disagreeing: {:?}",
        lines_with(&gw, "queue check finished")
    );
}

#[test]
fn a_body_without_envelope_is_removed_and_never_delivered() {
    let mx = FakeMx::start(Behaviour::accept());
    let (dir, config) = folder(&mx.addr().to_string(), "");
    let data = dir.path().join("var");
    fill(&data, 20, "live");
    // What a crash between two writes would leave if envelope and body were not written in
    // one transaction: a body alone, here even with a schedule entry due long ago.
    let orphan = ugem_queue::QueueId::from_parts(ugem_queue::unix_ms(), 77);
    let key = u128::from_str_radix(&orphan.to_string(), 16).unwrap();
    {
        let db = redb::Database::create(data.join("queue").join(ugem_queue::DB_FILE)).unwrap();
        let bodies: redb::TableDefinition<u128, &[u8]> = redb::TableDefinition::new("bodies");
        let schedule: redb::TableDefinition<(u64, u128), ()> =
            redb::TableDefinition::new("schedule");
        let txn = db.begin_write().unwrap();
        {
            let body = b"Subject: orphan\r\nX-Restart-Test: orphan-0\r\n\r\nlost\r\n";
            txn.open_table(bodies)
                .unwrap()
                .insert(key, &body[..])
                .unwrap();
            txn.open_table(schedule)
                .unwrap()
                .insert((1, key), ())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let mut gw = Gateway::start_in(dir, config);
    assert!(mx.wait_for_messages(20, Duration::from_secs(60)));
    assert!(
        wait_for(30, || !lines_with(&gw, "queue check finished").is_empty()),
        "{}",
        gw.log_text()
    );
    let removed = lines_with(&gw, "body without envelope removed");
    assert!(
        removed.iter().any(|l| l.contains(&orphan.to_string())),
        "{removed:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let seen = received(&mx);
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert!(
        !seen.contains_key("orphan-0"),
        "an orphan body was delivered"
    );
    gw.terminate();
    let q = ugem_queue::Queue::open(&gw.data_dir().join("queue"), Default::default()).unwrap();
    assert_eq!(q.body(orphan).unwrap(), None);
}

/// `tests/fixtures/queue-format-0.redb` was written by ugem-queue before the `leases` table
/// (commit 1e6fa46, `tests/fixtures/queue-format-0.rs`): five messages, two of them under a
/// lease that runs for 100 years (a crash during their delivery), one held. Only a migration
/// that finds the leases in the envelopes delivers those two.
#[test]
fn a_queue_of_the_old_format_opens_and_delivers() {
    let mx = FakeMx::start(Behaviour::accept());
    // The fixture's messages arrived when it was made; they must not expire meanwhile.
    let (dir, config) = folder(&mx.addr().to_string(), "max_queue_lifetime = \"36500d\"");
    let queue = dir.path().join("var").join("queue");
    std::fs::create_dir_all(&queue).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/queue-format-0.redb"),
        queue.join(ugem_queue::DB_FILE),
    )
    .unwrap();
    let mut gw = Gateway::start_in(dir, config);
    let opened = lines_with(&gw, "queue opened");
    assert!(opened[0].contains("\"format_found\":0"), "{opened:?}");
    assert!(opened[0].contains("\"leases_cleared\":2"), "{opened:?}");
    let fixture = |mx: &FakeMx| {
        let mut tags: Vec<String> = mx
            .messages()
            .iter()
            .flat_map(|m| {
                String::from_utf8_lossy(&m.body)
                    .lines()
                    .filter_map(|l| l.strip_prefix("X-Fixture: ").map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        tags.sort();
        tags
    };
    assert!(
        wait_for(30, || fixture(&mx).len() >= 4),
        "{:?}\n{}",
        fixture(&mx),
        gw.log_text()
    );
    assert_eq!(
        fixture(&mx),
        ["format0-0", "format0-1", "format0-2", "format0-3"]
    );
    // The held one stays held, with its reason.
    let q = queued(&gw);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["held"], "held by staff (fixture)");
    // Migrated once: the next open finds the current format.
    gw.terminate();
    gw.spawn();
    let opened = lines_with(&gw, "queue opened");
    assert!(opened[1].contains("\"format_found\":1"), "{opened:?}");
}
