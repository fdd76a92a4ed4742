//! SMTP replies: a code, an optional enhanced status code (RFC 3463) and
//! text lines, written in the wire form `250-2.0.0 text\r\n250 2.0.0 last\r\n`.
//!
//! A delivery attempt's result for one recipient is an [`Outcome`]: its
//! [`Fate`], the remote reply's code and enhanced code when a reply decided
//! it, and the text as recorded. Delivery makes it; the governor reads it
//! (it sits below delivery, so the type lives here).
//!
//! Reply text often carries words the client sent (an address, an EHLO
//! name), so [`Reply::write_to`] sanitises every line: nothing but printable
//! ASCII ever reaches the wire, never a CR or LF that could forge a reply.

use std::fmt;

/// Longest reply line on the wire, CRLF included (RFC 5321 §4.5.3.1.5).
pub const MAX_REPLY_LINE: usize = 512;

/// An enhanced status code `class.subject.detail` (RFC 3463), e.g. `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Enhanced {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject, 0..=999.
    pub subject: u16,
    /// The detail, 0..=999.
    pub detail: u16,
}

impl Enhanced {
    /// Builds a code from its three numbers.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Enhanced {
        Enhanced {
            class,
            subject,
            detail,
        }
    }

    /// Parses `"5.7.1"`; `None` for anything else (including `""`).
    pub fn parse(s: &str) -> Option<Enhanced> {
        let mut parts = s.split('.');
        let class = parse_digits(parts.next()?, 1)?;
        let subject = parse_digits(parts.next()?, 3)?;
        let detail = parse_digits(parts.next()?, 3)?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(Enhanced::new(class as u8, subject, detail))
    }
}

/// 1 to `max` ASCII digits as a number.
fn parse_digits(s: &str, max: usize) -> Option<u16> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code, repeated on every line; `None` for replies
    /// that carry none (354, the EHLO list).
    pub enhanced: Option<Enhanced>,
    /// The text lines; sanitised when written.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply; `enhanced` is `"x.y.z"`, or `""` for none (a
    /// malformed code is left out rather than sent).
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Enhanced::parse(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (the EHLO extension list, for one).
    pub fn multi<I, S>(code: u16, enhanced: &str, lines: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Reply {
            code,
            enhanced: Enhanced::parse(enhanced),
            lines: lines.into_iter().map(Into::into).collect(),
        }
    }

    /// `250 2.0.0 <text>`.
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply::new(250, "2.0.0", text)
    }

    /// `521 5.5.2`: a bare CR or LF; the session closes after it.
    pub fn bare_newline(what: &str) -> Reply {
        Reply::new(
            521,
            "5.5.2",
            format!("bare CR or LF in {what}; closing connection"),
        )
    }

    /// `500 5.5.2 line too long`.
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "line too long")
    }

    /// `503 5.5.1 <text>`: a command out of sequence.
    pub fn bad_sequence(text: impl Into<String>) -> Reply {
        Reply::new(503, "5.5.1", text)
    }

    /// `501 5.5.4 <text>`: bad arguments.
    pub fn bad_arguments(text: impl Into<String>) -> Reply {
        Reply::new(501, "5.5.4", text)
    }

    /// `552 5.3.4 <text>`: a message over a size limit.
    pub fn too_big(text: impl Into<String>) -> Reply {
        Reply::new(552, "5.3.4", text)
    }

    /// `421 4.7.0 too many errors, closing connection`.
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "too many errors, closing connection")
    }

    /// True for 2xx and 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// True for 4xx: the client may try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// True for 5xx.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The first line as it goes on the wire without the code:
    /// `"5.7.1 relaying denied"` (for logs and connection records).
    pub fn first_line(&self) -> String {
        let text = self.lines.first().map(String::as_str).unwrap_or("");
        let mut out = String::new();
        self.push_tail(&mut out, text);
        out
    }

    /// Appends the wire form, CRLF after every line, the enhanced code on each.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // Codes outside 200..=599 are programming errors; clamping keeps the
        // wire form a valid three-digit code whatever happens.
        let code = self.code.clamp(200, 599);
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        let last = lines.len() - 1;
        for (i, text) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let mut line = format!("{code:03}{sep}");
            self.push_tail(&mut line, text);
            if i == last && line.len() == 4 {
                // "250 " with nothing after it: RFC 5321 wants no trailing space.
                line.pop();
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }

    /// Appends `"x.y.z text"` (sanitised, bounded) to `line`.
    fn push_tail(&self, line: &mut String, text: &str) {
        let start = line.len();
        if let Some(e) = self
            .enhanced
            .filter(|e| u16::from(e.class) == self.code / 100)
        {
            line.push_str(&e.to_string());
            if !text.is_empty() {
                line.push(' ');
            }
        }
        // Room for the code, separator and CRLF around this tail.
        let room = MAX_REPLY_LINE - 6 - (line.len() - start);
        line.extend(text.chars().take(room).map(sanitize_char));
    }
}

/// Printable ASCII and TAB stay; everything else (CR, LF, NUL, DEL, UTF-8)
/// becomes `?`.
fn sanitize_char(c: char) -> char {
    if c == '\t' || (' '..='~').contains(&c) {
        c
    } else {
        '?'
    }
}

impl fmt::Display for Reply {
    /// The code and first line, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.first_line())
    }
}

/// What a delivery attempt made of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Accepted by the remote (2xx after the message).
    Delivered,
    /// Refused for now, or no answer (a connection failure): retried.
    Temporary,
    /// Refused for good (5xx, or our own permanent conclusion): bounced.
    Permanent,
    /// Given up after the queue lifetime, the last result temporary:
    /// bounced, but nobody refused it.
    Expired,
}

/// One recipient's result of a delivery attempt, typed where it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What became of the recipient.
    pub fate: Fate,
    /// The remote's reply code, when a reply decided it.
    pub code: Option<u16>,
    /// The enhanced status code: the reply's, or that of our own conclusion.
    pub enhanced: Option<Enhanced>,
    /// The text as recorded (queue, mail log, DSN): `"550 5.1.1 user
    /// unknown"`, `"4.4.1 cannot connect: ..."`.
    pub text: String,
}

impl Outcome {
    /// Our own conclusion, no remote reply: the text is `"{enhanced} {why}"`.
    pub fn local(fate: Fate, enhanced: Enhanced, why: impl fmt::Display) -> Outcome {
        Outcome {
            fate,
            code: None,
            enhanced: Some(enhanced),
            text: format!("{enhanced} {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        String::from_utf8(r.to_bytes()).unwrap()
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let r = Reply::new(550, "5.7.1", "relaying denied");
        assert_eq!(wire(&r), "550 5.7.1 relaying denied\r\n");
        assert_eq!(r.first_line(), "5.7.1 relaying denied");
        assert_eq!(r.to_string(), "550 5.7.1 relaying denied");
        assert!(r.is_permanent() && !r.is_transient() && !r.is_positive());
    }

    #[test]
    fn multi_line_repeats_enhanced_code() {
        let r = Reply::multi(250, "2.0.0", ["first", "second", "last"]);
        assert_eq!(
            wire(&r),
            "250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 last\r\n"
        );
        let ehlo = Reply::multi(
            250,
            "",
            vec!["gw greets x".to_string(), "PIPELINING".into()],
        );
        assert_eq!(wire(&ehlo), "250-gw greets x\r\n250 PIPELINING\r\n");
    }

    #[test]
    fn empty_enhanced_and_empty_text() {
        assert_eq!(wire(&Reply::new(354, "", "go ahead")), "354 go ahead\r\n");
        assert_eq!(wire(&Reply::new(250, "", "")), "250\r\n");
        assert_eq!(wire(&Reply::new(250, "2.0.0", "")), "250 2.0.0\r\n");
        let none = Reply {
            code: 250,
            enhanced: None,
            lines: vec![],
        };
        assert_eq!(wire(&none), "250\r\n");
    }

    #[test]
    fn text_is_sanitised() {
        let r = Reply::new(550, "5.1.3", "bad <a@b>\r\n250 2.0.0 forged\0\x7fü");
        assert_eq!(wire(&r), "550 5.1.3 bad <a@b>??250 2.0.0 forged???\r\n");
    }

    #[test]
    fn lines_are_bounded() {
        let r = Reply::multi(550, "5.7.1", ["x".repeat(5000), "y".repeat(600)]);
        let w = r.to_bytes();
        for line in w.split_inclusive(|&b| b == b'\n') {
            assert!(line.len() <= MAX_REPLY_LINE, "{}", line.len());
            assert!(line.ends_with(b"\r\n"));
        }
    }

    #[test]
    fn enhanced_codes_parse_strictly() {
        assert_eq!(Enhanced::parse("5.7.1"), Some(Enhanced::new(5, 7, 1)));
        assert_eq!(Enhanced::parse("4.3.100"), Some(Enhanced::new(4, 3, 100)));
        for bad in [
            "", "5", "5.7", "5.7.1.2", "3.0.0", "5.1000.1", "5.a.1", "5..1", "+5.7.1",
        ] {
            assert_eq!(Enhanced::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_local_outcome_leads_with_its_code() {
        let o = Outcome::local(Fate::Temporary, Enhanced::new(4, 4, 1), "cannot connect");
        assert_eq!(o.text, "4.4.1 cannot connect");
        assert_eq!((o.code, o.enhanced), (None, Some(Enhanced::new(4, 4, 1))));
    }

    #[test]
    fn mismatched_class_is_left_out() {
        // RFC 3463: the class must match the reply code's first digit.
        assert_eq!(wire(&Reply::new(250, "5.0.0", "odd")), "250 odd\r\n");
        // Out-of-range codes still produce three digits.
        assert_eq!(wire(&Reply::new(1234, "", "x")), "599 x\r\n");
    }
}
