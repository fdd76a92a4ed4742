//! The staff console: server-rendered HTML pages (maud) under `/console`
//! on the admin listener, for the duty desk.
//!
//! Staff sign in with their personal API token, which becomes a session
//! ([`session`]); every form carries the session's CSRF token. The console
//! implements no action of its own: each page reads, and each form acts,
//! through the API's own route and handler ([`api`]), so roles, checks and
//! the audit trail are the API's. Strings are in three languages
//! ([`i18n`]); the stylesheet is embedded ([`ASSET_CSS`]).

mod actions;
pub mod api;
mod chart;
pub mod i18n;
mod layout;
mod pages;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::auth::Caller;
use super::{AdminState, RefusedLog};
use api::Call;
use i18n::Lang;
use session::{LANG_COOKIE, SESSION_COOKIE, Session, Sessions, read_cookie, set_cookie};

/// The console's stylesheet, served at `/console/assets/console.css`.
pub const ASSET_CSS: &str = include_str!("assets/console.css");

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    admin: AdminState,
    /// The API's routes without the token middleware ([`api`]).
    api: Router,
    sessions: Arc<Sessions>,
    refused: Arc<RefusedLog>,
}

impl Console {
    /// A caller of the API's routes for the signed-in person of `ctx`.
    fn call<'a>(&'a self, ctx: &'a Ctx) -> Call<'a> {
        Call {
            api: &self.api,
            refused: &self.refused,
            caller: &ctx.caller,
            client: ctx.client,
        }
    }

    fn secure(&self) -> bool {
        self.admin.cfg().admin.has_tls()
    }
}

/// The console's routes, to be merged into the admin router.
pub fn router(admin: AdminState, refused: Arc<RefusedLog>) -> Router {
    let console = Console {
        api: super::routes::unguarded_router(admin.clone()),
        admin,
        sessions: Arc::new(Sessions::default()),
        refused,
    };
    Router::new()
        .route("/console", get(pages::overview::overview))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/assets/console.css", get(css))
        .route(
            "/console/signin",
            get(actions::signin_form).post(actions::signin),
        )
        .route("/console/signout", post(actions::signout))
        .route("/console/domains", get(pages::domains::list))
        .route("/console/domains/{name}", get(pages::domains::show))
        .route("/console/domains/{name}/{op}", post(actions::domain))
        .route(
            "/console/applications",
            get(pages::applications::list).post(actions::submit_application),
        )
        .route(
            "/console/applications/new",
            get(pages::applications::intake),
        )
        .route("/console/applications/{id}", get(pages::applications::show))
        .route(
            "/console/applications/{id}/{op}",
            post(actions::application),
        )
        .route("/console/suspensions", get(pages::logs::suspensions))
        .route("/console/senders/{op}", post(actions::sender))
        .route("/console/queue", get(pages::queue::list))
        .route("/console/queue/{id}", get(pages::queue::show))
        .route("/console/queue/{id}/{op}", post(actions::queue))
        .route("/console/sessions", get(pages::logs::sessions))
        .route("/console/audit", get(pages::logs::audit))
        .with_state(console)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        ASSET_CSS,
    )
        .into_response()
}

/// One request of a signed-in person: who, in which language, from where.
pub struct Ctx {
    /// The page language.
    pub lang: Lang,
    /// The signed-in person (token verified again on this request).
    pub caller: Caller,
    /// The session.
    pub session: Session,
    /// The browser's address.
    pub client: SocketAddr,
    /// `Set-Cookie` values to send with the answer (a language chosen).
    pub cookies: Vec<String>,
    /// The page's query string without `lang`, kept by the language switch.
    pub query: String,
}

impl Ctx {
    /// Text in the page language.
    pub fn t(&self, key: &'static str) -> &'static str {
        self.lang.t(key)
    }

    /// Text with placeholders, in the page language.
    pub fn tf(&self, key: &'static str, args: &[(&str, &str)]) -> String {
        self.lang.tf(key, args)
    }
}

/// The browser's address, or 0.0.0.0:0 when not known (in-process calls).
fn client_of(parts: &Parts) -> SocketAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The page language: `?lang=` (remembered in a cookie), the cookie, the
/// browser's `Accept-Language`, else Russian. Also the cookie to set.
fn lang_of(parts: &Parts, secure: bool) -> (Lang, Option<String>) {
    let asked = parts.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::parse(v))
    });
    if let Some(l) = asked {
        let year = 365 * 86_400;
        return (
            l,
            Some(set_cookie(LANG_COOKIE, l.code(), secure, Some(year))),
        );
    }
    let l = read_cookie(&parts.headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .or_else(|| {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept)
        })
        .unwrap_or(Lang::Ru);
    (l, None)
}

impl FromRequestParts<Console> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let cfg = c.admin.cfg();
        let (lang, lang_cookie) = lang_of(parts, cfg.admin.has_tls());
        let signin = || Redirect::to("/console/signin").into_response();
        let Some(id) = read_cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(signin());
        };
        let idle = cfg.admin.console_idle_timeout.0;
        let Some(session) = c.sessions.touch(id, idle, Instant::now()) else {
            return Err(signin());
        };
        let Some(caller) = c.admin.tokens().verify(&session.token) else {
            // The token was removed by a reload: the session ends with it.
            c.sessions.end(&session.id);
            return Err(signin());
        };
        Ok(Ctx {
            lang,
            caller,
            session,
            client: client_of(parts),
            cookies: lang_cookie.into_iter().collect(),
            query: parts
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("lang="))
                .collect::<Vec<_>>()
                .join("&"),
        })
    }
}

/// An HTML answer with the given status and cookies.
fn html(status: StatusCode, cookies: &[String], body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h: &mut HeaderMap = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // No framing (clickjacking), no caching of staff pages, no outside resources.
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}
