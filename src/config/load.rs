//! Reading a configuration: the TOML text, `UGEM_<SECTION>__<KEY>`
//! environment overrides on top (through the `config` crate), retired
//! keys taken out, every key parsed on its own, then the sections' checks.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::locate::{Places, env_key};
use super::{
    AdminSection, AlarmsSection, Config, ConfigError, ConfigProblem, ConnectionsSection,
    DeliverySection, GovernorSection, RegistrationSection, ServerSection, SmtpSection,
    StoreSection,
};

/// Where a configuration is read from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A TOML file; relative paths resolve against its folder.
    File(PathBuf),
    /// TOML text (the embedded default); relative paths resolve against `base`.
    Text {
        /// The TOML.
        text: String,
        /// Folder for relative paths.
        base: PathBuf,
    },
}

impl ConfigSource {
    /// How the source is named in messages: its path, or `(embedded default)`.
    pub fn name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Text { .. } => "(embedded default)".into(),
        }
    }
}

/// What loading may do besides reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effects {
    /// Make the data folder (`serve` and the admin verbs).
    MakeDataDir,
    /// Nothing: `check-config` and `config show` leave the disk alone.
    None,
}

impl Config {
    /// Loads, overrides from the process environment, validates, and makes
    /// the data folder.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(source, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        source: &ConfigSource,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        read(source, env, Effects::MakeDataDir)
    }

    /// Like [`Config::load`] without side effects: the data folder is
    /// checked (that it is, or can become, a folder) but not made.
    pub fn examine(source: &ConfigSource) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::examine_with_env(source, &env)
    }

    /// Like [`Config::examine`] with an explicit environment (for tests).
    pub fn examine_with_env(
        source: &ConfigSource,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        read(source, env, Effects::None)
    }

    /// The built-in defaults with paths resolved as `source`'s are: what
    /// `config show --changed` compares against.
    pub fn defaults_for(source: &ConfigSource) -> Config {
        let mut cfg = Config::default();
        cfg.resolve_paths(&base_of(source));
        cfg
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.server.data_dir);
        if let Some(p) = self.registration.calendar.as_mut() {
            abs(p);
        }
        if let Some(p) = self.notify.templates_dir.as_mut() {
            abs(p);
        }
        if let Some(p) = self.smtp.tls_cert.as_mut() {
            abs(p);
        }
        if let Some(p) = self.smtp.tls_key.as_mut() {
            abs(p);
        }
        if let Some(p) = self.delivery.tls_ca_file.as_mut() {
            abs(p);
        }
        if let Some(p) = self.delivery.dnssec_trust_anchor.as_mut() {
            abs(p);
        }
        if let Some(p) = self.store.password_file.as_mut() {
            abs(p);
        }
        if let Some(p) = self.store.tls_ca_file.as_mut() {
            abs(p);
        }
        for p in [
            &mut self.admin.tls_cert,
            &mut self.admin.tls_key,
            &mut self.admin.tls_ca_file,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
    }

    /// Whether the data folder is, or can become, a folder (nothing is made).
    pub(super) fn data_dir_problem(&self) -> Option<ConfigProblem> {
        let dir = &self.server.data_dir;
        let not_folder = |p: &Path| {
            Some(ConfigProblem::new(
                "server.data_dir",
                format!("{} is not a folder", p.display()),
            ))
        };
        if dir.exists() {
            return if dir.is_dir() { None } else { not_folder(dir) };
        }
        match dir.ancestors().skip(1).find(|a| a.exists()) {
            Some(a) if !a.is_dir() => not_folder(a),
            _ => None,
        }
    }

    /// Makes the data folder.
    fn make_data_dir(&self) -> Option<ConfigProblem> {
        let dir = &self.server.data_dir;
        std::fs::create_dir_all(dir).err().map(|e| {
            ConfigProblem::new(
                "server.data_dir",
                format!("cannot create {}: {e}", dir.display()),
            )
        })
    }
}

/// The `UGEM_<SECTION>__<KEY>` variables of `env`; `UGEM_CONFIG` and
/// `UGEM_ADMIN_TOKEN` are not keys.
fn overrides(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| env_key(k).is_some())
        .cloned()
        .collect()
}

/// The TOML text of `source` and the folder relative paths resolve against.
fn read_text(source: &ConfigSource) -> Result<(String, PathBuf), ConfigProblem> {
    let text = match source {
        ConfigSource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| ConfigProblem::new("", format!("cannot read {}: {e}", path.display())))?,
        ConfigSource::Text { text, .. } => text.clone(),
    };
    Ok((text, base_of(source)))
}

/// The folder relative paths of `source` resolve against, made absolute.
fn base_of(source: &ConfigSource) -> PathBuf {
    let base = match source {
        ConfigSource::File(path) => match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
        ConfigSource::Text { base, .. } => base.clone(),
    };
    std::path::absolute(&base).unwrap_or(base)
}

/// The file's tree with the environment's overrides on top.
fn merge(text: &str, env: &[(String, String)]) -> Result<serde_json::Value, ConfigProblem> {
    let env_map: config::Map<String, String> = env.iter().cloned().collect();
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("UGEM")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env_map)),
        )
        .build()
        .map_err(|e| ConfigProblem::new("", format!("not valid TOML: {e}")))?
        .try_deserialize()
        .map_err(|e| ConfigProblem::new("", e.to_string()))
}

/// Reads, merges, parses key by key, checks; every problem found is
/// reported, each placed in the file or the environment.
fn read(
    source: &ConfigSource,
    env: &[(String, String)],
    effects: Effects,
) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<ConfigProblem>| ConfigError {
        source_name: source.name(),
        problems,
    };
    let (text, base) = read_text(source).map_err(|p| fail(vec![p]))?;
    let env = overrides(env);
    let (places, syntax) = Places::new(&source.name(), &text, &env);
    if !syntax.is_empty() {
        return Err(fail(syntax));
    }
    let mut tree = merge(&text, &env).map_err(|p| fail(vec![p]))?;
    let retired = crate::governor::settings::strip_retired(&mut tree);
    // Bad keys are taken out (their defaults stand in) so that the checks
    // of the other keys still run and report too.
    let mut problems = check_keys(&mut tree);
    let mut cfg: Config = serde_json::from_value(tree)
        .map_err(|e| fail(vec![ConfigProblem::new("", e.to_string())]))?;
    cfg.governor.retired = retired;
    cfg.resolve_paths(&base);
    // `section.key` of every key that did not parse (whole or in part).
    let unparsed: Vec<String> = problems
        .iter()
        .filter(|p| !p.key.is_empty())
        .map(|p| p.key.split('[').next().unwrap_or(&p.key).to_string())
        .collect();
    problems.extend(cfg.data_dir_problem());
    problems.extend(cfg.registration.load_calendar());
    problems.extend(cfg.check().into_iter().filter(|p| {
        // A check about a key that did not parse, or naming one, judged a
        // default (or what was left of the value): not the operator's value.
        !unparsed.iter().any(|k| {
            let within = p
                .key
                .strip_prefix(k.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
            within || p.message.contains(k.as_str())
        })
    }));
    if problems.is_empty() && effects == Effects::MakeDataDir {
        problems.extend(cfg.make_data_dir());
    }
    if problems.is_empty() {
        return Ok(cfg);
    }
    for p in &mut problems {
        places.place(p);
    }
    // In the order an editor shows them: the file's top to bottom, then
    // the environment, then the rest (stable: section order within each).
    problems.sort_by_key(|p| match &p.origin {
        Some(super::Origin::File { line, column, .. }) => (0, *line, *column),
        Some(super::Origin::Environment { .. }) => (1, 0, 0),
        None => (2, 0, 0),
    });
    Err(fail(problems))
}

/// Parses every known key on its own so that each bad key is reported;
/// takes the bad ones (and unknown sections) out of `tree`.
fn check_keys(tree: &mut serde_json::Value) -> Vec<ConfigProblem> {
    let Some(top) = tree.as_object_mut() else {
        return vec![ConfigProblem::new("", "the configuration must be a table")];
    };
    let mut out = Vec::new();
    top.retain(|section, value| {
        let found = match section.as_str() {
            "server" => check_section::<ServerSection>(section, value),
            "smtp" => check_section::<SmtpSection>(section, value),
            "delivery" => check_section::<DeliverySection>(section, value),
            "admin" => check_section::<AdminSection>(section, value),
            "connections" => check_section::<ConnectionsSection>(section, value),
            "alarms" => check_section::<AlarmsSection>(section, value),
            "governor" => check_section::<GovernorSection>(section, value),
            "registration" => check_section::<RegistrationSection>(section, value),
            "dnsbl" => check_section::<super::DnsblSection>(section, value),
            "tlsrpt" => check_section::<super::TlsRptSection>(section, value),
            "store" => check_section::<StoreSection>(section, value),
            "notify" => check_section::<super::NotifySection>(section, value),
            _ => Err(ConfigProblem::new(
                section.clone(),
                "unknown section (known: server, smtp, delivery, admin, connections, registration, alarms, governor, store, notify, dnsbl, tlsrpt)",
            )),
        };
        match found {
            Ok(problems) => {
                out.extend(problems);
                true
            }
            Err(p) => {
                out.push(p);
                false
            }
        }
    });
    out
}

/// Deserializes a section one key at a time (every field has a default),
/// taking out the keys that fail; `Err` when it is not a table at all.
fn check_section<T: DeserializeOwned>(
    section: &str,
    value: &mut serde_json::Value,
) -> Result<Vec<ConfigProblem>, ConfigProblem> {
    let Some(map) = value.as_object_mut() else {
        return Err(ConfigProblem::new(section, "must be a table"));
    };
    let mut out = Vec::new();
    map.retain(|key, v| match parses::<T>(key, v.clone()) {
        Ok(()) => true,
        Err(message) => {
            // A list of tables or a table of entries: each bad item on its
            // own (`admin.tokens[1]`, `delivery.routes.x`), the good ones kept.
            let items = bad_items::<T>(key, v);
            if items.is_empty() {
                out.push(ConfigProblem::new(format!("{section}.{key}"), message));
                return false;
            }
            for (item, message) in items {
                out.push(ConfigProblem::new(
                    format!("{section}.{key}{item}"),
                    message,
                ));
            }
            // What is left must parse, or the key goes whole.
            parses::<T>(key, v.clone()).is_ok()
        }
    });
    Ok(out)
}

/// Whether `key = value` alone parses as section `T`; the message if not.
fn parses<T: DeserializeOwned>(key: &str, value: serde_json::Value) -> Result<(), String> {
    let mut one = serde_json::Map::new();
    one.insert(key.to_string(), value);
    serde_json::from_value::<T>(serde_json::Value::Object(one))
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            match msg.strip_prefix("unknown field") {
                Some(rest) => format!("unknown key{rest}"),
                None => msg,
            }
        })
}

/// The items of a list of tables, or the entries of a table, that do not
/// parse, taken out of `value`: `([i] or .name, message)` each. Empty when
/// the value is neither, or no single item is to blame.
fn bad_items<T: DeserializeOwned>(
    key: &str,
    value: &mut serde_json::Value,
) -> Vec<(String, String)> {
    use serde_json::Value;
    let mut out = Vec::new();
    match value {
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let results: Vec<Result<(), String>> = items
                .iter()
                .map(|item| parses::<T>(key, Value::Array(vec![item.clone()])))
                .collect();
            let mut keep = results.iter().map(Result::is_ok);
            items.retain(|_| keep.next().unwrap_or(true));
            for (i, r) in results.into_iter().enumerate() {
                if let Err(message) = r {
                    out.push((format!("[{i}]"), message));
                }
            }
        }
        Value::Object(entries) => {
            entries.retain(|name, item| {
                let mut one = serde_json::Map::new();
                one.insert(name.clone(), item.clone());
                match parses::<T>(key, Value::Object(one)) {
                    Ok(()) => true,
                    Err(message) => {
                        out.push((format!(".{name}"), message));
                        false
                    }
                }
            });
        }
        _ => {}
    }
    out
}
