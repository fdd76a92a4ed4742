//! `ugem config show`: the effective configuration as a tree with its
//! secrets redacted, the part of it that differs from the defaults
//! (`--changed`, like `postconf -n`), and its form as TOML lines.

use serde_json::{Map, Value};

use super::Config;

/// What a secret is shown as.
pub const REDACTED: &str = "(redacted)";

/// The configuration as a JSON tree, secrets redacted.
pub fn effective(cfg: &Config) -> Value {
    let mut tree = serde_json::to_value(cfg).expect("the configuration serializes");
    redact(&mut tree, "");
    tree
}

/// The keys of `cfg` whose values differ from `default`'s, section by
/// section (a table-valued key, such as `delivery.routes`, counts whole).
pub fn changed(cfg: &Config, default: &Config) -> Value {
    let (now, was) = (effective(cfg), effective(default));
    let mut out = Map::new();
    for (section, keys) in now.as_object().into_iter().flatten() {
        let Some(keys) = keys.as_object() else {
            continue;
        };
        let differ: Map<String, Value> = keys
            .iter()
            .filter(|(k, v)| was.get(section).and_then(|s| s.get(k.as_str())) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !differ.is_empty() {
            out.insert(section.clone(), Value::Object(differ));
        }
    }
    Value::Object(out)
}

/// `section.key = value` lines, valid TOML (dotted keys, inline values);
/// unset keys are left out, TOML having no null.
pub fn toml_lines(tree: &Value) -> String {
    let mut out = String::new();
    for (section, keys) in tree.as_object().into_iter().flatten() {
        for (key, value) in keys.as_object().into_iter().flatten() {
            if let Some(v) = inline(value) {
                out.push_str(&format!("{section}.{} = {v}\n", toml_key(key)));
            }
        }
    }
    out
}

/// A value in TOML's inline syntax; `None` for null.
fn inline(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // JSON's string escapes are TOML's basic-string escapes.
        Value::String(s) => serde_json::to_string(s).expect("a string serializes"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().filter_map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) if map.is_empty() => "{}".to_string(),
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .filter_map(|(k, v)| Some(format!("{} = {}", toml_key(k), inline(v)?)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
    })
}

fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        serde_json::to_string(k).expect("a string serializes")
    }
}

/// Whether a key names a secret: tokens, their hashes, passwords.
fn is_secret(key: &str) -> bool {
    ["token", "sha256", "password", "secret"]
        .iter()
        .any(|s| key == *s || key.ends_with(&format!("_{s}")))
}

/// Replaces secrets in place: values of secret keys, and everything of a
/// webhook URL but its scheme and host (its path and query often carry a
/// token, its user part a password).
fn redact(v: &mut Value, key: &str) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                if is_secret(k) && !item.is_null() {
                    *item = Value::String(REDACTED.into());
                } else if key == "store"
                    && k == "url"
                    && let Value::String(url) = item
                {
                    *url = redact_password(url);
                } else {
                    redact(item, k);
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if key == "webhooks"
                    && let Value::String(url) = item
                {
                    *url = redact_url(url);
                } else {
                    redact(item, key);
                }
            }
        }
        _ => {}
    }
}

/// A database URL with the password of its user part (if any) redacted:
/// host, port, database and options stay, for the operator to check.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            let tail = &rest[authority.len()..];
            format!("{scheme}://{name}:{REDACTED}@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let tail = &rest[authority.len()..];
    match authority.rsplit_once('@') {
        None if tail.is_empty() || tail == "/" => url.to_string(),
        found => {
            let host = found.map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}/{REDACTED}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, EMBEDDED_DEFAULT, TokenEntry};

    fn shipped() -> Config {
        let dir = tempfile::tempdir().unwrap();
        Config::examine_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap()
    }

    #[test]
    fn secrets_are_redacted() {
        let mut cfg = shipped();
        cfg.admin.tokens.push(TokenEntry {
            name: "ops".into(),
            role: crate::config::Role::Operator,
            token: Some("a-long-secret-token-0123456789".into()),
            sha256: None,
        });
        cfg.governor.webhooks = vec![
            "https://hooks.example/services/T0/B0/s3cr3t".into(),
            "https://user:pw@alerts.example:8443/".into(),
            "http://alerts.example/".into(),
        ];
        cfg.store.url =
            Some("postgres://ugem:db-s3cret@db.example:5432/ugem?sslmode=require".into());
        let text = toml_lines(&effective(&cfg));
        assert!(
            text.contains(
                "store.url = \"postgres://ugem:(redacted)@db.example:5432/ugem?sslmode=require\""
            ),
            "{text}"
        );
        for secret in ["change-me-now", "a-long-secret-token", "s3cr3t", "pw@"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("admin.token = \"(redacted)\""), "{text}");
        assert!(
            text.contains("\"https://hooks.example/(redacted)\""),
            "{text}"
        );
        assert!(
            text.contains("\"https://alerts.example:8443/(redacted)\""),
            "{text}"
        );
        assert!(text.contains("\"http://alerts.example/\""), "{text}");
        assert!(text.contains("name = \"ops\""), "{text}");
    }

    #[test]
    fn the_lines_parse_back_to_the_same_configuration() {
        let mut cfg = shipped();
        cfg.delivery
            .tls_policy
            .insert(".gov.example".into(), crate::values::TlsPolicy::Verify);
        cfg.admin.token = Some("0123456789abcdef0123".into());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shown.toml");
        // Tokens are redacted, so give the file one to load with.
        let text = toml_lines(&effective(&cfg)).replace(REDACTED, "0123456789abcdef0123");
        std::fs::write(&path, &text).unwrap();
        let again = Config::examine_with_env(&ConfigSource::File(path), &[]).unwrap();
        assert_eq!(effective(&again), effective(&cfg), "{text}");
    }

    #[test]
    fn changed_keys_only() {
        let mut cfg = Config::default();
        cfg.smtp.max_recipients = 7;
        cfg.delivery
            .routes
            .insert("*".into(), "relay.example:25".parse().unwrap());
        let diff = changed(&cfg, &Config::default());
        assert_eq!(
            toml_lines(&diff),
            "delivery.routes = { \"*\" = \"relay.example:25\" }\nsmtp.max_recipients = 7\n"
        );
        assert_eq!(
            changed(&Config::default(), &Config::default()),
            Value::Object(Map::new())
        );
    }
}
