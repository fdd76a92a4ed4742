//! Fail-static with a real PostgreSQL (issue #19, items 4 and 6): an
//! automatic suspension made while the database is down is in force on its
//! node at once and reaches the database (and the other node) when it comes
//! back; mail accepted while it stops and starts is delivered exactly once;
//! a node killed with SIGKILL mid-traffic delivers its queue after restart.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::console_http::{http_form, http_sign_in};
use common::fake_mx::{Behaviour, FakeMx};
use common::postgres::TestPostgres;
use common::{ADMIN_TOKEN, Gateway, http};

const DOMAIN: &str = "agency.example.kz";
const SENDER: &str = "clerk@agency.example.kz";

fn store_config(pg: &TestPostgres) -> String {
    format!(
        "[store]\nurl = \"{}\"\npassword_file = \"{}\"\n",
        pg.url("ugem"),
        pg.password_file().display()
    )
}

/// One SMTP transaction that never panics (the gateway may be down):
/// the reply code to MAIL if not 250, else to RCPT if not 250, else the
/// final reply after DATA; `Err` when the connection fails.
fn try_send(addr: SocketAddr, from: &str, to: &str, body: &str) -> Result<u16, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let mut reply = || -> Result<u16, String> {
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("connection closed".into());
            }
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    };
    let say = |w: &mut TcpStream, line: &str| -> Result<(), String> {
        w.write_all(line.as_bytes()).map_err(|e| e.to_string())
    };
    if reply()? != 220 {
        return Err("no greeting".into());
    }
    say(&mut w, "EHLO client.test.example\r\n")?;
    reply()?;
    say(&mut w, &format!("MAIL FROM:<{from}>\r\n"))?;
    let c = reply()?;
    if c != 250 {
        return Ok(c);
    }
    say(&mut w, &format!("RCPT TO:<{to}>\r\n"))?;
    let c = reply()?;
    if c != 250 {
        return Ok(c);
    }
    say(&mut w, "DATA\r\n")?;
    if reply()? != 354 {
        return Err("DATA refused".into());
    }
    say(&mut w, &format!("{body}\r\n.\r\n"))?;
    let c = reply()?;
    let _ = say(&mut w, "QUIT\r\n");
    Ok(c)
}

/// A message with its own Message-ID, to count at the sink.
fn message(id: &str) -> String {
    format!("Message-ID: <{id}>\r\nSubject: outage test {id}\r\nFrom: <{SENDER}>\r\n\r\nhello\r\n")
}

/// How often each Message-ID reached the sink.
fn delivered(mx: &FakeMx) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in mx.messages() {
        let body = String::from_utf8_lossy(&m.body);
        if let Some(id) = body
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.strip_suffix('>'))
        {
            *out.entry(id.to_string()).or_default() += 1;
        }
    }
    out
}

/// The reply to MAIL FROM of the agency's sender.
fn mail_code(node: &Gateway) -> u16 {
    let mut s = common::Smtp::greeted(node.smtp);
    s.expect("EHLO client.test.example", 250);
    s.cmd(&format!("MAIL FROM:<{SENDER}>")).code
}

/// Polls `f` every 50 ms for at most `limit`; how long it took.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sql(pg: &TestPostgres, q: &str) -> String {
    let out = pg.psql_in("ugem", q);
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pending_writes(node: &Gateway) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&node.cli_ok(&["--json", "governor"])).unwrap();
    v["store_pending_writes"]
        .as_u64()
        .expect("store_pending_writes")
}

#[test]
fn an_automatic_suspension_made_while_postgresql_is_down_reaches_it_and_the_other_node() {
    let pg = TestPostgres::start();
    pg.create_db("ugem");
    // history_hours = 0 and 3 new recipients: a handful of messages to new
    // addresses is a takeover, suspended automatically.
    let extra = format!(
        "{}[governor]\nhistory_hours = 0\nnew_recipients_5min = 3\nnew_recipients_hour = 3\n\
         housekeeping_interval = \"500ms\"\n",
        store_config(&pg)
    );
    let a = Gateway::start(&extra);
    let b = Gateway::start(&extra);
    a.register(DOMAIN, &["127.0.0.1"]);
    within(Duration::from_secs(5), "registration on B", || {
        mail_code(&b) == 250
    });

    pg.stop();
    // The flood on A: the sender is suspended while the database is down.
    let mut suspended_after = None;
    for i in 0..60 {
        // The decision is carried out in the background: a pace it can follow.
        std::thread::sleep(Duration::from_millis(100));
        let code = try_send(
            a.smtp,
            SENDER,
            &format!("new{i}@example.org"),
            &message(&format!("flood-{i}@agency.example.kz")),
        )
        .unwrap();
        if code == 451 && mail_code(&a) == 451 {
            suspended_after = Some(i);
            break;
        }
    }
    let n = suspended_after.unwrap_or_else(|| {
        panic!(
            "never suspended while PostgreSQL was down:\n{}",
            a.log_text()
        )
    });
    eprintln!("suspended on A after {n} messages, PostgreSQL down");
    assert_eq!(mail_code(&a), 451);
    // B cannot know yet: the database is down.
    assert_eq!(mail_code(&b), 250);
    // The backlog shows: the suspension and its audit record at least.
    let waiting = pending_writes(&a);
    assert!(waiting >= 2, "{waiting}");
    let (status, metrics) = http(a.admin, "GET", "/metrics", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ugem_store_pending_writes ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Staff changes are refused, naming PostgreSQL.
    let refused = a.cli(ADMIN_TOKEN, &["domain", "suspend", DOMAIN, "--reason", "x"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("PostgreSQL (the shared registry) cannot be reached")
            && said.contains("staff changes are refused"),
        "{said}"
    );

    // Back: the backlog drains by itself.
    pg.restart();
    let back = Instant::now();
    let drained = within(
        Duration::from_secs(15),
        "the suspension in PostgreSQL",
        || {
            pg.psql_in(
                "ugem",
                "SELECT count(*) FROM suspensions WHERE active AND record->>'actor' = 'auto'",
            )
            .stdout
            .starts_with(b"1")
        },
    );
    eprintln!("backlog of {waiting} writes in PostgreSQL {drained:?} after it was back");
    within(Duration::from_secs(10), "the outbox empty", || {
        pending_writes(&a) == 0
    });
    // The node says so, with how long the writing itself took (logged once
    // the drain's last step is done, a moment after the count reads 0).
    const DRAINED: &str = "local outbox written to the shared store";
    within(Duration::from_secs(5), "the drain logged", || {
        a.log_text().contains(DRAINED)
    });
    let log = a.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(DRAINED))
        .unwrap_or_else(|| panic!("no drain logged:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!(
        "drain: {} writes in {} ms, after retrying for {} ms",
        v["written"], v["drain_ms"], v["retried_ms"]
    );
    let id = sql(&pg, "SELECT id FROM suspensions WHERE active");
    // Its audit record names the id PostgreSQL gave, not the provisional one.
    let audited = sql(
        &pg,
        "SELECT record->'after'->>'suspension' FROM audit \
         WHERE record->>'action' = 'sender.suspend' AND record->>'actor' = 'auto'",
    );
    assert_eq!(audited, id, "the audit record of the suspension");
    let took = within(Duration::from_secs(10), "the suspension on B", || {
        mail_code(&b) == 451
    });
    eprintln!(
        "B refuses the sender {:?} after PostgreSQL was back",
        back.elapsed()
    );
    let _ = took;
    // Both nodes show the same record.
    let on_b = b.cli_ok(&["--json", "suspension", "list"]);
    let list: serde_json::Value = serde_json::from_str(&on_b).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{on_b}");
    assert_eq!(list[0]["id"].to_string(), id);
    assert_eq!(list[0]["actor"], "auto");

    // Restored by staff on B: both nodes accept the sender again.
    b.cli_ok(&["sender", "restore", SENDER, "--reason", "account secured"]);
    within(Duration::from_secs(5), "restored on A", || {
        mail_code(&a) == 250
    });
    assert_eq!(mail_code(&b), 250);
    assert_eq!(
        sql(&pg, "SELECT count(*) FROM suspensions WHERE active"),
        "0"
    );
}

/// Sends messages to `sink_rcpt` through `addr` until `stop`; returns the
/// ids accepted (250 after DATA) with when.
fn traffic(
    addr: Arc<Mutex<SocketAddr>>,
    prefix: &'static str,
    until: Instant,
    max: usize,
) -> std::thread::JoinHandle<Vec<(String, Instant)>> {
    std::thread::spawn(move || {
        let mut accepted = Vec::new();
        let mut i = 0;
        while Instant::now() < until && i < max {
            let id = format!("{prefix}-{i}@agency.example.kz");
            i += 1;
            let to = *addr.lock().unwrap();
            match try_send(to, SENDER, "citizen@example.org", &message(&id)) {
                Ok(250) => accepted.push((id, Instant::now())),
                Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        accepted
    })
}

#[test]
fn postgresql_stopped_and_started_mid_traffic_loses_and_doubles_nothing() {
    let pg = TestPostgres::start();
    pg.create_db("ugem");
    let sink = FakeMx::start(Behaviour::accept());
    let extra = format!(
        "{}[governor]\nenabled = false\n[delivery]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n\
         [delivery.routes]\n\"*\" = \"{}\"\n",
        store_config(&pg),
        sink.addr()
    );
    let gw = Gateway::start(&extra);
    gw.register(DOMAIN, &["127.0.0.1"]);

    let start = Instant::now();
    let sender = traffic(
        Arc::new(Mutex::new(gw.smtp)),
        "steady",
        start + Duration::from_secs(9),
        2000,
    );
    std::thread::sleep(Duration::from_secs(2));
    pg.stop();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    pg.restart();
    let up = Instant::now();
    let accepted = sender.join().unwrap();
    let during = accepted
        .iter()
        .filter(|(_, t)| *t >= down && *t <= up)
        .count();
    eprintln!(
        "{} messages accepted, {during} while PostgreSQL was down ({:?} from the stop until it answered again)",
        accepted.len(),
        up - down
    );
    assert!(
        during > 0,
        "no message was accepted while PostgreSQL was down"
    );
    assert!(accepted.len() > 20, "{}", accepted.len());

    within(
        Duration::from_secs(60),
        "every accepted message delivered",
        || {
            let got = delivered(&sink);
            accepted.iter().all(|(id, _)| got.contains_key(id))
        },
    );
    // A moment more for a second copy, if there were one.
    std::thread::sleep(Duration::from_secs(2));
    let got = delivered(&sink);
    let doubled: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "delivered twice: {doubled:?}");
    assert_eq!(
        got.len(),
        accepted.len(),
        "delivered messages that were never accepted?"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_node_killed_mid_traffic_delivers_its_queue_after_restart() {
    let pg = TestPostgres::start();
    pg.create_db("ugem");
    // A slow sink: deliveries are in flight when the node dies.
    let sink = FakeMx::start(Behaviour::slow(Duration::from_millis(150)));
    // The same SMTP port after the restart, so the traffic goes on.
    let port = free_port();
    let extra = format!(
        "{}[smtp]\nlisten = [\"127.0.0.1:{port}\"]\n[governor]\nenabled = false\n\
         [delivery]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n\
         [delivery.routes]\n\"*\" = \"{}\"\n",
        store_config(&pg),
        sink.addr()
    );
    let mut gw = Gateway::start(&extra);
    gw.register(DOMAIN, &["127.0.0.1"]);

    let addr = Arc::new(Mutex::new(gw.smtp));
    let start = Instant::now();
    let sender = traffic(addr, "crash", start + Duration::from_secs(12), 120);
    // Mail queued, some of it delivered, more on its way: SIGKILL.
    within(Duration::from_secs(20), "first deliveries", || {
        sink.messages().len() >= 3
    });
    gw.kill();
    let killed = Instant::now();
    // What the sink had (or was given in flight) from the dead node.
    std::thread::sleep(Duration::from_secs(2));
    let before_restart = delivered(&sink);
    gw.spawn();
    eprintln!(
        "restarted {:?} after the kill ({} at the sink by then)",
        killed.elapsed(),
        before_restart.len()
    );
    let accepted = sender.join().unwrap();
    let before_kill = accepted.iter().filter(|(_, t)| *t < killed).count();
    eprintln!(
        "{} messages accepted, {before_kill} before the kill",
        accepted.len()
    );
    assert!(
        before_kill > 3 && accepted.len() > before_kill,
        "{before_kill}"
    );

    within(
        Duration::from_secs(90),
        "every accepted message delivered",
        || {
            let got = delivered(&sink);
            accepted.iter().all(|(id, _)| got.contains_key(id))
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = delivered(&sink);
    // A second copy only of a message the sink took while the node died
    // (delivered, but the node had not yet recorded it).
    let doubled: Vec<&String> = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    eprintln!("delivered twice (in flight at the kill): {doubled:?}");
    for id in &doubled {
        assert!(
            before_restart.contains_key(*id),
            "{id} delivered twice but was not in flight at the kill"
        );
    }
    assert!(got.values().all(|n| *n <= 2), "{got:?}");
}

/// The registry and node status as `ugem governor --json` shows them.
fn local_copy(node: &Gateway) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&node.cli_ok(&["--json", "governor"])).unwrap();
    v["registry_local_copy"].clone()
}

/// The gauge `ugem_store_local_copy_since_seconds` of `node`.
fn local_copy_gauge(node: &Gateway) -> u64 {
    let (status, metrics) = http(node.admin, "GET", "/metrics", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("ugem_store_local_copy_since_seconds "))
        .unwrap_or_else(|| panic!("no local copy gauge:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_node_restarted_while_postgresql_is_down_serves_its_local_copy_and_catches_up() {
    const OPEN: &str = "open.example.kz";
    const HELD: &str = "held.example.kz";
    const LATER: &str = "later.example.kz";
    const STRANGER: &str = "stranger.example.org";
    let t0 = Instant::now();
    let pg = TestPostgres::start();
    pg.create_db("ugem");
    let sink = FakeMx::start(Behaviour::accept());
    let extra = format!(
        "{}[governor]\nenabled = false\n[delivery]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n\
         [delivery.routes]\n\"*\" = \"{}\"\n",
        store_config(&pg),
        sink.addr()
    );
    let a = Gateway::start(&extra);
    let mut b = Gateway::start(&extra);
    a.register_shared(OPEN);
    a.register_shared(HELD);
    a.cli_ok(&["domain", "suspend", HELD, "--reason", "audit in progress"]);
    let send = |node: &Gateway, domain: &str, id: &str| {
        try_send(
            node.smtp,
            &format!("clerk@{domain}"),
            "citizen@example.org",
            &format!(
                "Message-ID: <{id}>\r\nSubject: {id}\r\nFrom: <clerk@{domain}>\r\n\r\nhello\r\n"
            ),
        )
        .unwrap()
    };
    // B learns both domains and the suspension through the change feed: a
    // domain it does not know yet is refused with 550, not 4xx, so wait for
    // the suspension's own code.
    within(Duration::from_secs(5), "the suspension on B", || {
        (400..500).contains(&send(&b, HELD, "probe-held@held.example.kz"))
    });
    let held_code = send(&b, HELD, "before-held@held.example.kz");
    assert!((400..500).contains(&held_code), "{held_code}");
    within(Duration::from_secs(5), "the open domain on B", || {
        send(&b, OPEN, "before@open.example.kz") == 250
    });
    assert_eq!(
        send(&b, STRANGER, "before-stranger@stranger.example.org"),
        550
    );
    assert!(local_copy(&b).is_null());
    assert_eq!(local_copy_gauge(&b), 0);

    // B stops, then PostgreSQL; B starts again on the same folder.
    assert!(b.terminate().success());
    pg.stop();

    // A brand-new node knows no domain: it must not start.
    let fresh = tempfile::tempdir().unwrap();
    let config = fresh.path().join("ugem.toml");
    std::fs::write(&config, common::config_text(&extra)).unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a new node started without PostgreSQL:\n{said}"
    );
    assert!(
        said.contains("PostgreSQL") && said.contains("no local copy"),
        "{said}"
    );

    let restarted = Instant::now();
    b.spawn();
    eprintln!(
        "B ready {:?} after its start with PostgreSQL down",
        restarted.elapsed()
    );
    let log = b.log_text();
    assert!(
        log.contains("PostgreSQL unreachable at start; serving the registry as of"),
        "{log}"
    );
    let copy = local_copy(&b);
    assert!(
        copy["as_of"].is_string() && copy["since"].is_string(),
        "{copy}"
    );
    assert!(local_copy_gauge(&b) > 0);
    // The duty desk sees why in the console's alarms.
    let console = format!(
        "ugem_console={}; ugem_lang=en",
        http_sign_in(&b, ADMIN_TOKEN)
    );
    let alarm = "PostgreSQL has not answered since this node started";
    let (st, _, page) = http_form(b.admin, "GET", "/console", &console, "");
    assert_eq!(st, 200, "{page}");
    assert!(page.contains(alarm), "{page}");
    // The registry as last known: the open domain relays, the suspended one
    // and the stranger are refused as before.
    within(
        Duration::from_secs(5),
        "mail from the registered domain",
        || send(&b, OPEN, "during@open.example.kz") == 250,
    );
    within(Duration::from_secs(15), "the message at the sink", || {
        delivered(&sink).contains_key("during@open.example.kz")
    });
    assert_eq!(send(&b, HELD, "during-held@held.example.kz"), held_code);
    assert_eq!(
        send(&b, STRANGER, "during-stranger@stranger.example.org"),
        550
    );
    // Staff changes are refused, naming PostgreSQL.
    let refused = b.cli(ADMIN_TOKEN, &["domain", "restore", HELD, "--reason", "x"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("PostgreSQL (the shared registry) cannot be reached")
            && said.contains("staff changes are refused"),
        "{said}"
    );

    // Stopped and started again on the copy (a second deploy during the
    // outage): the shutdown is clean and the copy is still there.
    let stopping = Instant::now();
    assert!(b.terminate().success());
    eprintln!("B stopped in {:?} on its local copy", stopping.elapsed());
    b.spawn();
    assert_eq!(send(&b, OPEN, "during-2@open.example.kz"), 250);
    assert_eq!(send(&b, HELD, "during-held-2@held.example.kz"), held_code);

    // PostgreSQL back: a domain added on A reaches B.
    pg.restart();
    let back = Instant::now();
    within(Duration::from_secs(15), "the domain added on A", || {
        a.cli(
            ADMIN_TOKEN,
            &[
                "domain",
                "add",
                LATER,
                "--server",
                "127.0.0.1",
                "--shared-servers",
                "--contact",
                "IT Desk <it@contact.example.kz>",
                "--reason",
                "after the outage",
            ],
        )
        .status
        .success()
    });
    let took = within(Duration::from_secs(15), "the new domain on B", || {
        send(
            &b,
            LATER,
            &format!("later-{}@later.example.kz", back.elapsed().as_millis()),
        ) == 250
    });
    eprintln!(
        "B accepts the domain added on A {:?} after it was added",
        took
    );
    within(Duration::from_secs(5), "B off its local copy", || {
        local_copy(&b).is_null()
    });
    assert_eq!(local_copy_gauge(&b), 0);
    // (B was restarted since: a new console session.)
    let console = format!(
        "ugem_console={}; ugem_lang=en",
        http_sign_in(&b, ADMIN_TOKEN)
    );
    let (st, _, page) = http_form(b.admin, "GET", "/console", &console, "");
    assert_eq!(st, 200, "{page}");
    assert!(!page.contains(alarm), "{page}");
    // Staff changes through B are accepted again.
    b.cli_ok(&["domain", "restore", HELD, "--reason", "audit done"]);
    within(Duration::from_secs(5), "the restored domain on B", || {
        send(
            &b,
            HELD,
            &format!("after-{}@held.example.kz", back.elapsed().as_millis()),
        ) == 250
    });

    // A database that answers but cannot be used (migrated by a newer ugem)
    // still stops the start, copy or not.
    assert!(b.terminate().success());
    sql(&pg, "INSERT INTO ugem_schema (version) VALUES (99)");
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--config"])
        .arg(&b.config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "B started on a newer schema:\n{said}"
    );
    assert!(said.contains("newer"), "{said}");
    assert!(!said.contains("serving the registry as of"), "{said}");
    eprintln!("whole test {:?}", t0.elapsed());
}
