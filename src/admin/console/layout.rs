//! The page shell (head, navigation, language switch, sign-out) and the
//! small pieces every page uses: times, ages, status badges, forms.

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::api::CallError;
use super::i18n::Lang;
use super::{Ctx, html as respond};

/// The navigation: path and text key.
const NAV: &[(&str, &str)] = &[
    ("/console", "nav.overview"),
    ("/console/domains", "nav.domains"),
    ("/console/applications", "nav.applications"),
    ("/console/suspensions", "nav.suspensions"),
    ("/console/queue", "nav.queue"),
    ("/console/sessions", "nav.sessions"),
    ("/console/audit", "nav.audit"),
];

/// A whole page for a signed-in person: `current` is its navigation path.
pub fn page(ctx: &Ctx, current: &str, title: &str, body: Markup) -> Response {
    page_status(ctx, StatusCode::OK, current, title, body)
}

/// [`page`] with another status.
pub fn page_status(
    ctx: &Ctx,
    status: StatusCode,
    current: &str,
    title: &str,
    body: Markup,
) -> Response {
    let role = match ctx.caller.role {
        crate::config::Role::Viewer => ctx.t("role.viewer"),
        crate::config::Role::Operator => ctx.t("role.operator"),
        crate::config::Role::Admin => ctx.t("role.admin"),
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            (head(title))
            body {
                a.skip href="#main" { (ctx.t("a11y.skip")) }
                header.top {
                    span.brand { "ugem" }
                    nav aria-label=(ctx.t("a11y.nav")) {
                        ul {
                            @for (path, key) in NAV {
                                li {
                                    @if *path == current {
                                        a href=(path) aria-current="page" { (ctx.t(key)) }
                                    } @else {
                                        a href=(path) { (ctx.t(key)) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        (langs(ctx.lang, ctx.t("a11y.language"), &ctx.query))
                        span.user {
                            (ctx.caller.name) " · " (role)
                        }
                        form method="post" action="/console/signout" {
                            (csrf(ctx))
                            button.link type="submit" { (ctx.t("signout")) }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if let Some(f) = &ctx.session.flash {
                        p.flash.ok[f.ok].error[!f.ok] role="status" { (f.text) }
                    }
                    (body)
                }
            }
        }
    };
    respond(status, &ctx.cookies, markup.into_string())
}

/// The page head.
pub fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · ugem" }
            link rel="stylesheet" href="/console/assets/console.css";
        }
    }
}

/// The language switch: links that keep the page and its query (`keep`)
/// and set `lang=`.
pub fn langs(current: Lang, label: &str, keep: &str) -> Markup {
    let sep = if keep.is_empty() { "" } else { "&" };
    html! {
        ul.langs aria-label=(label) {
            @for l in Lang::ALL {
                li {
                    @if l == current {
                        span lang=(l.code()) aria-current="true" { (l.name()) }
                    } @else {
                        a lang=(l.code()) hreflang=(l.code()) href={ "?" (keep) (sep) "lang=" (l.code()) } { (l.name()) }
                    }
                }
            }
        }
    }
}

/// The hidden field with the session's CSRF token.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.session.csrf); }
}

/// A failed API read shown in the page.
pub fn failure(ctx: &Ctx, e: &CallError) -> Markup {
    html! {
        p.flash.error role="alert" { (ctx.t("error.load")) " " (e.message) }
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM UTC`; anything else as it is.
pub fn when(v: &Value) -> String {
    match v.as_str() {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| {
                t.with_timezone(&Utc)
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()
            })
            .unwrap_or_else(|_| s.to_string()),
        None if v.is_null() => "—".into(),
        None => v.to_string(),
    }
}

/// A unix time in milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn when_ms(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A duration in words short enough for a table: `2d 3h`, `3h 12m`, `4m`, `12s`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// Seconds from a unix time in milliseconds until now.
pub fn since_ms(ms: u64) -> i64 {
    (Utc::now().timestamp_millis() - ms as i64) / 1000
}

/// A JSON value as text: strings bare, null as a dash.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A status word as a badge (translated when the language has it).
pub fn badge(ctx: &Ctx, status: &str) -> Markup {
    let key: &'static str = match status {
        "connected" => "status.connected",
        "suspended" => "status.suspended",
        "disconnected" => "status.disconnected",
        "pending" => "status.pending",
        "approved" => "status.approved",
        "rejected" => "status.rejected",
        "withdrawn" => "status.withdrawn",
        "delivered" => "status.delivered",
        "deferred" => "status.deferred",
        "failed" => "status.failed",
        "active" => "status.active",
        "held" => "status.held",
        _ => "",
    };
    let shown = if key.is_empty() { status } else { ctx.t(key) };
    html! { span class={ "badge badge-" (status) } { (shown) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_times_read_short() {
        assert_eq!(age(12), "12s");
        assert_eq!(age(4 * 60 + 5), "4m");
        assert_eq!(age(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(age(2 * 86_400 + 3 * 3600), "2d 3h");
        assert_eq!(age(-5), "0s");
        assert_eq!(
            when(&Value::String("2026-12-01T20:29:45.123Z".into())),
            "2026-12-01 20:29 UTC"
        );
        assert_eq!(when(&Value::Null), "—");
        assert_eq!(when_ms(0), "1970-01-01 00:00:00 UTC");
    }
}
