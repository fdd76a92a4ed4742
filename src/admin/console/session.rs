//! Console sessions: a random id in a cookie, the signed-in token and a
//! CSRF token kept server-side, in memory.
//!
//! In memory is enough for one node: a restart signs everyone out, which
//! is the safe failure. The token itself is kept (not just its name and
//! role) so that every request verifies it again against the tokens in
//! force: a token removed or demoted by a reload takes effect at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ugem_console";
/// The cookie that carries the sign-in form's CSRF token (before a session exists).
pub const SIGNIN_COOKIE: &str = "ugem_console_signin";
/// The language cookie's name.
pub const LANG_COOKIE: &str = "ugem_lang";

/// At most this many sessions live at once; the one idle longest goes first.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in person, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie value.
    pub id: String,
    /// The token the person signed in with.
    pub token: String,
    /// The per-session CSRF token every form carries.
    pub csrf: String,
    /// A message for the next page shown (the result of an action).
    pub flash: Option<Flash>,
}

/// The result of an action, shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// True for success.
    pub ok: bool,
    /// What to say.
    pub text: String,
}

#[derive(Debug)]
struct Entry {
    token: String,
    csrf: String,
    last: Instant,
    flash: Option<Flash>,
}

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

/// 32 random bytes from the thread's CSPRNG, in hex.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    /// Starts a session for `token`; drops idle ones first and, at the
    /// bound, the one idle longest.
    pub fn create(&self, token: String, idle: Duration, now: Instant) -> Session {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| now.saturating_duration_since(e.last) < idle);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let s = Session {
            id: random_hex(),
            token,
            csrf: random_hex(),
            flash: None,
        };
        map.insert(
            s.id.clone(),
            Entry {
                token: s.token.clone(),
                csrf: s.csrf.clone(),
                last: now,
                flash: None,
            },
        );
        s
    }

    /// The session `id`, if it has not been idle for `idle`; marks it used
    /// and hands over its flash message. An expired one is removed.
    pub fn touch(&self, id: &str, idle: Duration, now: Instant) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get_mut(id)?;
        if now.saturating_duration_since(e.last) >= idle {
            map.remove(id);
            return None;
        }
        e.last = now;
        Some(Session {
            id: id.to_string(),
            token: e.token.clone(),
            csrf: e.csrf.clone(),
            flash: e.flash.take(),
        })
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, id: &str, flash: Flash) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(id) {
            e.flash = Some(flash);
        }
    }

    /// Ends the session (sign-out, or its token no longer accepted).
    pub fn end(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

/// Whether a presented CSRF token is the expected one, compared in
/// constant time; an empty expectation never matches.
pub fn csrf_ok(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// A cookie read from the request's `Cookie` headers.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value scoped to the console: HttpOnly, SameSite=Strict,
/// Secure when the listener speaks TLS; `max_age` 0 deletes it, None
/// makes it last the browser's session.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_after_the_idle_timeout_and_not_before() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let idle = Duration::from_secs(60);
        let a = s.create("tok".into(), idle, t0);
        assert_eq!(a.id.len(), 64);
        assert_ne!(a.id, a.csrf);
        let seen = s.touch(&a.id, idle, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!((seen.token.as_str(), seen.csrf), ("tok", a.csrf));
        // Used at 59 s: idle counts from there.
        assert!(
            s.touch(&a.id, idle, t0 + Duration::from_secs(118))
                .is_some()
        );
        assert!(
            s.touch(&a.id, idle, t0 + Duration::from_secs(178))
                .is_none()
        );
        assert!(
            s.touch(&a.id, idle, t0 + Duration::from_secs(179))
                .is_none(),
            "removed once expired"
        );
        assert!(s.touch("no-such-id", idle, t0).is_none());
    }

    #[test]
    fn sign_out_ends_the_session_and_a_flash_is_shown_once() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let idle = Duration::from_secs(60);
        let a = s.create("tok".into(), idle, t0);
        s.flash(
            &a.id,
            Flash {
                ok: true,
                text: "done".into(),
            },
        );
        assert_eq!(
            s.touch(&a.id, idle, t0).unwrap().flash.unwrap().text,
            "done"
        );
        assert!(s.touch(&a.id, idle, t0).unwrap().flash.is_none());
        s.end(&a.id);
        assert!(s.touch(&a.id, idle, t0).is_none());
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert!(csrf_ok("abc123", "abc123"));
        assert!(!csrf_ok("abc123", "abc124"));
        assert!(!csrf_ok("abc123", "abc12"));
        assert!(!csrf_ok("abc123", ""));
        assert!(!csrf_ok("", ""));
    }

    #[test]
    fn cookies_are_scoped_and_strict_and_secure_over_tls() {
        let c = set_cookie(SESSION_COOKIE, "v", false, None);
        assert_eq!(
            c,
            "ugem_console=v; Path=/console; HttpOnly; SameSite=Strict"
        );
        let c = set_cookie(SESSION_COOKIE, "", true, Some(0));
        assert!(c.ends_with("; Secure; Max-Age=0"), "{c}");
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; ugem_console=xyz; b=2".parse().unwrap());
        assert_eq!(read_cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(read_cookie(&h, "ugem"), None);
    }
}
