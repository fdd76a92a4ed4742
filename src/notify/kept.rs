//! A notice as the node's outbox keeps it while the shared store cannot
//! give its outgoing number: what `mail.rs` writes there and `outbox.rs`
//! reads back.

use serde::{Deserialize, Serialize};

use super::notices::Text;
use crate::model::language::Lang;

/// A notice as the outbox keeps it until it can be numbered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deferred {
    /// Its recipients.
    pub to: Vec<String>,
    /// The template's name.
    pub name: String,
    /// The template's values.
    pub vars: serde_json::Value,
    /// The recipients' languages.
    #[serde(default)]
    pub languages: Vec<Lang>,
    /// Part templates rendered into it.
    #[serde(default)]
    pub parts: Vec<String>,
}

/// Why a kept notice cannot be written again.
#[derive(Debug, thiserror::Error)]
pub enum DeferredError {
    /// It names a template this build does not have.
    #[error("the kept notice names an unknown template {0:?}")]
    UnknownTemplate(String),
    /// It is not a kept notice.
    #[error("the kept notice cannot be read: {0}")]
    Decode(#[from] serde_json::Error),
}

impl Deferred {
    /// `text` to `to`, kept.
    pub fn new(to: &[String], text: &Text) -> Deferred {
        Deferred {
            to: to.to_vec(),
            name: text.name.to_string(),
            vars: text.vars.clone(),
            languages: text.languages.clone(),
            parts: text.parts.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The notice again (its template names are this build's own).
    pub fn text(&self) -> Result<Text, DeferredError> {
        let known = |n: &str| {
            super::templates::names()
                .find(|k| *k == n)
                .ok_or_else(|| DeferredError::UnknownTemplate(n.to_string()))
        };
        let mut parts = Vec::new();
        for p in &self.parts {
            parts.push(known(p)?);
        }
        Ok(Text {
            name: known(&self.name)?,
            vars: self.vars.clone(),
            languages: self.languages.clone(),
            parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_notice_is_the_same_notice_again() {
        let text = Text::new("scope_suspended", serde_json::json!({"scope": "a@b.kz"}))
            .in_languages(&[Lang::Ru])
            .with_part("governor_advice");
        let kept = Deferred::new(&["it@b.kz".to_string()], &text);
        let back: Deferred = serde_json::from_value(serde_json::to_value(&kept).unwrap()).unwrap();
        assert_eq!(back.text().unwrap(), text);
        let mut odd = kept.clone();
        odd.name = "no_such_template".into();
        assert!(matches!(
            odd.text(),
            Err(DeferredError::UnknownTemplate(n)) if n == "no_such_template"
        ));
    }
}
