//! The postmaster's local mailbox (issue #15 item 9): with
//! `server.postmaster_mailbox` on, mail for the postmaster (a stranger's
//! abuse report, the gateway's own alarms) lands in `data_dir/mailbox` as a
//! Maildir, leaves the queue, shows in the mail log as `relay=local`, and is
//! read and deleted with `ugem mailbox` through the admin API.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Gateway, OPERATOR_TOKEN, Smtp, VIEWER_TOKEN};

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mailbox(gw: &Gateway) -> serde_json::Value {
    let out = gw.cli(OPERATOR_TOKEN, &["--json", "mailbox", "list"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn mail_for_the_postmaster_is_kept_in_the_local_mailbox() {
    let gw = Gateway::start("[server]\npostmaster_mailbox = true");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO stranger.example.org", 250);
    s.expect("MAIL FROM:<someone@example.org>", 250);
    // Twice, in two spellings: one copy in the mailbox.
    s.expect("RCPT TO:<postmaster>", 250);
    s.expect("RCPT TO:<PostMaster@gw.test.example>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"From: someone@example.org\r\nSubject: abuse report\r\n\r\nhello\r\n.\r\n");
    assert_eq!(s.reply().code, 250);
    s.expect("QUIT", 221);

    let list = wait_for("the abuse report in the mailbox", || {
        let v = mailbox(&gw);
        let msgs = v["messages"].as_array().unwrap().clone();
        msgs.iter()
            .any(|m| m["subject"] == "abuse report")
            .then_some(v)
    });
    assert_eq!(list["enabled"], true);
    let reports: Vec<_> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["subject"] == "abuse report")
        .collect();
    assert_eq!(reports.len(), 1, "one copy for two spellings: {list}");
    let id = reports[0]["id"].as_str().unwrap().to_string();
    assert_eq!(reports[0]["from"], "someone@example.org");
    assert_eq!(reports[0]["seen"], false);
    // A Maildir any MUA reads.
    assert!(gw.data_dir().join("mailbox/new").join(&id).is_file());

    // It left the queue, and the mail log says where it went.
    wait_for("the queue to empty", || {
        common::queued(&gw).is_empty().then_some(())
    });
    let log = gw.log.lock().unwrap().clone();
    let local: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "delivery" && v["relay"] == "local")
        .collect();
    assert!(!local.is_empty(), "no relay=local line in:\n{log}");
    for v in &local {
        assert_eq!(v["to"], "postmaster@gw.test.example", "{v}");
        assert!(v["status"].as_str().unwrap().starts_with("sent ("), "{v}");
        assert_eq!(v["dsn"], "2.0.0", "{v}");
    }

    // Read: the whole text with the delivery headers; then it is seen.
    let out = gw.cli(OPERATOR_TOKEN, &["mailbox", "show", &id]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "Return-Path: <someone@example.org>\r\nDelivered-To: postmaster@gw.test.example\r\n"
        ),
        "{text}"
    );
    assert!(text.contains("\r\n\r\nhello\r\n"), "{text}");
    let again = mailbox(&gw);
    let seen = again["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap()["seen"]
        .clone();
    assert_eq!(seen, true);

    // Viewers cannot read the postmaster's mail; the reading was audited.
    let out = gw.cli(VIEWER_TOKEN, &["mailbox", "list"]);
    assert!(!out.status.success(), "a viewer listed the mailbox");
    let audit = gw.cli(ADMIN_TOKEN, &["--json", "audit", "--limit", "20"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains("mailbox.show"), "{audit}");

    // Delete.
    let out = gw.cli(OPERATOR_TOKEN, &["mailbox", "delete", &id]);
    assert!(out.status.success(), "{out:?}");
    let after = mailbox(&gw);
    assert!(
        !after["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == id.as_str()),
        "{after}"
    );
    let out = gw.cli(OPERATOR_TOKEN, &["mailbox", "show", &id]);
    assert!(!out.status.success(), "a deleted message was shown");
}

#[test]
fn queue_alarms_reach_the_local_mailbox() {
    let gw = Gateway::start(
        r#"
[server]
postmaster_mailbox = true
[alarms]
queue_size = 1
check_interval = "1s"
"#,
    );
    gw.register_shared("agency.example.kz");
    // Two outbound messages that cannot leave (the default route
    // refuses): over queue_size.
    for _ in 0..2 {
        let mut s = Smtp::greeted(gw.smtp);
        let r = s.send_mail(
            "clerk@agency.example.kz",
            &["citizen@example.org"],
            "Subject: stuck\r\n\r\nx",
        );
        assert_eq!(r.code, 250, "{r:?}");
    }
    let alarm = wait_for("the queue alarm in the mailbox", || {
        mailbox(&gw)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["subject"] == "ugem queue alarm")
            .cloned()
    });
    assert!(
        alarm["from"]
            .as_str()
            .unwrap()
            .contains("postmaster@gw.test.example")
    );
    // The alarm itself left the queue; the stuck message did not.
    let q = common::queued(&gw);
    assert_eq!(q.len(), 2, "{q:?}");
    for m in &q {
        assert_eq!(m["recipients"][0]["address"], "citizen@example.org");
    }
}

#[test]
fn off_by_default_mail_for_the_postmaster_goes_over_smtp() {
    let gw = Gateway::start("");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO stranger.example.org", 250);
    s.expect("MAIL FROM:<someone@example.org>", 250);
    s.expect("RCPT TO:<postmaster>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"Subject: abuse report\r\n\r\nhello\r\n.\r\n");
    assert_eq!(s.reply().code, 250);
    // Queued for SMTP (the test route refuses: it stays), no mailbox.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(common::queued(&gw).len(), 1);
    let v = mailbox(&gw);
    assert_eq!(v["enabled"], false);
    assert!(v["messages"].as_array().unwrap().is_empty());
    assert!(!gw.data_dir().join("mailbox").exists());
}
