//! The overview: what the duty desk looks at first: alarms, the queue,
//! deliveries per minute, domains by status, applications whose deadline
//! has come, suspensions in force, throttled scopes and the gateway's own
//! listings. Everything is read through the API: the queue counts, the
//! governor's status (deliveries, throttles, listings seen in refusals,
//! the blocklist watch) and the listings report (the registry's records).

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::super::api::CallError;
use super::super::chart::{self, Bars};
use super::super::layout::{age, failure, page, since_ms, text, when};
use super::super::{Console, Ctx};

/// Deliveries per minute over the last hour (from the governor's status):
/// the rates and a chart of the minutes.
fn deliveries(ctx: &Ctx, gov: &Result<Value, CallError>) -> Markup {
    let d = gov.as_ref().map(|g| &g["deliveries"]);
    let col = |d: &Value, k: &str| -> Vec<u64> {
        d[k].as_array()
            .map(|a| a.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default()
    };
    html! {
        @match d {
            Ok(d) if d.is_object() => {
                dl.stats {
                    dt { (ctx.t("overview.last_minute")) } dd #deliveries-minute { (d["delivered_last_minute"]) }
                    dt { (ctx.t("overview.per_minute_15")) } dd #deliveries-rate { (d["delivered_per_minute_15min"]) }
                    dt { (ctx.t("overview.delivered_hour")) } dd #deliveries-hour { (d["delivered_hour"]) }
                    dt { (ctx.t("overview.deferred_hour")) } dd { (col(d, "deferred").iter().sum::<u64>()) }
                    dt { (ctx.t("overview.failed_hour")) } dd { (col(d, "failed").iter().sum::<u64>()) }
                }
            }
            Ok(_) => p { "—" }
            Err(e) => (failure(ctx, e)),
        }
    }
}

/// The chart of deliveries per minute, last hour.
fn deliveries_chart(ctx: &Ctx, d: &Value) -> Markup {
    let col = |k: &str| -> Vec<u64> {
        d[k].as_array()
            .map(|a| a.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default()
    };
    let (ok, later, failed) = (col("delivered"), col("deferred"), col("failed"));
    let first = d["first_bucket"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let labels: Vec<String> = (0..ok.len())
        .map(|i| {
            first
                .map(|t| {
                    (t + chrono::Duration::minutes(i as i64))
                        .format("%H:%M")
                        .to_string()
                })
                .unwrap_or_default()
        })
        .collect();
    chart::bars(
        &chart::Frame {
            id: "deliveries-chart",
            title: ctx.t("overview.deliveries_chart"),
            labels: &labels,
            label_every: 10,
            height: 150.0,
            stacked: true,
        },
        &[
            Bars {
                name: ctx.t("status.delivered"),
                class: "bar-a",
                values: &ok,
            },
            Bars {
                name: ctx.t("status.deferred"),
                class: "bar-b",
                values: &later,
            },
            Bars {
                name: ctx.t("status.failed"),
                class: "bar-c",
                values: &failed,
            },
        ],
        None,
    )
}

/// Today in the registration's time zone (the reports' dates).
fn today(c: &Console) -> String {
    let offset = c.admin.cfg().registration.utc_offset.0;
    chrono::Utc::now()
        .with_timezone(&offset)
        .date_naive()
        .to_string()
}

/// `GET /console`.
pub async fn overview(State(c): State<Console>, ctx: Ctx) -> Response {
    let ctx = &ctx;
    let call = c.call(ctx);
    let counts = call
        .run("GET", "/api/v1/queue/counts", &[], &[], None)
        .await;
    let susp = call.run("GET", "/api/v1/suspensions", &[], &[], None).await;
    let apps = call
        .run(
            "GET",
            "/api/v1/applications",
            &[],
            &[("status", "pending")],
            None,
        )
        .await;
    let domains = call.run("GET", "/api/v1/domains", &[], &[], None).await;
    let gov = call.run("GET", "/api/v1/governor", &[], &[], None).await;
    let day = today(&c);
    let listings = call
        .run(
            "GET",
            "/api/v1/reports/{kind}",
            &["listings"],
            &[("from", &day), ("to", &day)],
            None,
        )
        .await;
    // The registry's listings of the gateway's addresses still open.
    let open: Vec<&Value> = listings
        .as_ref()
        .ok()
        .and_then(|r| r["rows"].as_array())
        .map(|rows| rows.iter().filter(|l| l["delisted_at"].is_null()).collect())
        .unwrap_or_default();
    let empty = Vec::new();
    let throttled = gov
        .as_ref()
        .ok()
        .and_then(|g| g["throttled"].as_array())
        .unwrap_or(&empty);
    let refusals = gov
        .as_ref()
        .ok()
        .and_then(|g| g["gateway_listings"].as_array())
        .unwrap_or(&empty);
    let pending: Vec<Value> = apps
        .as_ref()
        .ok()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let left = |a: &Value| a["working_days_left"].as_i64();
    let overdue: Vec<&Value> = pending
        .iter()
        .filter(|a| a["overdue"] == true || left(a).is_some_and(|d| d < 0))
        .collect();
    let today: Vec<&Value> = pending
        .iter()
        .filter(|a| a["overdue"] != true && left(a) == Some(0))
        .collect();
    // The queue alarms' thresholds ([alarms]), as the postmaster is alerted.
    let alarms = &c.admin.cfg().alarms;
    let mut alarm = Vec::new();
    if let Ok(q) = &counts {
        let total = q["total"].as_u64().unwrap_or(0);
        if total > alarms.queue_size as u64 {
            let (n, max) = (total.to_string(), alarms.queue_size.to_string());
            alarm.push(ctx.tf("overview.alarm_size", &[("n", &n), ("max", &max)]));
        }
        let oldest = q["oldest_arrival_ms"].as_u64().map(since_ms).unwrap_or(0);
        if oldest > alarms.queue_age.0.as_secs() as i64 {
            let max = age(alarms.queue_age.0.as_secs() as i64);
            alarm.push(ctx.tf(
                "overview.alarm_age",
                &[("age", &age(oldest)), ("max", &max)],
            ));
        }
    }
    // A listed gateway address: every agency's mail suffers.
    for l in &open {
        alarm.push(ctx.tf(
            "overview.alarm_listed",
            &[
                ("address", &text(&l["address"])),
                ("list", &text(&l["list"])),
            ],
        ));
    }
    // The shared store (PostgreSQL) out of reach: staff changes are refused
    // meanwhile, and the duty desk must know why.
    if let Ok(g) = &gov {
        let copy = &g["registry_local_copy"];
        if !copy.is_null() {
            alarm.push(ctx.tf(
                "overview.alarm_local_copy",
                &[
                    ("as_of", &when(&copy["as_of"])),
                    ("since", &when(&copy["since"])),
                ],
            ));
        }
        let pending = g["store_pending_writes"].as_u64().unwrap_or(0);
        if pending > 0 {
            alarm.push(ctx.tf(
                "overview.alarm_pending_writes",
                &[("n", &pending.to_string())],
            ));
        }
    }
    if !overdue.is_empty() {
        alarm.push(ctx.tf(
            "overview.alarm_overdue",
            &[("n", &overdue.len().to_string())],
        ));
    }
    let body = html! {
        section.alarms aria-labelledby="alarms-h" {
            h2 #alarms-h { (ctx.t("overview.alarms")) }
            @if alarm.is_empty() {
                p.flash.ok #alarms { (ctx.t("overview.no_alarms")) }
            } @else {
                ul.flash.error #alarms role="alert" {
                    @for a in &alarm { li { (a) } }
                }
            }
        }
        div.cards {
            section.card aria-labelledby="q-h" {
                h2 #q-h { (ctx.t("overview.queue")) }
                @match &counts {
                    Ok(q) => {
                        dl.stats {
                            dt { (ctx.t("queue.total")) } dd #queue-total { (q["total"]) }
                            dt { (ctx.t("queue.active")) } dd { (q["active"]) }
                            dt { (ctx.t("queue.deferred")) } dd { (q["deferred"]) }
                            dt { (ctx.t("queue.held")) } dd { a href="/console/queue?held=true" { (q["held"]) } }
                            dt { (ctx.t("queue.oldest")) }
                            dd {
                                @match q["oldest_arrival_ms"].as_u64() {
                                    Some(ms) => (age(since_ms(ms))),
                                    None => "—",
                                }
                            }
                        }
                    }
                    Err(e) => (failure(ctx, e)),
                }
            }
            section.card aria-labelledby="r-h" {
                h2 #r-h { (ctx.t("overview.deliveries")) }
                (deliveries(ctx, &gov))
            }
            section.card aria-labelledby="d-h" {
                h2 #d-h { (ctx.t("overview.domains")) }
                @match &domains {
                    Ok(Value::Array(list)) => {
                        dl.stats {
                            @for st in ["connected", "suspended", "disconnected"] {
                                dt { (super::super::layout::badge(ctx, st)) }
                                dd { (list.iter().filter(|d| d["status"] == st).count()) }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => (failure(ctx, e)),
                }
            }
            section.card aria-labelledby="a-h" {
                h2 #a-h { (ctx.t("overview.deadlines")) }
                dl.stats {
                    dt { (ctx.t("apps.overdue")) }
                    dd.overdue[!overdue.is_empty()] { (overdue.len()) }
                    dt { (ctx.t("apps.due_today")) }
                    dd { (today.len()) }
                    dt { (ctx.t("apps.pending")) }
                    dd { a href="/console/applications" { (pending.len()) } }
                }
            }
        }
        @if let Ok(g) = &gov {
            @if g["deliveries"].is_object() {
                section aria-labelledby="rc-h" {
                    h2 #rc-h { (ctx.t("overview.deliveries_per_minute")) }
                    (deliveries_chart(ctx, &g["deliveries"]))
                }
            }
        }
        @if let Err(e) = &apps { (failure(ctx, e)) }
        @if !overdue.is_empty() || !today.is_empty() {
            section aria-labelledby="due-h" {
                h2 #due-h { (ctx.t("overview.due_list")) }
                table {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { (ctx.t("apps.domain")) }
                        th scope="col" { (ctx.t("apps.owner")) }
                        th scope="col" { (ctx.t("apps.due")) }
                        th scope="col" { (ctx.t("apps.days_left")) }
                    } }
                    tbody {
                        @for a in overdue.iter().chain(today.iter()) {
                            tr.overdue[a["overdue"] == true].due-today[a["overdue"] != true] {
                                td { (a["id"]) }
                                td { (text(&a["domain"])) }
                                td { (text(&a["owner"])) }
                                td { (text(&a["decision_due"])) }
                                td { (super::applications::days_left(ctx, a)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="s-h" {
            h2 #s-h { (ctx.t("overview.suspensions")) }
            @match &susp {
                Ok(Value::Array(list)) if list.is_empty() => p { (ctx.t("susp.none")) }
                Ok(Value::Array(list)) => {
                    table {
                        thead { tr {
                            th scope="col" { (ctx.t("susp.scope")) }
                            th scope="col" { (ctx.t("susp.since")) }
                            th scope="col" { (ctx.t("susp.actor")) }
                            th scope="col" { (ctx.t("susp.reason")) }
                        } }
                        tbody {
                            @for s in list {
                                tr {
                                    td { (super::logs::scope_link(&s["scope"])) }
                                    td { (when(&s["started_at"])) }
                                    td { (text(&s["actor"])) }
                                    td { (text(&s["reason"])) }
                                }
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => (failure(ctx, e)),
            }
        }
        div.columns-even {
            section aria-labelledby="t-h" {
                h2 #t-h { (ctx.t("overview.throttled")) }
                @if let Err(e) = &gov { (failure(ctx, e)) }
                @if throttled.is_empty() {
                    p { (ctx.t("overview.none_throttled")) }
                } @else {
                    table #throttled {
                        thead { tr {
                            th scope="col" { (ctx.t("overview.scope")) }
                            th scope="col" { (ctx.t("overview.until")) }
                            th scope="col" { (ctx.t("overview.rule")) }
                        } }
                        tbody {
                            @for t in throttled {
                                tr {
                                    td { (super::logs::scope_link(&t["scope"])) }
                                    td { (when(&t["until"])) }
                                    td { (super::logs::rule_name(ctx, &t["last_step"]["rule"])) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="l-h" {
                h2 #l-h { (ctx.t("overview.listings")) }
                @if let Err(e) = &listings { (failure(ctx, e)) }
                @if open.is_empty() && refusals.is_empty() {
                    p { (ctx.t("overview.none_listed")) }
                }
                @if !open.is_empty() {
                    table #listings {
                        thead { tr {
                            th scope="col" { (ctx.t("overview.address")) }
                            th scope="col" { (ctx.t("overview.list")) }
                            th scope="col" { (ctx.t("overview.listed_since")) }
                            th scope="col" { (ctx.t("overview.seen_by")) }
                        } }
                        tbody {
                            @for l in &open {
                                tr {
                                    td { (text(&l["address"])) }
                                    td { (text(&l["list"])) br; small { (text(&l["code"])) } }
                                    td { (when(&l["listed_at"])) }
                                    td {
                                        @match l["source"].as_str() {
                                            Some("refusal") => (ctx.t("overview.seen_refusal")),
                                            Some("dnsbl") => (ctx.t("overview.seen_dnsbl")),
                                            _ => (text(&l["source"])),
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !refusals.is_empty() {
                    h3 { (ctx.t("overview.listing_refusals")) }
                    table #listing-refusals {
                        thead { tr {
                            th scope="col" { (ctx.t("overview.address")) }
                            th scope="col" { (ctx.t("overview.refusals")) }
                            th scope="col" { (ctx.t("overview.last_reply")) }
                        } }
                        tbody {
                            @for l in refusals {
                                tr {
                                    td { (text(&l["address"])) }
                                    td { (text(&l["refusals"])) }
                                    td { small { (when(&l["last_at"])) ", " (text(&l["last_domain"])) } br; (text(&l["last_reply"])) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(ctx, "/console", ctx.t("nav.overview"), body)
}
