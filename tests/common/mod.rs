//! Test support: runs the real `ugem` binary on ephemeral loopback ports and
//! talks SMTP and HTTP to it.
#![allow(dead_code)]

pub mod console_http;
pub mod dns;
pub mod dnssec;
pub mod fake_mx;
pub mod policy_server;
pub mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The admin token every test gateway accepts (role admin).
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// A viewer token.
pub const VIEWER_TOKEN: &str = "test-viewer-token";
/// An operator token.
pub const OPERATOR_TOKEN: &str = "test-operator-token";

/// A running `ugem serve` with its own data folder.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub smtp: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<String>>,
    /// Extra environment of the `ugem serve` process (every spawn).
    pub env: Vec<(String, String)>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ugem")
}

/// The configuration every test gateway uses, with the TOML `extra` merged
/// over it key by key.
pub fn config_text(extra: &str) -> String {
    let mut base: toml::Table = base_config().parse().expect("base config");
    let extra: toml::Table = extra.parse().expect("extra config");
    merge(&mut base, extra);
    toml::to_string(&base).expect("serialize config")
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn base_config() -> String {
    format!(
        r#"[server]
hostname = "gw.test.example"
data_dir = "var"
postmaster = "postmaster@gw.test.example"
log_format = "json"
log_level = "info"

[smtp]
listen = ["127.0.0.1:0"]
min_free_space = "1MiB"
command_timeout = "20s"

# Mail goes nowhere by default (the discard port refuses), and retries are
# rare, so queue contents stay put; tests/delivery.rs sets real routes.
[delivery]
min_backoff = "1h"
max_backoff = "2h"
tls = "none"

[delivery.routes]
"*" = "127.0.0.1:9"

# Notices in English, the language most tests read them in; tests/notices.rs
# sets the languages it checks.
[notify]
languages = ["en"]
# No blocklist look-ups on the internet from tests that set
# registration.gateway_addresses; tests/dnsbl.rs turns the watch on.
[dnsbl]
enabled = false

[admin]
listen = "127.0.0.1:0"
tokens = [
  {{ name = "root", role = "admin", token = "{ADMIN_TOKEN}" }},
  {{ name = "desk", role = "viewer", token = "{VIEWER_TOKEN}" }},
  {{ name = "duty", role = "operator", token = "{OPERATOR_TOKEN}" }},
]
"#
    )
}

impl Gateway {
    /// Starts a gateway with the default test configuration plus `extra`.
    pub fn start(extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("ugem.toml");
        std::fs::write(&config, config_text(extra)).expect("write config");
        Self::start_in(dir, config)
    }

    /// Starts `ugem serve` on an existing folder and configuration.
    pub fn start_in(dir: tempfile::TempDir, config: PathBuf) -> Gateway {
        Self::start_in_env(dir, config, Vec::new())
    }

    /// Starts `ugem serve` on an existing folder and configuration, with extra environment.
    pub fn start_in_env(
        dir: tempfile::TempDir,
        config: PathBuf,
        env: Vec<(String, String)>,
    ) -> Gateway {
        let mut g = Gateway {
            dir,
            config,
            child: None,
            smtp: "127.0.0.1:1".parse().unwrap(),
            admin: "127.0.0.1:1".parse().unwrap(),
            log: Arc::new(Mutex::new(String::new())),
            env,
        };
        g.spawn();
        g
    }

    /// (Re)starts the process and waits for its ready line.
    pub fn spawn(&mut self) {
        let mut child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ugem");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                if !sent
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "ugem ready"
                {
                    let _ = tx.send((
                        v["smtp"].as_str().unwrap_or_default().to_string(),
                        v["admin"].as_str().unwrap_or_default().to_string(),
                    ));
                    sent = true;
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((smtp, admin)) => {
                self.smtp = smtp.split(',').next().unwrap().parse().expect("smtp addr");
                self.admin = admin.parse().expect("admin addr");
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ugem did not become ready; log:\n{}",
                    self.log.lock().unwrap()
                );
            }
        }
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_kill(c.id(), 15);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("ugem did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("var")
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Runs an admin verb of the binary against this gateway.
    pub fn cli(&self, token: &str, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--admin")
            .arg(self.admin_url())
            .args(args)
            .env("UGEM_ADMIN_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .expect("run ugem cli")
    }

    /// Runs an admin verb and returns its stdout, failing the test on error.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(ADMIN_TOKEN, args);
        assert!(
            out.status.success(),
            "ugem {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Registers `domain` on 127.0.0.1, sharing the server with the other
    /// domains registered this way (one agency server, several domains).
    pub fn register_shared(&self, domain: &str) {
        self.cli_ok(&[
            "domain",
            "add",
            domain,
            "--server",
            "127.0.0.1",
            "--shared-servers",
            "--contact",
            "IT Desk <it@contact.example.kz>",
            "--reason",
            "test set-up",
        ]);
    }

    /// Registers a connected domain whose servers are `servers`.
    pub fn register(&self, domain: &str, servers: &[&str]) {
        let mut args = vec![
            "domain",
            "add",
            domain,
            "--contact",
            "IT Desk <it@contact.example.kz>",
            "--reason",
            "test set-up",
        ];
        for s in servers {
            args.push("--server");
            args.push(s);
        }
        self.cli_ok(&args);
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Sends a raw HTTP/1.1 request; returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Bearer {t}"));
    let body = body.unwrap_or("");
    let mut headers = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let (status, _, body) = request_on(&mut s, addr, method, path, &headers, body);
    (status, body)
}

/// Writes one request with `headers` and `body` on `s` (plain or TLS), `Connection: close`,
/// and reads the whole answer; returns (status, head, body).
pub fn request_on(
    s: &mut (impl Read + Write),
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (status, head.to_string(), body.to_string())
}

/// Anything an SMTP client can talk through (plain TCP or TLS).
pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// A line-oriented SMTP client for tests.
pub struct Smtp {
    /// The TCP socket under any TLS layer (for timeouts).
    pub tcp: TcpStream,
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

/// One reply: code and lines of text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect(addr).expect("connect smtp");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        Smtp {
            tcp: stream.try_clone().unwrap(),
            io: Box::new(stream),
            buf: Vec::new(),
        }
    }

    /// Wraps the connection in TLS (after a 220 to STARTTLS).
    pub fn upgrade(self, cfg: std::sync::Arc<rustls::ClientConfig>, name: &str) -> Smtp {
        assert!(
            self.buf.is_empty(),
            "server sent bytes before the TLS handshake"
        );
        let conn =
            rustls::ClientConnection::new(cfg, name.to_string().try_into().unwrap()).unwrap();
        let tcp = self.tcp.try_clone().unwrap();
        Smtp {
            tcp: self.tcp,
            io: Box::new(rustls::StreamOwned::new(conn, tcp)),
            buf: Vec::new(),
        }
    }

    /// Connects and reads the greeting (asserting 220).
    pub fn greeted(addr: SocketAddr) -> Smtp {
        let mut s = Smtp::connect(addr);
        let r = s.reply();
        assert_eq!(r.code, 220, "greeting: {r:?}");
        s
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).expect("write");
        self.io.flush().expect("flush");
    }

    /// Sends a command (CRLF added) and reads one reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} -> {r:?}");
        r
    }

    /// Reads one (possibly multi-line) reply; code 0 on EOF.
    pub fn reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let line = match self.read_line() {
                Some(l) => l,
                None => return Reply { code: 0, lines },
            };
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Reply { code, lines };
            }
        }
    }

    fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).to_string();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            let mut tmp = [0u8; 4096];
            match self.io.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    /// True when the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        self.tcp
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut tmp = [0u8; 1];
        matches!(self.io.read(&mut tmp), Ok(0) | Err(_))
    }

    /// EHLO, MAIL, RCPTs, DATA, body; returns the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> Reply {
        self.expect("EHLO client.test.example", 250);
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        if r.code != 250 {
            return r;
        }
        let mut ok = 0;
        let mut last = r;
        for t in to {
            last = self.cmd(&format!("RCPT TO:<{t}>"));
            if last.code == 250 {
                ok += 1;
            }
        }
        if ok == 0 {
            return last;
        }
        self.expect("DATA", 354);
        self.send_raw(body.as_bytes());
        self.send_raw(b"\r\n.\r\n");
        self.reply()
    }
}

/// Waits until `f` holds, polling for at most `secs` seconds.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Lists files below a folder (for storage assertions).
pub fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The agency domain most tests register for 127.0.0.1.
pub const AGENCY: &str = "agency.example.kz";

/// A gateway with `AGENCY` registered for 127.0.0.1.
pub fn gateway_with_agency(extra: &str) -> Gateway {
    let gw = Gateway::start(extra);
    gw.register(AGENCY, &["127.0.0.1"]);
    gw
}

/// Every queued envelope, through the admin API.
pub fn queued(gw: &Gateway) -> Vec<serde_json::Value> {
    let (st, body) = http(gw.admin, "GET", "/api/v1/queue", Some(VIEWER_TOKEN), None);
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("proc status")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// Reads one HTTP request from `s` and returns its body (by Content-Length),
/// or None if the peer closes or the read fails first: the test receivers of
/// webhooks use it.
pub fn read_http_body(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let len = String::from_utf8_lossy(&data[..i])
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .unwrap_or(0);
        if data.len() >= i + 4 + len {
            return Some(data[i + 4..i + 4 + len].to_vec());
        }
    }
}
