//! Real SMTP clients against the gateway: swaks (as in the README's quick
//! start, with and without STARTTLS) and postfix's smtp-source.

mod common;

use std::process::Command;

use common::*;

fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install {name}"
    );
    if !found {
        eprintln!("{name} not installed; skipping (CI installs it)");
    }
    found
}

fn queue_len(gw: &Gateway) -> usize {
    let (_, body) = http(
        gw.admin,
        "GET",
        "/api/v1/queue/counts",
        Some(VIEWER_TOKEN),
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["total"].as_u64().unwrap() as usize
}

#[test]
fn swaks_quick_start() {
    if !tool("swaks") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["gw.test.example".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("ugem.toml");
    std::fs::write(
        &config,
        config_text("[smtp]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"),
    )
    .unwrap();
    let gw = Gateway::start_in(dir, config);
    gw.register("agency.example.kz", &["127.0.0.1"]);
    let server = gw.smtp.to_string();
    let run = |args: &[&str]| {
        let out = Command::new("swaks")
            .args(["--server", &server, "--timeout", "20"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = run(&[
        "--from",
        "clerk@agency.example.kz",
        "--to",
        "citizen@example.org",
        "--header",
        "Subject: quick start",
    ]);
    assert!(out.contains("<-  250 2.0.0 queued as"), "{out}");
    let out = run(&[
        "--tls",
        "--from",
        "clerk@agency.example.kz",
        "--to",
        "citizen@example.org",
    ]);
    assert!(out.contains("TLS started"), "{out}");
    assert!(out.contains("250 2.0.0 queued as"), "{out}");
    let out = run(&["--from", "someone@example.org", "--to", "other@example.net"]);
    assert!(out.contains("<** 550 5.7.1 relaying denied"), "{out}");
    assert_eq!(queue_len(&gw), 2);
}

#[test]
fn smtp_source_concurrent_sessions_all_queued() {
    if !tool("smtp-source") {
        return;
    }
    let gw = Gateway::start("[smtp]\nmax_connections_per_ip = 100\n");
    gw.register("agency.example.kz", &["127.0.0.1"]);
    let out = Command::new("smtp-source")
        .args([
            "-s",
            "20",
            "-m",
            "200",
            "-l",
            "5120",
            "-f",
            "clerk@agency.example.kz",
            "-t",
            "citizen@example.org",
        ])
        .arg(gw.smtp.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(queue_len(&gw), 200);
}
