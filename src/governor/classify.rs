//! How a remote SMTP reply counts for the reputation detector.
//!
//! [`classify`] reads a typed [`Outcome`] as delivery made it: its fate,
//! the reply code and the enhanced status code (RFC 3463) first, and vetted
//! wordings of its text second, for what only the text says (blocklist
//! names, "user unknown"). Results recorded as text (replay traces, the
//! corpus) are typed once at that edge by [`parse_record`]. Wordings are whole words or specific phrases ("listed"
//! never matches inside "Greylisted"); they come from real provider replies,
//! collected with their sources in `refusal-corpus.tsv` beside this file,
//! which the tests replay line by line.
//!
//! The rules, in the order they are tried:
//!
//! 1. Delivered is [`OutcomeKind::Delivered`].
//! 2. Only [`Fate::Permanent`] is permanent: our own give-up after the
//!    queue lifetime ([`Fate::Expired`], "4.4.7 delivery time expired; last
//!    error: 451 ...") is temporary. An enhanced code whose class differs
//!    from the reply code's ("550 4.7.1") is ignored.
//! 3. Gateway listing, temporary or permanent alike: a refusal of the
//!    *connecting* address, which is always the gateway's, is never the
//!    sender's fault. Two ways to be one:
//!    - a provider wording that by its nature is about the connecting IP
//!      (Postfix `reject_rbl_client` "Client host [x] blocked using",
//!      Microsoft S3140/S3150 and "banned sending IP", Gmail "originating
//!      from your IP", Yahoo `[TSxx]`/`[BLxx]`, Yandex "spamsource", ...;
//!      "IP x is blocked", the code X.7.25 (reverse DNS of the client);
//!      see [`CONNECTING_IP`]): [`OutcomeKind::GatewayListed`] when it names
//!      one of ours or no address at all; when it names only other
//!      addresses (a relay from the message's `Received:` headers, as
//!      Barracuda does) it is the message's problem: Spam, or Deferred
//!      while temporary;
//!    - a generic listing wording ([`LISTING`], plus the operator's
//!      `listing` extras) together with one of our addresses named in the
//!      text. Domain lists (Spamhaus DBL, URIBL) are about the message, not
//!      an address, and never count here.
//! 4. Any other temporary result is [`OutcomeKind::Deferred`]: greylisting,
//!    rate limits, "try again later", mailbox full for now. A temporary
//!    result never counts as spam.
//! 5. Permanent, enhanced code first: X.1.1, X.1.2, X.1.3, X.1.6, X.1.10
//!    are [`OutcomeKind::Unknown`]; X.1.7/X.1.8 (the sender's address),
//!    X.2.2 (mailbox full), X.2.3, X.3.4 (too big) and the authentication
//!    codes (X.7.20-24, X.7.26-27, Gmail's X.7.30/32/40, Microsoft's
//!    X.7.509/515) are [`OutcomeKind::Rejected`].
//! 6. Then wordings, for codes that do not decide (X.0.0, X.5.0, X.7.1...)
//!    and replies without one: SPF/DKIM/DMARC failures are Rejected; a
//!    sender-side DNS problem is Rejected; "user unknown" and its kin
//!    (and "mailbox unavailable" on a 550) are Unknown; relaying and
//!    per-recipient rate refusals are Rejected; spam, content and
//!    reputation verdicts ([`SPAM`], iCloud `[CSxx]`, Yahoo `[PHxx]`, and
//!    the operator's `spam` extras) are [`OutcomeKind::Spam`] (the
//!    providers' boilerplate "to protect our users from spam" does not
//!    count).
//! 7. Else X.2.1 (mailbox disabled) is Unknown and anything else Rejected.

use std::net::IpAddr;

use crate::reply::{Enhanced, Fate, Outcome};

/// How a delivery result counts for the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// 2xx.
    Delivered,
    /// A temporary result that is not a gateway listing.
    Deferred,
    /// A permanent refusal that is neither spam nor an unknown recipient.
    Rejected,
    /// A permanent spam, content or reputation verdict on the message or sender.
    Spam,
    /// A permanent unknown, invalid or disabled recipient.
    Unknown,
    /// A refusal of the gateway's own address: about the gateway, not the
    /// sender; it raises a gateway alarm instead.
    GatewayListed,
}

impl OutcomeKind {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Deferred => "deferred",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::Spam => "spam",
            OutcomeKind::Unknown => "unknown",
            OutcomeKind::GatewayListed => "gateway_listed",
        }
    }
}

/// Operator-configured extra wordings (lowercase substrings) and the gateway's own addresses.
#[derive(Debug, Clone, Copy)]
pub struct Patterns<'a> {
    /// Extra spam wordings (`governor.spam_patterns`): a permanent refusal
    /// naming one is Spam, unless it is an unknown recipient, an
    /// authentication failure or a relay refusal. Matched as whole words.
    pub spam: &'a [String],
    /// Extra listing wordings (`governor.listing_patterns`): with one of
    /// `own` named in the reply, the gateway is listed. Matched as whole words.
    pub listing: &'a [String],
    /// The gateway's addresses (configured, and seen as the source of
    /// outbound connections).
    pub own: &'a [IpAddr],
}

/// Wordings that by their nature are about the connecting IP: whatever
/// address they name (or none) is the one the remote refuses to talk to.
/// `blocked using` is handled apart (see [`connecting_ip`]).
const CONNECTING_IP: &[&str] = &[
    // Microsoft / Outlook.com: block lists of sending IPs.
    "s3140",
    "s3150",
    "part of their network is on our block list",
    "banned sending ip",
    "access denied, banned sender",
    "traffic not accepted from this ip",
    "due to ip reputation",
    "sender ip reputation",
    "using customer block list",
    // Spamhaus IP lists (not the DBL, a domain list).
    "spamhaus's list",
    "listing in spamhaus",
    "spamhaus sbl",
    "spamhaus xbl",
    "spamhaus pbl",
    "spamhaus zen",
    "spamhaus.org/query/ip",
    "spamhaus.org/query/bl",
    // Exim's default dnslists refusal of the client.
    "is in a black list at",
    // SpamCop, Barracuda, Proofpoint, Cloudmark CSI (Orange).
    "bl.spamcop.net",
    "spamcop.net/bl.shtml",
    "barracuda reputation",
    "barracudacentral",
    "barracudanetworks.com/reputation",
    "dnsbl-lookup",
    "ipcheck.proofpoint.com",
    "csi.cloudmark.com",
    "client host blocked for spamming",
    // Gmail: rate limits and blocks of the sending IP or its netblock.
    "originating from your ip",
    "the ip you're using to send",
    "reputation of the sending ip",
    // The connecting IP's reverse DNS (Gmail, Microsoft, Postfix).
    "does not have a ptr record",
    "doesn't have a ptr record",
    "missing ptr records",
    "must have a reverse dns record",
    "cannot find your hostname",
    "cannot find your reverse hostname",
    // Yahoo (besides the [TSxx] and [BLxx] tags).
    "will be permanently deferred",
    "not accepted from ip addresses on spamhaus",
    // Mail.ru's throttle of an IP: "421 Try again later (IP). Please contact abuse@corp.mail.ru."
    "please contact abuse@corp.mail.ru",
    // Yandex: the client host blocked by spam statistics.
    "spamsource.yandex",
    "blocked by spam statistics",
];

/// Wordings of a blocklist listing: about the gateway only with one of its
/// addresses named in the reply.
const LISTING: &[&str] = &[
    "blocked using",
    "blocklist",
    "blocklisted",
    "blacklist",
    "blacklisted",
    "block list",
    "black list",
    "listed",
    "listing",
    "dnsbl",
    "rbl",
    "spamhaus",
    "spamcop",
    "barracuda",
    "sorbs",
    "ip reputation",
];

/// Domain and URL lists: a listing of something in the message, not of an address.
const DOMAIN_LISTS: &[&str] = &["dbl", "uribl", "surbl", "domain present in"];

/// Authentication failures of the sender's domain.
const AUTH: &[&str] = &[
    "dmarc",
    "spf",
    "dkim",
    "unauthenticated",
    "sender is unauthenticated",
    "authentication checks",
];

/// A sender-side DNS problem that some receivers word as a mailbox refusal
/// (1&1/IONOS: "mailbox unavailable invalid DNS MX or A/AAAA resource record").
const SENDER_DNS: &[&str] = &["invalid dns mx", "sender address rejected", "sender domain"];

/// An unknown, invalid or disabled recipient.
const UNKNOWN: &[&str] = &[
    "user unknown",
    "unknown user",
    "unknown recipient",
    "recipient unknown",
    "no such user",
    "no such recipient",
    "no such mailbox",
    "no such account",
    "user not found",
    "recipient not found",
    "mailbox not found",
    "address not found",
    "invalid recipient",
    "invalid mailbox",
    "not a valid user",
    "does not exist",
    "doesn't exist",
    "no mailbox here by that name",
    "unrouteable address",
    "this user doesn't have a",
    "unknown or illegal alias",
    "recipient no longer on server",
    "no longer valid",
    "is inactive",
    "inactive user",
    "inactive email address",
    "inactive mailbox",
    "account is disabled",
    "mailbox is disabled",
    "mailbox disabled",
    "account disabled",
    "user is terminated",
    "recipient address rejected: access denied",
];

/// Relaying refusals and per-recipient rate refusals: the message is not judged.
const NOT_JUDGED: &[&str] = &[
    "relay access denied",
    "relaying denied",
    "unable to relay",
    "relay not permitted",
    "relaying not allowed",
    "not permitted to relay",
    "receiving mail at a rate",
    "receiving email at a rate",
    "receiving mail too quickly",
    "receiving email too quickly",
];

/// Spam, content and reputation verdicts on the message or its sender.
const SPAM: &[&str] = &[
    "spam",
    "spammy",
    "spammer",
    "spamming",
    "unsolicited",
    "junk",
    "phish",
    "phishing",
    "malware",
    "virus",
    "suspicious",
    "reputation",
    "content rejected",
    "message content",
    "content filter",
    "content restrictions",
    "due to content",
    "content presents",
    "blocked using",
    "blocklist",
    "blocklisted",
    "blacklist",
    "blacklisted",
    "block list",
    "black list",
    "listed",
    "dnsbl",
    "rbl",
    "dbl",
    "uribl",
    "surbl",
    "spamhaus",
    "spamcop",
    "barracuda",
];

/// Providers' boilerplate that says "spam" without calling the message spam
/// (Gmail: "To reduce the amount of spam sent to Gmail, this message has
/// been blocked" after a header-format refusal).
const BOILERPLATE: &[&str] = &[
    "the amount of spam",
    "our users from spam",
    "users from spam",
];

/// Permanent X.7.x codes of authentication failures (RFC 7372, Gmail, Microsoft).
const AUTH_DETAILS: &[u16] = &[20, 21, 22, 23, 24, 26, 27, 30, 32, 40, 509, 515];

/// Classifies one recipient's delivery result, once, from its typed fields;
/// the text (`"550 5.1.1 <a@b>: user unknown"`, multi-line replies joined)
/// only for wordings and addresses.
pub fn classify(o: &Outcome, p: Patterns<'_>) -> OutcomeKind {
    // Rule 1.
    if o.fate == Fate::Delivered {
        return OutcomeKind::Delivered;
    }
    // An enhanced code of another class than the basic one ("550 4.7.1")
    // is only text.
    let basic = o.code;
    let code = o
        .enhanced
        .filter(|e| basic.is_none_or(|b| b / 100 == u16::from(e.class)))
        .map(|e| (e.class, e.subject, e.detail));
    // Rule 2.
    let permanent = o.fate == Fate::Permanent;
    let text = o.text.as_str();
    let lower = text.to_ascii_lowercase();
    // Rule 3.
    if let Some(listing) = listing(&lower, text, code, p) {
        return match listing {
            Listing::Gateway => OutcomeKind::GatewayListed,
            Listing::Elsewhere if permanent => OutcomeKind::Spam,
            Listing::Elsewhere => OutcomeKind::Deferred,
        };
    }
    // Rule 4.
    if !permanent {
        return OutcomeKind::Deferred;
    }
    // Rule 5.
    if let Some((_, subject, detail)) = code {
        match (subject, detail) {
            (1, 1 | 2 | 3 | 6 | 10) => return OutcomeKind::Unknown,
            (1, 7 | 8) | (2, 2 | 3) | (3, 4) => return OutcomeKind::Rejected,
            (7, d) if AUTH_DETAILS.contains(&d) => return OutcomeKind::Rejected,
            _ => {}
        }
    }
    // Rule 6.
    if any(&lower, AUTH) || any(&lower, SENDER_DNS) {
        return OutcomeKind::Rejected;
    }
    if any(&lower, UNKNOWN) || (basic == Some(550) && has(&lower, "mailbox unavailable")) {
        return OutcomeKind::Unknown;
    }
    if any(&lower, NOT_JUDGED) {
        return OutcomeKind::Rejected;
    }
    let mut verdict = lower.clone();
    for b in BOILERPLATE {
        if verdict.contains(b) {
            verdict = verdict.replace(b, " ");
        }
    }
    if any(&verdict, SPAM)
        || has_tag(&verdict, "cs")
        || has_tag(&verdict, "ph")
        || p.spam.iter().any(|s| has(&lower, s))
    {
        return OutcomeKind::Spam;
    }
    // Rule 7.
    match code {
        Some((_, 2, 1)) => OutcomeKind::Unknown,
        _ => OutcomeKind::Rejected,
    }
}

/// What rule 3 found.
enum Listing {
    /// The gateway's address is refused.
    Gateway,
    /// Another address is refused: one the message passed through.
    Elsewhere,
}

/// Rule 3: a refusal of the connecting address, or a listing naming ours.
fn listing(
    lower: &str,
    text: &str,
    code: Option<(u8, u16, u16)>,
    p: Patterns<'_>,
) -> Option<Listing> {
    let ours = || names_address(text, p.own).is_some();
    if connecting_ip(lower, code) {
        if ours() || addresses(&untagged(text)).next().is_none() {
            return Some(Listing::Gateway);
        }
        return Some(Listing::Elsewhere);
    }
    let listed = any(lower, LISTING) || p.listing.iter().any(|l| has(lower, l));
    if listed && !any(lower, DOMAIN_LISTS) && ours() {
        return Some(Listing::Gateway);
    }
    None
}

/// A wording (or code) that is about the connecting IP by its nature.
fn connecting_ip(lower: &str, code: Option<(u8, u16, u16)>) -> bool {
    if any(lower, CONNECTING_IP) || has_tag(lower, "ts") || has_tag(lower, "tss") {
        return true;
    }
    if has_tag(lower, "bl") || ip_then_blocked(lower) {
        return true;
    }
    // Postfix `reject_rbl_client` and postscreen: "Client host [x] blocked
    // using list" / "client [x] blocked using list"; but `reject_rhsbl_sender`
    // ("Sender address [domain] blocked using dbl...") is about the sender.
    if has(lower, "blocked using")
        && !lower.contains("sender address [")
        && !lower.contains("recipient address [")
    {
        return true;
    }
    // RFC 7372 X.7.25: reverse DNS validation of the connecting IP failed.
    matches!(code, Some((_, 7, 25)))
}

/// "IP 203.0.113.5 is blocked by ..." (EarthLink), "IP address x blocked":
/// the word "ip" (or "ip address"), an address, then a blocking verb.
fn ip_then_blocked(lower: &str) -> bool {
    const VERBS: &[&str] = &[
        "is blocked",
        "blocked",
        "has been blocked",
        "is blacklisted",
        "is listed",
    ];
    lower.match_indices("ip ").any(|(i, m)| {
        if i > 0 && lower.as_bytes()[i - 1].is_ascii_alphanumeric() {
            return false;
        }
        let mut rest = &lower[i + m.len()..];
        if let Some(r) = rest.strip_prefix("address ") {
            rest = r;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
            .unwrap_or(rest.len());
        let (addr, after) = rest.split_at(end);
        addr.trim_end_matches(['.', ':']).parse::<IpAddr>().is_ok()
            && VERBS.iter().any(|v| after.trim_start().starts_with(v))
    })
}

/// Whether `lower` contains one of `phrases` as whole words.
fn any(lower: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| has(lower, p))
}

/// Whether `lower` (lowercase) contains `phrase` (any case) as whole words:
/// at an end of the phrase that is a letter or digit, the text must not go
/// on with a letter or digit. An empty phrase matches nothing.
fn has(lower: &str, phrase: &str) -> bool {
    let phrase = phrase.trim();
    if phrase.is_empty() {
        return false;
    }
    let owned;
    let phrase = if phrase.bytes().any(|b| b.is_ascii_uppercase()) {
        owned = phrase.to_ascii_lowercase();
        owned.as_str()
    } else {
        phrase
    };
    let (h, n) = (lower.as_bytes(), phrase.as_bytes());
    let word = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
    let (first, last) = (n[0], n[n.len() - 1]);
    lower.match_indices(phrase).any(|(i, _)| {
        let end = i + n.len();
        let before = i == 0 || !word(first) || !word(h[i - 1]);
        let after = end == h.len() || !word(last) || !word(h[end]);
        before && after
    })
}

/// Whether `lower` has a bracketed provider tag: `[` + `prefix` + 1-3 digits + `]`
/// (Yahoo "[TS01]", "[TSS04]", "[BL21]", "[PH01]"; iCloud "[CS01]").
fn has_tag(lower: &str, prefix: &str) -> bool {
    let open = format!("[{prefix}");
    lower.match_indices(&open).any(|(i, _)| {
        let rest = &lower.as_bytes()[i + open.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        (1..=3).contains(&digits) && rest.get(digits) == Some(&b']')
    })
}

/// Types a result recorded as text (a replay trace, a corpus line): the
/// reply code and enhanced code read off its start. A final result whose
/// own code is 4xx (the reply code, else a 4.X.X enhanced code) is our
/// give-up after the queue lifetime: [`Fate::Expired`].
pub fn parse_record(delivered: bool, permanent: bool, text: &str) -> Outcome {
    let code = basic_code(text);
    let enhanced = enhanced_code(text).map(|(c, s, d)| Enhanced::new(c, s, d));
    let class = code
        .map(|b| b / 100)
        .or(enhanced.map(|e| u16::from(e.class)));
    let fate = match (delivered, permanent) {
        (true, _) => Fate::Delivered,
        (false, false) => Fate::Temporary,
        (false, true) if class == Some(4) => Fate::Expired,
        (false, true) => Fate::Permanent,
    };
    Outcome {
        fate,
        code,
        enhanced,
        text: text.to_string(),
    }
}

/// The three-digit reply code at the start of the text, if any.
fn basic_code(text: &str) -> Option<u16> {
    let b = text.trim_start().as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&b[0]) {
        return None;
    }
    if b.get(3).is_some_and(|c| !matches!(c, b' ' | b'-')) {
        return None;
    }
    Some(b[..3].iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
}

/// The RFC 3463 enhanced status code at the start of the reply text (after an optional basic code and '-' or ' '), e.g. (5,1,1).
pub fn enhanced_code(text: &str) -> Option<(u8, u16, u16)> {
    let mut rest = text.trim_start();
    if basic_code(rest).is_some() {
        rest = rest.get(4..)?.trim_start();
    }
    let b = rest.as_bytes();
    let class = *b.first()?;
    if !matches!(class, b'2' | b'4' | b'5') || b.get(1) != Some(&b'.') {
        return None;
    }
    // 1*3digit "." 1*3digit, then the end or a character that is not a digit
    // (nor a dot before a digit: "5.1.1.2" is no code).
    let number = |s: &[u8]| -> Option<(u16, usize)> {
        let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=3).contains(&n) {
            return None;
        }
        Some((
            s[..n].iter().fold(0, |v, d| v * 10 + u16::from(d - b'0')),
            n,
        ))
    };
    let (subject, n) = number(&b[2..])?;
    let at = 2 + n;
    if b.get(at) != Some(&b'.') {
        return None;
    }
    let (detail, n) = number(&b[at + 1..])?;
    let end = at + 1 + n;
    match b.get(end) {
        Some(c) if c.is_ascii_digit() => return None,
        Some(b'.') if b.get(end + 1).is_some_and(u8::is_ascii_digit) => return None,
        _ => {}
    }
    Some((class - b'0', subject, detail))
}

/// Every address literal in `text` ("[203.0.113.5]", "IP 2001:db8::25",
/// "?ip=203.0.113.5"), canonical (IPv4-mapped IPv6 as IPv4).
fn addresses(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .map(|t| t.trim_matches(|c| c == '.' || c == ':'))
        .filter(|t| t.len() >= 2)
        .filter_map(|t| t.parse::<IpAddr>().ok())
        .map(crate::policy::canonical_ip)
}

/// The text without SMTP's IPv6 address-literal tag: in "[IPv6:2001:db8::25]"
/// the tag would glue "6:" to the address.
fn untagged(text: &str) -> String {
    text.replace("IPv6:", " ").replace("ipv6:", " ")
}

/// The first of `own` that `text` names as an address.
pub fn names_address(text: &str, own: &[IpAddr]) -> Option<IpAddr> {
    if own.is_empty() {
        return None;
    }
    addresses(&untagged(text)).find(|ip| own.contains(ip))
}

/// The fuzz target's invariants (`fuzz/fuzz_targets/classify.rs`, replayed
/// by `tests/fuzz_corpus.rs`).
pub mod fuzzing {
    use super::*;

    /// Arbitrary bytes: the first byte's low bits choose `delivered` and
    /// `permanent`, the rest is the reply (lossy UTF-8). Nothing panics;
    /// delivered is Delivered; a temporary result is Deferred or a gateway
    /// listing; a named address is one of ours; an enhanced code is well
    /// formed; classifying is deterministic.
    pub fn check(data: &[u8]) {
        let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
        let text = String::from_utf8_lossy(rest);
        let own: [IpAddr; 2] = [
            IpAddr::from([203, 0, 113, 5]),
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x25]),
        ];
        let extras = ["listed".to_string(), String::new(), "5.7.1".to_string()];
        let p = Patterns {
            spam: if flags & 4 != 0 { &extras } else { &[] },
            listing: if flags & 8 != 0 { &extras } else { &[] },
            own: &own,
        };
        let (delivered, permanent) = (flags & 1 != 0, flags & 2 != 0);
        let record = parse_record(delivered, permanent, &text);
        let kind = classify(&record, p);
        assert_eq!(kind, classify(&record, p));
        let _ = kind.as_str();
        if delivered {
            assert_eq!(kind, OutcomeKind::Delivered);
        }
        if !delivered && !permanent {
            assert!(
                matches!(kind, OutcomeKind::Deferred | OutcomeKind::GatewayListed),
                "temporary {text:?} is {kind:?}"
            );
        }
        if let Some(ip) = names_address(&text, &own) {
            assert!(own.contains(&ip));
        }
        assert_eq!(names_address(&text, &[]), None);
        if let Some((class, subject, detail)) = enhanced_code(&text) {
            assert!(matches!(class, 2 | 4 | 5));
            assert!(subject <= 999 && detail <= 999);
        }
        let empty = Patterns {
            spam: &[],
            listing: &[],
            own: &[],
        };
        let _ = classify(&record, empty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classifies a result recorded as text, typed at the edge.
    fn classify_text(delivered: bool, permanent: bool, text: &str, p: Patterns<'_>) -> OutcomeKind {
        classify(&parse_record(delivered, permanent, text), p)
    }

    const GATEWAY: &str = "203.0.113.5";
    const OTHER: &str = "198.51.100.7";

    fn own() -> Vec<IpAddr> {
        vec![GATEWAY.parse().unwrap(), "2001:db8::25".parse().unwrap()]
    }

    fn kind_named(name: &str) -> OutcomeKind {
        match name {
            "delivered" => OutcomeKind::Delivered,
            "deferred" => OutcomeKind::Deferred,
            "rejected" => OutcomeKind::Rejected,
            "spam" => OutcomeKind::Spam,
            "unknown" => OutcomeKind::Unknown,
            "gateway_listed" => OutcomeKind::GatewayListed,
            other => panic!("unknown kind {other:?}"),
        }
    }

    #[test]
    fn every_corpus_wording_is_classified_as_recorded() {
        let own = own();
        let p = Patterns {
            spam: &[],
            listing: &[],
            own: &own,
        };
        let corpus = include_str!("refusal-corpus.tsv");
        let mut lines = 0;
        let mut wrong = Vec::new();
        for (n, line) in corpus.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "line {}: four fields: {line:?}", n + 1);
            let (want, permanent, text, source) = (fields[0], fields[1], fields[2], fields[3]);
            assert!(!source.trim().is_empty(), "line {}: no source", n + 1);
            assert!(
                permanent == "0" || permanent == "1",
                "line {}: permanent is 0 or 1",
                n + 1
            );
            let text = text.replace("{ip}", GATEWAY).replace("{other}", OTHER);
            let got = classify_text(false, permanent == "1", &text, p);
            // The kinds serialise as the corpus names them.
            assert_eq!(kind_named(want).as_str(), want);
            if got != kind_named(want) {
                wrong.push(format!("line {}: {want} but {got:?}: {text}", n + 1));
            }
            lines += 1;
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert!(lines >= 40, "{lines} corpus lines");
    }

    #[test]
    fn the_old_false_positives_are_fixed() {
        let own = own();
        // The old default patterns, kept by an operator who never updated them.
        let spam: Vec<String> = [
            "spamhaus",
            "blocklist",
            "blacklist",
            "blocked",
            "listed",
            "spam",
        ]
        .map(String::from)
        .to_vec();
        let listing: Vec<String> = ["spamhaus", "dnsbl", "listed", "blocked using"]
            .map(String::from)
            .to_vec();
        for p in [
            Patterns {
                spam: &[],
                listing: &[],
                own: &own,
            },
            Patterns {
                spam: &spam,
                listing: &listing,
                own: &own,
            },
        ] {
            // Greylisting is a deferral, not a listing.
            let grey = "450 4.2.0 <a@b.example>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/b.example.html";
            assert_eq!(classify_text(false, false, grey, p), OutcomeKind::Deferred);
            // Microsoft's block list of the gateway's IP is the gateway's problem.
            let s3150 = "550 5.7.1 Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.";
            assert_eq!(
                classify_text(false, true, s3150, p),
                OutcomeKind::GatewayListed
            );
            // A temporary spam suspicion is no spam verdict.
            assert_eq!(
                classify_text(false, false, "451 4.7.1 spam suspected", p),
                OutcomeKind::Deferred
            );
            // Our own give-up after temporary refusals is not a verdict either.
            assert_eq!(
                classify_text(
                    false,
                    true,
                    "4.4.7 delivery time expired; last error: 451 4.7.1 spam suspected",
                    p
                ),
                OutcomeKind::Deferred
            );
        }
    }

    #[test]
    fn gateway_and_foreign_addresses() {
        let own = own();
        let p = Patterns {
            spam: &[],
            listing: &[],
            own: &own,
        };
        let c = |permanent, text| classify_text(false, permanent, text, p);
        let listed = "554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org";
        assert_eq!(c(true, listed), OutcomeKind::GatewayListed);
        assert_eq!(c(false, listed), OutcomeKind::GatewayListed);
        // The same wording about another address: a relay of the message.
        let relay = listed.replace(GATEWAY, OTHER);
        assert_eq!(c(true, &relay), OutcomeKind::Spam);
        assert_eq!(c(false, &relay), OutcomeKind::Deferred);
        // Connecting-IP wordings that name no address are the gateway's.
        assert_eq!(
            c(
                true,
                "550 5.7.1 part of their network is on our block list (S3140)"
            ),
            OutcomeKind::GatewayListed
        );
        // Before the gateway knows its addresses, an address is somebody else's.
        let none = Patterns {
            spam: &[],
            listing: &[],
            own: &[],
        };
        assert_eq!(classify_text(false, true, listed, none), OutcomeKind::Spam);
        // Generic listing wording plus our address; IPv6 and its literal form.
        let v6 = "550 5.7.1 IP 2001:db8::25 is listed on a blocklist.";
        assert_eq!(c(false, v6), OutcomeKind::GatewayListed);
        assert_eq!(
            c(true, "554 5.7.1 [IPv6:2001:db8::25] listed at bl.example"),
            OutcomeKind::GatewayListed
        );
        // ...without our address it is the message's.
        assert_eq!(
            c(true, "554 5.7.1 blocked: 198.51.100.7 listed at bl.example"),
            OutcomeKind::Spam
        );
        // A sender domain on a domain list is the sender's, even if our address is quoted.
        assert_eq!(
            c(
                true,
                "554 5.7.1 <x@a.example>: Sender address [a.example] blocked using dbl.spamhaus.org; from 203.0.113.5"
            ),
            OutcomeKind::Spam
        );
        // A content verdict quoting our address stays the sender's.
        assert_eq!(
            c(
                true,
                "550 5.7.1 [203.0.113.5 12] Our system has detected that this message is likely unsolicited mail."
            ),
            OutcomeKind::Spam
        );
        // Our address without any listing wording is an ordinary refusal.
        assert_eq!(
            c(true, "550 5.1.1 user unknown (from 203.0.113.5)"),
            OutcomeKind::Unknown
        );
        assert_eq!(
            c(
                false,
                "421 4.7.0 mx.example Error: too many connections from 203.0.113.5"
            ),
            OutcomeKind::Deferred
        );
    }

    #[test]
    fn operator_extras() {
        let own = own();
        let spam = vec!["Forbidden Word".to_string(), String::new(), " ".to_string()];
        let listing = vec!["localbl".to_string()];
        let p = Patterns {
            spam: &spam,
            listing: &listing,
            own: &own,
        };
        let c = |permanent, text| classify_text(false, permanent, text, p);
        assert_eq!(c(true, "550 5.7.1 forbidden word seen"), OutcomeKind::Spam);
        // Whole words only, and never on a temporary result.
        assert_eq!(
            c(true, "550 5.7.1 forbidden wordsmith"),
            OutcomeKind::Rejected
        );
        assert_eq!(
            c(false, "450 4.7.1 forbidden word seen"),
            OutcomeKind::Deferred
        );
        // Empty extras match nothing.
        assert_eq!(c(true, "550 5.7.1 nothing here"), OutcomeKind::Rejected);
        // An extra listing wording needs our address.
        assert_eq!(
            c(true, "550 5.7.1 203.0.113.5 found in localbl"),
            OutcomeKind::GatewayListed
        );
        assert_eq!(c(true, "550 5.7.1 found in localbl"), OutcomeKind::Rejected);
    }

    #[test]
    fn codes_and_wordings_for_permanent_refusals() {
        let p = Patterns {
            spam: &[],
            listing: &[],
            own: &[],
        };
        let c = |text| classify_text(false, true, text, p);
        assert_eq!(c("550 5.1.1 <a@b>: user unknown"), OutcomeKind::Unknown);
        assert_eq!(
            c("5.1.3 bad recipient address; not sent"),
            OutcomeKind::Unknown
        );
        assert_eq!(c("553 5.1.7 bad sender address"), OutcomeKind::Rejected);
        assert_eq!(c("552 5.2.2 mailbox full"), OutcomeKind::Rejected);
        assert_eq!(c("552 5.3.4 message too big"), OutcomeKind::Rejected);
        assert_eq!(c("550 5.2.1 mailbox disabled"), OutcomeKind::Unknown);
        assert_eq!(c("550 5.2.1 unavailable"), OutcomeKind::Unknown);
        assert_eq!(c("554 5.7.1 message rejected"), OutcomeKind::Rejected);
        assert_eq!(
            c("554 5.7.1 <a@b>: Relay access denied"),
            OutcomeKind::Rejected
        );
        assert_eq!(c("550 5.7.1 No such user!"), OutcomeKind::Unknown);
        assert_eq!(
            c("550 Requested action not taken: mailbox unavailable"),
            OutcomeKind::Unknown
        );
        assert_eq!(c("554 mailbox unavailable"), OutcomeKind::Rejected);
        assert_eq!(c("550 message looks like spam"), OutcomeKind::Spam);
        assert_eq!(
            c("550 5.7.26 unauthenticated; protect our users from spam"),
            OutcomeKind::Rejected
        );
        assert_eq!(
            c("5.6.0 message has bare line endings; not sent"),
            OutcomeKind::Rejected
        );
        assert_eq!(c(""), OutcomeKind::Rejected);
        // An enhanced code of the other class is text, the basic code counts.
        assert_eq!(c("550 4.7.1 spam"), OutcomeKind::Spam);
        assert_eq!(c("550 4.1.1 nobody"), OutcomeKind::Rejected);
        assert_eq!(
            c("550 5.7.25 reverse DNS failed"),
            OutcomeKind::GatewayListed
        );
        assert_eq!(
            classify_text(true, false, "250 ok", p),
            OutcomeKind::Delivered
        );
        assert_eq!(
            classify_text(false, false, "421 4.4.2 timeout", p),
            OutcomeKind::Deferred
        );
        assert_eq!(classify_text(false, false, "", p), OutcomeKind::Deferred);
    }

    #[test]
    fn enhanced_codes() {
        assert_eq!(enhanced_code("550 5.1.1 user unknown"), Some((5, 1, 1)));
        assert_eq!(enhanced_code("550-5.7.1 [x] blocked"), Some((5, 7, 1)));
        assert_eq!(enhanced_code("5.1.10 not found"), Some((5, 1, 10)));
        assert_eq!(enhanced_code("  421 4.7.28"), Some((4, 7, 28)));
        assert_eq!(
            enhanced_code("550 5.7.509: Access denied"),
            Some((5, 7, 509))
        );
        assert_eq!(
            enhanced_code("421 4.16.55 [TS01] Messages"),
            Some((4, 16, 55))
        );
        assert_eq!(
            enhanced_code("4.4.7 delivery time expired"),
            Some((4, 4, 7))
        );
        assert_eq!(enhanced_code("550 user unknown"), None);
        assert_eq!(enhanced_code("550 3.1.1 x"), None);
        assert_eq!(enhanced_code("550 5.1.1000 x"), None);
        assert_eq!(enhanced_code("550 5.1.1.2 x"), None);
        assert_eq!(enhanced_code("550 5.1 x"), None);
        assert_eq!(enhanced_code("5501 5.1.1"), None);
        assert_eq!(enhanced_code("550"), None);
        assert_eq!(enhanced_code(""), None);
        assert_eq!(enhanced_code("5.1.1. End of sentence"), Some((5, 1, 1)));
        assert_eq!(basic_code("550-5.1.1"), Some(550));
        assert_eq!(basic_code("550"), Some(550));
        assert_eq!(basic_code("650 x"), None);
        assert_eq!(basic_code("5.1.1 x"), None);
    }

    #[test]
    fn names_an_address() {
        let own = own();
        let listed = "554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org";
        assert_eq!(names_address(listed, &own), Some(own[0]));
        assert_eq!(
            names_address("550 5.7.1 IP 2001:db8::25 is listed on a blocklist.", &own),
            Some(own[1])
        );
        assert_eq!(
            names_address("554 5.7.1 [IPv6:2001:db8::25] listed at bl.example", &own),
            Some(own[1])
        );
        assert_eq!(
            names_address("see https://www.spamcop.net/bl.shtml?203.0.113.5", &own),
            Some(own[0])
        );
        // Numbers that are not addresses do not match.
        assert_eq!(names_address("550 5.7.1 listed 203.0.113", &own), None);
        assert_eq!(names_address(listed, &[]), None);
    }

    #[test]
    fn phrases_are_whole_words() {
        assert!(has("450 greylisted, listed here", "listed"));
        assert!(!has("450 greylisted", "listed"));
        assert!(!has("whitelisted", "listed"));
        assert!(has("part (s3150).", "s3150"));
        assert!(!has("xs3150", "s3150"));
        assert!(has("spam.", "spam"));
        assert!(!has("spamhaus", "spam"));
        assert!(has("a [tss04] b", "[tss04]"));
        assert!(!has("anything", ""));
        assert!(has_tag("421 4.7.0 [tss04] messages", "tss"));
        assert!(has_tag("[ts01]", "ts"));
        assert!(!has_tag("[ts]", "ts"));
        assert!(!has_tag("[ts0001]", "ts"));
        assert!(has_tag("554 5.7.1 [cs01] message", "cs"));
    }

    #[test]
    fn typed_outcomes_are_read_from_their_fields() {
        let p = Patterns {
            spam: &[],
            listing: &[],
            own: &[],
        };
        let typed = |fate, code, enhanced, text: &str| Outcome {
            fate,
            code,
            enhanced,
            text: text.into(),
        };
        // The enhanced code decides, whatever the text leads with.
        let o = typed(
            Fate::Permanent,
            Some(550),
            Some(Enhanced::new(5, 1, 1)),
            "mailbox gone",
        );
        assert_eq!(classify(&o, p), OutcomeKind::Unknown);
        // A mismatched class is ignored: 550 with 4.1.1 says nothing of the recipient.
        let o = typed(
            Fate::Permanent,
            Some(550),
            Some(Enhanced::new(4, 1, 1)),
            "nobody",
        );
        assert_eq!(classify(&o, p), OutcomeKind::Rejected);
        // The reply code decides "mailbox unavailable".
        let o = typed(Fate::Permanent, Some(550), None, "mailbox unavailable");
        assert_eq!(classify(&o, p), OutcomeKind::Unknown);
        let o = typed(Fate::Permanent, Some(554), None, "mailbox unavailable");
        assert_eq!(classify(&o, p), OutcomeKind::Rejected);
        // Our give-up after the lifetime is no refusal, even after a spam deferral.
        let o = typed(
            Fate::Expired,
            None,
            Some(Enhanced::new(4, 4, 7)),
            "4.4.7 delivery time expired; last error: 550 5.7.1 spam",
        );
        assert_eq!(classify(&o, p), OutcomeKind::Deferred);
        // A connection failure is temporary.
        let o = typed(
            Fate::Temporary,
            None,
            Some(Enhanced::new(4, 4, 1)),
            "4.4.1 cannot connect: refused (at 192.0.2.1:25)",
        );
        assert_eq!(classify(&o, p), OutcomeKind::Deferred);
        let o = typed(Fate::Delivered, Some(250), None, "250 ok");
        assert_eq!(classify(&o, p), OutcomeKind::Delivered);
    }

    #[test]
    fn records_are_typed_at_the_edge() {
        let o = parse_record(false, true, "550 5.1.1 <a@b>: user unknown");
        assert_eq!(
            (o.fate, o.code, o.enhanced),
            (Fate::Permanent, Some(550), Some(Enhanced::new(5, 1, 1)))
        );
        let o = parse_record(
            false,
            true,
            "4.4.7 delivery time expired; last error: 451 x",
        );
        assert_eq!(
            (o.fate, o.code, o.enhanced),
            (Fate::Expired, None, Some(Enhanced::new(4, 4, 7)))
        );
        assert_eq!(
            parse_record(false, true, "451 4.3.0 later").fate,
            Fate::Expired
        );
        assert_eq!(parse_record(false, false, "550 no").fate, Fate::Temporary);
        assert_eq!(parse_record(true, false, "250 ok").fate, Fate::Delivered);
        assert_eq!(parse_record(false, true, "").fate, Fate::Permanent);
    }

    #[test]
    fn kinds_serialise_snake_case() {
        for k in [
            OutcomeKind::Delivered,
            OutcomeKind::Deferred,
            OutcomeKind::Rejected,
            OutcomeKind::Spam,
            OutcomeKind::Unknown,
            OutcomeKind::GatewayListed,
        ] {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
    }

    #[test]
    fn fuzz_invariants_hold_on_samples() {
        for s in [
            &b"\x02550 5.1.1 user unknown"[..],
            b"\x00451 4.7.1 spam",
            b"\x0e554 Client host [203.0.113.5] blocked using x",
            b"\xff\xff\xfe[",
            b"",
            b"\x03[ts",
            b"\x02550 5.",
        ] {
            fuzzing::check(s);
        }
    }
}
