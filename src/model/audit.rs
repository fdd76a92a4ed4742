//! The audit trail: every mutating admin call, who made it and how it ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Sequence number (assigned by the store).
    #[serde(default)]
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Token name, or `auto` for the gateway's own decisions.
    pub actor: String,
    /// What, e.g. `domain.suspend`.
    pub action: String,
    /// On what, e.g. the domain name.
    pub target: String,
    /// Client address of the API call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `ok`, `denied` or `error: ...`.
    pub outcome: String,
    /// Refused calls folded into this record (same client, actor and
    /// minute); 1 for everything else.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
    /// Why, where the action has a reason (staff's or the governor's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What changed, before the action: the changed fields or the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// What changed, after the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

impl AuditRecord {
    /// A record of the gateway's own decision (actor `auto`) at `at`.
    pub fn auto(at: DateTime<Utc>, action: &str, target: &str, reason: &str) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at,
            actor: AUTO.into(),
            action: action.into(),
            target: target.into(),
            client: None,
            outcome: "ok".into(),
            count: 1,
            reason: Some(reason.into()),
            before: None,
            after: None,
        }
    }

    /// With what changed.
    pub fn change(mut self, before: serde_json::Value, after: serde_json::Value) -> AuditRecord {
        self.before = Some(before);
        self.after = Some(after);
        self
    }
}

/// Whether audit target `target` is `t`, or `t` with a description after
/// `: ` (as the update and disconnect calls write theirs).
fn target_is(target: &str, t: &str) -> bool {
    match (target.get(..t.len()), target.get(t.len()..)) {
        (Some(head), Some(rest)) => {
            head.eq_ignore_ascii_case(t) && (rest.is_empty() || rest.starts_with(": "))
        }
        _ => false,
    }
}

/// The actor of the gateway's own decisions.
pub const AUTO: &str = "auto";

/// Which audit records to list (every given condition must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only this actor (token name, or `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only this action (`domain.update`), or a family of them
    /// (`domain.` or `domain.*`: every action that starts so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only this target (case-insensitive), also where the target goes on
    /// to describe the call (`a.example.kz: owner: ...` for `a.example.kz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only records at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Only records before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// At most this many, newest first (the store's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// Whether `r` passes every condition but the limit.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        let action = match self.action.as_deref().map(|a| a.trim_end_matches('*')) {
            None => true,
            Some(a) if a.ends_with('.') => r.action.starts_with(a),
            Some(a) => r.action == a,
        };
        action
            && self.actor.as_ref().is_none_or(|a| &r.actor == a)
            && self.target.as_ref().is_none_or(|t| target_is(&r.target, t))
            && self.from.is_none_or(|f| r.at >= f)
            && self.to.is_none_or(|t| r.at < t)
    }
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// The outcome of refused calls, whose records are compacted and pruned.
pub const DENIED: &str = "denied";

/// New count and actions of a refused-call record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedUpdate {
    /// The record.
    pub seq: u64,
    /// Calls folded into it.
    pub count: u64,
    /// The actions they attempted, comma-separated.
    pub action: String,
}

/// Size of the audit table, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditSize {
    /// Records.
    pub records: u64,
    /// Bytes the records take in the store.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_actor_action_target_and_period() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let r = AuditRecord::auto(
            at("2026-03-02T10:00:00Z"),
            "domain.suspend",
            "a.example.kz",
            "x",
        );
        let f = |j: serde_json::Value| serde_json::from_value::<AuditFilter>(j).unwrap();
        assert!(f(serde_json::json!({})).matches(&r));
        assert!(f(serde_json::json!({"actor": "auto", "action": "domain.suspend"})).matches(&r));
        assert!(f(serde_json::json!({"action": "domain.*", "target": "A.example.kz"})).matches(&r));
        assert!(!f(serde_json::json!({"action": "domain.sus"})).matches(&r));
        let mut described = r.clone();
        described.target = "a.example.kz: owner: \"\" -> \"B\"".into();
        assert!(f(serde_json::json!({"target": "a.example.kz"})).matches(&described));
        assert!(!f(serde_json::json!({"target": "a.example"})).matches(&described));
        assert!(!f(serde_json::json!({"actor": "root"})).matches(&r));
        assert!(
            f(serde_json::json!({"from": "2026-03-02T10:00:00Z", "to": "2026-03-03T00:00:00Z"}))
                .matches(&r)
        );
        assert!(!f(serde_json::json!({"to": "2026-03-02T10:00:00Z"})).matches(&r));
        // Records written before reasons and changes were kept read as none.
        let old: AuditRecord = serde_json::from_str(
            r#"{"seq":1,"at":"2026-03-02T10:00:00Z","actor":"root","action":"domain.add","target":"a.example.kz","outcome":"ok"}"#,
        )
        .unwrap();
        assert_eq!((old.reason, old.before, old.count), (None, None, 1));
    }
}
