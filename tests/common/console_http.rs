//! The staff console over plain HTTP, without a browser: sign in with a
//! token and read pages as a session would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Gateway;

/// A raw HTTP request with cookies and a form body; (status, headers, body).
pub fn http_form(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    exchange(&mut s, addr, method, path, cookies, form)
}

/// Writes the request on `s` (plain or TLS) and reads the whole answer.
pub fn exchange(
    s: &mut (impl Read + Write),
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
) -> (u16, String, String) {
    let mut headers = Vec::new();
    if !cookies.is_empty() {
        headers.push(("Cookie", cookies));
    }
    if method == "POST" {
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    super::request_on(s, addr, method, path, &headers, form)
}

/// The value a `Set-Cookie` header of `head` gives `name`.
pub fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .filter_map(|c| c.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The CSRF token in a page's forms.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

/// Signs in over plain HTTP; the session cookie.
pub fn http_sign_in(gw: &Gateway, token: &str) -> String {
    let (st, head, body) = http_form(gw.admin, "GET", "/console/signin", "", "");
    assert_eq!(st, 200);
    let pre = set_cookie(&head, "ugem_console_signin").expect("sign-in cookie");
    let form = format!("csrf={}&token={token}", csrf_of(&body));
    let (st, head, body) = http_form(
        gw.admin,
        "POST",
        "/console/signin",
        &format!("ugem_console_signin={pre}"),
        &form,
    );
    assert_eq!(st, 303, "{head}\n{body}");
    set_cookie(&head, "ugem_console").expect("session cookie")
}
