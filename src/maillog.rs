//! The mail log: the lines a mail administrator troubleshoots from, in the
//! manner of Postfix's, all under the target `ugem::maillog` and all naming
//! the queue id (`queue_id`), so that `grep QUEUEID` over the log tells a
//! message's story:
//!
//! - `message queued`: acceptance (client, from, size, nrcpt, TLS);
//! - `delivery`: one line per recipient and attempt, with `to`, `relay`,
//!   `delay`, `delays`, `dsn` and `status` (see [`recipient`]);
//! - `connection failed`, `bounce queued`, `delay warning queued`,
//!   `message deferred`, `message left the queue`, and holds and releases
//!   by the governor and by staff (elsewhere, with `queue_id`).
//!
//! `RUST_LOG=warn,ugem::maillog=info` keeps just these lines.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ugem_queue::{Envelope, RcptStatus};

/// The tracing target of the mail log lines.
pub const TARGET: &str = "ugem::maillog";

/// How one destination's part of an attempt went: where its results came
/// from and how long each phase took. The parts follow Postfix's
/// `delays=a/b/c/d`, `a` (queued before this attempt) being the message's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hop {
    /// The host name and address of the SMTP server that gave the results;
    /// none when no session got that far (a DNS failure, every target
    /// refusing the connection).
    pub relay: Option<(String, SocketAddr)>,
    /// Whether the results are the relay's replies (false: the session
    /// broke, and the results are our own conclusion).
    pub answered: bool,
    /// Delivered to the local mailbox (`relay=local`), not over SMTP.
    pub local: bool,
    /// `b`: waiting for a connection slot (the total and per-destination
    /// limits).
    pub wait: Duration,
    /// `c`: connection setup: MTA-STS policy and DNS look-ups, connecting
    /// (failed targets included), greeting, EHLO, STARTTLS; zero on a reused
    /// connection.
    pub setup: Duration,
    /// `d`: transmission, MAIL FROM to the reply to the end of data.
    pub transmit: Duration,
    /// The session's TLS protocol and cipher; none in plaintext.
    pub tls: Option<String>,
    /// Which policy governed the session's TLS (for TLS reporting).
    pub tls_policy: TlsPolicyKind,
}

/// Which published policy governed a session's TLS, as TLS reporting
/// (RFC 8460) counts them: DANE wins over MTA-STS where both apply
/// (RFC 8461 §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsPolicyKind {
    /// The MX host's TLSA records (RFC 7672).
    Dane,
    /// The recipient domain's MTA-STS policy (RFC 8461).
    Sts,
    /// Neither: the configured level alone.
    #[default]
    None,
}

impl TlsPolicyKind {
    /// `dane`, `sts` or `none`, as the log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsPolicyKind::Dane => "dane",
            TlsPolicyKind::Sts => "sts",
            TlsPolicyKind::None => "none",
        }
    }
}

impl Hop {
    /// `host[ip]:port`, or `none`.
    pub fn relay_text(&self) -> String {
        match &self.relay {
            Some((host, addr)) => format!("{}[{}]:{}", host, addr.ip(), addr.port()),
            None if self.local => "local".into(),
            None => "none".into(),
        }
    }

    /// The remote MTA as bounces name it (`Remote-MTA: dns; <name>`), if
    /// the results are its replies: the MX or next-hop host name the
    /// connection was made to. A route given as a bare address has no name:
    /// then its address literal (`[192.0.2.1]`, RFC 5321 §4.1.3). The
    /// address itself belongs in the log line (`relay`), not here.
    pub fn remote_mta(&self) -> Option<String> {
        let (host, _) = self.relay.as_ref().filter(|_| self.answered)?;
        let host = host.trim_end_matches('.');
        Some(match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
            Ok(ip) => format!("[{ip}]"),
            Err(_) => host.to_string(),
        })
    }
}

/// Times the phases of a [`Hop`]: each call books the time since the
/// previous one to a phase.
#[derive(Debug)]
pub struct HopClock {
    mark: Instant,
    hop: Hop,
}

impl Default for HopClock {
    fn default() -> Self {
        HopClock::start()
    }
}

impl HopClock {
    /// Starts timing now.
    pub fn start() -> HopClock {
        HopClock {
            mark: Instant::now(),
            hop: Hop::default(),
        }
    }

    fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let d = now.duration_since(self.mark);
        self.mark = now;
        d
    }

    /// The time since the last mark was spent waiting for a slot.
    pub fn waited(&mut self) {
        let d = self.lap();
        self.hop.wait += d;
    }

    /// The time since the last mark went to connection setup.
    pub fn set_up(&mut self) {
        let d = self.lap();
        self.hop.setup += d;
    }

    /// The time since the last mark went to sending the message.
    pub fn sent(&mut self) {
        let d = self.lap();
        self.hop.transmit += d;
    }

    /// The session was with `host` at `addr`; `answered`: the results are
    /// its replies.
    pub fn relay(&mut self, host: &str, addr: SocketAddr, answered: bool) {
        self.hop.relay = Some((host.to_string(), addr));
        self.hop.answered = answered;
    }

    /// The session's TLS (`tls`: protocol and cipher, none in plaintext)
    /// and the policy that governed it.
    pub fn tls(&mut self, tls: Option<&str>, policy: TlsPolicyKind) {
        self.hop.tls = tls.map(str::to_string);
        self.hop.tls_policy = policy;
    }

    /// The phases so far (time since the last mark is not counted).
    pub fn hop(&self) -> Hop {
        self.hop.clone()
    }
}

/// Postfix's word for a recipient's state after an attempt.
pub fn status_word(status: RcptStatus) -> &'static str {
    match status {
        RcptStatus::Delivered => "sent",
        RcptStatus::Failed => "bounced",
        RcptStatus::Deferred | RcptStatus::Pending => "deferred",
    }
}

/// The enhanced status code (RFC 3463) of a result: the one the reply or
/// reason text carries (`550 5.1.1 ...`, `4.4.1 cannot connect ...`), else
/// the class's default (`2.0.0`, `4.0.0`, `5.0.0`) like Postfix.
pub fn dsn_code(status: RcptStatus, text: &str) -> String {
    let mut words = text.split_ascii_whitespace();
    let first = words.next().unwrap_or("");
    let candidate = if first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) {
        words.next().unwrap_or("")
    } else {
        first
    };
    if is_enhanced(candidate) {
        return candidate.to_string();
    }
    match status {
        RcptStatus::Delivered => "2.0.0",
        RcptStatus::Failed => "5.0.0",
        RcptStatus::Deferred | RcptStatus::Pending => "4.0.0",
    }
    .to_string()
}

/// `class.subject.detail`: class 2, 4 or 5, subject and detail 1-3 digits.
fn is_enhanced(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Seconds with at most two decimals, as Postfix prints delays.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// `0.01/0/0.25/0.3`: the parts of a delay, in seconds.
fn delays_text(parts: [Duration; 4]) -> String {
    parts
        .iter()
        .map(|d| format!("{}", secs(*d)))
        .collect::<Vec<_>>()
        .join("/")
}

/// Logs one recipient's result of an attempt that started at
/// `attempt_ms` (unix milliseconds):
///
/// `delivery queue_id=Q to=ADDR relay=host[ip]:port delay=0.52
/// delays=0.01/0/0.25/0.26 tls=TLSv1.3 ... tls_policy=dane dsn=2.0.0
/// status=sent (250 2.0.0 ok)`
///
/// `delay` is the time since the message arrived, in seconds; `delays` its
/// parts `a/b/c/d`: queued before this attempt, waiting for a connection
/// slot, connection setup, transmission (see [`Hop`]). `tls` is the
/// session's protocol and cipher (`none` in plaintext), `tls_policy` the
/// policy that governed it: `dane`, `sts` or `none` ([`TlsPolicyKind`]).
pub fn recipient(
    env: &Envelope,
    index: usize,
    status: RcptStatus,
    text: &str,
    hop: &Hop,
    attempt_ms: u64,
) {
    let to = env
        .recipients
        .get(index)
        .map(|r| r.address.as_str())
        .unwrap_or("");
    let queued = Duration::from_millis(attempt_ms.saturating_sub(env.arrived_at_ms));
    let parts = [queued, hop.wait, hop.setup, hop.transmit];
    let total: Duration = parts.iter().sum();
    tracing::info!(
        target: TARGET,
        queue_id = %env.id,
        to = %to,
        relay = %hop.relay_text(),
        delay = secs(total),
        delays = %delays_text(parts),
        tls = %hop.tls.as_deref().unwrap_or("none"),
        tls_policy = %hop.tls_policy.as_str(),
        dsn = %dsn_code(status, text),
        status = %format_args!("{} ({})", status_word(status), one_line(text)),
        "delivery"
    );
}

/// The text on one line, control characters as spaces (remote replies are
/// sanitised already; local reasons may quote anything).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_codes_from_replies_and_reasons() {
        let d = |s, t| dsn_code(s, t);
        assert_eq!(d(RcptStatus::Delivered, "250 2.0.0 queued as 7"), "2.0.0");
        assert_eq!(d(RcptStatus::Failed, "550 5.1.1 no such user"), "5.1.1");
        assert_eq!(d(RcptStatus::Deferred, "451 4.2.1 mailbox busy"), "4.2.1");
        assert_eq!(
            d(RcptStatus::Deferred, "4.4.1 cannot connect: refused"),
            "4.4.1"
        );
        assert_eq!(
            d(RcptStatus::Failed, "4.4.7 delivery time expired"),
            "4.4.7"
        );
        assert_eq!(d(RcptStatus::Delivered, "250 ok"), "2.0.0");
        assert_eq!(d(RcptStatus::Failed, "554 go away"), "5.0.0");
        assert_eq!(d(RcptStatus::Deferred, ""), "4.0.0");
        assert_eq!(d(RcptStatus::Failed, "550 5.1.1234 odd"), "5.0.0");
    }

    #[test]
    fn relay_and_delays_read_like_postfix() {
        let hop = Hop {
            relay: Some(("mx.example.org".into(), "192.0.2.25:25".parse().unwrap())),
            answered: true,
            local: false,
            wait: Duration::ZERO,
            setup: Duration::from_millis(254),
            transmit: Duration::from_millis(1_006),
            ..Hop::default()
        };
        assert_eq!(hop.relay_text(), "mx.example.org[192.0.2.25]:25");
        // The host name, not the address (that is in relay_text).
        assert_eq!(hop.remote_mta().unwrap(), "mx.example.org");
        let broken = Hop {
            answered: false,
            ..hop.clone()
        };
        assert_eq!(broken.remote_mta(), None);
        assert_eq!(broken.relay_text(), "mx.example.org[192.0.2.25]:25");
        let local = Hop {
            local: true,
            ..Hop::default()
        };
        assert_eq!(local.relay_text(), "local");
        assert_eq!(Hop::default().relay_text(), "none");
        assert_eq!(Hop::default().relay_text(), "none");
        // Plaintext, no policy: what the log line says by default.
        assert_eq!(Hop::default().tls, None);
        assert_eq!(Hop::default().tls_policy.as_str(), "none");
        let mut clock = HopClock::start();
        clock.tls(
            Some("TLSv1.3 TLS13_AES_128_GCM_SHA256"),
            TlsPolicyKind::Dane,
        );
        assert_eq!(clock.hop().tls_policy.as_str(), "dane");
        assert_eq!(TlsPolicyKind::Sts.as_str(), "sts");
        assert_eq!(
            delays_text([Duration::from_millis(12), hop.wait, hop.setup, hop.transmit]),
            "0.01/0/0.25/1.01"
        );
        let v6 = Hop {
            relay: Some(("mx6".into(), "[2001:db8::1]:2525".parse().unwrap())),
            ..Hop::default()
        };
        assert_eq!(v6.relay_text(), "mx6[2001:db8::1]:2525");
        // A route named by its address has no name: its address literal.
        let literal = |host: &str, addr: &str| Hop {
            relay: Some((host.into(), addr.parse().unwrap())),
            answered: true,
            ..Hop::default()
        };
        assert_eq!(
            literal("127.0.0.1", "127.0.0.1:25").remote_mta().unwrap(),
            "[127.0.0.1]"
        );
        assert_eq!(
            literal("2001:db8::1", "[2001:db8::1]:25")
                .remote_mta()
                .unwrap(),
            "[IPv6:2001:db8::1]"
        );
        assert_eq!(
            literal("mx.example.org.", "192.0.2.25:25")
                .remote_mta()
                .unwrap(),
            "mx.example.org"
        );
    }

    #[test]
    fn the_clock_books_each_lap_once() {
        let mut c = HopClock::start();
        std::thread::sleep(Duration::from_millis(20));
        c.waited();
        std::thread::sleep(Duration::from_millis(20));
        c.set_up();
        c.sent();
        let h = c.hop();
        assert!(h.wait >= Duration::from_millis(20), "{h:?}");
        assert!(h.setup >= Duration::from_millis(20), "{h:?}");
        assert!(h.transmit < Duration::from_millis(20), "{h:?}");
        assert!(h.relay.is_none());
    }
}
