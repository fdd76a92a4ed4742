//! `[notify]`: the languages of notices and where staff's template files are.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use super::lists::one_or_many;
use crate::model::language::Lang;

/// `[notify]`: the languages of notices and where staff's template files are.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySection {
    /// Languages of a notice, in order, for domains without a choice of their
    /// own and for the postmaster's notices; several are one message, each
    /// after the other. `UGEM_NOTIFY__LANGUAGES=kk,ru` works too.
    #[serde(deserialize_with = "one_or_many")]
    pub languages: Vec<Lang>,
    /// A folder of template files `<notice>.<lang>.txt` that replace the
    /// embedded ones (read when a notice is written, so no rebuild or
    /// restart is needed); unset: the embedded templates only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
}

impl Default for NotifySection {
    fn default() -> Self {
        NotifySection {
            // The languages of the people who receive them.
            languages: vec![Lang::Kk, Lang::Ru],
            templates_dir: None,
        }
    }
}

impl NotifySection {
    /// What is wrong with the section's values.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.languages.is_empty() {
            out.push(ConfigProblem::new(
                "notify.languages",
                "give at least one of kk, ru, en",
            ));
        }
        for (i, l) in self.languages.iter().enumerate() {
            if self.languages[..i].contains(l) {
                out.push(ConfigProblem::new(
                    "notify.languages",
                    format!("`{l}` is given twice"),
                ));
            }
        }
        if let Some(d) = &self.templates_dir
            && d.exists()
            && !d.is_dir()
        {
            out.push(ConfigProblem::new(
                "notify.templates_dir",
                format!("{} is not a folder", d.display()),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MINIMAL, keys, load};
    use super::*;

    #[test]
    fn languages_parse_from_the_file_and_the_environment() {
        let cfg = load(MINIMAL, &[]).unwrap();
        assert_eq!(cfg.notify.languages, [Lang::Kk, Lang::Ru]);
        assert_eq!(cfg.notify.templates_dir, None);
        let cfg = load(
            &format!("{MINIMAL}[notify]\nlanguages = [\"en\"]\ntemplates_dir = \"tpl\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.notify.languages, [Lang::En]);
        assert!(cfg.notify.templates_dir.unwrap().is_absolute());
        let cfg = load(MINIMAL, &[("UGEM_NOTIFY__LANGUAGES", "ru,kk")]).unwrap();
        assert_eq!(cfg.notify.languages, [Lang::Ru, Lang::Kk]);
        for bad in [
            "languages = [\"de\"]",
            "languages = []",
            "languages = [\"kk\", \"kk\"]",
        ] {
            let err = load(&format!("{MINIMAL}[notify]\n{bad}\n"), &[]).unwrap_err();
            assert_eq!(keys(&err), ["notify.languages"], "{bad}: {err}");
        }
        let err = load(
            &format!("{MINIMAL}[registration]\nreconfirm_every = \"1h\"\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(keys(&err), ["registration.reconfirm_every"], "{err}");
    }
}
