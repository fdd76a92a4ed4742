//! The report itself (RFC 8460): the `_smtp._tls` record that asks for it
//! (§3), the JSON (§4), and the mail that carries it gzipped (§5.3). Pure.

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use crate::model::tlsrpt::DayCounts;

/// Where a domain wants its reports (a `rua` URI of its record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rua {
    /// `mailto:` an address.
    Mail(String),
    /// `https:` a URL (not sent: see the README).
    Https(String),
}

/// Why a `_smtp._tls` record was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// More than one TLSRPT record (§3: then none is used).
    #[error("more than one TLSRPTv1 record")]
    Several,
    /// A record without a usable `rua`.
    #[error("bad TLSRPT record: {0}")]
    Bad(String),
}

/// The report addresses from the TXT strings of `_smtp._tls.<domain>`
/// (§3); `None` when no string is a TLSRPT record.
pub fn parse_record(txts: &[String]) -> Result<Option<Vec<Rua>>, RecordError> {
    let records: Vec<&String> = txts
        .iter()
        .filter(|t| {
            let rest = t
                .trim_start()
                .strip_prefix("v=TLSRPTv1")
                .map(str::trim_start);
            rest.is_some_and(|r| r.is_empty() || r.starts_with(';'))
        })
        .collect();
    let record = match records.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(RecordError::Several),
    };
    let mut ruas = Vec::new();
    for field in record.split(';').skip(1) {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        if k.trim() != "rua" {
            continue;
        }
        for uri in v.split(',') {
            let uri = uri.trim();
            let lower = uri.to_ascii_lowercase();
            if let Some(addr) = lower.strip_prefix("mailto:").map(|_| &uri[7..]) {
                // Percent-encoded characters (RFC 6068) are rare; `%40` is
                // the one worth reading.
                let addr = addr.replace("%40", "@");
                if addr.contains('@') && !addr.contains(['<', '>', ' ', ',']) {
                    ruas.push(Rua::Mail(addr));
                }
            } else if lower.starts_with("https://") {
                ruas.push(Rua::Https(uri.to_string()));
            }
        }
    }
    if ruas.is_empty() {
        return Err(RecordError::Bad(format!(
            "no mailto: or https: rua in {record:?}"
        )));
    }
    Ok(Some(ruas))
}

/// Who sends the report and how to reach them.
#[derive(Debug, Clone)]
pub struct Submitter {
    /// `organization-name`.
    pub organization: String,
    /// `contact-info`.
    pub contact: String,
    /// The sending host's name (`TLS-Report-Submitter`, the file name).
    pub hostname: String,
}

/// The day's bounds: 00:00:00 to 23:59:59 UTC.
pub fn day_range(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    (start, start + chrono::Duration::seconds(86_399))
}

/// The JSON report (§4) of one policy domain's day.
pub fn report_json(c: &DayCounts, who: &Submitter, report_id: &str) -> serde_json::Value {
    let (start, end) = day_range(c.day);
    let ts = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let details: Vec<serde_json::Value> = c
        .failures
        .iter()
        .map(|f| {
            let mut d = json!({
                "result-type": f.result_type,
                "receiving-mx-hostname": f.receiving_mx_hostname,
                "failed-session-count": f.failed_session_count,
            });
            if let Some(ip) = &f.sending_mta_ip {
                d["sending-mta-ip"] = json!(ip);
            }
            if let Some(ip) = &f.receiving_ip {
                d["receiving-ip"] = json!(ip);
            }
            if let Some(info) = &f.additional_information {
                d["failure-reason-code"] = json!(info);
            }
            d
        })
        .collect();
    json!({
        "organization-name": who.organization,
        "date-range": { "start-datetime": ts(start), "end-datetime": ts(end) },
        "contact-info": who.contact,
        "report-id": report_id,
        "policies": [{
            "policy": {
                "policy-type": c.policy.policy_type,
                "policy-string": c.policy.policy_string,
                "policy-domain": c.policy.policy_domain,
                "mx-host": c.policy.mx_host,
            },
            "summary": {
                "total-successful-session-count": c.success,
                "total-failure-session-count": c.failure,
            },
            "failure-details": details,
        }],
    })
}

/// The report's file name (§5.1):
/// `submitter!policy-domain!begin!end!unique-id.json.gz`, times in seconds.
pub fn file_name(who: &Submitter, c: &DayCounts, unique: &str) -> String {
    let (start, end) = day_range(c.day);
    format!(
        "{}!{}!{}!{}!{unique}.json.gz",
        who.hostname,
        c.policy.policy_domain,
        start.timestamp(),
        end.timestamp() + 1
    )
}

/// gzip of `data` (RFC 1952), as §5.1 asks of a mailed report.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// The report mail (§5.3): multipart/report; report-type="tlsrpt", a short
/// text part and the gzipped JSON as application/tlsrpt+gzip.
#[allow(clippy::too_many_arguments)]
pub fn message(
    who: &Submitter,
    from: &str,
    to: &[String],
    c: &DayCounts,
    report_id: &str,
    unique: &str,
    json: &serde_json::Value,
    date: DateTime<Utc>,
) -> Vec<u8> {
    let domain = &c.policy.policy_domain;
    let gz = gzip(&serde_json::to_vec(json).unwrap_or_default());
    let name = file_name(who, c, unique);
    let boundary = format!("tlsrpt-{unique}");
    let mut m = String::new();
    m.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
    m.push_str(&format!("From: TLS reporting <{from}>\r\n"));
    m.push_str(&format!("To: {}\r\n", to.join(",\r\n ")));
    m.push_str(&format!(
        "Subject: Report Domain: {domain}\r\n Submitter: {}\r\n Report-ID: <{report_id}>\r\n",
        who.hostname
    ));
    m.push_str(&format!("TLS-Report-Domain: {domain}\r\n"));
    m.push_str(&format!("TLS-Report-Submitter: {}\r\n", who.hostname));
    m.push_str(&format!("Message-ID: <{report_id}>\r\n"));
    m.push_str("Auto-Submitted: auto-generated\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a multipart message in MIME format.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    m.push_str(&format!(
        "This is an aggregate TLS report (RFC 8460) from {} for {domain}, {}.\r\n\r\n",
        who.organization, c.day
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(&format!(
        "Content-Type: application/tlsrpt+gzip; name=\"{name}\"\r\n"
    ));
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
    ));
    let b64 = crate::notify::mail::base64(&gz);
    for line in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(line).unwrap_or_default());
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// The record parser's invariants, for the fuzz target `tlsrpt` and
/// tests/fuzz_corpus.rs.
pub mod fuzzing {
    use super::*;

    /// Never panics; what it accepts is a usable address or an https URL.
    pub fn check(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let records: Vec<String> = text.split('\n').map(str::to_string).collect();
        if let Ok(Some(ruas)) = parse_record(&records) {
            assert!(!ruas.is_empty());
            for r in ruas {
                match r {
                    Rua::Mail(a) => {
                        assert!(a.contains('@') && !a.contains(['<', '>', ' ', ',']), "{a}")
                    }
                    Rua::Https(u) => assert!(u.to_ascii_lowercase().starts_with("https://")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tlsrpt::{FailureDetail, ReportPolicy, SessionResult};

    #[test]
    fn records_name_their_report_addresses() {
        let r = |t: &[&str]| parse_record(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(r(&["v=spf1 -all"]), Ok(None));
        assert_eq!(
            r(&[
                "v=TLSRPTv1; rua=mailto:reports@example.com,https://reporting.example.com/v1/tlsrpt"
            ]),
            Ok(Some(vec![
                Rua::Mail("reports@example.com".into()),
                Rua::Https("https://reporting.example.com/v1/tlsrpt".into())
            ]))
        );
        assert_eq!(
            r(&["v=TLSRPTv1;rua=mailto:a%40example.com"]),
            Ok(Some(vec![Rua::Mail("a@example.com".into())]))
        );
        assert_eq!(
            r(&[
                "v=TLSRPTv1; rua=mailto:a@x.example",
                "v=TLSRPTv1; rua=mailto:b@x.example"
            ]),
            Err(RecordError::Several)
        );
        assert!(matches!(
            r(&["v=TLSRPTv1; rua=ftp://x"]),
            Err(RecordError::Bad(_))
        ));
        // Not a TLSRPTv1 record: "v=TLSRPTv10".
        assert_eq!(r(&["v=TLSRPTv10; rua=mailto:a@x.example"]), Ok(None));
    }

    #[test]
    fn the_report_is_rfc_8460_json_in_a_gzipped_mime_part() {
        let mut c = DayCounts::new(
            "2026-12-01".parse().unwrap(),
            ReportPolicy {
                policy_type: "sts".into(),
                policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
                policy_domain: "example.org".into(),
                mx_host: vec!["mx.example.org".into()],
            },
        );
        c.add(&SessionResult::Success);
        c.add(&SessionResult::Failure(FailureDetail {
            result_type: "starttls-not-supported".into(),
            sending_mta_ip: None,
            receiving_mx_hostname: "mx.example.org".into(),
            receiving_ip: Some("192.0.2.1".into()),
            failed_session_count: 1,
            additional_information: None,
        }));
        let who = Submitter {
            organization: "Gateway".into(),
            contact: "postmaster@gw.example".into(),
            hostname: "gw.example".into(),
        };
        let j = report_json(&c, &who, "r1@gw.example");
        assert_eq!(j["date-range"]["start-datetime"], "2026-12-01T00:00:00Z");
        assert_eq!(j["date-range"]["end-datetime"], "2026-12-01T23:59:59Z");
        let p = &j["policies"][0];
        assert_eq!(p["summary"]["total-successful-session-count"], 1);
        assert_eq!(p["summary"]["total-failure-session-count"], 1);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "starttls-not-supported"
        );
        assert_eq!(
            file_name(&who, &c, "u1"),
            "gw.example!example.org!1796083200!1796169600!u1.json.gz"
        );
        let raw = message(
            &who,
            "postmaster@gw.example",
            &["tls@example.org".into()],
            &c,
            "r1@gw.example",
            "u1",
            &j,
            Utc::now(),
        );
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            msg.subject(),
            Some("Report Domain: example.org Submitter: gw.example Report-ID: <r1@gw.example>")
        );
        let att = msg.attachment(0).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(att.contents()), &mut out)
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            j
        );
    }
}
