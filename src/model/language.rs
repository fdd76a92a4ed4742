//! The languages notices are written in, and a domain's choice of them.

use serde::{Deserialize, Serialize};

/// A language the gateway writes notices in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Kazakh (Cyrillic script, the official one in 2026).
    Kk,
    /// Russian.
    Ru,
    /// English.
    En,
}

impl Lang {
    /// Every language, in the order templates are checked.
    pub const ALL: [Lang; 3] = [Lang::Kk, Lang::Ru, Lang::En];

    /// The ISO 639-1 code: `kk`, `ru`, `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Kk => "kk",
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kk" => Ok(Lang::Kk),
            "ru" => Ok(Lang::Ru),
            "en" => Ok(Lang::En),
            other => Err(format!("`{other}` is not a notice language (kk, ru, en)")),
        }
    }
}

/// Parses `kk,ru` (commas or spaces): one or more languages, each once, in
/// the order given (the order they appear in a notice).
pub fn parse_languages(s: &str) -> Result<Vec<Lang>, String> {
    let mut out: Vec<Lang> = Vec::new();
    for part in s.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
        let l: Lang = part.parse()?;
        if out.contains(&l) {
            return Err(format!("`{l}` is given twice"));
        }
        out.push(l);
    }
    if out.is_empty() {
        return Err("no language given (kk, ru, en)".into());
    }
    Ok(out)
}

/// `kk,ru`: the list as the command line takes it.
pub fn languages_text(langs: &[Lang]) -> String {
    langs.iter().map(|l| l.code()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_in_order_once_each() {
        assert_eq!(parse_languages("kk,ru").unwrap(), [Lang::Kk, Lang::Ru]);
        assert_eq!(parse_languages(" EN ").unwrap(), [Lang::En]);
        assert_eq!(parse_languages("ru kk").unwrap(), [Lang::Ru, Lang::Kk]);
        assert!(parse_languages("kk,kk").is_err());
        assert!(parse_languages("").is_err());
        assert!(parse_languages("kz").is_err());
        assert_eq!(languages_text(&[Lang::Kk, Lang::En]), "kk,en");
    }
}
