//! Applications: the list with due dates and working days left (overdue in
//! red, due today highlighted), approve and reject, and the intake form.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::super::api::may;
use std::collections::HashMap;

use axum::http::StatusCode;

use super::super::layout::{badge, csrf, failure, page, page_status, text, when};
use super::super::{Console, Ctx};
use super::{Params, param};

/// The applicant categories (the API's values) and their text keys.
const CATEGORIES: &[(&str, &str)] = &[
    ("state_body", "category.state_body"),
    ("local_government", "category.local_government"),
    ("state_legal_entity", "category.state_legal_entity"),
    ("quasi_public", "category.quasi_public"),
    (
        "critical_infrastructure",
        "category.critical_infrastructure",
    ),
];

fn category(ctx: &Ctx, v: &Value) -> String {
    let s = v.as_str().unwrap_or("");
    CATEGORIES
        .iter()
        .find(|(k, _)| *k == s)
        .map(|(_, key)| ctx.t(key).to_string())
        .unwrap_or_else(|| s.to_string())
}

/// The approve and reject forms of a pending application.
fn decide(ctx: &Ctx, id: &str) -> Markup {
    let approve = may(&ctx.caller, "POST", "/api/v1/applications/{id}/approve");
    let reject = may(&ctx.caller, "POST", "/api/v1/applications/{id}/reject");
    html! {
        @if approve {
            form.inline method="post" action={ "/console/applications/" (id) "/approve" } {
                (csrf(ctx))
                button type="submit" id={ "approve-" (id) } { (ctx.t("apps.approve")) }
            }
        }
        @if reject {
            form.inline method="post" action={ "/console/applications/" (id) "/reject" } {
                (csrf(ctx))
                label.visually-hidden for={ "reason-" (id) } { (ctx.t("apps.reject_reason")) }
                input id={ "reason-" (id) } type="text" name="reason" required placeholder=(ctx.t("apps.reject_reason"));
                button.danger type="submit" id={ "reject-" (id) } { (ctx.t("apps.reject")) }
            }
        }
    }
}

/// `GET /console/applications?status=`.
pub async fn list(State(c): State<Console>, ctx: Ctx, q: Params) -> Response {
    let status = match param(&q, "status") {
        "" => "pending",
        s => s,
    };
    let api_status = if status == "all" { "" } else { status };
    let r = c
        .call(&ctx)
        .run(
            "GET",
            "/api/v1/applications",
            &[],
            &[("status", api_status)],
            None,
        )
        .await;
    let statuses = ["pending", "approved", "rejected", "withdrawn", "all"];
    let body = html! {
        div.toolbar {
            form.filters method="get" action="/console/applications" {
                label for="status" { (ctx.t("apps.status")) }
                select #status name="status" {
                    @for s in statuses {
                        option value=(s) selected[s == status] {
                            @if s == "all" { (ctx.t("filter.all")) } @else { (badge_text(&ctx, s)) }
                        }
                    }
                }
                button type="submit" { (ctx.t("filter.apply")) }
            }
            @if may(&ctx.caller, "POST", "/api/v1/applications") {
                a.button href="/console/applications/new" { (ctx.t("apps.new")) }
            }
        }
        p.legend {
            span.key.overdue { (ctx.t("apps.overdue")) }
            " "
            span.key.due-today { (ctx.t("apps.due_today")) }
        }
        @match &r {
            Ok(Value::Array(list)) if list.is_empty() => p { (ctx.t("apps.none")) }
            Ok(Value::Array(list)) => {
                table #applications {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { (ctx.t("apps.domain")) }
                        th scope="col" { (ctx.t("apps.owner")) }
                        th scope="col" { (ctx.t("apps.category")) }
                        th scope="col" { (ctx.t("apps.received")) }
                        th scope="col" { (ctx.t("apps.due")) }
                        th scope="col" { (ctx.t("apps.days_left")) }
                        th scope="col" { (ctx.t("apps.status")) }
                        th scope="col" { (ctx.t("apps.decision")) }
                    } }
                    tbody {
                        @for a in list {
                            @let id = a["id"].to_string();
                            @let overdue = a["overdue"] == true;
                            @let today = !overdue && a["working_days_left"].as_i64() == Some(0);
                            tr id={ "app-" (id) } .overdue[overdue] .due-today[today] {
                                td { a href={ "/console/applications/" (id) } { (id) } }
                                th scope="row" { a href={ "/console/applications/" (id) } { (text(&a["domain"])) } }
                                td { (text(&a["owner"])) }
                                td { (category(&ctx, &a["category"])) }
                                td.nowrap { (text(&a["received_on"])) }
                                td.nowrap { (text(&a["decision_due"])) }
                                td { (days_left(&ctx, a)) }
                                td {
                                    (badge(&ctx, a["status"].as_str().unwrap_or("")))
                                    @if let Some(r) = a["reason"].as_str() { br; small { (r) } }
                                }
                                td {
                                    @if a["status"] == "pending" { (decide(&ctx, &id)) }
                                    @else { (text(&a["decided_by"])) " " (text(&a["decided_on"])) }
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
    page(
        &ctx,
        "/console/applications",
        ctx.t("nav.applications"),
        body,
    )
}

/// Working days left in words: a number, "due today" or "overdue by N".
pub fn days_left(ctx: &Ctx, a: &Value) -> String {
    match a["working_days_left"].as_i64() {
        Some(d) if a["overdue"] == true || d < 0 => {
            ctx.tf("apps.overdue_by", &[("n", &d.abs().to_string())])
        }
        Some(0) => ctx.t("apps.due_today").to_string(),
        Some(d) => d.to_string(),
        None => "—".to_string(),
    }
}

fn badge_text(ctx: &Ctx, status: &str) -> &'static str {
    match status {
        "approved" => ctx.t("status.approved"),
        "rejected" => ctx.t("status.rejected"),
        "withdrawn" => ctx.t("status.withdrawn"),
        _ => ctx.t("status.pending"),
    }
}

/// `GET /console/applications/new`: the intake form with the fields of an
/// application.
pub async fn intake(ctx: Ctx) -> Response {
    intake_form(&ctx, &HashMap::new(), None, StatusCode::OK)
}

/// The intake form filled with `values`, with the API's `error` when a
/// submission was refused (so nothing typed is lost).
pub fn intake_form(
    ctx: &Ctx,
    values: &HashMap<String, String>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let value = |id: &str| values.get(id).map(String::as_str).unwrap_or("");
    let field = |id: &'static str, key: &'static str, kind: &'static str, required: bool| {
        html! {
            div.field {
                label for=(id) { (ctx.t(key)) @if !required { " " span.hint { (ctx.t("form.optional")) } } }
                input id=(id) name=(id) type=(kind) required[required] value=(value(id));
            }
        }
    };
    let body = html! {
        @if let Some(e) = error {
            p.flash.error role="alert" { (ctx.t("error.action")) " " (e) }
        }
        form.intake method="post" action="/console/applications" {
            (csrf(ctx))
            fieldset {
                legend { (ctx.t("intake.form")) }
                (field("form_number", "intake.number", "text", true))
                (field("form_dated", "intake.dated", "date", true))
                div.field {
                    label for="form_channel" { (ctx.t("intake.channel")) }
                    select #form_channel name="form_channel" required {
                        @for (v, k) in [("portal", "intake.portal"), ("letter", "intake.letter")] {
                            option value=(v) selected[value("form_channel") == v] { (ctx.t(k)) }
                        }
                    }
                }
                (field("form_reference", "intake.reference", "text", true))
                (field("form_document", "intake.document", "text", false))
            }
            fieldset {
                legend { (ctx.t("intake.organisation")) }
                (field("domain", "apps.domain", "text", true))
                (field("owner", "apps.owner", "text", true))
                div.field {
                    label for="category" { (ctx.t("apps.category")) }
                    select #category name="category" required {
                        @for (v, k) in CATEGORIES { option value=(v) selected[value("category") == *v] { (ctx.t(k)) } }
                    }
                }
                (field("head", "intake.head", "text", true))
                (field("received_on", "apps.received", "date", false))
            }
            fieldset {
                legend { (ctx.t("intake.servers")) }
                div.field {
                    label for="servers" { (ctx.t("intake.servers_help")) }
                    textarea #servers name="servers" rows="3" required { (value("servers")) }
                }
                (field("inbound", "intake.inbound", "text", false))
            }
            fieldset {
                legend { (ctx.t("intake.contact")) }
                (field("contact_name", "contact.name", "text", true))
                (field("contact_email", "contact.email", "email", true))
                (field("office_phone", "contact.office_phone", "tel", true))
                (field("mobile_phone", "contact.mobile_phone", "tel", true))
                p.hint { (ctx.t("intake.phone_rule")) }
            }
            button type="submit" #submit-application { (ctx.t("intake.submit")) }
        }
    };
    page_status(
        ctx,
        status,
        "/console/applications",
        ctx.t("apps.new"),
        body,
    )
}

/// A check's verdict as a badge (ok, unknown, warning, problem).
pub fn verdict(ctx: &Ctx, v: &str) -> Markup {
    let key = match v {
        "ok" => "verdict.ok",
        "unknown" => "verdict.unknown",
        "warning" => "verdict.warning",
        _ => "verdict.problem",
    };
    html! { span class={ "badge verdict-" (v) } { (ctx.t(key)) } }
}

/// `GET /console/applications/{id}`: the application, the checks the API
/// runs on it (registry overlaps, server addresses, DNS), and the decision.
pub async fn show(State(c): State<Console>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let r = c
        .call(&ctx)
        .run("GET", "/api/v1/applications/{id}", &[&id], &[], None)
        .await;
    let a = match r {
        Ok(a) => a,
        Err(e) => {
            let title = ctx.t("nav.applications");
            return page_status(
                &ctx,
                e.status,
                "/console/applications",
                title,
                failure(&ctx, &e),
            );
        }
    };
    let title = ctx.tf(
        "apps.title",
        &[
            ("id", &a["id"].to_string()),
            ("domain", &text(&a["domain"])),
        ],
    );
    let body = html! {
        div.columns {
            div {
                dl.facts {
                    dt { (ctx.t("apps.status")) } dd { (badge(&ctx, a["status"].as_str().unwrap_or(""))) }
                    dt { (ctx.t("apps.owner")) } dd { (text(&a["owner"])) }
                    dt { (ctx.t("apps.category")) } dd { (category(&ctx, &a["category"])) }
                    dt { (ctx.t("intake.head")) } dd { (text(&a["head"])) }
                    dt { (ctx.t("domain.servers")) } dd { (text(&a["servers"])) }
                    dt { (ctx.t("domain.inbound")) } dd { (text(&a["inbound"])) }
                    dt { (ctx.t("apps.received")) } dd { (text(&a["received_on"])) }
                    dt { (ctx.t("apps.due")) } dd { (text(&a["decision_due"])) }
                    dt { (ctx.t("apps.days_left")) } dd { (days_left(&ctx, &a)) }
                    dt { (ctx.t("apps.submitted_by")) } dd { (text(&a["submitted_by"])) ", " (when(&a["created_at"])) }
                    @if !a["decided_by"].is_null() {
                        dt { (ctx.t("apps.decision")) } dd { (text(&a["decided_by"])) ", " (text(&a["decided_on"])) }
                    }
                    @if !a["reason"].is_null() {
                        dt { (ctx.t("form.reason")) } dd { (text(&a["reason"])) }
                    }
                    @if a["form"].is_object() {
                        @let f = &a["form"];
                        dt { (ctx.t("intake.number")) } dd #form-number { (text(&f["number"])) ", " (text(&f["dated"])) }
                        dt { (ctx.t("intake.channel")) } dd {
                            @match f["channel"].as_str() {
                                Some("letter") => (ctx.t("intake.letter")),
                                Some("portal") => (ctx.t("intake.portal")),
                                _ => (text(&f["channel"])),
                            }
                            ", " (text(&f["reference"]))
                        }
                        @if !f["document"].is_null() {
                            dt { (ctx.t("intake.document")) } dd { (text(&f["document"])) }
                        }
                    }
                }
                h2 { (ctx.t("domain.contacts")) }
                table {
                    thead { tr {
                        th scope="col" { (ctx.t("contact.name")) }
                        th scope="col" { (ctx.t("contact.email")) }
                        th scope="col" { (ctx.t("contact.phones")) }
                    } }
                    tbody {
                        @for ct in a["contacts"].as_array().into_iter().flatten() {
                            tr {
                                td { (text(&ct["name"])) }
                                td { (text(&ct["email"])) }
                                td { (text(&ct["office_phone"])) " / " (text(&ct["mobile_phone"])) }
                            }
                        }
                    }
                }
            }
            aside aria-label=(ctx.t("apps.decision")) {
                @if a["status"] == "pending" { (decide(&ctx, &a["id"].to_string())) }
            }
        }
        h2 { (ctx.t("apps.checks")) }
        table #checks {
            thead { tr {
                th scope="col" { (ctx.t("apps.check")) }
                th scope="col" { (ctx.t("apps.verdict")) }
                th scope="col" { (ctx.t("apps.found")) }
            } }
            tbody {
                @for ch in a["checks"].as_array().into_iter().flatten() {
                    tr {
                        td { code { (text(&ch["check"])) } }
                        td { (verdict(&ctx, ch["verdict"].as_str().unwrap_or(""))) }
                        td { (text(&ch["detail"])) }
                    }
                }
            }
        }
    };
    page(&ctx, "/console/applications", &title, body)
}
