//! STARTTLS end to end: real handshakes with generated certificates.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;

/// Writes a self-signed certificate for `gw.test.example`; returns its DER.
fn write_cert(dir: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["gw.test.example".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    ck.cert.der().to_vec()
}

fn client_config(
    trusted: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(trusted.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tls_gateway() -> (Gateway, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let der = write_cert(dir.path());
    let config = dir.path().join("ugem.toml");
    std::fs::write(
        &config,
        config_text("[smtp]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"),
    )
    .unwrap();
    let gw = Gateway::start_in(dir, config);
    gw.register("agency.example.kz", &["127.0.0.1"]);
    (gw, der)
}

#[test]
fn starttls_discards_pipelined_plaintext_and_resets_state() {
    let (gw, der) = tls_gateway();
    let mut s = Smtp::greeted(gw.smtp);
    let ehlo = s.expect("EHLO client.test.example", 250);
    assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    // The STARTTLS command-injection attack: a MAIL sent in the clear in the
    // same packet must not survive into the TLS session.
    s.send_raw(b"STARTTLS\r\nMAIL FROM:<clerk@agency.example.kz>\r\n");
    assert_eq!(s.reply().code, 220);
    let mut s = s.upgrade(
        client_config(&der, &[&rustls::version::TLS13]),
        "gw.test.example",
    );
    // A new EHLO is required: the state was reset.
    s.expect("MAIL FROM:<clerk@agency.example.kz>", 503);
    let ehlo = s.expect("EHLO client.test.example", 250);
    assert!(
        !ehlo.lines.iter().any(|l| l == "STARTTLS"),
        "STARTTLS offered twice: {ehlo:?}"
    );
    s.expect("RCPT TO:<x@example.org>", 503);
    s.expect("MAIL FROM:<clerk@agency.example.kz>", 250);
    s.expect("RCPT TO:<x@example.org>", 250);
    s.expect("DATA", 354);
    s.send_raw(b"Subject: tls\r\n\r\nsecret\r\n.\r\n");
    let r = s.reply();
    assert_eq!(r.code, 250, "{r:?}");
    let id = r.text().rsplit(' ').next().unwrap().to_string();
    s.expect("STARTTLS", 503);
    s.expect("QUIT", 221);
    let mut gw = gw;
    gw.kill();
    let q = ugem_queue::Queue::open(&gw.data_dir().join("queue"), Default::default()).unwrap();
    let env = q.get(id.parse().unwrap()).unwrap().unwrap();
    assert!(
        env.tls.as_deref().unwrap().starts_with("TLSv1.3 TLS13_"),
        "{env:?}"
    );
    let body = String::from_utf8(q.body(env.id).unwrap().unwrap()).unwrap();
    assert!(body.contains("with ESMTPS (TLSv1.3 TLS13_"), "{body}");
}

#[test]
fn tls12_is_accepted_and_connection_log_has_cipher() {
    let (gw, der) = tls_gateway();
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect("STARTTLS", 220);
    let mut s = s.upgrade(
        client_config(&der, &[&rustls::version::TLS12]),
        "gw.test.example",
    );
    s.expect("EHLO client.test.example", 250);
    s.expect("QUIT", 221);
    assert!(wait_for(10, || {
        let out = gw.cli(ADMIN_TOKEN, &["--json", "connections"]);
        String::from_utf8_lossy(&out.stdout).contains("TLSv1.2 TLS_ECDHE_")
    }));
}

#[test]
fn sighup_serves_a_replaced_certificate_to_the_next_connection() {
    let (gw, old) = tls_gateway();
    // A session in flight keeps working across the reload.
    let mut first = Smtp::greeted(gw.smtp);
    first.expect("EHLO client.test.example", 250);
    let new = write_cert(gw.dir.path());
    assert_ne!(old, new);
    let pid = gw.child.as_ref().unwrap().id();
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(wait_for(10, || gw
        .log_text()
        .contains("TLS certificate reloaded")));
    first.expect("NOOP", 250);
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect("STARTTLS", 220);
    // Only the new certificate is trusted: the handshake proves which one is served.
    let mut s = s.upgrade(
        client_config(&new, &[&rustls::version::TLS13]),
        "gw.test.example",
    );
    s.expect("EHLO client.test.example", 250);
}

#[test]
fn a_certificate_that_does_not_load_refuses_the_reload_and_the_old_one_stays() {
    let (gw, old) = tls_gateway();
    // A half-written renewal: the key file is fine, the certificate is not.
    std::fs::write(
        gw.dir.path().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    let (status, body) = http(gw.admin, "POST", "/api/v1/reload", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("smtp.tls_cert"), "{body}");
    assert!(!gw.log_text().contains("TLS certificate reloaded"));
    // The old certificate is still served.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect("STARTTLS", 220);
    let mut s = s.upgrade(
        client_config(&old, &[&rustls::version::TLS13]),
        "gw.test.example",
    );
    s.expect("EHLO client.test.example", 250);
}

#[test]
fn starttls_without_certificate_is_not_offered() {
    let gw = Gateway::start("");
    let mut s = Smtp::greeted(gw.smtp);
    let ehlo = s.expect("EHLO client.test.example", 250);
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"));
    s.expect("STARTTLS", 502);
}
