//! Limits and detection across two gateway nodes sharing one registry in a
//! real PostgreSQL server (issue #19, item 3). One compromised sender floods
//! never-seen recipients, its messages alternating between the two nodes;
//! the same flood on one node (same configuration, its own database) and on
//! two nodes that do not exchange (`store.governor_sync = "0s"`) give the
//! figures to compare. The tolerance asserted, and printed with the
//! measurements: the split flood accepts at most what one node accepts plus
//! what the flood sends in one exchange interval and the link's latency,
//! plus one message of recipients. With PostgreSQL down, each node
//! governs alone.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::postgres::TestPostgres;
use common::{ADMIN_TOKEN, Gateway, Smtp, http};

/// Recipients per message.
const PER_MESSAGE: usize = 3;

/// A message every 25 ms at most (up to 120 RCPT/s): the flood spans
/// several exchange intervals, as a real one does (the SMTP client here
/// answers faster than an agency's server relays).
const PACE: Duration = Duration::from_millis(25);

/// The rate test's pace: 60 RCPT/s at most.
const RATE_PACE: Duration = Duration::from_millis(50);

/// The governor as in tests/governor.rs: `history_hours = 0` makes every
/// sender's novelty floors (30 never-seen recipients in 5 minutes) apply
/// from its first message, as they do to a clerk with weeks of history.
const GOVERNOR: &str = "[governor]\nhistory_hours = 0\n";

fn node_config(pg: &TestPostgres, db: &str, extra: &str) -> String {
    format!(
        "[store]\nurl = \"{}\"\npassword_file = \"{}\"\n{extra}",
        pg.url(db),
        pg.password_file().display()
    )
}

fn api(gw: &Gateway, path: &str) -> Value {
    let (status, body) = http(gw.admin, "GET", path, Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until `node` relays for `sender` (the registration made on
/// another node has reached it).
fn wait_registered(node: &Gateway, sender: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = Smtp::greeted(node.smtp);
        s.expect("EHLO client.test.example", 250);
        // MAIL is accepted from anyone; RCPT tells whether it may relay.
        if s.cmd(&format!("MAIL FROM:<{sender}>")).code == 250
            && s.cmd("RCPT TO:<partner@far.example>").code == 250
        {
            return;
        }
        assert!(Instant::now() < deadline, "{}", node.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one flood did.
#[derive(Debug, Default)]
struct Flood {
    /// Recipients accepted before the first deferral.
    before_deferral: usize,
    /// Recipients accepted in all.
    accepted: usize,
    /// Recipients deferred before MAIL was refused as suspended.
    deferred: usize,
    /// Messages tried until then.
    messages: usize,
    /// MAIL refused: the sender is suspended.
    suspended: bool,
    /// The flood's rate (RCPT commands a second, all nodes together).
    rate: f64,
}

/// `sender` sends up to `max` messages of never-seen recipients, message
/// `i` to `nodes[i % n]`, one every `pace` at most; stops at the first MAIL
/// refused as suspended, or after 30 s.
fn flood(nodes: &[&Gateway], sender: &str, tag: &str, max: usize, pace: Duration) -> Flood {
    let mut f = Flood::default();
    let start = Instant::now();
    let mut rcpts = 0usize;
    let mut deferred_seen = false;
    for i in 0..max {
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        let due = start + pace * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let node = nodes[i % nodes.len()];
        let mut s = Smtp::greeted(node.smtp);
        s.expect("EHLO client.test.example", 250);
        f.messages += 1;
        let r = s.cmd(&format!("MAIL FROM:<{sender}>"));
        if r.code != 250 {
            assert_eq!(r.code, 451, "{}", r.text());
            assert!(r.text().contains("suspended"), "{}", r.text());
            f.suspended = true;
            break;
        }
        let mut any = false;
        for j in 0..PER_MESSAGE {
            let r = s.cmd(&format!("RCPT TO:<{tag}{i}-{j}@far{i}.example>"));
            rcpts += 1;
            match r.code {
                250 => {
                    any = true;
                    f.accepted += 1;
                    if !deferred_seen {
                        f.before_deferral += 1;
                    }
                }
                451 => {
                    deferred_seen = true;
                    f.deferred += 1;
                }
                c => panic!("RCPT: {c} {}", r.text()),
            }
        }
        if any {
            s.expect("DATA", 354);
            s.send_raw(b"Subject: flood\r\n\r\nhello\r\n.\r\n");
            assert_eq!(s.reply().code, 250);
        }
        s.cmd("QUIT");
    }
    f.rate = rcpts as f64 / start.elapsed().as_secs_f64();
    f
}

/// The active automatic suspensions of `sender`, as node `gw` lists them.
fn suspensions_of(gw: &Gateway, sender: &str) -> Vec<Value> {
    let list: Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "suspension", "list", "--history"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["scope"]["kind"] == "sender" && s["scope"]["value"] == sender)
        .cloned()
        .collect()
}

#[test]
fn a_novelty_flood_split_across_two_nodes_is_stopped_as_on_one_node() {
    let pg = TestPostgres::start();
    for db in ["cluster", "solo", "apart"] {
        pg.create_db(db);
    }
    const DOMAIN: &str = "agency.example.kz";
    const SENDER: &str = "mallory@agency.example.kz";

    // The same flood on one node.
    let solo = Gateway::start(&node_config(&pg, "solo", GOVERNOR));
    solo.register_shared(DOMAIN);
    let one = flood(&[&solo], SENDER, "s", 400, PACE);
    eprintln!("one node: {one:?}");
    assert!(one.suspended, "{one:?}\n{}", solo.log_text());
    assert_eq!(one.before_deferral, 30, "{one:?}");

    // Two nodes exchanging every 200 ms (the default).
    let a = Gateway::start(&node_config(&pg, "cluster", GOVERNOR));
    let b = Gateway::start(&node_config(&pg, "cluster", GOVERNOR));
    a.register_shared(DOMAIN);
    wait_registered(&b, "colleague@agency.example.kz");
    let split = flood(&[&a, &b], SENDER, "c", 400, PACE);
    eprintln!("two nodes, exchange every 200 ms: {split:?}");
    let status: Vec<Value> = [&a, &b]
        .iter()
        .map(|n| api(n, "/api/v1/governor")["cluster"].clone())
        .collect();
    eprintln!("exchange: {status:?}");
    let latency = status
        .iter()
        .map(|c| c["max_latency_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    for c in &status {
        assert!(c["received"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["dropped"], 0, "{c}");
    }
    assert!(
        split.suspended,
        "{split:?}\n{}\n{}",
        a.log_text(),
        b.log_text()
    );
    // The stated tolerance: one interval and the latency at the flood's
    // rate, one message's recipients.
    let window = (200 + latency) as f64 / 1000.0;
    let tolerance = (split.rate * window).ceil() as usize + PER_MESSAGE;
    eprintln!(
        "accepted before the first deferral: one node {}, split {} (tolerance {tolerance} = \
         {:.0} RCPT/s x {:.3} s + {PER_MESSAGE}); deferred before suspension: one node {}, split {}",
        one.before_deferral,
        split.before_deferral,
        split.rate,
        window,
        one.deferred,
        split.deferred
    );
    assert!(
        split.accepted <= one.accepted + tolerance,
        "{split:?} vs {one:?}"
    );
    assert!(
        split.deferred <= one.deferred + tolerance,
        "{split:?} vs {one:?}"
    );
    // One suspension, whichever node made it; in force on both.
    let recs = suspensions_of(&a, SENDER);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let solo_ev = &suspensions_of(&solo, SENDER)[0]["evidence"];
    let ev = &recs[0]["evidence"];
    eprintln!(
        "the suspending node saw: one node {} new + {} deferred, split {} new + {} deferred",
        solo_ev["new_recipients_5min"],
        solo_ev["deferred_new_recipients_5min"],
        ev["new_recipients_5min"],
        ev["deferred_new_recipients_5min"]
    );
    assert_eq!(recs[0]["rule"], "novelty");
    for n in [&a, &b] {
        let mut s = Smtp::greeted(n.smtp);
        s.expect("EHLO client.test.example", 250);
        assert_eq!(s.cmd(&format!("MAIL FROM:<{SENDER}>")).code, 451);
    }

    // Without the exchange each node judges half the flood: twice as many
    // get through before the first deferral.
    let apart_cfg = node_config(&pg, "apart", GOVERNOR)
        .replace("[store]\n", "[store]\ngovernor_sync = \"0s\"\n");
    let c = Gateway::start(&apart_cfg);
    let d = Gateway::start(&apart_cfg);
    c.register_shared(DOMAIN);
    wait_registered(&d, "colleague@agency.example.kz");
    let apart = flood(&[&c, &d], SENDER, "x", 400, PACE);
    eprintln!("two nodes, no exchange: {apart:?}");
    assert!(
        apart.before_deferral >= 2 * one.before_deferral - PER_MESSAGE,
        "{apart:?}"
    );
    assert!(api(&c, "/api/v1/governor")["cluster"].is_null());
}

#[test]
fn a_recipient_rate_split_across_two_nodes_holds_cluster_wide() {
    let pg = TestPostgres::start();
    for db in ["cluster", "solo"] {
        pg.create_db(db);
    }
    const DOMAIN: &str = "rates.example.kz";
    const SENDER: &str = "clerk@rates.example.kz";
    // 20 recipients a minute; no novelty floor gets in the way (a sender
    // without history may write to 100 new addresses in 5 minutes).
    let gov = "[governor]\nsender_recipients_per_minute = 20\n";

    let solo = Gateway::start(&node_config(&pg, "solo", gov));
    solo.register_shared(DOMAIN);
    let one = flood(&[&solo], SENDER, "s", 20, RATE_PACE);
    eprintln!("one node: {one:?}");
    // (A cell comes back every 3 s: a slow run may see one more.)
    assert!((20..=21).contains(&one.accepted), "{one:?}");

    let a = Gateway::start(&node_config(&pg, "cluster", gov));
    let b = Gateway::start(&node_config(&pg, "cluster", gov));
    a.register_shared(DOMAIN);
    wait_registered(&b, "colleague@rates.example.kz");
    let split = flood(&[&a, &b], SENDER, "c", 20, RATE_PACE);
    let latency = [&a, &b]
        .iter()
        .map(|n| {
            api(n, "/api/v1/governor")["cluster"]["max_latency_ms"]
                .as_u64()
                .unwrap()
        })
        .max()
        .unwrap();
    let window = (200 + latency) as f64 / 1000.0;
    let tolerance = (split.rate * window).ceil() as usize + PER_MESSAGE;
    eprintln!(
        "20 recipients/minute: one node accepted {}, split {} (tolerance {tolerance}; without \
         the exchange it would be 40)",
        one.accepted, split.accepted
    );
    assert!(split.accepted >= 20, "{split:?}");
    assert!(split.accepted <= one.accepted + tolerance, "{split:?}");
    assert!(split.accepted < 40, "{split:?}");

    // What is not a governor batch on the channel is counted and skipped.
    let out = pg.psql_in("cluster", "NOTIFY ugem_governor, 'not a batch'");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(common::wait_for(5, || {
        [&a, &b]
            .iter()
            .all(|n| api(n, "/api/v1/governor")["cluster"]["unreadable"] == 1)
    }));

    // PostgreSQL down (fail-static): each node governs alone on its own
    // traffic; nothing on the SMTP path waits for the exchange.
    pg.stop();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let alone = flood(&[&a, &b], "other@rates.example.kz", "d", 20, RATE_PACE);
    eprintln!("PostgreSQL down: {alone:?} in {:?}", started.elapsed());
    // 20 a minute on each node: 40 in all, as two separate nodes.
    assert_eq!(alone.accepted, 40, "{alone:?}\n{}", a.log_text());
    assert!(started.elapsed() < Duration::from_secs(10));
    let dropped = api(&a, "/api/v1/governor")["cluster"]["dropped"].clone();
    eprintln!("observations dropped on node A while PostgreSQL was down: {dropped}");
}
