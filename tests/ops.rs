//! Operations: systemd notifications and graceful shutdown.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_mx::{Behaviour, FakeMx};
use common::*;

const CLERK: &str = "clerk@agency.example.kz";

#[test]
fn sd_notify_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let config = dir.path().join("ugem.toml");
    std::fs::write(&config, config_text("")).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert!(recv().starts_with("READY=1"));
    // Watchdog pings at half the 200 ms interval.
    assert_eq!(recv(), "WATCHDOG=1");
    assert_eq!(recv(), "WATCHDOG=1");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut got_stopping = false;
    for _ in 0..20 {
        if recv().starts_with("STOPPING=1") {
            got_stopping = true;
            break;
        }
    }
    assert!(got_stopping);
    assert!(child.wait().unwrap().success());
}

/// SIGTERM with a client in the middle of DATA, another between commands,
/// and a delivery stuck on a slow next hop: the clients get `421 4.3.2` at
/// once, the process exits within `server.shutdown_timeout`, the sessions
/// are in the connection log, and the stuck message is delivered as soon as
/// the gateway is back.
#[test]
fn sigterm_answers_421_and_puts_a_stuck_delivery_back() {
    let stuck = FakeMx::start(Behaviour::slow(Duration::from_secs(60)));
    let extra = |mx: std::net::SocketAddr| {
        format!("[server]\nshutdown_timeout = \"5s\"\n[delivery.routes]\n\"*\" = \"{mx}\"\n")
    };
    let mut gw = Gateway::start(&extra(stuck.addr()));
    gw.register(AGENCY, &["127.0.0.1"]);
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        CLERK,
        &["citizen@example.org"],
        "Subject: stuck\r\n\r\nslow hop\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    s.expect("QUIT", 221);
    assert!(
        wait_for(10, || stuck.connections() >= 1),
        "the delivery did not start"
    );

    let mut in_data = Smtp::greeted(gw.smtp);
    in_data.expect("EHLO client.test.example", 250);
    in_data.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    in_data.expect("RCPT TO:<other@example.org>", 250);
    in_data.expect("DATA", 354);
    in_data.send_raw(b"Subject: cut short\r\n\r\nfirst half\r\n");
    let mut idle = Smtp::greeted(gw.smtp);
    idle.expect("EHLO idle.test.example", 250);
    std::thread::sleep(Duration::from_millis(200));

    let t0 = Instant::now();
    let pid = gw.child.as_ref().unwrap().id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    for (who, c) in [("in DATA", &mut in_data), ("idle", &mut idle)] {
        let r = c.reply();
        assert_eq!(r.code, 421, "{who}: {r:?}");
        assert!(r.text().starts_with("4.3.2"), "{who}: {r:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{who}: 421 only after {:?}",
            t0.elapsed()
        );
        assert!(c.is_closed(), "{who}: still open");
    }
    let st = gw.terminate();
    let took = t0.elapsed();
    assert!(st.success(), "{st:?}");
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    let log = gw.log_text();
    assert!(log.contains("delivery put back in the queue"), "{log}");
    assert!(log.contains("ugem stopped"), "{log}");

    // Back up, with a next hop that answers: the stuck message goes out at
    // once (its lease ended with the old process), the cut one was never
    // queued (its client keeps it).
    let fast = FakeMx::start(Behaviour::accept());
    std::fs::write(&gw.config, config_text(&extra(fast.addr()))).unwrap();
    let t1 = Instant::now();
    gw.spawn();
    assert!(
        fast.wait_for_messages(1, Duration::from_secs(10)),
        "the stuck message was not delivered after the restart"
    );
    assert!(t1.elapsed() < Duration::from_secs(10));
    let m = &fast.messages()[0];
    assert_eq!(m.recipients, vec!["citizen@example.org".to_string()]);
    assert!(String::from_utf8_lossy(&m.body).contains("slow hop"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fast.messages().len(), 1, "the cut message was queued");
    // The sessions closed by the shutdown were logged.
    let (st, body) = http(
        gw.admin,
        "GET",
        "/api/v1/connections",
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let shut = body.matches("\"close\":\"shutdown\"").count();
    assert!(shut >= 2, "{body}");
}

/// Messages whose final dot races SIGTERM: each client gets 250 (and the
/// message is in the queue after the stop) or 421 (and it is not); never
/// silence, never a 250 for a message that is not kept.
#[test]
fn sigterm_at_the_end_of_data_never_loses_an_acknowledged_message() {
    let mut gw = gateway_with_agency("");
    let line = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n";
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = Smtp::greeted(gw.smtp);
        c.expect("EHLO client.test.example", 250);
        c.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
        c.expect(&format!("RCPT TO:<r{i}@example.org>"), 250);
        c.expect("DATA", 354);
        c.send_raw(format!("Subject: race {i}\r\n\r\n").as_bytes());
        // Past the spool threshold for some, in memory for others.
        c.send_raw(line.repeat(2_000 * i).as_bytes());
        clients.push(c);
    }
    for c in clients.iter_mut() {
        c.send_raw(b".\r\n");
    }
    let pid = gw.child.as_ref().unwrap().id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut acknowledged = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let r = c.reply();
        match r.code {
            250 => acknowledged.push((i, r.text().rsplit(' ').next().unwrap().to_string())),
            421 => assert!(r.text().starts_with("4.3.2"), "{r:?}"),
            _ => panic!("client {i}: {r:?}"),
        }
    }
    assert!(gw.terminate().success());
    let q = ugem_queue::Queue::open(&gw.data_dir().join("queue"), Default::default()).unwrap();
    let all = q.list(&Default::default()).unwrap();
    assert_eq!(all.len(), acknowledged.len(), "{acknowledged:?}");
    for (i, id) in acknowledged {
        let body = q.body(id.parse().unwrap()).unwrap().expect("message kept");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(&format!("Subject: race {i}\r\n")));
        assert!(text.ends_with(&line.repeat(2_000 * i).to_string()) || i == 0);
    }
}

/// The shipped unit gives the gateway longer to stop than the largest
/// `server.shutdown_timeout` it accepts, with room to spare.
#[test]
fn shutdown_timeout_fits_the_systemd_unit() {
    let unit = include_str!("../systemd/ugem.service");
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec in ugem.service")
        .trim()
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert_eq!(Duration::from_secs(stop), ugem::config::UNIT_TIMEOUT_STOP);
    assert!(
        ugem::config::MAX_SHUTDOWN + Duration::from_secs(10) <= ugem::config::UNIT_TIMEOUT_STOP
    );
    let default = ugem::config::Config::default().server.shutdown_timeout.0;
    assert!(
        default <= ugem::config::UNIT_TIMEOUT_STOP / 2,
        "{default:?}"
    );
    // A longer one is refused by check-config.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ugem.toml");
    std::fs::write(
        &config,
        config_text("[server]\nshutdown_timeout = \"55s\"\n"),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("server.shutdown_timeout"), "{text}");
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("{line_prefix} missing in:\n{text}"))
}

#[test]
fn metrics_count_real_traffic() {
    let gw = Gateway::start("");
    gw.register("agency.example.kz", &["127.0.0.1"]);
    let mut s = Smtp::greeted(gw.smtp);
    assert_eq!(
        s.send_mail(
            "clerk@agency.example.kz",
            &["a@example.org"],
            "Subject: m\r\n\r\nx\r\n"
        )
        .code,
        250
    );
    s.expect("MAIL FROM:<x@example.org>", 250);
    s.expect("RCPT TO:<y@example.net>", 550);
    s.expect("QUIT", 221);
    gw.cli_ok(&[
        "domain",
        "suspend",
        "agency.example.kz",
        "--reason",
        "metrics",
    ]);
    // The dead test route defers the message (one recipient) and the
    // suspension notice to the contact and the postmaster (two).
    assert!(wait_for(10, || http(
        gw.admin, "GET", "/metrics", None, None
    )
    .1
    .contains("ugem_delivery_recipients_total{class=\"deferred\"} 3")));
    let (st, text) = http(gw.admin, "GET", "/metrics", None, None);
    assert_eq!(st, 200);
    assert!(metric(&text, "ugem_smtp_sessions_total ") >= 1.0);
    assert_eq!(metric(&text, "ugem_smtp_messages_accepted_total "), 1.0);
    assert_eq!(
        metric(&text, "ugem_smtp_refusals_total{reply=\"550 5.7.1\"} "),
        1.0
    );
    assert_eq!(
        metric(&text, "ugem_delivery_recipients_total{class=\"deferred\"} "),
        3.0
    );
    assert_eq!(metric(&text, "ugem_queue_messages{state=\"held\"} "), 1.0);
    assert_eq!(
        metric(&text, "ugem_suspensions_active{scope=\"domain\"} "),
        1.0
    );
    assert!(metric(&text, "ugem_queue_oldest_age_seconds ") >= 0.0);
    assert!(metric(&text, "ugem_store_size_bytes{file=\"store\"} ") > 0.0);
}

#[test]
fn queue_alarm_reaches_the_postmaster() {
    let gw = Gateway::start("[alarms]\nqueue_size = 1\ncheck_interval = \"1s\"\n");
    gw.register("agency.example.kz", &["127.0.0.1"]);
    for i in 0..2 {
        let mut s = Smtp::greeted(gw.smtp);
        let r = s.send_mail(
            "clerk@agency.example.kz",
            &["a@example.org"],
            &format!("Subject: {i}\r\n\r\nx\r\n"),
        );
        assert_eq!(r.code, 250);
    }
    assert!(
        wait_for(15, || {
            let (_, body) = http(gw.admin, "GET", "/api/v1/queue", Some(VIEWER_TOKEN), None);
            body.contains("\"direction\":\"local\"") && body.contains("postmaster@gw.test.example")
        }),
        "no alarm queued; log:\n{}",
        gw.log_text()
    );
    assert!(gw.log_text().contains("queue alarm"));
}
