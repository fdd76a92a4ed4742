//! Reading a configuration: the TOML text, `UGEM_<SECTION>__<KEY>`
//! environment overrides on top (through the `config` crate), retired
//! keys taken out, every key parsed on its own, then the sections' checks.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{
    AdminSection, AlarmsSection, Config, ConfigError, ConfigProblem, ConnectionsSection,
    DeliverySection, RegistrationSection, ServerSection, SmtpSection,
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
    pub(super) fn name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Text { .. } => "(embedded default)".into(),
        }
    }
}

impl Config {
    /// Loads, overrides from the process environment, and validates.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(source, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        source: &ConfigSource,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<ConfigProblem>| ConfigError {
            source_name: source.name(),
            problems,
        };
        let (text, base) = match source {
            ConfigSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    fail(vec![ConfigProblem {
                        key: String::new(),
                        message: format!("cannot read {}: {e}", path.display()),
                    }])
                })?;
                let base = path
                    .parent()
                    .map(|p| {
                        if p.as_os_str().is_empty() {
                            PathBuf::from(".")
                        } else {
                            p.to_path_buf()
                        }
                    })
                    .unwrap_or_else(|| PathBuf::from("."));
                (text, base)
            }
            ConfigSource::Text { text, base } => (text.clone(), base.clone()),
        };
        let base = std::path::absolute(&base).unwrap_or(base);

        let env_map: config::Map<String, String> = env
            .iter()
            // Only UGEM_<SECTION>__<KEY>: UGEM_CONFIG and UGEM_ADMIN_TOKEN are not keys.
            .filter(|(k, _)| k.strip_prefix("UGEM_").is_some_and(|r| r.contains("__")))
            .cloned()
            .collect();
        let built = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("UGEM")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env_map)),
            )
            .build()
            .map_err(|e| {
                fail(vec![ConfigProblem {
                    key: String::new(),
                    message: format!("not valid TOML: {e}"),
                }])
            })?;
        let tree: serde_json::Value = built.try_deserialize().map_err(|e| {
            fail(vec![ConfigProblem {
                key: String::new(),
                message: e.to_string(),
            }])
        })?;

        let mut tree = tree;
        let retired = crate::governor::settings::strip_retired(&mut tree);
        let problems = check_keys(&tree);
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        let mut cfg: Config = serde_json::from_value(tree).map_err(|e| {
            fail(vec![ConfigProblem {
                key: String::new(),
                message: e.to_string(),
            }])
        })?;
        cfg.governor.retired = retired;
        cfg.resolve_paths(&base);
        let mut problems: Vec<ConfigProblem> = cfg.make_data_dir().into_iter().collect();
        problems.extend(cfg.check());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(fail(problems))
        }
    }

    /// Makes the data folder, which the checks then expect to exist.
    fn make_data_dir(&self) -> Option<ConfigProblem> {
        let dir = &self.server.data_dir;
        if let Err(e) = std::fs::create_dir_all(dir) {
            Some(ConfigProblem::new(
                "server.data_dir",
                format!("cannot create {}: {e}", dir.display()),
            ))
        } else if !dir.is_dir() {
            Some(ConfigProblem::new(
                "server.data_dir",
                format!("{} is not a folder", dir.display()),
            ))
        } else {
            None
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.server.data_dir);
        if let Some(p) = self.smtp.tls_cert.as_mut() {
            abs(p);
        }
        if let Some(p) = self.smtp.tls_key.as_mut() {
            abs(p);
        }
        if let Some(p) = self.delivery.tls_ca_file.as_mut() {
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
}

/// Parses every known key on its own so that each bad key is reported.
fn check_keys(tree: &serde_json::Value) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    let Some(top) = tree.as_object() else {
        out.push(ConfigProblem {
            key: String::new(),
            message: "the configuration must be a table".into(),
        });
        return out;
    };
    for (section, value) in top {
        let result = match section.as_str() {
            "server" => check_section::<ServerSection>(section, value),
            "smtp" => check_section::<SmtpSection>(section, value),
            "delivery" => check_section::<DeliverySection>(section, value),
            "admin" => check_section::<AdminSection>(section, value),
            "connections" => check_section::<ConnectionsSection>(section, value),
            "alarms" => check_section::<AlarmsSection>(section, value),
            "governor" => {
                check_section::<super::GovernorSection>(section, value)
            }
            "registration" => check_section::<RegistrationSection>(section, value),
            _ => vec![ConfigProblem {
                key: section.clone(),
                message: "unknown section (known: server, smtp, delivery, admin, connections, registration, alarms, governor)"
                    .into(),
            }],
        };
        out.extend(result);
    }
    out
}

/// Deserializes a section one key at a time (every field has a default).
fn check_section<T: DeserializeOwned>(
    section: &str,
    value: &serde_json::Value,
) -> Vec<ConfigProblem> {
    let Some(map) = value.as_object() else {
        return vec![ConfigProblem {
            key: section.into(),
            message: "must be a table".into(),
        }];
    };
    let mut out = Vec::new();
    for (key, v) in map {
        let mut one = serde_json::Map::new();
        one.insert(key.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(serde_json::Value::Object(one)) {
            let msg = e.to_string();
            let msg = if msg.starts_with("unknown field") {
                msg.replacen("unknown field", "unknown key", 1)
            } else {
                msg
            };
            out.push(ConfigProblem {
                key: format!("{section}.{key}"),
                message: msg,
            });
        }
    }
    out
}
