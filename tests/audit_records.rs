//! What an inspection asks of the registry, end to end through the `ugem`
//! binary (issue #16, items 4 and 10): the application form's own data,
//! domains registered without an application, an audit trail with reasons
//! and before/after that filters and exports, the governor's own decisions
//! in it, its retention, and refused SMTP sessions in the connection log.

mod common;

use chrono::{Duration, FixedOffset, NaiveDate, Utc};
use common::*;
use serde_json::Value;
use ugem::model::audit::AuditRecord;
use ugem::store::RegistryStore;

const BOTH_PHONES: &str =
    "Aliya Nurlanova <it@contact.example.kz>; mobile=+7 701 000 0000; office=+7 (7172) 00-00-00";

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

/// Runs a verb with `token`, failing the test on error; returns stdout.
fn cli_as(gw: &Gateway, token: &str, args: &[&str]) -> String {
    let out = gw.cli(token, args);
    assert!(
        out.status.success(),
        "ugem {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Today's local date as the gateway counts it (`registration.utc_offset`,
/// +05:00 by default).
fn local_today() -> NaiveDate {
    Utc::now()
        .with_timezone(&FixedOffset::east_opt(5 * 3600).unwrap())
        .date_naive()
}

/// The arguments as the CLI helpers take them.
fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// RFC 4180 records: fields split at commas outside quotes, `""` inside
/// quotes a quote, CRLF between records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote in {text}");
    assert!(
        field.is_empty() && row.is_empty(),
        "no CRLF at the end: {text}"
    );
    rows
}

/// The CSV export as maps of column to value.
fn csv_records(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let rows = parse_csv(text);
    let (head, rest) = rows.split_first().expect("a header line");
    rest.iter()
        .map(|r| {
            assert_eq!(r.len(), head.len(), "{r:?}");
            head.iter().cloned().zip(r.iter().cloned()).collect()
        })
        .collect()
}

#[test]
fn an_application_keeps_what_its_form_says_and_the_domain_its_category() {
    let gw = Gateway::start("[delivery]\nnameservers = [\"127.0.0.1:9\"]\n");
    let today = local_today();
    let dated = (today - Duration::days(3)).to_string();
    let submit = |contact: &'static str, dated: &str| -> Vec<String> {
        [
            "--json",
            "application",
            "submit",
            "--domain",
            "form.example.kz",
            "--owner",
            "Ministry of Forms",
            "--category",
            "local-government",
            "--head",
            "Asel Bekova",
            "--server",
            "127.0.0.1",
            "--contact",
            contact,
            "--form-number",
            "17-04/123",
            "--form-date",
            dated,
            "--channel",
            "letter",
            "--channel-ref",
            "ВХ-2026/4411",
            "--document",
            "scan-9f3a.pdf",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // The form gives both phones of each specialist; numbers must be numbers.
    let one_phone = submit("IT <it@contact.example.kz>; mobile=+7 701 000 0000", &dated);
    let err = cli_fails(&gw, ADMIN_TOKEN, &args(&one_phone));
    assert!(err.contains("both a mobile and an office phone"), "{err}");
    let bad = submit(
        "IT <it@contact.example.kz>; mobile=call me; office=1",
        &dated,
    );
    let err = cli_fails(&gw, ADMIN_TOKEN, &args(&bad));
    assert!(err.contains("phone"), "{err}");
    // A form dated after its receipt is a typing error.
    let tomorrow = (today + Duration::days(1)).to_string();
    let err = cli_fails(&gw, ADMIN_TOKEN, &args(&submit(BOTH_PHONES, &tomorrow)));
    assert!(err.contains("after its receipt"), "{err}");
    // The form's fields travel together.
    let err = cli_fails(
        &gw,
        ADMIN_TOKEN,
        &[
            "application",
            "submit",
            "--domain",
            "form.example.kz",
            "--owner",
            "O",
            "--category",
            "state-body",
            "--head",
            "H",
            "--server",
            "127.0.0.1",
            "--contact",
            BOTH_PHONES,
            "--form-number",
            "1",
        ],
    );
    assert!(err.contains("--form-date"), "{err}");

    let v = json(&gw.cli_ok(&args(&submit(BOTH_PHONES, &dated))));
    let id = v["id"].as_u64().expect("an id");
    assert_eq!(v["received_on"], today.to_string());
    assert_eq!(
        v["form"],
        serde_json::json!({
            "number": "17-04/123",
            "dated": dated,
            "channel": "letter",
            "reference": "ВХ-2026/4411",
            "document": "scan-9f3a.pdf",
        })
    );
    assert_eq!(v["contacts"][0]["mobile_phone"], "+77010000000");
    assert_eq!(v["contacts"][0]["office_phone"], "+77172000000");

    let shown = json(&gw.cli_ok(&["--json", "application", "show", &id.to_string()]));
    assert_eq!(shown["form"], v["form"]);
    let text = gw.cli_ok(&["application", "show", &id.to_string()]);
    assert!(
        text.contains(&format!("No. 17-04/123 of {dated}")),
        "{text}"
    );
    assert!(text.contains("letter ВХ-2026/4411"), "{text}");
    assert!(text.contains("scan-9f3a.pdf"), "{text}");
    assert!(
        text.contains("mobile +77010000000; office +77172000000"),
        "{text}"
    );

    // Approval connects the domain with the applicant's category and the
    // application it came from; it is not marked as registered without one.
    gw.cli_ok(&["application", "approve", &id.to_string()]);
    let d = json(&gw.cli_ok(&["--json", "domain", "show", "form.example.kz"]));
    assert_eq!(d["category"], "local_government");
    assert_eq!(d["application"], id);
    assert!(d["without_application"].is_null(), "{d}");
    // The audit shows the submission with the form, and the decision.
    let rows = json(&gw.cli_ok(&[
        "audit",
        "--target",
        &format!("application #{id}"),
        "--format",
        "json",
    ]));
    let approve = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "application.approve")
        .expect("the approval is audited");
    assert_eq!(approve["before"]["status"], "pending");
    assert_eq!(approve["after"]["status"], "approved");
    assert_eq!(approve["after"]["domain"]["status"], "connected");
    let submitted = json(&gw.cli_ok(&[
        "audit",
        "--action",
        "application.submit",
        "--format",
        "json",
    ]));
    assert_eq!(submitted[0]["after"]["form"]["number"], "17-04/123");
}

#[test]
fn a_domain_registered_without_an_application_says_why_and_by_whom() {
    let gw = Gateway::start("");
    let add = [
        "domain",
        "add",
        "direct.example.kz",
        "--server",
        "127.0.0.1",
        "--contact",
        BOTH_PHONES,
    ];
    let err = cli_fails(&gw, ADMIN_TOKEN, &add);
    assert!(err.contains("--reason"), "{err}");
    // The API refuses it too, and the refusal is audited.
    let (st, body) = http(
        gw.admin,
        "POST",
        "/api/v1/domains",
        Some(ADMIN_TOKEN),
        Some(
            r#"{"name":"direct.example.kz","servers":["127.0.0.1"],"contacts":[{"name":"IT","email":"it@contact.example.kz"}]}"#,
        ),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("reason"), "{body}");
    assert!(gw.cli_ok(&["--json", "domain", "list"]).trim() == "[]");

    let mut with_reason = add.to_vec();
    with_reason.extend(["--reason", "migration from the old relay, order 7"]);
    gw.cli_ok(&with_reason);
    let d = json(&gw.cli_ok(&["--json", "domain", "show", "direct.example.kz"]));
    let mark = &d["without_application"];
    assert_eq!(mark["by"], "root");
    assert_eq!(mark["reason"], "migration from the old relay, order 7");
    let at: chrono::DateTime<Utc> = mark["at"].as_str().unwrap().parse().unwrap();
    assert!((Utc::now() - at).num_seconds().abs() < 120, "{at}");
    let text = gw.cli_ok(&["domain", "show", "direct.example.kz"]);
    assert!(
        text.contains("migration from the old relay, order 7"),
        "{text}"
    );
    let rows = json(&gw.cli_ok(&["audit", "--action", "domain.add", "--format", "json"]));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "ok");
    assert_eq!(rows[0]["reason"], "migration from the old relay, order 7");
    assert_eq!(rows[0]["after"]["without_application"], true);
    assert!(rows[1]["outcome"].as_str().unwrap().starts_with("error: "));
    assert!(rows[1]["after"].is_null(), "a failed call changed nothing");
}

#[test]
fn the_audit_filters_by_actor_action_target_and_period_and_exports_csv() {
    let gw = gateway_with_agency("");
    gw.register("other.example.kz", &["192.0.2.50"]);
    gw.cli_ok(&[
        "domain",
        "update",
        AGENCY,
        "--owner",
        "Ministry of Audits",
        "--reason",
        "renamed, \"order\" 12",
    ]);
    cli_as(
        &gw,
        OPERATOR_TOKEN,
        &["domain", "suspend", AGENCY, "--reason", "spam run"],
    );
    cli_as(
        &gw,
        OPERATOR_TOKEN,
        &["domain", "restore", AGENCY, "--reason", "password reset"],
    );
    cli_as(
        &gw,
        OPERATOR_TOKEN,
        &["domain", "suspend", "other.example.kz", "--reason", "other"],
    );

    // The update by root, as CSV, with what changed.
    let csv = gw.cli_ok(&[
        "audit",
        "--actor",
        "root",
        "--action",
        "domain.update",
        "--format",
        "csv",
    ]);
    let rows = csv_records(&csv);
    assert_eq!(rows.len(), 1, "{csv}");
    let r = &rows[0];
    assert_eq!(r["actor"], "root");
    assert!(
        r["target"].starts_with(&format!("{AGENCY}: owner")),
        "{r:?}"
    );
    assert_eq!(r["outcome"], "ok");
    assert_eq!(r["reason"], "renamed, \"order\" 12");
    assert_eq!(json(&r["before"]), serde_json::json!({"owner": ""}));
    assert_eq!(
        json(&r["after"]),
        serde_json::json!({"owner": "Ministry of Audits"})
    );

    // The operator's actions on one domain, in the period, newest first,
    // with the state before and after.
    let today = local_today().to_string();
    let rows = json(&gw.cli_ok(&[
        "audit", "--actor", "duty", "--action", "domain.*", "--target", AGENCY, "--from", &today,
        "--to", &today, "--format", "json",
    ]));
    let rows = rows.as_array().unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["domain.restore", "domain.suspend"], "{rows:?}");
    let (restore, suspend) = (&rows[0], &rows[1]);
    assert_eq!(suspend["reason"], "spam run");
    assert_eq!(suspend["before"]["status"], "connected");
    assert_eq!(suspend["after"]["status"], "suspended");
    assert!(suspend["after"]["suspension"].is_u64(), "{suspend}");
    assert_eq!(restore["reason"], "password reset");
    assert_eq!(restore["before"]["status"], "suspended");
    assert_eq!(restore["after"]["status"], "connected");
    assert_eq!(restore["after"]["held_mail"], "released");

    // Outside the period: nothing.
    let tomorrow = (local_today() + Duration::days(1)).to_string();
    let yesterday = (local_today() - Duration::days(1)).to_string();
    let later = gw.cli_ok(&["audit", "--from", &tomorrow, "--format", "csv"]);
    assert_eq!(csv_records(&later).len(), 0, "{later}");
    let earlier = json(&gw.cli_ok(&["audit", "--to", &yesterday, "--format", "json"]));
    assert_eq!(earlier, serde_json::json!([]));
    // The whole operator set: three records, both domains.
    let all = csv_records(&gw.cli_ok(&["audit", "--actor", "duty", "--format", "csv"]));
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["target"], "other.example.kz");
    // The table shows the reasons; a bad period is refused.
    let table = gw.cli_ok(&["audit", "--actor", "duty"]);
    assert!(
        table.contains("REASON") && table.contains("password reset"),
        "{table}"
    );
    let err = cli_fails(&gw, ADMIN_TOKEN, &["audit", "--from", "last week"]);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    // A limit set by staff: what it was and what it is.
    gw.cli_ok(&["domain", "limits", AGENCY, "--messages-per-hour", "100"]);
    let rows = json(&gw.cli_ok(&["audit", "--action", "domain.limits", "--format", "json"]));
    assert_eq!(rows[0]["before"], serde_json::json!({"limits": null}));
    assert_eq!(rows[0]["after"]["limits"]["messages_per_hour"], 100);
    // The API serves the same CSV.
    let (st, body) = http(
        gw.admin,
        "GET",
        "/api/v1/audit?actor=duty&format=csv",
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(st, 200);
    assert_eq!(csv_records(&body).len(), 3, "{body}");
}

#[test]
fn the_governors_own_suspension_and_its_expiry_are_audited_as_auto() {
    let gw = Gateway::start(
        "[governor]\nburst_percent = 100\nhistory_hours = 0\n\
         new_recipients_5min = 3\nnew_recipients_hour = 3\nexpire = { novelty = \"2s\" }\n\
         housekeeping_interval = \"500ms\"\n",
    );
    gw.register_shared("b.example.kz");
    // A takeover: each message to never-seen recipients, until refused
    // (the suspension itself is carried out off the SMTP path, so it may
    // come a moment after the message that tripped it).
    for i in 0..10 {
        let mut s = Smtp::greeted(gw.smtp);
        s.expect("EHLO client.test.example", 250);
        if s.cmd("MAIL FROM:<grace@b.example.kz>").code != 250 {
            break;
        }
        let mut accepted = false;
        for j in 0..2 {
            accepted |= s.cmd(&format!("RCPT TO:<g{i}-{j}@far.example>")).code == 250;
        }
        if accepted {
            s.expect("DATA", 354);
            s.send_raw(b"Subject: test\r\n\r\nhello\r\n.\r\n");
            assert_eq!(s.reply().code, 250);
        }
        let _ = s.cmd("QUIT");
    }
    let auto = |action: &str| -> Option<Value> {
        let rows = json(&gw.cli_ok(&[
            "audit", "--actor", "auto", "--action", action, "--format", "json",
        ]));
        rows.as_array().unwrap().first().cloned()
    };
    let mut suspended = None;
    assert!(wait_for(10, || {
        suspended = auto("sender.suspend");
        suspended.is_some()
    }));
    let s = suspended.unwrap();
    assert_eq!(s["target"], "grace@b.example.kz");
    assert_eq!(s["outcome"], "ok");
    assert!(s["client"].is_null(), "{s}");
    assert!(!s["reason"].as_str().unwrap().is_empty(), "{s}");
    assert_eq!(s["before"]["status"], "active");
    assert_eq!(s["after"]["status"], "suspended");
    assert_eq!(s["after"]["rule"], "novelty");
    assert!(s["after"]["expires_at"].is_string(), "{s}");
    // The expiry lifts it, and says so.
    let mut restored = None;
    assert!(wait_for(15, || {
        restored = auto("sender.restore");
        restored.is_some()
    }));
    let r = restored.unwrap();
    assert_eq!(r["reason"], "the automatic suspension expired");
    assert_eq!(r["before"]["status"], "suspended");
    assert_eq!(r["after"]["status"], "active");
    assert_eq!(r["after"]["held_mail"], "released");
    // Staff's records are not mistaken for the gateway's.
    let table = gw.cli_ok(&["audit", "--actor", "auto"]);
    assert!(!table.contains("domain.add"), "{table}");
}

#[test]
fn a_scheduled_disconnection_taking_effect_is_audited_as_auto() {
    let gw = gateway_with_agency("[governor]\nhousekeeping_interval = \"300ms\"\n");
    let today = local_today().to_string();
    gw.cli_ok(&[
        "domain",
        "disconnect",
        AGENCY,
        "--on",
        &today,
        "--reason",
        "contract ended",
    ]);
    let mut rec = None;
    assert!(wait_for(10, || {
        let rows = json(&gw.cli_ok(&[
            "audit", "--actor", "auto", "--target", AGENCY, "--format", "json",
        ]));
        rec = rows.as_array().unwrap().first().cloned();
        rec.is_some()
    }));
    let rec = rec.unwrap();
    assert_eq!(rec["action"], "domain.disconnect");
    assert_eq!(
        rec["reason"],
        format!("disconnection agreed for {today}: contract ended")
    );
    assert_eq!(rec["before"]["status"], "connected");
    assert_eq!(rec["before"]["scheduled_by"], "root");
    assert_eq!(rec["after"]["status"], "disconnected");
    // Staff's scheduling is audited under root, with its own before/after.
    let staff = json(&gw.cli_ok(&[
        "audit",
        "--actor",
        "root",
        "--action",
        "domain.disconnect",
        "--format",
        "json",
    ]));
    assert_eq!(staff[0]["reason"], "contract ended");
    assert_eq!(staff[0]["after"]["disconnect_on"], today);
}

#[test]
fn refused_sessions_carry_the_claimed_domain_and_the_refused_command() {
    let gw = gateway_with_agency("");
    gw.register("other.example.kz", &["192.0.2.50"]);

    // Claims a registered domain from an address that is none of its servers.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO relay.test.example", 250);
    s.expect("MAIL FROM:<clerk@other.example.kz>", 550);
    let _ = s.cmd("QUIT");
    // Claims an unregistered domain: refused at MAIL or at RCPT, and that
    // line is the one logged.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO relay.test.example", 250);
    let mail = "MAIL FROM:<someone@nowhere.example>";
    let rcpt = "RCPT TO:<citizen@example.org>";
    let (refused_line, code) = match s.cmd(mail).code {
        c if c >= 400 => (mail, c),
        _ => (rcpt, s.cmd(rcpt).code),
    };
    assert_eq!(code / 100, 5, "{refused_line}");
    let _ = s.cmd("QUIT");
    // A refused command with something unprintable and too long.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO relay.test.example", 250);
    s.expect("MAIL FROM:<clerk@agency.example.kz>", 250);
    let long = format!("RCPT TO:<\u{7}{}@example.org>", "x".repeat(150));
    assert_eq!(s.cmd(&long).code / 100, 5);
    let _ = s.cmd("QUIT");

    let sessions = |domain: &str| -> Vec<Value> {
        json(&gw.cli_ok(&["--json", "connections", "--domain", domain]))
            .as_array()
            .unwrap()
            .clone()
    };
    let mut other = Vec::new();
    assert!(wait_for(10, || {
        other = sessions("other.example.kz");
        !other.is_empty()
    }));
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0]["claimed"], serde_json::json!(["other.example.kz"]));
    assert_eq!(
        other[0]["refusals"][0]["command"],
        "MAIL FROM:<clerk@other.example.kz>"
    );
    assert_eq!(other[0]["refusals"][0]["code"], 550);

    let mut nowhere = Vec::new();
    assert!(wait_for(10, || {
        nowhere = sessions("nowhere.example");
        !nowhere.is_empty()
    }));
    assert_eq!(
        nowhere[0]["claimed"],
        serde_json::json!(["nowhere.example"])
    );
    assert_eq!(nowhere[0]["refusals"][0]["command"], refused_line);

    let mut agency = Vec::new();
    assert!(wait_for(10, || {
        agency = sessions(AGENCY);
        !agency.is_empty()
    }));
    let logged = agency[0]["refusals"][0]["command"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(logged.len(), 100, "{logged}");
    assert!(logged.starts_with("RCPT TO:<?xxx"), "{logged}");
    assert!(logged.chars().all(|c| (' '..='~').contains(&c)), "{logged}");

    // The table shows the claimed domain and the refused line.
    let table = gw.cli_ok(&["connections", "--domain", "nowhere.example"]);
    assert!(
        table.contains("CLAIMED") && table.contains("nowhere.example"),
        "{table}"
    );
    assert!(
        table.contains(&format!("{refused_line} -> {code}")),
        "{table}"
    );
}

#[test]
fn audit_records_older_than_the_retention_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ugem.toml");
    std::fs::write(&config, config_text("[admin]\naudit_retention = \"30d\"\n")).unwrap();
    // Records of the past, written where the gateway will find them.
    {
        let data = dir.path().join("var");
        std::fs::create_dir_all(&data).unwrap();
        let (_, store) = ugem::store::open(&data).expect("the store opens");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for (days, target) in [
                (400, "ancient.example.kz"),
                (31, "old.example.kz"),
                (10, "recent.example.kz"),
            ] {
                let mut r = AuditRecord::auto(
                    Utc::now() - Duration::days(days),
                    "domain.suspend",
                    target,
                    "test",
                );
                r.actor = "root".into();
                store.append_audit(&r).await.unwrap();
            }
        });
    }
    let gw = Gateway::start_in(dir, config);
    let targets = || -> Vec<String> {
        json(&gw.cli_ok(&["audit", "--actor", "root", "--format", "json"]))
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["target"].as_str().unwrap().to_string())
            .collect()
    };
    let mut left = Vec::new();
    assert!(
        wait_for(10, || {
            left = targets();
            !left.iter().any(|t| t.contains("old"))
        }),
        "{left:?}"
    );
    assert_eq!(left, ["recent.example.kz"]);
    // The retention cannot be set so short that an inspection finds nothing.
    let bad = dir_with_config("[admin]\naudit_retention = \"1h\"\n");
    let out = std::process::Command::new(bin())
        .args(["check-config", "--config"])
        .arg(bad.path().join("ugem.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("admin.audit_retention"), "{text}");
}

fn dir_with_config(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ugem.toml"), config_text(extra)).unwrap();
    dir
}
