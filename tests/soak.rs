//! Kill soak: a client sends messages with unique ids while the test SIGKILLs
//! and restarts ugem at random moments. Every message that got a 250 must
//! reach the fake MX; duplicates (delivered, then killed before the queue
//! recorded it) are allowed, counted and printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_mx::{Behaviour, FakeMx};
use common::*;
use rand::Rng;

const AGENCY: &str = "agency.example.kz";

/// Reads one reply, returning its code (multi-line replies read to the end).
fn read_reply(r: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| std::io::ErrorKind::InvalidData.into());
        }
    }
}

/// One transaction in lock step; Ok(true) only for a 250 after the data.
fn try_send(addr: SocketAddr, n: u64) -> std::io::Result<bool> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut w = tcp.try_clone()?;
    let mut r = BufReader::new(tcp);
    if read_reply(&mut r)? != 220 {
        return Ok(false);
    }
    let mut cmd = |c: &str, want: u16| -> std::io::Result<bool> {
        w.write_all(c.as_bytes())?;
        Ok(read_reply(&mut r)? == want)
    };
    if !cmd("EHLO soak.test.example\r\n", 250)? {
        return Ok(false);
    }
    if !cmd("MAIL FROM:<clerk@agency.example.kz>\r\n", 250)? {
        return Ok(false);
    }
    if !cmd(&format!("RCPT TO:<r{n}@example.org>\r\n"), 250)? {
        return Ok(false);
    }
    if !cmd("DATA\r\n", 354)? {
        return Ok(false);
    }
    let body = format!(
        "Subject: soak-{n}\r\nMessage-ID: <soak-{n}@soak.test.example>\r\n\r\nmessage {n}\r\n.\r\n"
    );
    let ok = cmd(&body, 250)?;
    let _ = cmd("QUIT\r\n", 221);
    Ok(ok)
}

#[test]
fn every_accepted_message_survives_random_kills() {
    let mx = FakeMx::start(Behaviour::accept());
    let mut gw = Gateway::start(&format!(
        "[delivery]\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n[delivery.routes]\n\"*\" = \"{}\"\n",
        mx.addr()
    ));
    gw.register(AGENCY, &["127.0.0.1"]);

    let addr = Arc::new(Mutex::new(gw.smtp));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let client = {
        let (addr, stop, acked) = (addr.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            let mut failures = 0u64;
            while !stop.load(Ordering::SeqCst) && n < 100_000 {
                n += 1;
                let a = *addr.lock().unwrap();
                match try_send(a, n) {
                    Ok(true) => acked.lock().unwrap().push(n),
                    _ => {
                        failures += 1;
                        std::thread::sleep(Duration::from_millis(30));
                    }
                }
            }
            (n, failures)
        })
    };

    let mut rng = rand::rng();
    let start = Instant::now();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(rng.random_range(1500..4000)));
        gw.kill();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        gw.spawn();
        *addr.lock().unwrap() = gw.smtp;
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let (sent, failures) = client.join().unwrap();
    let acked: BTreeSet<u64> = acked.lock().unwrap().iter().copied().collect();
    assert!(
        acked.len() >= 20,
        "too few messages accepted to mean anything: {} of {sent}",
        acked.len()
    );

    // Every acknowledged id must reach the MX, within a bounded time.
    let deadline = Instant::now() + Duration::from_secs(90);
    let counts = loop {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for m in mx.messages() {
            let body = String::from_utf8_lossy(&m.body);
            if let Some(n) = body
                .split("Subject: soak-")
                .nth(1)
                .and_then(|r| r.split("\r\n").next())
                .and_then(|n| n.parse::<u64>().ok())
            {
                *counts.entry(n).or_default() += 1;
            }
        }
        let missing = acked.iter().filter(|n| !counts.contains_key(n)).count();
        if missing == 0 || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| !counts.contains_key(n))
        .collect();
    let duplicates: Vec<(u64, usize)> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, c)| (*n, *c))
        .collect();
    let unacked_delivered = counts.keys().filter(|n| !acked.contains(n)).count();
    eprintln!(
        "soak: {sent} attempted, {} acknowledged, {failures} failed or cut off, {} delivered ids, \
         {} duplicated {duplicates:?}, {unacked_delivered} delivered without a 250, {:?} total",
        acked.len(),
        counts.len(),
        duplicates.len(),
        start.elapsed()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged messages never reached the MX: {missing:?}",
        missing.len()
    );
}
