//! Command parsing: one line (without its CRLF) in, a typed [`Command`] or a
//! [`CommandError`] with its exact reply out.
//!
//! Strict where it matters: verbs are ASCII letters, no control characters
//! anywhere (NUL included), `MAIL FROM:<path>` / `RCPT TO:<path>` with at
//! most one space after the colon, ESMTP parameters in `keyword[=value]`
//! form, each at most once. Lines from other protocols (HTTP, a TLS
//! ClientHello) are recognised so that the session can hang up at once.

use crate::address::{AddressError, ForwardPath, ReversePath};

use crate::reply::Reply;

/// The `BODY=` values of RFC 6152.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// The parameters of MAIL FROM that the gateway supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=n` (RFC 1870): the client's estimate of the message size.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531): the envelope or headers may hold UTF-8.
    pub smtputf8: bool,
}

/// The parameters of RCPT TO that the gateway supports: none yet (DSN's
/// NOTIFY and ORCPT are validated, then refused with 555).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO name`: the validated domain or address literal, as sent.
    Ehlo(String),
    /// `HELO name`: as [`Command::Ehlo`].
    Helo(String),
    /// `MAIL FROM:<path> [params]`.
    Mail {
        /// The reverse-path.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> [params]`.
    Rcpt {
        /// The forward-path.
        to: ForwardPath,
        /// Its parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030).
    Bdat {
        /// Octets of the chunk that follows the command line.
        size: u64,
        /// True for the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [text]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `HELP [topic]`.
    Help,
    /// `VRFY ...` (the argument is not kept: the gateway never verifies).
    Vrfy,
    /// `EXPN ...` (likewise).
    Expn,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH ...` (arguments not kept: AUTH is not offered).
    Auth,
    /// Any other verb made of printable ASCII, uppercased, at most 16 characters.
    Unknown(String),
}

/// Why a line is not a valid command; [`CommandError::reply`] gives the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// An HTTP request, a TLS ClientHello or other non-SMTP bytes: the
    /// session closes at once (Postfix `smtpd_forbidden_commands`).
    #[error("foreign protocol on the SMTP port")]
    ForeignProtocol,
    /// An empty line.
    #[error("empty command")]
    Empty,
    /// A control character (NUL, TAB, ESC, DEL, ...) or an 8-bit byte in the
    /// verb.
    #[error("invalid character in command")]
    BadChar,
    /// Bytes after the verb that are not UTF-8.
    #[error("command is not valid UTF-8")]
    BadUtf8,
    /// Arguments given to a command that takes none.
    #[error("{0} takes no arguments")]
    UnexpectedArgument(&'static str),
    /// The EHLO/HELO argument is missing or not a domain or address literal.
    #[error("invalid EHLO/HELO argument")]
    BadHelo,
    /// MAIL/RCPT/BDAT not in the required form; holds the usage text.
    #[error("syntax: {0}")]
    Syntax(&'static str),
    /// A refused MAIL FROM path.
    #[error("bad sender address: {0}")]
    BadSender(AddressError),
    /// A refused RCPT TO path.
    #[error("bad recipient address: {0}")]
    BadRecipient(AddressError),
    /// A parameter the gateway does not implement (or does not offer).
    #[error("parameter {0} not supported")]
    UnknownParam(String),
    /// A parameter given twice.
    #[error("parameter {0} given twice")]
    DuplicateParam(String),
    /// A parameter whose value is malformed; the text says how.
    #[error("bad value for {keyword}: {reason}")]
    BadParam {
        /// The parameter, uppercased.
        keyword: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Parameters not in `keyword[=value]` form, or separated by more than
    /// one space.
    #[error("malformed parameters")]
    ParamSyntax,
}

impl CommandError {
    /// The exact reply for this error.
    pub fn reply(&self) -> Reply {
        use CommandError::*;
        match self {
            ForeignProtocol => {
                Reply::new(521, "5.5.1", "this is an SMTP server; closing connection")
            }
            Empty => Reply::new(500, "5.5.2", "empty command"),
            BadChar => Reply::new(500, "5.5.2", "invalid character in command"),
            BadUtf8 => Reply::new(500, "5.5.2", "command is not valid UTF-8"),
            UnexpectedArgument(verb) => {
                Reply::new(501, "5.5.4", format!("syntax: {verb} takes no arguments"))
            }
            BadHelo => Reply::new(
                501,
                "5.5.4",
                "syntax: EHLO followed by a domain name or address literal",
            ),
            Syntax(usage) => Reply::new(501, "5.5.4", format!("syntax: {usage}")),
            BadSender(e) if e.is_routing() => {
                Reply::new(553, "5.1.7", format!("sender address refused: {e}"))
            }
            BadSender(e) => Reply::new(501, "5.1.7", format!("bad sender address syntax: {e}")),
            BadRecipient(e) if e.is_routing() => {
                Reply::new(553, "5.1.3", format!("recipient address refused: {e}"))
            }
            BadRecipient(e) => {
                Reply::new(501, "5.1.3", format!("bad recipient address syntax: {e}"))
            }
            UnknownParam(k) => Reply::new(555, "5.5.4", format!("parameter {k} not supported")),
            DuplicateParam(k) => Reply::new(555, "5.5.4", format!("parameter {k} given twice")),
            BadParam { keyword, reason } => {
                Reply::new(501, "5.5.4", format!("bad {keyword} parameter: {reason}"))
            }
            ParamSyntax => Reply::new(501, "5.5.4", "malformed parameters"),
        }
    }
}

/// HTTP methods: a line starting with one of these and a space is HTTP.
const HTTP_METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "HEAD", "CONNECT", "OPTIONS", "DELETE", "PATCH", "TRACE",
];

/// Longest verb kept in [`Command::Unknown`].
const MAX_UNKNOWN_VERB: usize = 16;

/// Parses one command line (without its CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let Some(&first) = line.first() else {
        return Err(CommandError::Empty);
    };
    // Postfix's `/^[^A-Z]/` rule: every SMTP verb starts with a letter; a
    // TLS ClientHello (0x16), a binary probe or a stray space do not.
    if !first.is_ascii_alphabetic() {
        return Err(CommandError::ForeignProtocol);
    }
    let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let (verb, rest) = line.split_at(verb_end);
    if !verb.iter().all(|b| b.is_ascii_graphic()) {
        return Err(CommandError::BadChar);
    }
    if is_foreign(verb, rest) {
        return Err(CommandError::ForeignProtocol);
    }
    if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(CommandError::BadChar);
    }
    let rest = std::str::from_utf8(rest).map_err(|_| CommandError::BadUtf8)?;
    // Trailing spaces are common and harmless; one space separates the verb.
    let args = rest.trim_end_matches(' ');
    let args = args.strip_prefix(' ').unwrap_or(args);
    let verb = verb.to_ascii_uppercase();
    let no_args = |cmd: Command, name: &'static str| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::UnexpectedArgument(name))
        }
    };
    match verb.as_slice() {
        b"EHLO" => parse_helo_name(args).map(Command::Ehlo),
        b"HELO" => parse_helo_name(args).map(Command::Helo),
        b"MAIL" => parse_mail(args),
        b"RCPT" => parse_rcpt(args),
        b"DATA" => no_args(Command::Data, "DATA"),
        b"BDAT" => parse_bdat(args),
        b"RSET" => no_args(Command::Rset, "RSET"),
        b"QUIT" => no_args(Command::Quit, "QUIT"),
        b"STARTTLS" => no_args(Command::StartTls, "STARTTLS"),
        b"NOOP" => Ok(Command::Noop),
        b"HELP" => Ok(Command::Help),
        b"VRFY" => Ok(Command::Vrfy),
        b"EXPN" => Ok(Command::Expn),
        b"AUTH" => Ok(Command::Auth),
        _ => {
            let shown = verb.get(..MAX_UNKNOWN_VERB).unwrap_or(&verb);
            Ok(Command::Unknown(
                String::from_utf8_lossy(shown).into_owned(),
            ))
        }
    }
}

/// An HTTP request line (`GET / HTTP/1.1`, `PRI * HTTP/2.0`, ...).
fn is_foreign(verb: &[u8], rest: &[u8]) -> bool {
    let method = HTTP_METHODS
        .iter()
        .any(|m| verb.eq_ignore_ascii_case(m.as_bytes()))
        && rest.first() == Some(&b' ');
    let version = [b" HTTP/1.0".as_slice(), b" HTTP/1.1", b" HTTP/2.0"]
        .iter()
        .any(|v| rest.ends_with(v));
    method || version
}

/// The EHLO/HELO argument: a host name (one label allowed: many clients
/// send their short name) or an address literal; printable ASCII only, since
/// it is copied into our Received header.
fn parse_helo_name(arg: &str) -> Result<String, CommandError> {
    if arg.is_empty() || arg.len() > 255 {
        return Err(CommandError::BadHelo);
    }
    let ok = if let Some(lit) = arg.strip_prefix('[') {
        let lit = lit.strip_suffix(']').unwrap_or("");
        match lit.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => lit
                .get(5..)
                .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok()),
            _ => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        }
    } else {
        let name = arg.strip_suffix('.').unwrap_or(arg);
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if ok {
        Ok(arg.to_string())
    } else {
        Err(CommandError::BadHelo)
    }
}

/// Strips `keyword` (any case) and the colon, then at most one space.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args.get(keyword.len()..)?;
    // "MAIL FROM: <a@b>" is common enough to tolerate; two spaces are not.
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

const MAIL_USAGE: &str = "MAIL FROM:<address> [parameters]";
const RCPT_USAGE: &str = "RCPT TO:<address> [parameters]";
const BDAT_USAGE: &str = "BDAT size [LAST]";

fn parse_mail(args: &str) -> Result<Command, CommandError> {
    let path = strip_keyword(args, "FROM:").ok_or(CommandError::Syntax(MAIL_USAGE))?;
    if !path.starts_with('<') {
        return Err(CommandError::Syntax(MAIL_USAGE));
    }
    let (from, rest) = ReversePath::parse(path).map_err(CommandError::BadSender)?;
    let mut params = MailParams::default();
    for p in split_params(rest)? {
        match p.keyword.as_str() {
            "SIZE" => params.size = Some(parse_size(&p)?),
            "BODY" => {
                params.body = Some(match p.value.map(str::to_ascii_uppercase).as_deref() {
                    Some("7BIT") => Body::SevenBit,
                    Some("8BITMIME") => Body::EightBitMime,
                    _ => return Err(p.bad("must be 7BIT or 8BITMIME")),
                })
            }
            "SMTPUTF8" if p.value.is_some() => return Err(p.bad("takes no value")),
            "SMTPUTF8" => params.smtputf8 = true,
            // Known extensions the gateway does not offer (DSN, AUTH):
            // checked for injection first, then refused.
            "ENVID" | "AUTH" => {
                xtext_value(&p)?;
                return Err(CommandError::UnknownParam(p.keyword));
            }
            _ => return Err(CommandError::UnknownParam(p.keyword)),
        }
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(args: &str) -> Result<Command, CommandError> {
    let path = strip_keyword(args, "TO:").ok_or(CommandError::Syntax(RCPT_USAGE))?;
    if !path.starts_with('<') {
        return Err(CommandError::Syntax(RCPT_USAGE));
    }
    let (to, rest) = ForwardPath::parse(path).map_err(CommandError::BadRecipient)?;
    if let Some(p) = split_params(rest)?.into_iter().next() {
        if p.keyword == "ORCPT" {
            // RFC 3461: addr-type ";" xtext.
            let value = p.value.ok_or_else(|| p.bad("needs a value"))?;
            let (kind, addr) = value
                .split_once(';')
                .ok_or_else(|| p.bad("needs type;address"))?;
            if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(p.bad("bad address type"));
            }
            xtext_decode(addr).map_err(|reason| p.bad(reason))?;
        }
        return Err(CommandError::UnknownParam(p.keyword));
    }
    Ok(Command::Rcpt {
        to,
        params: RcptParams::default(),
    })
}

fn parse_bdat(args: &str) -> Result<Command, CommandError> {
    let mut words = args.split(' ');
    let size = words.next().unwrap_or("");
    let size = parse_decimal(size).ok_or(CommandError::Syntax(BDAT_USAGE))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax(BDAT_USAGE)),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax(BDAT_USAGE));
    }
    Ok(Command::Bdat { size, last })
}

/// 1 to 20 ASCII digits that fit a u64: no sign, no spaces, no overflow.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One `keyword[=value]` parameter; the keyword uppercased.
#[derive(Debug)]
struct Param<'a> {
    keyword: String,
    value: Option<&'a str>,
}

impl Param<'_> {
    fn bad(&self, reason: &'static str) -> CommandError {
        CommandError::BadParam {
            keyword: self.keyword.clone(),
            reason,
        }
    }
}

/// Longest keyword echoed back in a reply.
const MAX_KEYWORD: usize = 32;

/// Splits what follows the path into parameters (RFC 5321 §4.1.2
/// `esmtp-param`), refusing bad syntax and repeats.
fn split_params(rest: &str) -> Result<Vec<Param<'_>>, CommandError> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_prefix(' ').ok_or(CommandError::ParamSyntax)?;
    let mut params: Vec<Param<'_>> = Vec::new();
    for word in rest.split(' ') {
        let (keyword, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let keyword_ok = keyword.len() <= MAX_KEYWORD
            && keyword
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        // esmtp-value: printable ASCII but `=` and space, or UTF-8 (RFC 6531).
        let value_ok = value.is_none_or(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c != '=' && (c.is_ascii_graphic() || !c.is_ascii()))
        });
        if !keyword_ok || !value_ok {
            return Err(CommandError::ParamSyntax);
        }
        let keyword = keyword.to_ascii_uppercase();
        if params.iter().any(|p| p.keyword == keyword) {
            return Err(CommandError::DuplicateParam(keyword));
        }
        params.push(Param { keyword, value });
    }
    Ok(params)
}

/// `SIZE=n`: digits only, at most u64.
fn parse_size(p: &Param<'_>) -> Result<u64, CommandError> {
    p.value
        .and_then(parse_decimal)
        .ok_or_else(|| p.bad("must be a number of octets"))
}

/// A parameter whose value is xtext; decodes it to check it.
fn xtext_value(p: &Param<'_>) -> Result<String, CommandError> {
    let value = p.value.ok_or_else(|| p.bad("needs a value"))?;
    xtext_decode(value).map_err(|reason| p.bad(reason))
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes, uppercase hex), refusing any
/// decoded control character: CR, LF or NUL smuggled through an escape
/// must never reach a queue file or a header (Exim CVE-2020-28026).
pub fn xtext_decode(s: &str) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => {
                let hi = bytes.next().and_then(hex_upper);
                let lo = bytes.next().and_then(hex_upper);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err("bad +XX escape in xtext");
                };
                out.push((hi << 4) | lo);
            }
            b'!'..=b'~' if b != b'=' => out.push(b),
            _ => return Err("invalid character in xtext"),
        }
    }
    if out.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err("control character in xtext");
    }
    String::from_utf8(out).map_err(|_| "xtext is not valid UTF-8")
}

fn hex_upper(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Invariant checks shared by the `command` fuzz target and the corpus
/// replay test (`tests/fuzz_corpus.rs`).
pub mod fuzzing {
    use super::*;

    /// Parses `data` as a command line and checks: no panic; every error has
    /// a well-formed reply; EHLO names are printable ASCII; parsed paths
    /// survive a round trip through their display form.
    pub fn check(data: &[u8]) {
        match parse_command(data) {
            Err(e) => {
                let r = e.reply();
                assert!((500..600).contains(&r.code), "{e:?} -> {}", r.code);
                assert!(r.enhanced.is_some());
                let wire = r.to_bytes();
                assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
                assert!(
                    wire.iter()
                        .all(|&b| b == b'\r' || b == b'\n' || (b' '..=b'~').contains(&b))
                );
            }
            Ok(Command::Ehlo(name) | Command::Helo(name)) => {
                assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
            }
            Ok(Command::Mail { from, .. }) => {
                if let ReversePath::Mailbox(mb) = &from {
                    let line = format!("MAIL FROM:<{mb}>");
                    let again = parse_command(line.as_bytes()).expect("MAIL round trip");
                    assert_eq!(
                        again,
                        Command::Mail {
                            from,
                            params: MailParams::default()
                        }
                    );
                }
            }
            Ok(Command::Rcpt { to, .. }) => {
                let line = format!("RCPT TO:<{to}>");
                let again = parse_command(line.as_bytes()).expect("RCPT round trip");
                assert_eq!(
                    again,
                    Command::Rcpt {
                        to,
                        params: RcptParams::default()
                    }
                );
            }
            Ok(Command::Unknown(verb)) => {
                assert!(
                    verb.len() <= MAX_UNKNOWN_VERB && verb.bytes().all(|b| b.is_ascii_graphic())
                );
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{MailDomain, Routing};

    fn parse(s: &str) -> Result<Command, CommandError> {
        parse_command(s.as_bytes())
    }

    fn code(s: &str) -> (u16, String) {
        let r = parse(s).unwrap_err().reply();
        (r.code, r.first_line())
    }

    fn mail_params(s: &str) -> Result<MailParams, CommandError> {
        match parse(&format!("MAIL FROM:<a@b.example>{s}"))? {
            Command::Mail { params, .. } => Ok(params),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_verbs_any_case() {
        assert_eq!(parse("DATA"), Ok(Command::Data));
        assert_eq!(parse("data"), Ok(Command::Data));
        assert_eq!(parse("QuIt"), Ok(Command::Quit));
        assert_eq!(parse("RSET "), Ok(Command::Rset));
        assert_eq!(parse("starttls"), Ok(Command::StartTls));
        assert_eq!(parse("NOOP"), Ok(Command::Noop));
        assert_eq!(parse("NOOP anything at all"), Ok(Command::Noop));
        assert_eq!(parse("HELP mail"), Ok(Command::Help));
        assert_eq!(parse("VRFY root"), Ok(Command::Vrfy));
        assert_eq!(parse("EXPN staff"), Ok(Command::Expn));
        assert_eq!(parse("AUTH PLAIN AGZvbwBiYXI="), Ok(Command::Auth));
        assert_eq!(
            parse("XCLIENT ADDR=1.2.3.4"),
            Ok(Command::Unknown("XCLIENT".into()))
        );
        assert_eq!(
            parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            Ok(Command::Unknown("ABCDEFGHIJKLMNOP".into()))
        );
        assert_eq!(
            parse("DATA x"),
            Err(CommandError::UnexpectedArgument("DATA"))
        );
        assert_eq!(code("STARTTLS now").0, 501);
        assert_eq!(code("QUIT now").0, 501);
    }

    #[test]
    fn ehlo_names() {
        assert_eq!(
            parse("EHLO client.test.example"),
            Ok(Command::Ehlo("client.test.example".into()))
        );
        assert_eq!(
            parse("HELO localhost"),
            Ok(Command::Helo("localhost".into()))
        );
        assert_eq!(
            parse("ehlo DESKTOP_12-AB."),
            Ok(Command::Ehlo("DESKTOP_12-AB.".into()))
        );
        assert_eq!(
            parse("EHLO [192.0.2.1]"),
            Ok(Command::Ehlo("[192.0.2.1]".into()))
        );
        assert_eq!(
            parse("EHLO [IPv6:2001:db8::1]"),
            Ok(Command::Ehlo("[IPv6:2001:db8::1]".into()))
        );
        for bad in [
            "EHLO",
            "EHLO ",
            "EHLO a b",
            "EHLO  a.example",
            "EHLO a..example",
            "EHLO a.example\tb",
            "EHLO a.example\0",
            "EHLO b\u{fc}cher.example",
            "EHLO [192.0.2.300]",
            "EHLO [2001:db8::1]",
            "EHLO a.example;rm",
            "EHLO <a.example>",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                matches!(e, CommandError::BadHelo | CommandError::BadChar),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(
            code("EHLO"),
            (
                501,
                "5.5.4 syntax: EHLO followed by a domain name or address literal".into()
            )
        );
        assert_eq!(code("EHLO x\0").0, 500);
    }

    #[test]
    fn mail_and_rcpt() {
        let Ok(Command::Mail {
            from: ReversePath::Mailbox(mb),
            params,
        }) = parse("MAIL FROM:<clerk@agency.example.kz>")
        else {
            panic!()
        };
        assert_eq!(mb.to_string(), "clerk@agency.example.kz");
        assert_eq!(params, MailParams::default());
        assert!(matches!(
            parse("mail from:<>"),
            Ok(Command::Mail {
                from: ReversePath::Null,
                ..
            })
        ));
        assert!(matches!(
            parse("MAIL FROM: <>"),
            Ok(Command::Mail {
                from: ReversePath::Null,
                ..
            })
        ));
        assert!(matches!(
            parse("RCPT TO:<postmaster>"),
            Ok(Command::Rcpt {
                to: ForwardPath::Postmaster,
                ..
            })
        ));
        assert!(matches!(
            parse("rcpt to: <a@b.example>"),
            Ok(Command::Rcpt {
                to: ForwardPath::Mailbox(_),
                ..
            })
        ));
        for bad in [
            "MAIL",
            "MAIL FROM:",
            "MAIL FROM",
            "MAIL FROM:a@b.example",
            "MAIL FROM:  <a@b.example>",
            "MAIL  FROM:<a@b.example>",
            "MAIL FROM :<a@b.example>",
            "MAIL TO:<a@b.example>",
            "RCPT TO:a@b.example",
            "RCPT FROM:<a@b.example>",
        ] {
            assert!(
                matches!(parse(bad), Err(CommandError::Syntax(_))),
                "{bad}: {:?}",
                parse(bad)
            );
            assert_eq!(code(bad).0, 501);
        }
        assert_eq!(
            code("MAIL FROM:<a b@c.example>"),
            (
                501,
                "5.1.7 bad sender address syntax: invalid character in address".into()
            )
        );
        assert_eq!(code("RCPT TO:<>").0, 501);
        assert_eq!(code("RCPT TO:<a@b.example>x").0, 501);
        assert_eq!(code("MAIL FROM:<a@b.example>SIZE=1").0, 501);
    }

    #[test]
    fn routing_tricks_get_553() {
        let (c, text) = code("RCPT TO:<u%evil.example@gw.example>");
        assert_eq!(
            (c, text.as_str()),
            (
                553,
                "5.1.3 recipient address refused: routing syntax is not accepted (% in the local part)"
            )
        );
        assert_eq!(code("MAIL FROM:<@a.example:u@b.example>").0, 553);
        assert!(
            code("MAIL FROM:<@a.example:u@b.example>")
                .1
                .starts_with("5.1.7")
        );
        assert_eq!(
            parse("RCPT TO:<u@evil.example@gw.example>"),
            Err(CommandError::BadRecipient(AddressError::Routing(
                Routing::MultipleAt
            )))
        );
    }

    #[test]
    fn mail_parameters() {
        assert_eq!(
            mail_params(" SIZE=12345 BODY=8bitmime SMTPUTF8"),
            Ok(MailParams {
                size: Some(12345),
                body: Some(Body::EightBitMime),
                smtputf8: true
            })
        );
        assert_eq!(
            mail_params(" body=7BIT").unwrap().body,
            Some(Body::SevenBit)
        );
        assert_eq!(mail_params(" SIZE=0").unwrap().size, Some(0));
        assert_eq!(
            mail_params(" SIZE=18446744073709551615").unwrap().size,
            Some(u64::MAX)
        );
        assert_eq!(mail_params(" SIZE=100 ").unwrap().size, Some(100));
        for bad in [
            " SIZE=abc",
            " SIZE=-1",
            " SIZE=18446744073709551616",
            " SIZE=",
            " SIZE",
            " SIZE=+5",
            " BODY=foo",
            " BODY=BINARYMIME",
            " SMTPUTF8=yes",
        ] {
            let e = mail_params(bad).unwrap_err();
            assert_eq!(e.reply().code, 501, "{bad}: {e:?}");
            assert!(e.reply().first_line().starts_with("5.5.4"), "{bad}");
        }
        for bad in [
            " FOO=bar",
            " SIZE=1 SIZE=2",
            " size=1 SIZE=1",
            " RET=HDRS",
            " ENVID=abc",
            " AUTH=<>",
            " XYZ",
        ] {
            let e = mail_params(bad).unwrap_err();
            assert_eq!(e.reply().code, 555, "{bad}: {e:?}");
            assert!(e.reply().first_line().starts_with("5.5.4"), "{bad}");
        }
        for bad in [
            "  SIZE=1",
            " SIZE=1  BODY=7BIT",
            " =1",
            " -X=1",
            " SIZE==1",
            " SIZE=a=b",
        ] {
            assert_eq!(mail_params(bad), Err(CommandError::ParamSyntax), "{bad}");
        }
    }

    #[test]
    fn xtext_injection_is_refused() {
        assert_eq!(xtext_decode("a+2Bb+3Dc"), Ok("a+b=c".into()));
        for bad in ["a+0Ab", "a+0D", "+00", "+7F", "a+0", "a+zz", "a+0a", "a=b"] {
            assert!(xtext_decode(bad).is_err(), "{bad}");
        }
        // C9: CR/LF through ORCPT, ENVID, AUTH: 501 5.5.4, not merely 555.
        for line in [
            "RCPT TO:<a@b.example> ORCPT=rfc822;a+0Ab@x.example",
            "MAIL FROM:<a@b.example> ENVID=x+0Dy",
            "MAIL FROM:<a@b.example> AUTH=<a+0A>",
        ] {
            let r = parse(line).unwrap_err().reply();
            assert_eq!(
                (r.code, r.first_line().get(..5)),
                (501, Some("5.5.4")),
                "{line}"
            );
        }
        // Well-formed but not offered: 555.
        assert_eq!(
            code("RCPT TO:<a@b.example> ORCPT=rfc822;a@b.example").0,
            555
        );
        assert_eq!(code("RCPT TO:<a@b.example> NOTIFY=NEVER").0, 555);
    }

    #[test]
    fn bdat() {
        assert_eq!(
            parse("BDAT 100"),
            Ok(Command::Bdat {
                size: 100,
                last: false
            })
        );
        assert_eq!(
            parse("bdat 0 last"),
            Ok(Command::Bdat {
                size: 0,
                last: true
            })
        );
        assert_eq!(
            parse("BDAT 18446744073709551615 LAST"),
            Ok(Command::Bdat {
                size: u64::MAX,
                last: true
            })
        );
        for bad in [
            "BDAT",
            "BDAT -1",
            "BDAT abc",
            "BDAT 1x",
            "BDAT 18446744073709551616",
            "BDAT 1 LAST x",
            "BDAT 1 FIRST",
            "BDAT  1",
            "BDAT +1",
        ] {
            assert!(matches!(parse(bad), Err(CommandError::Syntax(_))), "{bad}");
            assert_eq!(code(bad).0, 501);
        }
    }

    #[test]
    fn foreign_protocols() {
        for line in [
            &b"GET / HTTP/1.1"[..],
            b"POST /x HTTP/1.0",
            b"CONNECT mx.example:25 HTTP/1.1",
            b"HEAD / HTTP/1.1",
            b"PUT /a",
            b"get /",
            b"PRI * HTTP/2.0",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b" EHLO x",
            b"\0EHLO",
            b"\xffEHLO",
            b"1234",
        ] {
            assert_eq!(
                parse_command(line),
                Err(CommandError::ForeignProtocol),
                "{line:?}"
            );
        }
        assert_eq!(parse_command(b"GET"), Ok(Command::Unknown("GET".into())));
    }

    #[test]
    fn bad_bytes() {
        assert_eq!(parse_command(b""), Err(CommandError::Empty));
        assert_eq!(code("").0, 500);
        assert_eq!(
            parse_command(b"MA\0IL FROM:<a@b.example>"),
            Err(CommandError::BadChar)
        );
        assert_eq!(parse_command(b"MA\xc3\xa9L"), Err(CommandError::BadChar));
        assert_eq!(parse_command(b"NOOP \0"), Err(CommandError::BadChar));
        assert_eq!(parse_command(b"NOOP \x1b[2J"), Err(CommandError::BadChar));
        assert_eq!(parse_command(b"NOOP \xff"), Err(CommandError::BadUtf8));
        assert_eq!(
            code("MAIL FROM:<a\0@b.example>"),
            (500, "5.5.2 invalid character in command".into())
        );
    }

    #[test]
    fn utf8_addresses_parse_with_their_flag() {
        let Ok(Command::Rcpt {
            to: ForwardPath::Mailbox(mb),
            ..
        }) = parse("RCPT TO:<пользователь@пример.қаз>")
        else {
            panic!()
        };
        assert!(mb.is_utf8());
        assert!(matches!(mb.domain, MailDomain::Name(ref d) if d.as_str().starts_with("xn--")));
        let Ok(Command::Mail { params, .. }) = parse("MAIL FROM:<ü@b.example> SMTPUTF8") else {
            panic!()
        };
        assert!(params.smtputf8);
    }

    #[test]
    fn every_error_has_a_5xx_reply_with_an_enhanced_code() {
        for line in [
            &b""[..],
            b"GET / HTTP/1.1",
            b"A\0",
            b"NOOP \xff",
            b"DATA x",
            b"EHLO",
            b"MAIL x",
            b"MAIL FROM:<a b>",
            b"RCPT TO:<a%b@c.example>",
            b"MAIL FROM:<a@b.example> X=1",
            b"MAIL FROM:<a@b.example> SIZE=1 SIZE=1",
            b"MAIL FROM:<a@b.example> SIZE=x",
            b"MAIL FROM:<a@b.example>  X",
        ] {
            fuzzing::check(line);
        }
    }
}
