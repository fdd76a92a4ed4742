//! What is wrong with a configuration: one problem per key, where it was
//! written (file line and column, or environment variable), and the error
//! that carries all of them.

use std::fmt;

use serde::Serialize;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Origin {
    /// Written in a file, at this line and column (both from 1).
    File {
        /// The file as given.
        file: String,
        /// Line, from 1.
        line: usize,
        /// Column in characters, from 1.
        column: usize,
    },
    /// Set by an environment variable (`UGEM_<SECTION>__<KEY>`).
    Environment {
        /// The variable's name.
        variable: String,
    },
}

/// One problem in a configuration, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key, e.g. `smtp.listen`; empty for file-level problems.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
    /// Where the offending value was written, when that is known (a value
    /// left at its default has no place).
    pub origin: Option<Origin>,
}

impl ConfigProblem {
    /// A problem with `key`, not yet placed.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
            origin: None,
        }
    }

    /// The problem as one JSON object (for `check-config --json`):
    /// severity, key, message, and where: source (`file`, `environment`,
    /// or null when unknown), file, line, column, variable.
    pub fn to_json(&self, severity: &str) -> serde_json::Value {
        let (source, file, line, column, variable) = match &self.origin {
            Some(Origin::File { file, line, column }) => (
                Some("file"),
                Some(file.as_str()),
                Some(*line),
                Some(*column),
                None,
            ),
            Some(Origin::Environment { variable }) => (
                Some("environment"),
                None,
                None,
                None,
                Some(variable.as_str()),
            ),
            None => (None, None, None, None, None),
        };
        serde_json::json!({
            "severity": severity,
            "key": self.key,
            "message": self.message,
            "source": source,
            "file": file,
            "line": line,
            "column": column,
            "variable": variable,
        })
    }

    /// The same problem placed at `origin`.
    pub fn at(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `file:line:col: ` first, as compilers write it, so editors can jump there.
        if let Some(Origin::File { file, line, column }) = &self.origin {
            write!(f, "{file}:{line}:{column}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(Origin::Environment { variable }) = &self.origin {
            write!(f, " (set by the environment variable {variable})")?;
        }
        Ok(())
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// Where the configuration came from.
    pub source_name: String,
    /// The problems, in file order of sections.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} problem(s) in configuration {}:",
            self.problems.len(),
            self.source_name
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placed_problem_says_where() {
        let p = ConfigProblem::new("smtp.max_recipients", "invalid type").at(Origin::File {
            file: "ugem.toml".into(),
            line: 3,
            column: 18,
        });
        assert_eq!(
            p.to_string(),
            "ugem.toml:3:18: smtp.max_recipients: invalid type"
        );
        let p = ConfigProblem::new("smtp.max_recipients", "invalid type").at(Origin::Environment {
            variable: "UGEM_SMTP__MAX_RECIPIENTS".into(),
        });
        assert!(
            p.to_string()
                .ends_with("(set by the environment variable UGEM_SMTP__MAX_RECIPIENTS)")
        );
    }
}
