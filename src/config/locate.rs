//! Where a key's value was written: the line and column in the TOML file
//! (from toml's spanned document), or the `UGEM_*` variable that set it.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigProblem, Origin};

/// The places of one configuration's keys.
pub(super) struct Places<'t> {
    file: String,
    text: &'t str,
    doc: Option<Spanned<DeTable<'t>>>,
    /// `(dotted key, variable)` of every override from the environment.
    env: Vec<(String, String)>,
}

impl<'t> Places<'t> {
    /// Parses `text` (named `file`); returns the places, or the TOML
    /// syntax errors, each placed.
    pub(super) fn new(
        file: &str,
        text: &'t str,
        env: &[(String, String)],
    ) -> (Self, Vec<ConfigProblem>) {
        let (doc, errors) = DeTable::parse_recoverable(text);
        let mut places = Places {
            file: file.to_string(),
            text,
            doc: None,
            env: env
                .iter()
                .filter_map(|(var, _)| Some((env_key(var)?, var.clone())))
                .collect(),
        };
        let problems: Vec<ConfigProblem> = errors
            .iter()
            .map(|e| {
                let p = ConfigProblem::new("", format!("not valid TOML: {}", e.message()));
                match e.span() {
                    Some(span) => p.at(places.file_origin(span.start)),
                    None => p,
                }
            })
            .collect();
        if problems.is_empty() {
            places.doc = Some(doc);
        }
        (places, problems)
    }

    /// Sets where `problem`'s value came from, if that can be told: the
    /// environment variable that set it, else the value in the file (the
    /// key itself for an unknown key), else the header of its section.
    pub(super) fn place(&self, problem: &mut ConfigProblem) {
        if problem.key.is_empty() || problem.origin.is_some() {
            return;
        }
        let key = problem.key.as_str();
        if let Some((_, var)) = self.env.iter().find(|(k, _)| {
            key == k
                || key
                    .strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        }) {
            problem.origin = Some(Origin::Environment {
                variable: var.clone(),
            });
            return;
        }
        let Some(doc) = &self.doc else { return };
        let unknown = problem.message.starts_with("unknown key");
        let found = find(doc.get_ref(), key)
            .map(|(k, v)| if unknown { k.start } else { v.span().start })
            .or_else(|| {
                let section = key.split(['.', '[']).next().unwrap_or(key);
                find(doc.get_ref(), section).map(|(k, _)| k.start)
            });
        if let Some(offset) = found {
            problem.origin = Some(self.file_origin(offset));
        }
    }

    fn file_origin(&self, offset: usize) -> Origin {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Origin::File {
            file: self.file.clone(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// The dotted key an environment variable sets (`UGEM_SMTP__MAX_RECIPIENTS`
/// -> `smtp.max_recipients`), as the `config` crate reads it.
pub(super) fn env_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("UGEM_")?;
    rest.contains("__")
        .then(|| rest.to_lowercase().replace("__", "."))
}

/// The key's span and its value in `table`. Map keys may hold dots
/// (`delivery.tls_policy."*.gov.kz"`), so every split is tried; `name[i]`
/// is the i-th element of an array.
fn find<'a, 't>(
    table: &'a DeTable<'t>,
    path: &str,
) -> Option<(Range<usize>, &'a Spanned<DeValue<'t>>)> {
    let (name, index) = match path.strip_suffix(']').and_then(|p| p.rsplit_once('[')) {
        Some((name, i)) => match i.parse::<usize>() {
            Ok(i) => (name, Some(i)),
            Err(_) => (path, None),
        },
        None => (path, None),
    };
    if let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref() == name) {
        return match index {
            None => Some((k.span(), v)),
            Some(i) => {
                let item = v.get_ref().as_array()?.get(i)?;
                Some((item.span(), item))
            }
        };
    }
    path.match_indices('.').find_map(|(i, _)| {
        let (_, v) = table.iter().find(|(k, _)| k.get_ref() == &path[..i])?;
        find(v.get_ref().as_table()?, &path[i + 1..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str, key: &str, message: &str) -> Option<Origin> {
        let (places, errors) = Places::new("f.toml", text, &[]);
        assert!(errors.is_empty(), "{errors:?}");
        let mut p = ConfigProblem::new(key, message);
        places.place(&mut p);
        p.origin
    }

    fn at(line: usize, column: usize) -> Option<Origin> {
        Some(Origin::File {
            file: "f.toml".into(),
            line,
            column,
        })
    }

    #[test]
    fn values_keys_and_sections_are_found() {
        let text = "[smtp]\nlisten = [\"x\"]\nmax_recipients = \"ten\"\n[delivery.tls_policy]\n\"*.gov.kz\" = \"verify\"\n[admin]\ntokens = [{ name = \"a\" }, { name = \"b\" }]\n";
        assert_eq!(origin(text, "smtp.max_recipients", "bad"), at(3, 18));
        assert_eq!(origin(text, "smtp.max_recipients", "unknown key"), at(3, 1));
        assert_eq!(
            origin(text, "delivery.tls_policy.*.gov.kz", "bad"),
            at(5, 14)
        );
        assert_eq!(origin(text, "admin.tokens[1]", "bad"), at(7, 27));
        // Not written: its section's header; no section: nowhere.
        assert_eq!(origin(text, "smtp.max_errors", "bad"), at(1, 2));
        assert_eq!(origin(text, "alarms.repeat", "bad"), None);
    }

    #[test]
    fn the_environment_wins_and_syntax_errors_are_placed() {
        let env = vec![("UGEM_SMTP__MAX_RECIPIENTS".to_string(), "x".to_string())];
        let (places, _) = Places::new("f.toml", "[smtp]\nmax_recipients = 3\n", &env);
        let mut p = ConfigProblem::new("smtp.max_recipients", "bad");
        places.place(&mut p);
        assert_eq!(
            p.origin,
            Some(Origin::Environment {
                variable: "UGEM_SMTP__MAX_RECIPIENTS".into()
            })
        );
        let (_, errors) = Places::new("f.toml", "[smtp]\nmax_recipients = = 3\nx = [\n", &[]);
        assert!(!errors.is_empty());
        assert!(
            matches!(errors[0].origin, Some(Origin::File { line: 2, .. })),
            "{errors:?}"
        );
    }
}
