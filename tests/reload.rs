//! Live reload (issue #15, item 4), end to end through the binary: SIGHUP,
//! `POST /api/v1/reload` and `ugem reload` read the configuration file
//! again; limits, tokens and the log level change without a restart, a
//! file with problems is refused whole, restart-only keys are reported and
//! keep their running value.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Gateway, Smtp, VIEWER_TOKEN, config_text, http, wait_for};
use serde_json::Value;

const AGENCY: &str = "agency.example.kz";
const CLERK: &str = "clerk@agency.example.kz";

/// Rewrites the gateway's file: the test configuration plus `extra`.
fn rewrite(gw: &Gateway, extra: &str) {
    std::fs::write(&gw.config, config_text(extra)).unwrap();
}

/// `POST /api/v1/reload` as the admin: (status, body).
fn reload_api(gw: &Gateway) -> (u16, Value) {
    let (status, body) = http(gw.admin, "POST", "/api/v1/reload", Some(ADMIN_TOKEN), None);
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn keys(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_string())
        .collect()
}

/// How many log lines of the gateway hold `needle`.
fn log_count(gw: &Gateway, needle: &str) -> usize {
    gw.log_text().lines().filter(|l| l.contains(needle)).count()
}

/// MAIL FROM the clerk, then RSET: the reply to MAIL.
fn mail(s: &mut Smtp) -> common::Reply {
    let r = s.cmd(&format!("MAIL FROM:<{CLERK}>"));
    s.expect("RSET", 250);
    r
}

#[test]
fn sighup_lowers_a_limit_while_mail_flows() {
    let mut gw = Gateway::start("[governor]\nsender_messages_per_minute = 1000\n");
    gw.register(AGENCY, &["127.0.0.1"]);
    let pid = gw.child.as_ref().unwrap().id();
    // One client relays message after message on one session; it reports
    // each final reply, and stops at the first refusal.
    let (tx, rx) = mpsc::channel::<(u16, String)>();
    let smtp = gw.smtp;
    let client = std::thread::spawn(move || {
        let mut s = Smtp::greeted(smtp);
        s.expect("EHLO client.test.example", 250);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let r = s.cmd(&format!("MAIL FROM:<{CLERK}>"));
            if r.code != 250 {
                let _ = tx.send((r.code, r.text()));
                return;
            }
            s.expect("RCPT TO:<citizen@far.example>", 250);
            s.expect("DATA", 354);
            s.send_raw(b"Subject: flow\r\n\r\nhello\r\n.\r\n");
            let r = s.reply();
            assert_eq!(r.code, 250, "{r:?}");
            if tx.send((r.code, r.text())).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // Five accepted under the old limit (already more than the new one)...
    for _ in 0..5 {
        let (code, text) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(code, 250, "{text}");
    }
    // ...then the file says 3 a minute, and SIGHUP reloads it.
    rewrite(&gw, "[governor]\nsender_messages_per_minute = 3\n");
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut after = 0;
    let refusal = loop {
        let (code, text) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the new limit never refused a message");
        if code != 250 {
            break (code, text);
        }
        after += 1;
    };
    client.join().unwrap();
    assert_eq!(refusal.0, 451, "{refusal:?}");
    assert!(
        refusal
            .1
            .starts_with("4.7.0 rate limit: 3 messages/minute for sender clerk@agency.example.kz"),
        "{refusal:?}"
    );
    // Messages accepted between the signal and the reload's end, at most
    // what the old messages left of the new allowance, and the same process.
    assert!(after <= 20, "{after} accepted after the reload");
    assert!(gw.child.as_mut().unwrap().try_wait().unwrap().is_none());
    assert_eq!(gw.child.as_ref().unwrap().id(), pid);
    assert!(wait_for(10, || log_count(
        &gw,
        r#""key":"governor.sender_messages_per_minute""#
    ) == 1));
    let log = gw.log_text();
    assert!(log.contains("SIGHUP received"), "{log}");
    assert!(log.contains(r#""old":"1000","new":"3""#), "{log}");
}

#[test]
fn a_file_with_a_bad_value_is_refused_and_the_old_limit_stays() {
    let gw = Gateway::start("[governor]\nsender_messages_per_minute = 2\n");
    gw.register(AGENCY, &["127.0.0.1"]);
    // A raised limit and a bad value in the same file: nothing of it applies.
    rewrite(
        &gw,
        "[governor]\nsender_messages_per_minute = 50\n[smtp]\nmax_recipients = 0\n",
    );
    let out = gw.cli(ADMIN_TOKEN, &["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("smtp.max_recipients"), "{stderr}");
    assert!(stderr.contains("must be at least 1"), "{stderr}");
    let (status, body) = reload_api(&gw);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["kind"], "invalid_configuration", "{body}");
    assert_eq!(keys(&body["problems"]), ["smtp.max_recipients"], "{body}");
    assert!(body["problems"][0]["line"].is_number(), "{body}");
    // The old limit, 2 a minute, is still in force.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    assert_eq!(mail(&mut s).code, 250);
    assert_eq!(mail(&mut s).code, 250);
    let r = mail(&mut s);
    assert_eq!(r.code, 451, "{r:?}");
    assert!(r.text().contains("2 messages/minute"), "{r:?}");
    s.cmd("QUIT");
    // Refused reloads are audited and logged with the problem named.
    let (_, audit) = http(gw.admin, "GET", "/api/v1/audit", Some(ADMIN_TOKEN), None);
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let reloads: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "config.reload")
        .collect();
    assert_eq!(reloads.len(), 2, "{audit}");
    assert!(
        reloads
            .iter()
            .all(|r| r["outcome"].as_str().unwrap().starts_with("error")),
        "{audit}"
    );
    assert!(wait_for(10, || log_count(
        &gw,
        "configuration reload refused; the running configuration stays"
    ) == 2));
    assert!(
        log_count(&gw, r#""key":"smtp.max_recipients""#) >= 2,
        "{}",
        gw.log_text()
    );
}

#[test]
fn a_restart_only_key_is_reported_and_not_applied() {
    let gw = Gateway::start("");
    gw.register(AGENCY, &["127.0.0.1"]);
    // The SMTP address and the host name are bound at start; the number of
    // recipients is not.
    rewrite(
        &gw,
        "[server]\nhostname = \"renamed.test.example\"\n[smtp]\nlisten = \"127.0.0.1:1\"\nmax_recipients = 2\n",
    );
    let (status, body) = reload_api(&gw);
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&body["changed"]), ["smtp.max_recipients"], "{body}");
    assert_eq!(
        keys(&body["restart_needed"]),
        ["server.hostname", "smtp.listen"],
        "{body}"
    );
    assert_eq!(
        body["restart_needed"][0]["old"], "gw.test.example",
        "{body}"
    );
    assert_eq!(
        body["restart_needed"][0]["new"], "renamed.test.example",
        "{body}"
    );
    // The old address still serves, under the old name, with the new limit.
    let mut s = Smtp::connect(gw.smtp);
    let greeting = s.reply();
    assert!(
        greeting.text().starts_with("gw.test.example"),
        "{greeting:?}"
    );
    s.expect("EHLO client.test.example", 250);
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    s.expect("RCPT TO:<a@far.example>", 250);
    s.expect("RCPT TO:<b@far.example>", 250);
    s.expect("RCPT TO:<c@far.example>", 452);
    s.cmd("QUIT");
    assert!(wait_for(10, || log_count(&gw, "needs a restart") == 2));
    // A second reload of the same file changes nothing more, and still
    // says what waits for a restart.
    let (status, body) = reload_api(&gw);
    assert_eq!(status, 200, "{body}");
    assert!(keys(&body["changed"]).is_empty(), "{body}");
    assert_eq!(keys(&body["restart_needed"]).len(), 2, "{body}");
}

#[test]
fn tokens_added_by_a_reload_work_and_removed_ones_stop() {
    let gw = Gateway::start("");
    const FRESH: &str = "fresh-token-0123456789";
    let status = |token: &str| http(gw.admin, "GET", "/api/v1/governor", Some(token), None).0;
    assert_eq!(status(FRESH), 401);
    assert_eq!(status(VIEWER_TOKEN), 200);
    // `desk` (the viewer) goes, `fresh` comes.
    rewrite(
        &gw,
        &format!(
            "[admin]\ntokens = [\n  {{ name = \"root\", role = \"admin\", token = \"{ADMIN_TOKEN}\" }},\n  {{ name = \"fresh\", role = \"viewer\", token = \"{FRESH}\" }},\n]\n"
        ),
    );
    let out = gw.cli_ok(&["--json", "reload"]);
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys(&body["changed"]), ["admin.tokens"], "{body}");
    // Secrets stay out of the answer.
    assert!(!out.contains(FRESH) && !out.contains(VIEWER_TOKEN), "{out}");
    assert_eq!(status(FRESH), 200);
    assert_eq!(status(VIEWER_TOKEN), 401);
    assert_eq!(status(ADMIN_TOKEN), 200);
    // The reload itself needs the admin role.
    let (st, _) = http(gw.admin, "POST", "/api/v1/reload", Some(FRESH), None);
    assert_eq!(st, 403);
    assert!(!gw.log_text().contains(FRESH));
}

#[test]
fn the_log_level_follows_a_reload() {
    let gw = Gateway::start("");
    const DONE: &str = r#""message":"configuration reloaded""#;
    // At warn, the reload's own info lines are no longer written, its
    // warnings are.
    rewrite(
        &gw,
        "[server]\nlog_level = \"warn\"\nhostname = \"renamed.test.example\"\n",
    );
    let (status, body) = reload_api(&gw);
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&body["changed"]), ["server.log_level"], "{body}");
    assert!(wait_for(10, || log_count(&gw, "needs a restart") == 1));
    // Another reload at warn: still silent at info.
    let (status, _) = reload_api(&gw);
    assert_eq!(status, 200);
    assert!(wait_for(10, || log_count(&gw, "needs a restart") == 2));
    assert_eq!(log_count(&gw, DONE), 0, "{}", gw.log_text());
    // Back to info: the reload that sets it is logged at info again.
    rewrite(&gw, "[server]\nlog_level = \"info\"\n");
    let (status, body) = reload_api(&gw);
    assert_eq!(status, 200, "{body}");
    assert!(
        wait_for(10, || log_count(&gw, DONE) == 1),
        "{}",
        gw.log_text()
    );
    assert_eq!(
        log_count(&gw, r#""key":"server.log_level","old":"warn","new":"info""#),
        1,
        "{}",
        gw.log_text()
    );
    // A filter that does not parse is refused, and the level stays.
    rewrite(&gw, "[server]\nlog_level = \"ugem=loud\"\n");
    let (status, body) = reload_api(&gw);
    assert_eq!(status, 422, "{body}");
    assert_eq!(keys(&body["problems"]), ["server.log_level"], "{body}");
}
