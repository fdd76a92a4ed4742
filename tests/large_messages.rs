//! Large messages through the real binary (issue #20 item 4): six 25 MiB
//! messages from an agency are accepted (spooled to files past
//! `smtp.spool_threshold`, read from there into the queue's pages) and
//! relayed intact; the gateway's peak memory is set by its settings (the
//! queue's page cache, the delivery body budget, one body being written)
//! and stops growing after the first two, whatever number follows.

mod common;

use std::time::Duration;

use common::fake_mx::{Behaviour, FakeMx};
use common::*;

/// A message of about `size` bytes: headers, then 78-octet lines of text
/// that vary, so that nothing compresses or dedups by accident.
fn message(i: usize, size: usize) -> Vec<u8> {
    let mut m =
        format!("From: clerk@{AGENCY}\r\nTo: citizen@example.org\r\nSubject: large {i}\r\n\r\n")
            .into_bytes();
    let mut n = 0u64;
    while m.len() + 80 < size {
        n += 1;
        m.extend_from_slice(format!("{i:02} {n:010} {}\r\n", "y".repeat(63)).as_bytes());
    }
    m
}

/// Sends `body` over one SMTP session as the agency's clerk.
fn send(port: std::net::SocketAddr, body: &[u8]) {
    let mut s = Smtp::greeted(port);
    s.tcp
        .set_write_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    s.expect("EHLO client.test.example", 250);
    s.expect(
        &format!("MAIL FROM:<clerk@{AGENCY}> SIZE={}", body.len()),
        250,
    );
    s.expect("RCPT TO:<citizen@example.org>", 250);
    s.expect("DATA", 354);
    s.send_raw(body);
    s.send_raw(b".\r\n");
    let r = s.reply();
    assert_eq!(r.code, 250, "{r:?}");
    s.expect("QUIT", 221);
}

#[test]
fn six_25_mib_messages_are_relayed_intact_and_memory_stops_growing() {
    let mx = FakeMx::start(Behaviour::accept());
    let gw = Gateway::start(&format!(
        "[server]\nqueue_cache_size = \"8MiB\"\n\
         [delivery]\nmax_body_memory = \"26MiB\"\n[delivery.routes]\n\"*\" = \"{}\"\n",
        mx.addr()
    ));
    gw.register(AGENCY, &["127.0.0.1"]);
    let pid = gw.child.as_ref().unwrap().id();
    // Warm: one small message through every path first.
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        &format!("clerk@{AGENCY}"),
        &["citizen@example.org"],
        "Subject: warm\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    assert!(mx.wait_for_messages(1, Duration::from_secs(20)));
    let base = proc_status_kib(pid, "VmRSS");
    let size = 25 * 1024 * 1024 - 4096;
    let bodies: Vec<Vec<u8>> = (0..6).map(|i| message(i, size)).collect();
    // One after the other, as one smarthost connection sends them; the
    // gateway delivers each while it accepts the next.
    let mut after_two = 0;
    for (i, body) in bodies.iter().enumerate() {
        send(gw.smtp, body);
        if i == 1 {
            assert!(mx.wait_for_messages(3, Duration::from_secs(120)));
            after_two = proc_status_kib(pid, "VmHWM");
        }
    }
    assert!(
        mx.wait_for_messages(7, Duration::from_secs(120)),
        "log:\n{}",
        gw.log_text()
    );
    // Each arrived byte for byte (after the gateway's own trace header).
    let got = mx.messages();
    for want in &bodies {
        assert!(
            got.iter().any(|m| m.body.ends_with(want)),
            "a 25 MiB message did not arrive intact"
        );
    }
    let peak = proc_status_kib(pid, "VmHWM");
    eprintln!(
        "VmRSS before {base} KiB; peak after 2 messages {after_two} KiB, after 6 {peak} KiB \
         (+{} KiB, then +{} KiB)",
        after_two.saturating_sub(base),
        peak.saturating_sub(after_two)
    );
    // The peak is reached with the first overlap of a delivery (the body
    // read from the queue and its copy, within max_body_memory twice) and
    // an acceptance (one body written into the queue's pages); four more
    // messages (100 MiB) do not raise it.
    assert!(
        peak.saturating_sub(after_two) < 24 << 10,
        "memory kept growing: {after_two} KiB after two messages, {peak} KiB after six"
    );
    assert!(
        peak.saturating_sub(base) < 112 << 10,
        "peak memory grew by {} KiB",
        peak.saturating_sub(base)
    );
    assert!(files_under(&gw.data_dir().join("spool")).is_empty());
}
