//! Domains: the list with search, and a domain's page with its servers,
//! contacts, limits, suspension history, recent sessions and actions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::super::api::{encode, may};
use super::super::layout::{badge, csrf, failure, page, page_status, text, when};
use super::super::{Console, Ctx};
use super::{Params, param};

/// `GET /console/domains?q=`.
pub async fn list(State(c): State<Console>, ctx: Ctx, q: Params) -> Response {
    let needle = param(&q, "q").to_lowercase();
    let r = c
        .call(&ctx)
        .run("GET", "/api/v1/domains", &[], &[], None)
        .await;
    let body = html! {
        form.filters method="get" action="/console/domains" role="search" {
            label for="q" { (ctx.t("domains.search")) }
            input #q type="search" name="q" value=(needle);
            button type="submit" { (ctx.t("filter.apply")) }
        }
        @match &r {
            Ok(Value::Array(all)) => {
                @let shown: Vec<&Value> = all.iter().filter(|d| needle.is_empty()
                    || text(&d["name"]).contains(&needle)
                    || text(&d["owner"]).to_lowercase().contains(&needle)).collect();
                p.count { (ctx.tf("domains.count", &[("n", &shown.len().to_string()), ("total", &all.len().to_string())])) }
                table #domains {
                    thead { tr {
                        th scope="col" { (ctx.t("domain.name")) }
                        th scope="col" { (ctx.t("domain.owner")) }
                        th scope="col" { (ctx.t("domain.status")) }
                        th scope="col" { (ctx.t("domain.servers")) }
                        th scope="col" { (ctx.t("domain.since")) }
                    } }
                    tbody {
                        @for d in shown {
                            @let name = text(&d["name"]);
                            tr {
                                th scope="row" { a href={ "/console/domains/" (encode(&name)) } { (name) } }
                                td { (text(&d["owner"])) }
                                td { (badge(&ctx, d["status"].as_str().unwrap_or(""))) }
                                td { (text(&d["servers"])) }
                                td { (when(&d["status_since"])) }
                            }
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => (failure(&ctx, e)),
        }
    };
    page(&ctx, "/console/domains", ctx.t("nav.domains"), body)
}

/// The form that changes a domain's data (owner, servers, first contact),
/// filled with what it has now; only what is changed is sent.
fn edit(ctx: &Ctx, base: &str, d: &Value) -> Markup {
    let servers: Vec<String> = d["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let c = &d["contacts"][0];
    let val = |v: &Value| v.as_str().unwrap_or("").to_string();
    html! {
        details.edit {
            summary #edit-open { (ctx.t("domain.edit")) }
            form.action method="post" action={ (base) "/update" } {
                (csrf(ctx))
                label for="edit-owner" { (ctx.t("domain.owner")) }
                input #edit-owner type="text" name="owner" value=(val(&d["owner"]));
                label for="edit-servers" { (ctx.t("domain.servers")) }
                textarea #edit-servers name="servers" rows="3" { (servers.join("\n")) }
                fieldset {
                    legend { (ctx.t("domain.first_contact")) }
                    label for="edit-contact-name" { (ctx.t("contact.name")) }
                    input #edit-contact-name type="text" name="contact_name" value=(val(&c["name"]));
                    label for="edit-contact-email" { (ctx.t("contact.email")) }
                    input #edit-contact-email type="email" name="contact_email" value=(val(&c["email"]));
                    label for="edit-office-phone" { (ctx.t("contact.office_phone")) }
                    input #edit-office-phone type="tel" name="office_phone" value=(val(&c["office_phone"]));
                    label for="edit-mobile-phone" { (ctx.t("contact.mobile_phone")) }
                    input #edit-mobile-phone type="tel" name="mobile_phone" value=(val(&c["mobile_phone"]));
                }
                label for="edit-reason" { (ctx.t("form.reason")) }
                textarea #edit-reason name="reason" required rows="2" {}
                button type="submit" #edit { (ctx.t("domain.edit_submit")) }
            }
        }
    }
}

/// The action forms of a domain, each only for a role that may use it.
fn actions(ctx: &Ctx, name: &str, status: &str, d: &Value) -> Markup {
    let base = format!("/console/domains/{}", encode(name));
    let can = |t: &str| may(&ctx.caller, "POST", t);
    html! {
        @if status == "connected" && can("/api/v1/domains/{name}/suspend") {
            form.action method="post" action={ (base) "/suspend" } {
                (csrf(ctx))
                h3 { (ctx.t("domain.suspend")) }
                label for="suspend-reason" { (ctx.t("form.reason")) }
                textarea #suspend-reason name="reason" required rows="2" {}
                button.danger type="submit" #suspend { (ctx.t("domain.suspend")) }
            }
        }
        @if status == "suspended" && can("/api/v1/domains/{name}/restore") {
            form.action method="post" action={ (base) "/restore" } {
                (csrf(ctx))
                h3 { (ctx.t("domain.restore")) }
                label for="restore-reason" { (ctx.t("form.reason_optional")) }
                textarea #restore-reason name="reason" rows="2" {}
                fieldset {
                    legend { (ctx.t("domain.held_mail")) }
                    div.choice {
                        input #held-release type="radio" name="held_mail" value="release" checked;
                        label for="held-release" { (ctx.t("domain.held_release")) }
                    }
                    div.choice {
                        input #held-delete type="radio" name="held_mail" value="delete";
                        label for="held-delete" { (ctx.t("domain.held_delete")) }
                    }
                }
                button type="submit" #restore { (ctx.t("domain.restore")) }
            }
        }
        @if status != "disconnected" && can("/api/v1/domains/{name}/update") {
            (edit(ctx, &base, d))
        }
        @if status != "disconnected" && can("/api/v1/domains/{name}/disconnect") {
            form.action method="post" action={ (base) "/disconnect" } {
                (csrf(ctx))
                h3 { (ctx.t("domain.disconnect")) }
                label for="disconnect-reason" { (ctx.t("form.reason")) }
                textarea #disconnect-reason name="reason" required rows="2" {}
                button.danger type="submit" #disconnect { (ctx.t("domain.disconnect")) }
            }
        }
    }
}

/// `GET /console/domains/{name}`.
pub async fn show(State(c): State<Console>, ctx: Ctx, Path(name): Path<String>) -> Response {
    let call = c.call(&ctx);
    let d = match call
        .run("GET", "/api/v1/domains/{name}", &[&name], &[], None)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            let status = e.status;
            return page_status(
                &ctx,
                if status == StatusCode::NOT_FOUND {
                    status
                } else {
                    StatusCode::OK
                },
                "/console/domains",
                &name,
                failure(&ctx, &e),
            );
        }
    };
    let history = call
        .run(
            "GET",
            "/api/v1/suspensions",
            &[],
            &[("history", "true")],
            None,
        )
        .await;
    let sessions = call
        .run(
            "GET",
            "/api/v1/connections",
            &[],
            &[("domain", &name), ("limit", "20")],
            None,
        )
        .await;
    let apps = call
        .run(
            "GET",
            "/api/v1/applications",
            &[],
            &[("domain", &name)],
            None,
        )
        .await;
    let versions = call
        .run("GET", "/api/v1/domains/{name}/history", &[&name], &[], None)
        .await;
    let status = d["status"].as_str().unwrap_or("").to_string();
    let body = html! {
        div.columns {
            div {
                section aria-labelledby="st-h" {
                    h2 #st-h { (ctx.t("domain.state")) }
                    dl.facts {
                        dt { (ctx.t("domain.status")) } dd #domain-status { (badge(&ctx, &status)) }
                        dt { (ctx.t("domain.since")) } dd { (when(&d["status_since"])) }
                        @if !d["status_reason"].is_null() {
                            dt { (ctx.t("form.reason")) } dd { (text(&d["status_reason"])) }
                        }
                        dt { (ctx.t("domain.owner")) } dd { (text(&d["owner"])) }
                        dt { (ctx.t("domain.servers")) } dd { (text(&d["servers"])) }
                        dt { (ctx.t("domain.inbound")) } dd { (text(&d["inbound_routes"])) }
                        dt { (ctx.t("domain.registered")) } dd { (when(&d["created_at"])) }
                    }
                }
                section aria-labelledby="c-h" {
                    h2 #c-h { (ctx.t("domain.contacts")) }
                    table {
                        thead { tr {
                            th scope="col" { (ctx.t("contact.name")) }
                            th scope="col" { (ctx.t("contact.email")) }
                            th scope="col" { (ctx.t("contact.phones")) }
                        } }
                        tbody {
                            @for ct in d["contacts"].as_array().into_iter().flatten() {
                                tr {
                                    td { (text(&ct["name"])) }
                                    td { (text(&ct["email"])) }
                                    td { (text(&ct["office_phone"])) " / " (text(&ct["mobile_phone"])) }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="l-h" {
                    h2 #l-h { (ctx.t("domain.limits")) }
                    @match d["limits"].as_object().filter(|m| m.values().any(|v| !v.is_null())) {
                        Some(m) => dl.facts {
                            @for (k, v) in m { @if !v.is_null() { dt { code { (k) } } dd { (text(v)) } } }
                        },
                        None => p { (ctx.t("domain.default_limits")) },
                    }
                }
            }
            aside aria-label=(ctx.t("domain.actions")) {
                (actions(&ctx, &name, &status, &d))
            }
        }
        @if let Some(advice) = d["advice"].as_array().filter(|a| !a.is_empty()) {
            section aria-labelledby="adv-h" {
                h2 #adv-h { (ctx.t("domain.advice")) }
                table #domain-advice {
                    thead { tr {
                        th scope="col" { (ctx.t("apps.check")) }
                        th scope="col" { (ctx.t("apps.verdict")) }
                        th scope="col" { (ctx.t("apps.found")) }
                    } }
                    tbody {
                        @for a in advice {
                            tr {
                                td { code { (text(&a["check"])) } }
                                td { (super::applications::verdict(&ctx, a["verdict"].as_str().unwrap_or(""))) }
                                td { (text(&a["detail"])) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-h" {
            h2 #h-h { (ctx.t("domain.history")) }
            @match &history {
                Ok(Value::Array(all)) => {
                    @let mine: Vec<&Value> = all.iter().filter(|s| s["scope"]["kind"] == "domain" && s["scope"]["value"] == name.as_str()).collect();
                    @if mine.is_empty() { p { (ctx.t("susp.none")) } }
                    @else { (super::logs::suspension_table(&ctx, &mine)) }
                }
                Ok(_) => {}
                Err(e) => (failure(&ctx, e)),
            }
        }
        section aria-labelledby="ap-h" {
            h2 #ap-h { (ctx.t("domain.applications")) }
            @match &apps {
                Ok(Value::Array(list)) if list.is_empty() => p { (ctx.t("apps.none")) }
                Ok(Value::Array(list)) => {
                    table #domain-applications {
                        thead { tr {
                            th scope="col" { "#" }
                            th scope="col" { (ctx.t("apps.received")) }
                            th scope="col" { (ctx.t("apps.due")) }
                            th scope="col" { (ctx.t("apps.status")) }
                            th scope="col" { (ctx.t("domain.decided")) }
                        } }
                        tbody {
                            @for a in list {
                                tr {
                                    th scope="row" { a href={ "/console/applications/" (a["id"]) } { "#" (a["id"]) } }
                                    td { (text(&a["received_on"])) }
                                    td { (text(&a["decision_due"])) }
                                    td { (badge(&ctx, a["status"].as_str().unwrap_or(""))) }
                                    td {
                                        @if !a["decided_at"].is_null() { (when(&a["decided_at"])) ", " (text(&a["decided_by"])) }
                                        @if let Some(r) = a["reason"].as_str() { br; small { (r) } }
                                    }
                                }
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => (failure(&ctx, e)),
            }
        }
        section aria-labelledby="v-h" {
            h2 #v-h { (ctx.t("domain.versions")) }
            @match versions.as_ref().map(|v| v["versions"].as_array()) {
                Ok(Some(list)) if !list.is_empty() => {
                    table #domain-versions {
                        thead { tr {
                            th scope="col" { (ctx.t("domain.version")) }
                            th scope="col" { (ctx.t("audit.at")) }
                            th scope="col" { (ctx.t("susp.actor")) }
                            th scope="col" { (ctx.t("form.reason")) }
                            th scope="col" { (ctx.t("domain.changes")) }
                        } }
                        tbody {
                            @for v in list.iter().rev() {
                                tr {
                                    td { (text(&v["version"])) }
                                    td { (when(&v["replaced_at"])) }
                                    td { (text(&v["by"])) }
                                    td { (text(&v["reason"])) }
                                    td {
                                        @for ch in v["changes"].as_array().into_iter().flatten() {
                                            div { code { (text(&ch["field"])) } ": " (text(&ch["before"])) " → " (text(&ch["after"])) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Ok(_) => p { (ctx.t("domain.no_versions")) }
                Err(e) => (failure(&ctx, e)),
            }
        }
        section aria-labelledby="s-h" {
            h2 #s-h { (ctx.t("domain.sessions")) }
            @match &sessions {
                Ok(Value::Array(list)) => (super::logs::session_table(&ctx, list)),
                Ok(_) => {}
                Err(e) => (failure(&ctx, e)),
            }
        }
    };
    page(&ctx, "/console/domains", &name, body)
}
