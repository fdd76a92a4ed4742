//! Raw-socket attacks on the real server that tests/smtp_relay.rs and
//! tests/smtp_tls.rs do not cover: NUL and 8-bit bytes, overlong lines and
//! header sections, slow clients, xtext-smuggled CR/LF, cross-protocol probes
//! and the postmaster address. Everything talks to 127.0.0.1 only and every
//! loop is bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const CLERK: &str = "clerk@agency.example.kz";

/// Sends a raw line (CRLF added) and reads one reply.
fn raw(s: &mut Smtp, bytes: &[u8]) -> Reply {
    let mut line = bytes.to_vec();
    line.extend_from_slice(b"\r\n");
    s.send_raw(&line);
    s.reply()
}

/// Waits up to `secs` for the peer to close; true when it did (EOF or reset),
/// false when it still sends or stays open.
fn closed_within(tcp: &mut TcpStream, secs: u64) -> bool {
    tcp.set_read_timeout(Some(Duration::from_secs(secs)))
        .unwrap();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

/// Reads everything the server sends until it closes (bounded), as text.
fn read_to_close(tcp: &mut TcpStream, secs: u64) -> (String, bool) {
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&out).into(), true),
        }
    }
    (String::from_utf8_lossy(&out).into(), false)
}

#[test]
fn nul_in_a_command_is_refused_and_nul_in_data_closes() {
    let gw = gateway_with_agency("[smtp]\nmax_errors = 20\n");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    for bad in [
        &b"NOOP \0"[..],
        b"MAIL FROM:<clerk\0@agency.example.kz>",
        b"MAIL\0FROM:<clerk@agency.example.kz>",
        b"RSET\0",
    ] {
        let r = raw(&mut s, bad);
        assert_eq!(r.code, 500, "{bad:?} -> {r:?}");
        assert!(r.text().starts_with("5.5.2"), "{bad:?} -> {r:?}");
    }
    // The session is still in step.
    s.expect("NOOP", 250);
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    let r = raw(&mut s, b"RCPT TO:<citizen\0@example.org>");
    assert_eq!(r.code, 500, "{r:?}");
    s.expect("RCPT TO:<citizen@example.org>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"Subject: nul\r\n\r\nhello\0world\r\n.\r\n");
    let r = s.reply();
    // Its own reason, not the bare CR or LF one.
    assert_eq!(r.code, 554, "{r:?}");
    assert!(r.text().starts_with("5.6.0 NUL octet"), "{r:?}");
    assert!(!r.text().contains("bare"), "{r:?}");
    assert!(s.is_closed(), "NUL in DATA left the connection open");
    assert!(queued(&gw).is_empty());

    // NUL in a header line too.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    s.expect("RCPT TO:<citizen@example.org>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"Subj\0ect: x\r\n\r\nbody\r\n.\r\n");
    assert_eq!(s.reply().code, 554);
    assert!(s.is_closed());
    assert!(queued(&gw).is_empty());
}

#[test]
fn eight_bit_bytes_without_smtputf8_are_refused() {
    let gw = gateway_with_agency("[smtp]\nmax_errors = 20\n");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    // 8-bit in the verb: not a command.
    for verb in [
        &b"MA\xc3\x89L FROM:<clerk@agency.example.kz>"[..],
        b"NO\xffOP",
    ] {
        let r = raw(&mut s, verb);
        assert_eq!(r.code, 500, "{verb:?} -> {r:?}");
    }
    // Latin-1 (not UTF-8) in an address: 500 5.5.2.
    let r = raw(&mut s, b"MAIL FROM:<cl\xe9rk@agency.example.kz>");
    assert_eq!(r.code, 500, "{r:?}");
    assert!(r.text().starts_with("5.5.2"), "{r:?}");
    // UTF-8 in an address without SMTPUTF8: 553 5.6.7, at MAIL and at RCPT.
    let r = s.cmd("MAIL FROM:<клерк@agency.example.kz>");
    assert_eq!(r.code, 553, "{r:?}");
    assert!(r.text().starts_with("5.6.7"), "{r:?}");
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    let r = s.cmd("RCPT TO:<гражданин@example.org>");
    assert_eq!(r.code, 553, "{r:?}");
    assert!(r.text().starts_with("5.6.7"), "{r:?}");
    let r = s.cmd("RCPT TO:<citizen@пример.рф>");
    assert_eq!(r.code, 553, "{r:?}");
    // Still in step, and the transaction still has no recipient.
    s.expect("DATA", 554);
    s.expect("RSET", 250);
    s.expect("NOOP", 250);
    assert!(queued(&gw).is_empty());
}

#[test]
fn overlong_command_lines_are_refused_and_the_session_stays_in_sync() {
    let gw = gateway_with_agency("[smtp]\nmax_line_length = 512\nmax_errors = 20\n");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    for len in [600usize, 4 << 10, 64 << 10] {
        // A MAIL command whose tail must not be read as a command of its own.
        let mut line = format!("MAIL FROM:<{CLERK}> ").into_bytes();
        line.resize(len - 12, b'x');
        line.extend_from_slice(b" RSET NOOP\r\n");
        assert_eq!(line.len(), len);
        s.send_raw(&line);
        let r = s.reply();
        assert_eq!(r.code, 500, "{len} octets -> {r:?}");
        assert!(r.text().starts_with("5.5.2"), "{r:?}");
        // Exactly one reply for the line: the next command gets its own.
        let r = s.cmd("NOOP");
        assert_eq!(r.code, 250, "after {len} octets: {r:?}");
        // And no transaction was opened by the refused line.
        s.expect("RCPT TO:<citizen@example.org>", 503);
    }
    // A line at the limit is still accepted (CRLF included in the 512).
    let mut line = format!("MAIL FROM:<{CLERK}> ").into_bytes();
    line.resize(510, b' ');
    s.send_raw(&line);
    s.send_raw(b"\r\n");
    assert_eq!(s.reply().code, 250);
}

#[test]
fn ten_mib_without_a_newline_keeps_memory_flat() {
    let gw = gateway_with_agency("[smtp]\nmax_errors = 3\n");
    let pid = gw.child.as_ref().unwrap().id();
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    let before = proc_status_kib(pid, "VmRSS");
    let chunk = vec![b'A'; 64 << 10];
    s.tcp
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut w = s.tcp.try_clone().unwrap();
    let start = Instant::now();
    for _ in 0..160 {
        w.write_all(&chunk)
            .expect("server stopped reading a long line");
    }
    let peak = proc_status_kib(pid, "VmRSS");
    w.write_all(b"\r\n").unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "10 MiB took {:?}",
        start.elapsed()
    );
    let r = s.reply();
    assert_eq!(r.code, 500, "{r:?}");
    assert!(r.text().starts_with("5.5.2"), "{r:?}");
    let after = proc_status_kib(pid, "VmRSS");
    let growth = peak.max(after).saturating_sub(before);
    eprintln!("VmRSS before {before} KiB, peak {peak} KiB, after {after} KiB");
    assert!(
        growth < 32 << 10,
        "memory grew by {growth} KiB for one 10 MiB line"
    );
    // The session still answers...
    s.expect("NOOP", 250);
    // ...until too many errors: the third overlong line ends it with 421.
    let long = vec![b'B'; 100 << 10];
    s.send_raw(&long);
    s.send_raw(b"\r\n");
    assert_eq!(s.reply().code, 500);
    s.send_raw(&long);
    s.send_raw(b"\r\n");
    let r = s.reply();
    assert_eq!(r.code, 500, "{r:?}");
    let r = s.reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(s.is_closed());
}

/// Many internet hosts each holding a large unfinished message (inbound
/// mail needs no login): the data goes to spool files, not memory, and
/// nothing is lost when they finish. 40 sessions x 6 MiB held 240 MiB in
/// memory before spooling; the bound here is generous.
#[test]
fn unfinished_data_from_many_clients_stays_out_of_memory() {
    let gw = Gateway::start("[smtp]\nverify_recipients = false\nmax_connections_per_ip = 100\n");
    // Registered for another address: mail from 127.0.0.1 to it is inbound.
    gw.register(AGENCY, &["127.0.0.2"]);
    let pid = gw.child.as_ref().unwrap().id();
    let before = proc_status_kib(pid, "VmRSS");
    let mut clients = Vec::new();
    for i in 0..40 {
        let mut c = Smtp::greeted(gw.smtp);
        c.expect("EHLO client.test.example", 250);
        c.expect(&format!("MAIL FROM:<sender{i}@outside.example>"), 250);
        c.expect(&format!("RCPT TO:<user{i}@{AGENCY}>"), 250);
        c.expect("DATA", 354);
        c.send_raw(format!("Subject: held {i}\r\n\r\n").as_bytes());
        c.tcp
            .set_write_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        clients.push(c);
    }
    let line = "x".repeat(76) + "\r\n";
    let chunk = line.repeat((256 << 10) / line.len());
    for _ in 0..24 {
        for c in clients.iter_mut() {
            c.send_raw(chunk.as_bytes());
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let held = proc_status_kib(pid, "VmRSS");
    let growth = held.saturating_sub(before);
    eprintln!("VmRSS before {before} KiB, with 40 x 6 MiB unfinished {held} KiB");
    assert!(
        growth < 100 << 10,
        "memory grew by {growth} KiB for 240 MiB of unfinished DATA"
    );
    // Two finish: accepted whole. The others hang up: nothing stays behind.
    for (i, c) in clients.iter_mut().enumerate().take(2) {
        c.send_raw(b".\r\n");
        let r = c.reply();
        assert_eq!(r.code, 250, "{i}: {r:?}");
    }
    drop(clients);
    let q = queued(&gw);
    assert_eq!(q.len(), 2);
    for e in &q {
        assert!(e["size"].as_u64().unwrap() > 6_000_000, "{e}");
    }
    assert!(files_under(&gw.data_dir().join("spool")).is_empty());
}

#[test]
fn overlong_header_section_is_refused() {
    let gw = gateway_with_agency("[smtp]\nmax_header_size = \"4KiB\"\n");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    s.expect("RCPT TO:<citizen@example.org>", 250);
    s.expect("DATA", 354);
    // 100 header fields of 80 octets: 8 KB of header, every line short.
    for i in 0..100 {
        s.send_raw(format!("X-Filler-{i:03}: {}\r\n", "h".repeat(62)).as_bytes());
    }
    s.send_raw(b"Subject: big head\r\n\r\nbody\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 552, "{r:?}");
    // One long folded header (Exim CVE-2020-28020 shape) too.
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    s.expect("RCPT TO:<citizen@example.org>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"Subject: folded\r\n");
    for _ in 0..200 {
        s.send_raw(format!("\t{}\r\n", "f".repeat(70)).as_bytes());
    }
    s.send_raw(b"\r\nbody\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 552, "{r:?}");
    // The session goes on and a normal message is accepted.
    let r = s.send_mail(
        CLERK,
        &["citizen@example.org"],
        "Subject: small\r\n\r\nbody\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(queued(&gw).len(), 1);
}

#[test]
fn too_many_errors_end_the_session_with_421() {
    let gw = gateway_with_agency("[smtp]\nmax_errors = 5\n");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    // A harvesting run: unknown-domain recipients are errors too.
    s.expect("MAIL FROM:<someone@example.org>", 250);
    for i in 0..5 {
        let r = s.cmd(&format!("RCPT TO:<user{i}@example.net>"));
        assert_eq!(r.code, 550, "{i}: {r:?}");
    }
    // The fifth refusal is followed by 421 4.7.0 at once.
    let r = s.reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text().starts_with("4.7.0"), "{r:?}");
    assert!(s.is_closed());
}

#[test]
fn slowloris_hits_the_command_deadline() {
    let gw = gateway_with_agency("[smtp]\ncommand_timeout = \"3s\"\n");
    let mut tcp = TcpStream::connect(gw.smtp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greet = [0u8; 512];
    let n = tcp.read(&mut greet).unwrap();
    assert!(greet[..n].starts_with(b"220 "));
    let start = Instant::now();
    // One byte a second of a command that never ends, for at most 12 s.
    let mut w = tcp.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for b in b"NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            .iter()
            .take(12)
        {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let (text, closed) = read_to_close(&mut tcp, 15);
    let took = start.elapsed();
    let _ = trickle.join();
    assert!(text.starts_with("421 4.4.2"), "got {text:?} after {took:?}");
    assert!(closed, "not closed after the 421");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(7),
        "the 3 s command deadline fired after {took:?}"
    );
}

#[test]
fn session_deadline_ends_a_busy_session() {
    let gw = gateway_with_agency(
        "[smtp]\ncommand_timeout = \"20s\"\nsession_timeout = \"4s\"\nmax_errors = 1000\n",
    );
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    let start = Instant::now();
    // A client that keeps every command deadline but never leaves.
    let mut last = None;
    for _ in 0..40 {
        let r = s.cmd("NOOP");
        if r.code != 250 {
            last = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let took = start.elapsed();
    let r = last.expect("session deadline never fired");
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text().starts_with("4.4.2"), "{r:?}");
    assert!(s.is_closed());
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(9),
        "4 s session deadline fired after {took:?}"
    );
}

#[test]
fn xtext_parameters_hiding_cr_or_lf_are_refused() {
    let gw = gateway_with_agency("[smtp]\nmax_errors = 30\n");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    for bad in [
        format!("MAIL FROM:<{CLERK}> ENVID=x+0Ay"),
        format!("MAIL FROM:<{CLERK}> ENVID=x+0Dy"),
        format!("MAIL FROM:<{CLERK}> ENVID=x+0D+0AMAIL"),
        format!("MAIL FROM:<{CLERK}> ENVID=x+00y"),
        format!("MAIL FROM:<{CLERK}> AUTH=<a+0Ab>"),
        format!("MAIL FROM:<{CLERK}> ENVID=x+0ay"),
    ] {
        let r = s.cmd(&bad);
        assert_eq!(r.code, 501, "{bad} -> {r:?}");
        assert!(r.text().starts_with("5.5.4"), "{bad} -> {r:?}");
        // The refused MAIL opened nothing.
        s.expect("RCPT TO:<citizen@example.org>", 503);
    }
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    for bad in [
        "RCPT TO:<citizen@example.org> ORCPT=rfc822;a+0Db@x",
        "RCPT TO:<citizen@example.org> ORCPT=rfc822;a+0Ab@x",
        "RCPT TO:<citizen@example.org> ORCPT=rfc822;a+0D+0AX-Evil:+20y@x",
        "RCPT TO:<citizen@example.org> ORCPT=rfc822;a+00b@x",
    ] {
        let r = s.cmd(bad);
        assert_eq!(r.code, 501, "{bad} -> {r:?}");
    }
    // No recipient was taken: nothing can be queued.
    s.expect("DATA", 554);
    s.expect("QUIT", 221);
    assert!(queued(&gw).is_empty());
}

#[test]
fn unknown_and_duplicate_parameters_get_555() {
    let gw = gateway_with_agency("[smtp]\nmax_errors = 30\n");
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    for bad in [
        format!("MAIL FROM:<{CLERK}> FOO=bar"),
        format!("MAIL FROM:<{CLERK}> XYZZY"),
        format!("MAIL FROM:<{CLERK}> SIZE=10 SIZE=10"),
        format!("MAIL FROM:<{CLERK}> BODY=8BITMIME BODY=7BIT"),
        format!("MAIL FROM:<{CLERK}> SMTPUTF8 SMTPUTF8"),
    ] {
        let r = s.cmd(&bad);
        assert_eq!(r.code, 555, "{bad} -> {r:?}");
        assert!(r.text().starts_with("5.5.4"), "{bad} -> {r:?}");
    }
    for bad in [
        format!("MAIL FROM:<{CLERK}> SIZE=abc"),
        format!("MAIL FROM:<{CLERK}> SIZE=-1"),
        format!("MAIL FROM:<{CLERK}> SIZE=184467440737095516160"),
        format!("MAIL FROM:<{CLERK}> BODY=foo"),
    ] {
        let r = s.cmd(&bad);
        assert_eq!(r.code, 501, "{bad} -> {r:?}");
    }
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    for bad in [
        "RCPT TO:<citizen@example.org> FOO=bar",
        "RCPT TO:<citizen@example.org> SIZE=10",
    ] {
        let r = s.cmd(bad);
        assert_eq!(r.code, 555, "{bad} -> {r:?}");
    }
    // Parameters after HELO (not ESMTP): 555.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("HELO client.test.example", 250);
    s.expect(&format!("MAIL FROM:<{CLERK}> SIZE=10"), 555);
    s.expect(&format!("MAIL FROM:<{CLERK}>"), 250);
    assert!(queued(&gw).is_empty());
}

#[test]
fn tls_client_hello_on_the_plaintext_port_is_dropped_at_once() {
    let gw = gateway_with_agency("[smtp]\ncommand_timeout = \"20s\"\n");
    let mut tcp = TcpStream::connect(gw.smtp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut greet = [0u8; 512];
    let n = tcp.read(&mut greet).unwrap();
    assert!(greet[..n].starts_with(b"220 "));
    // The start of a TLS 1.2/1.3 ClientHello: record type 0x16, no CRLF
    // anywhere; the client then waits for a ServerHello.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xc0, 0x01, 0x00, 0x00, 0xbc, 0x03, 0x03,
    ];
    hello.extend((0u8..32).map(|i| i.wrapping_mul(37)));
    hello.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    tcp.write_all(&hello).unwrap();
    let start = Instant::now();
    let (text, closed) = read_to_close(&mut tcp, 5);
    assert!(
        closed,
        "ClientHello left the connection open (got {text:?})"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "closed only after {:?}",
        start.elapsed()
    );
    assert!(!text.contains("250"), "{text:?}");

    // An SSLv2-style hello (high bit set) likewise.
    let mut tcp = TcpStream::connect(gw.smtp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = tcp.read(&mut greet).unwrap();
    assert!(greet[..n].starts_with(b"220 "));
    tcp.write_all(&[0x80, 0x2e, 0x01, 0x00, 0x02]).unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut tcp, 5), "SSLv2 hello left it open");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn http_connect_and_post_are_dropped() {
    let gw = gateway_with_agency("");
    for probe in [
        &b"CONNECT mx.example.org:25 HTTP/1.1\r\nHost: mx.example.org:25\r\n\r\n"[..],
        b"CONNECT 127.0.0.1:25 HTTP/1.0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nMAIL",
    ] {
        let mut s = Smtp::greeted(gw.smtp);
        s.send_raw(probe);
        let start = Instant::now();
        let (text, closed) = read_to_close(&mut s.tcp, 5);
        assert!(closed, "{probe:?} left the connection open: {text:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(!text.contains("250"), "{probe:?}: {text:?}");
    }
    // Even after a valid EHLO.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.send_raw(b"CONNECT mx.example.org:25 HTTP/1.1\r\n\r\n");
    assert!(s.is_closed());
}

#[test]
fn postmaster_is_always_accepted() {
    let gw = gateway_with_agency("");
    // From a stranger with a foreign sender: postmaster is still reachable.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO stranger.example.org", 250);
    s.expect("MAIL FROM:<someone@example.org>", 250);
    for rcpt in [
        "<postmaster>",
        "<Postmaster>",
        "<POSTMASTER>",
        "<PostMaster@gw.test.example>",
        "<postmaster@GW.TEST.EXAMPLE>",
    ] {
        let r = s.cmd(&format!("RCPT TO:{rcpt}"));
        assert_eq!(r.code, 250, "{rcpt} -> {r:?}");
    }
    // Not someone else's postmaster.
    s.expect("RCPT TO:<postmaster@example.net>", 550);
    s.expect("DATA", 354);
    s.send_raw(b"Subject: abuse report\r\n\r\nhello\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 250, "{r:?}");
    let q = queued(&gw);
    assert_eq!(q.len(), 1, "{q:?}");
    let rcpts = q[0]["recipients"].as_array().unwrap();
    assert_eq!(rcpts.len(), 5, "{q:?}");
    for r in rcpts {
        assert_eq!(r["address"], "postmaster@gw.test.example", "{q:?}");
    }
}
