//! SMTP TLS reporting (RFC 8460): what one UTC day of outbound TLS sessions
//! under one policy domain's policy came to, kept until the day's report
//! is sent.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The policy a session was held to (RFC 8460 §4.3 `policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPolicy {
    /// `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: String,
    /// The policy as lines (an MTA-STS policy's `key: value` lines).
    pub policy_string: Vec<String>,
    /// The domain whose policy it is (the recipient domain).
    pub policy_domain: String,
    /// The MX host patterns the policy names (MTA-STS).
    pub mx_host: Vec<String>,
}

/// Failed sessions of one kind to one MX (RFC 8460 §4.3 `failure-details`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetail {
    /// `starttls-not-supported`, `certificate-host-mismatch`, ...
    pub result_type: String,
    /// The gateway's address the session came from, if known.
    pub sending_mta_ip: Option<String>,
    /// The MX host name.
    pub receiving_mx_hostname: String,
    /// The MX address.
    pub receiving_ip: Option<String>,
    /// Sessions that failed so.
    pub failed_session_count: u64,
    /// The failure in words (the first one seen).
    pub additional_information: Option<String>,
}

/// One policy domain's sessions on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    /// The UTC day.
    pub day: NaiveDate,
    /// The policy applied (the latest seen that day).
    pub policy: ReportPolicy,
    /// Sessions that met the policy.
    pub success: u64,
    /// Sessions that did not.
    pub failure: u64,
    /// The failures by kind and MX, at most [`MAX_DETAILS`].
    pub failures: Vec<FailureDetail>,
}

/// Most failure-detail rows kept per domain and day; later kinds still
/// count in `failure`.
pub const MAX_DETAILS: usize = 100;

/// One session's result under a policy, as the delivery side saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionResult {
    /// TLS as the policy asked.
    Success,
    /// Not as the policy asked.
    Failure(FailureDetail),
}

impl DayCounts {
    /// An empty day for `policy`.
    pub fn new(day: NaiveDate, policy: ReportPolicy) -> DayCounts {
        DayCounts {
            day,
            policy,
            success: 0,
            failure: 0,
            failures: Vec::new(),
        }
    }

    /// Counts one session.
    pub fn add(&mut self, result: &SessionResult) {
        match result {
            SessionResult::Success => self.success += 1,
            SessionResult::Failure(f) => {
                self.failure += 1;
                let same = |d: &&mut FailureDetail| {
                    d.result_type == f.result_type
                        && d.receiving_mx_hostname == f.receiving_mx_hostname
                        && d.receiving_ip == f.receiving_ip
                        && d.sending_mta_ip == f.sending_mta_ip
                };
                if let Some(d) = self.failures.iter_mut().find(same) {
                    d.failed_session_count += f.failed_session_count;
                } else if self.failures.len() < MAX_DETAILS {
                    self.failures.push(f.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_add_up_by_kind_and_mx() {
        let p = ReportPolicy {
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into()],
            policy_domain: "example.org".into(),
            mx_host: vec!["mx.example.org".into()],
        };
        let mut d = DayCounts::new("2026-12-01".parse().unwrap(), p);
        let fail = |t: &str| {
            SessionResult::Failure(FailureDetail {
                result_type: t.into(),
                sending_mta_ip: None,
                receiving_mx_hostname: "mx.example.org".into(),
                receiving_ip: Some("192.0.2.1".into()),
                failed_session_count: 1,
                additional_information: None,
            })
        };
        d.add(&SessionResult::Success);
        d.add(&fail("starttls-not-supported"));
        d.add(&fail("starttls-not-supported"));
        d.add(&fail("certificate-expired"));
        assert_eq!((d.success, d.failure), (1, 3));
        assert_eq!(d.failures.len(), 2);
        assert_eq!(d.failures[0].failed_session_count, 2);
    }
}
