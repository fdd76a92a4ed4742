//! The console's forms: sign-in and sign-out, and each staff action, which
//! checks the CSRF token and then calls the API's own route ([`super::api`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Form;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, html};
use serde_json::{Value, json};

use super::api::{CallError, encode};
use super::i18n::Lang;
use super::layout::{head, langs, page_status};
use super::session::{
    Flash, SESSION_COOKIE, SIGNIN_COOKIE, csrf_ok, random_hex, read_cookie, set_cookie,
};
use super::{Console, Ctx, client_of, html as respond, lang_of};
use crate::admin::{Authed, audited};

/// A form's fields.
type Fields = Form<HashMap<String, String>>;

/// A request before sign-in: language, cookies to set, address.
pub struct Anon {
    lang: Lang,
    cookies: Vec<String>,
    client: SocketAddr,
    signin_csrf: Option<String>,
    secure: bool,
}

impl FromRequestParts<Console> for Anon {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let secure = c.secure();
        let (lang, cookie) = lang_of(parts, secure);
        Ok(Anon {
            lang,
            cookies: cookie.into_iter().collect(),
            client: client_of(parts),
            signin_csrf: read_cookie(&parts.headers, SIGNIN_COOKIE).map(str::to_string),
            secure,
        })
    }
}

/// The sign-in page, with a fresh CSRF token in a cookie and the form
/// (double submit: no session exists yet to keep it in).
fn signin_page(mut a: Anon, status: StatusCode, error: Option<&str>) -> Response {
    let l = a.lang;
    let token = random_hex();
    a.cookies
        .push(set_cookie(SIGNIN_COOKIE, &token, a.secure, Some(3600)));
    let markup = html! {
        (DOCTYPE)
        html lang=(l.code()) {
            (head(l.t("signin.title")))
            body.signin {
                main #main {
                    (langs(l, l.t("a11y.language"), ""))
                    h1 { (l.t("signin.title")) }
                    p { (l.t("signin.intro")) }
                    @if let Some(e) = error {
                        p.flash.error role="alert" { (e) }
                    }
                    form method="post" action="/console/signin" {
                        input type="hidden" name="csrf" value=(token);
                        label for="token" { (l.t("signin.token")) }
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" { (l.t("signin.submit")) }
                    }
                }
            }
        }
    };
    respond(status, &a.cookies, markup.into_string())
}

/// `GET /console/signin`.
pub async fn signin_form(a: Anon) -> Response {
    signin_page(a, StatusCode::OK, None)
}

/// `POST /console/signin`: a token becomes a session.
pub async fn signin(State(c): State<Console>, a: Anon, Form(f): Fields) -> Response {
    let presented = f.get("csrf").map(String::as_str).unwrap_or("");
    if !csrf_ok(a.signin_csrf.as_deref().unwrap_or(""), presented) {
        let text = a.lang.t("error.csrf");
        return signin_page(a, StatusCode::FORBIDDEN, Some(text));
    }
    let token = f.get("token").map(|t| t.trim()).unwrap_or("");
    let Some(caller) = c.admin.tokens().verify(token) else {
        // Recorded like an API call with an unknown token.
        crate::metrics::admin_refused(401);
        c.refused
            .note(
                a.client.ip(),
                crate::admin::refused::UNAUTHENTICATED,
                "console.signin",
                "/console/signin",
            )
            .await;
        let text = a.lang.t("signin.unknown");
        return signin_page(a, StatusCode::UNAUTHORIZED, Some(text));
    };
    let idle = c.admin.cfg().admin.console_idle_timeout.0;
    let s = c.sessions.create(token.to_string(), idle, Instant::now());
    let who = Authed {
        caller,
        action: "console.signin",
        client: a.client,
        note: Default::default(),
    };
    let _ = audited(&c.admin, &who, "console".into(), |_| async { Ok(()) }).await;
    let mut cookies = a.cookies;
    cookies.push(set_cookie(SESSION_COOKIE, &s.id, a.secure, None));
    cookies.push(set_cookie(SIGNIN_COOKIE, "", a.secure, Some(0)));
    see_other("/console", cookies)
}

/// `POST /console/signout`.
pub async fn signout(State(c): State<Console>, ctx: Ctx, Form(f): Fields) -> Response {
    if let Some(r) = refuse_csrf(&ctx, &f) {
        return r;
    }
    c.sessions.end(&ctx.session.id);
    let who = Authed {
        caller: ctx.caller.clone(),
        action: "console.signout",
        client: ctx.client,
        note: Default::default(),
    };
    let _ = audited(&c.admin, &who, "console".into(), |_| async { Ok(()) }).await;
    see_other(
        "/console/signin",
        vec![set_cookie(SESSION_COOKIE, "", c.secure(), Some(0))],
    )
}

/// A 303 to `to` with cookies.
fn see_other(to: &str, cookies: Vec<String>) -> Response {
    let mut r = Redirect::to(to).into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(axum::http::header::SET_COOKIE, v);
        }
    }
    r
}

/// 403 unless the form carries the session's CSRF token.
fn refuse_csrf(ctx: &Ctx, f: &HashMap<String, String>) -> Option<Response> {
    let presented = f.get("csrf").map(String::as_str).unwrap_or("");
    if csrf_ok(&ctx.session.csrf, presented) {
        return None;
    }
    Some(page_status(
        ctx,
        StatusCode::FORBIDDEN,
        "",
        ctx.t("error.forbidden"),
        html! { p.flash.error role="alert" { (ctx.t("error.csrf")) } },
    ))
}

/// After an action: back to `back` with the outcome shown there; a
/// refusal for the role is a 403 page.
fn finish(
    c: &Console,
    ctx: &Ctx,
    r: Result<Value, CallError>,
    back: &str,
    done: String,
) -> Response {
    let flash = match r {
        Ok(_) => Flash {
            ok: true,
            text: done,
        },
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            return page_status(
                ctx,
                StatusCode::FORBIDDEN,
                "",
                ctx.t("error.forbidden"),
                html! { p.flash.error role="alert" { (ctx.t("error.role")) " " (e.message) } },
            );
        }
        Err(e) => Flash {
            ok: false,
            text: format!("{} {}", ctx.t("error.action"), e.message),
        },
    };
    c.sessions.flash(&ctx.session.id, flash);
    see_other(back, ctx.cookies.clone())
}

fn field(f: &HashMap<String, String>, k: &str) -> String {
    f.get(k).map(|v| v.trim().to_string()).unwrap_or_default()
}

fn optional(f: &HashMap<String, String>, k: &str) -> Value {
    match field(f, k) {
        v if v.is_empty() => Value::Null,
        v => Value::String(v),
    }
}

/// The body of `POST /api/v1/domains/{name}/update` from the edit form:
/// the fields that differ from `cur` (the domain as it is), the first
/// contact replaced in the list, and the reason.
fn update_body(cur: &Value, f: &HashMap<String, String>) -> Value {
    let mut body = json!({"reason": field(f, "reason")});
    let owner = field(f, "owner");
    if !owner.is_empty() && cur["owner"] != owner.as_str() {
        body["owner"] = json!(owner);
    }
    let now: Vec<String> = cur["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let asked = servers(&field(f, "servers"));
    if !asked.is_empty() && asked != now {
        body["servers"] = json!(asked);
    }
    let mut contacts = cur["contacts"].as_array().cloned().unwrap_or_default();
    let mut first = json!({"name": field(f, "contact_name"), "email": field(f, "contact_email")});
    for k in ["office_phone", "mobile_phone"] {
        if let v @ Value::String(_) = optional(f, k) {
            first[k] = v;
        }
    }
    if first["email"] != "" && contacts.first() != Some(&first) {
        if contacts.is_empty() {
            contacts.push(first);
        } else {
            contacts[0] = first;
        }
        body["contacts"] = json!(contacts);
    }
    body
}

/// `POST /console/domains/{name}/{suspend|restore|disconnect|update}`.
pub async fn domain(
    State(c): State<Console>,
    ctx: Ctx,
    Path((name, op)): Path<(String, String)>,
    Form(f): Fields,
) -> Response {
    if let Some(r) = refuse_csrf(&ctx, &f) {
        return r;
    }
    let back = format!("/console/domains/{}", encode(&name));
    if op == "update" {
        let call = c.call(&ctx);
        let r = match call
            .run("GET", "/api/v1/domains/{name}", &[&name], &[], None)
            .await
        {
            Ok(cur) => {
                let body = update_body(&cur, &f);
                call.run(
                    "POST",
                    "/api/v1/domains/{name}/update",
                    &[&name],
                    &[],
                    Some(body),
                )
                .await
            }
            Err(e) => Err(e),
        };
        let done = ctx.tf("done.updated", &[("name", &name)]);
        return finish(&c, &ctx, r, &back, done);
    }
    let (template, body, done) = match op.as_str() {
        "suspend" => (
            "/api/v1/domains/{name}/suspend",
            json!({"reason": field(&f, "reason")}),
            "done.suspended",
        ),
        "restore" => (
            "/api/v1/domains/{name}/restore",
            json!({"reason": optional(&f, "reason"), "held_mail": optional(&f, "held_mail")}),
            "done.restored",
        ),
        "disconnect" => (
            "/api/v1/domains/{name}/disconnect",
            json!({"reason": field(&f, "reason")}),
            "done.disconnected",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let r = c
        .call(&ctx)
        .run("POST", template, &[&name], &[], Some(body))
        .await;
    finish(&c, &ctx, r, &back, ctx.tf(done, &[("name", &name)]))
}

/// `POST /console/senders/{suspend|restore}` with the `address` field.
pub async fn sender(
    State(c): State<Console>,
    ctx: Ctx,
    Path(op): Path<String>,
    Form(f): Fields,
) -> Response {
    if let Some(r) = refuse_csrf(&ctx, &f) {
        return r;
    }
    let address = field(&f, "address");
    let (template, body, done) = match op.as_str() {
        "suspend" => (
            "/api/v1/senders/{address}/suspend",
            json!({"reason": field(&f, "reason")}),
            "done.sender_suspended",
        ),
        "restore" => (
            "/api/v1/senders/{address}/restore",
            json!({"reason": optional(&f, "reason"), "held_mail": optional(&f, "held_mail")}),
            "done.sender_restored",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let r = c
        .call(&ctx)
        .run("POST", template, &[&address], &[], Some(body))
        .await;
    let done = ctx.tf(done, &[("name", &address)]);
    finish(&c, &ctx, r, "/console/suspensions", done)
}

/// `POST /console/applications/{id}/{approve|reject}`.
pub async fn application(
    State(c): State<Console>,
    ctx: Ctx,
    Path((id, op)): Path<(String, String)>,
    Form(f): Fields,
) -> Response {
    if let Some(r) = refuse_csrf(&ctx, &f) {
        return r;
    }
    let (template, body, done) = match op.as_str() {
        "approve" => (
            "/api/v1/applications/{id}/approve",
            json!({}),
            "done.approved",
        ),
        "reject" => (
            "/api/v1/applications/{id}/reject",
            json!({"reason": field(&f, "reason")}),
            "done.rejected",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let r = c
        .call(&ctx)
        .run("POST", template, &[&id], &[], Some(body))
        .await;
    finish(
        &c,
        &ctx,
        r,
        "/console/applications",
        ctx.tf(done, &[("id", &id)]),
    )
}

/// The servers of the intake form: one per line or separated by commas.
fn servers(text: &str) -> Vec<String> {
    text.split(|ch: char| ch == ',' || ch.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `POST /console/applications`: the intake form.
pub async fn submit_application(State(c): State<Console>, ctx: Ctx, Form(f): Fields) -> Response {
    if let Some(r) = refuse_csrf(&ctx, &f) {
        return r;
    }
    let mut contact =
        json!({"name": field(&f, "contact_name"), "email": field(&f, "contact_email")});
    for k in ["office_phone", "mobile_phone"] {
        if let v @ Value::String(_) = optional(&f, k) {
            contact[k] = v;
        }
    }
    let mut body = json!({
        "domain": field(&f, "domain"),
        "owner": field(&f, "owner"),
        "category": field(&f, "category"),
        "head": field(&f, "head"),
        "servers": servers(&field(&f, "servers")),
        "contacts": [contact],
    });
    for k in ["inbound", "received_on"] {
        if let v @ Value::String(_) = optional(&f, k) {
            body[k] = v;
        }
    }
    // The form's own number, date, channel, reference and document.
    if !field(&f, "form_number").is_empty() {
        let mut form = json!({
            "number": field(&f, "form_number"),
            "dated": field(&f, "form_dated"),
            "channel": field(&f, "form_channel"),
            "reference": field(&f, "form_reference"),
        });
        if let v @ Value::String(_) = optional(&f, "form_document") {
            form["document"] = v;
        }
        body["form"] = form;
    }
    let r = c
        .call(&ctx)
        .run("POST", "/api/v1/applications", &[], &[], Some(body))
        .await;
    let done = match &r {
        Ok(v) => ctx.tf(
            "done.submitted",
            &[
                ("id", &v["id"].to_string()),
                ("due", v["decision_due"].as_str().unwrap_or("")),
            ],
        ),
        // Refused: the form again, as typed, with the reason.
        Err(e) if e.status != StatusCode::FORBIDDEN => {
            return super::pages::applications::intake_form(&ctx, &f, Some(&e.message), e.status);
        }
        Err(_) => String::new(),
    };
    finish(&c, &ctx, r, "/console/applications", done)
}

/// `POST /console/queue/{id}/{hold|release|retry|delete}`.
pub async fn queue(
    State(c): State<Console>,
    ctx: Ctx,
    Path((id, op)): Path<(String, String)>,
    Form(f): Fields,
) -> Response {
    if let Some(r) = refuse_csrf(&ctx, &f) {
        return r;
    }
    let (method, template, body) = match op.as_str() {
        "hold" => (
            "POST",
            "/api/v1/queue/{id}/hold",
            Some(json!({"reason": optional(&f, "reason")})),
        ),
        "release" => ("POST", "/api/v1/queue/{id}/release", None),
        "retry" => ("POST", "/api/v1/queue/{id}/retry", None),
        "delete" => ("DELETE", "/api/v1/queue/{id}", None),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let r = c.call(&ctx).run(method, template, &[&id], &[], body).await;
    // From the list (a held message's row) back to the held mail.
    let back = if f.get("back").is_some_and(|b| b == "list") {
        "/console/queue?state=held".to_string()
    } else if op == "delete" {
        "/console/queue".to_string()
    } else {
        format!("/console/queue/{}", encode(&id))
    };
    let done = match op.as_str() {
        "hold" => "done.held",
        "release" => "done.released",
        "retry" => "done.retried",
        _ => "done.deleted",
    };
    finish(&c, &ctx, r, &back, ctx.tf(done, &[("id", &id)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edit_form_sends_only_what_changed() {
        let cur = json!({
            "owner": "Ministry", "servers": ["192.0.2.1/32"],
            "contacts": [{"name": "Desk", "email": "it@a.kz"}, {"name": "B", "email": "b@a.kz"}],
        });
        let form = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let same = form(&[
            ("owner", "Ministry"),
            ("servers", "192.0.2.1/32"),
            ("contact_name", "Desk"),
            ("contact_email", "it@a.kz"),
            ("reason", "r"),
        ]);
        assert_eq!(update_body(&cur, &same), json!({"reason": "r"}));
        let changed = form(&[
            ("owner", "Agency"),
            ("servers", "192.0.2.1/32\n192.0.2.2"),
            ("contact_name", "Desk"),
            ("contact_email", "it@a.kz"),
            ("mobile_phone", "+7 701 000 0000"),
            ("reason", "moved"),
        ]);
        let b = update_body(&cur, &changed);
        assert_eq!(b["owner"], "Agency");
        assert_eq!(b["servers"], json!(["192.0.2.1/32", "192.0.2.2"]));
        assert_eq!(b["contacts"][0]["mobile_phone"], "+7 701 000 0000");
        assert_eq!(b["contacts"][1]["email"], "b@a.kz");
    }

    #[test]
    fn servers_split_on_lines_commas_and_spaces() {
        assert_eq!(
            servers("192.0.2.1\r\n198.51.100.0/28, 2001:db8::1  "),
            vec!["192.0.2.1", "198.51.100.0/28", "2001:db8::1"]
        );
        assert!(servers(" \n ").is_empty());
    }
}
