//! The staff console (issue #17) in a real browser: Debian's headless
//! chromium driven through chromedriver (W3C WebDriver), against the real
//! gateway, real SMTP and a fake remote MX. Screenshots of each page go to
//! target/console-screenshots/.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::console_http::*;
use common::fake_mx::{Behaviour, FakeMx};
use common::*;
use webdriver::Browser;

/// Where the screenshots go.
fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

/// Waits until the page's HTML contains `needle`; fails with the page.
fn wait_page(b: &Browser, needle: &str) {
    let found = wait_for(15, || b.source().contains(needle));
    assert!(found, "`{needle}` not on {}:\n{}", b.url(), b.source());
}

fn sign_in(b: &Browser, gw: &Gateway, token: &str) {
    b.goto(&format!("{}/console", gw.admin_url()));
    assert!(b.url().ends_with("/console/signin"), "{}", b.url());
    b.type_into("#token", token);
    b.click("button[type=submit]");
    wait_page(b, "aria-current=\"page\"");
    assert!(b.url().ends_with("/console"), "{}", b.url());
}

fn sign_out(b: &Browser) {
    b.click("form[action='/console/signout'] button");
    wait_page(b, "id=\"token\"");
}

fn api_json(gw: &Gateway, path: &str) -> serde_json::Value {
    let (st, body) = http(gw.admin, "GET", path, Some(ADMIN_TOKEN), None);
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A browser with a 1280x800 viewport, the size the console is made for.
fn browser(lang: &str) -> Option<Browser> {
    let (driver, chromium) = webdriver::tools()?;
    let b = Browser::start(&driver, &chromium, lang);
    b.viewport(1280, 800);
    Some(b)
}

/// Saves a screenshot of the page after checking that it fits the
/// viewport's width (no sideways scrolling at 1280 pixels).
fn shot(b: &Browser, name: &str) {
    let wide = b.script("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(
        wide.as_i64().unwrap_or(1) <= 0,
        "{} is {wide} pixels wider than the viewport",
        b.url()
    );
    // Accessibility basics, on every page shot: a lang attribute, one h1,
    // a label for every field, header cells in every table.
    let problems = b.script(
        "const p = [];
         if (!document.documentElement.lang) p.push('no lang attribute');
         if (document.querySelectorAll('h1').length !== 1) p.push('not exactly one h1');
         for (const e of document.querySelectorAll('input:not([type=hidden]), select, textarea'))
           if (e.labels.length === 0) p.push('no label: ' + e.outerHTML);
         for (const t of document.querySelectorAll('table'))
           if (!t.querySelector('th')) p.push('table without header cells');
         return p;",
    );
    assert_eq!(problems, serde_json::json!([]), "{}", b.url());
    b.screenshot(&shots().join(format!("{name}.png")));
}

/// Admin registers and decides applications; an operator suspends a
/// domain (its sender's mail then gets 451 over SMTP and its queued mail
/// is held) and restores it with release (the held mail reaches the
/// remote MX); every action is audited under the person's token name;
/// the pages switch to Russian and Kazakh.
#[test]
fn the_duty_desk_works_in_a_real_browser() {
    let Some(b) = browser("en-US") else { return };
    // The remote MX is down at first: queued mail waits (backoff 1h).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gateway::start(&format!(
        "[delivery.routes]\n\"*\" = \"127.0.0.1:{port}\"\n"
    ));

    // Signed out, every page leads to the sign-in form.
    b.goto(&format!("{}/console/domains", gw.admin_url()));
    assert!(b.url().ends_with("/console/signin"), "{}", b.url());
    shot(&b, "signin");

    // The administrator registers two applications from the intake form.
    sign_in(&b, &gw, ADMIN_TOKEN);
    for (domain, server) in [
        ("desk.example.kz", "127.0.0.1"),
        ("other.example.kz", "192.0.2.10"),
    ] {
        b.goto(&format!("{}/console/applications/new", gw.admin_url()));
        // The form's own fields: number, date, channel, reference, document.
        b.type_into("#form_number", &format!("EG-{}", domain.len()));
        b.script(
            "document.getElementById('form_dated').value = '2026-11-30';
             document.getElementById('form_channel').value = 'letter'; return 0;",
        );
        b.type_into("#form_reference", "01-12/345");
        b.type_into("#form_document", "scan-7781");
        b.type_into("#domain", domain);
        b.type_into("#owner", "Ministry of Examples");
        b.type_into("#head", "A. Head");
        // A server that is not an address is refused by the API; the form
        // comes back as typed, with the reason.
        b.type_into("#servers", "mail.server.example");
        b.type_into("#contact_name", "IT Desk");
        b.type_into("#contact_email", "it@contact.example.kz");
        b.type_into("#office_phone", "+7 7172 000000");
        b.type_into("#mobile_phone", "+7 701 000 0000");
        if domain.starts_with("desk") {
            shot(&b, "application-intake");
        }
        b.click("#submit-application");
        wait_page(&b, "The action failed:");
        assert_eq!(
            b.script("return document.getElementById('domain').value"),
            domain
        );
        b.clear("#servers");
        b.type_into("#servers", server);
        b.click("#submit-application");
        wait_page(&b, "is registered; decision due");
    }
    let apps = api_json(&gw, "/api/v1/applications");
    let id_of = |d: &str| {
        apps.as_array()
            .unwrap()
            .iter()
            .find(|a| a["domain"] == d)
            .unwrap_or_else(|| panic!("no application for {d}: {apps}"))["id"]
            .to_string()
    };
    let (desk, other) = (id_of("desk.example.kz"), id_of("other.example.kz"));
    // One received 40 days ago (through the API) is long overdue.
    let received = chrono::Utc::now().date_naive() - chrono::Days::new(40);
    let late = serde_json::json!({
        "domain": "late.example.kz", "owner": "Akimat of Examples",
        "category": "local_government", "head": "B. Head", "servers": ["192.0.2.20"],
        "contacts": [{"name": "Desk", "email": "it@late.example.kz", "mobile_phone": "+7 701 000 0000"}],
        "received_on": received.to_string(),
    });
    let (st, body) = http(
        gw.admin,
        "POST",
        "/api/v1/applications",
        Some(ADMIN_TOKEN),
        Some(&late.to_string()),
    );
    assert_eq!(st, 201, "{body}");
    let late: serde_json::Value = serde_json::from_str(&body).unwrap();
    b.goto(&format!("{}/console/applications", gw.admin_url()));
    wait_page(&b, &format!("id=\"approve-{desk}\""));
    // Overdue in red, the others not.
    assert!(
        b.try_find(&format!("tr#app-{}.overdue", late["id"]))
            .is_some()
    );
    assert!(b.try_find(&format!("tr#app-{desk}.overdue")).is_none());
    shot(&b, "applications");
    // The application's page: its fields and the checks before deciding.
    b.click(&format!("a[href='/console/applications/{desk}']"));
    wait_page(&b, "id=\"checks\"");
    assert!(b.text("main h1").contains("desk.example.kz"));
    assert!(b.source().contains("A. Head"));
    assert!(
        b.text("#form-number").contains("2026-11-30"),
        "{}",
        b.source()
    );
    assert!(b.source().contains("01-12/345") && b.source().contains("Official letter"));
    shot(&b, "application");
    b.goto(&format!("{}/console/applications", gw.admin_url()));
    b.click(&format!("#approve-{desk}"));
    wait_page(&b, "is approved; the domain is connected");
    b.type_into(
        &format!("#reason-{other}"),
        "The servers are not the applicant's",
    );
    b.click(&format!("#reject-{other}"));
    wait_page(&b, &format!("Application #{other} is rejected"));
    let d = api_json(&gw, "/api/v1/domains/desk.example.kz");
    assert_eq!(d["status"], "connected", "{d}");
    let rejected = api_json(&gw, &format!("/api/v1/applications/{other}"));
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["reason"], "The servers are not the applicant's");
    sign_out(&b);

    // Mail from the agency is queued; the remote is down.
    let mut smtp = Smtp::greeted(gw.smtp);
    let r = smtp.send_mail(
        "clerk@desk.example.kz",
        &["someone@remote.example"],
        "Subject: before\r\n\r\nheld then released\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    smtp.expect("QUIT", 221);
    assert!(
        wait_for(20, || queued(&gw).iter().any(|e| e["attempts"] == 1)),
        "{:#?}",
        queued(&gw)
    );

    // The operator signs in, finds the domain and suspends it.
    sign_in(&b, &gw, OPERATOR_TOKEN);
    shot(&b, "overview");
    b.goto(&format!("{}/console/domains?q=desk", gw.admin_url()));
    wait_page(&b, "1 of 1 domains");
    shot(&b, "domains");
    b.click("#domains a[href='/console/domains/desk.example.kz']");
    wait_page(&b, "id=\"suspend-reason\"");
    assert!(
        b.try_find("#disconnect").is_none(),
        "an operator may not disconnect (admin)"
    );
    b.type_into("#suspend-reason", "Compromised mailbox sending spam");
    b.click("#suspend");
    wait_page(&b, "Domain desk.example.kz is suspended.");
    assert!(b.text("#domain-status").contains("suspended"));
    shot(&b, "domain-suspended");

    // The agency's next message is refused for now (451), not lost.
    let mut smtp = Smtp::greeted(gw.smtp);
    let r = smtp.send_mail(
        "clerk@desk.example.kz",
        &["someone@remote.example"],
        "Subject: during\r\n\r\nrefused\r\n",
    );
    assert_eq!(r.code, 451, "{r:?}");
    smtp.expect("QUIT", 221);
    // The queued one is held: on the queue page under the held filter.
    b.goto(&format!("{}/console/queue?state=held", gw.admin_url()));
    wait_page(&b, "clerk@desk.example.kz");
    shot(&b, "queue-held");
    b.click("#queue tbody a");
    wait_page(&b, "someone@remote.example");
    // The headers are read on request (audited as queue.message).
    b.click("#show-headers");
    wait_page(&b, "id=\"headers\"");
    assert!(
        b.text("#headers").contains("Subject: before"),
        "{}",
        b.text("#headers")
    );
    shot(&b, "queue-message");

    // The remote comes up; the operator restores and releases the mail.
    let remote = FakeMx::start_at(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Behaviour::accept(),
    );
    b.goto(&format!(
        "{}/console/domains/desk.example.kz",
        gw.admin_url()
    ));
    b.type_into("#restore-reason", "Password changed, mailbox cleaned");
    assert!(b.source().contains("id=\"held-release\""));
    b.click("#restore");
    wait_page(&b, "Domain desk.example.kz is restored.");
    assert!(b.text("#domain-status").contains("connected"));
    // (Notices of the suspension and the restore go there too.)
    assert!(
        wait_for(20, || remote
            .messages()
            .iter()
            .any(|m| m.sender == "clerk@desk.example.kz")),
        "the released mail did not reach the remote MX"
    );
    b.goto(&format!(
        "{}/console/domains/desk.example.kz",
        gw.admin_url()
    ));
    wait_page(&b, "Password changed, mailbox cleaned");
    // Its application is on its page, with the decision.
    assert!(
        b.text("#domain-applications").contains(&format!("#{desk}")),
        "{}",
        b.source()
    );
    shot(&b, "domain");

    // The queue's actions: the two notices still waiting (approval and
    // rejection) are held from their pages; from the held list one is
    // released (and reaches the remote MX), the other deleted.
    let mut ids = Vec::new();
    for n in 0..2 {
        b.goto(&format!("{}/console/queue?state=deferred", gw.admin_url()));
        wait_page(&b, "it@contact.example.kz");
        b.click("#queue tbody a");
        wait_page(&b, "id=\"hold-reason\"");
        let id = b.url().rsplit('/').next().unwrap().to_string();
        b.type_into("#hold-reason", &format!("checking notice {n}"));
        b.click("form[action$='/hold'] button");
        wait_page(&b, &format!("Message {id} is held."));
        assert_eq!(b.text("#held"), format!("checking notice {n}"));
        ids.push(id);
    }
    b.goto(&format!("{}/console/queue?state=held", gw.admin_url()));
    wait_page(&b, &ids[1]);
    let before = remote.messages().len();
    shot(&b, "queue-held-actions");
    b.click(&format!(
        "form[action='/console/queue/{}/release'] button",
        ids[0]
    ));
    wait_page(&b, &format!("Message {} is released.", ids[0]));
    assert!(
        wait_for(20, || !queued(&gw)
            .iter()
            .any(|e| e["id"] == ids[0].as_str())),
        "the released notice was not delivered"
    );
    assert!(
        remote.messages().len() > before,
        "nothing more reached the remote MX"
    );
    b.click(&format!(
        "form[action='/console/queue/{}/delete'] button",
        ids[1]
    ));
    wait_page(&b, &format!("Message {} is deleted.", ids[1]));
    assert!(!queued(&gw).iter().any(|e| e["id"] == ids[1].as_str()));

    // Every action is in the audit trail under the person's token name,
    // exactly as the API writes it.
    let audit = api_json(&gw, "/api/v1/audit?limit=100");
    let has = |actor: &str, action: &str, target: &str| {
        audit.as_array().unwrap().iter().any(|a| {
            a["actor"] == actor
                && a["action"] == action
                && a["outcome"] == "ok"
                && a["target"].as_str().unwrap_or("").contains(target)
        })
    };
    assert!(
        has("root", "application.submit", "desk.example.kz"),
        "{audit:#}"
    );
    assert!(
        has("root", "application.approve", &format!("#{desk}")),
        "{audit:#}"
    );
    assert!(
        has("root", "application.reject", &format!("#{other}")),
        "{audit:#}"
    );
    assert!(
        has("duty", "domain.suspend", "desk.example.kz"),
        "{audit:#}"
    );
    assert!(
        has("duty", "domain.restore", "desk.example.kz"),
        "{audit:#}"
    );
    assert!(has("duty", "queue.message", "headers"), "{audit:#}");
    for (action, id) in [
        ("queue.hold", &ids[0]),
        ("queue.hold", &ids[1]),
        ("queue.release", &ids[0]),
        ("queue.delete", &ids[1]),
    ] {
        assert!(has("duty", action, id), "{action}: {audit:#}");
    }
    let hist = api_json(&gw, "/api/v1/suspensions?history=true");
    assert!(
        hist.as_array().unwrap().iter().any(|s| s["actor"] == "duty"
            && s["restored"]["by"] == "duty"
            && s["restored"]["held_mail"] == "released"),
        "{hist:#}"
    );

    // A sender suspended from the suspensions page is refused (451) until
    // restored there.
    b.goto(&format!("{}/console/suspensions", gw.admin_url()));
    b.click("details.suspend-sender summary");
    b.type_into("#sender-address", "clerk@desk.example.kz");
    b.type_into("#sender-reason", "Phishing from this mailbox");
    b.click("#suspend-sender");
    wait_page(&b, "Sender clerk@desk.example.kz is suspended.");
    shot(&b, "suspensions-sender");
    let mut smtp = Smtp::greeted(gw.smtp);
    smtp.expect("EHLO client.test.example", 250);
    let r = smtp.cmd("MAIL FROM:<clerk@desk.example.kz>");
    let r = if r.code == 250 {
        smtp.cmd("RCPT TO:<someone@remote.example>")
    } else {
        r
    };
    assert_eq!(r.code, 451, "{r:?}");
    smtp.expect("QUIT", 221);
    b.click("form[action='/console/senders/restore'] button");
    wait_page(&b, "Sender clerk@desk.example.kz is restored.");
    assert!(
        api_json(&gw, "/api/v1/suspensions")
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The other pages, for the record.
    for (path, name, needle) in [
        (
            "/console/suspensions?history=true",
            "suspensions",
            "Compromised mailbox",
        ),
        (
            "/console/sessions?domain=desk.example.kz",
            "sessions",
            "127.0.0.1",
        ),
        ("/console/audit?actor=duty", "audit", "domain.restore"),
        (
            "/console/applications?status=all",
            "applications-all",
            "rejected",
        ),
    ] {
        // The connection log is written as a session ends: load again until it shows.
        let url = format!("{}{path}", gw.admin_url());
        let shown = wait_for(15, || {
            b.goto(&url);
            b.source().contains(needle)
        });
        assert!(
            shown,
            "`{needle}` not on {url}:\n{}\ngateway log:\n{}",
            b.source(),
            gw.log_text()
        );
        shot(&b, name);
    }

    // Russian and Kazakh, chosen with ?lang= and remembered.
    b.goto(&format!("{}/console?lang=ru", gw.admin_url()));
    wait_page(&b, "<html lang=\"ru\"");
    assert_eq!(b.text("main h1"), "Обзор");
    shot(&b, "overview-ru");
    b.goto(&format!(
        "{}/console/domains/desk.example.kz",
        gw.admin_url()
    ));
    wait_page(&b, "История приостановок");
    shot(&b, "domain-ru");
    // The switch keeps the page and its filters.
    b.goto(&format!(
        "{}/console/applications?status=all",
        gw.admin_url()
    ));
    b.click("a[hreflang=kk]");
    wait_page(&b, "<html lang=\"kk\"");
    assert!(
        b.url()
            .ends_with("/console/applications?status=all&lang=kk"),
        "{}",
        b.url()
    );
    assert!(b.source().contains("Өтінімдер"));
    shot(&b, "applications-kk");

    // Signed out, the session is gone.
    b.goto(&format!("{}/console?lang=en", gw.admin_url()));
    sign_out(&b);
    b.goto(&format!("{}/console/queue", gw.admin_url()));
    assert!(b.url().ends_with("/console/signin"), "{}", b.url());
}

/// A viewer sees no action buttons and is refused (403) when posting an
/// action anyway with a valid session and CSRF token; a form without the
/// right CSRF token is refused (403) even for an operator; sign-in needs
/// its own CSRF token; the session cookie is HttpOnly, SameSite=Strict and
/// scoped to /console.
#[test]
fn viewers_see_no_actions_and_forms_need_the_csrf_token() {
    let Some(b) = browser("en-US") else { return };
    let gw = Gateway::start("");
    gw.register(AGENCY, &["127.0.0.1"]);
    let status = || api_json(&gw, &format!("/api/v1/domains/{AGENCY}"))["status"].clone();

    sign_in(&b, &gw, VIEWER_TOKEN);
    let cookie = b.cookie("ugem_console").expect("session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(cookie["path"], "/console", "{cookie}");
    b.goto(&format!("{}/console/domains/{AGENCY}", gw.admin_url()));
    wait_page(&b, "id=\"domain-status\"");
    for action in ["#suspend", "#restore", "#disconnect", "form.action"] {
        assert!(b.try_find(action).is_none(), "a viewer sees {action}");
    }
    shot(&b, "domain-viewer");
    b.goto(&format!("{}/console/applications", gw.admin_url()));
    assert!(b.try_find("a[href='/console/applications/new']").is_none());

    // Posting anyway, with the viewer's session and its valid CSRF token.
    let page = b.source();
    let csrf = csrf_of(&page);
    let session = format!("ugem_console={}", cookie["value"].as_str().unwrap());
    let form = format!("csrf={csrf}&reason=just+looking");
    let suspend = format!("/console/domains/{AGENCY}/suspend");
    let (st, _, body) = http_form(gw.admin, "POST", &suspend, &session, &form);
    assert_eq!(st, 403, "{body}");
    assert_eq!(status(), "connected");

    // An operator's form without, or with a wrong, CSRF token.
    let op = format!("ugem_console={}", http_sign_in(&gw, OPERATOR_TOKEN));
    for form in [
        "reason=spam",
        "csrf=&reason=spam",
        &format!("csrf={csrf}&reason=spam"),
    ] {
        let (st, _, body) = http_form(gw.admin, "POST", &suspend, &op, form);
        assert_eq!(st, 403, "{form}: {body}");
        assert!(body.contains("CSRF"), "{body}");
    }
    assert_eq!(status(), "connected");
    // With its own token the same form works, so the refusals above were
    // the CSRF check's.
    let (_, _, page) = http_form(gw.admin, "GET", "/console", &op, "");
    let form = format!("csrf={}&reason=spam+run", csrf_of(&page));
    let (st, head, body) = http_form(gw.admin, "POST", &suspend, &op, &form);
    assert_eq!(st, 303, "{head}\n{body}");
    assert_eq!(status(), "suspended");

    // The stylesheet comes from the binary; pages forbid framing, caching
    // and outside resources.
    let (st, head, css) = http_form(gw.admin, "GET", "/console/assets/console.css", "", "");
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-type: text/css"),
        "{head}"
    );
    assert!(css.contains(":focus-visible"));
    let (st, head, _) = http_form(gw.admin, "GET", "/console", &op, "");
    assert_eq!(st, 200);
    let head = head.to_ascii_lowercase();
    for h in [
        "content-security-policy: default-src 'self'",
        "x-frame-options: deny",
        "cache-control: no-store",
    ] {
        assert!(head.contains(h), "{h} missing: {head}");
    }

    // Sign-in without its CSRF token is refused too, and an unknown token.
    let (st, _, _) = http_form(
        gw.admin,
        "POST",
        "/console/signin",
        "",
        &format!("token={OPERATOR_TOKEN}"),
    );
    assert_eq!(st, 403);
    let (_, head, body) = http_form(gw.admin, "GET", "/console/signin", "", "");
    let pre = set_cookie(&head, "ugem_console_signin").unwrap();
    let (st, head, _) = http_form(
        gw.admin,
        "POST",
        "/console/signin",
        &format!("ugem_console_signin={pre}"),
        &format!("csrf={}&token=not-a-token", csrf_of(&body)),
    );
    assert_eq!(st, 401);
    assert!(set_cookie(&head, "ugem_console").is_none());

    // An administrator disconnects the domain from its page.
    sign_out(&b);
    sign_in(&b, &gw, ADMIN_TOKEN);
    b.goto(&format!("{}/console/domains/{AGENCY}", gw.admin_url()));
    // First its data: a new owner name and a mobile phone for the contact.
    b.click("#edit-open");
    b.clear("#edit-owner");
    b.type_into("#edit-owner", "Agency of Renamed Examples");
    b.type_into("#edit-mobile-phone", "+7 701 111 2233");
    b.type_into("#edit-reason", "Letter of the agency, renamed by decree");
    b.click("#edit");
    wait_page(&b, &format!("The data of {AGENCY} is changed"));
    let d = api_json(&gw, &format!("/api/v1/domains/{AGENCY}"));
    assert_eq!(d["owner"], "Agency of Renamed Examples", "{d}");
    assert_eq!(d["contacts"][0]["mobile_phone"], "+77011112233", "{d}");
    assert!(b.text("#domain-versions").contains("Letter of the agency"));
    // The advice on its DNS records, as the API gives it.
    assert!(b.text("#domain-advice").contains("dmarc"), "{}", b.source());
    shot(&b, "domain-edited");
    b.type_into("#disconnect-reason", "The agency left the gateway");
    b.click("#disconnect");
    wait_page(&b, &format!("Domain {AGENCY} is disconnected."));
    assert_eq!(status(), "disconnected");

    // The refused post is audited under the viewer's name, like the API's.
    assert!(
        wait_for(15, || {
            let audit = api_json(&gw, "/api/v1/audit?limit=100");
            let list = audit.as_array().unwrap();
            list.iter().any(|a| {
                a["actor"] == "desk" && a["action"] == "domain.suspend" && a["outcome"] != "ok"
            }) && list.iter().any(|a| {
                a["actor"] == "root" && a["action"] == "domain.disconnect" && a["outcome"] == "ok"
            }) && list.iter().any(|a| {
                a["actor"] == "root" && a["action"] == "domain.update" && a["outcome"] == "ok"
            })
        }),
        "{:#}",
        api_json(&gw, "/api/v1/audit?limit=100")
    );
}

/// One message over SMTP from `from` to `to`; the final reply's code.
fn mail(gw: &Gateway, from: &str, to: &[&str]) -> u16 {
    let mut smtp = Smtp::greeted(gw.smtp);
    let r = smtp.send_mail(from, to, "Subject: traffic\r\n\r\nsome traffic\r\n");
    smtp.expect("QUIT", 221);
    r.code
}

/// The overview's panels show what real traffic did: deliveries per
/// minute, a sender throttled by the governor, the gateway's address
/// listed on a blocklist (named in a receiver's refusal) with its alarm;
/// a sender the governor suspended has, on the suspensions page, the chart
/// of the traffic that tripped the rule, as SVG with a text alternative.
#[test]
fn the_overview_and_a_tripped_suspension_show_real_traffic() {
    let Some(b) = browser("en-US") else { return };
    let mx = FakeMx::start(Behaviour::accept());
    let listed = FakeMx::start(Behaviour {
        rcpt_reply: Some(
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using \
             zen.spamhaus.org"
                .into(),
        ),
        ..Behaviour::accept()
    });
    // The ladder's first step is a throttle; after a reload, a suspension.
    let cfg = |step: &str| {
        format!(
            "[governor]\nrejection_min = 3\nrejection_share = 0.5\nunknown_min = 100000\n\
             ladder = [\"{step}\"]\n[delivery.routes]\n\"*\" = \"{}\"\n\
             \"listed.example\" = \"{}\"\n",
            mx.addr(),
            listed.addr()
        )
    };
    let gw = Gateway::start(&cfg("throttle"));
    gw.register(AGENCY, &["127.0.0.1"]);
    let clerk = format!("clerk@{AGENCY}");
    let far = ["a@far.example", "b@far.example", "c@far.example"];
    assert_eq!(mail(&gw, &clerk, &far), 250);
    // Refused for good (550 5.1.1) by the receiver, all four: throttled.
    let refused = |p: &str| -> Vec<String> {
        (0..4)
            .map(|i| format!("reject-{p}{i}@far.example"))
            .collect()
    };
    let m = refused("m");
    let m: Vec<&str> = m.iter().map(String::as_str).collect();
    let mallory = format!("mallory@{AGENCY}");
    assert_eq!(mail(&gw, &mallory, &m), 250);
    // A receiver names the gateway's address on a blocklist.
    assert_eq!(mail(&gw, &clerk, &["someone@listed.example"]), 250);
    let ready = wait_for(30, || {
        let g = api_json(&gw, "/api/v1/governor");
        g["deliveries"]["delivered_hour"].as_u64() >= Some(3)
            && g["throttled"]
                .as_array()
                .is_some_and(|t| t.iter().any(|s| s["scope"]["value"] == mallory.as_str()))
            && g["gateway_listings"][0]["address"] == "127.0.0.1"
    });
    assert!(ready, "{:#}", api_json(&gw, "/api/v1/governor"));

    // Now a trip suspends: eve's refused recipients.
    std::fs::write(&gw.config, config_text(&cfg("suspend"))).unwrap();
    let (st, body) = http(gw.admin, "POST", "/api/v1/reload", Some(ADMIN_TOKEN), None);
    assert_eq!(st, 200, "{body}");
    let e = refused("e");
    let e: Vec<&str> = e.iter().map(String::as_str).collect();
    let eve = format!("eve@{AGENCY}");
    assert_eq!(mail(&gw, &eve, &e), 250);
    let find = || {
        api_json(&gw, "/api/v1/suspensions")
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["scope"]["value"] == eve.as_str() && s["rule"] == "rejections")
            .cloned()
    };
    assert!(
        wait_for(30, || find().is_some()),
        "{:#}",
        api_json(&gw, "/api/v1/suspensions")
    );
    let rec = find().unwrap();
    // The evidence keeps the last hour in 5-minute buckets.
    let series = &rec["evidence"]["series"];
    let total = |k: &str| -> u64 {
        series[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    assert_eq!(series["bucket_seconds"], 300, "{rec:#}");
    assert_eq!(total("recipients"), 4, "{rec:#}");
    assert_eq!(total("rejected"), 4, "{rec:#}");

    // A viewer's overview: the panels with the real figures.
    sign_in(&b, &gw, VIEWER_TOKEN);
    let hour: u64 = b.text("#deliveries-hour").trim().parse().unwrap();
    assert!(hour >= 3, "{}", b.source());
    assert!(b.text("#throttled").contains(&mallory));
    assert!(b.text("#listing-refusals").contains("127.0.0.1"));
    assert!(b.text("#listing-refusals").contains("zen.spamhaus.org"));
    // The registry's record of the listing, and its alarm.
    let url = format!("{}/console", gw.admin_url());
    let recorded = wait_for(15, || {
        b.goto(&url);
        b.try_find("#listings").is_some()
    });
    assert!(recorded, "{}", b.source());
    assert!(b.text("#listings").contains("zen.spamhaus.org"));
    assert!(
        b.text("#alarms").contains("127.0.0.1"),
        "{}",
        b.text("#alarms")
    );
    assert!(b.try_find("svg#deliveries-chart").is_some());
    shot(&b, "overview-traffic");
    b.script("window.scrollTo(0, document.body.scrollHeight); return 0;");
    shot(&b, "overview-traffic-lower");

    // The suspension's chart: SVG, named and described for screen readers.
    b.goto(&format!("{}/console/suspensions", gw.admin_url()));
    let id = format!("chart-{}", rec["id"]);
    wait_page(&b, &format!("id=\"{id}\""));
    let svg = b.script(&format!(
        "const s = document.getElementById('{id}');
         return [s.tagName, s.getAttribute('role'), s.querySelector('title').textContent,
                 s.querySelector('desc').textContent, s.querySelectorAll('rect').length];"
    ));
    assert_eq!(svg[0], "svg", "{svg}");
    assert_eq!(svg[1], "img", "{svg}");
    assert!(svg[2].as_str().unwrap().contains(&eve), "{svg}");
    assert!(
        svg[3]
            .as_str()
            .unwrap()
            .contains("Refused by receivers: 0, 0"),
        "{svg}"
    );
    assert!(svg[4].as_u64().unwrap() >= 2, "{svg}");
    // And the figures against their limits: 4 refusals, the limit 3.
    let figures = b.script(&format!(
        "return document.getElementById('{id}-figures').querySelector('desc').textContent;"
    ));
    assert!(
        figures.as_str().unwrap().contains("4 (limit 3)"),
        "{figures}"
    );
    shot(&b, "suspension-chart");
}

/// One HTTPS request trusting `cert`, with cookies and a form body;
/// (status, headers, body).
fn https_form(
    addr: SocketAddr,
    cert: &std::path::Path,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
) -> (u16, String, String) {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(cfg), "127.0.0.1".try_into().unwrap())
            .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    exchange(&mut tls, addr, method, path, cookies, form)
}

/// The `Set-Cookie` line of `head` that sets `name`.
fn set_cookie_line(head: &str, name: &str) -> String {
    head.lines()
        .find(|l| {
            l.to_ascii_lowercase().starts_with("set-cookie:") && l.contains(&format!(" {name}="))
        })
        .unwrap_or_else(|| panic!("no cookie {name}: {head}"))
        .to_string()
}

/// Over HTTPS (admin.tls_cert) the console's cookies are Secure; over
/// plain HTTP they are not (a browser would drop them).
#[test]
fn over_https_the_console_cookies_are_secure() {
    let certs = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (certs.path().join("c.pem"), certs.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let gw = Gateway::start(&format!(
        "[admin]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let (st, head, body) = https_form(gw.admin, &cert, "GET", "/console/signin", "", "");
    assert_eq!(st, 200, "{head}");
    let line = set_cookie_line(&head, "ugem_console_signin");
    assert!(line.contains("; Secure"), "{line}");
    let pre = set_cookie(&head, "ugem_console_signin").unwrap();
    let (st, head, _) = https_form(
        gw.admin,
        &cert,
        "POST",
        "/console/signin",
        &format!("ugem_console_signin={pre}"),
        &format!("csrf={}&token={OPERATOR_TOKEN}", csrf_of(&body)),
    );
    assert_eq!(st, 303, "{head}");
    let line = set_cookie_line(&head, "ugem_console");
    for attr in [
        "; Path=/console",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Secure",
    ] {
        assert!(line.contains(attr), "{attr} missing: {line}");
    }
    let session = set_cookie(&head, "ugem_console").unwrap();
    let (st, _, page) = https_form(
        gw.admin,
        &cert,
        "GET",
        "/console",
        &format!("ugem_console={session}"),
        "",
    );
    assert_eq!(st, 200);
    assert!(page.contains("duty"), "{page}");

    // Over plain HTTP, no Secure attribute.
    let plain = Gateway::start("");
    let (_, head, _) = http_form(plain.admin, "GET", "/console/signin", "", "");
    assert!(
        !set_cookie_line(&head, "ugem_console_signin").contains("Secure"),
        "{head}"
    );
}

/// A session lasts only as long as its token: once a reload removes the
/// token, the next request goes back to the sign-in form. (Plain HTTP; no
/// browser needed.)
#[test]
fn a_session_ends_when_a_reload_removes_its_token() {
    let gw = Gateway::start("");
    let op = format!("ugem_console={}", http_sign_in(&gw, OPERATOR_TOKEN));
    let (st, _, page) = http_form(gw.admin, "GET", "/console", &op, "");
    assert_eq!(st, 200);
    assert!(page.contains("duty"), "{page}");
    // The same configuration with only the administrator's token.
    let only_root = format!(
        "[admin]\ntokens = [{{ name = \"root\", role = \"admin\", token = \"{ADMIN_TOKEN}\" }}]\n"
    );
    std::fs::write(&gw.config, config_text(&only_root)).unwrap();
    let (st, body) = http(gw.admin, "POST", "/api/v1/reload", Some(ADMIN_TOKEN), None);
    assert_eq!(st, 200, "{body}");
    let (st, head, _) = http_form(gw.admin, "GET", "/console", &op, "");
    assert_eq!(st, 303, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("location: /console/signin"),
        "{head}"
    );
}
