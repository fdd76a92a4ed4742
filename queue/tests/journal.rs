//! The acceptance journal against real crashes: a child process (this test binary run again)
//! enqueues through the public API with the database's checkpoints held off, reports what it
//! was told, and is killed with SIGKILL; the parent then opens the queue and finds every
//! accepted message, and none that was refused.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ugem_queue::{
    AttemptOutcome, Direction, JOURNAL_FILE, ListFilter, NewEnvelope, Queue, QueueOptions,
    RcptStatus, RecipientUpdate, unix_ms,
};

const HOUR: Duration = Duration::from_secs(3600);

/// Options with no durable database commit after open: whatever the child accepts is
/// durable only by the journal.
fn held_off(journal: bool) -> QueueOptions {
    QueueOptions {
        min_free_bytes: 0,
        journal,
        checkpoint_after: HOUR,
        idle_flush: HOUR,
        ..QueueOptions::default()
    }
}

fn envelope(tag: &str) -> NewEnvelope {
    NewEnvelope {
        sender: format!("{tag}@agency.example"),
        recipients: vec!["bob@remote.example".into()],
        client_ip: Some("192.0.2.10".parse().unwrap()),
        helo: "mx.agency.example".into(),
        tls: None,
        domain: Some("agency.example".into()),
        direction: Direction::Outbound,
        arrived_at_ms: unix_ms(),
        size: 5,
    }
}

fn body(tag: &str) -> Vec<u8> {
    format!("Subject: {tag}\r\n\r\n{}\r\n", tag.repeat(200)).into_bytes()
}

/// The senders' tags of every queued message, sorted.
fn tags(q: &Queue) -> Vec<String> {
    let mut t: Vec<String> = q
        .list(&ListFilter::default())
        .unwrap()
        .into_iter()
        .map(|e| e.sender.trim_end_matches("@agency.example").to_owned())
        .collect();
    t.sort();
    t
}

/// The child's script, chosen by `UGEM_JOURNAL_CHILD`: it writes `ACCEPTED tag`, `REFUSED tag`
/// and finally `READY` on stdout, then waits to be killed.
#[test]
#[ignore = "the child process of the crash tests, run by them"]
fn child() {
    let Ok(script) = std::env::var("UGEM_JOURNAL_CHILD") else {
        return;
    };
    let dir = std::env::var("UGEM_JOURNAL_DIR").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fail = Arc::new(AtomicUsize::new(0));
        let q = Queue::open(
            Path::new(&dir),
            QueueOptions {
                fail_next_commits: Some(fail.clone()),
                ..held_off(true)
            },
        )
        .unwrap();
        let mut out = std::io::stdout().lock();
        let mut say = |line: String| {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        };
        match script.as_str() {
            "accept" => {
                // One at a time, then twenty at once (group commits of several records).
                for i in 0..5 {
                    let tag = format!("one{i}");
                    q.enqueue(envelope(&tag), body(&tag)).await.unwrap();
                    say(format!("ACCEPTED {tag}"));
                }
                let mut tasks = Vec::new();
                for i in 0..20 {
                    let q = q.clone();
                    tasks.push(tokio::spawn(async move {
                        let tag = format!("many{i:02}");
                        q.enqueue(envelope(&tag), body(&tag)).await.unwrap();
                        tag
                    }));
                }
                for t in tasks {
                    say(format!("ACCEPTED {}", t.await.unwrap()));
                }
                // One delivered and removed, relaxed: the journal's tombstone (written
                // without a sync, in the page cache when the process dies) keeps it from
                // coming back.
                let now = unix_ms();
                let leased = q.lease_due(now, 1, 600_000).await.unwrap();
                let id = leased[0].id;
                let tag = leased[0]
                    .sender
                    .trim_end_matches("@agency.example")
                    .to_owned();
                q.record_attempt(
                    id,
                    AttemptOutcome {
                        attempted_at_ms: now,
                        next_attempt_ms: now,
                        recipients: vec![RecipientUpdate {
                            index: 0,
                            status: RcptStatus::Delivered,
                            last_error: None,
                        }],
                    },
                )
                .await
                .unwrap();
                assert!(q.get(id).unwrap().is_none());
                say(format!("DELIVERED {tag}"));
                let s = q.stats();
                // Nothing reached the database durably since open.
                assert_eq!(s.commits, 0, "{s:?}");
                assert!(s.journaled >= 6, "{s:?}");
            }
            "refused" => {
                for i in 0..3 {
                    let tag = format!("before{i}");
                    q.enqueue(envelope(&tag), body(&tag)).await.unwrap();
                    say(format!("ACCEPTED {tag}"));
                }
                // Appended to the journal, then the database commit fails: 451, and the
                // writer reopens the database, which drops the relaxed commits and must
                // bring the three above back from the journal.
                fail.store(1, Ordering::SeqCst);
                let r = q.enqueue(envelope("failed"), body("failed")).await;
                assert!(r.is_err(), "{r:?}");
                say("REFUSED failed".into());
                // (A clean reopen may keep the relaxed commits; after an I/O error redb
                // keeps none, and these come from the journal.)
                assert_eq!(tags(&q), ["before0", "before1", "before2"]);
                assert_eq!(q.stats().reopens, 1, "{:?}", q.stats());
                let tag = "after";
                q.enqueue(envelope(tag), body(tag)).await.unwrap();
                say(format!("ACCEPTED {tag}"));
            }
            other => panic!("no script {other}"),
        }
        say("READY".into());
        tokio::time::sleep(HOUR).await;
    });
}

/// What the child reported.
#[derive(Default)]
struct Told {
    accepted: Vec<String>,
    refused: Vec<String>,
    delivered: Vec<String>,
}

/// Runs the child's `script` on `dir` until it is READY, then kills it with SIGKILL; returns
/// what it told.
fn run_and_kill(script: &str, dir: &Path) -> Told {
    let mut child: Child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("UGEM_JOURNAL_CHILD", script)
        .env("UGEM_JOURNAL_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut told = Told::default();
    let mut ready = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // The harness's own "test child ... " may precede the first line.
        if let Some((_, t)) = line.split_once("ACCEPTED ") {
            told.accepted.push(t.to_owned());
        } else if let Some((_, t)) = line.split_once("REFUSED ") {
            told.refused.push(t.to_owned());
        } else if let Some((_, t)) = line.split_once("DELIVERED ") {
            told.delivered.push(t.to_owned());
        } else if line.ends_with("READY") {
            ready = true;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ready, "the child stopped before it was ready");
    told.accepted.sort();
    told
}

#[test]
fn every_message_accepted_on_the_journal_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let told = run_and_kill("accept", dir.path());
    assert_eq!(told.accepted.len(), 25);
    assert_eq!(told.delivered.len(), 1);
    // The database's durable state alone does not have them: the journal carries them.
    let journal = dir.path().join(JOURNAL_FILE);
    let aside = dir.path().join("journal.aside");
    std::fs::rename(&journal, &aside).unwrap();
    {
        let q = Queue::open(dir.path(), held_off(false)).unwrap();
        assert_eq!(tags(&q), Vec::<String>::new());
    }
    std::fs::rename(&aside, &journal).unwrap();
    // Restored even by a queue opened with the journal turned off since.
    let q = Queue::open(dir.path(), held_off(false)).unwrap();
    let waiting: Vec<String> = told
        .accepted
        .iter()
        .filter(|t| !told.delivered.contains(t))
        .cloned()
        .collect();
    assert_eq!(
        tags(&q),
        waiting,
        "every accepted message is back, the delivered one not"
    );
    assert_eq!(q.stats().restored, 24);
    for t in &waiting {
        let e = q
            .list(&ListFilter::default())
            .unwrap()
            .into_iter()
            .find(|e| e.sender.starts_with(&format!("{t}@")))
            .unwrap();
        assert_eq!(q.body(e.id).unwrap().unwrap(), body(t), "{t}");
        assert!(e.leased_until_ms.is_none());
    }
    drop(q);
    // Restored once: the open made them durable and started a new generation.
    let q = Queue::open(dir.path(), held_off(true)).unwrap();
    assert_eq!(tags(&q).len(), 24);
    assert_eq!(q.stats().restored, 0);
    drop(q);
    let q = Queue::open(dir.path(), held_off(false)).unwrap();
    assert_eq!(tags(&q).len(), 24);
    assert_eq!(q.stats().restored, 0);
}

#[test]
fn a_batch_refused_after_its_append_is_not_restored() {
    let dir = tempfile::tempdir().unwrap();
    let told = run_and_kill("refused", dir.path());
    assert_eq!(told.refused, ["failed"]);
    let q = Queue::open(dir.path(), held_off(true)).unwrap();
    assert_eq!(tags(&q), told.accepted);
    assert_eq!(told.accepted, ["after", "before0", "before1", "before2"]);
}

/// Offsets and lengths of the records at the start of the journal (header: magic, payload
/// length, generation, CRC, envelope length).
fn records(file: &std::fs::File) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    loop {
        let mut head = [0u8; 24];
        file.read_exact_at(&mut head, at).unwrap();
        if head[0..4] != 0x5547_4a31u32.to_le_bytes() {
            return out;
        }
        let len = u64::from(u32::from_le_bytes(head[4..8].try_into().unwrap()));
        out.push((at, 24 + len));
        at += 24 + len;
    }
}

#[test]
fn a_torn_append_ends_the_replay_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let accepted = run_and_kill("accept", dir.path()).accepted;
    let path = dir.path().join(JOURNAL_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let recs = records(&file);
    // 25 messages, then the tombstone of the delivered one.
    assert_eq!(recs.len(), 26, "{recs:?}");
    // The last message's record cut short: its body's end never reached the disk (nor,
    // then, the tombstone after it: the delivered message may come back).
    let (at, len) = recs[24];
    file.write_all_at(&[0u8; 40], at + len - 40).unwrap();
    // And the header of a record of the same generation after it, with nothing behind.
    let mut head = [0u8; 24];
    file.read_exact_at(&mut head, at).unwrap();
    file.write_all_at(&head, at + len).unwrap();
    drop(file);
    let q = Queue::open(dir.path(), held_off(true)).unwrap();
    let back = tags(&q);
    assert_eq!(back.len(), 24, "{back:?}");
    assert!(back.iter().all(|t| accepted.contains(t)));
    assert_eq!(q.stats().restored, 24);
}
