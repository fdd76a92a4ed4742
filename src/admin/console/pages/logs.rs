//! The records staff search: suspensions (current and history, with their
//! evidence), sessions (the connection log) and the audit log.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::super::api::{encode, may};
use super::super::chart::{self, Bars, Figure, Limit};
use super::super::layout::{csrf, failure, page, text, when};
use super::super::{Console, Ctx};
use super::{Params, param};

/// The governor's rules and the figures of its evidence, with their text keys.
const RULES: &[(&str, &str)] = &[
    ("manual", "rule.manual"),
    ("staff", "rule.staff"),
    ("listing", "rule.listing"),
    ("novelty", "rule.novelty"),
    ("unknown_recipients", "rule.unknown_recipients"),
    ("rejections", "rule.rejections"),
    ("senders_suspended", "rule.senders_suspended"),
];

const EVIDENCE: &[(&str, &str)] = &[
    ("window_seconds", "ev.window_seconds"),
    ("unknown", "ev.unknown"),
    ("outcomes", "ev.outcomes"),
    ("rejected", "ev.rejected"),
    ("spam", "ev.spam"),
    ("share", "ev.share"),
    ("unknown_share", "ev.unknown_share"),
    ("unknown_min", "ev.unknown_min"),
    ("rejection_share", "ev.rejection_share"),
    ("rejection_min", "ev.rejection_min"),
    ("new_recipients_5min", "ev.new_recipients_5min"),
    ("new_recipients_hour", "ev.new_recipients_hour"),
    (
        "deferred_new_recipients_5min",
        "ev.deferred_new_recipients_5min",
    ),
    (
        "deferred_new_recipients_hour",
        "ev.deferred_new_recipients_hour",
    ),
    ("recipients_hour", "ev.recipients_hour"),
    ("destination_domains_hour", "ev.destination_domains_hour"),
    ("allowance_5min", "ev.allowance_5min"),
    ("allowance_hour", "ev.allowance_hour"),
    ("allowance_basis", "ev.allowance_basis"),
    ("peak_new_recipients_5min", "ev.peak_new_recipients_5min"),
    ("peak_new_recipients_hour", "ev.peak_new_recipients_hour"),
    ("active_hours", "ev.active_hours"),
    ("novelty_factor", "ev.novelty_factor"),
    ("escalate_factor", "ev.escalate_factor"),
    ("escalated", "ev.escalated"),
    ("suspended_senders", "ev.suspended_senders"),
    ("limit", "ev.limit"),
];

/// The text of `code` in `table`, else the code with spaces for underscores.
fn named(ctx: &Ctx, table: &[(&str, &'static str)], code: &str) -> String {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, key)| ctx.t(key).to_string())
        .unwrap_or_else(|| code.replace('_', " "))
}

/// A governor rule in words.
pub fn rule_name(ctx: &Ctx, rule: &Value) -> String {
    match rule.as_str() {
        Some(r) => named(ctx, RULES, r),
        None => "—".into(),
    }
}

/// A suspension's scope, a domain linked to its page.
pub fn scope_link(scope: &Value) -> Markup {
    let v = text(&scope["value"]);
    html! {
        @if scope["kind"] == "domain" {
            a href={ "/console/domains/" (encode(&v)) } { (v) }
        } @else {
            (v)
        }
    }
}

/// A suspension's evidence in words: the traffic figures and the limits
/// they were compared with, one line each.
fn evidence(ctx: &Ctx, ev: &Value) -> Markup {
    html! {
        @if let Some(m) = ev.as_object().filter(|m| !m.is_empty()) {
            details {
                summary { (ctx.t("susp.evidence")) }
                ul.evidence {
                    @for (k, v) in m {
                        @if !["scope", "rule", "series", "steps"].contains(&k.as_str()) {
                            li { (named(ctx, EVIDENCE, k)) ": " strong { (text(v)) } }
                        }
                    }
                }
            }
        }
    }
}

/// The figures of a rule's evidence and the limits they are held to.
const AGAINST: &[(&str, &str)] = &[
    ("new_recipients_5min", "allowance_5min"),
    ("new_recipients_hour", "allowance_hour"),
    ("unknown", "unknown_min"),
    ("rejected", "rejection_min"),
];

/// The chart of the traffic that tripped a rule: the scope's last hour in
/// 5-minute buckets (recipients, never-seen recipients, refusals) against
/// its allowance, when the record keeps that series, and the figures of
/// the evidence against their limits. Nothing for a staff suspension.
pub fn trip_chart(ctx: &Ctx, rec: &Value) -> Markup {
    let ev = &rec["evidence"];
    let id = format!("chart-{}", rec["id"].as_u64().unwrap_or(0));
    let scope = text(&rec["scope"]["value"]);
    let series = ev.get("series").filter(|s| s.is_object());
    let col = |s: &Value, k: &str| -> Vec<u64> {
        s[k].as_array()
            .map(|a| a.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default()
    };
    let mut figures: Vec<Figure<'_>> = AGAINST
        .iter()
        .filter_map(|(fig, lim)| {
            Some(Figure {
                name: ctx.t(EVIDENCE.iter().find(|(c, _)| c == fig)?.1),
                value: ev[*fig].as_f64()?,
                limit: ev[*lim].as_f64()?,
                unit: "",
            })
        })
        .collect();
    let (share_name, share_limit) = match ev["rule"].as_str() {
        Some("unknown_recipients") => ("chart.share_unknown", ev["unknown_share"].as_f64()),
        Some("rejections") => ("chart.share_rejected", ev["rejection_share"].as_f64()),
        _ => ("ev.share", None),
    };
    if let (Some(share), Some(limit)) = (ev["share"].as_f64(), share_limit) {
        figures.push(Figure {
            name: ctx.t(share_name),
            value: (share * 1000.0).round() / 10.0,
            limit: (limit * 1000.0).round() / 10.0,
            unit: "%",
        });
    }
    html! {
        @if let Some(s) = series {
            @let first = s["first_bucket"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            @let step = s["bucket_seconds"].as_i64().unwrap_or(300);
            @let (rcpt, new, rej) = (col(s, "recipients"), col(s, "new_recipients"), col(s, "rejected"));
            @let labels: Vec<String> = (0..rcpt.len()).map(|i| first
                .map(|t| (t + chrono::Duration::seconds(step * i as i64)).format("%H:%M").to_string())
                .unwrap_or_default()).collect();
            @let title = ctx.tf("chart.trip_title", &[("scope", &scope)]);
            (chart::bars(
                &chart::Frame { id: &id, title: &title, labels: &labels, label_every: 2, height: 200.0, stacked: false },
                &[
                    Bars { name: ctx.t("chart.recipients"), class: "bar-a", values: &rcpt },
                    Bars { name: ctx.t("chart.new_recipients"), class: "bar-b", values: &new },
                    Bars { name: ctx.t("chart.rejected"), class: "bar-c", values: &rej },
                ],
                ev["allowance_5min"].as_f64().map(|v| Limit { name: ctx.t("ev.allowance_5min"), value: v }),
            ))
        }
        @if !figures.is_empty() {
            (chart::figures(
                &format!("{id}-figures"),
                &ctx.tf("chart.figures_title", &[("scope", &scope)]),
                ctx.t("chart.limit"),
                &figures,
            ))
        }
    }
}

/// The restore form of a suspended sender (its held mail released or deleted).
fn restore_sender(ctx: &Ctx, address: &str, id: u64) -> Markup {
    html! {
        form.inline method="post" action="/console/senders/restore" {
            (csrf(ctx))
            input type="hidden" name="address" value=(address);
            label.visually-hidden for={ "held-" (id) } { (ctx.t("domain.held_mail")) }
            select id={ "held-" (id) } name="held_mail" {
                option value="release" { (ctx.t("domain.held_release")) }
                option value="delete" { (ctx.t("domain.held_delete")) }
            }
            button type="submit" id={ "restore-" (id) } { (ctx.t("domain.restore")) }
        }
    }
}

/// The form that suspends one sender address.
fn suspend_sender(ctx: &Ctx) -> Markup {
    html! {
        details.suspend-sender {
            summary { (ctx.t("susp.suspend_sender")) }
            form.filters method="post" action="/console/senders/suspend" {
                (csrf(ctx))
                label for="sender-address" { (ctx.t("susp.address")) }
                input #sender-address type="email" name="address" required;
                label for="sender-reason" { (ctx.t("form.reason")) }
                input #sender-reason type="text" name="reason" required size="40";
                button.danger type="submit" #suspend-sender { (ctx.t("domain.suspend")) }
            }
        }
    }
}

/// The rows of suspension records.
pub fn suspension_table(ctx: &Ctx, list: &[&Value]) -> Markup {
    html! {
        table.suspensions {
            thead { tr {
                th scope="col" { (ctx.t("susp.scope")) }
                th scope="col" { (ctx.t("susp.since")) }
                th scope="col" { (ctx.t("susp.actor")) }
                th scope="col" { (ctx.t("susp.reason")) }
                th scope="col" { (ctx.t("susp.restored")) }
            } }
            tbody {
                @for s in list {
                    tr {
                        td { (scope_link(&s["scope"])) }
                        td { (when(&s["started_at"])) }
                        td {
                            (text(&s["actor"]))
                            @if s["rule"] != "manual" { br; small { (named(ctx, RULES, s["rule"].as_str().unwrap_or(""))) } }
                        }
                        td { (text(&s["reason"])) (evidence(ctx, &s["evidence"])) }
                        td {
                            // A Value (not a Map) so that a missing field reads as null.
                            @match Some(&s["restored"]).filter(|r| r.is_object()) {
                                Some(r) => {
                                    (when(&r["at"])) ", " (text(&r["by"]))
                                    br;
                                    small {
                                        (ctx.t("susp.held_mail")) ": "
                                        @match r["held_mail"].as_str() {
                                            Some("released") => (ctx.t("susp.released")),
                                            Some("deleted") => (ctx.t("susp.deleted")),
                                            _ => (text(&r["held_mail"])),
                                        }
                                    }
                                    @if let Some(why) = r["reason"].as_str() { br; small { (why) } }
                                }
                                None => {
                                    strong { (ctx.t("susp.in_force")) }
                                    @if s["scope"]["kind"] == "sender" && may(&ctx.caller, "POST", "/api/v1/senders/{address}/restore") {
                                        br;
                                        (restore_sender(ctx, &text(&s["scope"]["value"]), s["id"].as_u64().unwrap_or(0)))
                                    }
                                }
                            }
                        }
                    }
                    @let ch = trip_chart(ctx, s);
                    @if !ch.0.is_empty() {
                        tr.chart-row { td colspan="5" { (ch) } }
                    }
                }
            }
        }
    }
}

/// `GET /console/suspensions?history=true`.
pub async fn suspensions(State(c): State<Console>, ctx: Ctx, q: Params) -> Response {
    let history = param(&q, "history") == "true";
    let r = c
        .call(&ctx)
        .run(
            "GET",
            "/api/v1/suspensions",
            &[],
            &[("history", if history { "true" } else { "" })],
            None,
        )
        .await;
    // Newest first.
    let mut rows: Vec<&Value> = r
        .as_ref()
        .ok()
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    rows.sort_by(|a, b| text(&b["started_at"]).cmp(&text(&a["started_at"])));
    let body = html! {
        @if may(&ctx.caller, "POST", "/api/v1/senders/{address}/suspend") {
            (suspend_sender(&ctx))
        }
        p.tabs {
            @if history {
                a href="/console/suspensions" { (ctx.t("susp.current")) } " · " strong { (ctx.t("susp.history")) }
            } @else {
                strong { (ctx.t("susp.current")) } " · " a href="/console/suspensions?history=true" { (ctx.t("susp.history")) }
            }
        }
        @match &r {
            Ok(_) if rows.is_empty() => p { (ctx.t("susp.none")) }
            Ok(_) => (suspension_table(&ctx, &rows)),
            Err(e) => (failure(&ctx, e)),
        }
    };
    page(&ctx, "/console/suspensions", ctx.t("nav.suspensions"), body)
}

/// The rows of connection-log records.
pub fn session_table(ctx: &Ctx, list: &[Value]) -> Markup {
    html! {
        @if list.is_empty() {
            p { (ctx.t("sessions.none")) }
        } @else {
            table.sessions {
                thead { tr {
                    th scope="col" { (ctx.t("sessions.started")) }
                    th scope="col" { (ctx.t("sessions.peer")) }
                    th scope="col" { "EHLO" }
                    th scope="col" { "TLS" }
                    th scope="col" { (ctx.t("sessions.domains")) }
                    th scope="col" { (ctx.t("sessions.messages")) }
                    th scope="col" { (ctx.t("sessions.refusals")) }
                    th scope="col" { (ctx.t("sessions.close")) }
                } }
                tbody {
                    @for s in list {
                        tr {
                            td { (when(&s["started_at"])) }
                            td { (text(&s["peer"])) }
                            td { (text(&s["ehlo"])) }
                            td { (text(&s["tls"])) }
                            td { (text(&s["domains"])) }
                            td { (text(&s["messages"])) }
                            td {
                                @for r in s["refusals"].as_array().into_iter().flatten() {
                                    div { code { (text(&r["command"])) } " " (text(&r["code"])) " " (text(&r["text"])) }
                                }
                            }
                            td { (text(&s["close"])) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/sessions?domain=&ip=&since=&limit=` (`since` in UTC).
pub async fn sessions(State(c): State<Console>, ctx: Ctx, q: Params) -> Response {
    let (domain, ip, since) = (param(&q, "domain"), param(&q, "ip"), param(&q, "since"));
    let limit = match param(&q, "limit") {
        "" => "100",
        l => l,
    };
    // A `datetime-local` field's value (UTC, as the console shows times).
    let since_utc = match since {
        "" => String::new(),
        s if s.len() == 16 => format!("{s}:00Z"),
        s => s.to_string(),
    };
    let r = c
        .call(&ctx)
        .run(
            "GET",
            "/api/v1/connections",
            &[],
            &[
                ("domain", domain),
                ("ip", ip),
                ("since", &since_utc),
                ("limit", limit),
            ],
            None,
        )
        .await;
    let body = html! {
        form.filters method="get" action="/console/sessions" role="search" {
            label for="s-domain" { (ctx.t("queue.domain")) }
            input #s-domain type="text" name="domain" value=(domain);
            label for="s-ip" { (ctx.t("sessions.ip")) }
            input #s-ip type="text" name="ip" value=(ip);
            label for="s-since" { (ctx.t("sessions.since")) }
            input #s-since type="datetime-local" name="since" value=(since);
            label for="s-limit" { (ctx.t("filter.limit")) }
            input #s-limit type="number" min="1" max="10000" name="limit" value=(limit);
            button type="submit" { (ctx.t("filter.apply")) }
        }
        @match &r {
            Ok(Value::Array(list)) => (session_table(&ctx, list)),
            Ok(_) => {}
            Err(e) => (failure(&ctx, e)),
        }
    };
    page(&ctx, "/console/sessions", ctx.t("nav.sessions"), body)
}

/// `GET /console/audit?actor=&action=&target=&from=&to=&limit=`: the
/// filters are the API's (an action family as `domain.`; dates are local
/// days), so they search the whole trail, not the newest records only.
pub async fn audit(State(c): State<Console>, ctx: Ctx, q: Params) -> Response {
    let (actor, action, target) = (param(&q, "actor"), param(&q, "action"), param(&q, "target"));
    let (from, to) = (param(&q, "from"), param(&q, "to"));
    let limit = match param(&q, "limit") {
        "" => "200",
        l => l,
    };
    let r = c
        .call(&ctx)
        .run(
            "GET",
            "/api/v1/audit",
            &[],
            &[
                ("actor", actor),
                ("action", action),
                ("target", target),
                ("from", from),
                ("to", to),
                ("limit", limit),
            ],
            None,
        )
        .await;
    let body = html! {
        form.filters method="get" action="/console/audit" role="search" {
            label for="a-actor" { (ctx.t("audit.actor")) }
            input #a-actor type="text" name="actor" value=(actor) size="10";
            label for="a-action" { (ctx.t("audit.action")) }
            input #a-action type="text" name="action" value=(action) size="14" placeholder="domain.";
            label for="a-target" { (ctx.t("audit.target")) }
            input #a-target type="text" name="target" value=(target) size="16";
            label for="a-from" { (ctx.t("filter.from")) }
            input #a-from type="date" name="from" value=(from);
            label for="a-to" { (ctx.t("filter.to")) }
            input #a-to type="date" name="to" value=(to);
            label for="a-limit" { (ctx.t("filter.limit")) }
            input #a-limit type="number" min="1" max="10000" name="limit" value=(limit);
            button type="submit" { (ctx.t("filter.apply")) }
        }
        @match &r {
            Ok(Value::Array(list)) if list.is_empty() => p { (ctx.t("audit.none")) }
            Ok(Value::Array(list)) => {
                table #audit {
                    thead { tr {
                        th scope="col" { (ctx.t("audit.at")) }
                        th scope="col" { (ctx.t("audit.actor")) }
                        th scope="col" { (ctx.t("audit.action")) }
                        th scope="col" { (ctx.t("audit.target")) }
                        th scope="col" { (ctx.t("audit.client")) }
                        th scope="col" { (ctx.t("audit.outcome")) }
                    } }
                    tbody {
                        @for a in list {
                            tr {
                                td { (when(&a["at"])) }
                                td { (text(&a["actor"])) }
                                td { code { (text(&a["action"])) } }
                                td { (text(&a["target"])) }
                                td { (text(&a["client"])) }
                                td { (text(&a["outcome"])) @if a["count"].as_u64().unwrap_or(1) > 1 { " ×" (a["count"]) } }
                            }
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => (failure(&ctx, e)),
        }
    };
    page(&ctx, "/console/audit", ctx.t("nav.audit"), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::console::i18n::Lang;

    #[test]
    fn every_rule_and_evidence_figure_has_words_in_each_language() {
        for (code, key) in RULES.iter().chain(EVIDENCE) {
            for l in Lang::ALL {
                assert_ne!(l.t(key), *key, "{l:?}: {code}");
            }
        }
    }
}
