//! The blocklist watch, end to end: the real binary looks its gateway
//! address up on lists served by the loopback DNS server; a listing and a
//! delisting each reach the postmaster (through the gateway's own queue, to
//! a fake MX), the webhooks and `ugem_gateway_listed{address,zone}`, show in
//! `ugem governor`; a refused query is no listing; a restart does not alarm
//! again about a listing it already knew.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::dns::{Rec, TestDns};
use common::fake_mx::{Behaviour, FakeMx};
use common::{ADMIN_TOKEN, Gateway, http, read_http_body, wait_for};
use serde_json::Value;

/// The DNSBL test entry every list carries (RFC 5782 §5).
const ADDRESS: &str = "127.0.0.2";
const ZEN: &str = "2.0.0.127.zen.spamhaus.org";
const SPAMCOP: &str = "2.0.0.127.bl.spamcop.net";

/// A tiny HTTP server that records JSON request bodies and answers 200.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if let Some(v) = read_http_body(&mut s).and_then(|b| serde_json::from_slice(&b).ok()) {
                g.lock().unwrap().push(v);
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn api(gw: &Gateway, path: &str) -> Value {
    let (status, body) = http(gw.admin, "GET", path, Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of `ugem_gateway_listed` for `zone`, if the gateway has one.
fn listed_metric(gw: &Gateway, zone: &str) -> Option<String> {
    let text = http(gw.admin, "GET", "/metrics", None, None).1;
    let want = format!("address=\"{ADDRESS}\"");
    let zone = format!("zone=\"{zone}\"");
    text.lines()
        .find(|l| l.starts_with("ugem_gateway_listed{") && l.contains(&want) && l.contains(&zone))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string)
}

/// The governor status's look-up of [`ADDRESS`] on `zone`.
fn checked(gw: &Gateway, zone: &str) -> Value {
    api(gw, "/api/v1/governor")["blocklists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["zone"] == zone && c["address"] == ADDRESS)
        .cloned()
        .unwrap_or(Value::Null)
}

fn subjects(mx: &FakeMx) -> Vec<String> {
    mx.messages()
        .iter()
        .map(|m| {
            let msg = mail_parser::MessageParser::default()
                .parse(&m.body)
                .unwrap();
            msg.subject().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn a_listing_and_its_end_alarm_once_each_and_a_refused_query_is_no_listing() {
    let dns = TestDns::start(&[
        (ZEN, Rec::A("127.0.0.2".parse().unwrap())),
        (
            ZEN,
            Rec::Txt("https://check.spamhaus.org/sbl/query/SBL0001"),
        ),
        // Spamhaus's answer to a query through a public resolver, on a
        // list that does not even use it: still a refusal, not a listing.
        (SPAMCOP, Rec::A("127.255.255.254".parse().unwrap())),
    ]);
    let postmaster = FakeMx::start(Behaviour::accept());
    let (hook, hooks) = webhook_receiver();
    let mut gw = Gateway::start(&format!(
        "[registration]\ngateway_addresses = [\"{ADDRESS}\", \"2001:db8::25\"]\n\
         [dnsbl]\nenabled = true\nzones = [\"zen.spamhaus.org\", \"bl.spamcop.net\"]\ninterval = \"1s\"\n\
         [governor]\nwebhooks = [\"{hook}\"]\n\
         [delivery]\nnameservers = {}\nmin_backoff = \"1s\"\n\
         [delivery.routes]\n\"gw.test.example\" = \"{}\"\n",
        dns.nameservers_toml(),
        postmaster.addr()
    ));

    // Listed: the postmaster is told, with what the answer means and the
    // list's reason (and, apart, that another list refuses the queries)...
    assert!(
        postmaster.wait_for_messages(2, Duration::from_secs(30)),
        "no listing alarm; log:\n{}",
        gw.log_text()
    );
    let raw = postmaster
        .messages()
        .iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains("is listed on"))
        .expect("the listing alarm")
        .body
        .clone();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Mail gateway: address 127.0.0.2 is listed on zen.spamhaus.org")
    );
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("127.0.0.2 (SBL: "), "{text}");
    assert!(text.contains("SBL0001"), "{text}");
    assert!(text.contains("https://check.spamhaus.org/"), "{text}");
    // ...the webhooks get the event...
    assert!(
        wait_for(15, || hooks.lock().unwrap().iter().any(|v| {
            v["event"] == "gateway_blocklisted"
                && v["address"] == ADDRESS
                && v["zone"] == "zen.spamhaus.org"
                && v["code"] == "127.0.0.2"
        })),
        "{:?}",
        hooks.lock().unwrap()
    );
    // ...the metric reads 1...
    assert_eq!(listed_metric(&gw, "zen.spamhaus.org").as_deref(), Some("1"));
    // ...and staff see it, with the refused query beside it.
    let zen = checked(&gw, "zen.spamhaus.org");
    assert_eq!(zen["state"], "listed", "{zen}");
    assert_eq!(zen["code"], "127.0.0.2", "{zen}");
    assert!(zen["listed_since"].is_string(), "{zen}");
    assert!(wait_for(10, || checked(&gw, "bl.spamcop.net").is_object()));
    let spamcop = checked(&gw, "bl.spamcop.net");
    assert_eq!(spamcop["state"], "query refused", "{spamcop}");
    assert!(
        spamcop["meaning"]
            .as_str()
            .unwrap()
            .contains("public or open resolver"),
        "{spamcop}"
    );
    // The IPv6 address is looked up by its nibbles, and is not listed.
    let v6 = || -> Vec<Value> {
        api(&gw, "/api/v1/governor")["blocklists"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["address"] == "2001:db8::25")
            .cloned()
            .collect()
    };
    assert!(wait_for(10, || v6().len() == 2), "{:?}", v6());
    assert!(
        v6().iter().all(|c| c["state"] == "not listed"),
        "{:?}",
        v6()
    );
    let text = http(gw.admin, "GET", "/metrics", None, None).1;
    let v6_zero = text
        .lines()
        .filter(|l| l.contains("address=\"2001:db8::25\"") && l.ends_with(" 0"))
        .count();
    assert_eq!(v6_zero, 2, "{text}");
    let shown = gw.cli_ok(&["governor"]);
    assert!(shown.contains("zen.spamhaus.org"), "{shown}");
    assert!(shown.contains("query refused"), "{shown}");
    // The refusal is no listing: no metric of 1, no listing alarm, no event.
    assert_ne!(listed_metric(&gw, "bl.spamcop.net").as_deref(), Some("1"));

    // A restart while still listed: the watch runs again (a fresh look-up
    // after the restart) and does not alarm again.
    let before = checked(&gw, "zen.spamhaus.org")["checked_at"].clone();
    assert_eq!(gw.terminate().code(), Some(0));
    gw.spawn();
    assert!(wait_for(20, || {
        let c = checked(&gw, "zen.spamhaus.org");
        c["state"] == "listed" && c["checked_at"] != before
    }));
    assert_eq!(listed_metric(&gw, "zen.spamhaus.org").as_deref(), Some("1"));
    // Rounds every second: three more after the restart, still one alarm
    // (and one refusal notice: a claim in the store, once a day per list).
    std::thread::sleep(Duration::from_secs(3));
    let mut seen = subjects(&postmaster);
    seen.sort();
    assert_eq!(
        seen,
        [
            "Mail gateway: address 127.0.0.2 is listed on zen.spamhaus.org",
            "Mail gateway: blocklist bl.spamcop.net refuses the gateway's queries",
        ]
    );
    assert_eq!(
        hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["event"] == "gateway_blocklisted")
            .count(),
        1
    );

    // Delisted: one more alarm, an event, the metric 0.
    dns.set(ZEN, &[]);
    assert!(
        postmaster.wait_for_messages(3, Duration::from_secs(30)),
        "no delisting alarm; log:\n{}",
        gw.log_text()
    );
    assert_eq!(
        subjects(&postmaster)[2],
        "Mail gateway: address 127.0.0.2 is no longer listed on zen.spamhaus.org"
    );
    assert!(wait_for(15, || hooks.lock().unwrap().iter().any(|v| {
        v["event"] == "gateway_delisted"
            && v["zone"] == "zen.spamhaus.org"
            && v["delisted_at"].is_string()
    })));
    assert_eq!(listed_metric(&gw, "zen.spamhaus.org").as_deref(), Some("0"));
    assert_eq!(checked(&gw, "zen.spamhaus.org")["state"], "not listed");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        subjects(&postmaster).len(),
        3,
        "{:?}",
        subjects(&postmaster)
    );
}
