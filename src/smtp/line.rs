//! Command-line framing: splits the client's byte stream into CRLF-ended
//! lines, bounded in length and memory.
//!
//! Only CRLF ends a line. A bare LF or a bare CR (a CR followed by anything
//! but LF) is a framing attack (SMTP smuggling, command injection through a
//! CR) and poisons the buffer for good: the session answers 521 and closes.
//! An over-long line is reported once and the rest of it is thrown away
//! without being stored, so the session stays in step with the next CRLF.

use crate::reply::Reply;

/// Default longest command line, CRLF included (Postfix's `line_length_limit`).
pub const DEFAULT_MAX_LINE: usize = 2048;

/// Why no line could be produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A CR or LF that is not part of a CRLF pair; the stream can no longer
    /// be trusted.
    #[error("bare CR or LF in command line")]
    BareNewline,
    /// A line longer than the limit; it has been (or is being) discarded.
    #[error("command line too long")]
    TooLong,
}

impl LineError {
    /// The reply: `521 5.5.2` (then close) or `500 5.5.2`.
    pub fn reply(&self) -> Reply {
        match self {
            LineError::BareNewline => Reply::bare_newline("command"),
            LineError::TooLong => Reply::line_too_long(),
        }
    }
}

/// The framing state besides the buffered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Buffering and splitting lines.
    Normal,
    /// Throwing away the rest of an over-long line up to its CRLF; `cr` says
    /// whether the last byte thrown away was a CR.
    Discard { cr: bool },
    /// A bare CR or LF was seen: nothing more is read.
    Broken,
}

/// A bounded buffer that turns pushed bytes into command lines.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    max_line: usize,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// Offset in `buf` up to which no CR or LF occurs (scan resumes there).
    scanned: usize,
    mode: Mode,
}

impl Default for LineBuffer {
    fn default() -> Self {
        LineBuffer::new(DEFAULT_MAX_LINE)
    }
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` octets, CRLF included.
    pub fn new(max_line: usize) -> LineBuffer {
        LineBuffer {
            max_line,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            mode: Mode::Normal,
        }
    }

    /// The configured limit, CRLF included.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Adds bytes read from the client.
    ///
    /// While the tail of an over-long line is being discarded the bytes are
    /// scanned here and never stored, so memory stays flat however long the
    /// line. Otherwise memory is bounded by `max_line` plus one push as long
    /// as the caller drains [`next_line`](Self::next_line) between pushes.
    pub fn push(&mut self, bytes: &[u8]) {
        match self.mode {
            Mode::Broken => {}
            Mode::Normal => self.buf.extend_from_slice(bytes),
            Mode::Discard { cr } => {
                // Discard mode is entered only with nothing else buffered.
                let mut cr = cr;
                for (i, &b) in bytes.iter().enumerate() {
                    match (cr, b) {
                        (true, b'\n') => {
                            self.mode = Mode::Normal;
                            self.buf
                                .extend_from_slice(bytes.get(i + 1..).unwrap_or(&[]));
                            return;
                        }
                        (true, _) | (false, b'\n') => {
                            self.break_stream();
                            return;
                        }
                        (false, b'\r') => cr = true,
                        (false, _) => {}
                    }
                }
                self.mode = Mode::Discard { cr };
            }
        }
    }

    /// The next complete line without its CRLF, an error, or `None` when more
    /// input is needed. After [`LineError::BareNewline`] every call returns
    /// that error again.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineError>> {
        match self.mode {
            Mode::Broken => return Some(Err(LineError::BareNewline)),
            Mode::Discard { .. } => return None,
            Mode::Normal => {}
        }
        let from = self.scanned.max(self.start);
        let Some(pos) = self
            .buf
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\r' || b == b'\n'))
            .map(|p| p + from)
        else {
            // No line end yet: the line is too long once its content alone
            // leaves no room for the CRLF.
            self.scanned = self.buf.len();
            if self.buf.len() - self.start + 2 > self.max_line {
                self.enter_discard(false);
                return Some(Err(LineError::TooLong));
            }
            return None;
        };
        if pos - self.start + 2 > self.max_line {
            // Too long whatever ends it: report that first, then let the
            // discard logic judge the terminator, exactly as when the line
            // arrives in pieces.
            let rest = self.buf.split_off(pos);
            self.enter_discard(false);
            self.push(&rest);
            return Some(Err(LineError::TooLong));
        }
        if self.buf.get(pos) == Some(&b'\n') {
            // An LF with no CR before it (a CR would have been found first).
            self.break_stream();
            return Some(Err(LineError::BareNewline));
        }
        match self.buf.get(pos + 1) {
            None => {
                // A CR at the end: whether it is bare depends on the next push.
                self.scanned = pos;
                None
            }
            Some(b'\n') => {
                let line = self.buf.get(self.start..pos).map(<[u8]>::to_vec);
                self.consume(pos + 2);
                line.map(Ok)
            }
            Some(_) => {
                self.break_stream();
                Some(Err(LineError::BareNewline))
            }
        }
    }

    /// Unconsumed bytes held (pipelined input not yet returned as lines).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The first octet of the line being assembled, if any (`None` while an
    /// over-long line is being discarded or the stream is broken).
    pub fn line_start(&self) -> Option<u8> {
        match self.mode {
            Mode::Normal => self.buf.get(self.start).copied(),
            _ => None,
        }
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buffered() == 0
    }

    /// True once a bare CR or LF has been seen.
    pub fn is_broken(&self) -> bool {
        self.mode == Mode::Broken
    }

    /// Takes every unconsumed byte: the start of a DATA or BDAT body that
    /// arrived with its command, or plaintext pipelined after STARTTLS (to
    /// be thrown away). Framing starts afresh after it (a discard in progress
    /// ends; a broken stream stays broken).
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start.min(self.buf.len()));
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        if let Mode::Discard { .. } = self.mode {
            self.mode = Mode::Normal;
        }
        rest
    }

    /// Marks `buf[..end]` consumed, compacting now and then so the buffer
    /// does not grow with the session.
    fn consume(&mut self, end: usize) {
        self.start = end.min(self.buf.len());
        self.scanned = self.start;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
            self.scanned = 0;
        }
    }

    /// Drops the partial line at the end of the buffer (everything before it
    /// has been consumed) and throws away what follows up to its CRLF.
    fn enter_discard(&mut self, cr: bool) {
        self.buf.clear();
        self.buf.shrink_to(self.max_line.saturating_mul(2));
        self.start = 0;
        self.scanned = 0;
        self.mode = Mode::Discard { cr };
    }

    fn break_stream(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
        self.mode = Mode::Broken;
    }
}

/// Invariant checks shared by the `line` fuzz target and the corpus replay
/// test (`tests/fuzz_corpus.rs`).
pub mod fuzzing {
    use super::{LineBuffer, LineError};

    /// One framing event, for comparing runs.
    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        Line(Vec<u8>),
        Err(LineError),
    }

    fn drain(lb: &mut LineBuffer, out: &mut Vec<Event>) -> bool {
        while let Some(item) = lb.next_line() {
            match item {
                Ok(l) => out.push(Event::Line(l)),
                Err(e) => {
                    out.push(Event::Err(e));
                    if e == LineError::BareNewline {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn run(input: &[u8], max: usize, splits: &[usize]) -> Vec<Event> {
        let mut lb = LineBuffer::new(max);
        let mut events = Vec::new();
        let mut at = 0;
        let mut largest_push = 0;
        for &cut in splits.iter().chain(std::iter::once(&input.len())) {
            let cut = cut.clamp(at, input.len());
            let piece = input.get(at..cut).unwrap_or(&[]);
            largest_push = largest_push.max(piece.len());
            lb.push(piece);
            at = cut;
            if !drain(&mut lb, &mut events) {
                break;
            }
            // Memory bound: a partial line plus at most one push.
            assert!(
                lb.buffered() <= max + largest_push,
                "buffer grew to {}",
                lb.buffered()
            );
        }
        events
    }

    /// Splits `data` into a header (limit and cut points) and the stream,
    /// then checks: lines hold no CR or LF and respect the limit; the events
    /// do not depend on how the stream is cut; the buffer stays bounded.
    pub fn check(data: &[u8]) {
        let (max, splits, input) = match data {
            [m, n, rest @ ..] => {
                let max = 3 + usize::from(*m) % 64;
                let n = usize::from(*n % 8).min(rest.len());
                let (cuts, input) = rest.split_at(n);
                let mut splits: Vec<usize> = cuts.iter().map(|&c| usize::from(c)).collect();
                splits.sort_unstable();
                (max, splits, input)
            }
            _ => (DEFAULT_CHECK_MAX, Vec::new(), data),
        };
        let whole = run(input, max, &[]);
        for e in &whole {
            if let Event::Line(l) = e {
                assert!(
                    !l.contains(&b'\r') && !l.contains(&b'\n'),
                    "line holds a newline"
                );
                assert!(l.len() + 2 <= max, "line over the limit");
            }
        }
        assert_eq!(run(input, max, &splits), whole, "events depend on the cut");
        let bytewise: Vec<usize> = (1..input.len().min(300)).collect();
        assert_eq!(
            run(input, max, &bytewise),
            whole,
            "events depend on the cut"
        );
        // With the default limit too.
        let _ = run(data, DEFAULT_CHECK_MAX, &[]);
    }

    const DEFAULT_CHECK_MAX: usize = super::DEFAULT_MAX_LINE;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(lb: &mut LineBuffer) -> Vec<Result<Vec<u8>, LineError>> {
        let mut out = Vec::new();
        while let Some(l) = lb.next_line() {
            let stop = l == Err(LineError::BareNewline);
            out.push(l);
            if stop {
                break;
            }
        }
        out
    }

    fn ok(s: &str) -> Result<Vec<u8>, LineError> {
        Ok(s.as_bytes().to_vec())
    }

    #[test]
    fn pipelined_lines_in_one_push() {
        let mut lb = LineBuffer::default();
        lb.push(b"EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDA");
        assert_eq!(
            lines(&mut lb),
            vec![
                ok("EHLO a.example"),
                ok("MAIL FROM:<a@b.example>"),
                ok("RCPT TO:<c@d.example>")
            ]
        );
        assert_eq!(lb.buffered(), 2);
        lb.push(b"TA\r");
        assert_eq!(lb.next_line(), None);
        lb.push(b"\n");
        assert_eq!(lines(&mut lb), vec![ok("DATA")]);
        assert!(lb.is_empty());
    }

    #[test]
    fn empty_line_is_a_line() {
        let mut lb = LineBuffer::default();
        lb.push(b"\r\n");
        assert_eq!(lines(&mut lb), vec![ok("")]);
    }

    #[test]
    fn bare_lf_and_bare_cr_break_the_stream() {
        for input in [
            &b"EHLO x\nMAIL FROM:<a@b>\r\n"[..],
            b"MAIL FROM:<a@b>\rRCPT TO:<c@d>\r\n",
            b"\n",
            b"NOOP\r\r\n",
        ] {
            let mut lb = LineBuffer::default();
            lb.push(input);
            assert_eq!(
                lines(&mut lb),
                vec![Err(LineError::BareNewline)],
                "{input:?}"
            );
            // Sticky: nothing after it is ever read.
            lb.push(b"QUIT\r\n");
            assert_eq!(lb.next_line(), Some(Err(LineError::BareNewline)));
            assert!(lb.is_broken());
        }
        // A CR at the end of one push is judged by the next one.
        let mut lb = LineBuffer::default();
        lb.push(b"NOOP\r");
        assert_eq!(lb.next_line(), None);
        lb.push(b"X");
        assert_eq!(lb.next_line(), Some(Err(LineError::BareNewline)));
    }

    #[test]
    fn lines_before_a_bare_newline_are_still_returned() {
        let mut lb = LineBuffer::default();
        lb.push(b"NOOP\r\nEHLO x\n");
        assert_eq!(
            lines(&mut lb),
            vec![ok("NOOP"), Err(LineError::BareNewline)]
        );
    }

    #[test]
    fn limit_counts_the_crlf() {
        let mut lb = LineBuffer::new(10);
        lb.push(b"12345678\r\n123456789\r\n");
        assert_eq!(
            lines(&mut lb),
            vec![ok("12345678"), Err(LineError::TooLong)]
        );
        lb.push(b"NOOP\r\n");
        assert_eq!(lines(&mut lb), vec![ok("NOOP")]);
    }

    #[test]
    fn overlong_line_is_reported_once_and_resyncs() {
        let mut lb = LineBuffer::new(2048);
        lb.push(b"NOOP\r\nNOOP ");
        let chunk = vec![b'x'; 16 * 1024];
        let mut events = lines(&mut lb);
        // 10 MiB without a newline: memory stays flat.
        for _ in 0..640 {
            lb.push(&chunk);
            events.extend(lines(&mut lb));
            assert!(lb.buffered() <= 2048 + chunk.len());
            assert!(
                lb.buf.capacity() <= 2 * 16 * 1024 + 4096,
                "{}",
                lb.buf.capacity()
            );
        }
        lb.push(b"xxx\r\nQUIT\r\n");
        events.extend(lines(&mut lb));
        assert_eq!(
            events,
            vec![ok("NOOP"), Err(LineError::TooLong), ok("QUIT")]
        );
    }

    #[test]
    fn overlong_line_split_at_its_crlf() {
        let mut lb = LineBuffer::new(8);
        lb.push(b"123456789\r");
        assert_eq!(lb.next_line(), Some(Err(LineError::TooLong)));
        lb.push(b"\nRSET\r\n");
        assert_eq!(lines(&mut lb), vec![ok("RSET")]);
        // A bare newline inside the discarded part still breaks the stream.
        let mut lb = LineBuffer::new(8);
        lb.push(b"123456789");
        assert_eq!(lb.next_line(), Some(Err(LineError::TooLong)));
        lb.push(b"abc\nRSET\r\n");
        assert_eq!(lines(&mut lb), vec![Err(LineError::BareNewline)]);
        let mut lb = LineBuffer::new(8);
        lb.push(b"123456789\r");
        assert_eq!(lb.next_line(), Some(Err(LineError::TooLong)));
        lb.push(b"RSET\r\n");
        assert_eq!(lines(&mut lb), vec![Err(LineError::BareNewline)]);
    }

    #[test]
    fn take_rest_hands_over_the_pipelined_bytes() {
        let mut lb = LineBuffer::default();
        lb.push(b"DATA\r\nSubject: x\n\r\n.\r\n");
        assert_eq!(lb.next_line(), Some(ok("DATA")));
        // The body bytes are handed over raw, bare LF included: the data
        // reader judges them.
        assert_eq!(lb.take_rest(), b"Subject: x\n\r\n.\r\n");
        assert!(lb.is_empty());
        lb.push(b"QUIT\r\n");
        assert_eq!(lb.next_line(), Some(ok("QUIT")));
    }

    #[test]
    fn starttls_injection_is_visible() {
        let mut lb = LineBuffer::default();
        lb.push(b"STARTTLS\r\nRSET\r\n");
        assert_eq!(lb.next_line(), Some(ok("STARTTLS")));
        assert_eq!(lb.buffered(), 6);
        assert_eq!(lb.take_rest(), b"RSET\r\n");
        assert_eq!(lb.next_line(), None);
    }

    #[test]
    fn every_split_gives_the_same_lines() {
        let inputs: [&[u8]; 4] = [
            b"EHLO a\r\nMAIL FROM:<a@b.c>\r\n\r\nRCPT TO:<x@y.z>\r\nQUIT\r\n",
            b"NOOP\r\n0123456789012345678901234567890123\r\nNOOP\r\n",
            b"NOOP\r\nabc\rdef\r\n",
            b"0123456789012345678901234567890123\r\r\nNOOP\r\n",
        ];
        for input in inputs {
            fuzzing::check(input);
            for i in 0..=input.len() {
                let mut whole = LineBuffer::new(32);
                whole.push(input);
                let mut split = LineBuffer::new(32);
                split.push(&input[..i]);
                let mut got = lines(&mut split);
                if !split.is_broken() {
                    split.push(&input[i..]);
                    got.extend(lines(&mut split));
                }
                assert_eq!(got, lines(&mut whole), "split at {i} of {input:?}");
            }
        }
    }
}
