//! Message content readers: [`DataReader`] for DATA (dot-stuffed, ended by
//! `<CR><LF>.<CR><LF>`) and [`BdatReader`] for CHUNKING (counted octets).
//!
//! Both are byte-level state machines that give the same result however the
//! input is split across reads, and both refuse what makes SMTP smuggling
//! work: only `<CR><LF>.<CR><LF>` ends DATA, and any bare CR, bare LF or NUL
//! anywhere in the content ends the transaction as
//! [`DataOutcome::BareNewline`] (the session answers 521 and closes). BDAT
//! content gets the same check because the gateway re-emits it as DATA.
//!
//! Limits (message size, header section size, line length) never cut the
//! stream short: the reader keeps consuming to the end of the message,
//! stops storing, and reports the refusal at the end.

use std::fmt;

use crate::reply::Reply;

/// The limits a message is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// Largest message in octets (unstuffed, CRLF line ends).
    pub max_size: u64,
    /// Largest header section in octets.
    pub max_header_size: u64,
    /// Longest text line, CRLF included, not counting a dot added for
    /// transparency (RFC 5321 §4.5.3.1.6).
    pub max_line_length: usize,
}

impl Default for DataLimits {
    /// 25 MiB messages, 100 KiB of headers (Postfix's `header_size_limit`),
    /// lines of 998 octets plus CRLF (RFC 5322 §2.1.1).
    fn default() -> Self {
        DataLimits {
            max_size: 25 << 20,
            max_header_size: 100 << 10,
            max_line_length: 1000,
        }
    }
}

/// Which framing rule was broken (for logs; the outcome is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A CR not followed by LF.
    BareCr,
    /// An LF not preceded by CR.
    BareLf,
    /// A NUL octet (RFC 5322 text excludes it; `\r\n\0.\r\n` is a known
    /// smuggling variant).
    Nul,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FramingError::BareCr => "bare CR",
            FramingError::BareLf => "bare LF",
            FramingError::Nul => "NUL octet",
        })
    }
}

/// A limit the message broke; reported once the whole message is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The message is larger than `max_size`.
    #[error("message exceeds the size limit of {0} octets")]
    TooBig(u64),
    /// The header section is larger than `max_header_size`.
    #[error("header section exceeds the limit of {0} octets")]
    HeaderTooBig(u64),
    /// A line is longer than `max_line_length`.
    #[error("message contains a line longer than {0} octets")]
    LineTooLong(usize),
}

impl DataError {
    /// `552 5.3.4` for the size limits, `550 5.6.0` for an over-long line.
    pub fn reply(&self) -> Reply {
        match self {
            DataError::TooBig(_) | DataError::HeaderTooBig(_) => Reply::too_big(self.to_string()),
            // A content problem, not a size one; never split silently.
            DataError::LineTooLong(_) => Reply::new(550, "5.6.0", self.to_string()),
        }
    }
}

/// What was learnt about a message that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageInfo {
    /// Octets of the message (unstuffed).
    pub size: u64,
    /// Octets of the header section (header lines with their CRLF).
    pub header_size: u64,
    /// `Received:` fields in the header section (the hop count).
    pub received_headers: usize,
    /// Whether the header section has a `Message-ID:` field.
    pub has_message_id: bool,
}

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// The message is complete and within every limit.
    Complete(MessageInfo),
    /// A bare CR, bare LF or NUL: framing can no longer be trusted; reply
    /// `521 5.5.2` and close.
    BareNewline,
    /// Complete, but over a limit: the reply to give (from [`DataError`]).
    Refused(Reply),
}

/// The result of one [`DataReader::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataProgress {
    /// Input octets used; the rest (when `done`) belongs to the next command.
    pub consumed: usize,
    /// Set once the message has ended.
    pub done: Option<DataOutcome>,
}

/// Bytes of a header line kept to recognise its field name.
const FIELD_PREFIX: usize = 128;

/// The checks and storage shared by DATA and BDAT: fed line content and
/// line ends, never CR, LF or NUL themselves.
#[derive(Debug, Clone)]
struct Content {
    limits: DataLimits,
    body: Vec<u8>,
    size: u64,
    /// Octets of the current line so far, without CRLF or stuffing dot.
    line_len: usize,
    in_header: bool,
    header_size: u64,
    /// The start of the current line, while in the header section.
    field: Vec<u8>,
    received: usize,
    message_id: bool,
    error: Option<DataError>,
    framing: Option<FramingError>,
}

impl Content {
    fn new(limits: DataLimits) -> Content {
        Content {
            limits,
            body: Vec::new(),
            size: 0,
            line_len: 0,
            in_header: true,
            header_size: 0,
            field: Vec::new(),
            received: 0,
            message_id: false,
            error: None,
            framing: None,
        }
    }

    /// Line content: octets other than CR, LF and NUL.
    fn text(&mut self, bytes: &[u8]) {
        let n = bytes.len() as u64;
        if self.error.is_none() {
            // The refusal named is the limit crossed at the earliest octet
            // (size first on a tie), so that it does not depend on how the
            // input was cut into reads.
            let line_room = (self.limits.max_line_length.saturating_sub(2))
                .saturating_sub(self.line_len) as u64;
            let size_room = self.limits.max_size.saturating_sub(self.size);
            match (n > size_room, n > line_room) {
                (true, true) if line_room < size_room => {
                    self.fail(DataError::LineTooLong(self.limits.max_line_length))
                }
                (true, _) => self.fail(DataError::TooBig(self.limits.max_size)),
                (false, true) => self.fail(DataError::LineTooLong(self.limits.max_line_length)),
                (false, false) => {}
            }
        }
        self.line_len = self.line_len.saturating_add(bytes.len());
        if self.in_header && self.field.len() < FIELD_PREFIX {
            let room = FIELD_PREFIX - self.field.len();
            self.field
                .extend_from_slice(bytes.get(..room).unwrap_or(bytes));
        }
        self.size = self.size.saturating_add(n);
        if self.error.is_none() {
            self.body.extend_from_slice(bytes);
        }
    }

    /// A CRLF: closes the current line.
    fn end_line(&mut self) {
        if self.in_header {
            self.header_line();
        }
        self.add_size(2);
        if self.error.is_none() {
            self.body.extend_from_slice(b"\r\n");
        }
        self.line_len = 0;
        self.field.clear();
    }

    /// Classifies the line that just ended while in the header section.
    fn header_line(&mut self) {
        let line = self.field.as_slice();
        let is_field = match line.first() {
            // A blank line ends the header section.
            None => false,
            // Folded continuation of the previous field.
            Some(b' ' | b'\t') => true,
            Some(_) => match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let name = line.get(..colon).unwrap_or(&[]).trim_ascii_end();
                    if name.eq_ignore_ascii_case(b"received") {
                        self.received += 1;
                    } else if name.eq_ignore_ascii_case(b"message-id") {
                        self.message_id = true;
                    }
                    !name.is_empty() && name.iter().all(|&b| is_ftext(b))
                }
                // A name longer than the prefix still counts as a field.
                None => line.len() >= FIELD_PREFIX && line.iter().all(|&b| is_ftext(b)),
            },
        };
        if !is_field {
            // Like Postfix: the header section ends at the blank line, or at
            // the first line that cannot be a header field.
            self.in_header = false;
            return;
        }
        self.header_size = self.header_size.saturating_add(self.line_len as u64 + 2);
        if self.header_size > self.limits.max_header_size {
            self.fail(DataError::HeaderTooBig(self.limits.max_header_size));
        }
    }

    fn add_size(&mut self, n: u64) {
        self.size = self.size.saturating_add(n);
        if self.size > self.limits.max_size {
            self.fail(DataError::TooBig(self.limits.max_size));
        }
    }

    /// Records the first limit broken and stops storing: the rest is only
    /// counted.
    fn fail(&mut self, e: DataError) {
        if self.error.is_none() {
            self.error = Some(e);
            self.body = Vec::new();
        }
    }

    fn broken(&mut self, f: FramingError) -> DataOutcome {
        if self.framing.is_none() {
            self.framing = Some(f);
        }
        self.body = Vec::new();
        DataOutcome::BareNewline
    }

    fn outcome(&self) -> DataOutcome {
        if self.framing.is_some() {
            return DataOutcome::BareNewline;
        }
        match self.error {
            Some(e) => DataOutcome::Refused(e.reply()),
            None => DataOutcome::Complete(MessageInfo {
                size: self.size,
                header_size: self.header_size,
                received_headers: self.received,
                has_message_id: self.message_id,
            }),
        }
    }
}

/// RFC 5322 `ftext`: printable ASCII except `:`; the trailing WSP allowed by
/// the obsolete syntax is trimmed before this is asked.
fn is_ftext(b: u8) -> bool {
    (33..=126).contains(&b) && b != b':'
}

/// Where the DATA reader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotState {
    /// At the start of a line (the message start counts as one).
    LineStart,
    /// A `.` at the start of a line.
    Dot,
    /// `.` CR at the start of a line: LF ends the message.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line: only LF may follow.
    Cr,
}

/// Reads a DATA body: dot-unstuffs it, stops at `<CR><LF>.<CR><LF>`, checks
/// framing and limits.
#[derive(Debug, Clone)]
pub struct DataReader {
    content: Content,
    state: DotState,
    outcome: Option<DataOutcome>,
}

impl DataReader {
    /// A reader for one message, right after the 354 reply.
    pub fn new(limits: DataLimits) -> DataReader {
        DataReader {
            content: Content::new(limits),
            state: DotState::LineStart,
            outcome: None,
        }
    }

    /// Feeds input; stops at the end of the message (or at a framing error)
    /// and says how much of `input` it used. Once done, further calls use
    /// nothing and repeat the outcome.
    pub fn feed(&mut self, input: &[u8]) -> DataProgress {
        if let Some(o) = &self.outcome {
            return DataProgress {
                consumed: 0,
                done: Some(o.clone()),
            };
        }
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                DotState::LineStart => {
                    if b == b'.' {
                        self.state = DotState::Dot;
                        i += 1;
                    } else {
                        self.state = DotState::Text;
                    }
                }
                DotState::Dot => {
                    if b == b'\r' {
                        self.state = DotState::DotCr;
                        i += 1;
                    } else {
                        // Unstuffing: the leading dot is dropped and the rest
                        // of the line (`..x` -> `.x`, `.x` -> `x`) is text.
                        self.state = DotState::Text;
                    }
                }
                DotState::DotCr => {
                    return if b == b'\n' {
                        self.end(i + 1, self.content.outcome())
                    } else {
                        let o = self.content.broken(FramingError::BareCr);
                        self.end(i, o)
                    };
                }
                DotState::Text => {
                    let rest = input.get(i..).unwrap_or(&[]);
                    let run = rest
                        .iter()
                        .position(|&c| matches!(c, b'\r' | b'\n' | 0))
                        .unwrap_or(rest.len());
                    if run > 0 {
                        self.content.text(rest.get(..run).unwrap_or(&[]));
                        i += run;
                        continue;
                    }
                    match b {
                        b'\r' => {
                            self.state = DotState::Cr;
                            i += 1;
                        }
                        b'\n' => {
                            let o = self.content.broken(FramingError::BareLf);
                            return self.end(i + 1, o);
                        }
                        _ => {
                            let o = self.content.broken(FramingError::Nul);
                            return self.end(i + 1, o);
                        }
                    }
                }
                DotState::Cr => {
                    if b == b'\n' {
                        self.content.end_line();
                        self.state = DotState::LineStart;
                        i += 1;
                    } else {
                        let o = self.content.broken(FramingError::BareCr);
                        return self.end(i, o);
                    }
                }
            }
        }
        DataProgress {
            consumed: input.len(),
            done: None,
        }
    }

    fn end(&mut self, consumed: usize, outcome: DataOutcome) -> DataProgress {
        self.outcome = Some(outcome.clone());
        DataProgress {
            consumed,
            done: Some(outcome),
        }
    }

    /// Takes the unstuffed message (CRLF line ends, without the final
    /// `.CRLF`); empty after a refusal.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.content.body)
    }

    /// The message stored so far.
    pub fn body(&self) -> &[u8] {
        &self.content.body
    }

    /// The stored octets, for a caller that moves them elsewhere (the
    /// session's spool file) as the message arrives: it may take octets
    /// from the front, never add any. What is stored later is appended.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.content.body
    }

    /// Octets of message read so far (stored or not).
    pub fn size(&self) -> u64 {
        self.content.size
    }

    /// True once the message has ended.
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    /// The framing rule broken, if any.
    pub fn framing_error(&self) -> Option<FramingError> {
        self.content.framing
    }

    /// The first limit broken, if any.
    pub fn error(&self) -> Option<DataError> {
        self.content.error
    }
}

/// Accumulates a CHUNKING (BDAT) message across chunks with the same checks
/// as DATA. The octet counting of each chunk is [`Chunk`]'s job.
#[derive(Debug, Clone)]
pub struct BdatReader {
    content: Content,
    /// The last octet fed was a CR (its LF may come in the next chunk).
    cr: bool,
}

impl BdatReader {
    /// A reader for one message (all its chunks).
    pub fn new(limits: DataLimits) -> BdatReader {
        BdatReader {
            content: Content::new(limits),
            cr: false,
        }
    }

    /// Appends chunk content. After a framing error the content is only
    /// dropped; [`is_broken`](Self::is_broken) tells the session it may
    /// close without waiting for the last chunk.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.content.framing.is_some() {
            return;
        }
        while let Some((&b, rest)) = bytes.split_first() {
            if self.cr {
                if b != b'\n' {
                    self.content.broken(FramingError::BareCr);
                    return;
                }
                self.cr = false;
                self.content.end_line();
                bytes = rest;
                continue;
            }
            let run = bytes
                .iter()
                .position(|&c| matches!(c, b'\r' | b'\n' | 0))
                .unwrap_or(bytes.len());
            if run > 0 {
                let (text, rest) = bytes.split_at(run);
                self.content.text(text);
                bytes = rest;
                continue;
            }
            match b {
                b'\r' => self.cr = true,
                b'\n' => {
                    self.content.broken(FramingError::BareLf);
                    return;
                }
                _ => {
                    self.content.broken(FramingError::Nul);
                    return;
                }
            }
            bytes = rest;
        }
    }

    /// Ends the message after the LAST chunk. A final line without CRLF gets
    /// one (the message is re-emitted as DATA, which needs it); a final bare
    /// CR is a framing error.
    pub fn finish(mut self) -> (DataOutcome, Vec<u8>) {
        if self.content.framing.is_none() {
            if self.cr {
                self.content.broken(FramingError::BareCr);
            } else if self.content.line_len > 0 {
                self.content.end_line();
            }
        }
        let outcome = self.content.outcome();
        let body = match outcome {
            DataOutcome::Complete(_) => self.content.body,
            _ => Vec::new(),
        };
        (outcome, body)
    }

    /// Octets of message so far, over all chunks.
    pub fn size(&self) -> u64 {
        self.content.size
    }

    /// Octets stored and not yet taken with [`body_mut`](Self::body_mut).
    pub fn stored(&self) -> usize {
        self.content.body.len()
    }

    /// The stored octets, for a caller that moves them elsewhere as the
    /// message arrives (see [`DataReader::body_mut`]).
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.content.body
    }

    /// True once a bare CR, bare LF or NUL has been seen.
    pub fn is_broken(&self) -> bool {
        self.content.framing.is_some()
    }

    /// The framing rule broken, if any.
    pub fn framing_error(&self) -> Option<FramingError> {
        self.content.framing
    }

    /// The first limit broken, if any.
    pub fn error(&self) -> Option<DataError> {
        self.content.error
    }
}

/// Counts the octets of one BDAT chunk as they arrive, so that exactly
/// `size` octets are taken from the stream, whether the chunk is stored
/// (fed to a [`BdatReader`]) or refused and thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    remaining: u64,
}

impl Chunk {
    /// A chunk of `size` octets (the BDAT argument).
    pub fn new(size: u64) -> Chunk {
        Chunk { remaining: size }
    }

    /// Splits `input` into the part that belongs to the chunk and the rest
    /// (the next command), and counts the first part off.
    pub fn split<'a>(&mut self, input: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        self.remaining -= take as u64;
        input.split_at(take)
    }

    /// Octets still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// True once every octet has been taken.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

/// Invariant checks shared by the `data` fuzz target and the corpus replay
/// test (`tests/fuzz_corpus.rs`).
pub mod fuzzing {
    use super::*;

    /// Asserts that every CR is followed by LF, every LF preceded by CR, and
    /// that there is no NUL.
    pub fn assert_clean_lines(body: &[u8]) {
        for (i, &b) in body.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(body.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
                b'\n' => assert!(i > 0 && body.get(i - 1) == Some(&b'\r'), "bare LF at {i}"),
                0 => panic!("NUL at {i}"),
                _ => {}
            }
        }
    }

    /// Feeds `input` to a DATA reader in pieces cut at `cuts`; returns the
    /// octets consumed, the outcome and the body.
    pub fn run_data(
        input: &[u8],
        limits: DataLimits,
        cuts: &[usize],
    ) -> (usize, Option<DataOutcome>, Vec<u8>) {
        let mut r = DataReader::new(limits);
        let mut used = 0;
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let cut = cut.clamp(at, input.len());
            let p = r.feed(input.get(at..cut).unwrap_or(&[]));
            assert!(p.consumed <= cut - at);
            used += p.consumed;
            if let Some(done) = p.done {
                // A finished reader stays finished and takes nothing more.
                assert_eq!(
                    r.feed(b"more\r\n.\r\n"),
                    DataProgress {
                        consumed: 0,
                        done: Some(done.clone())
                    }
                );
                return (used, Some(done), r.take_body());
            }
            assert_eq!(p.consumed, cut - at);
            at = cut;
        }
        (used, None, r.take_body())
    }

    /// Feeds `input` to a BDAT reader as chunks cut at `cuts`.
    pub fn run_bdat(input: &[u8], limits: DataLimits, cuts: &[usize]) -> (DataOutcome, Vec<u8>) {
        let mut r = BdatReader::new(limits);
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let cut = cut.clamp(at, input.len());
            let mut chunk = Chunk::new((cut - at) as u64);
            let (mine, rest) = chunk.split(input.get(at..).unwrap_or(&[]));
            assert!(chunk.is_done());
            assert_eq!(mine.len() + rest.len(), input.len() - at);
            r.feed(mine);
            at = cut;
        }
        r.finish()
    }

    /// Dot-stuffs a clean body and appends the end marker.
    pub fn stuff(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 8);
        let mut line_start = true;
        for &b in body {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            line_start = b == b'\n';
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    /// Checks DATA and BDAT reading of `data` (first bytes: limits and cut
    /// points): no panic; no bare CR, LF or NUL in any body; the same result
    /// for every way of cutting the input; a complete body re-stuffed reads
    /// back identically.
    pub fn check(data: &[u8]) {
        let (limits, cuts, input) = match data {
            [a, b, n, rest @ ..] => {
                let limits = DataLimits {
                    max_size: 16 + u64::from(*a) * 8,
                    max_header_size: 8 + u64::from(*b),
                    max_line_length: 4 + usize::from(*a % 64),
                };
                let n = usize::from(*n % 8).min(rest.len());
                let (cuts, input) = rest.split_at(n);
                let mut cuts: Vec<usize> = cuts.iter().map(|&c| usize::from(c)).collect();
                cuts.sort_unstable();
                (limits, cuts, input)
            }
            _ => (DataLimits::default(), Vec::new(), data),
        };
        for limits in [limits, DataLimits::default()] {
            let whole = run_data(input, limits, &[]);
            assert_clean_lines(&whole.2);
            assert_eq!(
                run_data(input, limits, &cuts),
                whole,
                "DATA result depends on the cut"
            );
            let bytewise: Vec<usize> = (1..input.len().min(200)).collect();
            assert_eq!(
                run_data(input, limits, &bytewise),
                whole,
                "DATA result depends on the cut"
            );
            if let (used, Some(DataOutcome::Complete(info)), body) = &whole {
                assert!(*used <= input.len());
                assert_eq!(info.size, body.len() as u64);
                assert!(info.size <= limits.max_size && info.header_size <= limits.max_header_size);
                let again = run_data(&stuff(body), limits, &[]);
                assert_eq!(&again.2, body, "re-stuffed body reads back differently");
                assert!(matches!(again.1, Some(DataOutcome::Complete(i)) if i == *info));
            }
            let bdat = run_bdat(input, limits, &cuts);
            assert_clean_lines(&bdat.1);
            assert_eq!(
                run_bdat(input, limits, &[]),
                bdat,
                "BDAT result depends on the chunking"
            );
            if let DataOutcome::Complete(info) = &bdat.0 {
                assert_eq!(info.size, bdat.1.len() as u64);
                assert!(bdat.1.is_empty() || bdat.1.ends_with(b"\r\n"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fuzzing::{assert_clean_lines, run_bdat, run_data, stuff};
    use super::*;

    fn limits() -> DataLimits {
        DataLimits::default()
    }

    fn complete(input: &[u8]) -> (usize, MessageInfo, Vec<u8>) {
        match run_data(input, limits(), &[]) {
            (used, Some(DataOutcome::Complete(info)), body) => (used, info, body),
            other => panic!("{input:?}: {other:?}"),
        }
    }

    /// Checks one input against every single split point.
    fn every_split(input: &[u8], limits: DataLimits) {
        let whole = run_data(input, limits, &[]);
        let bdat = run_bdat(input, limits, &[]);
        for i in 0..=input.len() {
            assert_eq!(
                run_data(input, limits, &[i]),
                whole,
                "DATA split at {i} of {input:?}"
            );
            assert_eq!(
                run_bdat(input, limits, &[i]),
                bdat,
                "BDAT split at {i} of {input:?}"
            );
        }
        for j in 0..input.len().min(40) {
            for i in 0..j {
                assert_eq!(
                    run_data(input, limits, &[i, j]),
                    whole,
                    "DATA split at {i},{j}"
                );
            }
        }
    }

    #[test]
    fn plain_message_and_what_follows() {
        let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (used, info, body) = complete(input);
        assert_eq!(&input[used..], b"QUIT\r\n");
        assert_eq!(body, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(info.size, body.len() as u64);
        assert_eq!(info.header_size, 13);
        assert!(!info.has_message_id);
    }

    #[test]
    fn end_marker_at_the_very_start() {
        let (used, info, body) = complete(b".\r\nNOOP\r\n");
        assert_eq!((used, body.len(), info.size), (3, 0, 0));
    }

    #[test]
    fn dot_unstuffing() {
        let (_, _, body) = complete(b"..x\r\n.\r\n");
        assert_eq!(body, b".x\r\n");
        let (_, _, body) = complete(b"a\r\n..\r\n...\r\n.y\r\n .\r\n.\r\n");
        assert_eq!(body, b"a\r\n.\r\n..\r\ny\r\n .\r\n");
        // A dot in the middle of a line is data.
        let (_, _, body) = complete(b"a.\r\n.\r\n");
        assert_eq!(body, b"a.\r\n");
    }

    #[test]
    fn all_smuggling_variants_are_refused() {
        let variants: [(&[u8], FramingError); 9] = [
            (b"\n.\n", FramingError::BareLf),
            (b"\r.\r", FramingError::BareCr),
            (b"\r.\n", FramingError::BareCr),
            (b"\n.\r", FramingError::BareLf),
            (b"\n.\r\n", FramingError::BareLf),
            (b"\r\n.\n", FramingError::BareLf),
            (b"\r.\r\n", FramingError::BareCr),
            (b"\r\n.\r", FramingError::BareCr),
            (b"\r\n\0.\r\n", FramingError::Nul),
        ];
        for (v, why) in variants {
            let mut input = b"Subject: first\r\n\r\nfirst message".to_vec();
            input.extend_from_slice(v);
            input.extend_from_slice(b"MAIL FROM:<ceo@agency.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\r\n.\r\n");
            every_split(&input, limits());
            let mut r = DataReader::new(limits());
            let p = r.feed(&input);
            assert_eq!(p.done, Some(DataOutcome::BareNewline), "{v:?}");
            assert_eq!(r.framing_error(), Some(why), "{v:?}");
            assert!(r.take_body().is_empty());
            // BDAT content re-emitted as DATA gets the same refusal.
            assert_eq!(
                run_bdat(&input, limits(), &[]).0,
                DataOutcome::BareNewline,
                "{v:?}"
            );
        }
        // More variants from the public tools.
        for v in [
            &b"\r\n.\r\r\n"[..],
            b"\r\r\n.\r\r\n",
            b"\r\n\0.\r",
            b"\r\n.\0\r\n",
            b"\n\n.\r\n",
            b"\r\n\x00.\n",
        ] {
            let mut input = b"x".to_vec();
            input.extend_from_slice(v);
            input.extend_from_slice(b"rest\r\n.\r\n");
            assert_eq!(
                run_data(&input, limits(), &[]).1,
                Some(DataOutcome::BareNewline),
                "{v:?}"
            );
        }
    }

    #[test]
    fn end_of_input_without_marker_is_not_an_end() {
        let (used, done, _) = run_data(b"Subject: x\r\n\r\nbody\r\n.", limits(), &[]);
        assert_eq!((used, done), (21, None));
    }

    #[test]
    fn size_limit_consumes_to_the_end() {
        let l = DataLimits {
            max_size: 100,
            ..limits()
        };
        let mut input = b"Subject: big\r\n\r\n".to_vec();
        for _ in 0..50 {
            input.extend_from_slice(b"0123456789\r\n");
        }
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let mut r = DataReader::new(l);
        let p = r.feed(&input);
        assert_eq!(&input[p.consumed..], b"QUIT\r\n");
        let reply = match p.done {
            Some(DataOutcome::Refused(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (reply.code, reply.first_line().get(..5)),
            (552, Some("5.3.4"))
        );
        assert_eq!(r.error(), Some(DataError::TooBig(100)));
        assert!(r.take_body().is_empty(), "nothing kept past the limit");
        assert!(r.size() > 100);
        // Exactly at the limit is fine.
        let (_, info, _) = match run_data(
            b"0123456789\r\n.\r\n",
            DataLimits {
                max_size: 12,
                ..limits()
            },
            &[],
        ) {
            (u, Some(DataOutcome::Complete(i)), b) => (u, i, b),
            other => panic!("{other:?}"),
        };
        assert_eq!(info.size, 12);
    }

    #[test]
    fn line_length_limit() {
        let l = limits();
        let line = |n: usize| {
            let mut v = vec![b'y'; n];
            v.extend_from_slice(b"\r\n.\r\n");
            v
        };
        assert!(matches!(
            run_data(&line(998), l, &[]).1,
            Some(DataOutcome::Complete(_))
        ));
        let (_, done, body) = run_data(&line(999), l, &[]);
        let Some(DataOutcome::Refused(r)) = done else {
            panic!("{done:?}")
        };
        assert_eq!((r.code, r.first_line().get(..5)), (550, Some("5.6.0")));
        assert!(body.is_empty());
        // The stuffing dot does not count (RFC 5321 §4.5.3.1.6).
        let mut stuffed = b".".to_vec();
        stuffed.extend_from_slice(&line(998));
        assert!(matches!(
            run_data(&stuffed, l, &[]).1,
            Some(DataOutcome::Complete(_))
        ));
        // 1 MiB in one line, fed in pieces: refused at the end, memory flat.
        let mut r = DataReader::new(l);
        for _ in 0..64 {
            assert_eq!(r.feed(&[b'z'; 16384]).done, None);
            assert!(r.body().len() < 2000);
        }
        assert!(matches!(
            r.feed(b"\r\n.\r\n").done,
            Some(DataOutcome::Refused(_))
        ));
    }

    #[test]
    fn header_section_limit_and_counts() {
        let l = DataLimits {
            max_header_size: 64,
            ..limits()
        };
        let mut input = Vec::new();
        for i in 0..5 {
            input.extend_from_slice(format!("X-H{i}: 0123456789\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\nbody\r\n.\r\n");
        let (_, done, _) = run_data(&input, l, &[]);
        let Some(DataOutcome::Refused(r)) = done else {
            panic!("{done:?}")
        };
        assert_eq!((r.code, r.first_line().get(..5)), (552, Some("5.3.4")));
        assert!(r.first_line().contains("header"));
        // The body does not count toward the header limit.
        let mut input = b"Subject: x\r\n\r\n".to_vec();
        input.extend_from_slice(&b"body line\r\n".repeat(20));
        input.extend_from_slice(b".\r\n");
        assert!(matches!(
            run_data(&input, l, &[]).1,
            Some(DataOutcome::Complete(_))
        ));
    }

    #[test]
    fn received_and_message_id_are_counted_in_the_header_only() {
        let input = b"Received: from a\r\n\tby b; date\r\nRECEIVED : from c\r\nreceived:x\r\nX-Received: no\r\nMessage-Id: <x@y>\r\n\r\nReceived: in body\r\nMessage-ID: body\r\n.\r\n";
        let (_, info, _) = complete(input);
        assert_eq!(info.received_headers, 3);
        assert!(info.has_message_id);
        every_split(input, limits());
        // A first line that is no header field ends the header section.
        let (_, info, _) = complete(b"hello world\r\nReceived: x\r\n.\r\n");
        assert_eq!((info.received_headers, info.header_size), (0, 0));
        let (_, info, _) = complete(b"Message-ID:<a@b>\r\n.\r\n");
        assert!(info.has_message_id);
    }

    #[test]
    fn every_split_of_several_inputs() {
        let small = DataLimits {
            max_size: 60,
            max_header_size: 30,
            max_line_length: 20,
        };
        for input in [
            &b"Subject: x\r\n\r\n..a\r\n.b\r\n\r\n.\r\nQUIT\r\n"[..],
            b".\r\n",
            b"..\r\n.\r\n",
            b"a\r\n.\r",
            b"a\r\n.x\r\n.\r\n",
            b"Received: a\r\nReceived: b\r\n\r\n.\r\n",
            b"a very long line that goes beyond twenty\r\n.\r\n",
            b"abc\r\r\n.\r\n",
            b"abc\r\n\r\n.\r\n",
        ] {
            every_split(input, limits());
            every_split(input, small);
            fuzzing::check(input);
        }
    }

    #[test]
    fn round_trip_through_stuffing() {
        let body = b"Subject: x\r\n\r\n.\r\n..\r\n.leading\r\nplain\r\n";
        let (used, _, got) = complete(&stuff(body));
        assert_eq!(got, body);
        assert_eq!(used, stuff(body).len());
        assert_clean_lines(&got);
    }

    #[test]
    fn bdat_chunks() {
        let (o, body) = run_bdat(b"Subject: x\r\n\r\nbody\r\n", limits(), &[5, 13, 14]);
        assert!(matches!(o, DataOutcome::Complete(i) if i.size == 20));
        assert_eq!(body, b"Subject: x\r\n\r\nbody\r\n");
        // No dot-stuffing in BDAT: ".\r\n" is content.
        let (_, body) = run_bdat(b"a\r\n.\r\nb\r\n", limits(), &[]);
        assert_eq!(body, b"a\r\n.\r\nb\r\n");
        // A CRLF split across chunks is fine; a final bare CR is not.
        let (o, _) = run_bdat(b"a\r\nb\r", limits(), &[]);
        assert_eq!(o, DataOutcome::BareNewline);
        let (o, body) = run_bdat(b"a\r\nb\r\n", limits(), &[4, 5]);
        assert!(matches!(o, DataOutcome::Complete(_)));
        assert_eq!(body, b"a\r\nb\r\n");
        // A last line without CRLF gets one.
        let (_, body) = run_bdat(b"a\r\nb", limits(), &[]);
        assert_eq!(body, b"a\r\nb\r\n");
        let (o, body) = run_bdat(b"", limits(), &[]);
        assert!(matches!(o, DataOutcome::Complete(i) if i.size == 0));
        assert!(body.is_empty());
        // Bare LF inside content: broken at once, and it stays broken.
        let mut r = BdatReader::new(limits());
        r.feed(b"a\nb");
        assert!(r.is_broken());
        assert_eq!(r.framing_error(), Some(FramingError::BareLf));
        r.feed(b"\r\n");
        assert_eq!(r.finish(), (DataOutcome::BareNewline, Vec::new()));
        // Cumulative size over chunks.
        let mut r = BdatReader::new(DataLimits {
            max_size: 10,
            ..limits()
        });
        r.feed(b"12345\r\n");
        r.feed(b"12345\r\n");
        assert_eq!(r.error(), Some(DataError::TooBig(10)));
        assert!(matches!(r.finish().0, DataOutcome::Refused(rep) if rep.code == 552));
    }

    #[test]
    fn chunk_counts_exact_octets() {
        let mut c = Chunk::new(5);
        assert_eq!(c.split(b"abc"), (&b"abc"[..], &b""[..]));
        assert_eq!(c.remaining(), 2);
        assert_eq!(c.split(b"deBDAT 1\r\n"), (&b"de"[..], &b"BDAT 1\r\n"[..]));
        assert!(c.is_done());
        assert_eq!(c.split(b"x"), (&b""[..], &b"x"[..]));
        let mut huge = Chunk::new(u64::MAX);
        assert_eq!(huge.split(b"xy").0, b"xy");
        assert_eq!(huge.remaining(), u64::MAX - 2);
    }
}
