//! A notice in its recipients' languages: each language's text from its
//! template, one after the other, under one outgoing number.

use chrono::{DateTime, FixedOffset};

use super::notices::Text;
use super::templates::{self, TemplateError};
use crate::config::Config;
use crate::model::language::Lang;

/// Between the languages of one notice.
pub const SEPARATOR: &str = "\n========================================\n\n";

/// A notice's subject and body, ready for the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subjects of every language, joined by ` / `.
    pub subject: String,
    /// Every language's body and footer, in order, with [`SEPARATOR`] between.
    pub body: String,
    /// The languages, in order.
    pub languages: Vec<Lang>,
}

/// The outgoing number as printed: `2026-000123`.
pub fn number_text(year: i32, n: u64) -> String {
    format!("{year}-{n:06}")
}

/// Renders `text` with its number and local date, in its languages (the
/// domain's, or `[notify] languages`).
pub fn render(
    cfg: &Config,
    text: &Text,
    number: &str,
    date: DateTime<FixedOffset>,
) -> Result<Rendered, TemplateError> {
    let languages = if text.languages.is_empty() {
        cfg.notify.languages.clone()
    } else {
        text.languages.clone()
    };
    let languages = if languages.is_empty() {
        vec![Lang::En]
    } else {
        languages
    };
    let dir = cfg.notify.templates_dir.as_deref();
    let mut vars = match &text.vars {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    vars.insert("number".into(), number.into());
    vars.insert(
        "date".into(),
        date.format("%Y-%m-%d %H:%M %:z").to_string().into(),
    );
    vars.insert("gateway".into(), cfg.server.hostname.to_string().into());
    vars.insert(
        "postmaster".into(),
        cfg.server.postmaster.to_string().into(),
    );
    let mut subjects = Vec::new();
    let mut sections = Vec::new();
    for &lang in &languages {
        let mut vars = vars.clone();
        for part in &text.parts {
            let v = serde_json::Value::Object(vars.clone());
            let t = templates::render_part(dir, part, lang, &v)?;
            vars.insert((*part).into(), t.trim_end().into());
        }
        let v = serde_json::Value::Object(vars);
        let (subject, body) = templates::render_notice(dir, text.name, lang, &v)?;
        let footer = templates::render_part(dir, "footer", lang, &v)?;
        subjects.push(subject);
        sections.push(format!("{}\n\n{}", body.trim_end(), footer.trim_end()));
    }
    Ok(Rendered {
        subject: subjects.join(" / "),
        body: sections.join(SEPARATOR) + "\n",
        languages,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::changes::FieldChange;
    use crate::store::contract;

    /// Renders `text` in each language alone and in the default pair, and
    /// checks what every notice must have.
    pub(crate) fn check_all_languages(text: &Text, words: &[(Lang, &str)]) {
        let cfg = Config::default();
        let date = chrono::DateTime::parse_from_rfc3339("2026-03-02T10:00:00+05:00").unwrap();
        for lang in Lang::ALL {
            let r = render(
                &cfg,
                &text.clone().in_languages(&[lang]),
                "2026-000042",
                date,
            )
            .unwrap_or_else(|e| panic!("{} in {lang}: {e}", text.name));
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{r:?}");
            assert!(r.body.contains("2026-000042"), "{}: {}", text.name, r.body);
            assert!(r.body.contains("2026-03-02 10:00 +05:00"), "{}", r.body);
            assert!(
                !r.body.contains("{{") && !r.body.contains("{%"),
                "{}",
                r.body
            );
            assert!(!r.body.contains("\n\n\n"), "{}: {}", text.name, r.body);
            for (l, w) in words {
                if *l == lang {
                    assert!(
                        r.subject.contains(w) || r.body.contains(w),
                        "{} in {lang} lacks {w:?}: {}\n{}",
                        text.name,
                        r.subject,
                        r.body
                    );
                }
            }
        }
        let both = render(&cfg, text, "2026-000042", date).unwrap();
        if text.languages.is_empty() {
            assert_eq!(both.languages, [Lang::Kk, Lang::Ru]);
            assert_eq!(both.body.matches(SEPARATOR).count(), 1, "{}", both.body);
            assert_eq!(both.subject.matches(" / ").count(), 1, "{}", both.subject);
        }
    }

    #[test]
    fn every_notice_renders_in_every_language() {
        let cfg = Config::default();
        let d = contract::domain("agency.example.kz");
        let mut app = contract::application("agency.example.kz");
        app.decided_on = Some("2026-03-03".parse().unwrap());
        app.reason = Some("no decree attached".into());
        let day: chrono::NaiveDate = "2026-03-10".parse().unwrap();
        let plain = |t: Text| t.in_languages(&[]);
        let cases: Vec<(Text, Vec<(Lang, &str)>)> = vec![
            (
                plain(crate::notify::notices::application_approved(&cfg, &app, &d)),
                vec![
                    (Lang::Kk, "мақұлданды"),
                    (Lang::Ru, "одобрена"),
                    (Lang::En, "approved"),
                ],
            ),
            (
                crate::notify::notices::application_rejected(&cfg, &app, Some(day)),
                vec![
                    (Lang::Kk, "қабылданбады"),
                    (Lang::Ru, "2026-03-10"),
                    (Lang::En, "no decree attached"),
                ],
            ),
            (
                plain(crate::notify::notices::domain_disconnected(&cfg, &d)),
                vec![
                    (Lang::Kk, "ажыратылды"),
                    (Lang::Ru, "отключён"),
                    (Lang::En, "disconnected"),
                ],
            ),
            (
                crate::notify::notices::deadline_alert(
                    &cfg,
                    &app,
                    app.decision_due + chrono::Days::new(3),
                    -2,
                ),
                vec![
                    (Lang::Kk, "МЕРЗІМІ ӨТТІ"),
                    (Lang::Ru, "СРОК ИСТЁК"),
                    (Lang::En, "OVERDUE"),
                ],
            ),
            (
                crate::notify::notices::calendar_review(&cfg, &[2028]),
                vec![(Lang::Kk, "2028"), (Lang::Ru, "2028"), (Lang::En, "2028")],
            ),
            (
                plain(crate::notify::notices::reconfirm_reminder(
                    &cfg,
                    &d,
                    "2025-03-10".parse().unwrap(),
                    day,
                )),
                vec![
                    (Lang::Kk, "растау"),
                    (Lang::Ru, "подтвержд"),
                    (Lang::En, "confirm"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::domain_updated(
                    &cfg,
                    &d,
                    &[FieldChange {
                        field: "servers".into(),
                        before: serde_json::json!(["192.0.2.1/32"]),
                        after: serde_json::json!(["192.0.2.2/32"]),
                    }],
                    "moved",
                )),
                vec![
                    (Lang::Kk, "192.0.2.2/32"),
                    (Lang::Ru, "было:  192.0.2.1/32"),
                    (Lang::En, "now:    192.0.2.2/32"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::disconnection_scheduled(
                    &cfg, &d, day, "closed",
                )),
                vec![
                    (Lang::Kk, "ажыратылады"),
                    (Lang::Ru, "будет отключён"),
                    (Lang::En, "will be disconnected"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::disconnection_reminder(
                    &cfg, &d, day, 5,
                )),
                vec![
                    (Lang::Kk, "Еске саламыз"),
                    (Lang::Ru, "Напоминаем"),
                    (Lang::En, "Reminder"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::disconnection_cancelled(
                    &cfg, &d, day,
                )),
                vec![
                    (Lang::Kk, "тоқтатылды"),
                    (Lang::Ru, "отменено"),
                    (Lang::En, "cancelled"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::unregistered_servers(
                    &cfg,
                    &d,
                    &[contract::sighting(
                        "agency.example.kz",
                        "203.0.113.9",
                        3,
                        chrono::Utc::now(),
                    )],
                )),
                vec![
                    (Lang::Kk, "203.0.113.9"),
                    (Lang::Ru, "отказов: 3"),
                    (Lang::En, "3 refusal(s)"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::server_suspended(
                    &cfg,
                    &d,
                    &contract::server_suspension("192.0.2.1"),
                    4,
                )),
                vec![
                    (Lang::Kk, "тоқтатылды"),
                    (Lang::Ru, "приостановлена"),
                    (Lang::En, "suspended"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::server_restored(
                    &cfg,
                    &d,
                    &contract::server_suspension("192.0.2.1"),
                    4,
                )),
                vec![
                    (Lang::Kk, "қалпына келтірілді"),
                    (Lang::Ru, "восстановлена"),
                    (Lang::En, "restored"),
                ],
            ),
            (
                plain(crate::notify::lifecycle::change_request_rejected(
                    &cfg,
                    &d,
                    &contract::change_request("agency.example.kz"),
                )),
                vec![
                    (Lang::Kk, "сұрау"),
                    (Lang::Ru, "запрос"),
                    (Lang::En, "change request"),
                ],
            ),
            (
                crate::notify::alarms::alarm_text(
                    &cfg,
                    &ugem_queue::Counts {
                        total: 20_000,
                        ..Default::default()
                    },
                    0,
                ),
                vec![
                    (Lang::Kk, "20000"),
                    (Lang::Ru, "20000"),
                    (Lang::En, "20000 messages are queued"),
                ],
            ),
        ];
        for (text, words) in &cases {
            check_all_languages(text, words);
        }
    }

    #[test]
    fn a_domain_s_languages_win_over_the_default() {
        let cfg = Config::default();
        let mut d = contract::domain("agency.example.kz");
        d.languages = vec![Lang::Ru, Lang::En];
        let t = crate::notify::lifecycle::disconnection_cancelled(
            &cfg,
            &d,
            "2026-03-10".parse().unwrap(),
        );
        let date = chrono::DateTime::parse_from_rfc3339("2026-03-02T10:00:00+05:00").unwrap();
        let r = render(&cfg, &t, "2026-000001", date).unwrap();
        assert_eq!(r.languages, [Lang::Ru, Lang::En]);
        let (ru, en) = r.body.split_once(SEPARATOR).unwrap();
        assert!(ru.contains("отменено") && !ru.contains("cancelled"), "{ru}");
        assert!(en.contains("cancelled"), "{en}");
        assert!(
            r.subject
                .contains("отменено / agency.example.kz: scheduled"),
            "{}",
            r.subject
        );
    }
}
