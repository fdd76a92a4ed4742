//! One outbound TLS session's result under a recipient domain's policy, as
//! RFC 8460 §4.3 counts it: a success, or a failure of one of its result
//! types. Pure: the scheduler hands in what the connection attempt gave.

use std::net::SocketAddr;

use crate::delivery::client::ConnError;
use crate::delivery::dane::TlsaSet;
use crate::delivery::mta_sts::Policy;
use crate::model::tlsrpt::{FailureDetail, ReportPolicy, SessionResult};

/// The report's view of an MTA-STS policy (RFC 8460 §4.3 `policy`): its
/// lines as fetched (rebuilt from the parsed policy, which keeps only what
/// RFC 8461 defines), the domain and the MX patterns.
pub fn sts_policy(domain: &str, p: &Policy) -> ReportPolicy {
    let mode = match p.mode {
        crate::delivery::mta_sts::Mode::Enforce => "enforce",
        crate::delivery::mta_sts::Mode::Testing => "testing",
        crate::delivery::mta_sts::Mode::None => "none",
    };
    let mut lines = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
    lines.extend(p.mx.iter().map(|m| format!("mx: {m}")));
    lines.push(format!("max_age: {}", p.max_age));
    ReportPolicy {
        policy_type: "sts".into(),
        policy_string: lines,
        policy_domain: domain.to_string(),
        mx_host: p.mx.clone(),
    }
}

/// The report's view of a DANE policy (RFC 8460 §4.3, type `tlsa`): the
/// host's usable TLSA records in presentation form, none when it has only
/// unusable ones. The policy domain is the TLSA base domain, the MX host
/// (RFC 8460 §3), so the report goes to `_smtp._tls.<mx-host>`.
pub fn tlsa_policy(mx_host: &str, set: Option<&TlsaSet>) -> ReportPolicy {
    ReportPolicy {
        policy_type: "tlsa".into(),
        policy_string: set
            .map(|s| s.records.iter().map(|r| r.presentation()).collect())
            .unwrap_or_default(),
        policy_domain: mx_host.trim_end_matches('.').to_string(),
        mx_host: Vec::new(),
    }
}

/// A session to a host under DANE, or `None` when the attempt says nothing
/// about TLS. `usable`: the host has usable TLSA records (else only
/// unusable ones, RFC 8460's `tlsa-invalid`, though TLS still went on).
pub fn classify_dane(
    attempt: &Attempt<'_>,
    usable: bool,
    mx_host: &str,
    addr: SocketAddr,
) -> Option<SessionResult> {
    let fail =
        |result_type: &str, info: Option<String>| Some(failure(result_type, mx_host, addr, info));
    match attempt {
        Attempt::Open { tls: false, .. } | Attempt::Failed(ConnError::TlsRequired { .. }) => {
            fail("starttls-not-supported", None)
        }
        Attempt::Open { .. } if !usable => fail(
            "tlsa-invalid",
            Some("no usable TLSA record (RFC 7672 §3.1.3)".into()),
        ),
        Attempt::Open { .. } => Some(SessionResult::Success),
        // The certificate matched none of the records.
        Attempt::Failed(ConnError::Tls { reason }) => {
            fail("validation-failure", Some(reason.clone()))
        }
        Attempt::Failed(_) => None,
    }
}

/// What one connection attempt to an MX gave, as far as TLS goes.
#[derive(Debug)]
pub enum Attempt<'a> {
    /// The session is open: with TLS or not, the certificate verified for
    /// the host or not (and why not).
    Open {
        /// TLS was negotiated.
        tls: bool,
        /// The certificate verified for the MX host name.
        verified: bool,
        /// Why it did not verify (the client's words), if it did not.
        problem: Option<&'a str>,
    },
    /// The attempt failed.
    Failed(&'a ConnError),
}

/// The session's result for the report, or `None` when the attempt says
/// nothing about TLS (the MX did not answer, refused us before STARTTLS).
pub fn classify(
    attempt: &Attempt<'_>,
    mx_host: &str,
    mx_listed: bool,
    addr: SocketAddr,
) -> Option<SessionResult> {
    let fail =
        |result_type: &str, info: Option<String>| Some(failure(result_type, mx_host, addr, info));
    match attempt {
        Attempt::Open { tls: false, .. } => fail("starttls-not-supported", None),
        Attempt::Open {
            verified: false,
            problem,
            ..
        } => fail(
            certificate_result_type(problem.unwrap_or("")),
            problem.map(str::to_string),
        ),
        Attempt::Open { .. } if !mx_listed => fail(
            "validation-failure",
            Some(format!(
                "MX host {} is not listed in the MTA-STS policy",
                mx_host.trim_end_matches('.')
            )),
        ),
        Attempt::Open { .. } => Some(SessionResult::Success),
        Attempt::Failed(ConnError::TlsRequired { .. }) => fail("starttls-not-supported", None),
        Attempt::Failed(ConnError::Tls { reason }) => {
            fail(certificate_result_type(reason), Some(reason.clone()))
        }
        Attempt::Failed(_) => None,
    }
}

/// One failed session of `result_type` to `mx_host` at `addr`.
fn failure(
    result_type: &str,
    mx_host: &str,
    addr: SocketAddr,
    info: Option<String>,
) -> SessionResult {
    SessionResult::Failure(FailureDetail {
        result_type: result_type.into(),
        sending_mta_ip: None,
        receiving_mx_hostname: mx_host.trim_end_matches('.').to_string(),
        receiving_ip: Some(addr.ip().to_string()),
        failed_session_count: 1,
        additional_information: info,
    })
}

/// The report's view of a domain whose MTA-STS policy could not be had:
/// type `sts`, no policy lines.
pub fn unfetched_policy(domain: &str) -> ReportPolicy {
    ReportPolicy {
        policy_type: "sts".into(),
        policy_string: Vec::new(),
        policy_domain: domain.to_string(),
        mx_host: Vec::new(),
    }
}

/// A session to `mx_host` at `addr` under a policy that could not be had.
pub fn policy_failure(
    result_type: &str,
    why: &str,
    mx_host: &str,
    addr: SocketAddr,
) -> SessionResult {
    failure(result_type, mx_host, addr, Some(why.to_string()))
}

/// The RFC 8460 §4.3.2 result type of a certificate problem, from the
/// client's own words for it (`delivery::client::tls`).
pub fn certificate_result_type(problem: &str) -> &'static str {
    let p = problem.to_ascii_lowercase();
    if p.contains("expired") || p.contains("not valid yet") {
        "certificate-expired"
    } else if p.contains("does not name this server") || p.contains("notvalidforname") {
        "certificate-host-mismatch"
    } else if p.contains("not signed by a trusted ca")
        || p.contains("unknownissuer")
        || p.contains("ca certificate as its own")
        || p.contains("causedasendentity")
    {
        "certificate-not-trusted"
    } else {
        "validation-failure"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "192.0.2.1:25".parse().unwrap()
    }

    fn kind(r: Option<SessionResult>) -> String {
        match r {
            Some(SessionResult::Success) => "success".into(),
            Some(SessionResult::Failure(f)) => f.result_type,
            None => "none".into(),
        }
    }

    #[test]
    fn sessions_are_classified_per_rfc_8460() {
        let open = |tls, verified, problem| Attempt::Open {
            tls,
            verified,
            problem,
        };
        let c = |a: &Attempt<'_>, listed| kind(classify(a, "mx.example.org.", listed, addr()));
        assert_eq!(c(&open(true, true, None), true), "success");
        assert_eq!(c(&open(false, false, None), true), "starttls-not-supported");
        assert_eq!(
            c(
                &open(true, false, Some("the certificate has expired")),
                true
            ),
            "certificate-expired"
        );
        assert_eq!(
            c(
                &open(
                    true,
                    false,
                    Some("the certificate does not name this server")
                ),
                true
            ),
            "certificate-host-mismatch"
        );
        assert_eq!(c(&open(true, true, None), false), "validation-failure");
        let required = ConnError::TlsRequired { reply: None };
        assert_eq!(
            c(&Attempt::Failed(&required), true),
            "starttls-not-supported"
        );
        let tls = ConnError::Tls {
            reason: "TLS error: the certificate is not signed by a trusted CA (self-signed or a private CA)".into(),
        };
        assert_eq!(c(&Attempt::Failed(&tls), true), "certificate-not-trusted");
        let connect = ConnError::Connect {
            source: std::io::Error::other("refused"),
        };
        assert_eq!(c(&Attempt::Failed(&connect), true), "none");
        let Some(SessionResult::Failure(f)) =
            classify(&open(false, false, None), "mx.example.org.", true, addr())
        else {
            panic!()
        };
        assert_eq!(f.receiving_mx_hostname, "mx.example.org");
        assert_eq!(f.receiving_ip.as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn dane_sessions_are_classified_per_rfc_8460() {
        let open = Attempt::Open {
            tls: true,
            verified: false,
            problem: None,
        };
        let c = |a: &Attempt<'_>, usable| kind(classify_dane(a, usable, "mx.example.org.", addr()));
        assert_eq!(c(&open, true), "success");
        assert_eq!(c(&open, false), "tlsa-invalid");
        let required = ConnError::TlsRequired { reply: None };
        assert_eq!(
            c(&Attempt::Failed(&required), true),
            "starttls-not-supported"
        );
        let tls = ConnError::Tls {
            reason: "the certificate matches no TLSA record of mx.example.org".into(),
        };
        assert_eq!(c(&Attempt::Failed(&tls), true), "validation-failure");
        let connect = ConnError::Connect {
            source: std::io::Error::other("refused"),
        };
        assert_eq!(c(&Attempt::Failed(&connect), true), "none");
        let set = TlsaSet {
            host: "mx.example.org".into(),
            records: vec![crate::delivery::dane::Tlsa::usable(3, 1, 1, &[0xab; 32]).unwrap()],
        };
        let p = tlsa_policy("mx.example.org.", Some(&set));
        assert_eq!(p.policy_type, "tlsa");
        assert_eq!(p.policy_domain, "mx.example.org");
        assert_eq!(p.policy_string, [format!("3 1 1 {}", "ab".repeat(32))]);
    }

    #[test]
    fn policy_failures_have_their_result_types() {
        use crate::delivery::mta_sts::{FetchError, PolicyError};
        let t = |e: &crate::delivery::mta_sts::FetchError| e.report_type();
        assert_eq!(t(&FetchError::Timeout), "sts-policy-fetch-error");
        assert_eq!(
            t(&FetchError::Io("refused".into())),
            "sts-policy-fetch-error"
        );
        assert_eq!(
            t(&FetchError::Policy(PolicyError::Response("404".into()))),
            "sts-policy-fetch-error"
        );
        assert_eq!(
            t(&FetchError::Policy(PolicyError::Policy("no mode".into()))),
            "sts-policy-invalid"
        );
        assert_eq!(
            t(&FetchError::Certificate("UnknownIssuer".into())),
            "sts-webpki-invalid"
        );
    }

    #[test]
    fn policy_lines_rebuild_the_policy() {
        let p = crate::delivery::mta_sts::parse_policy(
            "version: STSv1\nmode: enforce\nmx: mx.example.org\nmx: *.example.net\nmax_age: 86400\n",
        )
        .unwrap();
        let r = sts_policy("example.org", &p);
        assert_eq!(
            r.policy_string,
            [
                "version: STSv1",
                "mode: enforce",
                "mx: mx.example.org",
                "mx: *.example.net",
                "max_age: 86400"
            ]
        );
        assert_eq!(r.mx_host, ["mx.example.org", "*.example.net"]);
    }
}
