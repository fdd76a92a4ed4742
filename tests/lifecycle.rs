//! A connected domain's lifecycle end to end, through the `ugem` binary:
//! changing its data (staff updates, version history, change requests),
//! disconnection on an agreed date.

mod common;

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

/// The reply code to MAIL FROM of the agency's clerk from 127.0.0.1.
fn mail_from_code(gw: &Gateway) -> u16 {
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO agency.example.kz", 250);
    let r = s.cmd("MAIL FROM:<clerk@agency.example.kz>");
    let _ = s.cmd("QUIT");
    r.code
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
    json(&body)["text"].as_str().unwrap().replace("\r\n", "\n")
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
    assert_eq!(mail_from_code(&gw), 250);

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
    assert_eq!(mail_from_code(&gw), 550);
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
    assert_eq!(mail_from_code(&gw), 550, "nothing applied before approval");
    let id = cr["id"].as_u64().unwrap().to_string();
    let ok = json(&gw.cli_ok(&["--json", "domain", "change-request", "approve", &id]));
    assert_eq!(ok["change_request"]["status"], "approved", "{ok:#}");
    assert_eq!(ok["version"], 2);
    assert_eq!(mail_from_code(&gw), 250);
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
    let show = json(&gw.cli_ok(&["--json", "domain", "show", AGENCY]));
    assert_ne!(show["owner"], "Ministry of Y");
}
