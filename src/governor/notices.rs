//! The governor's notices (warning, throttle, suspension, restore, a
//! listed gateway address): which template each is and the values it gets.
//! The words are in `templates/notices/` (`governor_*`, `scope_*`,
//! `gateway_listed`), the advice by rule in `governor_advice`.

use serde_json::json;

use crate::config::Config;
use crate::model::suspensions::{Scope, SuspensionRecord};
use crate::notify::notices::{Text, local_time};

use super::detector::Trip;
use super::settings::Step;

/// The evidence as "name: value" lines; the steps taken, one a line, in
/// local time. The names stay as recorded, in every language.
fn evidence_text(cfg: &Config, v: &serde_json::Value) -> String {
    let Some(m) = v.as_object() else {
        return serde_json::to_string_pretty(v).unwrap_or_default();
    };
    let mut out = String::new();
    for (k, v) in m {
        if k == "steps" || k == "series" {
            continue;
        }
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("  {}: {v}\n", k.replace('_', " ")));
    }
    if let Some(steps) = m.get("steps").and_then(|s| s.as_array()) {
        out.push_str("  steps so far:\n");
        for s in steps {
            let at = s["at_ms"]
                .as_u64()
                .map(|ms| {
                    super::clock::utc(ms)
                        .with_timezone(&cfg.registration.utc_offset.0)
                        .format("%Y-%m-%d %H:%M:%S %:z")
                        .to_string()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "    {at}  {} ({})\n",
                s["step"].as_str().unwrap_or("?"),
                s["rule"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

/// The scope's kind and name, which the `scope` part words per language
/// (`sender X`, `отправителя X`, `X (жіберуші)`).
fn scope_vars(scope: &Scope, vars: &mut serde_json::Value) {
    let (kind, name) = match scope {
        Scope::Domain(d) => ("domain", d.to_string()),
        Scope::Sender(s) => ("sender", s.clone()),
    };
    vars["scope_kind"] = kind.into();
    vars["scope_name"] = name.into();
}

/// A notice about `scope`, its `scope` value worded per language.
fn scoped(name: &'static str, scope: &Scope, mut vars: serde_json::Value) -> Text {
    scope_vars(scope, &mut vars);
    Text::new(name, vars).with_part("scope")
}

/// A rule tripped and the scope was warned or throttled.
pub fn early_step(cfg: &Config, scope: &Scope, step: Step, trip: &Trip) -> Text {
    scoped(
        "governor_warning",
        scope,
        json!({
            "throttled": step == Step::Throttle,
            "throttle_minutes": cfg.governor.throttle_duration.0.as_secs().div_ceil(60),
            "rule": trip.rule,
            "summary": trip.summary,
            "evidence": evidence_text(cfg, &trip.evidence),
        }),
    )
    .with_part("governor_advice")
}

/// A scope was suspended automatically.
pub fn suspended(cfg: &Config, rec: &SuspensionRecord) -> Text {
    let restore = match &rec.scope {
        Scope::Domain(d) => format!("ugem domain restore {d}"),
        Scope::Sender(s) => format!("ugem sender restore {s}"),
    };
    scoped(
        "scope_suspended",
        &rec.scope,
        json!({
            "since": local_time(cfg, rec.started_at),
            "id": rec.id,
            "rule": rec.rule,
            "reason": rec.reason,
            "evidence": evidence_text(cfg, &rec.evidence),
            "expires": rec.expires_at.map(|t| local_time(cfg, t)),
            "restore": restore,
        }),
    )
    .with_part("governor_advice")
}

/// A suspension ended.
pub fn restored(cfg: &Config, rec: &SuspensionRecord) -> Text {
    let (by, why, held) = match &rec.restored {
        Some(r) => (
            r.by.clone(),
            r.reason.clone().unwrap_or_else(|| "-".into()),
            r.held_mail.clone(),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    scoped(
        "scope_restored",
        &rec.scope,
        json!({
            "id": rec.id,
            "rule": rec.rule,
            "since": local_time(cfg, rec.started_at),
            "automatic": by == "auto",
            "by": by,
            "why": why,
            "held": held,
        }),
    )
}

/// A remote server refused mail because one of the gateway's own addresses
/// is on a blocklist: for the postmaster, whatever domain was sending.
pub fn gateway_listed(
    _cfg: &Config,
    address: std::net::IpAddr,
    reply: &str,
    domain: Option<&str>,
) -> Text {
    Text::new(
        "gateway_listed",
        json!({
            "address": address.to_string(),
            "reply": reply,
            "domain": domain,
        }),
    )
}

/// The blocklist watch found a gateway address listed: for the postmaster.
pub fn blocklist_listed(cfg: &Config, l: &crate::model::listings::GatewayListing) -> Text {
    Text::new(
        "blocklist_listed",
        json!({
            "address": l.address.to_string(),
            "zone": l.list,
            "code": l.code,
            "meaning": l.meaning,
            "at": local_time(cfg, l.at),
            "page": super::blocklists::lookup_page(&l.list),
        }),
    )
}

/// A listing the blocklist watch had found is gone: for the postmaster.
pub fn blocklist_delisted(cfg: &Config, l: &crate::model::listings::GatewayListing) -> Text {
    Text::new(
        "blocklist_delisted",
        json!({
            "address": l.address.to_string(),
            "zone": l.list,
            "code": l.code,
            "meaning": l.meaning,
            "from": local_time(cfg, l.at),
            "until": l.delisted_at.map(|d| local_time(cfg, d)).unwrap_or_else(|| "-".into()),
        }),
    )
}

/// A blocklist refuses the watch's queries (public resolver, no
/// registration, too many queries): for the postmaster, once a day per list.
pub fn blocklist_refused(_cfg: &Config, zone: &str, why: &str) -> Text {
    Text::new("blocklist_refused", json!({ "zone": zone, "why": why }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::language::Lang;
    use crate::notify::render::tests::check_all_languages;
    use crate::store::contract;

    #[test]
    fn governor_notices_render_in_every_language_with_the_advice() {
        let cfg = Config::default();
        let trip = Trip {
            rule: "novelty",
            summary: "40 new recipients in 5 minutes".into(),
            evidence: serde_json::json!({
                "new_recipients": 40,
                "steps": [{"at_ms": 1_772_400_000_000u64, "step": "warn", "rule": "novelty"}],
            }),
        };
        let scope = Scope::Sender("bot@agency.example.kz".into());
        check_all_languages(
            &early_step(&cfg, &scope, Step::Throttle, &trip),
            &[
                (Lang::Kk, "құпиясөз"),
                (Lang::Ru, "пароля"),
                (Lang::En, "stolen password"),
                (Lang::En, "new recipients: 40"),
                (Lang::Kk, "new recipients: 40"),
            ],
        );
        check_all_languages(
            &early_step(&cfg, &scope, Step::Warn, &trip),
            &[
                (Lang::Kk, "әдеттен тыс"),
                (Lang::Ru, "необычный"),
                (Lang::En, "unusual"),
            ],
        );
        let mut rec = contract::suspension(scope.clone());
        rec.rule = "rejections".into();
        rec.expires_at = Some(chrono::Utc::now());
        check_all_languages(
            &suspended(&cfg, &rec),
            &[
                (Lang::Kk, "тоқтатылды"),
                (Lang::Ru, "приостановлена"),
                (Lang::En, "suspended"),
                (Lang::En, "refused a large share"),
                (
                    Lang::En,
                    "Mail gateway: sender bot@agency.example.kz suspended (rejections)",
                ),
                (
                    Lang::Ru,
                    "отправка отправителя bot@agency.example.kz приостановлена",
                ),
                (
                    Lang::Kk,
                    "bot@agency.example.kz (жіберуші) үшін жіберу тоқтатылды",
                ),
            ],
        );
        rec.restored = Some(contract::restoration("auto"));
        check_all_languages(
            &restored(&cfg, &rec),
            &[
                (Lang::Kk, "автоматты"),
                (Lang::Ru, "автоматически"),
                (Lang::En, "automatically"),
            ],
        );
        check_all_languages(
            &gateway_listed(&cfg, "203.0.113.25".parse().unwrap(), "554 listed", None),
            &[
                (Lang::Kk, "қара тізім"),
                (Lang::Ru, "чёрный список"),
                (Lang::En, "the gateway itself"),
            ],
        );
        let mut l = crate::model::listings::GatewayListing {
            id: 1,
            at: "2026-03-01T05:00:00Z".parse().unwrap(),
            address: "203.0.113.25".parse().unwrap(),
            list: "zen.spamhaus.org".into(),
            code: "127.0.0.2".into(),
            meaning: "SBL".into(),
            source: "dnsbl".into(),
            last_seen: None,
            delisted_at: None,
        };
        check_all_languages(
            &blocklist_listed(&cfg, &l),
            &[
                (Lang::Kk, "zen.spamhaus.org тізіміне"),
                (Lang::Ru, "в список zen.spamhaus.org"),
                (Lang::En, "https://check.spamhaus.org/"),
            ],
        );
        l.delisted_at = Some("2026-03-02T05:00:00Z".parse().unwrap());
        check_all_languages(
            &blocklist_delisted(&cfg, &l),
            &[
                (
                    Lang::Kk,
                    "2026-03-01 10:00 +05:00 – 2026-03-02 10:00 +05:00",
                ),
                (Lang::Ru, "исключён"),
                (Lang::En, "no longer listed"),
            ],
        );
        check_all_languages(
            &blocklist_refused(&cfg, "b.barracudacentral.org", "REFUSED"),
            &[
                (Lang::Kk, "b.barracudacentral.org"),
                (Lang::Ru, "резолвер"),
                (Lang::En, "REFUSED"),
            ],
        );
    }
}
