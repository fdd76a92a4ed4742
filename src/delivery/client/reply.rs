//! Reading the remote's replies: multi-line replies into a typed
//! [`RemoteReply`] (code, enhanced status code, sanitised lines), bounded in
//! line length, line count and size, and the EHLO reply's keywords
//! ([`Extensions`]).
//!
//! mail-send's reader (smtp-proto's `ResponseReceiver`) caps reply text at
//! 4096 octets, but empty continuation lines (`250-\r\n` over and over) grow
//! its buffer without bound (6 MB of them were taken without an error); only
//! the command timeout would end it (attacks.md F1). [`parse_reply`] bounds
//! all three.

use std::fmt;
use std::fmt::Write as _;

use crate::delivery::outcome::{Class, classify};
use crate::reply::{Enhanced, Outcome};

/// Longest reply line accepted, LF included. RFC 5321 §4.5.3.1.5 says 512;
/// real servers exceed it a little, hostile ones by megabytes.
pub const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one (multi-line) reply; an EHLO reply has about 20.
pub const MAX_REPLY_LINES: usize = 100;
/// Most octets in one reply, all lines together.
pub const MAX_REPLY_SIZE: usize = 32 * 1024;
/// How much of a reply's text goes into a result or error message.
const MAX_REPLY_TEXT: usize = 900;

/// A reply from the remote server, its text sanitised (printable ASCII only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code of the first line, if it had one matching the code's class.
    pub enhanced: Option<Enhanced>,
    /// The text of each line, without code and enhanced code.
    pub lines: Vec<String>,
}

impl RemoteReply {
    /// Done, retry, or bounce.
    pub fn class(&self) -> Class {
        classify(self.code, None)
    }

    /// The recipient's outcome when this reply, read as `class`, decides it.
    pub fn outcome(&self, class: Class) -> Outcome {
        Outcome {
            fate: class.fate(),
            code: Some(self.code),
            enhanced: self.enhanced,
            text: self.to_string(),
        }
    }
}

impl fmt::Display for RemoteReply {
    /// `550 5.1.1 user unknown`; lines joined by a space, the text bounded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("{}", self.code);
        if let Some(e) = self.enhanced {
            let _ = write!(out, " {e}");
        }
        for line in self.lines.iter().filter(|l| !l.is_empty()) {
            out.push(' ');
            out.push_str(line);
            if out.len() > MAX_REPLY_TEXT {
                break;
            }
        }
        if out.len() > MAX_REPLY_TEXT {
            // Text is ASCII (sanitised), so any index is a char boundary.
            out.truncate(MAX_REPLY_TEXT);
            out.push_str("...");
        }
        f.write_str(&out)
    }
}

/// Collects one reply line by line, within the limits.
#[derive(Debug, Default)]
pub(super) struct ReplyBuilder {
    code: u16,
    enhanced: Option<Enhanced>,
    lines: Vec<String>,
    size: usize,
}

impl ReplyBuilder {
    /// Takes one line without its LF (a trailing CR is dropped); returns the
    /// reply once its last line has come.
    pub(super) fn line(&mut self, raw: &[u8]) -> Result<Option<RemoteReply>, ReplyError> {
        self.size += raw.len() + 1;
        if raw.len() + 1 > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        if self.size > MAX_REPLY_SIZE {
            return Err(ReplyError::TooLarge);
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (code, rest) = match raw {
            [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', rest @ ..] => (
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
                rest,
            ),
            _ => return Err(ReplyError::BadCode),
        };
        let (last, text) = match rest {
            [] => (true, &[][..]),
            [b' ', text @ ..] => (true, text),
            [b'-', text @ ..] => (false, text),
            _ => return Err(ReplyError::BadSeparator),
        };
        // RFC 5321 §4.2.1 wants the same code on every line; the first
        // line's code is the one that counts.
        if self.lines.is_empty() {
            self.code = code;
        }
        let mut text = sanitize(text);
        let class = (self.code / 100) as u8;
        let first_word = text.split(' ').next().unwrap_or("");
        match Enhanced::parse(first_word) {
            Some(e) if e.class == class && (self.lines.is_empty() || self.enhanced == Some(e)) => {
                if self.lines.is_empty() {
                    self.enhanced = Some(e);
                }
                text = text[first_word.len()..].trim_start().to_string();
            }
            _ => {}
        }
        self.lines.push(text);
        if !last {
            return Ok(None);
        }
        let done = std::mem::take(self);
        Ok(Some(RemoteReply {
            code: done.code,
            enhanced: done.enhanced,
            lines: done.lines,
        }))
    }
}

/// Printable ASCII stays, TAB becomes a space, anything else `?`: reply
/// text ends up in logs, queue records and DSNs.
fn sanitize(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x20..=0x7e => b as char,
            b'\t' => ' ',
            _ => '?',
        })
        .collect()
}

/// Parses the first complete reply at the start of `buf`: `Ok(None)` when
/// more bytes are needed, else the reply and how many bytes it used. Pure
/// and bounded (lines, line count, size), for fuzzing.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(RemoteReply, usize)>, ReplyError> {
    let mut builder = ReplyBuilder::default();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() >= MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            return Ok(None);
        };
        pos += lf + 1;
        if let Some(reply) = builder.line(&rest[..lf])? {
            return Ok(Some((reply, pos)));
        }
    }
}

/// The extensions the remote announced in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// SIZE: `Some(0)` offered without a limit, `Some(n)` the limit.
    pub size: Option<u64>,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
}

impl Extensions {
    /// Reads the keywords of an EHLO reply (all lines after the first).
    pub fn from_ehlo(reply: &RemoteReply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "PIPELINING" => ext.pipelining = true,
                "STARTTLS" => ext.starttls = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                _ => {}
            }
        }
        ext
    }
}

/// Why a reply could not be read (the server's fault, not ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line longer than [`MAX_REPLY_LINE`].
    #[error("reply line longer than {MAX_REPLY_LINE} octets")]
    LineTooLong,
    /// More than [`MAX_REPLY_LINES`] lines.
    #[error("reply of more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    /// More than [`MAX_REPLY_SIZE`] octets.
    #[error("reply larger than {MAX_REPLY_SIZE} octets")]
    TooLarge,
    /// Not three digits from 2xx to 5xx at the start of a line.
    #[error("reply without a valid code")]
    BadCode,
    /// A code followed by something other than space, '-' or the line end.
    #[error("reply with a bad separator after the code")]
    BadSeparator,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(RemoteReply, usize)>, ReplyError> {
        parse_reply(s.as_bytes())
    }

    #[test]
    fn single_and_multi_line_replies() {
        let (r, used) = parse("250 2.1.5 ok\r\nrest").unwrap().unwrap();
        assert_eq!((r.code, used), (250, 14));
        assert_eq!(r.enhanced, Enhanced::parse("2.1.5"));
        assert_eq!(r.to_string(), "250 2.1.5 ok");

        let (r, _) = parse("550-5.1.1 no such\r\n550-5.1.1 user\r\n550 5.1.1 here\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.to_string(), "550 5.1.1 no such user here");
        assert_eq!(r.class(), Class::Permanent);

        let (r, _) = parse("220\n").unwrap().unwrap();
        assert_eq!((r.code, r.to_string()), (220, "220".to_string()));
        assert_eq!(parse("250-a\r\n250 b").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn enhanced_code_must_match_the_class() {
        let (r, _) = parse("550 4.2.2 mailbox full\r\n").unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.to_string(), "550 4.2.2 mailbox full");
    }

    #[test]
    fn bad_replies() {
        assert_eq!(parse("hello\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse("25\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse("650 x\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse("250x\r\n"), Err(ReplyError::BadSeparator));
        let long = format!("250 {}\r\n", "a".repeat(MAX_REPLY_LINE));
        assert_eq!(parse(&long), Err(ReplyError::LineTooLong));
        // Also without the line end: the reader must not wait for one forever.
        assert_eq!(
            parse(&long[..MAX_REPLY_LINE + 1]),
            Err(ReplyError::LineTooLong)
        );
        let many = "250-\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
        let big = format!("250-{}\r\n", "a".repeat(1000)).repeat(40);
        assert_eq!(parse(&big), Err(ReplyError::TooLarge));
    }

    #[test]
    fn reply_text_is_sanitised_and_bounded() {
        let (r, _) = parse_reply(b"550 5.7.1 caf\xc3\xa9\x1b[31m\tx\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.to_string(), "550 5.7.1 caf???[31m x");
        let lines = "250-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
            .repeat(50)
            + "250 end\r\n";
        let (r, _) = parse(&lines).unwrap().unwrap();
        let text = r.to_string();
        assert!(
            text.len() <= MAX_REPLY_TEXT + 3 && text.ends_with("..."),
            "{text}"
        );
    }

    #[test]
    fn ehlo_extensions() {
        let (r, _) = parse(
            "250-mx.example Hello\r\n250-SIZE 1000\r\n250-pipelining\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n",
        )
        .unwrap()
        .unwrap();
        let e = Extensions::from_ehlo(&r);
        assert_eq!(
            e,
            Extensions {
                size: Some(1000),
                pipelining: true,
                starttls: true,
                eight_bit_mime: true,
                smtputf8: true,
                enhanced_status_codes: true,
            }
        );
        let (r, _) = parse("250-x\r\n250 SIZE\r\n").unwrap().unwrap();
        assert_eq!(Extensions::from_ehlo(&r).size, Some(0));
        // The greeting line itself is no keyword.
        let (r, _) = parse("250 STARTTLS\r\n").unwrap().unwrap();
        assert!(!Extensions::from_ehlo(&r).starttls);
    }
}
