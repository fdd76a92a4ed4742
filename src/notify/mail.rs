//! Notices as e-mail: an RFC 5322 message from the postmaster, queued in the
//! gateway's own spool so that it survives restarts like any other mail.
//!
//! The body is UTF-8 text in quoted-printable (7-bit safe for any next hop,
//! lines of at most 76 octets); a non-ASCII subject is an RFC 2047 encoded word.

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use super::notices::Text;
use super::render::{number_text, render};
use super::templates::TemplateError;
use crate::config::{Config, PlainAddress};
use crate::registry::{Registry, RegistryError};

/// Why a notice could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Nobody to send it to, or an address that is not one.
    #[error("notice not sent: {0}")]
    Recipients(String),
    /// The queue refused it.
    #[error("notice not queued: {0}")]
    Queue(#[from] ugem_queue::QueueError),
    /// No outgoing number could be allocated (the store failed).
    #[error("notice not numbered: {0}")]
    Number(#[from] RegistryError),
    /// Its template (the embedded one included) did not render.
    #[error("notice not written: {0}")]
    Template(#[from] TemplateError),
    /// The shared store (PostgreSQL) is out of reach for its number: the
    /// notice waits in the node's outbox and is queued when it answers.
    #[error(
        "notice kept in the local outbox: PostgreSQL is out of reach for its number; it is numbered and queued when the database answers"
    )]
    Deferred,
}

/// A message ready for the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Envelope recipients, deduplicated.
    pub recipients: Vec<String>,
    /// The RFC 5322 message, CRLF line ends.
    pub message: Vec<u8>,
}

/// The envelope recipients: each address checked, each once.
fn recipients(to: &[String]) -> Result<Vec<String>, NotifyError> {
    let mut recipients: Vec<String> = Vec::new();
    for t in to {
        let a: PlainAddress = t.parse().map_err(|e: String| NotifyError::Recipients(e))?;
        let a = a.to_string();
        if !recipients.iter().any(|r| r.eq_ignore_ascii_case(&a)) {
            recipients.push(a);
        }
    }
    if recipients.is_empty() {
        return Err(NotifyError::Recipients("no recipients".into()));
    }
    Ok(recipients)
}

/// Builds a notice from the postmaster to `to`; `number` is its outgoing
/// number (header `X-Ugem-Notice-Number`).
pub fn build_notice(
    from: &PlainAddress,
    hostname: &str,
    to: &[String],
    subject: &str,
    text: &str,
    date: DateTime<FixedOffset>,
    number: Option<&str>,
) -> Result<Notice, NotifyError> {
    let recipients = recipients(to)?;
    let mut m = String::new();
    m.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
    m.push_str(&format!("From: Mail gateway postmaster <{from}>\r\n"));
    m.push_str(&format!("To: {}\r\n", recipients.join(",\r\n ")));
    m.push_str(&format!("Subject: {}\r\n", encode_subject(subject)));
    m.push_str(&format!(
        "Message-ID: <{}.{:016x}@{hostname}>\r\n",
        date.timestamp_millis(),
        rand::random::<u64>()
    ));
    // RFC 3834: keeps vacation responders from answering the gateway.
    m.push_str("Auto-Submitted: auto-generated\r\n");
    if let Some(n) = number {
        // Only digits and dashes (number_text), never a line break.
        m.push_str(&format!("X-Ugem-Notice-Number: {n}\r\n"));
    }
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: quoted-printable\r\n");
    m.push_str("\r\n");
    m.push_str(&quoted_printable(text));
    Ok(Notice {
        recipients,
        message: m.into_bytes(),
    })
}

/// Numbers `text`, writes it in its languages and queues it for delivery,
/// from the postmaster; returns the queue id and the number. When the
/// shared store cannot give a number, the notice is kept in the node's
/// outbox ([`NotifyError::Deferred`]) and queued once it answers.
pub async fn enqueue_notice(
    queue: &ugem_queue::Queue,
    registry: &Registry,
    cfg: &Config,
    to: &[String],
    text: &Text,
) -> Result<(ugem_queue::QueueId, String), NotifyError> {
    match enqueue_numbered(queue, registry, cfg, to, text).await {
        Err(NotifyError::Number(RegistryError::Store(crate::store::StoreError::Unavailable(
            why,
        )))) => {
            let kept = super::outbox::Deferred::new(to, text);
            let w = crate::store::local::outbox::PendingWrite::Notice {
                notice: serde_json::to_value(&kept).unwrap_or_default(),
            };
            // Rounds that retry what they could not finish (a reminder whose
            // mark could not be written either) keep one copy, not one a round.
            if !registry.is_pending(&w) {
                registry.defer(w, why).await?;
            }
            Err(NotifyError::Deferred)
        }
        r => r,
    }
}

/// [`enqueue_notice`] without the outbox: a store out of reach is an error.
pub(crate) async fn enqueue_numbered(
    queue: &ugem_queue::Queue,
    registry: &Registry,
    cfg: &Config,
    to: &[String],
    text: &Text,
) -> Result<(ugem_queue::QueueId, String), NotifyError> {
    let date = Utc::now().with_timezone(&cfg.registration.utc_offset.0);
    // Recipients are checked before a number is spent on them, so that
    // the outgoing numbers have no gaps from notices never sent.
    recipients(to)?;
    let number = number_text(date.year(), registry.next_notice_number(date.year()).await?);
    let rendered = render(cfg, text, &number, date)?;
    let notice = build_notice(
        &cfg.server.postmaster,
        cfg.server.hostname.as_str(),
        to,
        &rendered.subject,
        &rendered.body,
        date,
        Some(&number),
    )?;
    let env = ugem_queue::NewEnvelope {
        sender: cfg.server.postmaster.to_string(),
        recipients: notice.recipients,
        client_ip: None,
        helo: cfg.server.hostname.to_string(),
        tls: None,
        domain: None,
        direction: ugem_queue::Direction::Local,
        arrived_at_ms: ugem_queue::unix_ms(),
        size: notice.message.len() as u64,
    };
    let id = crate::prepare::enqueue(
        queue,
        env,
        crate::prepare::Origin::Gateway,
        crate::prepare::Body::Memory(notice.message),
    )
    .await?;
    tracing::info!(queue_id = %id, number, notice = text.name, languages = ?rendered.languages, "notice queued");
    Ok((id, number))
}

/// Subject text, folded; RFC 2047 B-encoded words when it is not plain ASCII.
fn encode_subject(subject: &str) -> String {
    // Control characters (a CR or LF would inject headers) become spaces.
    let clean: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let plain = clean.bytes().all(|b| (0x20..0x7f).contains(&b)) && !clean.contains("=?");
    if plain {
        return fold_words(&clean);
    }
    // 36 octets make 48 base64 characters: each encoded word is 60
    // characters, so every line stays within RFC 2047's 76.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in clean.chars() {
        if chunk.len() + c.len_utf8() > 36 {
            words.push(format!("=?utf-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?utf-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

/// Folds ASCII text at spaces so that lines stay near 78 characters.
fn fold_words(s: &str) -> String {
    let mut out = String::new();
    let mut line = "Subject: ".len();
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            if line + 1 + word.len() > 78 && line > 1 {
                out.push_str("\r\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

/// Base64 (RFC 4648) in one line, with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Quoted-printable (RFC 2045 6.7) of UTF-8 text: any line ending in the
/// input becomes CRLF, lines are at most 76 characters with soft breaks.
fn quoted_printable(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    for line in normalized.split('\n') {
        let mut cur = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            let last = chars.peek().is_none();
            // A whole character at a time, so that no soft break splits one.
            let enc = match c {
                // Trailing white space would be stripped in transit.
                ' ' | '\t' if last => format!("={:02X}", c as u8),
                ' ' | '\t' => c.to_string(),
                '=' => "=3D".to_string(),
                '!'..='~' => c.to_string(),
                _ => {
                    let mut buf = [0u8; 4];
                    c.encode_utf8(&mut buf)
                        .bytes()
                        .map(|b| format!("={b:02X}"))
                        .collect()
                }
            };
            // Leave room for the soft break's `=`.
            if !cur.is_empty() && cur.len() + enc.len() > 75 {
                out.push_str(&cur);
                out.push_str("=\r\n");
                cur.clear();
            }
            cur.push_str(&enc);
        }
        out.push_str(&cur);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-03-02T10:00:00+05:00").unwrap()
    }

    fn build(to: &[&str], subject: &str, text: &str) -> Notice {
        let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
        build_notice(
            &"postmaster@gw.example.kz".parse().unwrap(),
            "gw.example.kz",
            &to,
            subject,
            text,
            date(),
            Some("2026-000007"),
        )
        .unwrap()
    }

    fn assert_wire_safe(m: &[u8]) {
        for (i, line) in m.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            assert_eq!(line.last(), Some(&b'\r'), "line {i} without CRLF");
            assert!(line.len() <= 999, "line {i} too long");
            assert!(
                !line[..line.len() - 1].contains(&b'\r'),
                "bare CR in line {i}"
            );
        }
        assert!(m.ends_with(b"\r\n"));
        assert!(m.is_ascii(), "7-bit message");
    }

    #[test]
    fn headers_and_body_parse_back() {
        let text = "Заявка №3 одобрена.\nDomain: minfin.example.kz = connected\n\nLine with trailing space \n".to_string()
            + &"long ".repeat(60);
        let n = build(
            &[
                "it@minfin.example.kz",
                "IT@minfin.example.kz",
                "head@minfin.example.kz",
            ],
            "Заявка одобрена: minfin.example.kz подключён к почтовому шлюзу",
            &text,
        );
        assert_eq!(
            n.recipients,
            ["it@minfin.example.kz", "head@minfin.example.kz"]
        );
        assert_wire_safe(&n.message);
        let msg = mail_parser::MessageParser::default()
            .parse(&n.message)
            .expect("parses");
        assert_eq!(
            msg.subject(),
            Some("Заявка одобрена: minfin.example.kz подключён к почтовому шлюзу")
        );
        let from = msg.from().and_then(|f| f.first()).unwrap();
        assert_eq!(from.address(), Some("postmaster@gw.example.kz"));
        let to: Vec<&str> = msg
            .to()
            .unwrap()
            .iter()
            .filter_map(|a| a.address())
            .collect();
        assert_eq!(to, ["it@minfin.example.kz", "head@minfin.example.kz"]);
        let body = msg.body_text(0).unwrap().replace("\r\n", "\n");
        assert_eq!(body.trim_end(), text.trim_end());
        assert!(body.contains("Line with trailing space \n"), "{body:?}");
        let id = msg.message_id().unwrap();
        assert!(id.ends_with("@gw.example.kz"), "{id}");
        assert!(msg.date().is_some());
        let raw = String::from_utf8(n.message).unwrap();
        assert!(
            raw.contains("Date: Mon, 2 Mar 2026 10:00:00 +0500\r\n"),
            "{raw}"
        );
        assert!(raw.contains("MIME-Version: 1.0\r\n"));
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(raw.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(raw.contains("X-Ugem-Notice-Number: 2026-000007\r\n"));
        for line in raw.split("\r\n") {
            if line.contains("=?utf-8?B?") {
                assert!(line.len() <= 76, "encoded-word line too long: {line}");
            }
        }
    }

    #[test]
    fn header_injection_is_neutralized() {
        let n = build(
            &["it@a.example.kz"],
            "hello\r\nBcc: victim@example.org",
            "text",
        );
        let raw = String::from_utf8(n.message).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert_wire_safe(raw.as_bytes());
        let to = vec!["it@a.example.kz\r\nBcc: x@y.example".to_string()];
        assert!(
            build_notice(
                &"postmaster@gw.example.kz".parse().unwrap(),
                "gw.example.kz",
                &to,
                "s",
                "t",
                date(),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn recipients_are_required_and_checked() {
        let pm: PlainAddress = "postmaster@gw.example.kz".parse().unwrap();
        assert!(matches!(
            build_notice(&pm, "gw.example.kz", &[], "s", "t", date(), None),
            Err(NotifyError::Recipients(_))
        ));
        assert!(
            build_notice(
                &pm,
                "gw.example.kz",
                &["not an address".into()],
                "s",
                "t",
                date(),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn ascii_subjects_stay_readable_and_fold() {
        let s =
            "Application #12 for agency.example.kz approved: ".to_string() + &"word ".repeat(30);
        let n = build(&["it@a.example.kz"], s.trim_end(), "x");
        let raw = String::from_utf8(n.message.clone()).unwrap();
        assert!(raw.contains("Subject: Application #12 for agency.example.kz approved:"));
        assert_wire_safe(&n.message);
        for line in raw.split("\r\n") {
            assert!(line.len() <= 78, "{line}");
        }
        let msg = mail_parser::MessageParser::default()
            .parse(&n.message)
            .unwrap();
        assert_eq!(msg.subject(), Some(s.trim_end()));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn quoted_printable_escapes_and_wraps() {
        assert_eq!(quoted_printable("a=b"), "a=3Db\r\n");
        assert_eq!(quoted_printable("end \r\nx\ty\r"), "end=20\r\nx\ty\r\n\r\n");
        let long = quoted_printable(&"é".repeat(40));
        assert!(long.lines().all(|l| l.len() <= 76), "{long}");
        // Escapes are never split: every line but the last ends in a soft break after one.
        assert!(
            long.lines().rev().skip(1).all(|l| l.ends_with("=A9=")),
            "{long}"
        );
    }
}
