//! `[tlsrpt]`: SMTP TLS reporting (RFC 8460): daily reports of the
//! outbound TLS sessions per policy domain, mailed to the domains that ask
//! for them in `_smtp._tls.<domain>`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::values::{PlainAddress, Span};

/// `[tlsrpt]`: TLS reporting.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsRptSection {
    /// Count sessions and send the daily reports.
    pub enabled: bool,
    /// `organization-name` of the reports; empty: `server.hostname`.
    pub organization: String,
    /// `contact-info` of the reports; absent: `server.postmaster`.
    pub contact: Option<PlainAddress>,
    /// How long after 00:00 UTC the day's reports go out (plus up to 15
    /// minutes at random, so that the world's senders do not all send at once).
    pub send_after: Span,
}

impl Default for TlsRptSection {
    fn default() -> Self {
        TlsRptSection {
            enabled: false,
            organization: String::new(),
            contact: None,
            send_after: Span(Duration::from_secs(3600)),
        }
    }
}

impl TlsRptSection {
    /// The sending time must fall within the day after the one reported.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.send_after.0 >= Duration::from_secs(23 * 3600) {
            out.push(ConfigProblem::new(
                "tlsrpt.send_after",
                "must be less than 23h (reports of a day go out the next day)",
            ));
        }
        if self.organization.chars().any(char::is_control) {
            out.push(ConfigProblem::new(
                "tlsrpt.organization",
                "must be one line of text",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MINIMAL, keys, load};

    #[test]
    fn defaults_and_bad_values() {
        let cfg = load(MINIMAL, &[]).unwrap();
        assert!(!cfg.tlsrpt.enabled);
        let cfg = load(
            &format!(
                "{MINIMAL}[tlsrpt]\nenabled = true\norganization = \"Gov Gateway\"\ncontact = \"tls@gw.example\"\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.tlsrpt.organization, "Gov Gateway");
        assert_eq!(cfg.tlsrpt.contact.unwrap().to_string(), "tls@gw.example");
        let err = load(
            &format!("{MINIMAL}[tlsrpt]\nsend_after = \"30h\"\ncontact = \"nobody\"\n"),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        assert!(k.contains(&"tlsrpt.send_after"), "{err}");
        assert!(k.contains(&"tlsrpt.contact"), "{err}");
    }
}
