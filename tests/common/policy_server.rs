//! An HTTPS server for MTA-STS policies on 127.0.0.1:0: `GET
//! /.well-known/mta-sts.txt` answers the body for the request's Host (404
//! otherwise), after an optional delay; it counts the requests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A running policy server (its thread ends with the test process).
pub struct PolicyServer {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl PolicyServer {
    /// Serves `policies` (host, body) with `tls`, waiting `delay` before each answer.
    pub fn start(
        tls: Arc<rustls::ServerConfig>,
        delay: Duration,
        policies: Vec<(&'static str, String)>,
    ) -> PolicyServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let policies = Arc::new(policies);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { break };
                let (tls, policies, count) = (tls.clone(), policies.clone(), count.clone());
                // One thread per connection: a delayed answer must not hold up the next.
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let conn = rustls::ServerConnection::new(tls).unwrap();
                    let mut s = rustls::StreamOwned::new(conn, s);
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let req = String::from_utf8_lossy(&req).to_string();
                    let host = req
                        .lines()
                        .find_map(|l| l.strip_prefix("Host: "))
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    let body = policies
                        .iter()
                        .find(|(h, _)| *h == host)
                        .filter(|_| req.starts_with("GET /.well-known/mta-sts.txt "))
                        .map(|(_, b)| b.clone());
                    let resp = match body {
                        Some(b) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{b}",
                            b.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
                    };
                    let _ = s.write_all(resp.as_bytes());
                    s.conn.send_close_notify();
                    let _ = s.flush();
                });
            }
        });
        PolicyServer { addr, requests }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
