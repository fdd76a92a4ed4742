//! Operations: systemd notifications and graceful shutdown.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

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

#[test]
fn sigterm_during_data_loses_nothing() {
    let mut gw = Gateway::start("");
    gw.register("agency.example.kz", &["127.0.0.1"]);
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect("MAIL FROM:<clerk@agency.example.kz>", 250);
    s.expect("RCPT TO:<citizen@example.org>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"Subject: in flight\r\n\r\nfirst half\r\n");
    let pid = gw.child.as_ref().unwrap().id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The transaction in flight is finished, not cut.
    s.send_raw(b"second half\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 250, "{r:?}");
    let id = r.text().rsplit(' ').next().unwrap().to_string();
    // After it, the session is told to come back later.
    let r = s.cmd("MAIL FROM:<clerk@agency.example.kz>");
    assert!(r.code == 421 || r.code == 0, "{r:?}");
    assert!(gw.terminate().success());
    let q = ugem_queue::Queue::open(&gw.data_dir().join("queue"), Default::default()).unwrap();
    let body = q.body(id.parse().unwrap()).unwrap().expect("message kept");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .ends_with("first half\r\nsecond half\r\n")
    );
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
