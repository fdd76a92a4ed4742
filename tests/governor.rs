//! Rate governors, anomaly detection and automatic suspension, end to end
//! through the real binary: limits answer 451 4.7.0, a burst suspends the
//! sender and then the domain (451 4.7.1, queued mail held), notices reach
//! the contacts and the postmaster, webhooks get JSON, restore releases.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_mx::{Behaviour, FakeMx};
use common::{ADMIN_TOKEN, Gateway, Smtp, http, read_http_body, wait_for};
use serde_json::Value;

/// Registers a domain on 127.0.0.1 that shares the server with others.
fn register(gw: &Gateway, domain: &str) {
    gw.register_shared(domain);
}

fn api(gw: &Gateway, path: &str) -> Value {
    let (status, body) = http(gw.admin, "GET", path, Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn queue(gw: &Gateway, query: &str) -> Vec<Value> {
    api(gw, &format!("/api/v1/queue{query}"))
        .as_array()
        .cloned()
        .unwrap()
}

/// One transaction; returns the reply to MAIL and those to each RCPT.
fn transaction(gw: &Gateway, from: &str, to: &[String]) -> (u16, String, Vec<u16>) {
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    let r = s.cmd(&format!("MAIL FROM:<{from}>"));
    if r.code != 250 {
        return (r.code, r.text(), Vec::new());
    }
    let mut codes = Vec::new();
    let mut last = String::new();
    for t in to {
        let r = s.cmd(&format!("RCPT TO:<{t}>"));
        codes.push(r.code);
        last = r.text();
    }
    if codes.contains(&250) {
        s.expect("DATA", 354);
        s.send_raw(b"Subject: test\r\n\r\nhello\r\n.\r\n");
        let r = s.reply();
        assert_eq!(r.code, 250, "{}", r.text());
    }
    s.cmd("QUIT");
    (250, last, codes)
}

fn rcpts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@far.example")).collect()
}

/// A tiny HTTP server that records request bodies and answers 200.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    receiver(None)
}

/// The same over TLS with `tls` (a certificate for 127.0.0.1).
fn receiver(tls: Option<Arc<rustls::ServerConfig>>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/hook", l.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { break };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            match &tls {
                Some(cfg) => {
                    let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                    serve_one(rustls::StreamOwned::new(conn, s), &g);
                }
                None => serve_one(s, &g),
            }
        }
    });
    (url, got)
}

fn serve_one(mut s: impl Read + Write, got: &Mutex<Vec<Value>>) {
    if let Some(v) = read_http_body(&mut s).and_then(|b| serde_json::from_slice(&b).ok()) {
        got.lock().unwrap().push(v);
    }
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = s.flush();
}

#[test]
fn sender_over_its_recipient_rate_gets_451_and_other_domains_are_unaffected() {
    let mut gw =
        Gateway::start("[governor]\nsender_recipients_per_hour = 5\nburst_percent = 100\n");
    register(&gw, "a.example.kz");
    register(&gw, "b.example.kz");

    let (_, text, codes) = transaction(&gw, "alice@a.example.kz", &rcpts("x", 7));
    assert_eq!(codes, [250, 250, 250, 250, 250, 451, 451]);
    assert!(
        text.starts_with("4.7.0 rate limit: 5 recipients/hour for sender alice@a.example.kz"),
        "{text}"
    );

    // Another domain (and another sender) is unaffected.
    let (_, _, codes) = transaction(&gw, "bob@b.example.kz", &rcpts("y", 3));
    assert_eq!(codes, [250, 250, 250]);

    // A per-domain override, set through the CLI, takes effect at once.
    let out = gw.cli_ok(&[
        "domain",
        "limits",
        "a.example.kz",
        "--recipients-per-hour",
        "3",
    ]);
    assert!(out.contains("recipients_per_hour"), "{out}");
    let (_, text, codes) = transaction(&gw, "carol@a.example.kz", &rcpts("z", 4));
    // The domain's cell keeps what alice used a moment ago (limits are
    // one saved cell per scope, not a fresh one per rate): 2 or 3 pass.
    let passed = codes.iter().filter(|c| **c == 250).count();
    assert!((2..=3).contains(&passed) && codes[3] == 451, "{codes:?}");
    assert!(
        text.contains("3 recipients/hour for domain a.example.kz"),
        "{text}"
    );
    let shown = gw.cli_ok(&["--json", "domain", "show", "a.example.kz"]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["limits"]["recipients_per_hour"], 3);

    let g = api(&gw, "/api/v1/governor");
    assert_eq!(
        g["counters"]["rcpt_refused"].as_u64().unwrap() as usize,
        2 + 4 - passed,
        "{g}"
    );
    let status = gw.cli_ok(&["governor"]);
    assert!(status.contains("rcpt_refused"), "{status}");

    // The detector's state outlives a restart.
    gw.terminate();
    gw.spawn();
    let g = api(&gw, "/api/v1/governor");
    assert!(g["tracked_scopes"].as_u64().unwrap() >= 4, "{g}");
}

#[test]
fn burst_takeover_is_throttled_then_suspended_domain_follows_holds_mail_notifies_and_restore_releases()
 {
    let mx = FakeMx::start(Behaviour::accept());
    let (hook, hooks) = webhook_receiver();
    // history_hours = 0: every sender counts as having a (quiet) history,
    // so the novelty floors apply from the first message, as they do to a
    // clerk's mailbox with weeks of ordinary traffic (the replay tests show
    // the learning itself).
    let mut gw = Gateway::start(&format!(
        "[governor]\nhistory_hours = 0\ndomain_after_senders = 2\nwebhooks = [\"{hook}\"]\n\
         [delivery.routes]\n\"*\" = \"127.0.0.1:9\"\n\"contact.example.kz\" = \"{mx}\"\n\
         \"gw.test.example\" = \"{mx}\"\n",
        mx = mx.addr()
    ));
    register(&gw, "a.example.kz");
    register(&gw, "b.example.kz");

    // A colleague's ordinary mail, before and after.
    let (_, _, codes) = transaction(&gw, "peggy@a.example.kz", &rcpts("partner", 2));
    assert_eq!(codes, [250, 250]);
    // Queued before the burst: mail that the suspension must hold.
    let (_, _, codes) = transaction(&gw, "mallory@a.example.kz", &rcpts("early", 2));
    assert_eq!(codes, [250, 250]);

    // The burst: 3 never-seen recipients a message. The 31st new address in
    // 5 minutes is deferred and throttles the sender; once its tried new
    // addresses pass twice the allowance (61), it is suspended.
    let mut suspended = None;
    let mut accepted = 2;
    let mut deferred = 0;
    for i in 0..60 {
        let (code, text, codes) =
            transaction(&gw, "mallory@a.example.kz", &rcpts(&format!("b{i}-"), 3));
        if code == 451 {
            suspended = Some(text);
            break;
        }
        accepted += codes.iter().filter(|c| **c == 250).count();
        deferred += codes.iter().filter(|c| **c == 451).count();
        if deferred > 0 && deferred < 3 {
            // The deferral names the cause.
            assert!(text.contains("never wrote to"), "{text}");
        }
    }
    let text = suspended.expect("the sender was never suspended");
    assert!(
        text.starts_with("4.7.1 sender mallory@a.example.kz suspended"),
        "{text}"
    );
    assert!(accepted <= 32, "accepted {accepted}");
    assert!(deferred >= 30, "deferred {deferred}");

    let list = gw.cli_ok(&["suspension", "list"]);
    assert!(
        list.contains("mallory@a.example.kz") && list.contains("novelty") && list.contains("auto"),
        "{list}"
    );
    let json: Value = serde_json::from_str(&gw.cli_ok(&["--json", "suspension", "list"])).unwrap();
    let rec = &json.as_array().unwrap()[0];
    assert_eq!(rec["rule"], "novelty");
    assert_eq!(rec["actor"], "auto");
    let ev = &rec["evidence"];
    assert_eq!(ev["allowance_5min"], 30, "{rec}");
    assert_eq!(ev["new_recipients_5min"], 30, "{rec}");
    assert!(
        ev["deferred_new_recipients_5min"].as_u64().unwrap() > 30,
        "{rec}"
    );
    assert_eq!(ev["escalated"], true, "{rec}");
    // The steps that led there: throttled, then suspended.
    let steps: Vec<&str> = ev["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["throttle", "suspend"], "{rec}");

    // The colleague is untouched.
    let (code, _, codes) = transaction(&gw, "peggy@a.example.kz", &rcpts("partner", 2));
    assert_eq!((code, codes), (250, vec![250, 250]));

    // Its queued mail is held; another sender's is not.
    assert!(wait_for(10, || {
        let q = queue(&gw, "?sender=mallory@a.example.kz");
        !q.is_empty() && q.iter().all(|e| !e["held"].is_null())
    }));

    // The notices (throttle, then suspension) reach the contacts and the
    // postmaster, in words and numbers.
    assert!(
        mx.wait_for_messages(1, Duration::from_secs(20)),
        "no notice delivered"
    );
    assert!(wait_for(20, || mx.messages().iter().any(|m| {
        m.recipients.iter().any(|r| r == "it@contact.example.kz")
            && String::from_utf8_lossy(&m.body).contains("suspended (novelty)")
    })));
    let notice = mx
        .messages()
        .into_iter()
        .find(|m| {
            m.recipients.iter().any(|r| r == "it@contact.example.kz")
                && String::from_utf8_lossy(&m.body).contains("suspended (novelty)")
        })
        .unwrap();
    let msg = mail_parser::MessageParser::default()
        .parse(&notice.body)
        .unwrap();
    assert_eq!(
        msg.subject(),
        Some("Mail gateway: sender mallory@a.example.kz suspended (novelty)")
    );
    let body = msg.body_text(0).unwrap().to_string();
    for want in [
        "never wrote to before",
        "stolen password",
        "new recipients 5min: 30",
        "allowance 5min: 30",
        "throttle (novelty)",
        "ugem sender restore mallory@a.example.kz",
    ] {
        assert!(body.contains(want), "{want:?} missing: {body}");
    }
    assert!(wait_for(20, || mx.messages().iter().any(|m| m
        .recipients
        .iter()
        .any(|r| r == "postmaster@gw.test.example"))));

    // The webhooks got the throttle and the suspension.
    assert!(wait_for(20, || hooks
        .lock()
        .unwrap()
        .iter()
        .any(|v| v["event"] == "suspend")));
    let got = hooks.lock().unwrap().clone();
    assert!(
        got.iter()
            .any(|v| v["event"] == "throttle" && v["rule"] == "novelty")
    );
    let ev = got.iter().find(|v| v["event"] == "suspend").unwrap();
    assert_eq!(ev["rule"], "novelty");
    assert_eq!(ev["scope"]["value"], "mallory@a.example.kz");

    // A second sender of the domain is taken over too: the domain follows,
    // on that evidence (two senders), not on one sender's.
    for i in 0..60 {
        let (code, _, _) = transaction(&gw, "trent@a.example.kz", &rcpts(&format!("t{i}-"), 3));
        if code == 451 {
            break;
        }
    }
    assert!(wait_for(10, || {
        let (code, text, _) = transaction(&gw, "peggy@a.example.kz", &rcpts("p", 1));
        code == 451 && text.contains("domain a.example.kz suspended")
    }));
    let all: Value = serde_json::from_str(&gw.cli_ok(&["--json", "suspension", "list"])).unwrap();
    let domain = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"]["kind"] == "domain")
        .expect("domain suspension")
        .clone();
    assert_eq!(domain["rule"], "senders_suspended");
    assert_eq!(
        domain["evidence"]["suspended_senders"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Other domains are unaffected throughout.
    let (_, _, codes) = transaction(&gw, "bob@b.example.kz", &rcpts("ok", 2));
    assert_eq!(codes, [250, 250]);
    let g = api(&gw, "/api/v1/governor");
    assert_eq!(g["counters"]["sender_suspensions"], 2, "{g}");
    assert_eq!(g["counters"]["domain_suspensions"], 1, "{g}");
    let scope: Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "governor", "scope", "mallory@a.example.kz"]))
            .unwrap();
    assert!(scope["stats"]["short"].is_object(), "{scope}");

    // Restore: mail is accepted again, held mail released, a notice sent.
    gw.cli_ok(&[
        "domain",
        "restore",
        "a.example.kz",
        "--reason",
        "false alarm",
    ]);
    gw.cli_ok(&[
        "sender",
        "restore",
        "mallory@a.example.kz",
        "--reason",
        "password reset",
    ]);
    assert!(wait_for(10, || queue(&gw, "?sender=mallory@a.example.kz")
        .iter()
        .all(|e| e["held"].is_null())));
    let (code, _, codes) = transaction(&gw, "mallory@a.example.kz", &rcpts("again", 1));
    assert_eq!((code, codes), (250, vec![250]));
    assert!(wait_for(20, || mx.messages().iter().any(|m| {
        String::from_utf8_lossy(&m.body)
            .contains("Subject: Mail gateway: sender mallory@a.example.kz restored")
    })));
    assert!(wait_for(20, || hooks
        .lock()
        .unwrap()
        .iter()
        .any(|v| v["event"] == "restore")));
    let history = gw.cli_ok(&["suspension", "list", "--history"]);
    assert!(history.contains("root"), "{history}");
    gw.terminate();
}

#[test]
fn a_declared_bulk_sender_is_never_suspended_and_an_undeclared_one_is_only_deferred() {
    // A tax office sends notices, one new taxpayer each. Declared, it is
    // bounded by its declared rates only; the same traffic undeclared from a
    // sender without history is deferred (451 4.7.0) past the unproven
    // allowance, and never suspended for it.
    let gw = Gateway::start("[governor]\nunproven_recipients_5min = 20\n");
    register(&gw, "tax.example.kz");
    let out = gw.cli_ok(&[
        "sender",
        "limits",
        "Notices@tax.example.kz",
        "--messages-per-minute",
        "700",
        "--messages-per-hour",
        "40000",
        "--recipients-per-minute",
        "700",
        "--recipients-per-hour",
        "40000",
        "--note",
        "tax notices, 10/s on weekdays",
    ]);
    assert!(
        out.contains("40000") && out.contains("tax notices"),
        "{out}"
    );
    let shown: Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "sender", "limits", "notices@tax.example.kz"]))
            .unwrap();
    assert_eq!(shown["judged_on_novelty"], false, "{shown}");
    assert_eq!(shown["recipients_per_hour"], 40000, "{shown}");

    for i in 0..150 {
        let (code, text, codes) = transaction(
            &gw,
            "notices@tax.example.kz",
            &[format!("taxpayer{i}@mail.example")],
        );
        assert_eq!((code, &codes), (250, &vec![250]), "message {i}: {text}");
    }
    let mut deferred = 0;
    for i in 0..40 {
        let (code, text, codes) = transaction(
            &gw,
            "billing@tax.example.kz",
            &[format!("payer{i}@mail.example")],
        );
        assert_eq!(code, 250, "{text}");
        if codes == [451] {
            assert!(
                text.starts_with("4.7.0") && text.contains("no sending history"),
                "{text}"
            );
            deferred += 1;
        }
    }
    assert_eq!(deferred, 20);
    let g = api(&gw, "/api/v1/governor");
    assert_eq!(g["counters"]["sender_suspensions"], 0, "{g}");
    assert_eq!(g["counters"]["throttles"], 0, "{g}");
    assert!(
        api(&gw, "/api/v1/suspensions")
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The declaration is audited and can be withdrawn.
    let audit = gw.cli_ok(&["audit"]);
    assert!(audit.contains("sender.limits"), "{audit}");
    gw.cli_ok(&["sender", "limits", "notices@tax.example.kz", "--clear"]);
    let shown: Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "sender", "limits", "notices@tax.example.kz"]))
            .unwrap();
    assert_eq!(shown["judged_on_novelty"], true, "{shown}");
}

#[test]
fn remote_rejections_trip_the_rejection_rule() {
    let mx = FakeMx::start(Behaviour::accept());
    let gw = Gateway::start(&format!(
        "[governor]\nrejection_min = 3\nrejection_share = 0.5\nunknown_min = 100000\n\
         ladder = [\"suspend\"]\n[delivery.routes]\n\"*\" = \"{}\"\n",
        mx.addr()
    ));
    register(&gw, "a.example.kz");
    let to: Vec<String> = (0..4).map(|i| format!("reject{i}@far.example")).collect();
    let (_, _, codes) = transaction(&gw, "eve@a.example.kz", &to);
    assert_eq!(codes, [250; 4]);
    assert!(wait_for(20, || {
        let s = api(&gw, "/api/v1/suspensions");
        s.as_array()
            .unwrap()
            .iter()
            .any(|r| r["scope"]["value"] == "eve@a.example.kz" && r["rule"] == "rejections")
    }));
    let s = api(&gw, "/api/v1/suspensions");
    let rec = s
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scope"]["value"] == "eve@a.example.kz")
        .unwrap()
        .clone();
    assert_eq!(rec["evidence"]["rejected"], 4, "{rec}");
    let (code, text, _) = transaction(&gw, "eve@a.example.kz", &rcpts("n", 1));
    assert_eq!(code, 451, "{text}");
}

#[test]
fn hitting_its_limits_never_suspends_a_sender_and_an_automatic_suspension_expires() {
    let gw = Gateway::start(
        "[governor]\nburst_percent = 100\nhistory_hours = 0\n\
         new_recipients_5min = 3\nnew_recipients_hour = 3\nexpire = { novelty = \"2s\" }\n\
         housekeeping_interval = \"500ms\"\n",
    );
    register(&gw, "a.example.kz");
    register(&gw, "b.example.kz");
    gw.cli_ok(&[
        "domain",
        "limits",
        "a.example.kz",
        "--sender-recipients-per-hour",
        "2",
    ]);
    // Over its recipient rate again and again, to the same addresses (as a
    // sending server retries): 451s, never a suspension.
    for _ in 0..5 {
        let (_, text, codes) = transaction(&gw, "frank@a.example.kz", &rcpts("f", 2));
        assert!(
            codes.contains(&250) || text.contains("2 recipients/hour"),
            "{text}"
        );
    }
    let (_, text, codes) = transaction(&gw, "frank@a.example.kz", &rcpts("f", 2));
    assert_eq!(codes, [451, 451]);
    assert!(
        text.contains("2 recipients/hour for sender frank@a.example.kz"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        api(&gw, "/api/v1/suspensions")
            .as_array()
            .unwrap()
            .is_empty()
    );
    let g = api(&gw, "/api/v1/governor");
    assert!(g["counters"]["rcpt_refused"].as_u64().unwrap() >= 8, "{g}");

    // A takeover of another mailbox is suspended (allowance 3), and the
    // suspension, set to expire, lifts itself.
    for i in 0..10 {
        let (code, _, _) = transaction(&gw, "grace@b.example.kz", &rcpts(&format!("g{i}-"), 2));
        if code == 451 {
            break;
        }
    }
    assert!(wait_for(10, || {
        let s = api(&gw, "/api/v1/suspensions");
        s.as_array().unwrap().iter().any(|r| {
            r["scope"]["value"] == "grace@b.example.kz"
                && r["rule"] == "novelty"
                && r["expires_at"].is_string()
        })
    }));
    assert!(wait_for(15, || {
        let s = api(&gw, "/api/v1/suspensions?history=true");
        s.as_array()
            .unwrap()
            .iter()
            .any(|r| r["restored"]["by"] == "auto" && r["restored"]["held_mail"] == "released")
    }));
    assert!(
        api(&gw, "/api/v1/suspensions")
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect("MAIL FROM:<grace@b.example.kz>", 250);
    // Counted once its effects (release, notices) are done.
    assert!(wait_for(
        5,
        || api(&gw, "/api/v1/governor")["counters"]["expiries"] == 1
    ));
}

#[test]
fn what_decides_survives_kill_9() {
    let mut gw = Gateway::start(
        "[governor]\nsender_messages_per_hour = 100\nhistory_hours = 0\n\
         new_recipients_5min = 3\nnew_recipients_hour = 3\nhousekeeping_interval = \"200ms\"\n",
    );
    register(&gw, "a.example.kz");
    // Ivan uses his whole burst (20 % of 100/hour).
    let mut sent = 0;
    for i in 0..25 {
        let (code, _, _) = transaction(
            &gw,
            "ivan@a.example.kz",
            &[format!("known{}@far.example", i % 2)],
        );
        if code != 250 {
            break;
        }
        sent += 1;
    }
    assert_eq!(sent, 20);
    // Judy is throttled: her fourth new address is deferred.
    let (_, _, codes) = transaction(&gw, "judy@a.example.kz", &rcpts("j", 4));
    assert_eq!(codes, [250, 250, 250, 451]);
    // Past one save, the process is killed.
    std::thread::sleep(Duration::from_millis(800));
    gw.kill();
    gw.spawn();
    // No fresh burst for Ivan...
    let (code, text, _) = transaction(&gw, "ivan@a.example.kz", &rcpts("known", 1));
    assert_eq!(code, 451, "{text}");
    assert!(
        text.contains("messages/hour for sender ivan@a.example.kz"),
        "{text}"
    );
    // ...Judy is still throttled, and her known correspondents still pass.
    let (_, text, codes) = transaction(
        &gw,
        "judy@a.example.kz",
        &[
            "j0@far.example".to_string(),
            "brand-new@far.example".to_string(),
        ],
    );
    assert_eq!(codes, [250, 451], "{text}");
    let g = api(&gw, "/api/v1/governor");
    assert_eq!(g["throttled"].as_array().unwrap().len(), 1, "{g}");
}

#[test]
fn a_blocklisted_gateway_alarms_the_postmaster_and_spares_the_sender() {
    // Every remote refuses: "our" address (the source of the gateway's
    // connections, 127.0.0.1 here) is on a blocklist.
    let listed = FakeMx::start(Behaviour {
        rcpt_reply: Some(
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using \
             zen.spamhaus.org"
                .into(),
        ),
        ..Behaviour::accept()
    });
    let postmaster = FakeMx::start(Behaviour::accept());
    let (hook, hooks) = webhook_receiver();
    let gw = Gateway::start(&format!(
        "[governor]\nrejection_min = 3\nrejection_share = 0.5\nladder = [\"suspend\"]\n\
         webhooks = [\"{hook}\"]\n[delivery]\nmin_backoff = \"1s\"\n\
         [delivery.routes]\n\"*\" = \"{}\"\n\"gw.test.example\" = \"{}\"\n",
        listed.addr(),
        postmaster.addr()
    ));
    register(&gw, "a.example.kz");
    let (_, _, codes) = transaction(&gw, "eve@a.example.kz", &rcpts("l", 5));
    assert_eq!(codes, [250; 5]);

    // The listing is seen, counted and shown...
    assert!(wait_for(20, || {
        let g = api(&gw, "/api/v1/governor");
        g["counters"]["gateway_listed"].as_u64() >= Some(5)
            && g["gateway_listings"][0]["address"] == "127.0.0.1"
    }));
    let g = api(&gw, "/api/v1/governor");
    let l = &g["gateway_listings"][0];
    assert_eq!(l["last_domain"], "a.example.kz", "{g}");
    assert!(
        l["last_reply"].as_str().unwrap().contains("spamhaus"),
        "{g}"
    );
    // ...the postmaster is told, once...
    assert!(
        postmaster.wait_for_messages(1, Duration::from_secs(20)),
        "no notice"
    );
    let raw = postmaster.messages()[0].body.clone();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Mail gateway: address 127.0.0.1 is on a blocklist")
    );
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("blocked using zen.spamhaus.org"), "{text}");
    assert!(text.contains("mail of a.example.kz"), "{text}");
    // ...and so are the webhooks.
    assert!(wait_for(10, || hooks.lock().unwrap().iter().any(
        |v| v["event"] == "gateway_listed" && v["address"] == "127.0.0.1"
    )));
    let metrics = common::http(gw.admin, "GET", "/metrics", None, None).1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ugem_delivery_blocklist_refusals_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // Five refusals (over rejection_min = 3, all of them) and retries: the
    // sender was not suspended for the gateway's listing, and still sends.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        api(&gw, "/api/v1/suspensions")
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (code, text, codes) = transaction(&gw, "eve@a.example.kz", &rcpts("m", 1));
    assert_eq!((code, codes), (250, vec![250]), "{text}");
    assert_eq!(
        postmaster.messages().len(),
        1,
        "the notice is sent once a day"
    );
}

#[test]
fn message_and_connection_rates_answer_with_the_limit_named() {
    let gw = Gateway::start(
        "[governor]\nsender_messages_per_minute = 2\ndomain_messages_per_hour = 3\n\
         burst_percent = 100\nconnections_per_minute = 8\n",
    );
    register(&gw, "a.example.kz");
    // Per sender per minute: the third MAIL of dave is refused, naming the limit.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    for _ in 0..2 {
        s.expect("MAIL FROM:<dave@a.example.kz>", 250);
        s.expect("RSET", 250);
    }
    let r = s.expect("MAIL FROM:<dave@a.example.kz>", 451);
    assert!(
        r.text()
            .starts_with("4.7.0 rate limit: 2 messages/minute for sender dave@a.example.kz"),
        "{r:?}"
    );
    // Per domain per hour: the domain's third message (another sender) is
    // its last; the fourth is refused for the domain.
    s.expect("MAIL FROM:<erin@a.example.kz>", 250);
    s.expect("RSET", 250);
    let r = s.expect("MAIL FROM:<erin@a.example.kz>", 451);
    assert!(
        r.text()
            .contains("rate limit: 3 messages/hour for domain a.example.kz"),
        "{r:?}"
    );
    s.cmd("QUIT");
    let g = api(&gw, "/api/v1/governor");
    assert_eq!(g["counters"]["mail_refused"], 2, "{g}");

    // Per client IP: eight connections a minute, the ninth gets 421 and is closed.
    // (One was used above.)
    let mut open = Vec::new();
    for _ in 0..7 {
        open.push(Smtp::greeted(gw.smtp));
    }
    let mut ninth = Smtp::connect(gw.smtp);
    let r = ninth.reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(
        r.text()
            .starts_with("4.7.0 rate limit: 8 connections/minute from 127.0.0.1"),
        "{r:?}"
    );
    let g = api(&gw, "/api/v1/governor");
    assert_eq!(g["counters"]["connections_refused"], 1, "{g}");
    let metrics = common::http(gw.admin, "GET", "/metrics", None, None).1;
    assert!(
        metrics.contains("limit=\"connections_per_minute\"")
            && metrics.contains("limit=\"sender_messages_per_minute\"")
            && metrics.contains("limit=\"domain_messages_per_hour\""),
        "{metrics}"
    );
}

#[test]
fn webhooks_reach_an_https_receiver_through_the_extra_trust_anchors() {
    let pki = common::fake_mx::TestPki::new(&["127.0.0.1"]);
    let (hook, hooks) = receiver(Some(pki.server.clone()));
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let gw = Gateway::start(&format!(
        "[governor]\nwebhooks = [\"{hook}\"]\n[delivery]\ntls_ca_file = \"{}\"\n",
        ca.display()
    ));
    register(&gw, "a.example.kz");
    gw.cli_ok(&["domain", "suspend", "a.example.kz", "--reason", "test"]);
    assert!(
        wait_for(20, || hooks.lock().unwrap().iter().any(|v| v["event"]
            == "suspend"
            && v["scope"]["value"] == "a.example.kz")),
        "no event over https; log:\n{}",
        gw.log_text()
    );
    let g = api(&gw, "/api/v1/governor");
    assert_eq!(g["webhooks"]["delivered"], 1, "{g}");

    // A receiver whose certificate nothing vouches for gets nothing.
    let other = common::fake_mx::TestPki::new(&["127.0.0.1"]);
    let (hook2, hooks2) = receiver(Some(other.server.clone()));
    let gw2 = Gateway::start(&format!(
        "[governor]\nwebhooks = [\"{hook2}\"]\nwebhook_attempts = 1\n[delivery]\ntls_ca_file = \"{}\"\n",
        ca.display()
    ));
    register(&gw2, "a.example.kz");
    gw2.cli_ok(&["domain", "suspend", "a.example.kz", "--reason", "test"]);
    assert!(wait_for(
        20,
        || api(&gw2, "/api/v1/governor")["webhooks"]["failed"] == 1
    ));
    assert!(hooks2.lock().unwrap().is_empty());
}

#[test]
fn a_listing_in_the_greeting_of_the_first_connection_is_recognised() {
    // Nothing configured and no connection made before: the source address
    // is learnt as the connection opens, before the refusing greeting.
    let listed = FakeMx::start(Behaviour {
        greeting: "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using \
                   zen.spamhaus.org"
            .into(),
        ..Behaviour::accept()
    });
    let gw = Gateway::start(&format!(
        "[governor]\nrejection_min = 1\nrejection_share = 0.1\nladder = [\"suspend\"]\n\
         [delivery.routes]\n\"*\" = \"{}\"\n",
        listed.addr()
    ));
    register(&gw, "a.example.kz");
    let (_, _, codes) = transaction(&gw, "eve@a.example.kz", &rcpts("g", 2));
    assert_eq!(codes, [250, 250]);
    assert!(
        wait_for(
            20,
            || api(&gw, "/api/v1/governor")["gateway_listings"][0]["address"] == "127.0.0.1"
        ),
        "{}",
        gw.log_text()
    );
    // Counted against the sender, this would suspend it at once.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        api(&gw, "/api/v1/suspensions")
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn replay_runs_a_trace_through_the_governor_and_prints_decisions_and_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ugem.toml");
    // data_dir "var" is relative to the file: inside the temporary folder.
    std::fs::write(&cfg, common::config_text("[governor]\nhistory_hours = 0\n")).unwrap();
    // A clerk writes to two correspondents for a day, then to a new address
    // every 200 ms.
    let t0: u64 = 1_772_409_600_000;
    let mut lines = vec![
        serde_json::json!({"ev": "domain", "t": t0, "domain": "agency.kz", "servers": ["192.0.2.7"]}),
    ];
    for i in 0..200u64 {
        lines.push(serde_json::json!({"ev": "message", "t": t0 + i * 300_000,
            "from": "clerk@agency.kz", "to": [format!("partner{}@ministry.kz", i % 2)]}));
    }
    let start = t0 + 200 * 300_000;
    lines.push(serde_json::json!({"ev": "mark", "t": start, "label": "compromise", "sender": "clerk@agency.kz"}));
    for i in 0..300u64 {
        lines.push(serde_json::json!({"ev": "message", "t": start + i * 200,
            "from": "clerk@agency.kz", "to": [format!("victim{i}@mail.example")],
            "replies": {format!("victim{i}@mail.example"): ["550 5.1.1 user unknown"]}}));
    }
    let trace = dir.path().join("trace.jsonl");
    let text: Vec<String> = lines.iter().map(|v| v.to_string()).collect();
    std::fs::write(&trace, text.join("\n")).unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["--config", cfg.to_str().unwrap(), "governor", "replay"])
        .arg(&trace)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r["step"].is_string())
        .map(|r| (r["step"].as_str().unwrap(), r["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [("throttle", "novelty"), ("suspend", "novelty")],
        "{stdout}"
    );
    let susp = rows.iter().find(|r| r["step"] == "suspend").unwrap();
    // Suspended at the 61st never-seen address, 12 s into the run (5 a second).
    assert_eq!(susp["t"].as_u64().unwrap() - start, 12_000, "{susp}");
    let clerk = rows
        .iter()
        .find(|r| r["summary"] == "sender" && r["sender"] == "clerk@agency.kz")
        .unwrap();
    assert_eq!(clerk["tally"]["recipients"], 200 + 30, "{clerk}");
    assert_eq!(clerk["tally"]["suspensions"], 1, "{clerk}");
    let last = rows.last().unwrap();
    assert_eq!(last["summary"], "replay");
    assert_eq!(last["events"], 502);
}
