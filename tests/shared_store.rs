//! Two gateway nodes sharing one registry in a real PostgreSQL server that
//! the test starts: `ugem store migrate`, a change made on one node in force
//! on the other within 2 s, and a node that keeps relaying under the last
//! known registry while PostgreSQL is down (fail-static).

mod common;

use std::time::{Duration, Instant};

use common::postgres::TestPostgres;
use common::{Gateway, Smtp, bin, config_text};

const DOMAIN: &str = "agency.example.kz";
const SENDER: &str = "clerk@agency.example.kz";
const OUTSIDE: &str = "citizen@example.org";

fn store_config(pg: &TestPostgres) -> String {
    format!(
        "[store]\nurl = \"{}\"\npassword_file = \"{}\"\n",
        pg.url("ugem"),
        pg.password_file().display()
    )
}

/// The reply a node gives to MAIL FROM of the agency's sender (from the
/// agency's registered server, 127.0.0.1).
fn mail_from(node: &Gateway) -> u16 {
    let mut s = Smtp::greeted(node.smtp);
    s.expect("EHLO client.test.example", 250);
    let r = s.cmd(&format!("MAIL FROM:<{SENDER}>"));
    if r.code != 250 {
        return r.code;
    }
    s.cmd(&format!("RCPT TO:<{OUTSIDE}>")).code
}

/// How long until `node` answers `code`; panics after 2 s.
fn in_force_within_2s(node: &Gateway, code: u16, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let got = mail_from(node);
        if got == code {
            let took = start.elapsed();
            eprintln!("{what}: in force on the other node after {took:?}");
            return took;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{what}: still {got} (not {code}) on the other node after 2 s\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn two_nodes_share_the_registry_through_postgresql() {
    let pg = TestPostgres::start();
    pg.create_db("ugem");
    let extra = store_config(&pg);

    // Migrations alone, before any node starts.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ugem.toml");
    std::fs::write(&cfg, config_text(&extra)).unwrap();
    let out = std::process::Command::new(bin())
        .args(["store", "migrate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("schema version 6"), "{text}");

    let a = Gateway::start(&extra);
    let b = Gateway::start(&extra);
    assert_eq!(mail_from(&b), 550, "not registered yet: relaying denied");

    // Registered on A: B accepts its mail.
    a.register(DOMAIN, &["127.0.0.1"]);
    in_force_within_2s(&b, 250, "registration");

    // Suspended on A: B answers 451, the agency keeps its mail.
    a.cli_ok(&["domain", "suspend", DOMAIN, "--reason", "test of two nodes"]);
    in_force_within_2s(&b, 451, "suspension");
    // And the record is the same one on both nodes.
    let on_b = b.cli_ok(&["--json", "suspension", "list"]);
    assert!(on_b.contains("test of two nodes"), "{on_b}");

    // Restored on B this time: A accepts again.
    b.cli_ok(&["domain", "restore", DOMAIN, "--reason", "clean"]);
    in_force_within_2s(&a, 250, "restoration");

    // PostgreSQL down: both nodes keep relaying under the registry they
    // know, and a 250 still means the message is in the node's own queue.
    pg.stop();
    std::thread::sleep(Duration::from_millis(300));
    for node in [&a, &b] {
        let mut s = Smtp::greeted(node.smtp);
        let r = s.send_mail(
            SENDER,
            &[OUTSIDE],
            "Subject: while the database is down\r\n\r\nhello\r\n",
        );
        assert_eq!(r.code, 250, "{}", node.log_text());
    }
    // Staff changes are refused with a clear error meanwhile.
    let refused = a.cli(
        common::ADMIN_TOKEN,
        &["domain", "suspend", DOMAIN, "--reason", "x"],
    );
    assert!(!refused.status.success());

    // Back: changes flow again (the change feed reconnects by itself).
    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = a.cli(
            common::ADMIN_TOKEN,
            &["domain", "suspend", DOMAIN, "--reason", "after the outage"],
        );
        if r.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not come back: {}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    in_force_within_2s(&b, 451, "suspension after the database came back");

    // Disconnected on A: B no longer relays for the domain (its mail is
    // then only inbound mail, and relaying to the outside is denied).
    a.cli_ok(&["domain", "restore", DOMAIN, "--reason", "clean again"]);
    in_force_within_2s(&b, 250, "restoration after the outage");
    a.cli_ok(&[
        "domain",
        "disconnect",
        DOMAIN,
        "--reason",
        "left the sector",
    ]);
    in_force_within_2s(&b, 550, "disconnection");
    let on_b = b.cli_ok(&["domain", "list"]);
    assert!(on_b.contains("disconnected"), "{on_b}");
}

/// Runs `ugem store ...` with `config`; returns its standard output.
fn store_cmd(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(bin())
        .arg("store")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_single_node_registry_moves_into_postgresql_with_its_ids() {
    // A node on the embedded store, with a little of everything.
    let mut old = Gateway::start("");
    old.register(DOMAIN, &["127.0.0.1"]);
    old.register("other.example.kz", &["192.0.2.20"]);
    old.cli_ok(&["domain", "suspend", DOMAIN, "--reason", "moving day"]);
    old.cli_ok(&[
        "application",
        "submit",
        "--domain",
        "new.example.kz",
        "--owner",
        "Ministry of Tests",
        "--category",
        "state-body",
        "--head",
        "Asel Bekova",
        "--server",
        "192.0.2.30",
        "--contact",
        "Aliya Nurlanova <it@contact.example.kz>; mobile=+77011234567",
    ]);
    let suspensions_before = old.cli_ok(&["--json", "suspension", "list", "--history"]);
    old.terminate();

    let file = old.dir.path().join("registry.json");
    let (ok, out) = store_cmd(&old.config, &["export", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("domains              2"), "{out}");
    assert!(out.contains("applications         1"), "{out}");
    assert!(out.contains("suspensions          1"), "{out}");

    let pg = TestPostgres::start();
    pg.create_db("ugem");
    let extra = store_config(&pg);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ugem.toml");
    std::fs::write(&cfg, config_text(&extra)).unwrap();
    let (ok, out) = store_cmd(&cfg, &["import", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("imported and verified"), "{out}");
    // Once only: a second import would mix two registries.
    let (ok, out) = store_cmd(&cfg, &["import", file.to_str().unwrap()]);
    assert!(!ok && out.contains("not empty"), "{out}");

    // A node on PostgreSQL sees the same registry, ids and all.
    let node = Gateway::start(&extra);
    assert_eq!(mail_from(&node), 451, "the suspension came along");
    let after = node.cli_ok(&["--json", "suspension", "list", "--history"]);
    let ids = |text: &str| -> Vec<u64> {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let list = v
            .as_array()
            .cloned()
            .or_else(|| v["suspensions"].as_array().cloned())
            .unwrap_or_default();
        list.iter().filter_map(|s| s["id"].as_u64()).collect()
    };
    assert_eq!(ids(&after), ids(&suspensions_before), "{after}");
    assert!(!ids(&after).is_empty(), "{after}");
    let app = node.cli_ok(&["application", "show", "1"]);
    assert!(app.contains("new.example.kz"), "{app}");
    // New records follow the imported ones.
    node.cli_ok(&["domain", "restore", DOMAIN, "--reason", "moved"]);
    node.cli_ok(&["domain", "suspend", DOMAIN, "--reason", "again"]);
    let now = ids(&node.cli_ok(&["--json", "suspension", "list", "--history"]));
    assert!(now.iter().max() > ids(&after).iter().max(), "{now:?}");
}

#[test]
fn the_shared_store_speaks_tls_verified_against_store_tls_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ugem test database CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let pg = TestPostgres::start_tls(&format!("{}{}", leaf.pem(), ca.pem()), &key.serialize_pem());
    pg.create_db("ugem");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("db-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let base = format!(
        "[store]\nurl = \"{}?sslmode=require\"\npassword_file = \"{}\"\n",
        pg.url("ugem"),
        pg.password_file().display()
    );
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, config_text(&text)).unwrap();
        p
    };

    // Without the CA the server's certificate is not trusted: refused.
    let untrusted = write("untrusted.toml", base.clone());
    let (ok, out) = store_cmd(&untrusted, &["migrate"]);
    assert!(!ok, "{out}");
    assert!(
        out.to_lowercase().contains("certificate") || out.contains("unavailable"),
        "{out}"
    );
    // Without TLS the server refuses (its pg_hba allows hostssl only).
    let plain = write(
        "plain.toml",
        base.replace("?sslmode=require", "?sslmode=disable"),
    );
    let (ok, out) = store_cmd(&plain, &["migrate"]);
    assert!(!ok, "{out}");

    // With store.tls_ca_file: migrated, and a node runs on it.
    let extra = format!("{base}tls_ca_file = \"{}\"\n", ca_file.display());
    let trusted = write("trusted.toml", extra.clone());
    let (ok, out) = store_cmd(&trusted, &["migrate"]);
    assert!(ok, "{out}");
    let node = Gateway::start(&extra);
    node.register(DOMAIN, &["127.0.0.1"]);
    assert_eq!(mail_from(&node), 250);
}

#[test]
fn the_connection_log_of_every_node_is_read_through_any_node() {
    let pg = TestPostgres::start();
    pg.create_db("ugem");
    let base = store_config(&pg);
    let a = Gateway::start(&base.replace("[store]\n", "[store]\nnode_name = \"node-a\"\n"));
    let b = Gateway::start(&base.replace("[store]\n", "[store]\nnode_name = \"node-b\"\n"));
    a.register(DOMAIN, &["127.0.0.1"]);
    in_force_within_2s(&b, 250, "registration");
    // One session refused on each node, from an address the domain did not
    // register, claiming the domain: each stays in its own node's log.
    for (node, tag) in [(&a, "from-a"), (&b, "from-b")] {
        let mut s = Smtp::greeted(node.smtp);
        s.expect(&format!("EHLO {tag}.client.test"), 250);
        s.expect(&format!("MAIL FROM:<{SENDER}>"), 250);
        s.expect("QUIT", 221);
    }
    let ehlos = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["ehlo"]
                    .as_str()
                    .is_some_and(|e| e.ends_with(".client.test"))
            })
            .map(|r| {
                (
                    r["node"].as_str().unwrap().to_string(),
                    r["ehlo"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // Asked through A: A's own session and B's, each named with its node.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let v: serde_json::Value =
            serde_json::from_str(&a.cli_ok(&["--json", "connections", "--all-nodes"])).unwrap();
        got = ehlos(&v);
        got.sort();
        if got.len() == 2 {
            assert_eq!(
                v["nodes"],
                serde_json::json!([
                    { "name": "node-a", "ok": true, "sessions": v["nodes"][0]["sessions"] },
                    { "name": "node-b", "ok": true, "sessions": v["nodes"][1]["sessions"] },
                ]),
                "{v}"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        got,
        [
            ("node-a".to_string(), "from-a.client.test".to_string()),
            ("node-b".to_string(), "from-b.client.test".to_string())
        ]
    );
    // Without --all-nodes, only this node's own.
    let own: serde_json::Value =
        serde_json::from_str(&a.cli_ok(&["--json", "connections"])).unwrap();
    let own_ehlos: Vec<&str> = own
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ehlo"].as_str())
        .collect();
    assert!(
        own_ehlos.contains(&"from-a.client.test") && !own_ehlos.contains(&"from-b.client.test")
    );

    // B stopped: A still answers with its own, and names B as not asked.
    let mut b = b;
    assert_eq!(b.terminate().code(), Some(0));
    let out = a.cli(
        common::ADMIN_TOKEN,
        &["--json", "connections", "--all-nodes"],
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        ehlos(&v),
        [("node-a".to_string(), "from-a.client.test".to_string())]
    );
    assert_eq!(v["nodes"][1]["name"], "node-b");
    assert_eq!(v["nodes"][1]["ok"], false, "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node node-b not asked"), "{stderr}");
}
