//! Notices in Kazakh, Russian and English end to end, through the `ugem`
//! binary (issue #16 items 7 and 5): each domain's languages (and the
//! default pair, one after the other), valid RFC 5322 / MIME as read back
//! by mail-parser from the postmaster's Maildir, outgoing numbers that only
//! grow (restarts included), staff's template overrides (used after a
//! reload, a broken one reported by check-config and passed over), and the
//! yearly re-confirmation reminder: sent once, not again after a restart,
//! cleared by `ugem domain confirm`.

mod common;

use common::*;
use mail_parser::MimeHeaders;
use serde_json::Value;

/// Every notice's contacts are the postmaster, so they land in the Maildir.
const CONTACT: &str = "Duty Officer <postmaster@gw.test.example>";

const CONFIG: &str = r#"
[server]
postmaster_mailbox = true
[notify]
languages = ["kk", "ru"]
templates_dir = "templates"
"#;

/// One delivered notice, parsed back.
#[derive(Debug, Clone)]
struct Notice {
    raw: String,
    subject: String,
    body: String,
    number: String,
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Every message in the postmaster's Maildir, parsed with mail-parser; a
/// notice must be a valid 7-bit RFC 5322 message with UTF-8 quoted-printable text.
fn notices(gw: &Gateway) -> Vec<Notice> {
    let mut out = Vec::new();
    for path in files_under(&gw.data_dir().join("mailbox")) {
        if path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            == Some("tmp")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let raw = String::from_utf8(bytes.clone()).expect("7-bit message");
        let msg = mail_parser::MessageParser::default()
            .parse(&bytes)
            .unwrap_or_else(|| panic!("{} does not parse", path.display()));
        assert!(raw.is_ascii(), "8-bit data in {raw}");
        let ct = msg.content_type().expect("Content-Type");
        assert_eq!(ct.ctype(), "text");
        assert_eq!(ct.subtype(), Some("plain"));
        assert_eq!(ct.attribute("charset"), Some("utf-8"));
        assert!(
            raw.contains("\r\nContent-Transfer-Encoding: quoted-printable\r\n"),
            "{raw}"
        );
        assert!(raw.contains("\r\nMIME-Version: 1.0\r\n"), "{raw}");
        assert!(msg.date().is_some() && msg.message_id().is_some(), "{raw}");
        let number = msg
            .header_raw("X-Ugem-Notice-Number")
            .expect("numbered")
            .trim()
            .to_string();
        let body = msg.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(body.contains(&number), "the number {number} not in {body}");
        out.push(Notice {
            subject: msg.subject().unwrap_or_default().to_string(),
            raw,
            body,
            number,
        });
    }
    out.sort_by(|a, b| a.number.cmp(&b.number));
    out
}

/// Waits for the one notice whose subject contains `want`.
fn notice_about(gw: &Gateway, want: &str) -> Notice {
    let mut found = None;
    assert!(
        wait_for(20, || {
            found = notices(gw).into_iter().find(|n| n.subject.contains(want));
            found.is_some()
        }),
        "no notice about {want:?}: {:#?}",
        notices(gw).iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    found.unwrap()
}

/// `2026-000123` as a comparable pair.
fn parse_number(n: &str) -> (i32, u64) {
    let (y, k) = n.split_once('-').unwrap_or_else(|| panic!("number {n}"));
    assert_eq!(k.len(), 6, "{n}");
    (y.parse().unwrap(), k.parse().unwrap())
}

fn add(gw: &Gateway, domain: &str, server: &str, language: Option<&str>) {
    let mut args = vec![
        "domain",
        "add",
        domain,
        "--contact",
        CONTACT,
        "--server",
        server,
        "--reason",
        "test set-up",
    ];
    if let Some(l) = language {
        args.extend(["--language", l]);
    }
    gw.cli_ok(&args);
}

fn in_days(days: u64) -> String {
    (chrono::Utc::now() + chrono::Days::new(days))
        .date_naive()
        .to_string()
}

fn schedule(gw: &Gateway, domain: &str, on: &str) {
    gw.cli_ok(&[
        "domain",
        "disconnect",
        domain,
        "--on",
        on,
        "--reason",
        "the agency merged into MINFIN-77",
    ]);
}

#[test]
fn notices_are_written_in_each_domains_languages_numbered_and_overridable() {
    let gw = Gateway::start(CONFIG);
    add(&gw, "kk.example.kz", "192.0.2.1", Some("kk"));
    add(&gw, "ru.example.kz", "192.0.2.2", Some("ru"));
    add(&gw, "en.example.kz", "192.0.2.3", Some("en"));
    add(&gw, "both.example.kz", "192.0.2.4", None);
    let on = in_days(40);
    for d in [
        "kk.example.kz",
        "ru.example.kz",
        "en.example.kz",
        "both.example.kz",
    ] {
        schedule(&gw, d, &on);
    }

    let kk = notice_about(&gw, "kk.example.kz");
    assert_eq!(
        kk.subject,
        format!("kk.example.kz: {on} пошта шлюзінен ажырату")
    );
    assert!(kk.raw.contains("\r\nSubject: =?utf-8?B?"), "{}", kk.raw);
    for w in [
        "пошта домені",
        "ажыратылады",
        "Негіздеме:",
        "MINFIN-77",
        "Шығыс №",
        "+05:00",
    ] {
        assert!(kk.body.contains(w), "{w:?} not in {}", kk.body);
    }
    assert!(!kk.body.contains("Основание") && !kk.body.contains("Reason"));

    let ru = notice_about(&gw, "ru.example.kz");
    assert_eq!(
        ru.subject,
        format!("ru.example.kz: отключение от почтового шлюза {on}")
    );
    for w in [
        "Почтовый домен ru.example.kz",
        "будет отключён",
        "Основание:",
        "MINFIN-77",
        "Исходящий №",
    ] {
        assert!(ru.body.contains(w), "{w:?} not in {}", ru.body);
    }

    let en = notice_about(&gw, "en.example.kz");
    assert_eq!(
        en.subject,
        format!("en.example.kz: disconnection from the mail gateway on {on}")
    );
    assert!(
        en.raw.contains("\r\nSubject: en.example.kz: disconnection"),
        "{}",
        en.raw
    );
    for w in [
        "will be disconnected from the mail gateway",
        "Reason:",
        "MINFIN-77",
        "Outgoing notice No.",
    ] {
        assert!(en.body.contains(w), "{w:?} not in {}", en.body);
    }

    // The default: Kazakh, then Russian, in one message, one number.
    let both = notice_about(&gw, "both.example.kz");
    assert_eq!(
        both.subject,
        format!(
            "both.example.kz: {on} пошта шлюзінен ажырату / both.example.kz: отключение от почтового шлюза {on}"
        )
    );
    let (first, second) = both
        .body
        .split_once("\n========================================\n")
        .unwrap_or_else(|| panic!("no separator in {}", both.body));
    assert!(
        first.contains("ажыратылады") && !first.contains("будет отключён"),
        "{first}"
    );
    assert!(
        second.contains("будет отключён") && !second.contains("ажыратылады"),
        "{second}"
    );
    assert!(first.contains(&both.number) && second.contains(&both.number));

    // Numbers: one per notice, in the order they were sent.
    let numbers: Vec<(i32, u64)> = [&kk, &ru, &en, &both]
        .iter()
        .map(|n| parse_number(&n.number))
        .collect();
    for w in numbers.windows(2) {
        assert!(w[0] < w[1], "numbers do not grow: {numbers:?}");
    }

    // A staff template, used once the gateway is told to reload.
    let dir = gw.config.parent().unwrap().join("templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("disconnection_cancelled.ru.txt"),
        "Отмена отключения {{ name }} (решение № {{ number }})\n\n\
         Уважаемые коллеги! Отключение домена {{ name }}, назначенное на {{ on }}, отменено.\n",
    )
    .unwrap();
    gw.cli_ok(&["reload"]);
    gw.cli_ok(&["domain", "disconnect", "ru.example.kz", "--cancel"]);
    let own = notice_about(&gw, "Отмена отключения ru.example.kz");
    assert!(
        own.subject
            .ends_with(&format!("(решение № {})", own.number)),
        "{}",
        own.subject
    );
    assert!(
        own.body.contains(&format!("назначенное на {on}, отменено")),
        "{}",
        own.body
    );
    assert!(
        own.body.contains("Исходящий №"),
        "the footer stays: {}",
        own.body
    );

    // A broken one: check-config names it; the gateway uses the embedded one.
    std::fs::write(
        dir.join("disconnection_cancelled.kk.txt"),
        "{{ nmae }} ажырату тоқтатылды\n\nМәтін\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "check-config accepted a broken template: {err}"
    );
    assert!(
        err.contains("disconnection_cancelled.kk.txt") && err.contains("nmae"),
        "{err}"
    );
    assert!(
        !err.contains("disconnection_cancelled.ru.txt"),
        "the good one is fine: {err}"
    );
    // The gateway says so at the next reload, and uses the embedded one.
    gw.cli_ok(&["reload"]);
    assert!(
        wait_for(10, || gw
            .log_text()
            .contains("disconnection_cancelled.kk.txt")),
        "no warning about the broken template in the log"
    );
    gw.cli_ok(&["domain", "disconnect", "kk.example.kz", "--cancel"]);
    let embedded = notice_about(&gw, "kk.example.kz: жоспарланған ажырату тоқтатылды");
    assert!(
        embedded.body.contains("Домен қосулы күйінде қалады"),
        "{}",
        embedded.body
    );

    // Numbers never repeat, restarts included.
    let before = notices(&gw)
        .iter()
        .map(|n| parse_number(&n.number))
        .max()
        .unwrap();
    let mut gw = gw;
    gw.terminate();
    gw.spawn();
    schedule(&gw, "kk.example.kz", &in_days(50));
    assert!(
        wait_for(20, || notices(&gw).len() == 7),
        "{:#?}",
        notices(&gw)
    );
    let after = notices(&gw);
    let all: std::collections::BTreeSet<String> = after.iter().map(|n| n.number.clone()).collect();
    assert_eq!(all.len(), 7, "a number was given twice: {all:?}");
    let last = after.iter().map(|n| parse_number(&n.number)).max().unwrap();
    assert!(last > before, "{last:?} after {before:?}");
}

fn due_list(gw: &Gateway) -> Vec<Value> {
    json(&gw.cli_ok(&["--json", "domain", "reconfirm-due"]))
        .as_array()
        .unwrap()
        .clone()
}

fn reminders(gw: &Gateway) -> Vec<Notice> {
    notices(gw)
        .into_iter()
        .filter(|n| n.subject.contains("ежегодное подтверждение"))
        .collect()
}

#[test]
fn the_yearly_reconfirmation_is_reminded_once_and_confirming_clears_it() {
    let mut gw = Gateway::start(CONFIG);
    add(&gw, "agency.example.kz", "192.0.2.10", Some("ru"));
    assert!(due_list(&gw).is_empty(), "a new domain is not due");

    // The agency's last confirmation, by letter, is more than a year old.
    let old = (chrono::Utc::now() - chrono::Days::new(400)).date_naive();
    gw.cli_ok(&[
        "domain",
        "confirm",
        "agency.example.kz",
        "--on",
        &old.to_string(),
    ]);
    let due = due_list(&gw);
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["domain"], "agency.example.kz");
    assert_eq!(due[0]["since"], old.to_string());
    let due_on = (old + chrono::Days::new(365)).to_string();
    assert_eq!(due[0]["due"], due_on);
    assert_eq!(due[0]["reminded"], false);

    // The reminders run with the deadline alerts: at start, among others.
    gw.terminate();
    gw.spawn();
    assert!(
        wait_for(20, || reminders(&gw).len() == 1),
        "no reminder: {:#?}",
        notices(&gw).iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    let r = &reminders(&gw)[0];
    assert_eq!(
        r.subject,
        "agency.example.kz: требуется ежегодное подтверждение регистрационных данных"
    );
    for w in [
        format!("последний раз подтверждены {old}"),
        format!("срок подтверждения наступил {due_on}"),
        "192.0.2.10/32".to_string(),
        "Duty Officer <postmaster@gw.test.example>".to_string(),
        "Исходящий №".to_string(),
    ] {
        assert!(r.body.contains(&w), "{w:?} not in {}", r.body);
    }
    assert!(
        wait_for(10, || due_list(&gw)[0]["reminded"] == true),
        "{:?}",
        due_list(&gw)
    );

    // Not again after a restart. Another domain falls due meanwhile: its
    // reminder shows that the round at start ran, and it passed over the
    // first one.
    add(&gw, "second.example.kz", "192.0.2.11", Some("en"));
    gw.cli_ok(&[
        "domain",
        "confirm",
        "second.example.kz",
        "--on",
        &old.to_string(),
    ]);
    gw.terminate();
    gw.spawn();
    notice_about(
        &gw,
        "second.example.kz: yearly confirmation of the registered data is due",
    );
    assert_eq!(reminders(&gw).len(), 1, "reminded twice");

    // Staff record the confirmation: off the list, next one a cycle on.
    let rec = json(&gw.cli_ok(&["--json", "domain", "confirm", "agency.example.kz"]));
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600).unwrap())
        .date_naive();
    assert_eq!(rec["confirmed"]["on"], today.to_string());
    assert_eq!(rec["confirmed"]["by"], "root");
    assert_eq!(
        rec["next_due"],
        (today + chrono::Days::new(365)).to_string()
    );
    let due = due_list(&gw);
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["domain"], "second.example.kz");
    let audit = gw.cli_ok(&["--json", "audit", "--limit", "50"]);
    assert!(audit.contains("domain.confirm"), "{audit}");

    // A date in the future is refused.
    let out = gw.cli(
        ADMIN_TOKEN,
        &[
            "domain",
            "confirm",
            "agency.example.kz",
            "--on",
            &in_days(3),
        ],
    );
    assert!(!out.status.success());
}

/// `application submit` for `domain` with `--language lang`; its id.
fn apply(gw: &Gateway, domain: &str, server: &str, lang: &str) -> u64 {
    let out = gw.cli_ok(&[
        "--json",
        "application",
        "submit",
        "--domain",
        domain,
        "--owner",
        "Akimat of Examples",
        "--category",
        "local-government",
        "--head",
        "Asel Bekova",
        "--server",
        server,
        "--contact",
        "Duty Officer <postmaster@gw.test.example>; mobile=+7 701 000 0000; office=+7 (7172) 00-00-00",
        "--language",
        lang,
    ]);
    let v = json(&out);
    v["application"]["id"]
        .as_u64()
        .or_else(|| v["id"].as_u64())
        .unwrap_or_else(|| panic!("no id in {v}"))
}

#[test]
fn an_applications_languages_choose_its_notices_and_stay_with_the_domain() {
    let gw = Gateway::start(CONFIG);
    // Rejected: the reasons go out in the application's language only.
    let id = apply(&gw, "ru-app.example.kz", "192.0.2.21", "ru");
    gw.cli_ok(&[
        "application",
        "reject",
        &id.to_string(),
        "--reason",
        "нет подписи руководителя",
    ]);
    let rejected = notice_about(&gw, "ru-app.example.kz");
    assert!(
        rejected.body.contains("нет подписи руководителя"),
        "{}",
        rejected.body
    );
    assert!(
        !rejected.body.contains("өтінім") && !rejected.body.contains("Application"),
        "{}",
        rejected.body
    );

    // Approved: the notice in Kazakh only, and the domain keeps Kazakh.
    let id = apply(&gw, "kk-app.example.kz", "192.0.2.22", "kk");
    gw.cli_ok(&["application", "approve", &id.to_string()]);
    let approved = notice_about(&gw, "kk-app.example.kz");
    assert!(approved.body.contains("өтінім"), "{}", approved.body);
    assert!(
        !approved.body.contains("Заявка") && !approved.body.contains("Application"),
        "{}",
        approved.body
    );
    let shown = json(&gw.cli_ok(&["--json", "domain", "show", "kk-app.example.kz"]));
    let langs = shown["languages"]
        .as_array()
        .or_else(|| shown["domain"]["languages"].as_array())
        .unwrap_or_else(|| panic!("no languages in {shown}"));
    assert_eq!(langs, &[Value::from("kk")], "{shown}");
}
