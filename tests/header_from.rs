//! The header From of relayed mail (issue #18, item 2), through the binary:
//! an agency sends in its own name, not another agency's, unless staff
//! approve the domain or turn the check off for it.

mod common;

use common::*;

const OTHER: &str = "other.example.kz";

/// Relays one message from the agency with this header From; the final reply.
fn send_from(gw: &Gateway, from_header: &str, body: &str) -> Reply {
    let mut s = Smtp::greeted(gw.smtp);
    let r = s.send_mail(
        &format!("clerk@{AGENCY}"),
        &["citizen@example.org"],
        &format!("From: {from_header}\r\nTo: citizen@example.org\r\nSubject: notice\r\n\r\n{body}"),
    );
    s.expect("QUIT", 221);
    r
}

#[test]
fn own_domain_passes_another_agencys_is_refused_approved_ones_and_check_off_pass() {
    let gw = gateway_with_agency("");
    gw.register(OTHER, &["192.0.2.9"]);
    let own = send_from(&gw, &format!("Clerk <clerk@{AGENCY}>"), "x\r\n");
    assert_eq!(own.code, 250, "{own:?}");
    let sub = send_from(&gw, &format!("desk@mail.{AGENCY}"), "x\r\n");
    assert_eq!(sub.code, 250, "{sub:?}");

    let foreign = send_from(&gw, &format!("Minister <minister@{OTHER}>"), "x\r\n");
    assert_eq!(foreign.code, 550, "{foreign:?}");
    let text = foreign.text();
    assert!(
        text.starts_with(
            "5.7.1 header From <minister@other.example.kz> is not of agency.example.kz"
        ),
        "{text}"
    );
    // A large (spooled) message is checked the same way.
    let big = "y".repeat(70) + "\r\n";
    let big = big.repeat(8 * 1024);
    let r = send_from(&gw, &format!("minister@{OTHER}"), &big);
    assert_eq!(r.code, 550, "{r:?}");
    // The default is on and shown.
    let shown = gw.cli_ok(&["--json", "domain", "header-from", AGENCY]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["enforce"], true);

    // Staff approve a further domain: it passes, the other agency still not.
    let out = gw.cli_ok(&[
        "--json",
        "domain",
        "header-from",
        AGENCY,
        "--allow",
        "portal.example.kz",
    ]);
    assert!(out.contains("portal.example.kz"), "{out}");
    assert_eq!(
        send_from(&gw, "noreply@portal.example.kz", "x\r\n").code,
        250
    );
    assert_eq!(send_from(&gw, &format!("m@{OTHER}"), "x\r\n").code, 550);
    // A viewer cannot change it.
    let refused = gw.cli(VIEWER_TOKEN, &["domain", "header-from", AGENCY, "--off"]);
    assert!(!refused.status.success());

    // Off for this domain: any header From passes; the other domain's
    // own check is untouched (its mail would still be checked).
    gw.cli_ok(&["domain", "header-from", AGENCY, "--off"]);
    assert_eq!(send_from(&gw, &format!("m@{OTHER}"), "x\r\n").code, 250);
    let other: serde_json::Value =
        serde_json::from_str(&gw.cli_ok(&["--json", "domain", "header-from", OTHER])).unwrap();
    assert_eq!(other["enforce"], true);
    // Back on, the approval kept.
    gw.cli_ok(&[
        "domain",
        "header-from",
        AGENCY,
        "--on",
        "--disallow",
        "portal.example.kz",
    ]);
    assert_eq!(
        send_from(&gw, "noreply@portal.example.kz", "x\r\n").code,
        550
    );

    // Each change by staff is audited (and the viewer's refused attempt).
    let audit: serde_json::Value = serde_json::from_str(&gw.cli_ok(&["--json", "audit"])).unwrap();
    let changes: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "domain.header_from" && r["outcome"] == "ok")
        .map(|r| (r["actor"].as_str().unwrap(), r["target"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, vec![("root", AGENCY); 3], "{audit:#}");
}
