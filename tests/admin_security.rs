//! The admin API's exposure, end to end through the binary: refused calls
//! and the audit log, authentication before any body is read, weak tokens,
//! HTTPS.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use ugem::admin::{Access, ROUTES};
use ugem::config::Role;

fn store_bytes(gw: &Gateway) -> u64 {
    std::fs::metadata(gw.data_dir().join("ugem.redb"))
        .map(|m| m.len())
        .unwrap_or(0)
}

fn audit(gw: &Gateway) -> Vec<Value> {
    let (st, body) = http(
        gw.admin,
        "GET",
        "/api/v1/audit?limit=100000",
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn denied(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .filter(|r| r["outcome"] == "denied")
        .cloned()
        .collect()
}

fn metric(gw: &Gateway, line_start: &str) -> Option<f64> {
    let (_, text) = http(gw.admin, "GET", "/metrics", None, None);
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Issue #13, item 3. Before the fix each of these 200 calls appended its
/// own durable record with the whole URL as target: +2,158,592 bytes of
/// store file and 200 records (836,339 bytes of JSON) in under a second.
#[test]
fn refused_calls_are_compacted_per_client_and_minute() {
    let gw = Gateway::start("");
    gw.register(AGENCY, &["127.0.0.1"]);
    let records_before = audit(&gw).len();
    let before = store_bytes(&gw);
    let long = "x".repeat(4000);
    for i in 0..200 {
        let (st, _) = http(
            gw.admin,
            "POST",
            &format!("/api/v1/domains/probe-{i}-{long}.example.kz/suspend"),
            None,
            Some(r#"{"reason":"probe"}"#),
        );
        assert_eq!(st, 401);
    }
    let after = store_bytes(&gw);
    // The counts reach the store within the flush interval (5 s).
    let mut rows = Vec::new();
    assert!(
        wait_for(10, || {
            rows = denied(&audit(&gw));
            rows.iter()
                .map(|r| r["count"].as_u64().unwrap_or(1))
                .sum::<u64>()
                == 200
        }),
        "refused calls not all counted: {rows:#?}"
    );
    let added = audit(&gw).len() - records_before;
    let json_bytes: usize = rows.iter().map(|r| r.to_string().len()).sum();
    eprintln!(
        "200 refused calls: store file {before} -> {after} (+{}), {added} audit record(s), {json_bytes} bytes of JSON",
        after - before
    );
    // One record per client and minute (two if the minute turned).
    assert!(added <= 2, "{rows:#?}");
    for r in &rows {
        assert_eq!(r["actor"], "(unauthenticated)");
        assert_eq!(r["action"], "domain.suspend");
        assert_eq!(r["client"], "127.0.0.1", "no port: one record per IP");
        assert!(r["target"].as_str().unwrap().chars().count() <= 65, "{r}");
    }
    assert!(after - before < 256 * 1024, "store grew {}", after - before);
    // The size is on /metrics, and so is the refusal count.
    assert!(metric(&gw, "ugem_audit_records ").unwrap() >= 2.0);
    assert!(metric(&gw, "ugem_audit_bytes ").unwrap() > 0.0);
    assert_eq!(
        metric(&gw, "ugem_admin_refused_total{status=\"401\"}"),
        Some(200.0)
    );
}

/// Issue #13, item 3: refused-call records older than
/// `admin.audit_refused_retention` are pruned at start (and hourly); staff
/// actions are kept.
#[test]
fn old_refused_records_are_pruned_and_staff_actions_kept() {
    let mut gw = Gateway::start("[admin]\naudit_refused_retention = \"7d\"\n");
    gw.terminate();
    {
        use ugem::store::RegistryStore;
        let (_, store) = ugem::store::open(&gw.data_dir()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let rec = |outcome: &str, days: i64, target: &str| ugem::model::audit::AuditRecord {
            seq: 0,
            at: chrono::Utc::now() - chrono::Duration::days(days),
            actor: "(unauthenticated)".into(),
            action: "domain.add".into(),
            target: target.into(),
            client: Some("192.0.2.1".into()),
            outcome: outcome.into(),
            count: 1,
            reason: None,
            before: None,
            after: None,
        };
        rt.block_on(async {
            store
                .append_refused(&rec("denied", 10, "old-refused"))
                .await
                .unwrap();
            store
                .append_audit(&rec("ok", 10, "old-staff"))
                .await
                .unwrap();
            store
                .append_refused(&rec("denied", 2, "recent-refused"))
                .await
                .unwrap();
        });
    }
    gw.spawn();
    let mut targets = Vec::new();
    assert!(
        wait_for(10, || {
            targets = audit(&gw)
                .iter()
                .map(|r| r["target"].as_str().unwrap_or("").to_string())
                .collect();
            !targets.contains(&"old-refused".to_string())
        }),
        "{targets:?}"
    );
    assert!(targets.contains(&"old-staff".to_string()), "{targets:?}");
    assert!(
        targets.contains(&"recent-refused".to_string()),
        "{targets:?}"
    );
}

/// Every route's path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{name}", AGENCY)
        .replace("{address}", "clerk@agency.example.kz")
        .replace("{id}", "1")
}

/// Issue #13, item 5: every route of the router (the table it is built
/// from) checks the token before it reads the body: with a garbage body,
/// no token is 401 (not 400 or 422, and no field names), a viewer token on
/// a route that needs more is 403, and both are audited.
#[test]
fn every_route_authenticates_before_reading_the_body() {
    let gw = Gateway::start("");
    gw.register(AGENCY, &["127.0.0.1"]);
    let garbage = [
        r#"{"garbage"#,
        r#"{"shared_servers": "yes", "x": 1}"#,
        "\u{1}\u{2}",
    ];
    let mut token_routes = 0;
    let mut viewer_calls = 0;
    let mut viewer_refused = std::collections::BTreeSet::new();
    for r in ROUTES {
        let path = concrete(r.path);
        let Access::Token(need) = r.access else {
            let (st, _) = http(gw.admin, r.method, &path, None, None);
            assert_ne!(st, 401, "{} {} is public", r.method, r.path);
            continue;
        };
        token_routes += 1;
        for body in garbage {
            for token in [None, Some("not-a-known-token")] {
                let (st, text) = http(gw.admin, r.method, &path, token, Some(body));
                assert_eq!(
                    st, 401,
                    "{} {} ({token:?}, {body:?}): {text}",
                    r.method, r.path
                );
                assert!(
                    !text.contains("field") && !text.contains("expected"),
                    "{} {} says more than 401: {text}",
                    r.method,
                    r.path
                );
            }
            if need > Role::Viewer {
                let (st, text) = http(gw.admin, r.method, &path, Some(VIEWER_TOKEN), Some(body));
                assert_eq!(st, 403, "{} {} as viewer: {text}", r.method, r.path);
                assert!(!text.contains("expected"), "{text}");
                viewer_refused.insert(r.action);
                viewer_calls += 1;
            }
        }
        if need == Role::Viewer {
            let (st, text) = http(gw.admin, r.method, &path, Some(VIEWER_TOKEN), None);
            assert!(
                st != 401 && st != 403,
                "{} {} as viewer: {st} {text}",
                r.method,
                r.path
            );
        }
    }
    assert!(
        token_routes >= 30,
        "only {token_routes} routes in the table"
    );
    // The four endpoints of the report, by name.
    for action in [
        "domain.restore",
        "queue.hold",
        "application.withdraw",
        "application.approve",
    ] {
        assert!(viewer_refused.contains(action), "{action}");
    }
    // Audited: the viewer's refusals name every action it tried (one
    // compacted record per client and minute, two if the minute turned).
    let mut rows = Vec::new();
    assert!(
        wait_for(10, || {
            rows = denied(&audit(&gw));
            let n: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap_or(1)).sum();
            n == (token_routes * 6 + viewer_calls) as u64
        }),
        "{rows:#?}"
    );
    // Twelve actions per record are named; the rest show as `…`.
    let named: String = rows
        .iter()
        .filter(|r| r["actor"] == "desk")
        .map(|r| format!("{},", r["action"].as_str().unwrap_or("")))
        .collect();
    for action in ["domain.add", "domain.restore", "queue.hold"] {
        assert!(named.contains(action), "{action} not named: {named}");
    }
    assert!(
        rows.iter().any(|r| r["actor"] == "(unauthenticated)"),
        "{rows:#?}"
    );
    // The approve endpoint answers a real admin's bad body, audited.
    let (st, text) = http(
        gw.admin,
        "POST",
        "/api/v1/applications/1/approve",
        Some(ADMIN_TOKEN),
        Some(r#"{"garbage"#),
    );
    assert_eq!(st, 400, "{text}");
    let rows = audit(&gw);
    assert!(
        rows.iter().any(|r| r["action"] == "application.approve"
            && r["actor"] == "root"
            && r["outcome"]
                .as_str()
                .unwrap()
                .starts_with("error: invalid JSON")),
        "{rows:#?}"
    );
}

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("ugem.toml");
    std::fs::write(&path, config_text(extra)).unwrap();
    path
}

fn ugem(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Issue #13, item 4: the shipped token (or any short one) is refused
/// beyond loopback by `serve` and `check-config`; on loopback both warn.
#[test]
fn weak_admin_tokens_are_refused_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let wide = write_config(
        dir.path(),
        "[admin]\nlisten = \"0.0.0.0:0\"\ntoken = \"change-me-now\"\n",
    );
    let wide = wide.to_str().unwrap();
    let out = ugem(&["check-config", "--config", wide]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin.token: weak admin token"), "{err}");
    assert!(err.contains("change-me-now"), "{err}");
    // The test tokens are short too (16-19 characters).
    assert!(err.contains("admin.tokens[0]"), "{err}");
    let out = ugem(&["serve", "--config", wide]);
    assert_eq!(out.status.code(), Some(2), "serve started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains("not loopback"), "{err}");

    // On loopback: it starts, and says it.
    let dir = tempfile::tempdir().unwrap();
    let lo = write_config(dir.path(), "[admin]\ntoken = \"change-me-now\"\n");
    let out = ugem(&["check-config", "--config", lo.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("configuration OK"), "{text}");
    assert!(
        text.contains("warning: admin.token: weak admin token: `change-me-now`"),
        "{text}"
    );
    let gw = Gateway::start_in(dir, lo);
    assert!(
        gw.log_text().contains("weak admin token"),
        "{}",
        gw.log_text()
    );
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = dir.join("admin-cert.pem");
    let key = dir.join("admin-key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// One HTTPS GET, trusting `cert`; returns (status, body).
fn https_get(
    addr: std::net::SocketAddr,
    cert: &std::path::Path,
    path: &str,
    token: &str,
) -> (u16, String) {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), "127.0.0.1".try_into().unwrap()).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = tls.read_to_string(&mut resp);
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Issue #13, item 4: with admin.tls_cert/tls_key the API speaks HTTPS
/// only, and the CLI reaches it over https trusting `--ca`, or, with the
/// address from the configuration, the configured certificate.
#[test]
fn the_admin_api_speaks_https_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let cfg = write_config(
        dir.path(),
        &format!(
            "[admin]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let gw = Gateway::start_in(dir, cfg.clone());
    // HTTPS answers; plain HTTP on the same port gets nothing useful.
    let (st, body) = https_get(gw.admin, &cert, "/api/v1/domains", VIEWER_TOKEN);
    assert_eq!(st, 200, "{body}");
    let (st, _) = http(gw.admin, "GET", "/healthz", None, None);
    assert_ne!(st, 200, "plain HTTP served on the TLS port");

    let url = format!("https://{}", gw.admin);
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("UGEM_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("UGEM_ADMIN_CA")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // --admin https://... with --ca: works.
    let ca = cert.to_str().unwrap();
    let out = run(&["--admin", &url, "--ca", ca, "domain", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a CA that vouches for it: refused, saying why.
    let out = run(&["--admin", &url, "domain", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach") && err.contains("certificate"),
        "{err}"
    );
    // From the configuration (no --admin): https, trusting admin.tls_cert.
    // The configuration's listen port is 0, so point it at the real one.
    let mut text: toml::Table = std::fs::read_to_string(&cfg).unwrap().parse().unwrap();
    text["admin"]["listen"] = gw.admin.to_string().into();
    let cfg2 = gw.dir.path().join("cli.toml");
    std::fs::write(&cfg2, toml::to_string(&text).unwrap()).unwrap();
    let out = run(&["--config", cfg2.to_str().unwrap(), "domain", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue #13, item 4: beyond loopback without TLS the gateway starts (with
/// a strong token) but warns, and check-config says so.
#[test]
fn beyond_loopback_without_tls_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let strong = "a-strong-admin-token-0123456789";
    let cfg = dir.path().join("ugem.toml");
    let mut text: toml::Table = config_text("").parse().unwrap();
    let admin = text["admin"].as_table_mut().unwrap();
    admin.remove("tokens");
    admin.insert("listen".into(), "0.0.0.0:0".into());
    admin.insert("token".into(), strong.into());
    std::fs::write(&cfg, toml::to_string(&text).unwrap()).unwrap();
    let out = ugem(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "warning: admin.listen: the admin API listens on 0.0.0.0:0 beyond loopback without TLS"
        ),
        "{stdout}"
    );
    let gw = Gateway::start_in(dir, cfg);
    assert!(gw.log_text().contains("without TLS"), "{}", gw.log_text());
}
