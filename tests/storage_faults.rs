//! Storage faults end to end: a corrupt queue record at start, fdatasync
//! failures that come and go, and a data folder that fills up and empties
//! again. The gateway must answer 4xx while the fault lasts and accept mail
//! again once it is gone, without a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const AGENCY: &str = "agency.example.kz";
const CLERK: &str = "clerk@agency.example.kz";

fn queued_ids(gw: &Gateway) -> Vec<String> {
    let (st, body) = http(gw.admin, "GET", "/api/v1/queue", Some(VIEWER_TOKEN), None);
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// Sends one message in a fresh session; returns the final reply.
fn send(gw: &Gateway, subject: &str) -> Reply {
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        CLERK,
        &["citizen@example.org"],
        &format!("Subject: {subject}\r\n\r\nbody of {subject}\r\n"),
    );
    let _ = s.cmd("QUIT");
    r
}

fn queue_id(r: &Reply) -> String {
    r.text().rsplit(' ').next().unwrap().to_string()
}

/// Skips a test whose tool is missing, but fails it under CI.
fn skip_unless(ok: bool, why: &str) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{why} (required under CI)"
        );
        eprintln!("skipping: {why}");
    }
    !ok
}

#[test]
fn corrupt_queue_record_is_quarantined_and_the_server_still_starts() {
    let mut gw = Gateway::start("");
    gw.register(AGENCY, &["127.0.0.1"]);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let r = send(&gw, &format!("m{i}"));
            assert_eq!(r.code, 250, "{r:?}");
            queue_id(&r)
        })
        .collect();
    gw.terminate();

    // Overwrite the middle message's envelope with garbage, as a torn or
    // bit-rotted record would look.
    let path = gw.data_dir().join("queue").join(ugem_queue::DB_FILE);
    {
        use redb::ReadableTable;
        let db = redb::Database::create(&path).expect("open queue file");
        let envelopes: redb::TableDefinition<u128, &[u8]> = redb::TableDefinition::new("envelopes");
        let key = u128::from_str_radix(&ids[1], 16).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(envelopes).unwrap();
            assert!(t.get(key).unwrap().is_some(), "no record under {}", ids[1]);
            t.insert(key, &b"{\"id\": \"garbage\xff\x00"[..]).unwrap();
        }
        txn.commit().unwrap();
    }

    gw.spawn();
    // The background check after open finds it, while the gateway already serves.
    assert!(
        wait_for(30, || gw.log_text().contains("queue check finished")),
        "{}",
        gw.log_text()
    );
    let log = gw.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("quarantined") && l.contains(&ids[1]))
        .unwrap_or_else(|| panic!("quarantine of {} not logged:\n{log}", ids[1]));
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    let q = queued_ids(&gw);
    assert!(
        q.contains(&ids[0]) && q.contains(&ids[2]),
        "{q:?} vs {ids:?}"
    );
    assert!(!q.contains(&ids[1]), "corrupt record still listed: {q:?}");
    // The gateway still takes mail.
    let r = send(&gw, "after");
    assert_eq!(r.code, 250, "{r:?}");
    // And the quarantined record is kept for staff (not silently dropped).
    gw.terminate();
    let q = ugem_queue::Queue::open(&gw.data_dir().join("queue"), Default::default()).unwrap();
    let quarantined: Vec<String> = q
        .quarantined()
        .unwrap()
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(quarantined, vec![ids[1].clone()]);
}

/// fdatasync fails (EIO) for the first few calls of every thread, then works
/// again: the failed messages get 451 4.3.0, and a later one is accepted and
/// durable without a restart (the queue reopens its database after the
/// failure; redb refuses writes on a handle that saw an I/O error).
#[test]
fn transient_fdatasync_failures_recover_without_restart() {
    let has_strace = Command::new("strace").arg("-V").output().is_ok();
    if skip_unless(has_strace, "strace is not installed") {
        return;
    }
    // No mail before the fault: with an empty queue the queue writer thread is
    // idle, so its first fdatasync under strace is the first message's commit
    // (strace counts calls per thread).
    let mut gw = Gateway::start("");
    gw.register(AGENCY, &["127.0.0.1"]);
    let pid = gw.child.as_ref().unwrap().id();
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fdatasync",
            "-e",
            "inject=fdatasync:error=EIO:when=1..3",
            "-o",
            "/dev/null",
            "-p",
        ])
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(15, || traced_by(pid, strace.id())),
        "strace did not attach to every thread"
    );
    let mut replies = Vec::new();
    let mut accepted = None;
    for i in 0..10 {
        let r = send(&gw, &format!("during{i}"));
        if r.code == 250 {
            accepted = Some(queue_id(&r));
            replies.push(r);
            break;
        }
        replies.push(r);
    }
    let _ = strace.kill();
    let _ = strace.wait();
    let first = &replies[0];
    assert_eq!(first.code, 451, "the first commit should fail: {replies:?}");
    assert!(first.text().starts_with("4.3.0"), "{first:?}");
    for r in &replies[..replies.len() - 1] {
        assert_eq!(r.code, 451, "{replies:?}");
    }
    let id = accepted.unwrap_or_else(|| {
        panic!(
            "no message accepted after the fault ended: {replies:?}\n{}",
            gw.log_text()
        )
    });
    let log = gw.log_text();
    assert!(log.contains("queue database reopened"), "{log}");
    // Accepted after the fault, also with strace gone, and on disk.
    assert_eq!(send(&gw, "after").code, 250);
    assert!(queued_ids(&gw).contains(&id));
    gw.kill();
    gw.spawn();
    let q = queued_ids(&gw);
    assert!(q.contains(&id), "{id} lost across a restart: {q:?}");
    assert_eq!(q.len(), 2, "the recovered one and the one after: {q:?}");
}

/// True once every thread of `pid` is traced by `tracer`.
fn traced_by(pid: u32, tracer: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let want = format!("TracerPid:\t{tracer}\n");
    let mut n = 0;
    for t in tasks.flatten() {
        n += 1;
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        if !status.contains(&want) {
            return false;
        }
    }
    n > 0
}

/// A tmpfs mounted for one test and unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Free bytes on the filesystem holding `p` (statvfs via `df`).
fn free_bytes(p: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

#[test]
fn full_disk_defers_mail_and_space_returning_accepts_it_again() {
    let Some(fs) = Tmpfs::mount("24m") else {
        skip_unless(false, "cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = fs.path().join("var");
    let mut gw = Gateway::start(&format!(
        "[server]\ndata_dir = \"{}\"\n[smtp]\nmin_free_space = \"4MiB\"\n",
        data.display()
    ));
    gw.register(AGENCY, &["127.0.0.1"]);
    let r = send(&gw, "roomy");
    assert_eq!(r.code, 250, "{r:?}");

    // Fill the disk to 2 MiB short of full: below the 4 MiB floor.
    let filler = fs.path().join("filler");
    let free = free_bytes(fs.path());
    let size = free.saturating_sub(2 << 20);
    std::fs::write(&filler, vec![0u8; size as usize]).expect("write filler");
    let r = send(&gw, "full");
    assert_eq!(r.code, 452, "{r:?}");
    assert!(r.text().starts_with("4.3.1"), "{r:?}");

    // Completely full: still a temporary refusal, never a 250 or a 5xx.
    let f2 = fs.path().join("filler2");
    let rest = free_bytes(fs.path());
    let _ = std::fs::write(&f2, vec![0u8; rest as usize]);
    let r = send(&gw, "brim");
    assert!(matches!(r.code, 451 | 452), "{r:?}");

    // Space comes back: accepted again, no restart.
    std::fs::remove_file(&filler).unwrap();
    let _ = std::fs::remove_file(&f2);
    let r = send(&gw, "freed");
    assert_eq!(r.code, 250, "{r:?}\n{}", gw.log_text());
    let id = queue_id(&r);
    assert!(queued_ids(&gw).contains(&id));
    assert_eq!(queued_ids(&gw).len(), 2);
    gw.kill();
    drop(gw);
    drop(fs);
}
