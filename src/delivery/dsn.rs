//! Delivery status notifications (RFC 3464): [`bounce`] for recipients that
//! failed, [`delay_warning`] for recipients still being retried. Each is a
//! `multipart/report; report-type=delivery-status` with a text part for
//! people, a `message/delivery-status` part for programs and a
//! `text/rfc822-headers` part with the original headers (never the body:
//! the sender has it, and a bounce should not carry content onwards).
//!
//! Internationalized mail (UTF-8 in the original header or in an address)
//! is reported per RFC 6533: `message/global-delivery-status` with UTF-8
//! addresses as they are (`utf-8; ...`), `message/global-headers`, and the
//! text part labelled `charset=utf-8`; every 8-bit part (and the multipart)
//! says `Content-Transfer-Encoding: 8bit`. Other mail stays 7-bit.
//!
//! `Remote-MTA` names the host the connection was made to (the MX or next
//! hop), never its address: that is in the mail log's `relay`.
//!
//! Notifications go from the null sender (so they are never bounced in
//! turn) and none is made for a message from the null sender. Everything
//! written is CRLF-only with lines of at most 998 octets; text that came
//! from a remote server or from the original message is sanitised first.

use chrono::{DateTime, Utc};
use ugem_queue::{Direction, Envelope, NewEnvelope};

use crate::reply::Enhanced;

/// Longest line written (RFC 5322 §2.1.1, CRLF excluded).
const MAX_LINE: usize = 998;
/// Where folding aims (RFC 5322 §2.1.1 "SHOULD").
const FOLD_AT: usize = 78;
/// Longest diagnostic kept, in characters.
const MAX_DIAGNOSTIC: usize = 2000;
/// Most octets of original headers returned.
const MAX_HEADERS: usize = 100 * 1024;

/// Failed recipient, diagnostic (remote reply or local reason), and the
/// remote MTA's name (see [`crate::maillog::Hop::remote_mta`]).
pub type FailedRcpt = (String, String, Option<String>);

/// What the notification reports.
#[derive(Clone, Copy)]
enum Kind {
    /// Given up: `Action: failed`, status 5.x.x.
    Failed,
    /// Still retrying until the given time: `Action: delayed`, status 4.x.x.
    Delayed(DateTime<Utc>),
}

/// A bounce to the envelope sender for the recipients in `failed`
/// (address, diagnostic, remote MTA such as `"mx.example"`).
/// None when the sender is the null sender (never bounce a bounce) or
/// nothing failed. The result goes into the queue as local mail from `<>`.
pub fn bounce(
    env: &Envelope,
    original: &[u8],
    failed: &[FailedRcpt],
    reporting_mta: &str,
    postmaster: &str,
    now: DateTime<Utc>,
) -> Option<(NewEnvelope, Vec<u8>)> {
    report(
        Kind::Failed,
        env,
        original,
        failed,
        reporting_mta,
        postmaster,
        now,
    )
}

/// A warning to the envelope sender that the recipients in `delayed` are
/// still being retried, until `retry_until`. None for the null sender.
pub fn delay_warning(
    env: &Envelope,
    original: &[u8],
    delayed: &[FailedRcpt],
    reporting_mta: &str,
    postmaster: &str,
    now: DateTime<Utc>,
    retry_until: DateTime<Utc>,
) -> Option<(NewEnvelope, Vec<u8>)> {
    report(
        Kind::Delayed(retry_until),
        env,
        original,
        delayed,
        reporting_mta,
        postmaster,
        now,
    )
}

fn report(
    kind: Kind,
    env: &Envelope,
    original: &[u8],
    rcpts: &[FailedRcpt],
    reporting_mta: &str,
    postmaster: &str,
    now: DateTime<Utc>,
) -> Option<(NewEnvelope, Vec<u8>)> {
    if env.sender.is_empty() || rcpts.is_empty() {
        return None;
    }
    let mta = clean(reporting_mta, false);
    let headers = original_headers(original);
    // RFC 6533: an internationalized message (UTF-8 in its header or an
    // address) is reported with the global types, which may carry UTF-8.
    let global = !headers.is_ascii()
        || !env.sender.is_ascii()
        || rcpts.iter().any(|(rcpt, _, _)| !rcpt.is_ascii());
    let notice = notice(kind, rcpts, &mta, postmaster);
    let status = status_fields(kind, env, rcpts, &mta, global, now);
    let boundary = loop {
        let b = format!(
            "ugem.{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        if !contains(&headers, b.as_bytes()) {
            break b;
        }
    };
    let sender = clean(&env.sender, true);
    let mut m = Vec::with_capacity(4096 + headers.len());

    // The message header.
    push(
        &mut m,
        &fold(
            "From",
            &format!("Mail Delivery System <MAILER-DAEMON@{mta}>"),
        ),
    );
    push(&mut m, &fold("To", &format!("<{sender}>")));
    let subject = match kind {
        Kind::Failed => "Undelivered Mail Returned to Sender",
        Kind::Delayed(_) => "Delayed Mail (still being retried)",
    };
    push(&mut m, &fold("Subject", subject));
    push(&mut m, &fold("Date", &now.to_rfc2822()));
    push(
        &mut m,
        &fold(
            "Message-ID",
            &format!(
                "<{}.{:016x}@{mta}>",
                now.timestamp_millis(),
                rand::random::<u64>()
            ),
        ),
    );
    // RFC 3834: keeps auto-responders from answering.
    push(&mut m, "Auto-Submitted: auto-replied\r\n");
    push(&mut m, "MIME-Version: 1.0\r\n");
    push(
        &mut m,
        &format!(
            "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
        ),
    );
    // A multipart with an 8-bit part is 8-bit too (RFC 2045 §6.4).
    if !(notice.is_ascii() && status.is_ascii() && headers.is_ascii()) {
        push(&mut m, "Content-Transfer-Encoding: 8bit\r\n");
    }
    push(&mut m, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    // Part 1: for people.
    let charset = if notice.is_ascii() {
        "us-ascii"
    } else {
        "utf-8"
    };
    part_header(
        &mut m,
        &boundary,
        "Notification",
        &format!("text/plain; charset={charset}"),
        &notice,
    );
    m.extend_from_slice(&notice);

    // Part 2: for programs.
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    part_header(&mut m, &boundary, "Delivery report", status_type, &status);
    m.extend_from_slice(&status);

    // Part 3: the original headers.
    let headers_type = if global {
        "message/global-headers"
    } else {
        "text/rfc822-headers"
    };
    part_header(
        &mut m,
        &boundary,
        "Undelivered Message Headers",
        headers_type,
        &headers,
    );
    m.extend_from_slice(&headers);
    push(&mut m, &format!("\r\n--{boundary}--\r\n"));

    let env = NewEnvelope {
        sender: String::new(),
        recipients: vec![env.sender.clone()],
        client_ip: None,
        helo: mta,
        tls: None,
        domain: None,
        direction: Direction::Local,
        arrived_at_ms: u64::try_from(now.timestamp_millis()).unwrap_or(0),
        size: m.len() as u64,
    };
    Some((env, m))
}

/// A part's boundary line and header; 8bit when `body` is not ASCII.
fn part_header(m: &mut Vec<u8>, boundary: &str, description: &str, ctype: &str, body: &[u8]) {
    push(m, &format!("--{boundary}\r\n"));
    push(m, &format!("Content-Description: {description}\r\n"));
    push(m, &format!("Content-Type: {ctype}\r\n"));
    if !body.is_ascii() {
        push(m, "Content-Transfer-Encoding: 8bit\r\n");
    }
    push(m, "\r\n");
}

/// The text for people: what happened, and each recipient with what the
/// mail system said. UTF-8 only where an address is.
fn notice(kind: Kind, rcpts: &[FailedRcpt], mta: &str, postmaster: &str) -> Vec<u8> {
    let mut m = Vec::new();
    let postmaster = clean(postmaster, false);
    let intro = match kind {
        Kind::Failed => format!(
            "This is the mail system at host {mta}.\n\n\
             I'm sorry to have to inform you that your message could not be \
             delivered to one or more recipients. The headers of your message \
             are attached below.\n\n\
             For further assistance, please contact <{postmaster}>.\n\n\
             The mail system said:\n"
        ),
        Kind::Delayed(until) => format!(
            "This is the mail system at host {mta}.\n\n\
             THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\n\
             Your message could not be delivered yet to one or more recipients. \
             Delivery will be retried until {}.\n\n\
             For further assistance, please contact <{postmaster}>.\n\n\
             The mail system said:\n",
            until.to_rfc2822()
        ),
    };
    for para in intro.split('\n') {
        push(&mut m, &wrap(para, ""));
    }
    for (rcpt, diag, _) in rcpts {
        let text = format!("<{}>: {}", clean(rcpt, true), diagnostic(diag));
        push(&mut m, &wrap(&text, "    "));
        push(&mut m, "\r\n");
    }
    m
}

/// The delivery-status fields (RFC 3464): per message, then per recipient;
/// `global` for message/global-delivery-status (addresses in UTF-8).
fn status_fields(
    kind: Kind,
    env: &Envelope,
    rcpts: &[FailedRcpt],
    mta: &str,
    global: bool,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let mut m = Vec::new();
    push(&mut m, &fold("Reporting-MTA", &format!("dns; {mta}")));
    push(&mut m, &fold("X-Ugem-Queue-ID", &env.id.to_string()));
    if let Some(arrived) = DateTime::from_timestamp_millis(env.arrived_at_ms as i64) {
        push(&mut m, &fold("Arrival-Date", &arrived.to_rfc2822()));
    }
    for (rcpt, diag, remote) in rcpts {
        push(&mut m, "\r\n");
        push(
            &mut m,
            &fold("Final-Recipient", &address_field(rcpt, global)),
        );
        let (action, class) = match kind {
            Kind::Failed => ("failed", 5),
            Kind::Delayed(_) => ("delayed", 4),
        };
        push(&mut m, &fold("Action", action));
        push(&mut m, &fold("Status", &status(diag, class)));
        // A host name is one word: anything after the first is not its.
        if let Some(remote) = remote.as_deref().and_then(|r| r.split_whitespace().next()) {
            push(
                &mut m,
                &fold("Remote-MTA", &format!("dns; {}", clean(remote, false))),
            );
        }
        let diag = diagnostic(diag);
        let kind_of = if reply_code(&diag).is_some() {
            "smtp"
        } else {
            "X-ugem"
        };
        push(
            &mut m,
            &fold("Diagnostic-Code", &format!("{kind_of}; {diag}")),
        );
        push(&mut m, &fold("Last-Attempt-Date", &now.to_rfc2822()));
        if let Kind::Delayed(until) = kind {
            push(&mut m, &fold("Will-Retry-Until", &until.to_rfc2822()));
        }
    }
    push(&mut m, "\r\n");
    m
}

fn push(m: &mut Vec<u8>, s: &str) {
    m.extend_from_slice(s.as_bytes());
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Control characters become spaces; non-ASCII stays only where `utf8` allows
/// (addresses of SMTPUTF8 mail), else becomes `?`.
fn clean(s: &str, utf8: bool) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if !c.is_ascii() && !utf8 => '?',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// A diagnostic as written: ASCII, one line, whitespace collapsed, bounded.
fn diagnostic(s: &str) -> String {
    let text = clean(s, false)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.len() > MAX_DIAGNOSTIC {
        format!("{}...", &text[..MAX_DIAGNOSTIC])
    } else {
        text
    }
}

/// The reply code a diagnostic starts with (`"550 5.1.1 ..."`), if any.
fn reply_code(diag: &str) -> Option<u16> {
    let first = diag.split_whitespace().next()?;
    if first.len() == 3
        && first.bytes().all(|b| b.is_ascii_digit())
        && matches!(first.as_bytes()[0], b'2'..=b'5')
    {
        first.parse().ok()
    } else {
        None
    }
}

/// The Status field: the enhanced code at the start of the diagnostic
/// (after a reply code, if there is one) with its class forced to `class`
/// (a failed recipient is 5.x.x even when its last error was 4.4.7), or
/// `class.0.0`.
fn status(diag: &str, class: u8) -> String {
    let mut words = diag.split_whitespace();
    let mut word = words.next();
    if reply_code(diag).is_some() {
        word = words.next();
    }
    match word.and_then(Enhanced::parse) {
        Some(e) => format!("{class}.{}.{}", e.subject, e.detail),
        None => format!("{class}.0.0"),
    }
}

/// `rfc822; addr`, or for an address that is not ASCII the RFC 6533
/// `utf-8; ` form: in a global report (`global`) the UTF-8 as it is
/// (`utf-8-addr-unitext`), else as `\x{HEX}` (`utf-8-addr-xtext`), which
/// keeps a message/delivery-status 7-bit. Either way `+`, `=`, `\` and
/// spaces are written as `\x{HEX}`.
fn address_field(addr: &str, global: bool) -> String {
    let addr = clean(addr, true);
    if addr.is_ascii() {
        return format!("rfc822; {addr}");
    }
    let mut out = String::from("utf-8; ");
    for c in addr.chars() {
        let plain = match c {
            '+' | '=' | '\\' => false,
            '!'..='~' => true,
            _ => global && !c.is_ascii(),
        };
        if plain {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits `s` into pieces of at most `max` bytes (on char boundaries).
fn pieces(mut s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let p = prefix(s, max);
        let p = if p.is_empty() {
            // Only when max is smaller than one character: take it whole.
            &s[..s.chars().next().map_or(s.len(), char::len_utf8)]
        } else {
            p
        };
        out.push(p);
        s = &s[p.len()..];
    }
    out
}

/// `Name: value` folded at spaces into lines of about 78 octets; a word too
/// long for one line is cut, so no line ever exceeds 998.
fn fold(name: &str, value: &str) -> String {
    let mut out = String::new();
    let mut line = format!("{name}:");
    let mut has_word = false;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        for piece in pieces(word, MAX_LINE - 10) {
            if has_word && line.len() + 1 + piece.len() > FOLD_AT {
                out.push_str(&line);
                out.push_str("\r\n");
                line.clear();
            }
            line.push(' ');
            line.push_str(piece);
            has_word = true;
        }
    }
    out.push_str(&line);
    out.push_str("\r\n");
    out
}

/// A paragraph of body text wrapped at about 78 octets, continuation lines
/// indented by `indent`; an empty paragraph is an empty line.
fn wrap(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        for piece in pieces(word, MAX_LINE - 10 - indent.len()) {
            if !line.is_empty() && line.len() + 1 + piece.len() > FOLD_AT {
                out.push_str(&line);
                out.push_str("\r\n");
                line = indent.to_string();
            } else if !line.is_empty() && line != indent {
                line.push(' ');
            }
            line.push_str(piece);
        }
    }
    out.push_str(&line);
    out.push_str("\r\n");
    out
}

/// The original header section, made safe to embed: CRLF line ends only,
/// NULs dropped, lines over 998 octets split (the rest continues as a
/// folded line), at most [`MAX_HEADERS`] octets. Without a blank line the
/// whole message counts as header.
fn original_headers(original: &[u8]) -> Vec<u8> {
    let end = if original.starts_with(b"\r\n") {
        0
    } else {
        original
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(original.len(), |i| i + 2)
    };
    let mut out = Vec::with_capacity(end.min(MAX_HEADERS) + 2);
    for line in original[..end].split(|&b| b == b'\n' || b == b'\r') {
        if line.is_empty() {
            continue;
        }
        let line: Vec<u8> = line.iter().copied().filter(|&b| b != 0).collect();
        let mut rest = &line[..];
        let mut first = true;
        while !rest.is_empty() {
            let room = if first { MAX_LINE } else { MAX_LINE - 1 };
            let (piece, tail) = rest.split_at(room.min(rest.len()));
            if out.len() + piece.len() + 3 > MAX_HEADERS {
                return out;
            }
            if !first {
                out.push(b' ');
            }
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
            rest = tail;
            first = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};
    use ugem_queue::{QueueId, RcptStatus, Recipient};

    const ORIGINAL: &[u8] = b"Received: from agency.example\r\n\
        From: Alice <alice@agency.example>\r\n\
        To: bob@remote.example, carol@remote.example\r\n\
        Subject: quarterly figures\r\n\
        Message-ID: <m1@agency.example>\r\n\
        \r\n\
        SECRET BODY LINE 1\r\n\
        .dotted line\r\n";

    fn envelope(sender: &str) -> Envelope {
        Envelope {
            id: QueueId::from_parts(1_700_000_000_000, 7),
            sender: sender.into(),
            recipients: ["bob@remote.example", "carol@remote.example"]
                .iter()
                .map(|a| Recipient {
                    address: a.to_string(),
                    status: RcptStatus::Failed,
                    last_error: None,
                    attempts: 1,
                })
                .collect(),
            client_ip: None,
            helo: "agency.example".into(),
            tls: None,
            domain: Some("agency.example".into()),
            direction: Direction::Outbound,
            arrived_at_ms: 1_700_000_000_000,
            size: ORIGINAL.len() as u64,
            next_attempt_ms: 0,
            attempts: 1,
            held: None,
            leased_until_ms: None,
            last_attempt_ms: None,
            backoff_since: 0,
        }
    }

    fn failed() -> Vec<FailedRcpt> {
        vec![
            (
                "bob@remote.example".into(),
                "550 5.1.1 <bob@remote.example>: user unknown".into(),
                Some("mx.remote.example".into()),
            ),
            (
                "carol@remote.example".into(),
                "4.4.7 delivery time expired; last error: 451 4.3.0 try later".into(),
                None,
            ),
        ]
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_100_000, 0).unwrap()
    }

    fn make() -> (NewEnvelope, Vec<u8>) {
        bounce(
            &envelope("alice@agency.example"),
            ORIGINAL,
            &failed(),
            "gw.example",
            "postmaster@gw.example",
            now(),
        )
        .unwrap()
    }

    /// CRLF only, no line over 998, no control characters besides CR LF TAB.
    fn assert_clean(m: &[u8]) {
        for (i, &b) in m.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(m.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
                b'\n' => assert!(i > 0 && m[i - 1] == b'\r', "bare LF at {i}"),
                b'\t' => {}
                0..0x20 | 0x7f => panic!("control 0x{b:02x} at {i}"),
                _ => {}
            }
        }
        assert!(m.ends_with(b"\r\n"));
        for line in m.split(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE + 1, "line of {} octets", line.len());
        }
    }

    /// The per-recipient blocks of the delivery-status part, as name -> value maps.
    fn status_blocks(part: &str) -> Vec<Vec<(String, String)>> {
        part.replace("\r\n ", " ")
            .split("\r\n\r\n")
            .filter(|b| !b.trim().is_empty())
            .map(|b| {
                b.lines()
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .collect()
            })
            .collect()
    }

    fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
        block
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn null_sender_gets_no_bounce() {
        let env = envelope("");
        assert!(
            bounce(
                &env,
                ORIGINAL,
                &failed(),
                "gw.example",
                "pm@gw.example",
                now()
            )
            .is_none()
        );
        assert!(
            delay_warning(
                &env,
                ORIGINAL,
                &failed(),
                "gw.example",
                "pm@gw.example",
                now(),
                now()
            )
            .is_none()
        );
        let env = envelope("alice@agency.example");
        assert!(bounce(&env, ORIGINAL, &[], "gw.example", "pm@gw.example", now()).is_none());
    }

    #[test]
    fn bounce_envelope() {
        let (env, msg) = make();
        assert_eq!(env.sender, "");
        assert_eq!(env.recipients, vec!["alice@agency.example".to_string()]);
        assert_eq!(env.direction, Direction::Local);
        assert_eq!(env.domain, None);
        assert_eq!(env.size, msg.len() as u64);
        assert_eq!(env.arrived_at_ms, 1_700_100_000_000);
    }

    #[test]
    fn bounce_structure() {
        let (_, msg) = make();
        assert_clean(&msg);
        let parsed = MessageParser::default().parse(&msg).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
        let from = parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap();
        assert_eq!(from, "MAILER-DAEMON@gw.example");
        let to = parsed
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap();
        assert_eq!(to, "alice@agency.example");
        assert!(parsed.message_id().unwrap().ends_with("@gw.example"));

        let ct = parsed.root_part().content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));

        let types: Vec<String> = parsed.parts[1..]
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            types,
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ]
        );

        let text = parsed.parts[1].text_contents().unwrap();
        assert!(text.contains("<bob@remote.example>: 550 5.1.1"), "{text}");
        assert!(text.contains("postmaster@gw.example"));

        let ds = String::from_utf8(parsed.parts[2].contents().to_vec()).unwrap();
        let blocks = status_blocks(&ds);
        assert_eq!(blocks.len(), 3, "{ds}");
        assert_eq!(field(&blocks[0], "Reporting-MTA"), Some("dns; gw.example"));
        assert!(field(&blocks[0], "Arrival-Date").unwrap().contains("2023"));
        let bob = &blocks[1];
        assert_eq!(
            field(bob, "Final-Recipient"),
            Some("rfc822; bob@remote.example")
        );
        assert_eq!(field(bob, "Action"), Some("failed"));
        assert_eq!(field(bob, "Status"), Some("5.1.1"));
        assert_eq!(field(bob, "Remote-MTA"), Some("dns; mx.remote.example"));
        assert_eq!(
            field(bob, "Diagnostic-Code"),
            Some("smtp; 550 5.1.1 <bob@remote.example>: user unknown")
        );
        let carol = &blocks[2];
        assert_eq!(
            field(carol, "Final-Recipient"),
            Some("rfc822; carol@remote.example")
        );
        // Expired after 4xx errors: still a failure, so 5.x.x.
        assert_eq!(field(carol, "Status"), Some("5.4.7"));
        assert_eq!(field(carol, "Remote-MTA"), None);
        assert!(
            field(carol, "Diagnostic-Code")
                .unwrap()
                .starts_with("X-ugem; 4.4.7")
        );

        let headers = parsed.parts[3].text_contents().unwrap();
        assert!(headers.contains("Subject: quarterly figures"));
        assert!(headers.contains("Message-ID: <m1@agency.example>"));
        assert!(!contains(&msg, b"SECRET BODY"));
        assert!(!contains(&msg, b".dotted"));
    }

    #[test]
    fn status_from_the_diagnostic() {
        assert_eq!(status("550 5.1.1 user unknown", 5), "5.1.1");
        assert_eq!(status("550 user unknown", 5), "5.0.0");
        assert_eq!(
            status("5.6.0 message has bare line endings; not sent", 5),
            "5.6.0"
        );
        assert_eq!(status("4.4.7 delivery time expired", 5), "5.4.7");
        assert_eq!(status("451 4.3.0 try later", 4), "4.3.0");
        assert_eq!(status("connection refused", 5), "5.0.0");
        assert_eq!(status("", 4), "4.0.0");
    }

    #[test]
    fn hostile_diagnostics_are_sanitised_and_folded() {
        let long = format!(
            "550 5.7.1 {}\r\n.\r\nMAIL FROM:<x>\x00 caf\u{e9} {}",
            "word ".repeat(500),
            "x".repeat(3000)
        );
        let rcpts = vec![(
            "bob@remote.example".to_string(),
            long,
            Some("mx\r\nX: y".to_string()),
        )];
        let (_, msg) = bounce(
            &envelope("alice@agency.example"),
            ORIGINAL,
            &rcpts,
            "gw.example",
            "postmaster@gw.example",
            now(),
        )
        .unwrap();
        assert_clean(&msg);
        assert!(msg.is_ascii());
        assert!(!contains(&msg, b"\r\n.\r\n"));
        assert!(!contains(&msg, b"\r\nX: y"));
        let parsed = MessageParser::default().parse(&msg).unwrap();
        let ds = String::from_utf8(parsed.parts[2].contents().to_vec()).unwrap();
        let blocks = status_blocks(&ds);
        assert_eq!(field(&blocks[1], "Status"), Some("5.7.1"));
        assert_eq!(field(&blocks[1], "Remote-MTA"), Some("dns; mx"));
        let diag = field(&blocks[1], "Diagnostic-Code").unwrap();
        assert!(
            diag.len() <= MAX_DIAGNOSTIC + 20 && diag.ends_with("..."),
            "{}",
            diag.len()
        );
    }

    #[test]
    fn odd_original_headers_are_made_safe() {
        let mut original = b"Subject: a\nX-Bare: b\rX-Nul: c\0d\r\nX-Long: ".to_vec();
        original.extend(std::iter::repeat_n(b'y', 2500));
        original.extend_from_slice(b"\r\n\r\nbody\r\n");
        let (_, msg) = bounce(
            &envelope("alice@agency.example"),
            &original,
            &failed(),
            "gw.example",
            "postmaster@gw.example",
            now(),
        )
        .unwrap();
        assert_clean(&msg);
        assert!(contains(
            &msg,
            b"\r\nSubject: a\r\nX-Bare: b\r\nX-Nul: cd\r\nX-Long: yyy"
        ));
        assert!(!contains(&msg, b"body"));
        // A message without a blank line is all header; one starting with it has none.
        assert_eq!(original_headers(b"A: b\r\nC: d\r\n"), b"A: b\r\nC: d\r\n");
        assert_eq!(original_headers(b"\r\nbody\r\n"), b"");
    }

    #[test]
    fn utf8_addresses() {
        assert_eq!(
            address_field("b\u{f6}b@x.example", false),
            "utf-8; b\\x{F6}b@x.example"
        );
        assert_eq!(
            address_field("b\u{f6}b@x.example", true),
            "utf-8; b\u{f6}b@x.example"
        );
        assert_eq!(
            address_field("a+b=c\\\u{f6}@x", true),
            "utf-8; a\\x{2B}b\\x{3D}c\\x{5C}\u{f6}@x"
        );
        assert_eq!(address_field("a+b@x", true), "rfc822; a+b@x");
        let mut env = envelope("j\u{fc}rgen@agency.example");
        env.recipients.truncate(1);
        let (new, msg) = bounce(
            &env,
            ORIGINAL,
            &failed()[..1],
            "gw.example",
            "pm@gw.example",
            now(),
        )
        .unwrap();
        assert_eq!(
            new.recipients,
            vec!["j\u{fc}rgen@agency.example".to_string()]
        );
        assert_clean(&msg);
    }

    /// Each part's content type, `type/subtype`, and its charset if any.
    fn part_types(parsed: &mail_parser::Message<'_>) -> Vec<(String, Option<String>)> {
        parsed
            .parts
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                (
                    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")),
                    ct.attribute("charset").map(str::to_string),
                )
            })
            .collect()
    }

    #[test]
    fn an_smtputf8_message_is_reported_with_the_global_types() {
        let original = "Subject: \u{43e}\u{442}\u{447}\u{451}\u{442}\r\n\
            From: \u{43a}\u{43b}\u{435}\u{440}\u{43a}@agency.example\r\n\r\nbody\r\n";
        let mut env = envelope("\u{43a}\u{43b}\u{435}\u{440}\u{43a}@agency.example");
        env.recipients.truncate(1);
        let failed = vec![(
            "bj\u{f8}rn+x@remote.example".to_string(),
            "550 5.1.1 user unknown".to_string(),
            Some("mx.remote.example".to_string()),
        )];
        let (new, msg) = bounce(
            &env,
            original.as_bytes(),
            &failed,
            "gw.example",
            "postmaster@gw.example",
            now(),
        )
        .unwrap();
        assert_clean(&msg);
        assert_eq!(new.recipients, vec![env.sender.clone()]);
        let parsed = MessageParser::default().parse(&msg).unwrap();
        let ct = parsed.root_part().content_type().unwrap();
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(
            part_types(&parsed)[1..],
            [
                ("text/plain".to_string(), Some("utf-8".to_string())),
                ("message/global-delivery-status".to_string(), None),
                ("message/global-headers".to_string(), None),
            ]
        );
        let text = parsed.parts[1].text_contents().unwrap();
        assert!(
            text.contains("<bj\u{f8}rn+x@remote.example>: 550 5.1.1"),
            "{text}"
        );
        let ds = String::from_utf8(parsed.parts[2].contents().to_vec()).unwrap();
        let blocks = status_blocks(&ds);
        // RFC 6533 unitext: the UTF-8 as it is, '+' escaped.
        assert_eq!(
            field(&blocks[1], "Final-Recipient"),
            Some("utf-8; bj\u{f8}rn\\x{2B}x@remote.example")
        );
        assert_eq!(field(&blocks[1], "Status"), Some("5.1.1"));
        assert_eq!(
            field(&blocks[1], "Remote-MTA"),
            Some("dns; mx.remote.example")
        );
        let headers = String::from_utf8(parsed.parts[3].contents().to_vec()).unwrap();
        assert!(
            headers.contains("Subject: \u{43e}\u{442}\u{447}\u{451}\u{442}\r\n"),
            "{headers}"
        );
        assert!(!contains(&msg, b"body"));
        // Raw UTF-8 is labelled 8bit, never us-ascii.
        assert!(!contains(&msg, b"charset=us-ascii"));
        assert!(contains(&msg, b"Content-Transfer-Encoding: 8bit"));

        // An ASCII message keeps the RFC 3464 types and stays 7-bit.
        let (_, msg) = make();
        assert!(msg.is_ascii());
        let parsed = MessageParser::default().parse(&msg).unwrap();
        assert_eq!(
            part_types(&parsed)[1..],
            [
                ("text/plain".to_string(), Some("us-ascii".to_string())),
                ("message/delivery-status".to_string(), None),
                ("text/rfc822-headers".to_string(), None),
            ]
        );
    }

    #[test]
    fn utf8_headers_alone_make_the_report_global() {
        let original = "Subject: caf\u{e9}\r\n\r\nbody\r\n";
        let (_, msg) = bounce(
            &envelope("alice@agency.example"),
            original.as_bytes(),
            &failed(),
            "gw.example",
            "pm@gw.example",
            now(),
        )
        .unwrap();
        let parsed = MessageParser::default().parse(&msg).unwrap();
        let types: Vec<String> = part_types(&parsed).into_iter().map(|t| t.0).collect();
        assert_eq!(
            types[1..],
            [
                "text/plain",
                "message/global-delivery-status",
                "message/global-headers"
            ]
        );
        // The addresses are ASCII: rfc822 as before; the text part too.
        let ds = String::from_utf8(parsed.parts[2].contents().to_vec()).unwrap();
        assert_eq!(
            field(&status_blocks(&ds)[1], "Final-Recipient"),
            Some("rfc822; bob@remote.example")
        );
        assert_eq!(part_types(&parsed)[1].1.as_deref(), Some("us-ascii"));
    }

    #[test]
    fn delay_warning_structure() {
        let until = DateTime::from_timestamp(1_700_432_000, 0).unwrap();
        let delayed = vec![(
            "bob@remote.example".to_string(),
            "451 4.3.0 try later".to_string(),
            Some("mx.remote.example".to_string()),
        )];
        let (env, msg) = delay_warning(
            &envelope("alice@agency.example"),
            ORIGINAL,
            &delayed,
            "gw.example",
            "postmaster@gw.example",
            now(),
            until,
        )
        .unwrap();
        assert_eq!(env.sender, "");
        assert_clean(&msg);
        let parsed = MessageParser::default().parse(&msg).unwrap();
        assert_eq!(parsed.subject(), Some("Delayed Mail (still being retried)"));
        let ds = String::from_utf8(parsed.parts[2].contents().to_vec()).unwrap();
        let blocks = status_blocks(&ds);
        assert_eq!(field(&blocks[1], "Action"), Some("delayed"));
        assert_eq!(field(&blocks[1], "Status"), Some("4.3.0"));
        assert_eq!(
            field(&blocks[1], "Will-Retry-Until"),
            Some(until.to_rfc2822().as_str())
        );
        assert!(
            parsed.parts[1]
                .text_contents()
                .unwrap()
                .contains("WARNING ONLY")
        );
    }

    #[test]
    fn folding() {
        let f = fold("Diagnostic-Code", &format!("smtp; {}", "abc ".repeat(100)));
        for line in f.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= FOLD_AT, "{line}");
        }
        assert!(f.starts_with("Diagnostic-Code: smtp; abc"));
        let f = fold("X", &"z".repeat(5000));
        assert!(f.split("\r\n").all(|l| l.len() <= MAX_LINE));
        assert_eq!(
            f.replace("\r\n ", "").replace("X: ", "").trim_end(),
            "z".repeat(5000)
        );
        assert_eq!(fold("Action", "failed"), "Action: failed\r\n");
    }
}
