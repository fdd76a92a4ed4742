//! A connected domain's lifecycle end to end, through the `ugem` binary:
//! changing its data (staff updates, version history, change requests),
//! disconnection on an agreed date.

mod common;

use common::fake_mx::{Behaviour, FakeMx};
use common::*;
use serde_json::Value;

const NEW_CONTACT: &str = "Dana Sadykova <dana@new.example.kz>; mobile=+7 701 111 1111";

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Runs a verb expected to fail; returns its stderr.
fn cli_fails(gw: &Gateway, token: &str, args: &[&str]) -> String {
    let out = gw.cli(token, args);
    assert!(
        !out.status.success(),
        "ugem {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The clerk's relay attempt from 127.0.0.1: the first reply that is not
/// 250 to MAIL FROM and RCPT TO (an external recipient), or 250.
fn relay_code(gw: &Gateway) -> u16 {
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO agency.example.kz", 250);
    let mut code = s.cmd("MAIL FROM:<clerk@agency.example.kz>").code;
    if code == 250 {
        code = s.cmd("RCPT TO:<citizen@example.org>").code;
    }
    let _ = s.cmd("QUIT");
    code
}

/// The text of a queued notice (its whole message), by queue id.
fn notice_text(gw: &Gateway, id: &str) -> String {
    let (st, body) = http(
        gw.admin,
        "GET",
        &format!("/api/v1/queue/{id}/message?part=body"),
        Some(OPERATOR_TOKEN),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let raw = json(&body)["text"].as_str().unwrap().to_string();
    let m = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("notice parses");
    format!(
        "{}\n{}",
        m.subject().unwrap_or_default(),
        m.body_text(0).unwrap_or_default().replace("\r\n", "\n")
    )
}

fn audit(gw: &Gateway) -> Vec<Value> {
    json(&gw.cli_ok(&["--json", "audit", "--limit", "100"]))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn update_keeps_history_notifies_old_and_new_contacts_and_change_requests_apply() {
    let gw = gateway_with_agency("");
    gw.register("other.example.kz", &["192.0.2.50"]);
    assert_eq!(relay_code(&gw), 250);

    // The rules of `domain add` hold: no overlap, no wide range unasked.
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &[
            "domain",
            "update",
            AGENCY,
            "--server",
            "192.0.2.50",
            "--reason",
            "move",
        ],
    );
    assert!(
        err.contains("overlaps 192.0.2.50/32 of domain other.example.kz"),
        "{err}"
    );
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &[
            "domain",
            "update",
            AGENCY,
            "--server",
            "10.9.0.0/16",
            "--inbound",
            "10.9.0.1:25",
            "--reason",
            "move",
        ],
    );
    assert!(err.contains("wider than /24"), "{err}");
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &["domain", "update", AGENCY, "--owner", "", "--reason", " "],
    );
    assert!(err.contains("a reason is required"), "{err}");
    // A viewer may not change anything.
    let err = cli_fails(
        &gw,
        VIEWER_TOKEN,
        &["domain", "update", AGENCY, "--owner", "X", "--reason", "r"],
    );
    assert!(err.contains("this needs admin"), "{err}");

    let out = json(&gw.cli_ok(&[
        "--json",
        "domain",
        "update",
        AGENCY,
        "--server",
        "192.0.2.60",
        "--contact",
        NEW_CONTACT,
        "--category",
        "quasi-public",
        "--reason",
        "mail server moved, order 12",
    ]));
    let fields: Vec<&str> = out["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["servers", "contacts", "category"], "{out:#}");
    assert_eq!(out["version"], 1);
    assert_eq!(
        out["after"]["servers"],
        serde_json::json!(["192.0.2.60/32"])
    );
    assert_eq!(out["after"]["status"], "connected");
    let to = &out["notice"]["to"];
    assert_eq!(
        to,
        &serde_json::json!(["it@contact.example.kz", "dana@new.example.kz"]),
        "old and new contacts: {out:#}"
    );
    assert!(out["notice"]["queued"].is_string(), "{out:#}");
    // The old server no longer relays for the domain: no outage in between.
    assert_eq!(relay_code(&gw), 550);
    let text = notice_text(&gw, out["notice"]["queued"].as_str().unwrap());
    assert!(text.contains("registered data changed"), "{text}");
    assert!(text.contains("before: 127.0.0.1/32"), "{text}");
    assert!(text.contains("mail server moved, order 12"), "{text}");

    // The version it replaced is kept, with who, why and what changed.
    let h = json(&gw.cli_ok(&["--json", "domain", "history", AGENCY]));
    let v = &h["versions"][0];
    assert_eq!(v["version"], 1);
    assert_eq!(v["by"], "root");
    assert_eq!(v["record"]["servers"], serde_json::json!(["127.0.0.1/32"]));
    assert_eq!(
        v["changes"][0]["before"],
        serde_json::json!(["127.0.0.1/32"])
    );
    assert_eq!(h["current"]["category"], "quasi_public");
    let table = gw.cli_ok(&["domain", "history", AGENCY]);
    assert!(table.contains("servers,contacts,category"), "{table}");
    // Audited with the change, before and after.
    let a = audit(&gw);
    let rec = a
        .iter()
        .find(|r| r["action"] == "domain.update" && r["outcome"] == "ok")
        .expect("audited");
    let target = rec["target"].as_str().unwrap();
    assert!(
        target.contains("servers: [\"127.0.0.1/32\"] -> [\"192.0.2.60/32\"]"),
        "{target}"
    );
    assert!(
        a.iter().any(|r| r["action"] == "domain.update"
            && r["outcome"].as_str().unwrap().contains("overlaps"))
    );

    // A change request: recorded with its deadline, one pending per domain.
    let cr = json(&gw.cli_ok(&[
        "--json",
        "domain",
        "change-request",
        "submit",
        AGENCY,
        "--server",
        "127.0.0.1",
        "--reason",
        "back to the old server, letter 7",
    ]));
    assert_eq!(cr["status"], "pending");
    assert!(cr["decision_due"].as_str().unwrap() > cr["received_on"].as_str().unwrap());
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &[
            "domain",
            "change-request",
            "submit",
            AGENCY,
            "--owner",
            "Y",
            "--reason",
            "again",
        ],
    );
    assert!(
        err.contains("already has a pending change request"),
        "{err}"
    );
    let list = gw.cli_ok(&["domain", "change-request", "list", "--status", "pending"]);
    assert!(list.contains(AGENCY) && list.contains("pending"), "{list}");
    assert_eq!(relay_code(&gw), 550, "nothing applied before approval");
    let id = cr["id"].as_u64().unwrap().to_string();
    let ok = json(&gw.cli_ok(&["--json", "domain", "change-request", "approve", &id]));
    assert_eq!(ok["change_request"]["status"], "approved", "{ok:#}");
    assert_eq!(ok["version"], 2);
    assert_eq!(relay_code(&gw), 250);
    let h = json(&gw.cli_ok(&["--json", "domain", "history", AGENCY]));
    assert_eq!(
        h["versions"][1]["change_request"].as_u64(),
        cr["id"].as_u64()
    );
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &["domain", "change-request", "approve", &id],
    );
    assert!(err.contains("approved, not pending"), "{err}");

    // A rejected one changes nothing.
    let cr = json(&gw.cli_ok(&[
        "--json",
        "domain",
        "change-request",
        "submit",
        AGENCY,
        "--owner",
        "Ministry of Y",
        "--reason",
        "rename",
    ]));
    let id = cr["id"].as_u64().unwrap().to_string();
    let r = json(&gw.cli_ok(&[
        "--json",
        "domain",
        "change-request",
        "reject",
        &id,
        "--reason",
        "no decree attached",
    ]));
    assert_eq!(r["status"], "rejected");
    let text = notice_text(&gw, r["notice"]["queued"].as_str().unwrap());
    assert!(
        text.contains("rejected") && text.contains("no decree attached"),
        "{text}"
    );
    let show = json(&gw.cli_ok(&["--json", "domain", "show", AGENCY]));
    assert_ne!(show["owner"], "Ministry of Y");
}

/// The operator's local date (the default `[registration] utc_offset`, +05:00).
fn local_today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(5)).date_naive()
}

fn show(gw: &Gateway) -> Value {
    json(&gw.cli_ok(&["--json", "domain", "show", AGENCY]))
}

/// The texts of the gateway's own queued messages (notices), in queue order.
fn notice_texts(gw: &Gateway) -> Vec<String> {
    queued(gw)
        .iter()
        .filter(|e| e["direction"] == "local")
        .map(|e| notice_text(gw, e["id"].as_str().unwrap()))
        .collect()
}

#[test]
fn disconnection_on_an_agreed_date_is_reminded_cancellable_and_applied() {
    let gw = gateway_with_agency("[governor]\nhousekeeping_interval = \"200ms\"\n");
    let today = local_today();
    let yesterday = today.pred_opt().unwrap().to_string();
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &[
            "domain",
            "disconnect",
            AGENCY,
            "--on",
            &yesterday,
            "--reason",
            "merged",
        ],
    );
    assert!(err.contains("is in the past"), "{err}");
    // One working day ahead: the 1-day reminder is due at once.
    let next = ugem::calendar::Calendar::kazakhstan()
        .add_working_days(today, 1)
        .to_string();
    let out = json(&gw.cli_ok(&[
        "--json",
        "domain",
        "disconnect",
        AGENCY,
        "--on",
        &next,
        "--reason",
        "agency merged, letter 9",
    ]));
    assert_eq!(out["status"], "connected");
    assert_eq!(out["disconnect_on"]["on"], next.as_str());
    assert!(out["notice"]["queued"].is_string(), "{out:#}");
    let list = gw.cli_ok(&["domain", "list"]);
    assert!(
        list.contains("DISCONNECT ON") && list.contains(&next),
        "{list}"
    );
    assert!(
        wait_for(10, || show(&gw)["disconnect_on"]["reminded"]
            == serde_json::json!([1])),
        "{:#}",
        show(&gw)
    );
    let texts = notice_texts(&gw);
    assert!(
        texts.iter().any(|t| t.contains(&format!(
            "will be disconnected from the mail gateway on {next}"
        )) && !t.contains("Reminder")),
        "{texts:?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("Reminder") && t.contains("in 1 working day(s)"))
            .count(),
        1,
        "{texts:?}"
    );
    // Reminded once, not at every tick; mail still flows until the date.
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        notice_texts(&gw)
            .iter()
            .filter(|t| t.contains("Reminder"))
            .count(),
        1
    );
    assert_eq!(relay_code(&gw), 250);

    // Cancelled: nothing happens on the date; the contacts are told.
    let out = json(&gw.cli_ok(&["--json", "domain", "disconnect", AGENCY, "--cancel"]));
    assert!(out["disconnect_on"].is_null(), "{out:#}");
    assert!(
        notice_texts(&gw)
            .iter()
            .any(|t| t.contains("has been cancelled"))
    );
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &["domain", "disconnect", AGENCY, "--cancel"],
    );
    assert!(err.contains("scheduled disconnection"), "{err}");

    // Agreed for today: the housekeeping tick applies it, through the same
    // disconnection as the immediate form (refused, notice).
    let today = today.to_string();
    gw.cli_ok(&[
        "domain",
        "disconnect",
        AGENCY,
        "--on",
        &today,
        "--reason",
        "agreed today",
    ]);
    assert!(
        wait_for(10, || show(&gw)["status"] == "disconnected"),
        "{:#}",
        show(&gw)
    );
    let s = show(&gw);
    assert!(s["disconnect_on"].is_null(), "{s:#}");
    assert_eq!(
        s["status_reason"],
        format!("disconnection agreed for {today}: agreed today").as_str()
    );
    assert_eq!(relay_code(&gw), 550);
    assert!(wait_for(5, || notice_texts(&gw).iter().any(
        |t| t.contains("has been disconnected from the mail gateway")
    )));
    let a = audit(&gw);
    assert!(a.iter().any(|r| r["action"] == "domain.disconnect"
        && r["target"] == format!("{AGENCY}: cancel the scheduled disconnection").as_str()));
    assert!(a.iter().any(|r| r["action"] == "domain.disconnect"
        && r["target"] == format!("{AGENCY}: on {today}: agreed today").as_str()));
}

fn unregistered(gw: &Gateway) -> Value {
    json(&gw.cli_ok(&["--json", "domain", "unregistered", AGENCY]))
}

#[test]
fn unregistered_servers_are_recorded_notified_once_and_allowed_only_by_staff() {
    let gw = Gateway::start("[governor]\nhousekeeping_interval = \"200ms\"\n");
    gw.register(AGENCY, &["192.0.2.10"]);
    // 127.0.0.1 is no server of the domain: refused each time, and trying
    // again never lets it in.
    for _ in 0..3 {
        assert_eq!(relay_code(&gw), 550);
    }
    assert!(
        wait_for(10, || unregistered(&gw)["unregistered"][0]["count"] == 3),
        "{:#}",
        unregistered(&gw)
    );
    let u = unregistered(&gw);
    let seen = &u["unregistered"][0];
    assert_eq!(seen["address"], "127.0.0.1");
    assert!(
        seen["sample"]
            .as_str()
            .unwrap()
            .contains("MAIL FROM:<clerk@agency.example.kz>: 550 5.7.1 sender domain agency.example.kz is registered, but not for client 127.0.0.1"),
        "{u:#}"
    );
    assert!(seen["first_seen"].as_str() <= seen["last_seen"].as_str());
    let table = gw.cli_ok(&["domain", "unregistered", AGENCY]);
    assert!(
        table.contains("127.0.0.1") && table.contains("ADDRESS"),
        "{table}"
    );
    // The refused sessions carry the claimed domain in the connection log.
    let c = json(&gw.cli_ok(&["--json", "connections", "--domain", AGENCY]));
    assert!(c.as_array().unwrap().len() >= 3, "{c:#}");
    assert!(
        c[0]["refusals"][0]["text"]
            .as_str()
            .unwrap()
            .contains("not for client")
    );

    // The contacts are told once per address, however often it tries.
    assert_eq!(relay_code(&gw), 550);
    assert!(wait_for(
        10,
        || unregistered(&gw)["unregistered"][0]["count"] == 4
    ));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let texts: Vec<String> = notice_texts(&gw)
        .into_iter()
        .filter(|t| t.contains("mail refused from unregistered servers"))
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("127.0.0.1 (first seen"), "{}", texts[0]);
    assert!(texts[0].contains("registered servers of agency.example.kz are: 192.0.2.10/32"));
    assert_eq!(notices_to(&gw, "it@contact.example.kz"), 1);

    // Staff may let it relay until a date: audited; a viewer may not.
    let tomorrow = (local_today() + chrono::Days::new(1)).to_string();
    let yesterday = local_today().pred_opt().unwrap().to_string();
    let err = cli_fails(
        &gw,
        VIEWER_TOKEN,
        &[
            "domain",
            "allow-server",
            AGENCY,
            "127.0.0.1",
            "--until",
            &tomorrow,
            "--reason",
            "r",
        ],
    );
    assert!(err.contains("this needs admin"), "{err}");
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &[
            "domain",
            "allow-server",
            AGENCY,
            "127.0.0.1",
            "--until",
            &yesterday,
            "--reason",
            "r",
        ],
    );
    assert!(err.contains("has passed"), "{err}");
    assert_eq!(relay_code(&gw), 550);
    gw.cli_ok(&[
        "domain",
        "allow-server",
        AGENCY,
        "127.0.0.1",
        "--until",
        &tomorrow,
        "--reason",
        "server moving, change request 3",
    ]);
    assert_eq!(relay_code(&gw), 250);
    let u = unregistered(&gw);
    assert_eq!(u["allowed_servers"][0]["address"], "127.0.0.1", "{u:#}");
    assert_eq!(u["allowed_servers"][0]["by"], "root");
    let a = audit(&gw);
    assert!(a.iter().any(|r| {
        r["action"] == "domain.allow_server"
            && r["outcome"] == "ok"
            && r["target"]
                .as_str()
                .unwrap()
                .contains(&format!("127.0.0.1 until {tomorrow}"))
    }));
}

/// How many of the gateway's own queued messages go to `address`.
fn notices_to(gw: &Gateway, address: &str) -> usize {
    queued(gw)
        .iter()
        .filter(|e| e["direction"] == "local")
        .filter(|e| {
            e["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["address"] == address)
        })
        .count()
}

#[test]
fn a_suspended_server_is_refused_for_every_domain_it_hosts_and_restored() {
    let gw = Gateway::start("");
    gw.register_shared(AGENCY);
    gw.register_shared("second.example.kz");
    gw.register("third.example.kz", &["192.0.2.77"]);
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO agency.example.kz", 250);
    let r = s.send_mail(
        "clerk@agency.example.kz",
        &["citizen@example.org"],
        "From: clerk@agency.example.kz\r\nTo: citizen@example.org\r\nSubject: t\r\n\r\nHi.\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text());
    let _ = s.cmd("QUIT");

    let err = cli_fails(
        &gw,
        OPERATOR_TOKEN,
        &["server", "suspend", "192.0.2.99", "--reason", "x"],
    );
    assert!(err.contains("a domain with server 192.0.2.99"), "{err}");
    let out = json(
        &String::from_utf8(
            gw.cli(
                OPERATOR_TOKEN,
                &[
                    "--json",
                    "server",
                    "suspend",
                    "127.0.0.1",
                    "--reason",
                    "compromised, ticket 5",
                ],
            )
            .stdout,
        )
        .unwrap(),
    );
    assert_eq!(
        out["suspension"]["domains"],
        serde_json::json!([AGENCY, "second.example.kz"]),
        "{out:#}"
    );
    assert_eq!(out["messages"], 1, "{out:#}");
    assert_eq!(out["notices"].as_array().unwrap().len(), 2);
    // 451 whichever domain it sends as; its queued mail is held.
    assert_eq!(relay_code(&gw), 451);
    let held = queued(&gw)
        .into_iter()
        .filter(|e| e["direction"] == "outbound" && e["held"].is_string())
        .count();
    assert_eq!(held, 1);
    let texts: Vec<String> = notice_texts(&gw)
        .into_iter()
        .filter(|t| t.contains("mail server 127.0.0.1 suspended"))
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("also sends for: second.example.kz"))
    );
    let err = cli_fails(
        &gw,
        OPERATOR_TOKEN,
        &["server", "suspend", "127.0.0.1", "--reason", "x"],
    );
    assert!(err.contains("already suspended"), "{err}");
    let list = gw.cli_ok(&["server", "list"]);
    assert!(
        list.contains("127.0.0.1") && list.contains("compromised"),
        "{list}"
    );

    let out = json(&gw.cli_ok(&[
        "--json",
        "server",
        "restore",
        "127.0.0.1",
        "--reason",
        "rebuilt",
    ]));
    assert_eq!(out["messages"], 1, "{out:#}");
    assert_eq!(out["suspension"]["restored"]["by"], "root");
    assert_eq!(relay_code(&gw), 250);
    assert!(queued(&gw).iter().all(|e| e["held"].is_null()));
    assert!(gw.cli_ok(&["server", "list"]).contains("(none)"));
    assert!(
        gw.cli_ok(&["server", "list", "--history"])
            .contains("127.0.0.1")
    );
    let a = audit(&gw);
    for action in ["server.suspend", "server.restore"] {
        assert!(
            a.iter().any(|r| r["action"] == action
                && r["outcome"] == "ok"
                && r["target"] == "127.0.0.1"),
            "{action}"
        );
    }
}

#[test]
fn inbound_mail_tries_the_agency_servers_by_preference() {
    let backup = FakeMx::start(Behaviour::accept());
    let gw = Gateway::start("");
    gw.register(AGENCY, &["192.0.2.10"]);
    let backup_hop = format!("{};pref=20", backup.addr());
    // The preferred server refuses connections (the discard port).
    let out = json(&gw.cli_ok(&[
        "--json",
        "domain",
        "update",
        AGENCY,
        "--inbound-server",
        &backup_hop,
        "--inbound-server",
        "127.0.0.1:9;pref=10",
        "--reason",
        "a second inbound server",
    ]));
    assert_eq!(out["changes"][0]["field"], "inbound_servers", "{out:#}");
    let show = json(&gw.cli_ok(&["--json", "domain", "show", AGENCY]));
    assert_eq!(
        show["inbound_routes"],
        serde_json::json!(["127.0.0.1:9", backup.addr().to_string()]),
        "{show:#}"
    );
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &[
            "domain",
            "update",
            AGENCY,
            "--inbound-server",
            "x:25;prio=1",
            "--reason",
            "r",
        ],
    );
    assert!(err.contains("expected pref=N"), "{err}");
    // An internet sender writes to the agency: the backup gets it.
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        "citizen@example.org",
        &["head@agency.example.kz"],
        "Subject: to the agency\r\n\r\nhello\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text());
    let _ = s.cmd("QUIT");
    assert!(backup.wait_for_messages(1, std::time::Duration::from_secs(20)));
    assert_eq!(
        backup.messages()[0].recipients,
        vec!["head@agency.example.kz"]
    );
}
