//! The header From of relayed mail (issue #18, item 2): an agency may send
//! only in the name of its registered domain (or a subdomain of it, or a
//! domain staff approved for it), so that one agency cannot sign its mail
//! as another in the header either. Checked at the end of data.

use mail_parser::{HeaderName, MessageParser};

use crate::domain::Domain;
use crate::model::domains::DomainRecord;
use crate::reply::Reply;

/// The authors named by every `From:` field of a header section (several
/// fields are all counted: a receiver may show any of them); none when it
/// has no From field (such mail names no one, so it impersonates no one).
/// `Err` names a field with no usable address.
pub fn authors(header: &[u8]) -> Result<Vec<String>, String> {
    // A header section alone parses as a message without a body.
    let mut section = header.to_vec();
    section.extend_from_slice(b"\r\n");
    let Some(msg) = MessageParser::new().parse_headers(&section) else {
        return Err("the header section cannot be read".into());
    };
    let mut out = Vec::new();
    for h in msg.headers() {
        if h.name != HeaderName::From {
            continue;
        }
        let addrs: Vec<String> = h
            .value()
            .as_address()
            .map(|a| {
                a.iter()
                    .filter_map(|a| a.address())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if addrs.is_empty() {
            return Err("a header From without an address".into());
        }
        out.extend(addrs);
    }
    Ok(out)
}

/// The domain of an address, when it has a usable one.
fn domain_of(address: &str) -> Option<Domain> {
    let (_, d) = address.rsplit_once('@')?;
    Domain::parse(d).ok()
}

/// `None` when `rec`'s policy lets this header section's authors through;
/// otherwise the `550 5.7.1` to send.
pub fn verdict(rec: &DomainRecord, header: &[u8]) -> Option<Reply> {
    if !rec.header_from.enforce {
        return None;
    }
    let refuse = |why: String| {
        Some(Reply::new(
            550,
            "5.7.1",
            format!(
                "{why}: mail relayed for {} must have a header From of that domain{}",
                rec.name,
                if rec.header_from.extra_domains.is_empty() {
                    String::new()
                } else {
                    " or of one approved for it".into()
                }
            ),
        ))
    };
    let authors = match authors(header) {
        Ok(a) => a,
        Err(why) => return refuse(why),
    };
    let allowed = |d: &Domain| {
        d.is_within(&rec.name) || rec.header_from.extra_domains.iter().any(|e| d.is_within(e))
    };
    for a in authors {
        match domain_of(&a) {
            Some(d) if allowed(&d) => {}
            _ => return refuse(format!("header From <{a}> is not of {}", rec.name)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::domains::HeaderFrom;

    fn rec(header_from: HeaderFrom) -> DomainRecord {
        let now = chrono::Utc::now();
        let mut r = DomainRecord::connected(
            Domain::parse("a.example.kz").unwrap(),
            "A".into(),
            Vec::new(),
            Vec::new(),
            now,
        );
        r.header_from = header_from;
        r
    }

    fn code(r: &DomainRecord, header: &str) -> Option<String> {
        verdict(r, header.as_bytes()).map(|r| r.to_string())
    }

    #[test]
    fn own_domain_and_subdomains_pass_others_are_refused() {
        let r = rec(HeaderFrom::default());
        assert_eq!(
            code(&r, "From: Clerk <clerk@a.example.kz>\r\nSubject: x\r\n"),
            None
        );
        assert_eq!(code(&r, "From: x@Mail.A.example.kz\r\n"), None);
        let refused = code(&r, "From: Minister <m@b.example.kz>\r\n").unwrap();
        assert!(
            refused.starts_with("550 5.7.1 header From <m@b.example.kz> is not of a.example.kz"),
            "{refused}"
        );
        // A look-alike is not a subdomain.
        assert!(code(&r, "From: x@evila.example.kz\r\n").is_some());
        // Every From field and every address in one counts.
        assert!(code(&r, "From: clerk@a.example.kz\r\nFrom: m@b.example.kz\r\n").is_some());
        assert!(code(&r, "From: clerk@a.example.kz, m@b.example.kz\r\n").is_some());
        // No From names no one; a From without an address is refused.
        assert_eq!(code(&r, "Subject: x\r\n"), None);
        let bare = code(&r, "From: undisclosed\r\n").unwrap();
        assert!(bare.contains("a header From without an address"), "{bare}");
    }

    #[test]
    fn approved_domains_pass_and_the_check_can_be_off() {
        let r = rec(HeaderFrom {
            enforce: true,
            extra_domains: vec![Domain::parse("portal.example.kz").unwrap()],
        });
        assert_eq!(code(&r, "From: noreply@portal.example.kz\r\n"), None);
        assert!(
            code(&r, "From: x@b.example.kz\r\n")
                .unwrap()
                .contains("approved")
        );
        let off = rec(HeaderFrom {
            enforce: false,
            extra_domains: Vec::new(),
        });
        assert_eq!(code(&off, "From: x@b.example.kz\r\n"), None);
    }

    #[test]
    fn utf8_authors_are_compared_as_a_labels() {
        let mut r = rec(HeaderFrom::default());
        r.name = Domain::parse("мин.example.kz").unwrap();
        assert_eq!(code(&r, "From: Қызметкер <клерк@мин.example.kz>\r\n"), None);
        assert!(code(&r, "From: клерк@мин2.example.kz\r\n").is_some());
    }
}
