//! What a DNS blocklist's answer means: the name to look up for an address
//! (RFC 5782: reversed IPv4 octets, or the 32 reversed IPv6 nibbles, under
//! the list's zone) and the reading of the A record that comes back, per
//! list. Pure: the look-ups are in [`super::blocklist_watch`].

use std::net::{IpAddr, Ipv4Addr};

/// What one look-up of one address on one list said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No record (NXDOMAIN): not listed.
    NotListed,
    /// Listed: the answer and what the list says it means.
    Listed {
        /// The A record (`127.0.0.2`).
        code: Ipv4Addr,
        /// Its meaning on this list.
        meaning: String,
    },
    /// The list refused to answer (a public resolver, too many queries, a
    /// wrong zone name, or an answer that is no listing code): says
    /// nothing about the address.
    Refused {
        /// The A record.
        code: Ipv4Addr,
        /// Why, as the list documents it.
        meaning: String,
    },
}

impl Answer {
    /// `listed`, `not listed` or `query refused`, as shown to staff.
    pub fn state(&self) -> &'static str {
        match self {
            Answer::NotListed => "not listed",
            Answer::Listed { .. } => "listed",
            Answer::Refused { .. } => "query refused",
        }
    }
}

/// The name to look up for `ip` on `zone` (RFC 5782 §2.1, §2.4).
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(64 + zone.len() + 1);
            for b in v6.octets().iter().rev() {
                s.push(char::from_digit(u32::from(b & 0x0f), 16).unwrap_or('0'));
                s.push('.');
                s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
                s.push('.');
            }
            s.push_str(zone);
            s.push('.');
            s
        }
    }
}

/// Reads the A records `codes` of a look-up on `zone` (none: not listed).
/// A listing code wins over a refusal among several records.
pub fn interpret(zone: &str, codes: &[Ipv4Addr]) -> Answer {
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    let mut refused = None;
    let mut listed: Vec<(Ipv4Addr, String)> = Vec::new();
    for &c in codes {
        match read_one(&zone, c) {
            Reading::Listed(m) => listed.push((c, m)),
            Reading::Refused(m) => {
                refused.get_or_insert((c, m));
            }
        }
    }
    listed.sort();
    if let Some((code, _)) = listed.first() {
        let code = *code;
        let meaning = listed
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
            .join("; ");
        return Answer::Listed { code, meaning };
    }
    match refused {
        Some((code, meaning)) => Answer::Refused { code, meaning },
        None => Answer::NotListed,
    }
}

enum Reading {
    Listed(String),
    Refused(String),
}

fn read_one(zone: &str, c: Ipv4Addr) -> Reading {
    let o = c.octets();
    if o[0] != 127 {
        // A resolver that rewrites NXDOMAIN into an address of its own.
        return Reading::Refused(format!(
            "answer {c} is outside 127.0.0.0/8: no list answers so (a resolver rewriting NXDOMAIN?)"
        ));
    }
    if o[1] == 255 && o[2] == 255 {
        // Spamhaus's (and others') error codes.
        return Reading::Refused(match o[3] {
            252 => "query refused: typing error in the list's zone name".into(),
            254 => "query refused: queries through a public or open resolver are not answered \
                    (use your own resolver, or a Spamhaus DQS key)"
                .into(),
            255 => "query refused: excessive number of queries".into(),
            _ => format!("query refused (error code {c})"),
        });
    }
    if c == Ipv4Addr::new(127, 0, 0, 1) {
        return Reading::Refused(format!(
            "answer {c} is no listing code (lists answer so for refused or test queries)"
        ));
    }
    Reading::Listed(meaning(zone, c))
}

/// What a listing code means on `zone`, as the list documents it.
fn meaning(zone: &str, c: Ipv4Addr) -> String {
    let last = c.octets()[3];
    let (o1, o2) = (c.octets()[1], c.octets()[2]);
    let spamhaus = zone.ends_with("spamhaus.org") || zone.ends_with("spamhaus.net");
    if spamhaus && o1 == 0 && o2 == 0 {
        return match last {
            2 => "SBL: Spamhaus SBL, known spam source".into(),
            3 => "SBL CSS: Spamhaus snowshoe spam source".into(),
            4..=7 => "XBL: exploited host (CBL: infected, proxy or bot)".into(),
            9 => "DROP: Spamhaus DROP/EDROP, hijacked network".into(),
            10 => "PBL: end-user range, listed by its ISP (not meant to send mail directly)".into(),
            11 => {
                "PBL: end-user range, listed by Spamhaus (not meant to send mail directly)".into()
            }
            _ => format!("Spamhaus listing code {c}"),
        };
    }
    if zone.ends_with("mailspike.net") && o1 == 0 && o2 == 0 {
        return match last {
            2 => "Mailspike: listed (spam source)".into(),
            10..=14 => format!("Mailspike: bad reputation (level L{})", 15 - last),
            _ => format!("Mailspike listing code {c}"),
        };
    }
    let name = match zone {
        "bl.spamcop.net" => "SpamCop: reported spam source",
        "b.barracudacentral.org" => "Barracuda BRBL: poor reputation",
        "psbl.surriel.com" => "PSBL: spam trap hits",
        z if z.starts_with("dnsbl-1.uceprotect.net") => "UCEPROTECT level 1: spam trap hits",
        z if z.starts_with("dnsbl-2.uceprotect.net") => {
            "UCEPROTECT level 2: the network has many listed addresses"
        }
        z if z.starts_with("dnsbl-3.uceprotect.net") => {
            "UCEPROTECT level 3: the autonomous system has many listed addresses"
        }
        _ => return format!("listed ({c})"),
    };
    if last == 2 {
        name.to_string()
    } else {
        format!("{name} (code {c})")
    }
}

/// Where staff look an address up and ask for its removal, for the lists
/// the README names.
pub fn lookup_page(zone: &str) -> Option<&'static str> {
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    Some(match zone.as_str() {
        z if z.ends_with("spamhaus.org") => "https://check.spamhaus.org/",
        "bl.spamcop.net" => "https://www.spamcop.net/bl.shtml",
        "b.barracudacentral.org" => "https://www.barracudacentral.org/lookups",
        z if z.ends_with("uceprotect.net") => "https://www.uceprotect.net/en/rblcheck.php",
        "psbl.surriel.com" => "https://psbl.org/",
        "bl.mailspike.net" => "https://mailspike.org/iplookup.html",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn query_names_reverse_octets_and_nibbles() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "zen.spamhaus.org"),
            "99.2.0.192.zen.spamhaus.org."
        );
        // RFC 5782 §2.4's example.
        assert_eq!(
            query_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com."
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."
        );
    }

    #[test]
    fn spamhaus_codes_and_errors() {
        let z = "zen.spamhaus.org";
        assert_eq!(interpret(z, &[]), Answer::NotListed);
        let Answer::Listed { code, meaning } = interpret(z, &[a("127.0.0.4"), a("127.0.0.2")])
        else {
            panic!()
        };
        assert_eq!(code, a("127.0.0.2"));
        assert!(meaning.starts_with("SBL:"), "{meaning}");
        assert!(meaning.contains("XBL"), "{meaning}");
        for (c, word) in [
            ("127.0.0.3", "CSS"),
            ("127.0.0.9", "DROP"),
            ("127.0.0.10", "PBL"),
            ("127.0.0.11", "PBL"),
        ] {
            let m = match interpret(z, &[a(c)]) {
                Answer::Listed { meaning, .. } => meaning,
                other => panic!("{other:?}"),
            };
            assert!(m.contains(word), "{c}: {m}");
        }
        for c in ["127.255.255.254", "127.255.255.252", "127.255.255.255"] {
            let ans = interpret(z, &[a(c)]);
            assert_eq!(ans.state(), "query refused", "{c}");
        }
        let Answer::Refused { meaning, .. } = interpret(z, &[a("127.255.255.254")]) else {
            panic!()
        };
        assert!(meaning.contains("public or open resolver"), "{meaning}");
    }

    #[test]
    fn other_lists_and_bogus_answers() {
        let m = |z: &str, c: &str| match interpret(z, &[a(c)]) {
            Answer::Listed { meaning, .. } => meaning,
            other => panic!("{other:?}"),
        };
        assert!(m("bl.spamcop.net", "127.0.0.2").starts_with("SpamCop"));
        assert!(m("b.barracudacentral.org", "127.0.0.2").starts_with("Barracuda"));
        assert!(m("dnsbl-1.uceprotect.net", "127.0.0.2").starts_with("UCEPROTECT level 1"));
        assert!(m("bl.mailspike.net", "127.0.0.10").contains("L5"));
        assert_eq!(m("bl.test", "127.0.0.2"), "listed (127.0.0.2)");
        // NXDOMAIN rewritten by a resolver, and 127.0.0.1.
        assert_eq!(
            interpret("bl.spamcop.net", &[a("198.51.100.7")]).state(),
            "query refused"
        );
        assert_eq!(
            interpret("bl.spamcop.net", &[a("127.0.0.1")]).state(),
            "query refused"
        );
    }
}
