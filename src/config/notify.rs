//! `[notify]`: the languages of notices and where staff's template files are.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::model::language::Lang;

/// `[notify]`: the languages of notices and where staff's template files are.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySection {
    /// Languages of a notice, in order, for domains without a choice of their
    /// own and for the postmaster's notices; several are one message, each
    /// after the other.
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
