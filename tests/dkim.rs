//! DKIM signing end to end (issue #18, item 1): staff make a key on the
//! gateway, the TXT record is served by a DNS server on loopback, mail is
//! relayed to a fake MX, and what the MX received is verified with
//! mail-auth's own verifier against that DNS server.

mod common;

use std::time::Duration;

use common::dns::{Rec, TestDns};
use common::fake_mx::{Behaviour, FakeMx};
use common::*;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use serde_json::Value;

/// A gateway relaying everything to `mx`, retrying after a second.
fn gateway(mx: &FakeMx) -> Gateway {
    gateway_with(mx, "")
}

/// [`gateway`] with more `[delivery]` settings (TOML lines).
fn gateway_with(mx: &FakeMx, delivery: &str) -> Gateway {
    let gw = Gateway::start(&format!(
        "[delivery]\nmin_backoff = \"1s\"\nmax_backoff = \"1s\"\n{delivery}[delivery.routes]\n\"*\" = \"{}\"\n[registration]\ngateway_addresses = [\"127.0.0.1\"]\n",
        mx.addr()
    ));
    gw.register(AGENCY, &["127.0.0.1"]);
    gw
}

/// `ugem dkim generate`, the key published in `dns`; the key as the API shows it.
fn generate(gw: &Gateway, dns: &TestDns, selector: &str, algorithm: &str) -> Value {
    let out = gw.cli_ok(&[
        "--json",
        "dkim",
        "generate",
        AGENCY,
        "--selector",
        selector,
        "--algorithm",
        algorithm,
    ]);
    let key: Value = serde_json::from_str(&out).unwrap();
    publish(dns, &key);
    key
}

fn publish(dns: &TestDns, key: &Value) {
    dns.set(
        key["record_name"].as_str().unwrap(),
        &[Rec::Txt(key["record"].as_str().unwrap())],
    );
}

/// Every DKIM signature of `message` checked against `dns`: (d, s, result).
fn verify(dns: &TestDns, message: &[u8]) -> Vec<(String, String, DkimResult)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resolver = ugem::dns::resolver_builder(&[dns.addr()])
            .unwrap()
            .build()
            .unwrap();
        let auth = MessageAuthenticator(resolver);
        let msg = AuthenticatedMessage::parse(message).expect("a parsable message");
        auth.verify_dkim(&msg)
            .await
            .iter()
            .map(|o| {
                let s = o.signature().expect("a signature");
                (s.d.clone(), s.s.clone(), o.result().clone())
            })
            .collect()
    })
}

/// Sends `body` from the agency to `to`; the queue id.
fn send(gw: &Gateway, to: &str, body: &str) -> String {
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(&format!("clerk@{AGENCY}"), &[to], body);
    assert_eq!(r.code, 250, "{r:?}");
    s.expect("QUIT", 221);
    r.text().rsplit(' ').next().unwrap().to_string()
}

fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Clerk <clerk@{AGENCY}>\r\nTo: someone@example.org\r\nSubject: {subject}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
}

fn received(mx: &FakeMx, n: usize) -> Vec<Vec<u8>> {
    assert!(
        mx.wait_for_messages(n, Duration::from_secs(30)),
        "not delivered"
    );
    mx.messages().into_iter().map(|m| m.body).collect()
}

fn dkim_fields(msg: &[u8]) -> Vec<String> {
    let parsed = mail_parser::MessageParser::default().parse(msg).unwrap();
    parsed
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("DKIM-Signature"))
        .map(|h| {
            String::from_utf8_lossy(&msg[h.offset_start() as usize..h.offset_end() as usize])
                .into_owned()
        })
        .collect()
}

#[test]
fn both_algorithms_sign_small_large_and_utf8_mail_that_verifies() {
    let mx = FakeMx::start(Behaviour::accept());
    for algorithm in ["rsa-sha256", "ed25519-sha256"] {
        let dns = TestDns::start(&[]);
        let gw = gateway(&mx);
        let before = mx.messages().len();
        let key = generate(&gw, &dns, "sel1", algorithm);
        assert_eq!(key["state"], "active");
        assert!(key["record"].as_str().unwrap().starts_with("v=DKIM1; k="));
        // Nothing secret in the answer.
        assert!(!key.to_string().to_lowercase().contains("private"), "{key}");

        send(&gw, "a@example.org", &message("small", "hello\r\n"));
        // 5 MiB: far beyond smtp.spool_threshold, so signed from its spool file.
        let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
        let big = line.repeat((5 << 20) / line.len() + 1);
        send(&gw, "b@example.org", &message("large", &big));
        // 8-bit headers (SMTPUTF8).
        let mut s = Smtp::greeted(gw.smtp);
        s.expect("EHLO client.test.example", 250);
        s.expect(&format!("MAIL FROM:<clerk@{AGENCY}> SMTPUTF8"), 250);
        s.expect("RCPT TO:<получатель@example.org>", 250);
        s.expect("DATA", 354);
        s.send_raw(
            format!(
                "From: Қызметкер <clerk@{AGENCY}>\r\nTo: Алушы <получатель@example.org>\r\nSubject: Сәлем, әлем\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\nМәтін\r\n.\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(s.reply().code, 250);
        s.expect("QUIT", 221);

        let got = received(&mx, before + 3);
        for m in &got[before..] {
            let results = verify(&dns, m);
            assert_eq!(
                results,
                vec![(AGENCY.to_string(), "sel1".to_string(), DkimResult::Pass)],
                "{algorithm}: {}",
                String::from_utf8_lossy(&m[..m.len().min(2000)])
            );
            let field = &dkim_fields(m)[0];
            assert!(field.contains("c=relaxed/relaxed"), "{field}");
            assert!(field.contains(&format!("a={algorithm}")), "{field}");
        }
        // The large one was among them (delivery order is not sending order).
        assert!(got[before..].iter().any(|m| m.len() > 5 << 20));
        // The private key reaches neither the API's answer nor the log.
        let private = std::fs::read(gw.data_dir().join(format!("dkim/{AGENCY}/sel1.key"))).unwrap();
        let private = b64(&private);
        assert!(!key.to_string().contains(&private[..40]));
        assert!(!gw.log_text().contains(&private[..40]));
    }
}

#[test]
fn a_signature_the_agency_made_stays_valid_and_ours_goes_on_top() {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let mx = FakeMx::start(Behaviour::accept());
    let dns = TestDns::start(&[]);
    let gw = gateway(&mx);
    generate(&gw, &dns, "gw", "ed25519-sha256");
    // The agency's own key and signature (simple/simple: the strictest).
    let der = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&der).unwrap();
    let public = key.public_key();
    let signer = DkimSigner::from_key(key)
        .domain(AGENCY)
        .selector("agency")
        .headers(["From", "To", "Subject", "Date"]);
    let msg = message("pre-signed", "signed by the agency\r\n");
    let sig = signer.sign(msg.as_bytes()).unwrap();
    let signed = format!("{}{msg}", sig.to_header());
    dns.set(
        &format!("agency._domainkey.{AGENCY}"),
        &[Rec::Txt(&format!("v=DKIM1; k=ed25519; p={}", b64(&public)))],
    );
    send(&gw, "a@example.org", &signed);
    let got = received(&mx, 1);
    let mut results = verify(&dns, &got[0]);
    results.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        results,
        vec![
            (AGENCY.to_string(), "agency".to_string(), DkimResult::Pass),
            (AGENCY.to_string(), "gw".to_string(), DkimResult::Pass),
        ]
    );
    // Ours is the first field, the agency's further down, unchanged.
    let fields = dkim_fields(&got[0]);
    assert!(fields[0].contains("s=gw;"), "{fields:?}");
    assert!(String::from_utf8_lossy(&got[0]).contains(&sig.to_header()));
}

fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= c.len() {
                ABC[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn a_retry_carries_the_identical_signature() {
    let first = FakeMx::start(Behaviour::defer_data());
    let addr = first.addr();
    let dns = TestDns::start(&[]);
    let gw = gateway(&first);
    generate(&gw, &dns, "sel1", "ed25519-sha256");
    send(&gw, "a@example.org", &message("retry", "again\r\n"));
    assert!(
        wait_for(15, || !first.attempts().is_empty()),
        "no first attempt"
    );
    let deferred = first.attempts()[0].body.clone();
    drop(first);
    let second = FakeMx::start_at(addr, Behaviour::accept());
    let got = received(&second, 1);
    assert_eq!(dkim_fields(&deferred), dkim_fields(&got[0]));
    assert_eq!(deferred, got[0]);
    assert_eq!(verify(&dns, &got[0])[0].2, DkimResult::Pass);
}

#[test]
fn rotation_signs_with_the_next_key_once_activated_and_unsigned_domains_stay_unsigned() {
    let mx = FakeMx::start(Behaviour::accept());
    let dns = TestDns::start(&[]);
    let gw = gateway(&mx);
    // No key: mail goes unsigned.
    send(&gw, "a@example.org", &message("none", "x\r\n"));
    assert!(dkim_fields(&received(&mx, 1)[0]).is_empty());
    // Staff only: a viewer may list but not generate.
    let refused = gw.cli(VIEWER_TOKEN, &["dkim", "generate", AGENCY]);
    assert!(!refused.status.success());
    generate(&gw, &dns, "old", "rsa-sha256");
    let next: Value = serde_json::from_str(&gw.cli_ok(&[
        "--json",
        "dkim",
        "rotate",
        AGENCY,
        "--selector",
        "new",
        "--algorithm",
        "ed25519-sha256",
    ]))
    .unwrap();
    assert_eq!(next["state"], "next");
    publish(&dns, &next);
    send(&gw, "a@example.org", &message("still old", "x\r\n"));
    let got = received(&mx, 2);
    assert_eq!(verify(&dns, &got[1])[0].1, "old");
    let shown = gw.cli_ok(&["dkim", "rotate", AGENCY, "--activate"]);
    // The record to publish, in zone-file form.
    assert!(
        shown.contains(&format!(
            "new._domainkey.{AGENCY} TXT \"v=DKIM1; k=ed25519; p="
        )),
        "{shown}"
    );
    send(&gw, "a@example.org", &message("new", "x\r\n"));
    let got = received(&mx, 3);
    assert_eq!(
        verify(&dns, &got[2]),
        vec![(AGENCY.to_string(), "new".to_string(), DkimResult::Pass)]
    );
    let list = gw.cli_ok(&["dkim", "list", AGENCY]);
    assert!(
        list.contains("retired") && list.contains("active"),
        "{list}"
    );
    let text = gw.cli_ok(&["dkim", "list"]);
    assert!(text.contains("v=DKIM1; k=ed25519; p="), "{text}");
    // Each change is in the audit trail.
    let audit: Value = serde_json::from_str(&gw.cli_ok(&["--json", "audit"])).unwrap();
    let mut changes: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("dkim.") && r["outcome"] == "ok")
        .map(|r| (r["action"].as_str().unwrap(), r["target"].as_str().unwrap()))
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            (
                "dkim.generate",
                "agency.example.kz selector=old algorithm=rsa-sha256 state=active"
            ),
            (
                "dkim.rotate",
                "agency.example.kz selector=new algorithm=ed25519-sha256 state=active"
            ),
            (
                "dkim.rotate",
                "agency.example.kz selector=new algorithm=ed25519-sha256 state=next"
            ),
        ],
        "{audit:#}"
    );
    // Keys are private files.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(gw.data_dir().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("dkim"), 0o700);
    assert_eq!(mode(&format!("dkim/{AGENCY}/new.key")), 0o600);
}

#[test]
fn domain_show_advises_on_the_published_key_spf_and_dmarc() {
    let mx = FakeMx::start(Behaviour::accept());
    let dns = TestDns::start(&[]);
    let gw = gateway_with(&mx, &format!("nameservers = {}\n", dns.nameservers_toml()));
    let advice = |gw: &Gateway| -> Vec<(String, String)> {
        let v: Value =
            serde_json::from_str(&gw.cli_ok(&["--json", "domain", "show", AGENCY])).unwrap();
        v["advice"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["check"].as_str().unwrap().to_string(),
                    a["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pairs = |l: &[(&str, &str)]| -> Vec<(String, String)> {
        l.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // Nothing set up yet.
    assert_eq!(
        advice(&gw),
        pairs(&[
            ("dkim", "warning"),
            ("spf", "warning"),
            ("dmarc", "warning")
        ])
    );
    let key = generate(&gw, &dns, "sel1", "rsa-sha256");
    dns.set(AGENCY, &[Rec::Txt("v=spf1 ip4:127.0.0.1 -all")]);
    dns.set(
        &format!("_dmarc.{AGENCY}"),
        &[Rec::Txt("v=DMARC1; p=reject")],
    );
    assert_eq!(
        advice(&gw),
        pairs(&[("dkim", "ok"), ("spf", "ok"), ("dmarc", "ok")])
    );
    // Another key under the selector, an SPF that leaves the gateway out,
    // DMARC only at the parent (which counts).
    dns.set(
        key["record_name"].as_str().unwrap(),
        &[Rec::Txt(
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        )],
    );
    dns.set(AGENCY, &[Rec::Txt("v=spf1 ip4:192.0.2.1 -all")]);
    dns.set(&format!("_dmarc.{AGENCY}"), &[]);
    dns.set("_dmarc.example.kz", &[Rec::Txt("v=DMARC1; p=none")]);
    std::thread::sleep(Duration::from_millis(1100)); // the records' TTL
    assert_eq!(
        advice(&gw),
        pairs(&[("dkim", "problem"), ("spf", "warning"), ("dmarc", "ok")])
    );
}

#[test]
fn application_show_advises_on_dmarc_too() {
    let dns = TestDns::start(&[
        ("_dmarc.new.example.kz", Rec::Txt("v=DMARC1; p=quarantine")),
        ("bare.example.kz", Rec::Txt("v=spf1 -all")),
    ]);
    let gw = Gateway::start(&format!(
        "[delivery]\nnameservers = {}\n",
        dns.nameservers_toml()
    ));
    let dmarc = |domain: &str, server: &str| -> (String, String) {
        let app: Value = serde_json::from_str(&gw.cli_ok(&[
            "--json",
            "application",
            "submit",
            "--domain",
            domain,
            "--owner",
            "Ministry",
            "--category",
            "state-body",
            "--head",
            "Asel Bekova",
            "--server",
            server,
            "--contact",
            "Asel Bekova <asel@contact.example.kz>; mobile=+77010000000",
        ]))
        .unwrap();
        let id = app["id"].to_string();
        let show: Value =
            serde_json::from_str(&gw.cli_ok(&["--json", "application", "show", &id])).unwrap();
        let c = show["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "dmarc")
            .unwrap_or_else(|| panic!("no dmarc check: {show:#}"))
            .clone();
        (
            c["verdict"].as_str().unwrap().into(),
            c["detail"].as_str().unwrap().into(),
        )
    };
    let (verdict, detail) = dmarc("new.example.kz", "95.59.10.1");
    assert_eq!(verdict, "ok", "{detail}");
    assert!(detail.contains("p=quarantine"), "{detail}");
    assert_eq!(dmarc("bare.example.kz", "95.59.10.2").0, "warning");
}
