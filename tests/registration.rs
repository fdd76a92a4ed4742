//! The registration workflow end to end, through the `ugem` binary: the
//! application verbs and API, relaying over SMTP, the notices in the queue.
//! (The 30-day boundary itself is tested with a fixed clock in
//! `registry::applications`.)

mod common;
use common::dns;

use chrono::{Days, NaiveDate};
use common::*;
use dns::{Rec, TestDns};
use serde_json::Value;

const AGENCY: &str = "agency.example.kz";
const CONTACT: &str =
    "Aliya Nurlanova <it@contact.example.kz>; mobile=+7 701 000 0000; office=+7 7172 000000";
const BODY: &str =
    "From: clerk@agency.example.kz\r\nTo: citizen@example.org\r\nSubject: test\r\n\r\nHello.\r\n";

/// A gateway whose DNS checks fail fast (nothing listens on the discard
/// port) and whose queued notices stay queued (no next hop answers).
fn gateway() -> Gateway {
    Gateway::start(
        r#"
[delivery]
nameservers = ["127.0.0.1:9"]
[delivery.routes]
"*" = "127.0.0.1:9"
[registration]
gateway_addresses = ["192.0.2.25"]
"#,
    )
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn submit_args<'a>(domain: &'a str, server: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--json",
        "application",
        "submit",
        "--domain",
        domain,
        "--owner",
        "Ministry of Tests",
        "--category",
        "state-body",
        "--head",
        "Asel Bekova",
        "--server",
        server,
        "--contact",
        CONTACT,
    ];
    args.extend_from_slice(extra);
    args
}

fn submit(gw: &Gateway, domain: &str, server: &str) -> Value {
    json(&gw.cli_ok(&submit_args(domain, server, &[])))
}

/// Runs a verb expected to fail; returns its stderr.
fn cli_fails(gw: &Gateway, args: &[&str]) -> String {
    let out = gw.cli(ADMIN_TOKEN, args);
    assert!(
        !out.status.success(),
        "ugem {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The clerk's relay attempt: the code of the final reply.
fn relay(gw: &Gateway) -> Reply {
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail("clerk@agency.example.kz", &["citizen@example.org"], BODY);
    let _ = s.cmd("QUIT");
    r
}

/// Messages the gateway queued itself (notices), oldest first.
fn notices(gw: &Gateway) -> Vec<Value> {
    let (st, body) = http(gw.admin, "GET", "/api/v1/queue", Some(VIEWER_TOKEN), None);
    assert_eq!(st, 200, "{body}");
    json(&body)
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["direction"] == "local")
        .cloned()
        .collect()
}

fn recipients(env: &Value) -> Vec<String> {
    env["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect()
}

/// After the gateway stopped: every local message, parsed (subject, text).
fn parsed_notices(gw: &Gateway) -> Vec<(String, String)> {
    let q = ugem_queue::Queue::open(
        &gw.data_dir().join("queue"),
        ugem_queue::QueueOptions {
            min_free_bytes: 0,
            ..Default::default()
        },
    )
    .expect("open the queue");
    let mut out = Vec::new();
    for env in q.list(&ugem_queue::ListFilter::default()).unwrap() {
        if env.direction != ugem_queue::Direction::Local {
            continue;
        }
        let body = q.body(env.id).unwrap().expect("body");
        assert!(
            !body.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "bare LF in a notice"
        );
        let m = mail_parser::MessageParser::default()
            .parse(&body)
            .expect("notice parses");
        assert_eq!(
            m.from().and_then(|f| f.first()).and_then(|a| a.address()),
            Some("postmaster@gw.test.example")
        );
        assert!(m.message_id().is_some() && m.date().is_some());
        out.push((
            m.subject().unwrap_or_default().to_string(),
            m.body_text(0).unwrap_or_default().replace("\r\n", "\n"),
        ));
    }
    out
}

#[test]
fn submit_approve_relay_disconnect_and_reconnect() {
    let mut gw = gateway();

    let app = submit(&gw, AGENCY, "127.0.0.1");
    assert_eq!(app["id"], 1);
    assert_eq!(app["status"], "pending");
    assert_eq!(app["category"], "state_body");
    assert_eq!(app["head"], "Asel Bekova");
    assert_eq!(app["overdue"], false);
    assert_eq!(app["working_days_left"], 5);
    let received: NaiveDate = app["received_on"].as_str().unwrap().parse().unwrap();
    let due: NaiveDate = app["decision_due"].as_str().unwrap().parse().unwrap();
    assert!(due >= received + Days::new(5), "{app:#}");

    // Not connected yet: the agency may not relay.
    let r = relay(&gw);
    assert_eq!(r.code, 550, "{r:?}");

    let list = gw.cli_ok(&["application", "list"]);
    assert!(list.contains(AGENCY) && list.contains("pending"), "{list}");
    let show = gw.cli_ok(&["application", "show", "1"]);
    assert!(show.contains("checks (advice only):"), "{show}");
    assert!(show.contains("127.0.0.1/32: loopback"), "{show}");
    assert!(show.contains("could not check"), "{show}");
    assert!(
        show.contains("Aliya Nurlanova <it@contact.example.kz>"),
        "{show}"
    );

    let out = gw.cli_ok(&["application", "approve", "1"]);
    assert!(out.contains("approved"), "{out}");
    assert!(
        out.contains("domain:        agency.example.kz connected"),
        "{out}"
    );
    assert!(out.contains("notice:        queued as"), "{out}");

    let r = relay(&gw);
    assert_eq!(r.code, 250, "relay after approval: {r:?}");
    let n = notices(&gw);
    assert_eq!(n.len(), 1, "{n:#?}");
    assert_eq!(n[0]["sender"], "postmaster@gw.test.example");
    assert_eq!(recipients(&n[0]), ["it@contact.example.kz"]);

    let out = gw.cli_ok(&[
        "--json",
        "domain",
        "disconnect",
        AGENCY,
        "--reason",
        "no longer a state body",
    ]);
    let v = json(&out);
    assert_eq!(v["status"], "disconnected");
    assert!(v["notice"]["queued"].is_string(), "{v:#}");
    let r = relay(&gw);
    assert_eq!(r.code, 550, "relay after disconnection: {r:?}");
    assert!(r.text().starts_with("5.7.1"), "{r:?}");
    assert_eq!(notices(&gw).len(), 2);

    // Reconnecting takes a new application.
    let again = submit(&gw, AGENCY, "127.0.0.1");
    assert_eq!(again["id"], 2);
    let v = json(&gw.cli_ok(&["--json", "application", "approve", "2"]));
    assert_eq!(v["reconnected"], true, "{v:#}");
    assert_eq!(v["domain"]["status"], "connected");
    assert_eq!(relay(&gw).code, 250);

    gw.terminate();
    let parsed = parsed_notices(&gw);
    assert_eq!(parsed.len(), 3, "{parsed:#?}");
    assert_eq!(
        parsed[0].0,
        "Application #1 approved: agency.example.kz is connected"
    );
    assert!(
        parsed[0]
            .1
            .contains("Relay all outgoing external mail through gw.test.example"),
        "{}",
        parsed[0].1
    );
    assert!(parsed[0].1.contains("(192.0.2.25)"), "{}", parsed[0].1);
    assert_eq!(
        parsed[1].0,
        "agency.example.kz disconnected from the mail gateway"
    );
    assert!(
        parsed[1].1.contains("no longer a state body"),
        "{}",
        parsed[1].1
    );
    assert!(parsed[2].0.starts_with("Application #2 approved"));
}

#[test]
fn rejected_applicant_must_wait_30_days() {
    let mut gw = gateway();
    submit(&gw, AGENCY, "127.0.0.1");

    let (st, body) = http(
        gw.admin,
        "POST",
        "/api/v1/applications/1/reject",
        Some(ADMIN_TOKEN),
        Some(r#"{"reason":"  "}"#),
    );
    assert_eq!(st, 400, "{body}");
    let v = json(&gw.cli_ok(&[
        "--json",
        "application",
        "reject",
        "1",
        "--reason",
        "the applicant is not in an eligible category",
    ]));
    assert_eq!(v["status"], "rejected");
    assert_eq!(v["notice"]["to"][0], "it@contact.example.kz");
    let decided: NaiveDate = v["decided_on"].as_str().unwrap().parse().unwrap();
    let first = decided + Days::new(30);
    assert_eq!(v["resubmit_from"], first.to_string());

    // The resubmission is refused, naming the first allowed date.
    let err = cli_fails(&gw, &submit_args(AGENCY, "127.0.0.1", &[]));
    assert!(
        err.contains(&format!("a new application may be submitted from {first}")),
        "{err}"
    );
    let (st, body) = http(
        gw.admin,
        "POST",
        "/api/v1/applications",
        Some(ADMIN_TOKEN),
        Some(&format!(
            r#"{{"domain":"{AGENCY}","owner":"O","category":"state_body","head":"H","servers":["127.0.0.1"],"contacts":[{{"name":"IT","email":"it@contact.example.kz","mobile_phone":"+7 701 0000000"}}]}}"#
        )),
    );
    assert_eq!(st, 409, "{body}");
    assert_eq!(json(&body)["kind"], "resubmission_locked");
    // Still not registered.
    assert_eq!(relay(&gw).code, 550);
    let show = gw.cli_ok(&["application", "show", "1"]);
    assert!(show.contains(&format!("resubmit from: {first}")), "{show}");

    gw.terminate();
    let parsed = parsed_notices(&gw);
    assert_eq!(parsed.len(), 1, "{parsed:#?}");
    assert_eq!(parsed[0].0, "Application #1 for agency.example.kz rejected");
    assert!(
        parsed[0]
            .1
            .contains("the applicant is not in an eligible category")
    );
    assert!(
        parsed[0]
            .1
            .contains(&format!("may be submitted from {first}"))
    );
}

#[test]
fn roles_validation_deadlines_and_audit() {
    let gw = gateway();
    let body = format!(
        r#"{{"domain":"{AGENCY}","owner":"Ministry","category":"state_body","head":"H","servers":["127.0.0.1"],"contacts":[{{"name":"IT","email":"it@contact.example.kz","mobile_phone":"+7 701 0000000"}}]}}"#
    );
    // A viewer reads but may not submit; an operator may not decide.
    let (st, _) = http(
        gw.admin,
        "POST",
        "/api/v1/applications",
        Some(VIEWER_TOKEN),
        Some(&body),
    );
    assert_eq!(st, 403);
    let (st, _) = http(
        gw.admin,
        "POST",
        "/api/v1/applications",
        Some(OPERATOR_TOKEN),
        Some(&body),
    );
    assert_eq!(st, 403);
    let (st, out) = http(
        gw.admin,
        "POST",
        "/api/v1/applications",
        Some(ADMIN_TOKEN),
        Some(&body),
    );
    assert_eq!(st, 201, "{out}");
    let (st, _) = http(
        gw.admin,
        "GET",
        "/api/v1/applications",
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 200);
    let (st, _) = http(
        gw.admin,
        "GET",
        "/api/v1/applications/1",
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 200);
    let (st, _) = http(
        gw.admin,
        "POST",
        "/api/v1/applications/1/approve",
        Some(OPERATOR_TOKEN),
        None,
    );
    assert_eq!(st, 403);
    let (st, out) = http(
        gw.admin,
        "GET",
        "/api/v1/applications/99",
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 404, "{out}");
    assert!(out.contains("application #99 does not exist"), "{out}");

    // Bad input is refused with the reason.
    let (st, out) = http(
        gw.admin,
        "POST",
        "/api/v1/applications",
        Some(ADMIN_TOKEN),
        Some(&body.replace("state_body", "ngo")),
    );
    assert_eq!(st, 400, "{out}");
    assert!(out.contains("state_body"), "{out}");
    let err = cli_fails(
        &gw,
        &submit_args("b.example.kz", "95.59.10.1", &["--received", "2999-01-01"]),
    );
    assert!(err.contains("in the future"), "{err}");
    let mut bad_category = submit_args("b.example.kz", "95.59.10.1", &[]);
    let i = bad_category
        .iter()
        .position(|a| *a == "state-body")
        .unwrap();
    bad_category[i] = "ngo";
    let err = cli_fails(&gw, &bad_category);
    assert!(err.contains("not an applicant category"), "{err}");
    let mut no_phone = submit_args("b.example.kz", "95.59.10.1", &[]);
    let i = no_phone.iter().position(|a| *a == CONTACT).unwrap();
    no_phone[i] = "IT <it@contact.example.kz>";
    assert!(cli_fails(&gw, &no_phone).contains("phone"));
    // One pending application per domain.
    let err = cli_fails(&gw, &submit_args(AGENCY, "127.0.0.1", &[]));
    assert!(
        err.contains("already has a pending application #1"),
        "{err}"
    );

    // Received three weeks ago: overdue, marked in list and show.
    let received = json(&gw.cli_ok(&["--json", "application", "show", "1"]))["received_on"]
        .as_str()
        .unwrap()
        .parse::<NaiveDate>()
        .unwrap()
        - Days::new(21);
    let late = json(&gw.cli_ok(&submit_args(
        "late.example.kz",
        "95.59.10.2",
        &["--received", &received.to_string()],
    )));
    assert_eq!(late["overdue"], true, "{late:#}");
    assert!(late["working_days_left"].as_i64().unwrap() < 0);
    let overdue = json(&gw.cli_ok(&["--json", "application", "list", "--overdue"]));
    let ids: Vec<&Value> = overdue
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&late["id"]]);
    let text = gw.cli_ok(&["application", "list"]);
    assert!(text.contains("pending, OVERDUE"), "{text}");
    let show = gw.cli_ok(&["application", "show", &late["id"].to_string()]);
    assert!(show.contains("overdue by"), "{show}");
    let pending = json(&gw.cli_ok(&["--json", "application", "list", "--status", "pending"]));
    assert_eq!(pending.as_array().unwrap().len(), 2);

    // Approval that would overlap another domain's servers is refused and says why.
    gw.register("other.example.kz", &["95.59.10.2"]);
    let err = cli_fails(&gw, &["application", "approve", &late["id"].to_string()]);
    assert!(
        err.contains("overlaps") && err.contains("other.example.kz"),
        "{err}"
    );
    let still = json(&gw.cli_ok(&["--json", "application", "show", &late["id"].to_string()]));
    assert_eq!(still["status"], "pending");
    let checks = still["checks"].as_array().unwrap();
    let overlap = checks
        .iter()
        .find(|c| c["check"] == "server_overlap")
        .unwrap();
    assert_eq!(overlap["verdict"], "problem", "{overlap}");

    // Withdrawal.
    let w = json(&gw.cli_ok(&[
        "--json",
        "application",
        "withdraw",
        "1",
        "--reason",
        "letter of 2 March",
    ]));
    assert_eq!(w["status"], "withdrawn");

    // Every mutating call is audited, refused ones too.
    let (_, audit) = http(
        gw.admin,
        "GET",
        "/api/v1/audit?limit=50",
        Some(VIEWER_TOKEN),
        None,
    );
    let audit = json(&audit);
    let has = |action: &str, actor: &str, outcome: &str| {
        audit.as_array().unwrap().iter().any(|r| {
            r["action"] == action
                && r["actor"] == actor
                && r["outcome"].as_str().unwrap_or("").starts_with(outcome)
        })
    };
    assert!(has("application.submit", "desk", "denied"), "{audit:#}");
    assert!(has("application.submit", "root", "ok"), "{audit:#}");
    assert!(
        has(
            "application.submit",
            "root",
            "error: domain agency.example.kz already has"
        ),
        "{audit:#}"
    );
    assert!(has("application.approve", "duty", "denied"), "{audit:#}");
    assert!(
        has("application.approve", "root", "error: server range"),
        "{audit:#}"
    );
    assert!(has("application.withdraw", "root", "ok"), "{audit:#}");
}

/// The verdict and detail of one check in `application show --json`.
fn check(show: &Value, name: &str) -> (String, String) {
    let c = show["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {show:#}"));
    (
        c["verdict"].as_str().unwrap().to_string(),
        c["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn show_checks_mx_and_spf_in_dns() {
    let dns = TestDns::start(&[
        ("agency.example.kz", Rec::Mx(10, "gw.test.example")),
        (
            "agency.example.kz",
            Rec::Txt("v=spf1 include:_spf.gw.test.example -all"),
        ),
        (
            "_spf.gw.test.example",
            Rec::Txt("v=spf1 ip4:192.0.2.0/24 -all"),
        ),
        (
            "elsewhere.example.kz",
            Rec::Mx(10, "mail.elsewhere.example.kz"),
        ),
        ("elsewhere.example.kz", Rec::Txt("v=spf1 mx ~all")),
        (
            "mail.elsewhere.example.kz",
            Rec::A("95.59.10.2".parse().unwrap()),
        ),
        ("broken.example.kz", Rec::ServFail),
    ]);
    let gw = Gateway::start(&format!(
        "[delivery]\nnameservers = {}\n[registration]\ngateway_addresses = [\"192.0.2.25\"]\n",
        dns.nameservers_toml()
    ));
    submit(&gw, AGENCY, "95.59.10.1");
    submit(&gw, "elsewhere.example.kz", "95.59.10.2");
    submit(&gw, "broken.example.kz", "95.59.10.3");
    submit(&gw, "missing.example.kz", "95.59.10.4");
    let show = |id: &str| json(&gw.cli_ok(&["--json", "application", "show", id]));

    let ok = show("1");
    assert_eq!(check(&ok, "mx").0, "ok", "{ok:#}");
    let (verdict, detail) = check(&ok, "spf");
    assert_eq!(verdict, "ok", "{detail}");
    assert!(detail.contains("include:_spf.gw.test.example"), "{detail}");
    assert_eq!(check(&ok, "server_address").0, "ok");

    let other = show("2");
    let (verdict, detail) = check(&other, "mx");
    assert_eq!(verdict, "warning");
    assert!(
        detail.contains("not at the gateway gw.test.example"),
        "{detail}"
    );
    let (verdict, detail) = check(&other, "spf");
    assert_eq!(verdict, "warning");
    assert!(detail.contains("192.0.2.25 (softfail)"), "{detail}");

    let broken = show("3");
    assert_eq!(check(&broken, "mx").0, "unknown", "{broken:#}");
    assert!(check(&broken, "mx").1.starts_with("could not check"));

    let missing = show("4");
    let (verdict, detail) = check(&missing, "mx");
    assert_eq!(verdict, "problem");
    assert!(detail.contains("NXDOMAIN"), "{detail}");
}

fn domain_add<'a>(name: &'a str, servers: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--json",
        "domain",
        "add",
        name,
        "--contact",
        CONTACT,
        "--reason",
        "test set-up",
    ];
    for s in servers {
        args.push("--server");
        args.push(s);
    }
    args.extend_from_slice(extra);
    args
}

/// Issue #13, item 6: `--server 128.0.0.0/1` was accepted, letting half the
/// internet relay as the domain, and a range's default inbound route was
/// its network address. Ranges wider than the configured prefix (/24, /48)
/// need an explicit flag, and a range as first server an inbound route, in
/// `domain add` and in the application workflow alike.
#[test]
fn wide_server_ranges_need_an_explicit_flag_and_ranges_an_inbound_route() {
    let gw = gateway();
    let inbound = ["--inbound", "127.0.0.1:2526"];
    // Half the internet: refused, naming the limit and the flag.
    let err = cli_fails(&gw, &domain_add("a.example.kz", &["128.0.0.0/1"], &inbound));
    assert!(err.contains("wider than /24"), "{err}");
    assert!(err.contains("--allow-wide-range"), "{err}");
    let err = cli_fails(
        &gw,
        &domain_add("a.example.kz", &["2001:db8::/32"], &inbound),
    );
    assert!(err.contains("wider than /48"), "{err}");
    // A range as first server without --inbound: refused, naming the
    // network address it would have used.
    let err = cli_fails(&gw, &domain_add("a.example.kz", &["10.1.0.0/24"], &[]));
    assert!(err.contains("network address 10.1.0.0:25"), "{err}");
    assert!(err.contains("--inbound"), "{err}");
    // Within the limits, with an inbound route: accepted.
    let ok = json(&gw.cli_ok(&domain_add("a.example.kz", &["10.1.0.0/24"], &inbound)));
    assert_eq!(ok["servers"][0], "10.1.0.0/24");
    gw.cli_ok(&domain_add("b.example.kz", &["2001:db8:1::/48"], &inbound));
    // A single host first needs no inbound route; later ranges are fine.
    gw.cli_ok(&domain_add(
        "c.example.kz",
        &["10.2.0.1", "10.2.0.0/28"],
        &[],
    ));
    // Staff say so explicitly: accepted (the CLI flag, then the API field).
    let wide = json(&gw.cli_ok(&domain_add(
        "d.example.kz",
        &["10.64.0.0/16"],
        &["--inbound", "10.64.0.25:25", "--allow-wide-range"],
    )));
    assert_eq!(wide["servers"][0], "10.64.0.0/16");
    let body = serde_json::json!({
        "name": "e.example.kz",
        "servers": ["10.128.0.0/12"],
        "contacts": [{"name": "IT", "email": "it@e.example.kz"}],
        "inbound": "10.128.0.25:25",
        "reason": "test set-up",
    });
    let (st, text) = http(
        gw.admin,
        "POST",
        "/api/v1/domains",
        Some(ADMIN_TOKEN),
        Some(&body.to_string()),
    );
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("allow_wide_range"), "{text}");
    let mut body = body;
    body["allow_wide_range"] = true.into();
    let (st, text) = http(
        gw.admin,
        "POST",
        "/api/v1/domains",
        Some(ADMIN_TOKEN),
        Some(&body.to_string()),
    );
    assert_eq!(st, 201, "{text}");

    // Applications: refused at intake without the flag, recorded with it,
    // and the approval connects the domain.
    let err = cli_fails(
        &gw,
        &submit_args(
            "f.example.kz",
            "128.0.0.0/1",
            &["--inbound", "127.0.0.1:2526"],
        ),
    );
    assert!(err.contains("wider than /24"), "{err}");
    let err = cli_fails(&gw, &submit_args("f.example.kz", "10.200.0.0/24", &[]));
    assert!(err.contains("--inbound"), "{err}");
    let app = json(&gw.cli_ok(&submit_args(
        "f.example.kz",
        "10.96.0.0/16",
        &["--inbound", "10.96.0.25:25", "--allow-wide-range"],
    )));
    assert_eq!(app["allow_wide_range"], true);
    let id = app["id"].as_u64().unwrap().to_string();
    let ok = json(&gw.cli_ok(&["--json", "application", "approve", &id]));
    assert_eq!(ok["domain"]["servers"][0], "10.96.0.0/16");
}

/// The limits are configuration: `[registration] widest_server_range_v4`.
#[test]
fn the_widest_server_range_is_configurable() {
    let gw = Gateway::start("[registration]\nwidest_server_range_v4 = 16\n");
    gw.cli_ok(&domain_add(
        "a.example.kz",
        &["10.64.0.0/16"],
        &["--inbound", "10.64.0.25:25"],
    ));
    let err = cli_fails(
        &gw,
        &domain_add(
            "b.example.kz",
            &["10.0.0.0/8"],
            &["--inbound", "10.0.0.25:25"],
        ),
    );
    assert!(err.contains("wider than /16"), "{err}");
}
