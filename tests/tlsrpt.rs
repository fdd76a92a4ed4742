//! TLS reporting (RFC 8460), end to end: the real binary delivers to MX
//! hosts under MTA-STS policies (one with verified STARTTLS, one without
//! STARTTLS under `enforce`, the same under `testing`), restarts (the
//! counts are kept), staff send the day's reports, and each arrives at the
//! `rua` address's MX as a multipart/report with the gzipped JSON, whose
//! counts and failure types are those sessions'.

mod common;

use std::io::Read;
use std::time::Duration;

use common::dns::{Rec, TestDns};
use common::fake_mx::{Behaviour, FakeMx, TestPki};
use common::{ADMIN_TOKEN, Gateway, Smtp, config_text, http, wait_for};
use mail_parser::MimeHeaders;
use serde_json::Value;

const AGENCY: &str = "agency.example.kz";
const RUA: &str = "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example";

/// `extra` merged over a full configuration text, table by table (so that
/// `routes = {}` empties the test default routes).
fn config_over(base: &str, extra: &str) -> String {
    let mut b: toml::Table = base.parse().unwrap();
    let e: toml::Table = extra.parse().unwrap();
    for (k, v) in e {
        match (b.get_mut(&k), v) {
            (Some(toml::Value::Table(bt)), toml::Value::Table(et)) => bt.extend(et),
            (_, v) => {
                b.insert(k, v);
            }
        }
    }
    toml::to_string(&b).unwrap()
}

fn queue(gw: &Gateway) -> Vec<Value> {
    let (st, body) = http(gw.admin, "GET", "/api/v1/queue", Some(ADMIN_TOKEN), None);
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The report JSON in a report mail, and the mail's checks.
fn report_of(raw: &[u8]) -> (String, Value) {
    let msg = mail_parser::MessageParser::default().parse(raw).unwrap();
    let domain = msg
        .header_raw("TLS-Report-Domain")
        .expect("TLS-Report-Domain")
        .trim()
        .to_string();
    assert_eq!(
        msg.header_raw("TLS-Report-Submitter").map(str::trim),
        Some("gw.test.example")
    );
    let subject = msg.subject().unwrap();
    assert!(
        subject.starts_with(&format!(
            "Report Domain: {domain} Submitter: gw.test.example Report-ID: <"
        )),
        "{subject}"
    );
    let ct = msg.content_type().unwrap();
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("tlsrpt"));
    let att = msg.attachment(0).expect("the report attachment");
    let act = att.content_type().unwrap();
    assert_eq!(
        (act.ctype(), act.subtype()),
        ("application", Some("tlsrpt+gzip"))
    );
    let name = att.attachment_name().unwrap();
    assert!(
        name.starts_with(&format!("gw.test.example!{domain}!")) && name.ends_with(".json.gz"),
        "{name}"
    );
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(att.contents())
        .read_to_end(&mut json)
        .unwrap();
    let v: Value = serde_json::from_slice(&json).unwrap();
    let id = v["report-id"].as_str().unwrap();
    assert!(subject.ends_with(&format!("<{id}>")), "{subject} / {id}");
    (domain, v)
}

#[test]
fn sessions_under_mta_sts_policies_are_reported_to_the_rua_address() {
    let pki = TestPki::new(&[
        "mx.good.example",
        "mta-sts.good.example",
        "mta-sts.notls.example",
        "mta-sts.trial.example",
        "mta-sts.broken.example",
    ]);
    // One port for every MX (delivery.mx_port), on three loopback addresses.
    let secure = FakeMx::start(Behaviour::starttls(pki.server.clone()));
    let port = secure.addr().port();
    let plain = FakeMx::start_at(
        format!("127.0.0.3:{port}").parse().unwrap(),
        Behaviour::accept(),
    );
    let reports = FakeMx::start_at(
        format!("127.0.0.4:{port}").parse().unwrap(),
        Behaviour::accept(),
    );
    let policy = |mode: &str, mx: &str| {
        format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
    };
    let policies = common::policy_server::PolicyServer::start(
        pki.server.clone(),
        Duration::ZERO,
        vec![
            ("mta-sts.good.example", policy("enforce", "mx.good.example")),
            (
                "mta-sts.notls.example",
                policy("enforce", "mx.notls.example"),
            ),
            (
                "mta-sts.trial.example",
                policy("testing", "mx.notls.example"),
            ),
            // Not a policy: "mode" has no such value.
            (
                "mta-sts.broken.example",
                "version: STSv1\r\nmode: bogus\r\nmax_age: 86400\r\n".into(),
            ),
        ],
    );
    let ip = |s: &str| Rec::A(s.parse().unwrap());
    let dns = TestDns::start(&[
        ("good.example", Rec::Mx(10, "mx.good.example")),
        ("mx.good.example", ip("127.0.0.1")),
        ("_mta-sts.good.example", Rec::Txt("v=STSv1; id=1;")),
        ("mta-sts.good.example", ip("127.0.0.1")),
        ("_smtp._tls.good.example", Rec::Txt(RUA)),
        ("notls.example", Rec::Mx(10, "mx.notls.example")),
        ("mx.notls.example", ip("127.0.0.3")),
        ("_mta-sts.notls.example", Rec::Txt("v=STSv1; id=1;")),
        ("mta-sts.notls.example", ip("127.0.0.1")),
        (
            "_smtp._tls.notls.example",
            Rec::Txt(
                "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example,https://reports.example/tlsrpt",
            ),
        ),
        ("trial.example", Rec::Mx(10, "mx.notls.example")),
        ("_mta-sts.trial.example", Rec::Txt("v=STSv1; id=1;")),
        ("mta-sts.trial.example", ip("127.0.0.1")),
        ("_smtp._tls.trial.example", Rec::Txt(RUA)),
        ("broken.example", Rec::Mx(10, "mx.notls.example")),
        ("_mta-sts.broken.example", Rec::Txt("v=STSv1; id=1;")),
        ("mta-sts.broken.example", ip("127.0.0.1")),
        ("_smtp._tls.broken.example", Rec::Txt(RUA)),
        ("reports.example", Rec::Mx(10, "mx.reports.example")),
        ("mx.reports.example", ip("127.0.0.4")),
    ]);
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let cfg = config_over(
        &config_text(""),
        &format!(
            "[delivery]\nroutes = {{}}\nnameservers = {}\nmx_port = {port}\nmin_backoff = \"1s\"\n\
             max_backoff = \"2s\"\nconnect_timeout = \"3s\"\ntls = \"may\"\n\
             tls_ca_file = \"{}\"\nmta_sts_port = {}\n\
             [tlsrpt]\nenabled = true\norganization = \"Test Gateway\"\ncontact = \"tls@gw.test.example\"\n",
            dns.nameservers_toml(),
            ca.display(),
            policies.addr.port()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ugem.toml");
    std::fs::write(&path, cfg).unwrap();
    let gw = Gateway::start_in(dir, path);
    gw.register(AGENCY, &["127.0.0.1"]);

    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        "clerk@agency.example.kz",
        &[
            "a@good.example",
            "b@notls.example",
            "c@trial.example",
            "d@broken.example",
        ],
        "Subject: tls\r\n\r\nhello\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    s.cmd("QUIT");

    // good.example over verified TLS; trial.example (testing) in plaintext;
    // notls.example (enforce, no STARTTLS) stays queued and is retried.
    assert!(
        secure.wait_for_messages(1, Duration::from_secs(30)),
        "log:\n{}",
        gw.log_text()
    );
    assert!(secure.messages()[0].tls);
    // broken.example has no usable policy: delivered as if it had none.
    assert!(plain.wait_for_messages(2, Duration::from_secs(30)));
    let mut to_plain: Vec<String> = plain
        .messages()
        .iter()
        .map(|m| {
            assert!(!m.tls);
            m.recipients.join(",")
        })
        .collect();
    to_plain.sort();
    assert_eq!(to_plain, ["c@trial.example", "d@broken.example"]);
    assert!(
        wait_for(20, || queue(&gw).iter().any(|e| {
            e["attempts"].as_u64() >= Some(2)
                && e["recipients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["address"] == "b@notls.example" && r["status"] == "deferred")
        })),
        "{:?}",
        queue(&gw)
    );

    // The counts are in the store: a restart keeps them.
    let mut gw = gw;
    assert_eq!(gw.terminate().code(), Some(0));
    gw.spawn();

    // Staff send today's reports now (audited).
    let today = chrono::Utc::now().date_naive().to_string();
    let (st, body) = http(
        gw.admin,
        "POST",
        "/api/v1/tlsrpt/send",
        Some(ADMIN_TOKEN),
        Some(&format!("{{\"day\": \"{today}\"}}")),
    );
    assert_eq!(st, 200, "{body}");
    let sent: Value = serde_json::from_str(&body).unwrap();
    let rows = sent["reports"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{sent}");
    for r in rows {
        assert_eq!(r["mailed"][0][0], "tlsrpt@reports.example", "{sent}");
    }
    let notls = rows
        .iter()
        .find(|r| r["domain"] == "notls.example")
        .unwrap();
    assert!(
        notls["not_sent"][0]
            .as_str()
            .unwrap()
            .contains("https reporting not supported"),
        "{sent}"
    );

    assert!(
        reports.wait_for_messages(4, Duration::from_secs(30)),
        "log:\n{}",
        gw.log_text()
    );
    let got: std::collections::BTreeMap<String, Value> = reports
        .messages()
        .iter()
        .map(|m| {
            assert_eq!(m.recipients, ["tlsrpt@reports.example"]);
            report_of(&m.body)
        })
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    for (domain, v) in &got {
        assert_eq!(v["organization-name"], "Test Gateway");
        assert_eq!(v["contact-info"], "tls@gw.test.example");
        assert_eq!(
            v["date-range"]["start-datetime"],
            format!("{today}T00:00:00Z")
        );
        let p = &v["policies"][0]["policy"];
        assert_eq!(p["policy-type"], "sts");
        assert_eq!(p["policy-domain"], domain.as_str());
    }
    let summary = |d: &str| {
        let s = &got[d]["policies"][0]["summary"];
        (
            s["total-successful-session-count"].as_u64().unwrap(),
            s["total-failure-session-count"].as_u64().unwrap(),
        )
    };
    // Verified TLS to the listed MX: a success, no failure.
    assert_eq!(summary("good.example"), (1, 0), "{}", got["good.example"]);
    let good = &got["good.example"]["policies"][0];
    assert!(
        good["policy"]["policy-string"]
            .as_array()
            .unwrap()
            .contains(&Value::from("mode: enforce"))
    );
    assert_eq!(good["policy"]["mx-host"][0], "mx.good.example");
    assert!(good["failure-details"].as_array().unwrap().is_empty());
    // No STARTTLS under enforce: every attempt failed so, none succeeded.
    let (ok, failed) = summary("notls.example");
    assert_eq!(ok, 0);
    assert!(failed >= 2, "{}", got["notls.example"]);
    let d = &got["notls.example"]["policies"][0]["failure-details"][0];
    assert_eq!(d["result-type"], "starttls-not-supported");
    assert_eq!(d["receiving-mx-hostname"], "mx.notls.example");
    assert_eq!(d["receiving-ip"], "127.0.0.3");
    assert_eq!(d["failed-session-count"].as_u64(), Some(failed));
    // Testing mode: delivered in plaintext, and reported as a failure.
    assert_eq!(summary("trial.example"), (0, 1), "{}", got["trial.example"]);
    assert_eq!(
        got["trial.example"]["policies"][0]["failure-details"][0]["result-type"],
        "starttls-not-supported"
    );

    // A policy that could not be had: the session counts as that failure.
    assert_eq!(
        summary("broken.example"),
        (0, 1),
        "{}",
        got["broken.example"]
    );
    let broken = &got["broken.example"]["policies"][0];
    assert!(
        broken["policy"]["policy-string"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let d = &broken["failure-details"][0];
    assert_eq!(d["result-type"], "sts-policy-invalid", "{broken}");
    assert_eq!(d["receiving-mx-hostname"], "mx.notls.example");
    assert!(
        d["failure-reason-code"].as_str().unwrap().contains("mode"),
        "{broken}"
    );

    // Sent counts are forgotten (the CLI sends the same way); the calls
    // are audited.
    let again: Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "tlsrpt", "send", "--day", &today])).unwrap();
    // Only what the retries of notls.example counted since.
    assert!(
        again["reports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["domain"] == "notls.example"),
        "{again}"
    );
    let (_, audit) = http(gw.admin, "GET", "/api/v1/audit", Some(ADMIN_TOKEN), None);
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let sends = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "tlsrpt.send" && r["outcome"] == "ok")
        .count();
    assert_eq!(sends, 2, "{audit}");
}
