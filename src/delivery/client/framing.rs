//! What goes on the wire for one message: the MAIL FROM parameters
//! (SIZE, BODY=8BITMIME, SMTPUTF8), the paths inside `<...>`, and the
//! message itself, checked and dot-stuffed block by block.
//!
//! mail-send's `data()` does not stuff a '.' that is the message's first
//! octet (a message starting with `.\r\n` would end DATA and turn the rest
//! into commands), uses one timeout for the whole message and writes tiny
//! pieces. Here the message is checked first (CRLF only, no NUL, lines of at
//! most 998 octets: attacks.md D3), stuffed, and written in blocks, each
//! with its own timeout (RFC 5321 §4.5.3.2). There is no BDAT (CHUNKING):
//! DATA carries every message.

use std::fmt::Write as _;

use super::reply::Extensions;

/// Longest text line in a message, CRLF excluded (RFC 5322 §2.1.1).
pub const MAX_LINE_LENGTH: usize = 998;
/// Octets per write while sending a message; each write gets
/// `data_block` to complete.
pub(super) const WRITE_BLOCK: usize = 64 * 1024;

/// `MAIL FROM:<sender>` with the parameters the remote offers and the
/// message needs: SIZE, BODY=8BITMIME for an 8-bit body, SMTPUTF8 when an
/// address (`utf8_rcpt`: of a recipient) is not ASCII.
pub(super) fn mail_command(sender: &str, body: &[u8], ext: &Extensions, utf8_rcpt: bool) -> String {
    let mut mail = format!("MAIL FROM:<{sender}>");
    if ext.size.is_some() {
        let _ = write!(mail, " SIZE={}", body.len());
    }
    if ext.eight_bit_mime && !body.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    if ext.smtputf8 && (!sender.is_ascii() || utf8_rcpt) {
        mail.push_str(" SMTPUTF8");
    }
    mail.push_str("\r\n");
    mail
}

/// Checks a message before it goes out: CRLF line ends only, no NUL, no
/// line over 998 octets. The inbound side already refuses such content;
/// this keeps anything else (a bug, a damaged spool file, locally generated
/// mail) from ever being re-emitted (attacks.md D3: SMTP smuggling).
pub fn check_message(body: &[u8]) -> Result<(), &'static str> {
    let mut line_len = 0usize;
    let mut prev_cr = false;
    for &b in body {
        match b {
            b'\n' if prev_cr => line_len = 0,
            b'\n' => return Err("message has bare line endings"),
            _ if prev_cr => return Err("message has bare line endings"),
            b'\r' => {}
            0 => return Err("message contains a NUL octet"),
            _ => {
                line_len += 1;
                if line_len > MAX_LINE_LENGTH {
                    return Err("message has lines longer than 998 octets");
                }
            }
        }
        prev_cr = b == b'\r';
    }
    if prev_cr {
        return Err("message has bare line endings");
    }
    Ok(())
}

/// Dot-stuffs a checked message (RFC 5321 §4.5.2) block by block: every
/// line starting with '.' gets another, the first line included.
pub(super) struct Stuffer<'a> {
    rest: &'a [u8],
}

impl<'a> Stuffer<'a> {
    /// Stuffs `body`, which [`check_message`] passed.
    pub(super) fn new(body: &'a [u8]) -> Stuffer<'a> {
        Stuffer { rest: body }
    }

    /// Appends whole stuffed lines to `out` until it holds at least `block`
    /// octets or the message is used up; false once nothing is left.
    pub(super) fn fill(&mut self, out: &mut Vec<u8>, block: usize) -> bool {
        while out.len() < block && !self.rest.is_empty() {
            let end = self
                .rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.rest.len(), |i| i + 1);
            let (line, rest) = self.rest.split_at(end);
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            self.rest = rest;
        }
        !self.rest.is_empty()
    }
}

/// The message as it goes on the wire after DATA: stuffed, CRLF-terminated,
/// ended by `.\r\n`. Used by tests; sending streams the same bytes in blocks.
pub fn wire_form(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut s = Stuffer { rest: body };
    while s.fill(&mut out, usize::MAX) {}
    finish_message(body, &mut out);
    out
}

/// The final CRLF (if the message lacks one) and the terminating dot.
pub(super) fn finish_message(body: &[u8], out: &mut Vec<u8>) {
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// An address usable inside `<...>` on a command line: no control
/// characters, no angle brackets (they would end the path early).
pub(super) fn valid_path(addr: &str) -> bool {
    addr.len() <= 512
        && !addr
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == b'<' || b == b'>')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_checks() {
        assert_eq!(check_message(b""), Ok(()));
        assert_eq!(check_message(b"a: b\r\n\r\nbody\r\n"), Ok(()));
        assert!(check_message(b"a\nb\r\n").is_err());
        assert!(check_message(b"a\rb\r\n").is_err());
        assert!(check_message(b"a\r\n\r").is_err());
        assert!(check_message(b"a\r\r\n").is_err());
        assert!(check_message(b"a\0b\r\n").is_err());
        let ok = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
        assert_eq!(check_message(&ok), Ok(()));
        let long = [vec![b'x'; 999], b"\r\n".to_vec()].concat();
        assert!(check_message(&long).is_err());
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(wire_form(b""), b".\r\n");
        assert_eq!(wire_form(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(wire_form(b"a"), b"a\r\n.\r\n");
        // The first line too: mail-send misses this one.
        assert_eq!(
            wire_form(b".\r\nMAIL FROM:<x>\r\n"),
            b"..\r\nMAIL FROM:<x>\r\n.\r\n"
        );
        assert_eq!(
            wire_form(b"a\r\n.\r\n..b\r\n c.\r\n"),
            b"a\r\n..\r\n...b\r\n c.\r\n.\r\n"
        );
    }

    #[test]
    fn stuffing_in_small_blocks_gives_the_same_bytes() {
        let body = b"x\r\n.a\r\n\r\n.\r\nlonger line here\r\n..\r\nend\r\n";
        let mut out = Vec::new();
        let mut s = Stuffer { rest: body };
        let mut block = Vec::new();
        while s.fill(&mut block, 5) {
            out.extend_from_slice(&block);
            block.clear();
        }
        finish_message(body, &mut block);
        out.extend_from_slice(&block);
        assert_eq!(out, wire_form(body));
    }

    #[test]
    fn paths() {
        assert!(valid_path(""));
        assert!(valid_path("a@b.example"));
        assert!(valid_path("\"john doe\"@b.example"));
        assert!(!valid_path("a@b>\r\nRCPT TO:<c@d"));
        assert!(!valid_path("a@b> SIZE=1"));
    }

    #[test]
    fn mail_parameters_follow_the_extensions_and_the_message() {
        let all = Extensions {
            size: Some(0),
            eight_bit_mime: true,
            smtputf8: true,
            ..Extensions::default()
        };
        assert_eq!(
            mail_command("a@b", b"x\r\n", &all, false),
            "MAIL FROM:<a@b> SIZE=3\r\n"
        );
        assert_eq!(
            mail_command("a@b", "\u{e9}\r\n".as_bytes(), &all, true),
            "MAIL FROM:<a@b> SIZE=4 BODY=8BITMIME SMTPUTF8\r\n"
        );
        assert_eq!(
            mail_command("\u{e9}@b", b"", &Extensions::default(), false),
            "MAIL FROM:<\u{e9}@b>\r\n"
        );
    }
}
