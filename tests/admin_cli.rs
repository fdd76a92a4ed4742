//! The admin API and the CLI against a running `ugem serve`, end to end.

mod common;

use common::*;

#[test]
fn health_and_readiness_need_no_token() {
    let gw = Gateway::start("");
    assert_eq!(http(gw.admin, "GET", "/healthz", None, None).0, 200);
    assert_eq!(http(gw.admin, "GET", "/readyz", None, None).0, 200);
}

#[test]
fn api_auth_roles() {
    let gw = Gateway::start("");
    // No token: 401; unknown token: 401.
    assert_eq!(http(gw.admin, "GET", "/api/v1/domains", None, None).0, 401);
    assert_eq!(
        http(
            gw.admin,
            "GET",
            "/api/v1/domains",
            Some("wrong-token-x"),
            None
        )
        .0,
        401
    );
    // A viewer reads but may not suspend or add.
    assert_eq!(
        http(gw.admin, "GET", "/api/v1/domains", Some(VIEWER_TOKEN), None).0,
        200
    );
    gw.register("minfin.example.kz", &["127.0.0.1"]);
    let (st, body) = http(
        gw.admin,
        "POST",
        "/api/v1/domains/minfin.example.kz/suspend",
        Some(VIEWER_TOKEN),
        Some(r#"{"reason":"test"}"#),
    );
    assert_eq!(st, 403, "{body}");
    // An operator may suspend but not disconnect.
    let (st, body) = http(
        gw.admin,
        "POST",
        "/api/v1/domains/minfin.example.kz/suspend",
        Some(OPERATOR_TOKEN),
        Some(r#"{"reason":"spam run"}"#),
    );
    assert_eq!(st, 200, "{body}");
    let (st, _) = http(
        gw.admin,
        "POST",
        "/api/v1/domains/minfin.example.kz/disconnect",
        Some(OPERATOR_TOKEN),
        Some(r#"{"reason":"x"}"#),
    );
    assert_eq!(st, 403);
    // Every mutating call is audited, denied ones too, with actor and client.
    let (st, audit) = http(
        gw.admin,
        "GET",
        "/api/v1/audit?limit=10",
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 200);
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let rows = audit.as_array().unwrap();
    // Refused calls are recorded per client IP (no port: compacted).
    let find = |action: &str, actor: &str, outcome: &str| {
        rows.iter().any(|r| {
            r["action"] == action
                && r["actor"] == actor
                && r["outcome"] == outcome
                && r["client"].as_str().unwrap_or("").starts_with("127.0.0.1")
        })
    };
    assert!(find("domain.add", "root", "ok"), "{audit:#}");
    assert!(find("domain.suspend", "desk", "denied"), "{audit:#}");
    assert!(find("domain.suspend", "duty", "ok"), "{audit:#}");
    assert!(find("domain.disconnect", "duty", "denied"), "{audit:#}");
}

#[test]
fn cli_domain_lifecycle() {
    let gw = Gateway::start("");
    let out = gw.cli_ok(&[
        "domain",
        "add",
        "Минфин.example.kz",
        "--reason",
        "test set-up",
        "--server",
        "127.0.0.1",
        "--server",
        "2001:db8::/64",
        "--contact",
        "Aliya Nurlanova <it@minfin.example.kz>; office=+7 7172 000000; mobile=+7 701 000 0000",
        "--owner",
        "Ministry of Finance",
    ]);
    assert!(out.contains("xn--"), "stored as A-label: {out}");
    let name = out
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap()
        .to_string();

    let list = gw.cli_ok(&["domain", "list"]);
    assert!(list.starts_with("DOMAIN"), "{list}");
    assert!(list.contains(&name) && list.contains("connected"), "{list}");

    let json: serde_json::Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "domain", "show", &name])).unwrap();
    assert_eq!(json["status"], "connected");
    assert_eq!(json["owner"], "Ministry of Finance");
    assert_eq!(json["servers"][0], "127.0.0.1/32");
    assert_eq!(json["contacts"][0]["mobile_phone"], "+77010000000");
    assert_eq!(json["inbound_route"], "127.0.0.1:25");

    gw.cli_ok(&["domain", "suspend", &name, "--reason", "abnormal volume"]);
    let show = gw.cli_ok(&["domain", "show", &name]);
    assert!(show.contains("status: suspended"), "{show}");
    assert!(show.contains("abnormal volume"), "{show}");
    let susp = gw.cli_ok(&["suspension", "list"]);
    assert!(susp.contains(&name) && susp.contains("root"), "{susp}");

    gw.cli_ok(&["domain", "restore", &name, "--reason", "cleaned"]);
    let show = gw.cli_ok(&["--json", "domain", "show", &name]);
    assert!(show.contains("\"connected\""), "{show}");
    let hist = gw.cli_ok(&["--json", "suspension", "list", "--history"]);
    let hist: serde_json::Value = serde_json::from_str(&hist).unwrap();
    assert_eq!(hist[0]["restored"]["by"], "root");
    assert_eq!(hist[0]["restored"]["reason"], "cleaned");
    assert_eq!(gw.cli_ok(&["--json", "suspension", "list"]).trim(), "[]");

    gw.cli_ok(&["domain", "disconnect", &name, "--reason", "left the sector"]);
    assert!(gw.cli_ok(&["domain", "list"]).contains("disconnected"));
}

#[test]
fn cli_errors_are_clear() {
    let gw = Gateway::start("");
    // Unknown domain.
    let out = gw.cli(ADMIN_TOKEN, &["domain", "show", "nobody.example.kz"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody.example.kz is not registered"), "{err}");
    // Bad token, and a role too low.
    let out = gw.cli("not-a-token", &["domain", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not authorized"));
    let out = gw.cli(
        VIEWER_TOKEN,
        &["domain", "suspend", "x.example.kz", "--reason", "r"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    // Overlapping servers are refused, naming the way to allow them.
    gw.register("a.example.kz", &["127.0.0.1", "127.0.0.0/30"]);
    let out = gw.cli(
        ADMIN_TOKEN,
        &[
            "domain",
            "add",
            "b.example.kz",
            "--server",
            "127.0.0.2",
            "--contact",
            "it@b.example.kz",
            "--reason",
            "test set-up",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shared-servers"));
    // Nothing listening.
    let out = std::process::Command::new(bin())
        .args(["--admin", "http://127.0.0.1:9", "domain", "list"])
        .env("UGEM_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the ugem admin API"));
}

#[test]
fn check_config_names_every_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[smtp]\nlisten = \"not-an-address\"\ncommand_timeout = \"soon\"\nmax_mesage_size = 5\n[admin]\ntoken = \"0123456789\"\n",
    )
    .unwrap();
    for verb in ["check-config", "serve"] {
        let out = std::process::Command::new(bin())
            .args([verb, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        for key in [
            "smtp.listen",
            "smtp.command_timeout",
            "smtp.max_mesage_size",
        ] {
            assert!(err.contains(key), "{verb}: {key} missing in {err}");
        }
    }
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text("")).unwrap();
    let out = std::process::Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn second_instance_on_same_data_dir_fails_clearly() {
    let gw = Gateway::start("");
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains(&gw.data_dir().display().to_string()), "{err}");
}

#[test]
fn environment_overrides_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ugem.toml");
    std::fs::write(&path, config_text("")).unwrap();
    let out = std::process::Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .env("UGEM_SMTP__MAX_RECIPIENTS", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp.max_recipients"));
}

#[test]
fn queue_management_verbs() {
    let gw = Gateway::start("");
    gw.register("agency.example.kz", &["127.0.0.1"]);
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        "clerk@agency.example.kz",
        &["citizen@example.org"],
        "Subject: q\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250);
    let id = r.text().rsplit(' ').next().unwrap().to_string();
    let list = gw.cli_ok(&["queue", "list"]);
    assert!(list.starts_with("ID") && list.contains(&id), "{list}");
    let show = gw.cli_ok(&["--json", "queue", "show", &id]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    // Pending, or deferred once the first attempt hit the test's dead route.
    let status = v["recipients"][0]["status"].as_str().unwrap().to_string();
    assert!(status == "pending" || status == "deferred", "{status}");
    // A viewer may look but not hold.
    let out = gw.cli(VIEWER_TOKEN, &["queue", "hold", &id]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    let out = gw.cli(
        OPERATOR_TOKEN,
        &["queue", "hold", &id, "--reason", "looks odd"],
    );
    assert!(out.status.success());
    let held = gw.cli_ok(&["--json", "queue", "list", "--held"]);
    assert!(held.contains("looks odd"), "{held}");
    let counts: serde_json::Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "queue", "counts"])).unwrap();
    assert_eq!(counts["held"], 1);
    gw.cli_ok(&["queue", "release", &id]);
    assert!(gw.cli_ok(&["--json", "queue", "list", "--held"]).trim() == "[]");
    gw.cli_ok(&["queue", "retry", &id]);
    gw.cli_ok(&["queue", "retry", "--all"]);
    gw.cli_ok(&["queue", "delete", &id]);
    let out = gw.cli(ADMIN_TOKEN, &["queue", "show", &id]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no message"));
    let audit = gw.cli_ok(&["--json", "audit"]);
    for action in [
        "queue.hold",
        "queue.release",
        "queue.retry",
        "queue.bulk.retry",
        "queue.delete",
    ] {
        assert!(audit.contains(action), "{action} not audited");
    }
}

#[test]
fn suspending_a_domain_holds_its_queued_mail_and_restore_releases_it() {
    let gw = Gateway::start("");
    gw.register("agency.example.kz", &["127.0.0.1"]);
    let mut s = Smtp::greeted(gw.smtp);
    assert_eq!(
        s.send_mail(
            "clerk@agency.example.kz",
            &["a@example.org"],
            "Subject: 1\r\n\r\nx\r\n"
        )
        .code,
        250
    );
    gw.cli_ok(&[
        "domain",
        "suspend",
        "agency.example.kz",
        "--reason",
        "volume",
    ]);
    let held = gw.cli_ok(&["--json", "queue", "list", "--held"]);
    assert!(
        held.contains("domain agency.example.kz suspended"),
        "{held}"
    );
    gw.cli_ok(&["domain", "restore", "agency.example.kz"]);
    assert_eq!(
        gw.cli_ok(&["--json", "queue", "list", "--held"]).trim(),
        "[]"
    );
    gw.cli_ok(&[
        "domain",
        "suspend",
        "agency.example.kz",
        "--reason",
        "again",
    ]);
    gw.cli_ok(&["domain", "restore", "agency.example.kz", "--delete-held"]);
    // Only the suspension and restore notices (local mail) remain.
    assert_eq!(
        gw.cli_ok(&["--json", "queue", "list", "--sender", "clerk@"])
            .trim(),
        "[]"
    );
}
