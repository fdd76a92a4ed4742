//! The queue: the list with filters (held mail among them), and a
//! message's envelope with each recipient's status and the actions.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::super::api::{encode, may};
use super::super::layout::{age, badge, csrf, failure, page, since_ms, text, when_ms};
use super::super::{Console, Ctx};
use super::{Params, param};

/// What a held message's row offers: operation, the API route, text key.
const ROW_ACTIONS: [(&str, &str, &str, &str); 2] = [
    (
        "release",
        "POST",
        "/api/v1/queue/{id}/release",
        "queue.release",
    ),
    ("delete", "DELETE", "/api/v1/queue/{id}", "queue.delete"),
];

/// `GET /console/queue?domain=&sender=&state=&held=`.
pub async fn list(State(c): State<Console>, ctx: Ctx, q: Params) -> Response {
    let (domain, sender, state) = (param(&q, "domain"), param(&q, "sender"), param(&q, "state"));
    let held = param(&q, "held");
    let r = c
        .call(&ctx)
        .run(
            "GET",
            "/api/v1/queue",
            &[],
            &[
                ("domain", domain),
                ("sender", sender),
                ("state", state),
                ("held", held),
                ("limit", "500"),
            ],
            None,
        )
        .await;
    let body = html! {
        form.filters method="get" action="/console/queue" {
            label for="f-domain" { (ctx.t("queue.domain")) }
            input #f-domain type="text" name="domain" value=(domain);
            label for="f-sender" { (ctx.t("queue.sender")) }
            input #f-sender type="text" name="sender" value=(sender);
            label for="f-state" { (ctx.t("queue.state")) }
            select #f-state name="state" {
                option value="" selected[state.is_empty()] { (ctx.t("filter.all")) }
                @for s in ["active", "deferred", "held"] {
                    option value=(s) selected[s == state] { (badge_word(&ctx, s)) }
                }
            }
            button type="submit" { (ctx.t("filter.apply")) }
        }
        @match &r {
            Ok(Value::Array(list)) if list.is_empty() => p { (ctx.t("queue.empty")) }
            Ok(Value::Array(list)) => {
                table #queue {
                    thead { tr {
                        th scope="col" { (ctx.t("queue.id")) }
                        th scope="col" { (ctx.t("queue.age")) }
                        th scope="col" { (ctx.t("queue.sender")) }
                        th scope="col" { (ctx.t("queue.recipients")) }
                        th scope="col" { (ctx.t("queue.domain")) }
                        th scope="col" { (ctx.t("queue.attempts")) }
                        th scope="col" { (ctx.t("queue.held")) }
                        th scope="col" { (ctx.t("domain.actions")) }
                    } }
                    tbody {
                        @for e in list {
                            @let id = text(&e["id"]);
                            tr {
                                th scope="row" { a href={ "/console/queue/" (encode(&id)) } { code { (id) } } }
                                td { (age(since_ms(e["arrived_at_ms"].as_u64().unwrap_or(0)))) }
                                td { (text(&e["sender"])) }
                                td {
                                    @let rc = e["recipients"].as_array().map(Vec::len).unwrap_or(0);
                                    (text(&e["recipients"][0]["address"]))
                                    @if rc > 1 { " +" (rc - 1) }
                                }
                                td { (text(&e["domain"])) }
                                td { (text(&e["attempts"])) }
                                td { @if !e["held"].is_null() { (badge(&ctx, "held")) " " (text(&e["held"])) } }
                                td {
                                    @if !e["held"].is_null() {
                                        @for (op, method, template, key) in ROW_ACTIONS {
                                            @if may(&ctx.caller, method, template) {
                                                form.inline method="post" action={ "/console/queue/" (encode(&id)) "/" (op) } {
                                                    (csrf(&ctx))
                                                    input type="hidden" name="back" value="list";
                                                    button.danger[op == "delete"] type="submit" { (ctx.t(key)) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => (failure(&ctx, e)),
        }
    };
    page(&ctx, "/console/queue", ctx.t("nav.queue"), body)
}

fn badge_word(ctx: &Ctx, s: &str) -> &'static str {
    match s {
        "active" => ctx.t("status.active"),
        "deferred" => ctx.t("status.deferred"),
        _ => ctx.t("status.held"),
    }
}

/// `GET /console/queue/{id}?headers=true`: the headers are read only when
/// asked for (reading a message is audited, as over the API).
pub async fn show(
    State(c): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
    q: Params,
) -> Response {
    let call = c.call(&ctx);
    let r = call
        .run("GET", "/api/v1/queue/{id}", &[&id], &[], None)
        .await;
    let headers_route = "/api/v1/queue/{id}/message";
    let headers = if param(&q, "headers") == "true" && r.is_ok() {
        Some(
            call.run("GET", headers_route, &[&id], &[("part", "headers")], None)
                .await,
        )
    } else {
        None
    };
    let base = format!("/console/queue/{}", encode(&id));
    let op = |m: &str, t: &str| may(&ctx.caller, m, t);
    let body = html! {
        @match &r {
            Ok(e) => {
                section aria-labelledby="env-h" {
                    h2 #env-h { (ctx.t("queue.envelope")) }
                    dl.facts {
                        dt { (ctx.t("queue.sender")) } dd { (text(&e["sender"])) }
                        dt { (ctx.t("queue.client")) } dd { (text(&e["client_ip"])) " (" (text(&e["helo"])) ")" }
                        dt { "TLS" } dd { (text(&e["tls"])) }
                        dt { (ctx.t("queue.domain")) } dd { (text(&e["domain"])) }
                        dt { (ctx.t("queue.direction")) } dd { (text(&e["direction"])) }
                        dt { (ctx.t("queue.arrived")) } dd { (when_ms(e["arrived_at_ms"].as_u64().unwrap_or(0))) }
                        dt { (ctx.t("queue.size")) } dd { (text(&e["size"])) }
                        dt { (ctx.t("queue.attempts")) } dd { (text(&e["attempts"])) }
                        dt { (ctx.t("queue.next")) } dd { (when_ms(e["next_attempt_ms"].as_u64().unwrap_or(0))) }
                        dt { (ctx.t("queue.held")) } dd #held { (text(&e["held"])) }
                    }
                }
                section aria-labelledby="rc-h" {
                    h2 #rc-h { (ctx.t("queue.recipients")) }
                    table {
                        thead { tr {
                            th scope="col" { (ctx.t("queue.recipient")) }
                            th scope="col" { (ctx.t("queue.status")) }
                            th scope="col" { (ctx.t("queue.attempts")) }
                            th scope="col" { (ctx.t("queue.last_error")) }
                        } }
                        tbody {
                            @for rc in e["recipients"].as_array().into_iter().flatten() {
                                tr {
                                    td { (text(&rc["address"])) }
                                    td { (badge(&ctx, rc["status"].as_str().unwrap_or(""))) }
                                    td { (text(&rc["attempts"])) }
                                    td { (text(&rc["last_error"])) }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="hd-h" {
                    h2 #hd-h { (ctx.t("queue.headers")) }
                    @match &headers {
                        Some(Ok(h)) => {
                            pre #headers tabindex="0" { (text(&h["text"])) }
                            @if h["truncated"] == true { p.hint { (ctx.t("queue.truncated")) } }
                        }
                        Some(Err(e)) => (failure(&ctx, e)),
                        None if op("GET", headers_route) => {
                            p { a #show-headers href={ (base) "?headers=true" } { (ctx.t("queue.show_headers")) } " " span.hint { (ctx.t("queue.headers_audited")) } }
                        }
                        None => p.hint { (ctx.t("queue.headers_role")) },
                    }
                }
                div.actions {
                    @if e["held"].is_null() && op("POST", "/api/v1/queue/{id}/hold") {
                        form.inline method="post" action={ (base) "/hold" } {
                            (csrf(&ctx))
                            label.visually-hidden for="hold-reason" { (ctx.t("form.reason_optional")) }
                            input #hold-reason type="text" name="reason" placeholder=(ctx.t("form.reason_optional"));
                            button type="submit" { (ctx.t("queue.hold")) }
                        }
                    }
                    @if !e["held"].is_null() && op("POST", "/api/v1/queue/{id}/release") {
                        form.inline method="post" action={ (base) "/release" } {
                            (csrf(&ctx))
                            button type="submit" { (ctx.t("queue.release")) }
                        }
                    }
                    @if op("POST", "/api/v1/queue/{id}/retry") {
                        form.inline method="post" action={ (base) "/retry" } {
                            (csrf(&ctx))
                            button type="submit" { (ctx.t("queue.retry")) }
                        }
                    }
                    @if op("DELETE", "/api/v1/queue/{id}") {
                        form.inline method="post" action={ (base) "/delete" } {
                            (csrf(&ctx))
                            button.danger type="submit" { (ctx.t("queue.delete")) }
                        }
                    }
                }
            }
            Err(e) => (failure(&ctx, e)),
        }
    };
    page(
        &ctx,
        "/console/queue",
        &format!("{} {id}", ctx.t("queue.message")),
        body,
    )
}
