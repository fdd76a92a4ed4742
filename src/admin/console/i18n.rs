//! The console's languages: Russian, Kazakh and English. The strings live
//! in `i18n/*.toml` (key = text), embedded in the binary; a key missing
//! from a language falls back to English (the unit tests make sure none is).

use std::collections::HashMap;
use std::sync::LazyLock;

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Russian.
    Ru,
    /// Kazakh (Cyrillic).
    Kk,
}

const SOURCES: [(Lang, &str); 3] = [
    (Lang::En, include_str!("i18n/en.toml")),
    (Lang::Ru, include_str!("i18n/ru.toml")),
    (Lang::Kk, include_str!("i18n/kk.toml")),
];

type Table = HashMap<String, String>;

static TABLES: LazyLock<[Table; 3]> =
    LazyLock::new(|| SOURCES.map(|(_, src)| parse(src).unwrap_or_default()));

fn parse(src: &str) -> Result<Table, toml::de::Error> {
    let t: toml::Table = toml::from_str(src)?;
    Ok(t.into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
        .collect())
}

impl Lang {
    /// Every language, in the order the switcher shows them.
    pub const ALL: [Lang; 3] = [Lang::Ru, Lang::Kk, Lang::En];

    /// The BCP 47 code, also the `?lang=` value and the `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
            Lang::Kk => "kk",
        }
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ru => "Русский",
            Lang::Kk => "Қазақша",
        }
    }

    /// The language of a code (`ru`, `kk-KZ`, ...), if the console has it.
    pub fn parse(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The first language of an `Accept-Language` header the console has.
    pub fn from_accept(header: &str) -> Option<Lang> {
        header
            .split(',')
            .filter_map(|part| part.split(';').next())
            .find_map(Lang::parse)
    }

    fn index(self) -> usize {
        match self {
            Lang::En => 0,
            Lang::Ru => 1,
            Lang::Kk => 2,
        }
    }

    /// The text of `key`: this language's, else English, else the key.
    pub fn t(self, key: &'static str) -> &'static str {
        let tables: &'static [Table; 3] = &TABLES;
        tables[self.index()]
            .get(key)
            .or_else(|| tables[0].get(key))
            .map(String::as_str)
            .unwrap_or(key)
    }

    /// [`Lang::t`] with `{name}` placeholders filled in.
    pub fn tf(self, key: &'static str, args: &[(&str, &str)]) -> String {
        let mut s = self.t(key).to_string();
        for (k, v) in args {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The console's sources, scanned for the keys they use.
    const CODE: &[&str] = &[
        include_str!("mod.rs"),
        include_str!("layout.rs"),
        include_str!("actions.rs"),
        include_str!("pages/overview.rs"),
        include_str!("pages/domains.rs"),
        include_str!("pages/applications.rs"),
        include_str!("pages/queue.rs"),
        include_str!("pages/logs.rs"),
    ];

    fn keys_used() -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for src in CODE {
            for pat in [".t(\"", ".tf(\""] {
                for (i, _) in src.match_indices(pat) {
                    let rest = &src[i + pat.len()..];
                    if let Some(end) = rest.find('"') {
                        out.insert(rest[..end].to_string());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_language_parses_and_has_exactly_the_english_keys() {
        let en: BTreeSet<_> = parse(SOURCES[0].1).unwrap().into_keys().collect();
        assert!(en.len() > 50, "{} keys", en.len());
        for (lang, src) in &SOURCES[1..] {
            let t = parse(src).unwrap_or_else(|e| panic!("{lang:?}: {e}"));
            let keys: BTreeSet<_> = t.keys().cloned().collect();
            let missing: Vec<_> = en.difference(&keys).collect();
            let extra: Vec<_> = keys.difference(&en).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{lang:?}: missing {missing:?}, extra {extra:?}"
            );
            for (k, v) in &t {
                assert!(!v.trim().is_empty(), "{lang:?}: {k} is empty");
            }
        }
    }

    #[test]
    fn every_key_the_code_uses_is_translated() {
        let en = parse(SOURCES[0].1).unwrap();
        let used = keys_used();
        assert!(used.len() > 50, "scan found {} keys", used.len());
        let missing: Vec<_> = used.iter().filter(|k| !en.contains_key(*k)).collect();
        assert!(missing.is_empty(), "keys without text: {missing:?}");
    }

    #[test]
    fn russian_and_kazakh_are_cyrillic_and_differ() {
        assert_eq!(Lang::Ru.t("nav.domains"), "Домены");
        assert_eq!(Lang::Kk.t("nav.domains"), "Домендер");
        assert_eq!(Lang::En.t("nav.domains"), "Domains");
        assert_eq!(Lang::Ru.t("no.such.key"), "no.such.key");
    }

    #[test]
    fn languages_from_codes_and_accept_language() {
        assert_eq!(Lang::parse("kk-KZ"), Some(Lang::Kk));
        assert_eq!(Lang::parse("RU"), Some(Lang::Ru));
        assert_eq!(Lang::parse("de"), None);
        assert_eq!(
            Lang::from_accept("de-DE,de;q=0.9,ru;q=0.8,en;q=0.5"),
            Some(Lang::Ru)
        );
        assert_eq!(Lang::from_accept("fr"), None);
        assert_eq!(Lang::En.tf("x {n} y", &[("n", "5")]), "x 5 y");
    }
}
