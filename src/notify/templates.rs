//! The notice templates: embedded files (`templates/notices/<name>.<lang>.txt`)
//! that staff may replace with files of the same name in
//! `[notify] templates_dir`, read each time a notice is written so that a
//! change needs no rebuild or restart.
//!
//! A notice template's first line is its subject, the second is empty, the
//! rest is the body; a part (`footer`, `governor_advice`, `scope`) is all body. The
//! language is MiniJinja's (`{{ value }}`, `{% if %}`, `{% for %}`); a value
//! a template names must be one the gateway gives it, so an override with a
//! typo is refused (and reported by `check-config`) and the embedded
//! template is used instead.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};

use crate::model::language::Lang;

/// Why a template could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct TemplateError {
    /// The file (or `embedded:<name>.<lang>.txt`).
    pub file: String,
    /// What is wrong with it.
    pub message: String,
}

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(
            ($name, [
                include_str!(concat!("../../templates/notices/", $name, ".kk.txt")),
                include_str!(concat!("../../templates/notices/", $name, ".ru.txt")),
                include_str!(concat!("../../templates/notices/", $name, ".en.txt")),
            ]),
        )*]
    };
}

/// Every template, by name: its Kazakh, Russian and English text.
const EMBEDDED: &[(&str, [&str; 3])] = embedded!(
    "footer",
    "governor_advice",
    "scope",
    "application_approved",
    "application_rejected",
    "domain_disconnected",
    "deadline_alert",
    "calendar_review",
    "domain_updated",
    "disconnection_scheduled",
    "disconnection_reminder",
    "disconnection_cancelled",
    "unregistered_servers",
    "server_suspended",
    "server_restored",
    "change_request_rejected",
    "governor_warning",
    "scope_suspended",
    "scope_restored",
    "gateway_listed",
    "blocklist_listed",
    "blocklist_delisted",
    "blocklist_refused",
    "queue_alarm",
    "reconfirm_reminder",
);

/// Templates that are parts of a notice (no subject line).
const PARTS: &[&str] = &["footer", "governor_advice", "scope"];

/// Values every template may use besides its own: the notice's number and
/// date, the gateway's host name and the postmaster's address.
pub const COMMON: &[&str] = &["number", "date", "gateway", "postmaster"];

/// Names MiniJinja reports as undeclared that are its own functions.
const BUILTINS: &[&str] = &["range", "dict", "namespace", "debug"];

/// The names of every template.
pub fn names() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|(n, _)| *n)
}

fn embedded(name: &str, lang: Lang) -> Option<&'static str> {
    let (_, texts) = EMBEDDED.iter().find(|(n, _)| *n == name)?;
    Some(match lang {
        Lang::Kk => texts[0],
        Lang::Ru => texts[1],
        Lang::En => texts[2],
    })
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    // A value the gateway did not give is an error, never an empty gap.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env
}

/// The values a template named `name` may use: those its embedded versions
/// use (the gateway gives each of them) and the common ones.
fn allowed(name: &str) -> &'static BTreeSet<String> {
    static ALLOWED: OnceLock<HashMap<&'static str, BTreeSet<String>>> = OnceLock::new();
    let all = ALLOWED.get_or_init(|| {
        let env = env();
        EMBEDDED
            .iter()
            .map(|(n, texts)| {
                let mut set: BTreeSet<String> = COMMON.iter().map(|s| s.to_string()).collect();
                for t in texts {
                    let tpl = env
                        .template_from_str(t)
                        .expect("embedded templates compile (unit-tested)");
                    set.extend(tpl.undeclared_variables(false));
                }
                (*n, set)
            })
            .collect()
    });
    static EMPTY: BTreeSet<String> = BTreeSet::new();
    all.get(name).unwrap_or(&EMPTY)
}

/// Compiles `source` as template `name` and checks its shape and values.
fn check_source(name: &str, source: &str, file: &str) -> Result<(), TemplateError> {
    let bad = |message: String| TemplateError {
        file: file.to_string(),
        message,
    };
    let env = env();
    let tpl = env
        .template_from_str(source)
        .map_err(|e| bad(format!("syntax error: {e}")))?;
    let mut unknown: Vec<String> = tpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !allowed(name).contains(v) && !BUILTINS.contains(&v.as_str()))
        .collect();
    unknown.sort();
    if !unknown.is_empty() {
        let known: Vec<&str> = allowed(name).iter().map(|s| s.as_str()).collect();
        return Err(bad(format!(
            "unknown value(s) {} (this template may use: {})",
            unknown.join(", "),
            known.join(", ")
        )));
    }
    if !PARTS.contains(&name) {
        let mut lines = source.lines();
        let subject = lines.next().unwrap_or("");
        if subject.trim().is_empty() || lines.next().is_some_and(|l| !l.trim().is_empty()) {
            return Err(bad(
                "the first line must be the subject and the second one empty".into(),
            ));
        }
    }
    Ok(())
}

/// The override file of `name` in `lang`, if `dir` is set.
fn override_path(dir: Option<&Path>, name: &str, lang: Lang) -> Option<PathBuf> {
    dir.map(|d| d.join(format!("{name}.{lang}.txt")))
}

/// The source to use: the override when there is a usable one, else the
/// embedded text (a broken override is logged and passed over).
fn source(dir: Option<&Path>, name: &str, lang: Lang) -> Result<String, TemplateError> {
    if let Some(path) = override_path(dir, name, lang)
        && path.exists()
    {
        let file = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => match check_source(name, &text, &file) {
                Ok(()) => return Ok(text),
                Err(e) => {
                    tracing::warn!(error = %e, "notice template override not used; the embedded one is")
                }
            },
            Err(e) => {
                tracing::warn!(file, error = %e, "notice template override unreadable; the embedded one is used")
            }
        }
    }
    embedded(name, lang)
        .map(str::to_string)
        .ok_or_else(|| TemplateError {
            file: format!("embedded:{name}.{lang}.txt"),
            message: "no such template".into(),
        })
}

/// Renders template `name` in `lang` with `vars`: the whole text.
pub fn render_part(
    dir: Option<&Path>,
    name: &str,
    lang: Lang,
    vars: &serde_json::Value,
) -> Result<String, TemplateError> {
    let src = source(dir, name, lang)?;
    let env = env();
    let fail = |e: minijinja::Error| TemplateError {
        file: format!("{name}.{lang}.txt"),
        message: e.to_string(),
    };
    let tpl = env.template_from_str(&src).map_err(fail)?;
    tpl.render(vars).map_err(fail)
}

/// Renders notice template `name` in `lang`: its subject and body.
pub fn render_notice(
    dir: Option<&Path>,
    name: &str,
    lang: Lang,
    vars: &serde_json::Value,
) -> Result<(String, String), TemplateError> {
    let text = render_part(dir, name, lang, vars)?;
    let (subject, body) = text.split_once('\n').unwrap_or((&text, ""));
    Ok((
        subject.trim().to_string(),
        body.trim_start_matches(['\r', '\n']).to_string(),
    ))
}

/// Every override in `dir` that would not be used, and why: a syntax
/// error, an unknown value, a file for no known template or language.
pub fn check_overrides(dir: &Path) -> Vec<TemplateError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // A folder that is not there yet holds no overrides.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.push(TemplateError {
                file: dir.display().to_string(),
                message: format!("cannot read the folder: {e}"),
            });
            return out;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let file = path.display().to_string();
        let Some(fname) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(stem) = fname.strip_suffix(".txt") else {
            continue;
        };
        let bad = |message: String| TemplateError {
            file: file.clone(),
            message,
        };
        let Some((name, lang)) = stem.rsplit_once('.') else {
            out.push(bad("not named <notice>.<lang>.txt".into()));
            continue;
        };
        let lang: Lang = match lang.parse() {
            Ok(l) => l,
            Err(e) => {
                out.push(bad(e));
                continue;
            }
        };
        if embedded(name, lang).is_none() {
            out.push(bad(format!(
                "no notice `{name}` (known: {})",
                names().collect::<Vec<_>>().join(", ")
            )));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => out.extend(check_source(name, &text, &file).err()),
            Err(e) => out.push(bad(format!("cannot read: {e}"))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_template_compiles_and_has_its_shape() {
        for (name, _) in EMBEDDED {
            for lang in Lang::ALL {
                let src = embedded(name, lang).unwrap();
                check_source(name, src, &format!("{name}.{lang}")).unwrap();
            }
        }
    }

    #[test]
    fn overrides_are_used_and_broken_ones_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let vars = serde_json::json!({
            "name": "a.example.kz", "owner": "Agency", "on": "2026-03-02",
            "number": "2026-000001", "date": "2026-03-01 10:00", "gateway": "gw", "postmaster": "pm@gw",
        });
        let own = "Бас тарту {{ name }}\n\nМәтін {{ number }}\n";
        std::fs::write(dir.path().join("disconnection_cancelled.kk.txt"), own).unwrap();
        let (s, b) =
            render_notice(Some(dir.path()), "disconnection_cancelled", Lang::Kk, &vars).unwrap();
        assert_eq!(s, "Бас тарту a.example.kz");
        assert_eq!(b, "Мәтін 2026-000001\n");
        assert!(check_overrides(dir.path()).is_empty());

        std::fs::write(
            dir.path().join("disconnection_cancelled.kk.txt"),
            "S {{ nmae }}\n\nx\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("disconnection_cancelled.ru.txt"),
            "S {% if %}\n\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("nothing.en.txt"), "S\n\nx").unwrap();
        std::fs::write(dir.path().join("footer.de.txt"), "x").unwrap();
        let problems = check_overrides(dir.path());
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{text:#?}");
        assert!(
            text.iter().any(|t| t.contains("unknown value(s) nmae")),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.contains("syntax error")), "{text:#?}");
        assert!(
            text.iter().any(|t| t.contains("no notice `nothing`")),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.contains("`de`")), "{text:#?}");
        // The broken override is passed over: the embedded template is used.
        let (s, _) =
            render_notice(Some(dir.path()), "disconnection_cancelled", Lang::Kk, &vars).unwrap();
        assert!(s.contains("a.example.kz"), "{s}");
        assert_ne!(s, "S a.example.kz");
    }
}
