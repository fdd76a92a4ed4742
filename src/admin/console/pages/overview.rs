//! The overview: what the duty desk looks at first (queue, suspensions,
//! applications whose deadline has come, domains by status).

use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::super::layout::{age, failure, page, since_ms, text, when};
use super::super::{Console, Ctx};

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
    let body = html! {
        @for a in &alarm {
            p.flash.error role="alert" { (a) }
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
    };
    page(ctx, "/console", ctx.t("nav.overview"), body)
}
