//! The mail log end to end: one message to four recipients (delivered,
//! refused 5xx, deferred 4xx, connection refused) gives one `delivery` line
//! per recipient with the same queue id, an acceptance line, a `connection
//! failed` line and a bounce line naming it; every JSON line has unique
//! keys; text logs written to a pipe carry no colour codes; the CLI shows
//! times as RFC 3339 in UTC.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::fake_mx::{Behaviour, FakeMx};
use common::*;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON value parsed by a parser that refuses a key twice in one object
/// (serde_json's own keeps the last silently, as most readers do).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key {k:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses one log line, refusing duplicate keys.
fn strict(line: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Strict>(line).map(|s| s.0)
}

/// A loopback port nothing listens on (connecting to it is refused).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// The four recipients: delivered, 550, 451, connection refused.
const RCPTS: [&str; 4] = [
    "ann@ok.example",
    "reject.bob@ok.example",
    "defer.cid@ok.example",
    "dan@closed.example",
];

fn routes(mx: &FakeMx, closed: u16) -> String {
    format!(
        "[delivery.routes]\n\"ok.example\" = \"{}\"\n\"closed.example\" = \"127.0.0.1:{closed}\"\n",
        mx.addr()
    )
}

/// Sends the message of the tests; returns its queue id.
fn send_four(smtp: std::net::SocketAddr) -> String {
    let mut s = Smtp::greeted(smtp);
    let r = s.send_mail(
        "clerk@agency.example.kz",
        &RCPTS,
        "From: clerk@agency.example.kz\r\nSubject: four\r\n\r\nhello\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    s.expect("QUIT", 221);
    r.text().rsplit(' ').next().unwrap().to_string()
}

fn is_rfc3339_utc(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok_and(|t| t.offset().local_minus_utc() == 0)
        && (s.ends_with('Z') || s.ends_with("+00:00"))
}

#[test]
fn the_strict_parser_refuses_duplicate_keys() {
    assert!(strict(r#"{"target":"a","n":{"x":1}}"#).is_ok());
    assert!(strict(r#"{"target":"a","target":"b"}"#).is_err());
    assert!(strict(r#"{"a":[{"x":1,"x":2}]}"#).is_err());
}

#[test]
fn one_json_line_per_recipient_result_with_the_queue_id() {
    let mx = FakeMx::start(Behaviour::accept());
    let closed = closed_port();
    let gw = gateway_with_agency(&routes(&mx, closed));
    let id = send_four(gw.smtp);

    let lines = |gw: &Gateway| -> Vec<Value> {
        gw.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["queue_id"] == id.as_str())
            .collect()
    };
    assert!(
        wait_for(20, || lines(&gw)
            .iter()
            .any(|v| v["message"] == "message deferred")),
        "the attempt did not end; log:\n{}",
        gw.log_text()
    );

    // Every line of the log: one JSON object, no key twice, times in UTC.
    let log = gw.log_text();
    for line in log.lines() {
        let v = strict(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let ts = v["timestamp"].as_str().unwrap_or_default();
        assert!(is_rfc3339_utc(ts), "timestamp {ts:?}: {line}");
    }

    let story = lines(&gw);
    let find = |message: &str| -> Vec<&Value> {
        story.iter().filter(|v| v["message"] == message).collect()
    };

    // Acceptance.
    let accepted = find("message queued");
    assert_eq!(accepted.len(), 1, "{log}");
    let a = accepted[0];
    assert_eq!(a["target"], "ugem::maillog", "{a}");
    let client = a["client"].as_str().unwrap();
    assert!(client.starts_with("client.test.example[127.0.0.1]:"), "{a}");
    assert_eq!(a["from"], "clerk@agency.example.kz", "{a}");
    assert_eq!(a["nrcpt"], 4, "{a}");
    assert!(a["size"].as_u64().unwrap() > 40, "{a}");
    assert_eq!(a["tls"], "none", "{a}");
    assert_eq!(a["direction"], "outbound", "{a}");
    assert_eq!(a["span"]["name"], "smtp", "{a}");

    // One line per recipient, with every field.
    let results = find("delivery");
    assert_eq!(results.len(), 4, "{log}");
    let by_rcpt = |to: &str| -> &Value {
        results
            .iter()
            .find(|v| v["to"] == to)
            .unwrap_or_else(|| panic!("no line for {to}:\n{log}"))
    };
    let relay = format!("127.0.0.1[127.0.0.1]:{}", mx.addr().port());
    let expect = [
        (RCPTS[0], relay.as_str(), "2.0.0", "sent (250 "),
        (RCPTS[1], relay.as_str(), "5.1.1", "bounced (550 5.1.1 "),
        (RCPTS[2], relay.as_str(), "4.2.1", "deferred (451 4.2.1 "),
        (RCPTS[3], "none", "4.4.1", "deferred (4.4.1 cannot connect"),
    ];
    for (to, relay, dsn, status) in expect {
        let v = by_rcpt(to);
        assert_eq!(v["target"], "ugem::maillog", "{v}");
        assert_eq!(v["level"], "INFO", "{v}");
        assert_eq!(v["queue_id"], id.as_str(), "{v}");
        assert_eq!(v["relay"], relay, "{v}");
        assert_eq!(v["dsn"], dsn, "{v}");
        let st = v["status"].as_str().unwrap();
        assert!(st.starts_with(status) && st.ends_with(')'), "{v}");
        let delay = v["delay"].as_f64().unwrap_or_else(|| panic!("delay: {v}"));
        let parts: Vec<f64> = v["delays"]
            .as_str()
            .unwrap()
            .split('/')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(parts.len(), 4, "{v}");
        assert!(parts.iter().all(|p| *p >= 0.0), "{v}");
        // The parts add up to the delay (each is rounded to 10 ms).
        assert!((parts.iter().sum::<f64>() - delay).abs() < 0.05, "{v}");
        assert!(delay < 20.0, "{v}");
    }
    assert!(
        by_rcpt(RCPTS[3])["status"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "the refused address is named"
    );

    // The failed connection, the bounce and the deferral name the message.
    let failed = find("connection failed; trying the next target");
    assert_eq!(failed.len(), 1, "{log}");
    assert_eq!(
        failed[0]["next_hop"],
        format!("127.0.0.1[127.0.0.1]:{closed}"),
        "{}",
        failed[0]
    );
    assert_eq!(failed[0]["target"], "ugem::maillog");
    let bounce = find("bounce queued");
    assert_eq!(bounce.len(), 1, "{log}");
    assert_eq!(bounce[0]["failed"], 1);
    let bounce_id = bounce[0]["bounce_id"].as_str().unwrap();
    assert_ne!(bounce_id, id);
    let deferred = find("message deferred");
    assert!(
        is_rfc3339_utc(deferred[0]["next_attempt"].as_str().unwrap()),
        "{}",
        deferred[0]
    );

    // What `grep QUEUEID` finds, in order.
    let grep: Vec<String> = log
        .lines()
        .filter(|l| l.contains(&id))
        .filter_map(|l| strict(l).ok())
        .map(|v| v["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        grep.first().map(String::as_str),
        Some("message queued"),
        "{grep:?}"
    );
    assert_eq!(
        grep.last().map(String::as_str),
        Some("message deferred"),
        "{grep:?}"
    );

    // People read times as RFC 3339 in UTC in the CLI, not milliseconds.
    let show = gw.cli_ok(&["queue", "show", &id]);
    assert!(!show.contains("_ms:"), "{show}");
    let arrived = show
        .lines()
        .find_map(|l| l.strip_prefix("arrived_at: "))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(is_rfc3339_utc(arrived), "{show}");
    let list = gw.cli_ok(&["queue", "list"]);
    let row = list.lines().find(|l| l.starts_with(&id)).unwrap();
    let when = row.split_whitespace().nth(1).unwrap();
    assert!(is_rfc3339_utc(when), "{list}");

    // Staff decisions join the story: held, then released (due at once, so
    // the deferred recipients get a second delivery line each).
    gw.cli_ok(&["queue", "hold", &id, "--reason", "looks odd"]);
    gw.cli_ok(&["queue", "release", &id]);
    assert!(
        wait_for(20, || {
            let story = lines(&gw);
            let has = |m: &str| {
                story
                    .iter()
                    .any(|v| v["message"] == m && v["actor"] == "root")
            };
            has("held by staff")
                && has("released by staff")
                && story.iter().filter(|v| v["message"] == "delivery").count() == 6
        }),
        "{}",
        gw.log_text()
    );
}

#[test]
fn text_log_to_a_pipe_has_no_colour_codes() {
    let mx = FakeMx::start(Behaviour::accept());
    let closed = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ugem.toml");
    std::fs::write(
        &config,
        config_text(&format!(
            "[server]\nlog_format = \"text\"\n{}",
            routes(&mx, closed)
        )),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let raw = Arc::new(Mutex::new(Vec::<u8>::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = raw.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().extend_from_slice(&line);
            line.clear();
        }
    });
    let text = || String::from_utf8_lossy(&raw.lock().unwrap()).to_string();
    let field = |line: &str, name: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    let mut ready = None;
    let started = wait_for(30, || {
        ready = text()
            .lines()
            .find(|l| l.contains("ugem ready"))
            .map(str::to_string);
        ready.is_some()
    });
    if !started {
        let _ = child.kill();
        panic!("not ready:\n{}", text());
    }
    let ready = ready.unwrap();
    let smtp: std::net::SocketAddr = field(&ready, "smtp").unwrap().parse().unwrap();
    let admin = field(&ready, "admin").unwrap();
    let add = Command::new(bin())
        .args(["--admin", &format!("http://{admin}"), "domain", "add"])
        .args([
            AGENCY,
            "--server",
            "127.0.0.1",
            "--contact",
            "it@contact.example.kz",
            "--reason",
            "test set-up",
        ])
        .env("UGEM_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");
    let id = send_four(smtp);
    let done = wait_for(20, || {
        text()
            .lines()
            .filter(|l| l.contains(&id) && l.contains(" delivery "))
            .count()
            == 4
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = text();
    assert!(done, "no four delivery lines:\n{log}");
    assert!(
        !raw.lock().unwrap().contains(&0x1b),
        "ESC in a text log written to a pipe:\n{log}"
    );
    // Postfix's shape: `delivery queue_id=... to=... relay=... delay=...
    // delays=a/b/c/d dsn=... status=sent (reply)`.
    let sent = log
        .lines()
        .find(|l| l.contains(&id) && l.contains(&format!("to={}", RCPTS[0])))
        .unwrap_or_else(|| panic!("{log}"));
    let time = sent.split_whitespace().next().unwrap();
    assert!(is_rfc3339_utc(time), "{sent}");
    assert!(sent.contains(" INFO ugem::maillog: delivery "), "{sent}");
    assert!(
        sent.contains(&format!("relay=127.0.0.1[127.0.0.1]:{} ", mx.addr().port())),
        "{sent}"
    );
    assert!(sent.contains(" dsn=2.0.0 status=sent (250 "), "{sent}");
    assert_eq!(
        field(sent, "delays").unwrap().split('/').count(),
        4,
        "{sent}"
    );
    let queued = log
        .lines()
        .find(|l| l.contains(&id) && l.contains("message queued"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(queued.contains(" nrcpt=4 "), "{queued}");
    assert!(
        log.contains(&format!("next_hop=127.0.0.1[127.0.0.1]:{closed}")),
        "{log}"
    );
}
