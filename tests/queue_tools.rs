//! Queue tools at Postfix's level, end to end through the binary: bulk
//! hold/release/delete/retry by filter with dry runs, the mailq-like
//! listing, and a queued message's headers and text. The test routes point
//! at a closed port, so mail stays queued (deferred, retried in an hour).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::Value;

const A: &str = "agency.example.kz";
const B: &str = "minjust.example.kz";

/// Registers a domain on 127.0.0.1 that shares the server with others.
fn register(gw: &Gateway, domain: &str) {
    gw.register_shared(domain);
}

/// Sends one message; returns its queue id.
fn send(gw: &Gateway, from: &str, to: &str, subject: &str) -> String {
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        from,
        &[to],
        &format!("Subject: {subject}\r\nFrom: <{from}>\r\n\r\nbody of {subject}\r\n"),
    );
    assert_eq!(r.code, 250, "{}", r.text());
    r.text().rsplit(' ').next().unwrap().to_string()
}

/// The queued envelope with this id.
fn envelope(gw: &Gateway, id: &str) -> Option<Value> {
    queued(gw).into_iter().find(|e| e["id"] == id)
}

/// Waits until every queued message has had its first (failed) attempt and
/// is not being delivered, so the states the tests look at stay put.
fn settle(gw: &Gateway, n: usize) {
    assert!(
        wait_for(20, || {
            let q = queued(gw);
            q.len() == n
                && q.iter().all(|e| {
                    e["attempts"].as_u64().unwrap_or_default() >= 1
                        && e["leased_until_ms"].is_null()
                })
        }),
        "queue did not settle: {:?}",
        queued(gw)
    );
}

/// A gateway with two domains and four messages: a1 (clerk@A), a2
/// (boss@A), b1 and b2 (desk@B); recipients at example.org and example.net.
struct Fixture {
    gw: Gateway,
    a1: String,
    a2: String,
    b1: String,
    b2: String,
}

fn fixture() -> Fixture {
    let gw = Gateway::start("");
    register(&gw, A);
    register(&gw, B);
    let a1 = send(&gw, &format!("clerk@{A}"), "x@example.org", "a1");
    let a2 = send(&gw, &format!("boss@{A}"), "y@example.net", "a2");
    let b1 = send(&gw, &format!("desk@{B}"), "x@example.org", "b1");
    let b2 = send(&gw, &format!("desk@{B}"), "z@example.net", "b2");
    settle(&gw, 4);
    Fixture { gw, a1, a2, b1, b2 }
}

/// A bulk verb's answer through the CLI (`--json`).
fn bulk_cli(gw: &Gateway, args: &[&str]) -> Value {
    let mut all = vec!["--json", "queue"];
    all.extend_from_slice(args);
    serde_json::from_str(&gw.cli_ok(&all)).unwrap()
}

fn ids(v: &Value) -> BTreeSet<String> {
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn held(gw: &Gateway) -> BTreeSet<String> {
    queued(gw)
        .into_iter()
        .filter(|e| !e["held"].is_null())
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bulk_dry_run_names_the_right_ids_and_changes_nothing() {
    let f = fixture();
    let before = queued(&f.gw);
    let v = bulk_cli(
        &f.gw,
        &["hold", "--recipient-domain", "example.org", "--dry-run"],
    );
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["count"], 2);
    assert_eq!(ids(&v), set(&[&f.a1, &f.b1]));
    let v = bulk_cli(&f.gw, &["delete", "--all", "--dry-run"]);
    assert_eq!(ids(&v), set(&[&f.a1, &f.a2, &f.b1, &f.b2]));
    // Combined filters narrow.
    let v = bulk_cli(
        &f.gw,
        &[
            "delete",
            "--domain",
            B,
            "--recipient-domain",
            "example.net",
            "--state",
            "deferred",
            "--dry-run",
        ],
    );
    assert_eq!(ids(&v), set(&[&f.b2]));
    // Text: the count and the ids.
    let text =
        f.gw.cli_ok(&["queue", "release", "--domain", A, "--dry-run"]);
    assert!(
        text.contains("dry run") && text.contains("0 message"),
        "{text}"
    );
    let text = f.gw.cli_ok(&[
        "queue",
        "delete",
        "--sender",
        &format!("boss@{A}"),
        "--dry-run",
    ]);
    assert!(text.contains("1 message") && text.contains(&f.a2), "{text}");
    assert!(!text.contains(&f.a1), "{text}");
    assert_eq!(queued(&f.gw), before, "a dry run changed the queue");
}

#[test]
fn bulk_hold_by_sender_then_release_by_domain() {
    let f = fixture();
    let v = bulk_cli(
        &f.gw,
        &[
            "hold",
            "--sender",
            &format!("CLERK@{A}"),
            "--reason",
            "audit",
        ],
    );
    assert_eq!(v["count"], 1);
    assert_eq!(ids(&v), set(&[&f.a1]));
    assert_eq!(held(&f.gw), set(&[&f.a1]));
    assert_eq!(envelope(&f.gw, &f.a1).unwrap()["held"], "audit");
    // The sender filter is the whole address, not a part of it.
    let v = bulk_cli(&f.gw, &["hold", "--sender", "desk@", "--dry-run"]);
    assert_eq!(v["count"], 0);

    let v = bulk_cli(&f.gw, &["hold", "--domain", B]);
    assert_eq!(ids(&v), set(&[&f.b1, &f.b2]));
    assert_eq!(held(&f.gw), set(&[&f.a1, &f.b1, &f.b2]));
    // Held mail keeps its reason when held again.
    let v = bulk_cli(&f.gw, &["hold", "--state", "held"]);
    assert_eq!(v["count"], 0);

    let text = f.gw.cli_ok(&["queue", "release", "--domain", B]);
    assert!(text.contains("released: 2 message"), "{text}");
    assert!(text.contains(&f.b1) && text.contains(&f.b2), "{text}");
    assert_eq!(held(&f.gw), set(&[&f.a1]));
    // Released mail is due at once: it is tried again despite the hour's backoff.
    assert!(wait_for(20, || {
        [&f.b1, &f.b2]
            .iter()
            .all(|id| envelope(&f.gw, id).unwrap()["attempts"].as_u64().unwrap() >= 2)
    }));
    assert_eq!(envelope(&f.gw, &f.a2).unwrap()["attempts"], 1);

    // The audit names the filter and the count.
    let audit: Value = serde_json::from_str(&f.gw.cli_ok(&["--json", "audit"])).unwrap();
    let targets: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = (
        "queue.bulk.hold".to_string(),
        format!("sender=CLERK@{A}: 1 message(s)"),
    );
    assert!(targets.contains(&want), "{targets:?}");
    let want = (
        "queue.bulk.release".to_string(),
        format!("domain={B}: 2 message(s)"),
    );
    assert!(targets.contains(&want), "{targets:?}");
}

#[test]
fn bulk_retry_makes_deferred_mail_due_now() {
    let f = fixture();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for id in [&f.a1, &f.a2, &f.b1, &f.b2] {
        let next = envelope(&f.gw, id).unwrap()["next_attempt_ms"]
            .as_u64()
            .unwrap();
        assert!(next > now + 30 * 60_000, "not backed off: {next}");
    }
    let v = bulk_cli(&f.gw, &["retry", "--sender", &format!("desk@{B}")]);
    assert_eq!(ids(&v), set(&[&f.b1, &f.b2]));
    assert!(
        wait_for(20, || {
            [&f.b1, &f.b2]
                .iter()
                .all(|id| envelope(&f.gw, id).unwrap()["attempts"].as_u64().unwrap() >= 2)
        }),
        "retried mail was not tried again: {:?}",
        queued(&f.gw)
    );
    for id in [&f.a1, &f.a2] {
        assert_eq!(envelope(&f.gw, id).unwrap()["attempts"], 1);
    }
    // Held mail is not retried.
    bulk_cli(&f.gw, &["hold", "--domain", A]);
    let v = bulk_cli(&f.gw, &["retry", "--all"]);
    assert!(ids(&v).is_disjoint(&set(&[&f.a1, &f.a2])), "{v}");
}

#[test]
fn bulk_delete_older_than_takes_only_old_mail() {
    let gw = Gateway::start("");
    register(&gw, A);
    let old1 = send(&gw, &format!("clerk@{A}"), "x@example.org", "old1");
    let old2 = send(&gw, &format!("boss@{A}"), "y@example.net", "old2");
    settle(&gw, 2);
    std::thread::sleep(Duration::from_secs(4));
    // The new message is well under 3 s old when the calls below run.
    let new = send(&gw, &format!("clerk@{A}"), "x@example.org", "new");
    let dry = bulk_cli(&gw, &["delete", "--older-than", "3s", "--dry-run"]);
    assert_eq!(ids(&dry), set(&[&old1, &old2]));
    assert_eq!(queued(&gw).len(), 3);
    let v = bulk_cli(&gw, &["delete", "--older-than", "3s"]);
    assert_eq!(v["count"], 2);
    assert_eq!(ids(&v), set(&[&old1, &old2]));
    let left: Vec<String> = queued(&gw)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![new]);
    // A bad duration is refused by the CLI before anything is sent.
    let out = gw.cli(ADMIN_TOKEN, &["queue", "delete", "--older-than", "soon"]);
    assert!(!out.status.success());
    assert_eq!(queued(&gw).len(), 1);
}

#[test]
fn filterless_bulk_is_refused_and_viewers_are_forbidden() {
    let f = fixture();
    // The CLI: no id, no filter.
    for verb in ["hold", "release", "delete", "retry"] {
        let out = f.gw.cli(ADMIN_TOKEN, &["queue", verb]);
        assert!(!out.status.success(), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--all"), "{verb}: {err}");
    }
    // An id and a filter together.
    let out =
        f.gw.cli(ADMIN_TOKEN, &["queue", "delete", &f.a1, "--domain", A]);
    assert!(!out.status.success());
    // The API: an empty filter, a misspelt one, `all` with a filter.
    for body in [
        "{}",
        r#"{"dry_run": false}"#,
        r#"{"sendr": "clerk@agency.example.kz"}"#,
        r#"{"all": true, "domain": "agency.example.kz"}"#,
        r#"{"sender": ""}"#,
        r#"{"older_than": "soon"}"#,
    ] {
        let (st, resp) = http(
            f.gw.admin,
            "POST",
            "/api/v1/queue/bulk/delete",
            Some(ADMIN_TOKEN),
            Some(body),
        );
        assert_eq!(st, 400, "{body}: {resp}");
    }
    assert_eq!(queued(&f.gw).len(), 4);
    // A viewer may not run any bulk operation, nor read a message's text.
    for op in ["hold", "release", "delete", "retry"] {
        let (st, resp) = http(
            f.gw.admin,
            "POST",
            &format!("/api/v1/queue/bulk/{op}"),
            Some(VIEWER_TOKEN),
            Some(r#"{"all": true}"#),
        );
        assert_eq!(st, 403, "{op}: {resp}");
    }
    let (st, _) = http(
        f.gw.admin,
        "GET",
        &format!("/api/v1/queue/{}/message?part=headers", f.a1),
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 403);
    assert_eq!(queued(&f.gw).len(), 4);
    assert!(held(&f.gw).is_empty());
    // An operator may; `all` means everything.
    let (st, resp) = http(
        f.gw.admin,
        "POST",
        "/api/v1/queue/bulk/hold",
        Some(OPERATOR_TOKEN),
        Some(r#"{"all": true, "reason": "incident"}"#),
    );
    assert_eq!(st, 200, "{resp}");
    let v: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(v["count"], 4);
    assert_eq!(held(&f.gw).len(), 4);
    // The single-id forms still work beside the bulk routes.
    f.gw.cli_ok(&["queue", "release", &f.a1]);
    f.gw.cli_ok(&["queue", "delete", &f.a2]);
    assert_eq!(held(&f.gw), set(&[&f.b1, &f.b2]));
}

#[test]
fn list_shows_recipients_states_and_reasons_and_show_prints_the_message() {
    let f = fixture();
    bulk_cli(
        &f.gw,
        &[
            "hold",
            "--sender",
            &format!("desk@{B}"),
            "--reason",
            "looks odd",
        ],
    );
    let list = f.gw.cli_ok(&["queue", "list"]);
    assert!(list.starts_with("ID"), "{list}");
    for id in [&f.a1, &f.a2, &f.b1, &f.b2] {
        assert!(list.contains(id.as_str()), "{list}");
    }
    assert!(list.contains("(held: looks odd)"), "{list}");
    assert!(list.contains("z@example.net  deferred"), "{list}");
    // The recipient's last reason, as the JSON records it.
    let a1 = envelope(&f.gw, &f.a1).unwrap();
    let reason = a1["recipients"][0]["last_error"].as_str().unwrap();
    assert!(list.contains(reason), "{list}\n{reason}");
    assert!(list.contains("-- 4 message(s)"), "{list}");
    // JSON gives the full records, filters narrow.
    let json: Value = serde_json::from_str(&f.gw.cli_ok(&[
        "--json",
        "queue",
        "list",
        "--recipient-domain",
        "example.net",
    ]))
    .unwrap();
    let got: BTreeSet<String> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, set(&[&f.a2, &f.b2]));
    assert!(json[0]["recipients"][0]["status"].is_string());

    // show --headers: the header section only.
    let headers = f.gw.cli_ok(&["queue", "show", &f.a1, "--headers"]);
    assert!(headers.contains("Subject: a1"), "{headers}");
    assert!(!headers.contains("body of a1"), "{headers}");
    // show --body: the whole text.
    let body = f.gw.cli_ok(&["queue", "show", &f.a1, "--body"]);
    assert!(
        body.contains("Subject: a1") && body.contains("body of a1"),
        "{body}"
    );
    // Bounded output.
    let out = f.gw.cli(
        OPERATOR_TOKEN,
        &["queue", "show", &f.a1, "--body", "--max-bytes", "8"],
    );
    assert!(out.status.success());
    assert!(out.stdout.len() <= 8, "{:?}", out.stdout);
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown 8 of"));
    // Reading a message is audited.
    let audit = f.gw.cli_ok(&["--json", "audit"]);
    assert!(audit.contains("queue.message"), "{audit}");
}

#[test]
fn requeue_releases_held_mail_and_starts_its_backoff_over() {
    let f = fixture();
    // a1 held by staff; requeue by domain takes it and a2 (held or not).
    bulk_cli(&f.gw, &["hold", f.a1.as_str()]);
    let dry = bulk_cli(&f.gw, &["requeue", "--domain", A, "--dry-run"]);
    assert_eq!(ids(&dry), set(&[&f.a1, &f.a2]), "{dry}");
    assert!(held(&f.gw).contains(&f.a1), "a dry run changed nothing");
    let v = bulk_cli(&f.gw, &["requeue", "--domain", A]);
    assert_eq!(v["action"], "requeue");
    assert_eq!(ids(&v), set(&[&f.a1, &f.a2]), "{v}");
    assert!(held(&f.gw).is_empty(), "requeue releases held mail");
    // Both are tried again at once.
    assert!(
        wait_for(20, || {
            [&f.a1, &f.a2]
                .iter()
                .all(|id| envelope(&f.gw, id).unwrap()["attempts"].as_u64().unwrap() >= 2)
        }),
        "requeued mail was not tried again: {:?}",
        queued(&f.gw)
    );
    // B's mail was not touched.
    for id in [&f.b1, &f.b2] {
        assert_eq!(envelope(&f.gw, id).unwrap()["attempts"], 1);
    }
    // One id at a time, through the CLI's table output too.
    let out = f.gw.cli_ok(&["queue", "requeue", f.b1.as_str()]);
    assert!(out.contains("requeue"), "{out}");
    assert!(
        wait_for(20, || envelope(&f.gw, &f.b1).unwrap()["attempts"]
            .as_u64()
            .unwrap()
            >= 2),
        "b1 was not tried again"
    );
    // The mail log tells each message's story.
    let log = f.gw.log.lock().unwrap().clone();
    for id in [&f.a1, &f.a2, &f.b1] {
        assert!(
            log.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("requeued by staff")),
            "no requeue line for {id}"
        );
    }
    // An unknown id is an error.
    let out = f.gw.cli(
        ADMIN_TOKEN,
        &["queue", "requeue", "0123456789abcdef01234567"],
    );
    assert!(!out.status.success());
}
