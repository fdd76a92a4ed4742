//! What the governor learned lives in the shared PostgreSQL store too
//! (issue #19, item 1): a new node with an empty data folder judges a
//! sender with the history another node built; a webhook event of a node
//! that died is delivered by another, once; an event raised while
//! PostgreSQL is down waits in the local outbox and goes through the
//! shared one once it is back, as does the detector's state of the time.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use common::postgres::TestPostgres;
use common::{ADMIN_TOKEN, Gateway, Smtp, http, wait_for};

const DOMAIN: &str = "agency.example.kz";

/// A node of the cluster in database `db`, named `node`, saving its state
/// every second; `history_hours = 0` makes the novelty floors (30
/// never-seen recipients in 5 minutes) apply to every sender at once.
fn node(pg: &TestPostgres, db: &str, name: &str, extra: &str) -> Gateway {
    node_with(pg, db, name, "", extra)
}

/// [`node`] with `store` added to its `[store]` section.
fn node_with(pg: &TestPostgres, db: &str, name: &str, store: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[store]\nurl = \"{}\"\npassword_file = \"{}\"\nnode_name = \"{name}\"\n{store}\
         [governor]\nhistory_hours = 0\nhousekeeping_interval = \"1s\"\n{extra}",
        pg.url(db),
        pg.password_file().display()
    ))
}

fn sql(pg: &TestPostgres, db: &str, q: &str) -> String {
    let out = pg.psql_in(db, q);
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One message from `sender` to `rcpts`; the RCPT reply codes.
fn send(gw: &Gateway, sender: &str, rcpts: &[String]) -> Vec<u16> {
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).code, 250);
    let codes: Vec<u16> = rcpts
        .iter()
        .map(|r| s.cmd(&format!("RCPT TO:<{r}>")).code)
        .collect();
    if codes.contains(&250) {
        s.expect("DATA", 354);
        s.send_raw(b"Subject: hello\r\n\r\nhello\r\n.\r\n");
        assert_eq!(s.reply().code, 250);
    }
    s.cmd("QUIT");
    codes
}

fn addrs(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@far.example")).collect()
}

/// Sleeps past the next 5-minute boundary if it is less than `margin`
/// away: a 5-minute bucket completed mid-test teaches the detector a peak,
/// which changes the allowance the test checks.
fn clear_of_a_bucket_boundary(margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = Duration::from_secs(300) - Duration::from_millis((now.as_millis() % 300_000) as u64);
    if left < margin {
        std::thread::sleep(left + Duration::from_secs(1));
    }
}

#[test]
fn a_new_node_judges_a_sender_with_the_history_another_node_built() {
    clear_of_a_bucket_boundary(Duration::from_secs(40));
    let pg = TestPostgres::start();
    pg.create_db("c");
    const CLERK: &str = "clerk@agency.example.kz";
    let mut a = node(&pg, "c", "a", "");
    a.register_shared(DOMAIN);
    // The clerk's 25 regular correspondents, known on node A.
    let regular = addrs("k", 25);
    assert_eq!(send(&a, CLERK, &regular), vec![250; 25]);
    // Saved at A's next housekeeping: the scope and a journal chunk.
    assert!(
        wait_for(15, || {
            sql(
                &pg,
                "c",
                &format!(
                    "SELECT count(*) FROM governor_scopes WHERE scope = 's:{CLERK}' AND node = 'a'"
                ),
            ) == "1"
                && sql(
                    &pg,
                    "c",
                    "SELECT count(*) FROM recipient_journal WHERE node = 'a'",
                ) != "0"
        }),
        "{}",
        a.log_text()
    );
    // A dies (kill -9: only its periodic saves count).
    a.kill();

    // B starts on an empty data folder: it tracks the clerk with A's
    // windows (a node without history answers 404 here)...
    let b = node_with(&pg, "c", "b", "governor_sync = \"0s\"\n", "");
    let new_in_hour = |gw: &Gateway| {
        let (status, body) = http(
            gw.admin,
            "GET",
            &format!("/api/v1/governor/scopes/{CLERK}"),
            Some(ADMIN_TOKEN),
            None,
        );
        assert_eq!(status, 200, "{body}\n{}", gw.log_text());
        let v: Value = serde_json::from_str(&body).unwrap();
        let h = &v["stats"]["hour"];
        h["cur"]["new"].as_u64().unwrap() + h["prev"]["new"].as_u64().unwrap()
    };
    assert_eq!(new_in_hour(&b), 25);
    // ...and knows its correspondents: writing to them again is nothing
    // new (without A's memory they would be 25 more never-seen ones, and
    // with A's windows over the floor of 30 in 5 minutes).
    assert_eq!(send(&b, CLERK, &regular), vec![250; 25], "{}", b.log_text());
    assert_eq!(new_in_hour(&b), 25);
    // A's 25 never-seen recipients count on B: 5 more reach the floor.
    let codes = send(&b, CLERK, &addrs("n", 10));
    assert_eq!(codes, [[250; 5], [451; 5]].concat(), "{}", b.log_text());
    // Another sender, without history, has its own 30.
    let codes = send(&b, "colleague@agency.example.kz", &addrs("m", 35));
    assert_eq!(codes[..30], [250; 30]);
    assert!(codes[30..].iter().all(|&c| c == 451), "{codes:?}");
    let g: Value =
        serde_json::from_str(&http(b.admin, "GET", "/api/v1/governor", Some(ADMIN_TOKEN), None).1)
            .unwrap();
    assert_eq!(g["shared_state"]["memory_shared"], true, "{g}");
    // B took the cluster's seed (one row) and writes its own chunks.
    assert_eq!(sql(&pg, "c", "SELECT count(*) FROM recipient_memory"), "1");
    assert!(wait_for(10, || sql(
        &pg,
        "c",
        "SELECT count(*) FROM recipient_journal WHERE node = 'b'"
    ) != "0"
        && sql(
            &pg,
            "c",
            &format!(
                "SELECT count(*) FROM governor_scopes WHERE scope = 's:{CLERK}' AND node = 'b'"
            )
        ) == "1"));
    drop(b);

    // A back on its own folder (its seed is the cluster's): it takes B's
    // newer state of the clerk (30 never-seen recipients in 5 minutes) and
    // the pairs B added, so the 5 addresses B accepted are known on A
    // (otherwise they would be deferred: the floor is reached).
    a.spawn();
    let codes = send(&a, CLERK, &addrs("n", 5));
    assert_eq!(codes, vec![250; 5], "{}", a.log_text());
    let codes = send(&a, CLERK, &addrs("z", 1));
    assert_eq!(codes, vec![451], "{}", a.log_text());
}

/// A webhook receiver: the first request is held without an answer (its
/// node is killed meanwhile), the next ones are answered by `status`.
struct Receiver {
    url: String,
    /// Requests read (the held one included).
    seen: Arc<AtomicUsize>,
    /// Bodies of the requests answered 200.
    accepted: Arc<Mutex<Vec<Value>>>,
    /// Answer 200 (else 500).
    accept: Arc<AtomicBool>,
    /// Let the held request go.
    release: Arc<AtomicBool>,
}

fn receiver(hold_first: bool) -> Receiver {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = Receiver {
        url: format!("http://{}/hook", l.local_addr().unwrap()),
        seen: Arc::default(),
        accepted: Arc::default(),
        accept: Arc::new(AtomicBool::new(!hold_first)),
        release: Arc::default(),
    };
    let (seen, accepted, accept, release) = (
        r.seen.clone(),
        r.accepted.clone(),
        r.accept.clone(),
        r.release.clone(),
    );
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let Some(body) = common::read_http_body(&mut s) else {
                continue;
            };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            if hold_first && n == 0 {
                // No answer until the test says so (bounded).
                for _ in 0..600 {
                    if release.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
            let ok = accept.load(Ordering::SeqCst);
            let status = if ok { "200 OK" } else { "500 Oops" };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if ok {
                accepted
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
        }
    });
    r
}

#[test]
fn a_webhook_event_of_a_node_that_died_is_delivered_once_by_another() {
    let pg = TestPostgres::start();
    pg.create_db("w");
    let hook = receiver(true);
    let cfg = format!("webhooks = [\"{}\"]\nwebhook_timeout = \"1s\"\n", hook.url);
    let mut a = node(&pg, "w", "a", &cfg);
    a.register_shared(DOMAIN);
    a.cli_ok(&["domain", "suspend", DOMAIN, "--reason", "test"]);
    // A is posting the event (the receiver holds it) when it dies.
    assert!(
        wait_for(15, || hook.seen.load(Ordering::SeqCst) == 1),
        "{}",
        a.log_text()
    );
    assert_eq!(
        sql(
            &pg,
            "w",
            "SELECT count(*) FROM webhook_jobs WHERE leased_by = 'a'"
        ),
        "1"
    );
    a.kill();
    hook.release.store(true, Ordering::SeqCst);
    hook.accept.store(true, Ordering::SeqCst);

    // B, started afresh, takes the job once A's lease (timeout + 10 s) is over.
    let started = std::time::Instant::now();
    let b = node(&pg, "w", "b", &cfg);
    assert!(
        wait_for(30, || !hook.accepted.lock().unwrap().is_empty()),
        "{}",
        b.log_text()
    );
    eprintln!("delivered by B after {:?}", started.elapsed());
    let got = hook.accepted.lock().unwrap()[0].clone();
    assert_eq!(got["event"], "suspend", "{got}");
    assert_eq!(got["scope"]["value"], DOMAIN, "{got}");
    // Once: nothing more comes, and the shared outbox is empty.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.accepted.lock().unwrap().len(), 1);
    assert_eq!(hook.seen.load(Ordering::SeqCst), 2);
    assert_eq!(sql(&pg, "w", "SELECT count(*) FROM webhook_jobs"), "0");
    let g: Value =
        serde_json::from_str(&http(b.admin, "GET", "/api/v1/governor", Some(ADMIN_TOKEN), None).1)
            .unwrap();
    assert_eq!(g["webhooks"]["delivered"], 1, "{g}");
}

#[test]
fn a_webhook_event_and_the_detector_state_of_an_outage_reach_postgres_once_back() {
    let pg = TestPostgres::start();
    pg.create_db("o");
    let hook = receiver(false);
    // The receiver refuses until the test sees the job in PostgreSQL.
    hook.accept.store(false, Ordering::SeqCst);
    let a = node(
        &pg,
        "o",
        "a",
        &format!("webhooks = [\"{}\"]\nwebhook_timeout = \"1s\"\n", hook.url),
    );
    a.register_shared(DOMAIN);
    pg.stop();
    // A novelty flood with PostgreSQL down: the throttle's event is written
    // to the local outbox, and A tries it itself meanwhile.
    let codes = send(&a, "mallory@agency.example.kz", &addrs("x", 40));
    assert!(codes.contains(&451), "{codes:?}");
    assert!(
        wait_for(20, || hook.seen.load(Ordering::SeqCst) >= 1),
        "{}",
        a.log_text()
    );
    assert!(a.log_text().contains("shared webhook outbox unreachable"));
    // The detector's state written meanwhile waits for the next ticks.
    let shared_state = |gw: &Gateway| {
        let g: Value = serde_json::from_str(
            &http(gw.admin, "GET", "/api/v1/governor", Some(ADMIN_TOKEN), None).1,
        )
        .unwrap();
        g["shared_state"].clone()
    };
    assert!(wait_for(10, || {
        let s = shared_state(&a);
        s["pending_scopes"].as_u64() > Some(0) && s["pending_pairs"].as_u64() > Some(0)
    }));
    // PostgreSQL back: the job moves there...
    pg.restart();
    assert!(
        wait_for(20, || sql(&pg, "o", "SELECT count(*) FROM webhook_jobs")
            == "1"),
        "{}",
        a.log_text()
    );
    // ...and is delivered from there, once.
    hook.accept.store(true, Ordering::SeqCst);
    assert!(
        wait_for(30, || !hook.accepted.lock().unwrap().is_empty()),
        "{}",
        a.log_text()
    );
    let got = hook.accepted.lock().unwrap()[0].clone();
    assert_eq!(got["event"], "throttle", "{got}");
    assert_eq!(got["rule"], "novelty", "{got}");
    assert!(wait_for(10, || sql(
        &pg,
        "o",
        "SELECT count(*) FROM webhook_jobs"
    ) == "0"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hook.accepted.lock().unwrap().len(), 1);
    // ...and the detector's state and pairs kept meanwhile are written.
    assert!(wait_for(10, || {
        let s = shared_state(&a);
        s["pending_scopes"] == 0 && s["pending_pairs"] == 0
    }));
    assert_eq!(
        sql(
            &pg,
            "o",
            "SELECT count(*) FROM governor_scopes WHERE scope = 's:mallory@agency.example.kz'"
        ),
        "1"
    );
}
