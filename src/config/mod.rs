//! Typed settings: a TOML file plus `UGEM_*` environment overrides.
//!
//! One file per section, each with its own `check`; `load` reads, merges
//! and parses. Loading happens in two passes so that `ugem check-config`
//! can name every problem at once: each key is first parsed on its own (so
//! one bad value does not hide the next), then every section checks its
//! values, and this root checks what spans sections.

mod admin;
mod alarms;
mod connections;
mod delivery;
mod dnsbl;
mod governor;
mod lists;
pub mod live;
mod load;
mod locate;
mod notify;
mod problem;
mod registration;
mod server;
pub mod show;
mod smtp;
mod store;
mod tlsrpt;

use serde::{Deserialize, Serialize};

pub use self::admin::{AdminSection, Role, SHIPPED_TOKEN, STRONG_TOKEN_LEN, TokenEntry};
pub use self::alarms::AlarmsSection;
pub use self::connections::ConnectionsSection;
pub use self::delivery::DeliverySection;
pub use self::dnsbl::{DEFAULT_ZONES, DnsblSection};
pub use self::governor::GovernorSection;
pub use self::live::{Live, Reloaded};
pub use self::load::ConfigSource;
pub use self::notify::NotifySection;
pub use self::problem::{ConfigError, ConfigProblem, Origin};
pub use self::registration::{DisconnectQueued, RegistrationSection, UtcOffset};
pub use self::server::{LogFormat, MAX_SHUTDOWN, MIN_SHUTDOWN, ServerSection, UNIT_TIMEOUT_STOP};
pub use self::smtp::{SmtpSection, VerifyUnsettled};
pub use self::store::StoreSection;
pub use self::tlsrpt::TlsRptSection;
pub use crate::values::{ByteSize, HostPort, PlainAddress, Span, TlsPolicy};

/// The configuration shipped in the binary; `ugem serve` uses it when no
/// `--config` is given (relative paths then resolve against the working folder).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/ugem.toml");

/// The whole configuration, with paths made absolute.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`
    pub server: ServerSection,
    /// `[smtp]`
    pub smtp: SmtpSection,
    /// `[delivery]`
    pub delivery: DeliverySection,
    /// `[admin]`
    pub admin: AdminSection,
    /// `[connections]`
    pub connections: ConnectionsSection,
    /// `[registration]`
    pub registration: RegistrationSection,
    /// `[alarms]`
    pub alarms: AlarmsSection,
    /// `[governor]`: rate limits, anomaly detection, automatic suspension.
    pub governor: GovernorSection,
    /// `[store]`: the embedded redb file, or PostgreSQL shared by several nodes.
    pub store: StoreSection,
    /// `[notify]`: languages of notices, staff's template files.
    pub notify: NotifySection,
    /// `[dnsbl]`: the gateway's own addresses on DNS blocklists.
    pub dnsbl: DnsblSection,
    /// `[tlsrpt]`: SMTP TLS reporting (RFC 8460).
    pub tlsrpt: TlsRptSection,
}

impl Config {
    /// What is allowed but unwise, for `check-config` and the log at start:
    /// a weak admin token on loopback, an API beyond loopback without TLS, a
    /// calendar missing a year.
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        let mut out = self.admin.warnings();
        out.extend(self.store.warnings());
        // The working-day calendar lacks this year, or in December the next.
        out.extend(self.registration.warnings_on(self.registration.today()));
        out
    }

    /// Every section's own checks, then those that span sections.
    fn check(&self) -> Vec<ConfigProblem> {
        let mut out = self.server.check();
        out.extend(self.smtp.check());
        if self.admin.listen.port() != 0 && self.smtp.listen.contains(&self.admin.listen) {
            out.push(ConfigProblem::new(
                "admin.listen",
                format!("{} is also in smtp.listen", self.admin.listen),
            ));
        }
        out.extend(self.delivery.check());
        out.extend(self.admin.check());
        out.extend(self.connections.check());
        out.extend(self.registration.check());
        out.extend(self.alarms.check());
        out.extend(self.store.check());
        out.extend(governor::check(&self.governor));
        out.extend(self.notify.check());
        out.extend(self.dnsbl.check());
        out.extend(self.tlsrpt.check());
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    pub(super) fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ugem.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = Config::load_with_env(&ConfigSource::File(path), &env);
        drop(dir);
        r
    }

    pub(super) const MINIMAL: &str = "[admin]\ntoken = \"0123456789\"\n";

    pub(super) fn keys(e: &ConfigError) -> Vec<&str> {
        e.problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn embedded_default_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap();
        assert!(cfg.server.data_dir.starts_with(dir.path()));
    }

    #[test]
    fn sizes_and_durations_take_units() {
        let cfg = load(
            &format!(
                "{MINIMAL}[smtp]\nmax_message_size = \"10MiB\"\ncommand_timeout = \"5m\"\nmax_header_size = 2048\n[connections]\nretention = \"30d\"\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.smtp.max_message_size.0, 10 << 20);
        assert_eq!(cfg.smtp.command_timeout.0, Duration::from_secs(300));
        assert_eq!(cfg.smtp.max_header_size.0, 2048);
        assert_eq!(cfg.connections.retention.0, Duration::from_secs(30 * 86400));
    }

    #[test]
    fn every_bad_key_is_named() {
        let err = load(
            &format!(
                "{MINIMAL}[smtp]\nlisten = [\"nonsense\"]\nlisen = 1\ncommand_timeout = \"5 parsecs\"\nmax_message_size = \"12 furlongs\"\n[bogus]\nx = 1\n"
            ),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in [
            "smtp.listen",
            "smtp.lisen",
            "smtp.command_timeout",
            "smtp.max_message_size",
            "bogus",
        ] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
        let text = err.to_string();
        assert!(text.contains("unknown key `lisen`"), "{text}");
    }

    #[test]
    fn environment_overrides_reach_nested_keys() {
        let cfg = load(
            MINIMAL,
            &[
                ("UGEM_SMTP__LISTEN", "127.0.0.1:3525,127.0.0.1:3526"),
                ("UGEM_SMTP__MAX_RECIPIENTS", "7"),
                ("UGEM_SERVER__HOSTNAME", "gw.example.kz"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.smtp.listen.len(), 2);
        assert_eq!(cfg.smtp.listen[0].port(), 3525);
        assert_eq!(cfg.smtp.max_recipients, 7);
        assert_eq!(cfg.server.hostname.as_str(), "gw.example.kz");
    }

    #[test]
    fn bad_environment_value_names_key() {
        let err = load(MINIMAL, &[("UGEM_SMTP__MAX_RECIPIENTS", "many")]).unwrap_err();
        assert_eq!(keys(&err), vec!["smtp.max_recipients"], "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_file_folder() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("etc");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("ugem.toml");
        std::fs::write(&path, format!("{MINIMAL}[server]\ndata_dir = \"spool\"\n")).unwrap();
        let cfg = Config::load_with_env(&ConfigSource::File(path), &[]).unwrap();
        assert_eq!(
            cfg.server.data_dir,
            std::path::absolute(sub.join("spool")).unwrap()
        );
        assert!(cfg.server.data_dir.is_dir());
    }

    #[test]
    fn semantic_checks() {
        let err = load(
            "[smtp]\ntls_cert = \"missing.pem\"\nmax_recipients = 0\n[admin]\ntokens = [{ name = \"ops\", role = \"operator\", sha256 = \"xyz\" }]\n",
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in ["smtp.tls_key", "smtp.max_recipients", "admin.tokens[0]"] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
    }

    #[test]
    fn a_bad_value_is_placed_at_its_line_and_column() {
        let err = load(&format!("{MINIMAL}[smtp]\nmax_recipients = \"ten\"\n"), &[]).unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.key, "smtp.max_recipients");
        match &p.origin {
            Some(Origin::File { line, column, .. }) => assert_eq!((*line, *column), (4, 18)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_value_that_does_not_parse_hides_no_other_problem() {
        // A type error, a range error and a cross-key check on keys that did
        // parse are all reported; a check that would judge the default
        // standing in for the bad key (min_backoff against max_backoff) is not.
        let err = load(
            &format!(
                "{MINIMAL}[smtp]\ncommand_timeout = \"soon\"\nmax_recipients = 0\n[delivery]\nmax_backoff = \"x\"\nmin_backoff = \"2h\"\nmax_body_memory = 10\n"
            ),
            &[("UGEM_SMTP__MAX_ERRORS", "lots")],
        )
        .unwrap_err();
        assert_eq!(
            keys(&err),
            [
                "smtp.command_timeout",
                "smtp.max_recipients",
                "delivery.max_backoff",
                "delivery.max_body_memory",
                "smtp.max_errors",
            ],
            "{err}"
        );
        assert_eq!(
            err.problems[4].origin,
            Some(Origin::Environment {
                variable: "UGEM_SMTP__MAX_ERRORS".into()
            })
        );
    }

    #[test]
    fn bad_items_of_lists_and_tables_are_named_one_by_one() {
        let err = load(
            "[admin]\ntokens = [\n  { name = \"a\", role = \"boss\", token = \"0123456789\" },\n  { name = \"b\", role = \"viewer\", token = \"0123456789\" },\n  { name = \"c\", role = \"admin\", tokn = \"0123456789\" },\n]\n[delivery.routes]\n\"a.example\" = \"relay.example:25\"\n\"b.example\" = \"no port\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            keys(&err),
            [
                "admin.tokens[0]",
                "admin.tokens[2]",
                "delivery.routes.b.example"
            ],
            "{err}"
        );
        let lines: Vec<usize> = err
            .problems
            .iter()
            .map(|p| match &p.origin {
                Some(Origin::File { line, .. }) => *line,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines, [3, 5, 9], "{err}");
    }

    #[test]
    fn examining_makes_nothing_and_loading_makes_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ugem.toml");
        std::fs::write(&path, format!("{MINIMAL}[server]\ndata_dir = \"a/b\"\n")).unwrap();
        let src = ConfigSource::File(path);
        let cfg = Config::examine_with_env(&src, &[]).unwrap();
        assert!(!dir.path().join("a").exists());
        // Nor on an invalid configuration.
        assert!(
            Config::examine_with_env(&src, &[("UGEM_SMTP__MAX_RECIPIENTS".into(), "0".into())])
                .is_err()
        );
        assert!(!dir.path().join("a").exists());
        Config::load_with_env(&src, &[]).unwrap();
        assert!(cfg.server.data_dir.is_dir());
        // A file where the folder would go is named.
        std::fs::write(dir.path().join("f"), "").unwrap();
        let mut cfg = cfg;
        cfg.server.data_dir = dir.path().join("f/var");
        assert!(
            cfg.data_dir_problem()
                .unwrap()
                .message
                .contains("is not a folder")
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!("25MiB".parse::<ByteSize>().unwrap().0, 25 << 20);
        assert_eq!("10 MB".parse::<ByteSize>().unwrap().0, 10_000_000);
        assert!("-1".parse::<ByteSize>().is_err());
        assert!("99999999999999GiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn host_ports() {
        let hp: HostPort = "Mail.Agency.kz:25".parse().unwrap();
        assert_eq!(hp.to_string(), "mail.agency.kz:25");
        let v6: HostPort = "[2001:db8::1]:2525".parse().unwrap();
        assert_eq!(v6.to_string(), "[2001:db8::1]:2525");
        assert!("mail.agency.kz".parse::<HostPort>().is_err());
        assert!("bad host:25".parse::<HostPort>().is_err());
    }
}
