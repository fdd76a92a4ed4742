//! DANE for SMTP (RFC 7672) against a DNSSEC-signed zone on loopback: the
//! validating resolver through the public API, and the real binary
//! delivering to fake MXs under the `dane` policy and `delivery.dnssec`.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::dnssec::{Child, SRec, SignedDns, stranger_anchor};
use common::fake_mx::{Behaviour, FakeMx, TestPki, self_signed_server};
use common::policy_server::PolicyServer;
use common::*;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use sha2::{Digest, Sha256};
use ugem::delivery::dane::HostDane;
use ugem::delivery::route::{ResolveError, Resolver};
use ugem::domain::Domain;

/// `3 1 1` for `cert`: DANE-EE, its public key, SHA-256.
fn dane_ee(cert: &CertificateDer<'_>) -> SRec {
    let spki = rustls::server::ParsedCertificate::try_from(cert)
        .unwrap()
        .subject_public_key_info();
    SRec::Tlsa(3, 1, 1, Sha256::digest(spki.as_ref()).to_vec())
}

fn s(text: &str) -> String {
    text.to_string()
}

/// `domain MX 10 mx.domain`, `mx.domain A ip`, and the TLSA record, if any.
fn mail_domain(domain: &str, ip: Ipv4Addr, tlsa: Option<SRec>) -> Vec<(String, SRec)> {
    let mx = format!("mx.{domain}");
    let mut v = vec![
        (s(domain), SRec::Mx(10, mx.clone())),
        (mx.clone(), SRec::A(ip)),
    ];
    if let Some(t) = tlsa {
        v.push((format!("_25._tcp.{mx}"), t));
    }
    v
}

const TLS_MX: Ipv4Addr = Ipv4Addr::LOCALHOST;
const PLAIN_MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The signed root with these destinations (TLS_MX presents `cert`):
/// - dane.test: signed, TLSA matching `cert`;
/// - wrongtlsa.test: signed, TLSA for another certificate;
/// - notls.test: signed, TLSA matching, but its MX offers no STARTTLS;
/// - nodane.test: signed, no TLSA;
/// - plain.test: unsigned zone, TLSA for another certificate (ignored);
/// - bogus.test: a DS that does not match the zone's key;
/// - mixed.test: signed, its MX host in bogus.test.
fn signed_world(cert: &CertificateDer<'static>) -> SignedDns {
    let (other, _) = self_signed_server(&["mx.dane.test"]);
    let mut root = Vec::new();
    root.extend(mail_domain("dane.test", TLS_MX, Some(dane_ee(cert))));
    root.extend(mail_domain("wrongtlsa.test", TLS_MX, Some(dane_ee(&other))));
    root.extend(mail_domain("notls.test", PLAIN_MX, Some(dane_ee(cert))));
    root.extend(mail_domain("nodane.test", TLS_MX, None));
    // A signed MX naming a host in the bogus zone.
    root.push((s("mixed.test"), SRec::Mx(10, s("mx.bogus.test"))));
    SignedDns::start(
        &root,
        &[
            Child::Unsigned(
                s("plain.test"),
                mail_domain("plain.test", TLS_MX, Some(dane_ee(&other))),
            ),
            Child::Bogus(
                s("bogus.test"),
                mail_domain("bogus.test", TLS_MX, Some(dane_ee(cert))),
            ),
        ],
    )
}

fn anchor_file(dir: &tempfile::TempDir, line: &str) -> std::path::PathBuf {
    let p = dir.path().join("anchor.keys");
    std::fs::write(&p, format!("{line}\n")).unwrap();
    p
}

fn d(text: &str) -> Domain {
    Domain::parse(text).unwrap()
}

#[tokio::test]
async fn the_validating_resolver_tells_secure_insecure_and_bogus_apart() {
    let (cert, _) = self_signed_server(&["mx.dane.test"]);
    let dns = signed_world(&cert);
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_file(&dir, dns.anchor());
    let r = Resolver::new_uncached(&[dns.addr()])
        .unwrap()
        .with_dnssec(Some(&anchor))
        .unwrap();

    let (targets, hosts) = r.dane_targets(&d("dane.test")).await.unwrap();
    assert_eq!(targets[0].host, "mx.dane.test");
    match hosts.get("mx.dane.test") {
        HostDane::Usable(set) => {
            assert_eq!(set.host, "mx.dane.test");
            assert_eq!(set.records.len(), 1);
            assert_eq!(
                set.check(
                    &cert,
                    &[],
                    rustls::pki_types::UnixTime::now(),
                    &rustls::crypto::ring::default_provider().signature_verification_algorithms
                ),
                Ok(ugem::delivery::dane::Matched::EndEntity)
            );
        }
        other => panic!("dane.test: {other:?}"),
    }
    // Signed, no TLSA: the denial validates, and DANE does not apply.
    let (_, hosts) = r.dane_targets(&d("nodane.test")).await.unwrap();
    assert_eq!(hosts.get("mx.nodane.test"), &HostDane::None);
    // Unsigned: the TLSA record there is not looked at.
    let (targets, hosts) = r.dane_targets(&d("plain.test")).await.unwrap();
    assert_eq!(targets[0].host, "mx.plain.test");
    assert_eq!(hosts.get("mx.plain.test"), &HostDane::None);
    // Bogus: an error, never an insecure answer.
    match r.dane_targets(&d("bogus.test")).await {
        Err(ResolveError::Bogus(why)) => assert!(why.contains("bogus.test"), "{why}"),
        other => panic!("bogus.test: {other:?}"),
    }
    // A secure MX whose host's addresses are bogus: no address to use,
    // and the reason says so (the mail waits).
    match r.dane_targets(&d("mixed.test")).await {
        Err(ResolveError::Temporary(why)) => {
            assert!(why.contains("DNSSEC validation failed"), "{why}")
        }
        other => panic!("mixed.test: {other:?}"),
    }
    // The same zone under a trust anchor that did not sign it: bogus too.
    let dir2 = tempfile::tempdir().unwrap();
    let wrong = anchor_file(&dir2, &stranger_anchor());
    let r2 = Resolver::new_uncached(&[dns.addr()])
        .unwrap()
        .with_dnssec(Some(&wrong))
        .unwrap();
    assert!(matches!(
        r2.dane_targets(&d("dane.test")).await,
        Err(ResolveError::Bogus(_))
    ));
}

/// The queued recipients `address` with status deferred and a last error
/// that satisfies `f`.
fn deferred_with(gw: &Gateway, address: &str, f: impl Fn(&str) -> bool) -> bool {
    queued(gw).iter().any(|e: &Value| {
        e["recipients"].as_array().unwrap().iter().any(|r| {
            r["address"] == address
                && r["status"] == "deferred"
                && r["last_error"].as_str().is_some_and(&f)
        })
    })
}

/// A gateway whose MX look-ups go to `dns`, trusting `anchor`, with the
/// fake MXs on `port`.
fn gateway(dns: &SignedDns, anchor: &std::path::Path, port: u16, tls: &str) -> Gateway {
    gateway_with(dns, anchor, port, tls, "")
}

/// [`gateway`] with `top` (whole sections) added to the configuration.
fn gateway_with(
    dns: &SignedDns,
    anchor: &std::path::Path,
    port: u16,
    tls: &str,
    top: &str,
) -> Gateway {
    let mut cfg: toml::Table = config_text(top).parse().unwrap();
    let delivery: toml::Table = format!(
        "routes = {{}}\nnameservers = [\"{}\"]\nmx_port = {port}\n\
         min_backoff = \"1s\"\nmax_backoff = \"2s\"\nconnect_timeout = \"3s\"\n\
         command_timeout = \"10s\"\ndata_timeout = \"10s\"\nmta_sts = false\n\
         dnssec_trust_anchor = \"{}\"\n",
        dns.addr(),
        anchor.display()
    )
    .parse()
    .unwrap();
    let extra: toml::Table = tls.parse().unwrap();
    let mut delivery = delivery;
    delivery.extend(extra);
    // Replaced key by key, so that the base's catch-all route goes.
    match cfg.get_mut("delivery") {
        Some(toml::Value::Table(t)) => t.extend(delivery),
        _ => {
            cfg.insert("delivery".into(), toml::Value::Table(delivery));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ugem.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let gw = Gateway::start_in(dir, path);
    gw.register(AGENCY, &["127.0.0.1"]);
    gw
}

/// The fake MX that offers STARTTLS with `server` on 127.0.0.1, and one
/// that offers no STARTTLS on 127.0.0.2, on the same port.
fn fake_mxs(server: std::sync::Arc<rustls::ServerConfig>) -> (FakeMx, FakeMx) {
    for _ in 0..20 {
        let tls = FakeMx::start(Behaviour::starttls(server.clone()));
        let port = tls.addr().port();
        let at = SocketAddr::new(PLAIN_MX.into(), port);
        if std::net::TcpListener::bind(at).is_ok() {
            return (tls, FakeMx::start_at(at, Behaviour::accept()));
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// The agency's clerk sends `body` to `rcpts` through `gw`: accepted.
fn send(gw: &Gateway, rcpts: &[&str], body: &str) {
    let mut smtp = Smtp::greeted(gw.smtp);
    let r = smtp.send_mail("clerk@agency.example.kz", rcpts, body);
    assert_eq!(r.code, 250, "{r:?}");
    smtp.expect("QUIT", 221);
}

/// The first `delivery` line of the (JSON) log for `to`.
fn delivery_line(log: &str, to: &str) -> Option<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "delivery" && v["to"] == to)
}

#[test]
fn dane_policy_delivers_only_to_matching_certificates_and_defers_the_rest() {
    let (cert, server) = self_signed_server(&["mx.dane.test"]);
    let dns = signed_world(&cert);
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_file(&dir, dns.anchor());
    let (tls_mx, plain_mx) = fake_mxs(server);
    let gw = gateway(&dns, &anchor, tls_mx.addr().port(), "tls = \"dane\"");
    send(
        &gw,
        &[
            "a@dane.test",
            "b@wrongtlsa.test",
            "c@notls.test",
            "d@plain.test",
            "e@bogus.test",
        ],
        "Subject: dane\r\n\r\nhello\r\n",
    );

    // (1) signed zone, TLSA matching the self-signed certificate: over TLS.
    // (4) unsigned zone: as before (opportunistic TLS; its TLSA, which
    // matches nothing, is not looked at).
    assert!(
        tls_mx.wait_for_messages(2, Duration::from_secs(30)),
        "log:\n{}",
        gw.log_text()
    );
    let got = tls_mx.messages();
    for rcpt in ["a@dane.test", "d@plain.test"] {
        let m = got
            .iter()
            .find(|m| m.recipients == [rcpt])
            .unwrap_or_else(|| panic!("{rcpt} not delivered: {got:?}"));
        assert!(m.tls, "{rcpt} went out without TLS");
    }
    // (2) TLSA not matching, (3) no STARTTLS, (5) bogus: deferred, saying why.
    assert!(
        wait_for(30, || {
            deferred_with(&gw, "b@wrongtlsa.test", |t| {
                t.starts_with("4.7.5") && t.contains("DANE") && t.contains("no TLSA record")
            }) && deferred_with(&gw, "c@notls.test", |t| {
                t.starts_with("4.7.4") && t.contains("DANE")
            }) && deferred_with(&gw, "e@bogus.test", |t| {
                t.starts_with("4.7.5") && t.contains("DNSSEC validation failed")
            })
        }),
        "{:#?}\nlog:\n{}",
        queued(&gw),
        gw.log_text()
    );
    // Nothing went anywhere in the clear, nor to the wrong certificate.
    assert!(plain_mx.attempts().is_empty(), "{:?}", plain_mx.attempts());
    assert_eq!(tls_mx.messages().len(), 2);
    assert!(
        tls_mx
            .attempts()
            .iter()
            .all(|m| m.recipients == ["a@dane.test"] || m.recipients == ["d@plain.test"])
    );

    // The log says which policy governed each delivery, and why mail waits.
    let log = gw.log_text();
    let a = delivery_line(&log, "a@dane.test").expect("a's delivery line");
    assert_eq!(a["tls_policy"], "dane", "{a}");
    assert!(a["status"].as_str().unwrap().starts_with("sent"), "{a}");
    assert!(a["tls"].as_str().unwrap().starts_with("TLSv1."), "{a}");
    let d = delivery_line(&log, "d@plain.test").expect("d's delivery line");
    assert_eq!(d["tls_policy"], "none", "{d}");
    assert!(d["status"].as_str().unwrap().starts_with("sent"), "{d}");
    let b = delivery_line(&log, "b@wrongtlsa.test").expect("b's delivery line");
    let status = b["status"].as_str().unwrap();
    assert!(
        status.starts_with("deferred") && status.contains("no TLSA record of mx.wrongtlsa.test"),
        "{b}"
    );
}

#[test]
fn dnssec_on_makes_dane_apply_under_may_and_a_wrong_anchor_defers_everything_signed() {
    let (cert, server) = self_signed_server(&["mx.dane.test"]);
    let dns = signed_world(&cert);
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_file(&dir, dns.anchor());
    let (tls_mx, _plain_mx) = fake_mxs(server);
    // Default level `may`, with `dnssec = true`: DANE where published.
    let gw = gateway(
        &dns,
        &anchor,
        tls_mx.addr().port(),
        "dnssec = true\ntls = \"may\"",
    );
    send(
        &gw,
        &["a@dane.test", "b@wrongtlsa.test", "n@nodane.test"],
        "Subject: dnssec\r\n\r\nhello\r\n",
    );
    assert!(
        tls_mx.wait_for_messages(2, Duration::from_secs(30)),
        "log:\n{}",
        gw.log_text()
    );
    assert!(
        wait_for(30, || deferred_with(&gw, "b@wrongtlsa.test", |t| t
            .contains("DANE"))),
        "{:#?}\nlog:\n{}",
        queued(&gw),
        gw.log_text()
    );
    let log = gw.log_text();
    let a = delivery_line(&log, "a@dane.test").unwrap();
    assert_eq!(a["tls_policy"], "dane", "{a}");
    let n = delivery_line(&log, "n@nodane.test").unwrap();
    assert_eq!(n["tls_policy"], "none", "{n}");

    // Trusting a key that signed nothing here: every signed answer is
    // bogus, so nothing is sent, not even in the clear.
    let dir2 = tempfile::tempdir().unwrap();
    let wrong = anchor_file(&dir2, &stranger_anchor());
    let gw2 = gateway(&dns, &wrong, tls_mx.addr().port(), "tls = \"dane\"");
    send(
        &gw2,
        &["z@dane.test"],
        "Subject: wrong anchor\r\n\r\nhello\r\n",
    );
    assert!(
        wait_for(30, || deferred_with(&gw2, "z@dane.test", |t| t
            .contains("DNSSEC validation failed"))),
        "{:#?}\nlog:\n{}",
        queued(&gw2),
        gw2.log_text()
    );
    assert!(
        tls_mx
            .attempts()
            .iter()
            .all(|m| m.recipients != ["z@dane.test"])
    );
}

#[test]
fn dane_wins_over_an_mta_sts_policy_that_would_refuse_the_mx() {
    // both.test publishes DANE for its MX and an enforced MTA-STS policy
    // that lists another host: alone, the policy would keep the mail queued
    // (and the self-signed certificate would not verify either).
    let (cert, server) = self_signed_server(&["mx.both.test"]);
    // stsonly.test has the same policy and no TLSA: its mail waits.
    let pki = TestPki::new(&["mta-sts.both.test", "mta-sts.stsonly.test"]);
    let policy = "version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.test\r\nmax_age: 3600\r\n";
    let policies = PolicyServer::start(
        pki.server.clone(),
        Duration::ZERO,
        vec![
            ("mta-sts.both.test", policy.into()),
            ("mta-sts.stsonly.test", policy.into()),
        ],
    );
    let mut root = mail_domain("both.test", TLS_MX, Some(dane_ee(&cert)));
    root.extend(mail_domain("stsonly.test", TLS_MX, None));
    for d in ["both.test", "stsonly.test"] {
        root.push((format!("_mta-sts.{d}"), SRec::Txt(s("v=STSv1; id=1;"))));
        root.push((format!("mta-sts.{d}"), SRec::A(Ipv4Addr::LOCALHOST)));
    }
    let dns = SignedDns::start(&root, &[]);
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_file(&dir, dns.anchor());
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let mx = FakeMx::start(Behaviour::starttls(server));
    let gw = gateway(
        &dns,
        &anchor,
        mx.addr().port(),
        &format!(
            "tls = \"dane\"\nmta_sts = true\nmta_sts_port = {}\ntls_ca_file = \"{}\"",
            policies.addr.port(),
            ca.display()
        ),
    );
    send(
        &gw,
        &["x@both.test", "y@stsonly.test"],
        "Subject: both\r\n\r\nhello\r\n",
    );
    assert!(
        mx.wait_for_messages(1, Duration::from_secs(30)),
        "{:#?}\nlog:\n{}",
        queued(&gw),
        gw.log_text()
    );
    assert!(mx.messages()[0].tls);
    assert_eq!(mx.messages()[0].recipients, ["x@both.test"]);
    assert!(
        wait_for(30, || deferred_with(&gw, "y@stsonly.test", |t| t
            .contains("MTA-STS policy of stsonly.test"))),
        "{:#?}",
        queued(&gw)
    );
    assert_eq!(mx.messages().len(), 1);
    // Both policies were fetched: for both.test DANE governed all the same.
    assert!(policies.requests() >= 2);
    let x = delivery_line(&gw.log_text(), "x@both.test").unwrap();
    assert_eq!(x["tls_policy"], "dane", "{x}");
}

#[test]
fn dane_ta_needs_the_chain_to_the_published_ca_and_the_mx_name() {
    // A private CA no system trusts, published as DANE-TA (2 0 1) for two
    // MX hosts; the server's certificate names only mx.ta.test.
    let pki = TestPki::new(&["mx.ta.test"]);
    let ta = SRec::Tlsa(2, 0, 1, Sha256::digest(pki.ca.as_ref()).to_vec());
    let mut root = mail_domain("ta.test", TLS_MX, Some(ta.clone()));
    root.extend(mail_domain("badname.test", TLS_MX, Some(ta)));
    let dns = SignedDns::start(&root, &[]);
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_file(&dir, dns.anchor());
    let mx = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let gw = gateway(&dns, &anchor, mx.addr().port(), "tls = \"dane\"");
    send(
        &gw,
        &["t@ta.test", "u@badname.test"],
        "Subject: ta\r\n\r\nhello\r\n",
    );
    assert!(
        mx.wait_for_messages(1, Duration::from_secs(30)),
        "{:#?}\nlog:\n{}",
        queued(&gw),
        gw.log_text()
    );
    assert!(
        wait_for(30, || deferred_with(&gw, "u@badname.test", |t| t
            .contains("does not name mx.badname.test"))),
        "{:#?}",
        queued(&gw)
    );
    let got = mx.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].recipients, ["t@ta.test"]);
    assert!(got[0].tls);
    let t = delivery_line(&gw.log_text(), "t@ta.test").unwrap();
    assert_eq!(t["tls_policy"], "dane", "{t}");
}

/// The TLS report (RFC 8460) JSON in a report mail.
fn tls_report(raw: &[u8]) -> Value {
    use mail_parser::MimeHeaders;
    use std::io::Read;
    let msg = mail_parser::MessageParser::default().parse(raw).unwrap();
    let att = msg.attachment(0).expect("the report attachment");
    let ct = att.content_type().unwrap();
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("application", Some("tlsrpt+gzip"))
    );
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(att.contents())
        .read_to_end(&mut json)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[test]
fn dane_sessions_are_reported_to_the_mx_hosts_tls_reporting_address() {
    // RFC 8460 §3: under DANE the policy domain is the TLSA base domain,
    // the MX host, so each MX host publishes its own _smtp._tls record.
    let (cert, server) = self_signed_server(&["mx.dane.test"]);
    let mut dns_root = Vec::new();
    let (other, _) = self_signed_server(&["mx.dane.test"]);
    dns_root.extend(mail_domain("dane.test", TLS_MX, Some(dane_ee(&cert))));
    dns_root.extend(mail_domain("wrongtlsa.test", TLS_MX, Some(dane_ee(&other))));
    dns_root.extend(mail_domain("notls.test", PLAIN_MX, Some(dane_ee(&cert))));
    // Signed, but only a PKIX usage (1): unusable for SMTP.
    dns_root.extend(mail_domain(
        "pkix.test",
        TLS_MX,
        Some(SRec::Tlsa(1, 1, 1, vec![7; 32])),
    ));
    for host in [
        "mx.dane.test",
        "mx.wrongtlsa.test",
        "mx.notls.test",
        "mx.pkix.test",
    ] {
        dns_root.push((
            format!("_smtp._tls.{host}"),
            SRec::Txt(s("v=TLSRPTv1; rua=mailto:tlsrpt@reports.test")),
        ));
    }
    // The reports' own destination, no DANE (delivered under `may`).
    dns_root.extend(mail_domain("reports.test", TLS_MX, None));
    let dns = SignedDns::start(&dns_root, &[]);
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_file(&dir, dns.anchor());
    let (tls_mx, plain_mx) = fake_mxs(server);
    let gw = gateway_with(
        &dns,
        &anchor,
        tls_mx.addr().port(),
        "tls = \"dane\"",
        "[tlsrpt]\nenabled = true\n",
    );
    send(
        &gw,
        &[
            "a@dane.test",
            "b@wrongtlsa.test",
            "c@notls.test",
            "p@pkix.test",
        ],
        "Subject: dane\r\n\r\nhello\r\n",
    );
    assert!(
        wait_for(30, || tls_mx
            .messages()
            .iter()
            .any(|m| m.recipients == ["a@dane.test"])
            && tls_mx
                .messages()
                .iter()
                .any(|m| m.recipients == ["p@pkix.test"])
            && deferred_with(&gw, "b@wrongtlsa.test", |t| t
                .starts_with("4.7.5"))
            && deferred_with(&gw, "c@notls.test", |t| t.starts_with("4.7.4"))),
        "{:#?}\nlog:\n{}",
        queued(&gw),
        gw.log_text()
    );
    assert!(plain_mx.messages().is_empty());

    let today = chrono::Utc::now().date_naive().to_string();
    let sent: Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "tlsrpt", "send", "--day", &today])).unwrap();
    assert_eq!(sent["reports"].as_array().unwrap().len(), 4, "{sent}");
    assert!(
        wait_for(30, || tls_mx
            .messages()
            .iter()
            .filter(|m| m.recipients == ["tlsrpt@reports.test"])
            .count()
            == 4),
        "{sent}\nlog:\n{}",
        gw.log_text()
    );
    let reports: std::collections::BTreeMap<String, Value> = tls_mx
        .messages()
        .iter()
        .filter(|m| m.recipients == ["tlsrpt@reports.test"])
        .map(|m| {
            let v = tls_report(&m.body);
            let p = &v["policies"][0];
            (
                p["policy"]["policy-domain"].as_str().unwrap().to_string(),
                p.clone(),
            )
        })
        .collect();
    let counts = |host: &str| {
        let p = &reports[host];
        assert_eq!(p["policy"]["policy-type"], "tlsa", "{p}");
        (
            p["summary"]["total-successful-session-count"]
                .as_u64()
                .unwrap(),
            p["summary"]["total-failure-session-count"]
                .as_u64()
                .unwrap(),
            p["failure-details"][0]["result-type"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    // The matching certificate: a success, the record quoted.
    assert_eq!(counts("mx.dane.test"), (1, 0, s("")));
    let quoted = reports["mx.dane.test"]["policy"]["policy-string"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        quoted.starts_with("3 1 1 ") && quoted.len() == 6 + 64,
        "{quoted}"
    );
    // Every retry of the others counts again.
    let (ok, failed, kind) = counts("mx.wrongtlsa.test");
    assert!(
        ok == 0 && failed >= 1 && kind == "validation-failure",
        "{kind} {failed}"
    );
    let (ok, failed, kind) = counts("mx.notls.test");
    assert!(
        ok == 0 && failed >= 1 && kind == "starttls-not-supported",
        "{kind}"
    );
    // Only unusable records: TLS without a check, reported as tlsa-invalid.
    let (ok, failed, kind) = counts("mx.pkix.test");
    assert!(ok == 0 && failed == 1 && kind == "tlsa-invalid", "{kind}");
    assert_eq!(
        reports["mx.pkix.test"]["policy"]["policy-string"],
        serde_json::json!([])
    );
}
