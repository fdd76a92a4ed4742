//! `ugem check-config` and `ugem config show` through the binary (issue #15,
//! item 5): problems placed at file:line:col or named by their environment
//! variable, every one reported, `--json`, no side effects, the effective
//! configuration with secrets redacted.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::bin;

fn ugem(args: &[&str], config: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).arg("--config").arg(config);
    // The test runner's own UGEM_* variables must not leak in.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("UGEM_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("ugem.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const TOKEN: &str = "[admin]\ntoken = \"0123456789abcdef0123456789\"\n";

#[test]
fn every_bad_value_is_placed_in_the_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("no-such-folder");
    let path = write(
        dir.path(),
        &format!(
            "{TOKEN}[server]\ndata_dir = \"{}\"\n[smtp]\nmax_recipients = \"ten\"\ncommand_timeout = \"soon\"\nmax_message_size = 100\n",
            data.display()
        ),
    );
    let out = ugem(
        &["check-config"],
        &path,
        &[("UGEM_DELIVERY__MX_PORT", "seventy")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display();
    for line in [
        format!("{file}:6:18: smtp.max_recipients: invalid type: string \"ten\""),
        format!("{file}:7:19: smtp.command_timeout: `soon` is not a duration"),
        format!("{file}:8:20: smtp.max_message_size: must be at least 64KiB"),
    ] {
        assert!(err.contains(&line), "{line} missing in {err}");
    }
    assert!(
        err.contains("delivery.mx_port: invalid type")
            && err.contains("(set by the environment variable UGEM_DELIVERY__MX_PORT)"),
        "{err}"
    );
    assert!(!data.exists(), "check-config made the data folder");
}

#[test]
fn json_lists_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[admin]\ntoken = \"change-me-now\"\n[smtp]\nmax_recipients = \"ten\"\n[server]\ndata_dir = \"var\"\n",
    );
    let out = ugem(
        &["check-config", "--json"],
        &path,
        &[("UGEM_SMTP__MAX_ERRORS", "lots")],
    );
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    let by_key = |k: &str| {
        problems
            .iter()
            .find(|p| p["key"] == k)
            .unwrap_or_else(|| panic!("{k} missing in {report}"))
    };
    let p = by_key("smtp.max_recipients");
    assert_eq!(p["severity"], "error");
    assert_eq!(p["source"], "file");
    assert_eq!(p["file"], path.display().to_string());
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(4), Some(18))
    );
    assert!(p["message"].as_str().unwrap().contains("\"ten\""), "{p}");
    let p = by_key("smtp.max_errors");
    assert_eq!(p["source"], "environment");
    assert_eq!(p["variable"], "UGEM_SMTP__MAX_ERRORS");
    assert_eq!(p["line"], serde_json::Value::Null);
    assert!(!dir.path().join("var").exists());

    // A good configuration: ok, with its warnings (the shipped token on loopback).
    let path = write(dir.path(), "[admin]\ntoken = \"change-me-now\"\n");
    let out = ugem(&["check-config", "--json"], &path, &[]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"][0]["severity"], "warning");
    assert_eq!(report["problems"][0]["key"], "admin.token");
    assert!(
        !dir.path().join("var").exists(),
        "check-config made the data folder"
    );
}

#[test]
fn toml_syntax_errors_are_placed_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "[smtp]\nmax_recipients = = 3\n[admin\n");
    let out = ugem(&["check-config"], &path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display();
    assert!(
        err.contains(&format!("{file}:2:18: not valid TOML")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:3:7: not valid TOML")),
        "{err}"
    );
}

#[test]
fn config_show_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = write(
        dir.path(),
        &format!(
            "{TOKEN}[[admin.tokens]]\nname = \"ops\"\nrole = \"operator\"\ntoken = \"another-secret-token-0123456789\"\n[server]\ndata_dir = \"{}\"\n[smtp]\nmax_recipients = 7\n[governor]\nwebhooks = [\"https://hooks.example/T0/B0/s3cr3t\"]\n",
            data.display()
        ),
    );
    let env = [("UGEM_DELIVERY__MX_PORT", "2525")];

    let out = ugem(&["config", "show"], &path, &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = String::from_utf8(out.stdout).unwrap();
    for line in [
        "smtp.max_recipients = 7\n",
        "delivery.mx_port = 2525\n",
        "smtp.max_line_length = 2048\n",
        "admin.token = \"(redacted)\"\n",
        "governor.webhooks = [\"https://hooks.example/(redacted)\"]\n",
    ] {
        assert!(all.contains(line), "{line} missing in {all}");
    }
    for secret in ["0123456789abcdef", "another-secret-token", "s3cr3t"] {
        assert!(!all.contains(secret), "{secret} shown: {all}");
    }

    let out = ugem(&["config", "show", "--changed"], &path, &env);
    assert!(out.status.success());
    let changed = String::from_utf8(out.stdout).unwrap();
    let keys: Vec<&str> = changed
        .lines()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "admin.token",
            "admin.tokens",
            "delivery.mx_port",
            "governor.webhooks",
            "server.data_dir",
            "smtp.max_recipients"
        ],
        "{changed}"
    );
    assert!(!changed.contains("another-secret-token"), "{changed}");

    let out = ugem(&["config", "show", "--changed", "--json"], &path, &env);
    let tree: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree["smtp"]["max_recipients"], 7);
    assert_eq!(tree["admin"]["tokens"][0]["token"], "(redacted)");
    assert_eq!(tree["admin"]["tokens"][0]["name"], "ops");
    assert!(tree["smtp"].get("max_line_length").is_none(), "{tree}");
    assert!(!data.exists(), "config show made the data folder");

    // An invalid configuration is refused like check-config does.
    let out = ugem(
        &["config", "show"],
        &path,
        &[("UGEM_SMTP__MAX_RECIPIENTS", "x")],
    );
    assert_eq!(out.status.code(), Some(2));
}
