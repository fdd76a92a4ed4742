//! Delivery end to end: the real binary relays to fake remote MXs found
//! through a DNS server on loopback, retries, bounces, forwards inbound mail
//! to the registered server, and survives SIGKILL mid-delivery.

mod common;

use std::time::Duration;

use common::dns::{Rec, TestDns};
use common::fake_mx::{Behaviour, FakeMx, TestPki, has_bare_line_ending};
use common::*;
use mail_parser::MimeHeaders;
use serde_json::Value;

const AGENCY: &str = "agency.example.kz";

/// A gateway whose MX lookups go to `dns` and reach port `mx_port`, with a
/// short retry schedule.
fn gateway(dns: &TestDns, mx_port: u16, extra: &str) -> Gateway {
    let base = format!(
        "[delivery]\nroutes = {{}}\nnameservers = {}\nmx_port = {mx_port}\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\nmax_queue_lifetime = \"1h\"\nconnect_timeout = \"3s\"\ncommand_timeout = \"10s\"\ndata_timeout = \"10s\"\ntls = \"none\"\n",
        dns.nameservers_toml()
    );
    let cfg = config_text_over(&config_text(""), &base);
    let cfg = config_text_over(&cfg, extra);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ugem.toml");
    std::fs::write(&path, cfg).unwrap();
    Gateway::start_in(dir, path)
}

/// `extra` merged over a full configuration text.
fn config_text_over(base: &str, extra: &str) -> String {
    let mut b: toml::Table = base.parse().unwrap();
    let e: toml::Table = extra.parse().unwrap();
    for (k, v) in e {
        match (b.get_mut(&k), v) {
            (Some(toml::Value::Table(bt)), toml::Value::Table(et)) => bt.extend(et),
            (_, v) => {
                b.insert(k, v);
            }
        }
    }
    toml::to_string(&b).unwrap()
}

/// Registers `AGENCY` for `server`, its inbound mail going to `inbound`.
fn register_with_inbound(gw: &Gateway, server: &str, inbound: &FakeMx) {
    gw.cli_ok(&[
        "domain",
        "add",
        AGENCY,
        "--reason",
        "test set-up",
        "--server",
        server,
        "--contact",
        "it@contact.example.kz",
        "--inbound",
        &inbound.addr().to_string(),
    ]);
}

fn dns_for(names: &[&str]) -> TestDns {
    let mut recs: Vec<(&str, Rec)> = Vec::new();
    for n in names {
        recs.push((n, Rec::Mx(10, "mx.remote.example")));
    }
    recs.push(("mx.remote.example", Rec::A("127.0.0.1".parse().unwrap())));
    recs.push(("nullmx.example", Rec::Mx(0, ".")));
    TestDns::start(&recs)
}

fn queue_counts(gw: &Gateway) -> Value {
    let (_, body) = http(
        gw.admin,
        "GET",
        "/api/v1/queue/counts",
        Some(VIEWER_TOKEN),
        None,
    );
    serde_json::from_str(&body).unwrap()
}

fn queue_list(gw: &Gateway) -> Vec<Value> {
    let (_, body) = http(gw.admin, "GET", "/api/v1/queue", Some(VIEWER_TOKEN), None);
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn send(gw: &Gateway, from: &str, to: &[&str], body: &str) -> String {
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(from, to, body);
    assert_eq!(r.code, 250, "{r:?}");
    s.expect("QUIT", 221);
    r.text().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn relays_through_mx_byte_for_byte() {
    let mx = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&["example.org"]);
    let gw = gateway(&dns, mx.addr().port(), "");
    gw.register(AGENCY, &["127.0.0.1"]);
    // As sent over SMTP (dot-stuffed) and as the message really is.
    let wire = "From: clerk@agency.example.kz\r\nSubject: hi\r\nMessage-ID: <m1@agency.example.kz>\r\n\r\n..starts with a dot\r\n...two dots\r\nend";
    let body = "From: clerk@agency.example.kz\r\nSubject: hi\r\nMessage-ID: <m1@agency.example.kz>\r\n\r\n.starts with a dot\r\n..two dots\r\nend\r\n";
    send(
        &gw,
        "clerk@agency.example.kz",
        &["a@example.org", "b@example.org"],
        wire,
    );
    assert!(
        mx.wait_for_messages(1, Duration::from_secs(20)),
        "not delivered; log:\n{}",
        gw.log_text()
    );
    let m = &mx.messages()[0];
    assert_eq!(m.sender, "clerk@agency.example.kz");
    assert_eq!(m.recipients, vec!["a@example.org", "b@example.org"]);
    assert_eq!(m.helo, "gw.test.example");
    let text = String::from_utf8(m.body.clone()).unwrap();
    assert!(text.starts_with("Received: from client.test.example ([127.0.0.1])\r\n\tby gw.test.example (ugem) with ESMTP"), "{text}");
    assert!(text.ends_with(body), "body changed on the way: {text:?}");
    // On the wire: dot-stuffed, CRLF only.
    assert!(m.wire.windows(5).any(|w| w == b"\n..st"), "not dot-stuffed");
    for raw in mx.inbound() {
        assert!(!has_bare_line_ending(&raw), "ugem emitted a bare CR or LF");
    }
    assert!(
        wait_for(10, || queue_counts(&gw)["total"] == 0),
        "message did not leave the queue"
    );
}

#[test]
fn static_route_and_connection_reuse() {
    let mx = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&[]);
    let gw = gateway(
        &dns,
        1,
        &format!("[delivery.routes]\n\"*\" = \"{}\"\n", mx.addr()),
    );
    gw.register(AGENCY, &["127.0.0.1"]);
    for i in 0..5 {
        send(
            &gw,
            "clerk@agency.example.kz",
            &[&format!("r{i}@anywhere.example")],
            "Subject: s\r\n\r\nx\r\n",
        );
    }
    assert!(mx.wait_for_messages(5, Duration::from_secs(20)));
    assert!(
        mx.connections() < 5,
        "no connection reuse: {} connections",
        mx.connections()
    );
}

#[test]
fn inbound_mail_goes_to_the_registered_server() {
    let agency_server = FakeMx::start(Behaviour::accept());
    let other = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&[AGENCY]);
    // A static "*" route must not capture a registered domain's mail.
    let gw = gateway(
        &dns,
        other.addr().port(),
        &format!("[delivery.routes]\n\"*\" = \"{}\"\n", other.addr()),
    );
    register_with_inbound(&gw, "192.0.2.10", &agency_server);
    // An internet sender, from an address that is not the agency's.
    send(
        &gw,
        "citizen@example.org",
        &["head@agency.example.kz"],
        "Subject: to the agency\r\n\r\nhello\r\n",
    );
    assert!(agency_server.wait_for_messages(1, Duration::from_secs(20)));
    assert_eq!(
        agency_server.messages()[0].recipients,
        vec!["head@agency.example.kz"]
    );
    assert!(other.messages().is_empty());
}

#[test]
fn permanent_failure_bounces_to_the_sender_with_a_dsn() {
    let remote = FakeMx::start(Behaviour::accept());
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&["example.org"]);
    let gw = gateway(&dns, remote.addr().port(), "");
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["reject-me@example.org", "fine@example.org"],
        "Subject: secret report\r\nMessage-ID: <orig@agency.example.kz>\r\n\r\nBODY-MUST-NOT-BOUNCE\r\n",
    );
    assert!(remote.wait_for_messages(1, Duration::from_secs(20)));
    assert_eq!(remote.messages()[0].recipients, vec!["fine@example.org"]);
    // The DSN goes back to the agency through its registered server.
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "no bounce; log:\n{}",
        gw.log_text()
    );
    let dsn = &agency_server.messages()[0];
    assert_eq!(dsn.sender, "", "a bounce has the null sender");
    assert_eq!(dsn.recipients, vec!["clerk@agency.example.kz"]);
    let msg = mail_parser::MessageParser::default()
        .parse(&dsn.body)
        .expect("DSN parses");
    let ct = msg.content_type().unwrap();
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    let raw = String::from_utf8_lossy(&dsn.body);
    assert!(
        raw.contains("Final-Recipient: rfc822; reject-me@example.org"),
        "{raw}"
    );
    assert!(raw.contains("Action: failed"), "{raw}");
    assert!(raw.contains("Status: 5."), "{raw}");
    assert!(
        raw.contains("Subject: secret report"),
        "original headers missing: {raw}"
    );
    assert!(
        !raw.contains("BODY-MUST-NOT-BOUNCE"),
        "original body returned: {raw}"
    );
    assert!(!raw.contains("fine@example.org\r\nAction"), "{raw}");
    assert!(wait_for(10, || queue_counts(&gw)["total"] == 0));
}

#[test]
fn an_smtputf8_bounce_has_the_global_types_and_names_the_mx_host() {
    let remote = FakeMx::start(Behaviour::accept());
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&["example.org"]);
    let gw = gateway(&dns, remote.addr().port(), "");
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    let clerk = "\u{43a}\u{43b}\u{435}\u{440}\u{43a}@agency.example.kz";
    let rcpt = "reject-\u{431}\u{44c}\u{43e}\u{440}\u{43d}@example.org";
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect(&format!("MAIL FROM:<{clerk}> SMTPUTF8"), 250);
    s.expect(&format!("RCPT TO:<{rcpt}>"), 250);
    s.expect("DATA", 354);
    s.send_raw("Subject: \u{43e}\u{442}\u{447}\u{451}\u{442}\r\n\r\nbody\r\n.\r\n".as_bytes());
    assert_eq!(s.reply().code, 250);
    s.expect("QUIT", 221);
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "no bounce; log:\n{}",
        gw.log_text()
    );
    let dsn = &agency_server.messages()[0];
    assert_eq!(dsn.recipients, vec![clerk]);
    let msg = mail_parser::MessageParser::default()
        .parse(&dsn.body)
        .expect("DSN parses");
    let types: Vec<String> = msg
        .parts
        .iter()
        .map(|p| {
            let ct = p.content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        types,
        [
            "multipart/report",
            "text/plain",
            "message/global-delivery-status",
            "message/global-headers"
        ]
    );
    let status = String::from_utf8(msg.parts[2].contents().to_vec()).unwrap();
    assert!(
        status.contains(&format!("Final-Recipient: utf-8; {rcpt}")),
        "{status}"
    );
    assert!(status.contains("Status: 5.1.1"), "{status}");
    // The MX host the connection was made to, not its address.
    assert!(
        status.contains("Remote-MTA: dns; mx.remote.example\r\n"),
        "{status}"
    );
    assert!(!status.contains("127.0.0.1"), "{status}");
    let headers = String::from_utf8(msg.parts[3].contents().to_vec()).unwrap();
    assert!(
        headers.contains("Subject: \u{43e}\u{442}\u{447}\u{451}\u{442}"),
        "{headers}"
    );
}

#[test]
fn a_bounce_from_a_route_given_as_an_address_names_its_literal_not_a_bare_address() {
    let remote = FakeMx::start(Behaviour::accept());
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&[]);
    let gw = gateway(
        &dns,
        1,
        &format!(
            "[delivery.routes]\n\"example.net\" = \"{}\"\n",
            remote.addr()
        ),
    );
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["reject-me@example.net"],
        "Subject: s\r\n\r\nx\r\n",
    );
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "no bounce; log:\n{}",
        gw.log_text()
    );
    let raw = String::from_utf8_lossy(&agency_server.messages()[0].body).to_string();
    assert!(raw.contains("Remote-MTA: dns; [127.0.0.1]\r\n"), "{raw}");
    assert!(!raw.contains("dns; 127.0.0.1"), "{raw}");
}

#[test]
fn null_mx_bounces_at_once_and_bounces_never_bounce() {
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&[]);
    let gw = gateway(&dns, 1, "");
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["x@nullmx.example"],
        "Subject: n\r\n\r\nx\r\n",
    );
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "log:\n{}",
        gw.log_text()
    );
    let raw = String::from_utf8_lossy(&agency_server.messages()[0].body).to_string();
    assert!(raw.contains("Status: 5.1.10"), "{raw}");
    // An inbound bounce (null sender) to an unreachable place is dropped, not bounced.
    send(
        &gw,
        "",
        &["postmaster@agency.example.kz"],
        "Subject: bounce\r\n\r\nx\r\n",
    );
    assert!(agency_server.wait_for_messages(2, Duration::from_secs(20)));
    assert!(wait_for(10, || queue_counts(&gw)["total"] == 0));
}

#[test]
fn temporary_failures_are_retried_until_expiry_then_bounced() {
    let remote = FakeMx::start(Behaviour::accept());
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&["example.org"]);
    let gw = gateway(
        &dns,
        remote.addr().port(),
        "[delivery]\nmax_queue_lifetime = \"4s\"\n",
    );
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["defer-me@example.org"],
        "Subject: d\r\n\r\nx\r\n",
    );
    // Deferred with a last error and growing attempts...
    assert!(
        wait_for(15, || {
            queue_list(&gw).first().is_some_and(|e| {
                e["attempts"].as_u64().unwrap_or(0) >= 2
                    && e["recipients"][0]["status"] == "deferred"
                    && e["recipients"][0]["last_error"]
                        .as_str()
                        .unwrap_or("")
                        .contains("451")
            })
        }),
        "not retried: {:?}",
        queue_list(&gw)
    );
    // ...then expired and bounced with 4.4.7 turned permanent.
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "no expiry bounce"
    );
    let raw = String::from_utf8_lossy(&agency_server.messages()[0].body).to_string();
    assert!(raw.contains("Status: 5.4.7"), "{raw}");
    assert!(wait_for(10, || queue_counts(&gw)["total"] == 0));
    assert!(remote.attempts().is_empty() || remote.messages().is_empty());
}

#[test]
fn dropped_connection_in_data_is_retried() {
    let remote = FakeMx::start(Behaviour::drop_in_data());
    let dns = dns_for(&["example.org"]);
    let gw = gateway(&dns, remote.addr().port(), "");
    gw.register(AGENCY, &["127.0.0.1"]);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["a@example.org"],
        "Subject: d\r\n\r\nline1\r\nline2\r\n",
    );
    assert!(wait_for(15, || queue_list(&gw).first().is_some_and(|e| e
        ["attempts"]
        .as_u64()
        .unwrap_or(0)
        >= 2)));
    let e = &queue_list(&gw)[0];
    assert_eq!(e["recipients"][0]["status"], "deferred");
    assert!(remote.connections() >= 2);
}

/// RCPT commands the remote has seen (connections are reused, so count these).
fn rcpts(mx: &FakeMx) -> usize {
    mx.verbs().iter().filter(|v| v.as_str() == "RCPT").count()
}

#[test]
fn held_mail_is_not_sent_until_released() {
    let remote = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&["example.org"]);
    let gw = gateway(
        &dns,
        remote.addr().port(),
        "[delivery]\nmin_backoff = \"1s\"\nmax_backoff = \"1s\"\n",
    );
    gw.register(AGENCY, &["127.0.0.1"]);
    // A recipient the remote defers keeps the message in the queue.
    let id = send(
        &gw,
        "clerk@agency.example.kz",
        &["defer-me@example.org"],
        "Subject: h\r\n\r\nx\r\n",
    );
    assert!(wait_for(10, || rcpts(&remote) >= 1));
    gw.cli_ok(&["queue", "hold", &id, "--reason", "inspect"]);
    // Let an attempt in flight (if any) finish, then count.
    std::thread::sleep(Duration::from_millis(1500));
    let before = rcpts(&remote);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rcpts(&remote), before, "held mail was tried");
    gw.cli_ok(&["queue", "release", &id]);
    assert!(
        wait_for(10, || rcpts(&remote) > before),
        "released mail not tried"
    );
    // A suspended domain's queued mail is held the same way.
    gw.cli_ok(&["domain", "suspend", AGENCY, "--reason", "test"]);
    std::thread::sleep(Duration::from_millis(1500));
    let before = rcpts(&remote);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rcpts(&remote), before, "suspended domain's mail was tried");
    let held = gw.cli_ok(&["--json", "queue", "list", "--held"]);
    assert!(held.contains(&id), "{held}");
}

/// Issue #13, item 7: the scheduler holds a message whose scope is
/// suspended; it used to keep its 30-minute lease (and its old backoff), so
/// after the restore it sat "released" but undelivered, and `queue retry`
/// answered ok and changed nothing. Released mail is due at once.
#[test]
fn mail_the_scheduler_held_is_delivered_within_seconds_of_restore() {
    // The remote is down at first: the messages are deferred for an hour.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dns = dns_for(&["example.org"]);
    let gw = gateway(
        &dns,
        port,
        "[delivery]\nmin_backoff = \"1h\"\nmax_backoff = \"2h\"\n",
    );
    gw.register(AGENCY, &["127.0.0.1"]);
    let a = send(
        &gw,
        "clerk@agency.example.kz",
        &["a@example.org"],
        "Subject: a\r\n\r\na\r\n",
    );
    let b = send(
        &gw,
        "clerk@agency.example.kz",
        &["b@example.org"],
        "Subject: b\r\n\r\nb\r\n",
    );
    assert!(
        wait_for(15, || queue_list(&gw).iter().all(|e| e["attempts"] == 1)),
        "{:#?}",
        queue_list(&gw)
    );
    let remote = FakeMx::start_at(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Behaviour::accept(),
    );

    // Suspended: staff hold the domain's mail; released by hand while the
    // suspension lasts, the scheduler takes it at once and holds it again.
    gw.cli_ok(&["domain", "suspend", AGENCY, "--reason", "spam run"]);
    gw.cli_ok(&["queue", "release", &a]);
    assert!(
        wait_for(10, || gw.log_text().lines().any(|l| l
            .contains("holding mail of a suspended scope")
            && l.contains(&a))),
        "the scheduler did not take the released message at once:\n{}",
        gw.log_text()
    );
    assert!(wait_for(5, || {
        let env = queue_list(&gw).into_iter().find(|e| e["id"] == a.as_str());
        env.is_some_and(|e| e["held"].is_string() && e["leased_until_ms"].is_null())
    }));
    // `queue retry` of held mail says so instead of answering ok.
    let out = gw.cli(ADMIN_TOKEN, &["queue", "retry", &a]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is held") && err.contains("release it first"),
        "{err}"
    );
    assert!(remote.messages().is_empty());

    // Restored: both are delivered within seconds, not in 30 minutes.
    gw.cli_ok(&["domain", "restore", AGENCY, "--reason", "cleaned up"]);
    assert!(
        remote.wait_for_messages(2, Duration::from_secs(10)),
        "held mail not delivered after the restore; queue: {:#?}",
        queue_list(&gw)
    );
    let mut got: Vec<String> = remote
        .messages()
        .iter()
        .flat_map(|m| m.recipients.clone())
        .collect();
    got.sort();
    assert_eq!(got, ["a@example.org", "b@example.org"]);
    assert!(wait_for(5, || queue_list(&gw).is_empty()));
    let _ = b;
}

/// `queue retry ID` makes deferred mail due now.
#[test]
fn queue_retry_makes_deferred_mail_due_now() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dns = dns_for(&["example.org"]);
    let gw = gateway(
        &dns,
        port,
        "[delivery]\nmin_backoff = \"1h\"\nmax_backoff = \"2h\"\n",
    );
    gw.register(AGENCY, &["127.0.0.1"]);
    let id = send(
        &gw,
        "clerk@agency.example.kz",
        &["a@example.org"],
        "Subject: a\r\n\r\na\r\n",
    );
    assert!(wait_for(15, || queue_list(&gw)
        .iter()
        .all(|e| e["attempts"] == 1)));
    let remote = FakeMx::start_at(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Behaviour::accept(),
    );
    let out = gw.cli_ok(&["--json", "queue", "retry", &id]);
    assert!(out.contains("\"due\""), "{out}");
    assert!(
        remote.wait_for_messages(1, Duration::from_secs(10)),
        "retried mail not delivered; queue: {:#?}",
        queue_list(&gw)
    );
}

#[test]
fn sigkill_during_delivery_then_delivered_after_restart() {
    let slow = FakeMx::start(Behaviour::slow(Duration::from_millis(1500)));
    let dns = dns_for(&["example.org"]);
    let mut gw = gateway(&dns, slow.addr().port(), "");
    gw.register(AGENCY, &["127.0.0.1"]);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["a@example.org"],
        "Subject: k\r\n\r\nsurvive\r\n",
    );
    // Wait until the delivery is under way, then kill the gateway.
    assert!(wait_for(10, || slow.connections() >= 1));
    gw.kill();
    let before = slow.messages().len();
    gw.spawn();
    assert!(
        slow.wait_for_messages(before.max(1), Duration::from_secs(40)),
        "lost after SIGKILL"
    );
    assert!(wait_for(20, || queue_counts(&gw)["total"] == 0));
    let n = slow.messages().len();
    assert!((1..=2).contains(&n), "{n} copies (one duplicate at most)");
}

#[test]
fn optional_delay_warning_is_sent_once() {
    let remote = FakeMx::start(Behaviour::accept());
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&["example.org"]);
    let gw = gateway(
        &dns,
        remote.addr().port(),
        "[delivery]\ndelay_warning = \"2s\"\n",
    );
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["defer-me@example.org"],
        "Subject: slow\r\n\r\nx\r\n",
    );
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "no delay warning"
    );
    let raw = String::from_utf8_lossy(&agency_server.messages()[0].body).to_string();
    assert!(raw.contains("Action: delayed"), "{raw}");
    assert!(raw.contains("Status: 4."), "{raw}");
    // Later attempts do not warn again.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(agency_server.messages().len(), 1);
}

#[test]
fn tls_policy_per_destination_with_a_private_ca() {
    // tls.example requires a verified certificate, which only the CA in
    // `tls_ca_file` can vouch for; must.example requires encryption from a
    // server that offers none; plain.example, behind the same next hop,
    // follows the default ("none").
    let pki = TestPki::new(&["mx.tls.example"]);
    let secure = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let plain = FakeMx::start(Behaviour::accept());
    let dns = TestDns::start(&[("mx.tls.example", Rec::A("127.0.0.1".parse().unwrap()))]);
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("partners-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let gw = gateway(
        &dns,
        25,
        &format!(
            "[delivery]\ntls = \"none\"\ntls_ca_file = \"{}\"\n\
             [delivery.routes]\n\"tls.example\" = \"mx.tls.example:{}\"\n\
             \"must.example\" = \"{plain}\"\n\"plain.example\" = \"{plain}\"\n\
             [delivery.tls_policy]\n\"tls.example\" = \"verify\"\n\"must.example\" = \"encrypt\"\n",
            ca.display(),
            secure.addr().port(),
            plain = plain.addr(),
        ),
    );
    gw.register(AGENCY, &["127.0.0.1"]);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["a@tls.example", "b@must.example", "c@plain.example"],
        "Subject: policy\r\n\r\nhello\r\n",
    );
    assert!(
        secure.wait_for_messages(1, Duration::from_secs(20)),
        "verified delivery failed; log:\n{}",
        gw.log_text()
    );
    let m = &secure.messages()[0];
    assert!(m.tls, "delivered without TLS");
    assert_eq!(m.recipients, vec!["a@tls.example"]);
    assert!(plain.wait_for_messages(1, Duration::from_secs(20)));
    let m = &plain.messages()[0];
    assert!(!m.tls);
    assert_eq!(
        m.recipients,
        vec!["c@plain.example"],
        "must.example went out in plaintext"
    );
    // must.example waits in the queue, saying why.
    assert!(
        wait_for(20, || {
            queue_list(&gw).iter().any(|e| {
                e["recipients"].as_array().unwrap().iter().any(|r| {
                    r["address"] == "b@must.example"
                        && r["status"] == "deferred"
                        && r["last_error"]
                            .as_str()
                            .is_some_and(|t| t.to_ascii_lowercase().contains("tls"))
                })
            })
        }),
        "{:?}",
        queue_list(&gw)
    );
    assert_eq!(plain.messages().len(), 1);

    // Without the CA file the same certificate does not verify: nothing
    // goes to tls.example, and the queue says why.
    let gw2 = gateway(
        &dns,
        25,
        &format!(
            "[delivery]
tls = \"none\"
[delivery.routes]
\"tls.example\" = \"mx.tls.example:{}\"
             [delivery.tls_policy]
\"tls.example\" = \"verify\"
",
            secure.addr().port(),
        ),
    );
    gw2.register(AGENCY, &["127.0.0.1"]);
    send(
        &gw2,
        "clerk@agency.example.kz",
        &["d@tls.example"],
        "Subject: x\r\n\r\nx\r\n",
    );
    assert!(
        wait_for(20, || {
            queue_list(&gw2).iter().any(|e| {
                e["recipients"][0]["status"] == "deferred"
                    && e["recipients"][0]["last_error"]
                        .as_str()
                        .is_some_and(|t| t.contains("certificate"))
            })
        }),
        "{:?}",
        queue_list(&gw2)
    );
    assert_eq!(secure.messages().len(), 1);
}

#[test]
fn mta_sts_enforce_requires_verified_tls_to_a_listed_mx() {
    let pki = TestPki::new(&[
        "mx.sts.example",
        "mta-sts.sts.example",
        "mta-sts.wrong.example",
        "mta-sts.trial.example",
    ]);
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let policies = common::policy_server::PolicyServer::start(
        pki.server.clone(),
        Duration::ZERO,
        vec![
            (
                "mta-sts.sts.example",
                "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.example\r\nmax_age: 86400\r\n"
                    .into(),
            ),
            (
                "mta-sts.wrong.example",
                "version: STSv1\r\nmode: enforce\r\nmx: *.elsewhere.example\r\nmax_age: 86400\r\n"
                    .into(),
            ),
            (
                "mta-sts.trial.example",
                "version: STSv1\r\nmode: testing\r\nmx: *.elsewhere.example\r\nmax_age: 86400\r\n"
                    .into(),
            ),
        ],
    );
    let lo = || Rec::A("127.0.0.1".parse().unwrap());
    let dns = TestDns::start(&[
        ("sts.example", Rec::Mx(10, "mx.sts.example")),
        ("_mta-sts.sts.example", Rec::Txt("v=STSv1; id=20261129;")),
        ("mta-sts.sts.example", lo()),
        ("wrong.example", Rec::Mx(10, "mx.sts.example")),
        ("_mta-sts.wrong.example", Rec::Txt("v=STSv1; id=1;")),
        ("mta-sts.wrong.example", lo()),
        ("plain.example", Rec::Mx(10, "mx.sts.example")),
        ("trial.example", Rec::Mx(10, "mx.sts.example")),
        ("_mta-sts.trial.example", Rec::Txt("v=STSv1; id=7;")),
        ("mta-sts.trial.example", lo()),
        ("mx.sts.example", lo()),
    ]);
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let gw = gateway(
        &dns,
        mx.addr().port(),
        &format!(
            "[delivery]\ntls_ca_file = \"{}\"\nmta_sts_port = {}\n",
            ca.display(),
            policies.addr.port()
        ),
    );
    gw.register(AGENCY, &["127.0.0.1"]);
    send(
        &gw,
        "clerk@agency.example.kz",
        &[
            "a@sts.example",
            "b@wrong.example",
            "c@plain.example",
            "e@trial.example",
        ],
        "Subject: sts\r\n\r\nhello\r\n",
    );
    assert!(
        mx.wait_for_messages(3, Duration::from_secs(20)),
        "log:\n{}",
        gw.log_text()
    );
    let got = mx.messages();
    let sts = got
        .iter()
        .find(|m| m.recipients == ["a@sts.example"])
        .expect("sts.example delivered");
    // The gateway's default here is tls = "none": only the policy made it TLS.
    assert!(sts.tls, "sts.example went out without TLS");
    let plain = got
        .iter()
        .find(|m| m.recipients == ["c@plain.example"])
        .expect("plain.example delivered");
    assert!(!plain.tls);
    // testing mode: the unlisted MX is only logged, the mail goes as usual.
    let trial = got
        .iter()
        .find(|m| m.recipients == ["e@trial.example"])
        .expect("trial.example delivered (testing mode)");
    assert!(!trial.tls);
    assert!(
        gw.log_text()
            .contains("MX hosts outside the domain's MTA-STS policy")
    );
    let metrics = http(gw.admin, "GET", "/metrics", None, None).1;
    assert!(
        metrics.contains("ugem_mta_sts_total{event=\"fetched\"} 3")
            && metrics.contains("ugem_mta_sts_total{event=\"enforced_refusal\"}"),
        "{metrics}"
    );
    // wrong.example's policy lists no MX it has: kept, with the reason.
    assert!(
        wait_for(20, || queue_list(&gw).iter().any(|e| {
            e["recipients"].as_array().unwrap().iter().any(|r| {
                r["address"] == "b@wrong.example"
                    && r["status"] == "deferred"
                    && r["last_error"]
                        .as_str()
                        .is_some_and(|t| t.contains("MTA-STS policy of wrong.example"))
            })
        })),
        "{:?}",
        queue_list(&gw)
    );
    assert!(
        got.iter()
            .all(|m| !m.recipients.iter().any(|r| r == "b@wrong.example"))
    );
    assert!(gw.log_text().contains("MTA-STS policy fetched"));

    // Staff see the policies in force.
    let list = gw.cli_ok(&["mta-sts", "list"]);
    assert!(
        list.contains("sts.example") && list.contains("enforce"),
        "{list}"
    );
    let v: Value = serde_json::from_str(&gw.cli_ok(&["--json", "mta-sts", "list"])).unwrap();
    let trial = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["domain"] == "trial.example")
        .expect("trial.example listed");
    assert_eq!(trial["mode"], "testing");
    assert_eq!(trial["mx"][0], "*.elsewhere.example");

    // After a restart with the policy host out of reach, the cached policy
    // (kept in the store) still governs: TLS again, though the default is none.
    let mut gw = gw;
    gw.terminate();
    let cfg = std::fs::read_to_string(&gw.config).unwrap().replace(
        &format!("mta_sts_port = {}", policies.addr.port()),
        "mta_sts_port = 9",
    );
    assert!(cfg.contains("mta_sts_port = 9"));
    std::fs::write(&gw.config, cfg).unwrap();
    gw.spawn();
    send(
        &gw,
        "clerk@agency.example.kz",
        &["d@sts.example"],
        "Subject: again\r\n\r\nhello\r\n",
    );
    assert!(
        mx.wait_for_messages(4, Duration::from_secs(20)),
        "log:\n{}",
        gw.log_text()
    );
    let again = mx
        .messages()
        .into_iter()
        .find(|m| m.recipients == ["d@sts.example"])
        .unwrap();
    assert!(
        again.tls,
        "the stored policy was not applied after the restart"
    );
}

#[test]
fn inbound_unknown_recipients_are_refused_at_rcpt_not_bounced() {
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&[]);
    let gw = gateway(&dns, 25, "");
    register_with_inbound(&gw, "192.0.2.10", &agency_server);
    // An internet sender (127.0.0.1 is not the agency's server).
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO mx.sender.example", 250);
    s.expect("MAIL FROM:<someone@sender.example>", 250);
    let r = s.expect("RCPT TO:<reject-nobody@agency.example.kz>", 550);
    assert!(
        r.text().starts_with(
            "5.1.1 <reject-nobody@agency.example.kz>: unknown at agency.example.kz's mail server"
        ) && r.text().contains("user unknown"),
        "{r:?}"
    );
    s.expect("RCPT TO:<minister@agency.example.kz>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"Subject: hello\r\n\r\nhello\r\n.\r\n");
    assert_eq!(s.reply().code, 250);
    s.expect("QUIT", 221);
    // Only the real recipient's message reached the server; the probes
    // used the null sender and sent no DATA.
    assert!(agency_server.wait_for_messages(1, Duration::from_secs(20)));
    let got = agency_server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].recipients, vec!["minister@agency.example.kz"]);
    let verbs = agency_server.verbs();
    assert!(
        agency_server
            .commands()
            .iter()
            .any(|(_, c)| c == "MAIL FROM:<>"),
        "{verbs:?}"
    );
    // The answer is remembered: no new probe for the same address.
    let before = agency_server.connections();
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO mx.sender.example", 250);
    s.expect("MAIL FROM:<other@sender.example>", 250);
    s.expect("RCPT TO:<Reject-Nobody@agency.example.kz>", 550);
    s.expect("QUIT", 221);
    assert_eq!(agency_server.connections(), before);
    // Staff drop the cached answer (a mailbox was just created): asked again.
    let out = gw.cli_ok(&[
        "--json",
        "recipient",
        "forget",
        "reject-nobody@agency.example.kz",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["forgotten"], true, "{out}");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO mx.sender.example", 250);
    s.expect("MAIL FROM:<other@sender.example>", 250);
    s.expect("RCPT TO:<reject-nobody@agency.example.kz>", 550);
    s.expect("QUIT", 221);
    assert_eq!(agency_server.connections(), before + 1);
    assert!(gw.cli_ok(&["audit"]).contains("verification.forget"));
    // Nothing was bounced to the (possibly forged) internet sender.
    assert!(
        wait_for(10, || queue_counts(&gw)["total"] == 0),
        "{:?}",
        queue_list(&gw)
    );
    let metrics = http(gw.admin, "GET", "/metrics", None, None).1;
    for line in [
        "ugem_recipient_verifications_total{result=\"unknown\"} 2",
        "ugem_recipient_verifications_total{result=\"exists\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }

    // A server that does not answer leaves the recipient accepted and
    // queued; with verify_unsettled = "defer", deferred (450) instead.
    for (extra, code) in [("", 250), ("[smtp]\nverify_unsettled = \"defer\"\n", 450)] {
        let dns2 = dns_for(&[]);
        let gw2 = gateway(&dns2, 25, extra);
        gw2.cli_ok(&[
            "domain",
            "add",
            AGENCY,
            "--reason",
            "test set-up",
            "--server",
            "192.0.2.10",
            "--contact",
            "it@contact.example.kz",
            "--inbound",
            "127.0.0.1:9",
        ]);
        let mut s = Smtp::greeted(gw2.smtp);
        s.expect("EHLO mx.sender.example", 250);
        s.expect("MAIL FROM:<someone@sender.example>", 250);
        let r = s.expect("RCPT TO:<reject-nobody@agency.example.kz>", code);
        if code == 450 {
            assert!(r.text().starts_with("4.1.1"), "{r:?}");
        }
        s.expect("QUIT", 221);
    }
}

#[test]
fn concurrent_rcpts_to_one_address_probe_the_server_once() {
    // A slow agency server: every session's RCPT arrives during the first probe.
    let agency_server = FakeMx::start(Behaviour::slow(Duration::from_millis(400)));
    let dns = dns_for(&[]);
    let gw = gateway(&dns, 25, "");
    register_with_inbound(&gw, "192.0.2.10", &agency_server);
    let smtp = gw.smtp;
    let sessions: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = Smtp::greeted(smtp);
                s.expect("EHLO mx.sender.example", 250);
                s.expect(&format!("MAIL FROM:<s{i}@sender.example>"), 250);
                let r = s.cmd("RCPT TO:<reject-ghost@agency.example.kz>");
                s.cmd("QUIT");
                r.code
            })
        })
        .collect();
    let codes: Vec<u16> = sessions.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(codes, [550; 4]);
    assert_eq!(agency_server.connections(), 1, "one probe for the burst");
}

#[test]
fn disconnecting_can_bounce_queued_mail_to_the_last_registered_server() {
    // The agency's MX would name the gateway itself: gateway-generated mail
    // must use the server it had registered, not the MX (here: no route at all).
    let agency_server = FakeMx::start(Behaviour::accept());
    let remote = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&[]);
    let gw = gateway(
        &dns,
        1,
        &format!(
            "[delivery.routes]\n\"example.org\" = \"{}\"\n[registration]\ndisconnect_queued = \"bounce\"\n",
            remote.addr()
        ),
    );
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["defer-me@example.org"],
        "Subject: q\r\n\r\nx\r\n",
    );
    assert!(wait_for(10, || rcpts(&remote) >= 1));
    gw.cli_ok(&[
        "domain",
        "disconnect",
        AGENCY,
        "--reason",
        "left the sector",
    ]);
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "the bounce did not reach the agency's server; queue: {:?}",
        queue_list(&gw)
    );
    let dsn = agency_server
        .messages()
        .into_iter()
        .find(|m| m.sender.is_empty())
        .expect("a DSN");
    assert_eq!(dsn.recipients, vec!["clerk@agency.example.kz"]);
    let raw = String::from_utf8_lossy(&dsn.body).to_string();
    assert!(
        raw.contains("Status: 5.7.1") && raw.contains("disconnected"),
        "{raw}"
    );
}

#[test]
fn an_mx_that_is_the_gateway_itself_bounces_as_a_loop() {
    // loop.example's MX names the gateway (server.hostname = gw.test.example);
    // a fake MX stands where that name points, and must never be used.
    let me = FakeMx::start(Behaviour::accept());
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = TestDns::start(&[
        ("loop.example", Rec::Mx(10, "gw.test.example")),
        ("gw.test.example", Rec::A("127.0.0.1".parse().unwrap())),
    ]);
    let gw = gateway(&dns, me.addr().port(), "");
    register_with_inbound(&gw, "127.0.0.1", &agency_server);
    send(
        &gw,
        "clerk@agency.example.kz",
        &["someone@loop.example"],
        "Subject: loop\r\n\r\nx\r\n",
    );
    assert!(
        agency_server.wait_for_messages(1, Duration::from_secs(20)),
        "no bounce; log:\n{}",
        gw.log_text()
    );
    let raw = String::from_utf8_lossy(&agency_server.messages()[0].body).to_string();
    assert!(
        raw.contains("Status: 5.4.6") && raw.contains("loops back to this gateway"),
        "{raw}"
    );
    assert_eq!(me.connections(), 0, "the gateway connected to itself");
}

#[test]
fn a_dictionary_attack_is_deferred_after_the_probe_rate() {
    let agency_server = FakeMx::start(Behaviour::accept());
    let dns = dns_for(&[]);
    let gw = gateway(&dns, 25, "[smtp]\nverify_probes_per_minute = 2\n");
    register_with_inbound(&gw, "192.0.2.10", &agency_server);
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO mx.sender.example", 250);
    s.expect("MAIL FROM:<guess@sender.example>", 250);
    s.expect("RCPT TO:<reject-a@agency.example.kz>", 550);
    s.expect("RCPT TO:<reject-b@agency.example.kz>", 550);
    // A third new address from this client would be a third probe this minute.
    let r = s.expect("RCPT TO:<reject-c@agency.example.kz>", 450);
    assert!(
        r.text()
            .starts_with("4.7.1 too many recipients to verify from 127.0.0.1"),
        "{r:?}"
    );
    // Answers already known cost nothing.
    s.expect("RCPT TO:<reject-a@agency.example.kz>", 550);
    s.expect("QUIT", 221);
    assert_eq!(agency_server.connections(), 2);
}

#[test]
fn an_unverified_certificate_under_opportunistic_tls_is_said_once_in_words() {
    // A private CA the gateway does not trust: "may" encrypts anyway, and
    // says so once (per server and day) at INFO, in words.
    let pki = TestPki::new(&["mx.tls.example"]);
    let secure = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let dns = TestDns::start(&[("mx.tls.example", Rec::A("127.0.0.1".parse().unwrap()))]);
    let gw = gateway(
        &dns,
        25,
        &format!(
            "[delivery]\ntls = \"may\"\n[delivery.routes]\n\"tls.example\" = \"mx.tls.example:{}\"\n",
            secure.addr().port(),
        ),
    );
    gw.register(AGENCY, &["127.0.0.1"]);
    for i in 0..2 {
        send(
            &gw,
            "clerk@agency.example.kz",
            &[&format!("r{i}@tls.example")],
            "Subject: may\r\n\r\nhello\r\n",
        );
        assert!(
            secure.wait_for_messages(i + 1, Duration::from_secs(20)),
            "{}",
            gw.log_text()
        );
    }
    assert!(secure.messages().iter().all(|m| m.tls));
    let log = gw.log_text();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS certificate of this server not verified"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains("INFO") && said[0].contains("not signed by a trusted CA"),
        "{}",
        said[0]
    );
    assert!(!log.contains("OtherError"), "{log}");
}
