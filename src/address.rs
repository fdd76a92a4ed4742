//! Envelope addresses: the `<...>` paths of MAIL FROM and RCPT TO
//! (RFC 5321 §4.1.2, with the UTF-8 of RFC 6531).
//!
//! The gateway decides relaying from the domain after the one `@`, so every
//! syntax that lets a mailbox route mail elsewhere is refused rather than
//! interpreted: the `%` hack, `!` bang paths, source routes (`<@a,@b:u@c>`),
//! several `@`, and quoted local parts hiding `@`, `%` or `!`. What parses
//! is a plain `local@domain` whose domain is the real destination.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::domain::{Domain, DomainError};

/// Longest local part in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL: usize = 64;
/// Longest domain in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path in octets, angle brackets included (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// A routing syntax that could send mail somewhere other than the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// `%` in the local part (`user%other@host`, the "percent hack").
    Percent,
    /// `!` in the local part (UUCP bang path `host!user`).
    Bang,
    /// `@` inside a quoted local part (`"user@other"@host`).
    QuotedAt,
    /// More than one `@` (`user@other@host`).
    MultipleAt,
    /// A source route (`<@a,@b:user@c>`), refused rather than stripped.
    SourceRoute,
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Routing::Percent => "% in the local part",
            Routing::Bang => "! in the local part",
            Routing::QuotedAt => "@ in a quoted local part",
            Routing::MultipleAt => "more than one @",
            Routing::SourceRoute => "source route",
        })
    }
}

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The path does not start with `<`.
    #[error("address must be enclosed in <>")]
    MissingBrackets,
    /// No closing `>` (or an unterminated quoted string).
    #[error("unterminated address")]
    Unterminated,
    /// `<>` where a mailbox is required.
    #[error("empty address")]
    Empty,
    /// A routing trick; see [`Routing`].
    #[error("routing syntax is not accepted ({0})")]
    Routing(Routing),
    /// Nothing before the `@`.
    #[error("empty local part")]
    EmptyLocal,
    /// No `@domain` (only `<postmaster>` may omit it, and only as recipient).
    #[error("missing domain")]
    MissingDomain,
    /// Nothing after the `@`.
    #[error("empty domain")]
    EmptyDomain,
    /// A character not allowed where it stands: a control character, a space
    /// outside quotes, a bidi override, ...
    #[error("invalid character in address")]
    BadChar,
    /// A malformed local part (`a..b`, `.a`, a bad escape).
    #[error("invalid local part")]
    BadLocal,
    /// The domain is not a valid host name.
    #[error("invalid domain: {0}")]
    BadDomain(DomainError),
    /// A malformed or unsupported address literal.
    #[error("invalid address literal")]
    BadLiteral,
    /// Local part over [`MAX_LOCAL`] octets.
    #[error("local part longer than 64 octets")]
    LocalTooLong,
    /// Domain over [`MAX_DOMAIN`] octets.
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    /// Path over [`MAX_PATH`] octets.
    #[error("address longer than 256 octets")]
    PathTooLong,
}

impl AddressError {
    /// True for refusals of routing syntax (553 rather than 501).
    pub fn is_routing(&self) -> bool {
        matches!(self, AddressError::Routing(_))
    }
}

/// The part after the `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MailDomain {
    /// A host name, in lowercase A-label form.
    Name(Domain),
    /// An address literal `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    Literal(IpAddr),
}

impl fmt::Display for MailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailDomain::Name(d) => f.write_str(d.as_str()),
            MailDomain::Literal(IpAddr::V4(ip)) => write!(f, "[{ip}]"),
            MailDomain::Literal(IpAddr::V6(ip)) => write!(f, "[IPv6:{ip}]"),
        }
    }
}

/// A mailbox `local@domain`, free of routing syntax.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// The local part as meant, quotes and escapes removed (`"a b"` is `a b`).
    /// Case is kept: only the receiving host may interpret it.
    pub local: String,
    /// The domain.
    pub domain: MailDomain,
    /// The client wrote the domain in U-labels; it is stored as A-labels but
    /// still needed SMTPUTF8.
    utf8_domain: bool,
}

impl Mailbox {
    /// Parses a bare `local@domain` (no angle brackets).
    pub fn parse(text: &str) -> Result<Mailbox, AddressError> {
        let wrapped = format!("<{text}>");
        match parse_path(&wrapped)? {
            (Path::Mailbox(mb), "") => Ok(mb),
            (Path::Mailbox(_), _) => Err(AddressError::BadChar),
            (Path::Null, _) => Err(AddressError::Empty),
            (Path::Postmaster, _) => Err(AddressError::MissingDomain),
        }
    }

    /// True when the address needs SMTPUTF8: a non-ASCII local part, or a
    /// domain the client sent in U-label form.
    pub fn is_utf8(&self) -> bool {
        self.utf8_domain || !self.local.is_ascii()
    }

    /// True when the local part must be quoted on the wire.
    fn needs_quotes(&self) -> bool {
        !is_dot_string(&self.local)
    }
}

/// Two spellings of one mailbox are equal: the U-label flag is left out.
impl PartialEq for Mailbox {
    fn eq(&self, other: &Mailbox) -> bool {
        self.local == other.local && self.domain == other.domain
    }
}

impl Eq for Mailbox {}

impl Hash for Mailbox {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.local.hash(state);
        self.domain.hash(state);
    }
}

impl fmt::Display for Mailbox {
    /// `local@domain`, the local part re-quoted when it is not a dot-string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.needs_quotes() {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        } else {
            f.write_str(&self.local)?;
        }
        write!(f, "@{}", self.domain)
    }
}

impl FromStr for Mailbox {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mailbox::parse(s)
    }
}

/// The MAIL FROM path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`: bounces and other notifications.
    Null,
    /// A sender mailbox.
    Mailbox(Mailbox),
}

impl ReversePath {
    /// Parses `<...>` at the start of `input`; returns the rest after `>`.
    pub fn parse(input: &str) -> Result<(ReversePath, &str), AddressError> {
        match parse_path(input)? {
            (Path::Null, rest) => Ok((ReversePath::Null, rest)),
            (Path::Mailbox(mb), rest) => Ok((ReversePath::Mailbox(mb), rest)),
            (Path::Postmaster, _) => Err(AddressError::MissingDomain),
        }
    }
}

impl fmt::Display for ReversePath {
    /// `<>` or `local@domain`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(mb) => mb.fmt(f),
        }
    }
}

/// The RCPT TO path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// Bare `<postmaster>` (any case): the gateway's own postmaster
    /// (RFC 5321 §4.5.1).
    Postmaster,
    /// A recipient mailbox.
    Mailbox(Mailbox),
}

impl ForwardPath {
    /// Parses `<...>` at the start of `input`; returns the rest after `>`.
    pub fn parse(input: &str) -> Result<(ForwardPath, &str), AddressError> {
        match parse_path(input)? {
            (Path::Null, _) => Err(AddressError::Empty),
            (Path::Mailbox(mb), rest) => Ok((ForwardPath::Mailbox(mb), rest)),
            (Path::Postmaster, rest) => Ok((ForwardPath::Postmaster, rest)),
        }
    }
}

impl fmt::Display for ForwardPath {
    /// `postmaster` or `local@domain`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("postmaster"),
            ForwardPath::Mailbox(mb) => mb.fmt(f),
        }
    }
}

/// What a `<...>` path held, before MAIL or RCPT narrows it down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `<>`.
    Null,
    /// `<postmaster>` without a domain, any case.
    Postmaster,
    /// `<local@domain>`.
    Mailbox(Mailbox),
}

/// Parses the `<...>` path at the start of `input` (RFC 5321 §4.1.2) and
/// returns it with the rest of the input after the `>`.
pub fn parse_path(input: &str) -> Result<(Path, &str), AddressError> {
    let Some(inner) = input.strip_prefix('<') else {
        return Err(AddressError::MissingBrackets);
    };
    if let Some(rest) = inner.strip_prefix('>') {
        return Ok((Path::Null, rest));
    }
    if inner.starts_with('@') {
        // Either a source route `@a,@b:` or an empty local part.
        let head = inner.split('>').next().unwrap_or("");
        return Err(if head.contains(':') {
            AddressError::Routing(Routing::SourceRoute)
        } else {
            AddressError::EmptyLocal
        });
    }
    let (local, quoted, after_local) = parse_local(inner)?;
    // Routing syntax is judged first so that probes get the refusal that
    // names them, whatever else is wrong.
    if local.contains('%') {
        return Err(AddressError::Routing(Routing::Percent));
    }
    if local.contains('!') {
        return Err(AddressError::Routing(Routing::Bang));
    }
    if local.contains('@') {
        return Err(AddressError::Routing(Routing::QuotedAt));
    }
    let raw_local_len = inner.len() - after_local.len();
    let (domain, rest) = if let Some(after_at) = after_local.strip_prefix('@') {
        let (domain, rest) = parse_domain(after_at)?;
        (Some(domain), rest)
    } else if let Some(rest) = after_local.strip_prefix('>') {
        (None, rest)
    } else if after_local.is_empty() {
        return Err(AddressError::Unterminated);
    } else {
        return Err(AddressError::BadChar);
    };
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if raw_local_len > MAX_LOCAL {
        return Err(AddressError::LocalTooLong);
    }
    let Some((domain, utf8_domain)) = domain else {
        if !quoted && local.eq_ignore_ascii_case("postmaster") {
            return Ok((Path::Postmaster, rest));
        }
        return Err(AddressError::MissingDomain);
    };
    let mb = Mailbox {
        local,
        domain,
        utf8_domain,
    };
    // Both the path as sent and the A-label form we pass on must fit.
    let raw_path_len = input.len() - rest.len();
    if raw_path_len > MAX_PATH || mb.to_string().len() + 2 > MAX_PATH {
        return Err(AddressError::PathTooLong);
    }
    Ok((Path::Mailbox(mb), rest))
}

/// Characters never accepted anywhere in an address, even quoted or UTF-8:
/// controls (C0, DEL, C1 such as NEL), line and paragraph separators, the
/// BOM and bidi embeddings/overrides/isolates (they make the address read
/// differently from what it is).
fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// RFC 5322 `atext`, widened to non-ASCII by RFC 6531.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !forbidden(c))
}

/// True when `s` is a dot-string: atoms of atext joined by single dots.
fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Parses the local part at the start of `s`: returns its meaning, whether
/// it was quoted, and what follows it.
fn parse_local(s: &str) -> Result<(String, bool, &str), AddressError> {
    if let Some(body) = s.strip_prefix('"') {
        let mut local = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((local, true, body.get(i + 1..).unwrap_or(""))),
                '\\' => match chars.next() {
                    // quoted-pairSMTP: a backslash and printable ASCII.
                    Some((_, e)) if (' '..='~').contains(&e) => local.push(e),
                    Some(_) => return Err(AddressError::BadLocal),
                    None => return Err(AddressError::Unterminated),
                },
                c if forbidden(c) => return Err(AddressError::BadChar),
                // qtextSMTP: printable ASCII but `"` and `\`, and UTF-8.
                c => local.push(c),
            }
        }
        return Err(AddressError::Unterminated);
    }
    let end = s
        .char_indices()
        .find(|&(_, c)| !(is_atext(c) || c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (local, rest) = s.split_at(end);
    if rest.starts_with(|c: char| forbidden(c) || c == ' ') {
        return Err(AddressError::BadChar);
    }
    if local.is_empty() {
        return Ok((String::new(), false, rest));
    }
    if !is_dot_string(local) {
        return Err(AddressError::BadLocal);
    }
    Ok((local.to_string(), false, rest))
}

/// Parses the domain or address literal after the `@`, up to and including
/// the closing `>`; returns the domain, whether it held U-labels, and the rest.
fn parse_domain(s: &str) -> Result<((MailDomain, bool), &str), AddressError> {
    let Some(end) = s.find(|c: char| c == '>' || c == ' ' || forbidden(c)) else {
        return Err(if s.contains('@') {
            AddressError::Routing(Routing::MultipleAt)
        } else {
            AddressError::Unterminated
        });
    };
    let (raw, rest) = s.split_at(end);
    if raw.contains('@') {
        return Err(AddressError::Routing(Routing::MultipleAt));
    }
    let Some(rest) = rest.strip_prefix('>') else {
        return Err(AddressError::BadChar);
    };
    if raw.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if raw.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    if let Some(lit) = raw.strip_prefix('[') {
        let lit = lit.strip_suffix(']').ok_or(AddressError::BadLiteral)?;
        return Ok(((MailDomain::Literal(parse_literal(lit)?), false), rest));
    }
    // Only host-name characters reach the IDNA conversion: UTS 46 mapping
    // would otherwise turn look-alikes (full-width `＠`, `。`) into syntax.
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' || !c.is_ascii())
    {
        return Err(AddressError::BadChar);
    }
    let domain = Domain::parse(raw).map_err(AddressError::BadDomain)?;
    Ok(((MailDomain::Name(domain), !raw.is_ascii()), rest))
}

/// `1.2.3.4` or `IPv6:...` (the tag in any case); general literals are not
/// accepted.
fn parse_literal(lit: &str) -> Result<IpAddr, AddressError> {
    let tag = lit.get(..5).filter(|t| t.eq_ignore_ascii_case("IPv6:"));
    if tag.is_some() {
        let v6 = lit.get(5..).unwrap_or("");
        return Ipv6Addr::from_str(v6)
            .map(IpAddr::V6)
            .map_err(|_| AddressError::BadLiteral);
    }
    Ipv4Addr::from_str(lit)
        .map(IpAddr::V4)
        .map_err(|_| AddressError::BadLiteral)
}

/// Invariant checks shared by the `address` fuzz target and the corpus
/// replay test (`tests/fuzz_corpus.rs`).
pub mod fuzzing {
    use super::*;

    /// Parses `data` as a path and checks: no panic; a mailbox has no routing
    /// characters, respects the length limits, and survives a round trip
    /// through its display form with the same value and UTF-8 flag.
    pub fn check(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        for input in [text.to_string(), format!("<{text}>")] {
            let Ok((path, rest)) = parse_path(&input) else {
                continue;
            };
            assert!(input.ends_with(rest));
            let Path::Mailbox(mb) = path else {
                continue;
            };
            check_mailbox(&mb);
        }
        if let Ok(mb) = Mailbox::parse(text) {
            check_mailbox(&mb);
        }
    }

    fn check_mailbox(mb: &Mailbox) {
        assert!(!mb.local.is_empty());
        assert!(
            !mb.local.contains(['%', '!', '@']),
            "routing char in {:?}",
            mb.local
        );
        assert!(!mb.local.chars().any(forbidden));
        let shown = mb.to_string();
        assert!(!shown.contains(['\r', '\n', '\0', ' ']) || shown.starts_with('"'));
        let wrapped = format!("<{shown}>");
        assert!(
            wrapped.len() <= MAX_PATH,
            "display form too long: {wrapped}"
        );
        let again = Mailbox::parse(&shown).expect("display form parses again");
        assert_eq!(&again, mb);
        assert_eq!(again.to_string(), shown, "display is stable");
        // The display form holds A-labels, so only the local part can still
        // need SMTPUTF8.
        assert_eq!(again.is_utf8(), !shown.is_ascii());
        if !mb.is_utf8() {
            assert!(shown.is_ascii());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(s: &str) -> Mailbox {
        match parse_path(s) {
            Ok((Path::Mailbox(mb), "")) => mb,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn err(s: &str) -> AddressError {
        match parse_path(s) {
            Err(e) => e,
            Ok(p) => panic!("{s} accepted: {p:?}"),
        }
    }

    fn name(mb: &Mailbox) -> String {
        match &mb.domain {
            MailDomain::Name(d) => d.to_string(),
            MailDomain::Literal(ip) => format!("[{ip}]"),
        }
    }

    #[test]
    fn plain_addresses() {
        let mb = mailbox("<Clerk.Office@Agency.Example.KZ>");
        assert_eq!(mb.local, "Clerk.Office");
        assert_eq!(name(&mb), "agency.example.kz");
        assert_eq!(mb.to_string(), "Clerk.Office@agency.example.kz");
        assert!(!mb.is_utf8());
        let (p, rest) = parse_path("<a+tag@b.example> SIZE=10").unwrap();
        assert!(matches!(p, Path::Mailbox(_)));
        assert_eq!(rest, " SIZE=10");
        assert_eq!(parse_path("<>").unwrap(), (Path::Null, ""));
        assert_eq!(mailbox("<a@b.example.>").to_string(), "a@b.example");
    }

    #[test]
    fn quoted_local_parts() {
        let mb = mailbox("<\"a b\"@x.example>");
        assert_eq!(mb.local, "a b");
        assert_eq!(mb.to_string(), "\"a b\"@x.example");
        let mb = mailbox(r#"<"a\"b\\c"@x.example>"#);
        assert_eq!(mb.local, r#"a"b\c"#);
        assert_eq!(mb.to_string(), r#""a\"b\\c"@x.example"#);
        // A quoted dot-string is the dot-string (RFC 5321 §4.1.2).
        let mb = mailbox("<\"abc\"@x.example>");
        assert_eq!(mb, mailbox("<abc@x.example>"));
        assert_eq!(mb.to_string(), "abc@x.example");
        assert_eq!(mailbox("<\"a>b\"@x.example>").local, "a>b");
        assert_eq!(err("<\"\"@x.example>"), AddressError::EmptyLocal);
        assert_eq!(err("<\"a\tb\"@x.example>"), AddressError::BadChar);
        assert_eq!(err("<\"a\\\u{1}\"@x.example>"), AddressError::BadLocal);
        assert_eq!(err("<\"abc@x.example>"), AddressError::Unterminated);
    }

    #[test]
    fn odd_local_parts() {
        for bad in ["<a..b@x.example>", "<.a@x.example>", "<a.@x.example>"] {
            assert_eq!(err(bad), AddressError::BadLocal, "{bad}");
        }
        assert_eq!(err("<a b@x.example>"), AddressError::BadChar);
        assert_eq!(err("< a@x.example>"), AddressError::BadChar);
        assert_eq!(err("<a\0@x.example>"), AddressError::BadChar);
        assert_eq!(err("<a@x.example >"), AddressError::BadChar);
        assert_eq!(err("<a(c)@x.example>"), AddressError::BadChar);
        assert_eq!(err("a@x.example"), AddressError::MissingBrackets);
        assert_eq!(err("<a@x.example"), AddressError::Unterminated);
        assert_eq!(err("<a@>"), AddressError::EmptyDomain);
        assert_eq!(err("<@x.example>"), AddressError::EmptyLocal);
        assert_eq!(err("<abc>"), AddressError::MissingDomain);
        assert!(matches!(err("<a@localhost>"), AddressError::BadDomain(_)));
        assert!(matches!(err("<a@x..example>"), AddressError::BadDomain(_)));
        assert_eq!(err("<a@x.example:25>"), AddressError::BadChar);
        // A full-width `＠` is not an `@`, and IDNA refuses it.
        assert_eq!(
            err("<a@x\u{ff0e}example\u{ff20}evil.example>"),
            AddressError::BadDomain(DomainError::Idna)
        );
        // Bidi overrides hide what an address says.
        assert_eq!(err("<a\u{202e}b@x.example>"), AddressError::BadChar);
    }

    #[test]
    fn lengths() {
        let l64 = "a".repeat(64);
        assert_eq!(mailbox(&format!("<{l64}@x.example>")).local, l64);
        assert_eq!(
            err(&format!("<{l64}a@x.example>")),
            AddressError::LocalTooLong
        );
        // The quotes count: they are part of the local part on the wire.
        assert_eq!(
            err(&format!("<\"{}\"@x.example>", "a".repeat(63))),
            AddressError::LocalTooLong
        );
        let label = "b".repeat(63);
        let long_domain = format!("{label}.{label}.{label}.{label}.kz");
        assert!(long_domain.len() > 255);
        assert_eq!(
            err(&format!("<a@{long_domain}>")),
            AddressError::DomainTooLong
        );
        // A 253-octet domain leaves no room for any local part in 256.
        let d253 = format!("{label}.{label}.{label}.{}.kz", "c".repeat(58));
        assert_eq!(d253.len(), 253);
        assert_eq!(err(&format!("<a@{d253}>")), AddressError::PathTooLong);
        let d251 = format!("{label}.{label}.{label}.{}.kz", "c".repeat(56));
        assert!(matches!(
            mailbox(&format!("<a@{d251}>")).domain,
            MailDomain::Name(_)
        ));
        assert_eq!(err(&format!("<{l64}@{d251}>")), AddressError::PathTooLong);
        // The A-label form must fit too: U-labels expand.
        let labels = vec!["a\u{fc}"; 20].join(".");
        let u = format!("{labels}.kz");
        let a_label = Domain::parse(&u).unwrap();
        let raw = format!("<{l64}@{u}>");
        assert!(raw.len() <= 256 && a_label.as_str().len() + 67 > 256);
        assert_eq!(err(&raw), AddressError::PathTooLong);
        assert!(matches!(
            parse_path(&format!("<a@{u}>")).unwrap().0,
            Path::Mailbox(_)
        ));
    }

    #[test]
    fn address_literals() {
        let mb = mailbox("<u@[192.0.2.1]>");
        assert_eq!(mb.domain, MailDomain::Literal("192.0.2.1".parse().unwrap()));
        assert_eq!(mb.to_string(), "u@[192.0.2.1]");
        let mb = mailbox("<u@[ipv6:2001:DB8::1]>");
        assert_eq!(mb.to_string(), "u@[IPv6:2001:db8::1]");
        assert_eq!(mailbox("<u@[IPv6:::1]>").to_string(), "u@[IPv6:::1]");
        for bad in [
            "<u@[192.0.2.256]>",
            "<u@[192.0.2]>",
            "<u@[2001:db8::1]>",
            "<u@[IPv6:1.2.3.4]>",
            "<u@[x-tag:foo]>",
            "<u@[192.0.2.1>",
            "<u@[]>",
            "<u@[010.0.0.1]>",
        ] {
            assert_eq!(err(bad), AddressError::BadLiteral, "{bad}");
        }
    }

    #[test]
    fn utf8_addresses_are_flagged() {
        let mb = mailbox("<пользователь@пример.қаз>");
        assert!(mb.is_utf8());
        assert!(name(&mb).starts_with("xn--"));
        // ASCII local part, U-label domain: still needs SMTPUTF8.
        let mb = mailbox("<user@bücher.example>");
        assert!(mb.is_utf8());
        assert_eq!(mb.to_string(), "user@xn--bcher-kva.example");
        assert_eq!(mb, mailbox("<user@xn--bcher-kva.example>"));
        assert!(!mailbox("<user@xn--bcher-kva.example>").is_utf8());
        // C1 controls (NEL) are refused even in UTF-8.
        assert_eq!(err("<a\u{85}b@x.example>"), AddressError::BadChar);
        // Full-width look-alikes never become syntax.
        assert_eq!(
            err("<a@x.example\u{ff1a}25>"),
            AddressError::BadDomain(DomainError::Idna)
        );
    }

    #[test]
    fn postmaster() {
        assert_eq!(
            ForwardPath::parse("<postmaster>").unwrap().0,
            ForwardPath::Postmaster
        );
        assert_eq!(
            ForwardPath::parse("<PostMaster>").unwrap().0,
            ForwardPath::Postmaster
        );
        assert!(matches!(
            ForwardPath::parse("<PostMaster@gw.example>").unwrap().0,
            ForwardPath::Mailbox(_)
        ));
        assert_eq!(
            ForwardPath::parse("<\"postmaster\">").unwrap_err(),
            AddressError::MissingDomain
        );
        assert_eq!(
            ReversePath::parse("<postmaster>").unwrap_err(),
            AddressError::MissingDomain
        );
        assert_eq!(ForwardPath::parse("<>").unwrap_err(), AddressError::Empty);
        assert_eq!(ReversePath::parse("<>").unwrap(), (ReversePath::Null, ""));
        assert_eq!(ReversePath::Null.to_string(), "<>");
    }

    #[test]
    fn routing_tricks_are_refused() {
        use Routing::*;
        for (input, why) in [
            ("<u%other.example@x.example>", Percent),
            ("<other.example!u@x.example>", Bang),
            ("<other.example!u>", Bang),
            ("<\"u@other.example\"@x.example>", QuotedAt),
            ("<\"u@other.example\">", QuotedAt),
            ("<\"u%other.example\"@x.example>", Percent),
            ("<\"u!other\"@x.example>", Bang),
            ("<u@other.example@x.example>", MultipleAt),
            ("<u@other.example@[192.0.2.1]>", MultipleAt),
            ("<@x.example:u@other.example>", SourceRoute),
            ("<@a.example,@b.example:u@c.example>", SourceRoute),
        ] {
            assert_eq!(err(input), AddressError::Routing(why), "{input}");
            assert!(err(input).is_routing());
        }
    }

    /// The 16 probes of nmap's smtp-open-relay: each recipient is either a
    /// routing refusal or a plain mailbox at the rightmost real domain.
    #[test]
    fn nmap_open_relay_probes() {
        let d = "nmap.scanme.org";
        let srv = "gw.test.example";
        let ip = "[192.0.2.7]";
        for from in [
            "<>".to_string(),
            format!("<antispam@{d}>"),
            format!("<antispam@{srv}>"),
            format!("<antispam@{ip}>"),
        ] {
            let (rp, rest) = ReversePath::parse(&from).unwrap();
            assert_eq!(rest, "");
            if let ReversePath::Mailbox(mb) = rp {
                assert_eq!(mb.local, "antispam");
            }
        }
        let plain = ForwardPath::parse(&format!("<relaytest@{d}>")).unwrap().0;
        let ForwardPath::Mailbox(mb) = plain else {
            panic!()
        };
        assert_eq!(name(&mb), d);
        let tricks = [
            format!("relaytest%{d}@{ip}"),
            format!("relaytest%{d}@{srv}"),
            format!("\"relaytest@{d}\""),
            format!("\"relaytest%{d}\""),
            format!("relaytest@{d}@{ip}"),
            format!("\"relaytest@{d}\"@{ip}"),
            format!("relaytest@{d}@{srv}"),
            format!("@{ip}:relaytest@{d}"),
            format!("@{srv}:relaytest@{d}"),
            format!("{d}!relaytest"),
            format!("{d}!relaytest@{ip}"),
            format!("{d}!relaytest@{srv}"),
        ];
        assert_eq!(tricks.len(), 12);
        for t in tricks {
            match ForwardPath::parse(&format!("<{t}>")) {
                Err(e) => assert!(e.is_routing(), "{t}: {e:?}"),
                Ok((ForwardPath::Mailbox(mb), _)) => {
                    panic!("{t} parsed as {mb} (domain {})", name(&mb))
                }
                Ok(other) => panic!("{t}: {other:?}"),
            }
        }
    }

    #[test]
    fn mailbox_parse_and_round_trip() {
        for s in [
            "a@b.example",
            "\"a b\"@b.example",
            "x@[IPv6:2001:db8::2]",
            "ü@b.example",
        ] {
            let mb: Mailbox = s.parse().unwrap();
            assert_eq!(mb.to_string(), s);
            fuzzing::check(s.as_bytes());
        }
        assert_eq!(
            Mailbox::parse("a@b.example> x").unwrap_err(),
            AddressError::BadChar
        );
        assert_eq!(Mailbox::parse("").unwrap_err(), AddressError::Empty);
    }
}
