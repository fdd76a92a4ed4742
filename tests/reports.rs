//! Reports for the authorised body and the working-day calendar as data
//! (issue #16, items 6 and 8), end to end through the `ugem` binary: a
//! period with known applications, suspensions and disconnections read as
//! CSV and JSON, the users export, the days off `application show` names,
//! and check-config's warning about a calendar file missing a year.

mod common;

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use common::*;
use serde_json::Value;

const CONTACT: &str = "Aliya Nurlanova <it@contact.example.kz>; mobile=+7 701 000 0000";

fn gateway() -> Gateway {
    // DNS checks fail fast (nothing answers on the discard port).
    Gateway::start("[delivery]\nnameservers = [\"127.0.0.1:9\"]\n")
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Today's date at the gateway's offset (UTC+5, the shipped default).
fn today() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(5)).date_naive()
}

fn submit(gw: &Gateway, domain: &str, server: &str, received: NaiveDate) -> u64 {
    let received = received.to_string();
    let v = json(&gw.cli_ok(&[
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
        "--received",
        &received,
    ]));
    v["id"].as_u64().expect("an id")
}

/// RFC 4180 CSV read back: records of fields (quotes undone, CRLF ends).
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
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF in {text:?}");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\n') => panic!("bare LF ends a record in {text:?}"),
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "unterminated: {text:?}"
    );
    rows
}

/// A CSV report as maps from column to value, after checking its header.
fn csv_records(text: &str, columns: &[&str]) -> Vec<BTreeMap<String, String>> {
    let rows = parse_csv(text);
    let header = &rows[0];
    for c in columns {
        assert!(header.iter().any(|h| h == c), "no column {c} in {header:?}");
    }
    rows[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "ragged row {r:?}");
            header.iter().cloned().zip(r.iter().cloned()).collect()
        })
        .collect()
}

fn report(gw: &Gateway, kind: &str, from: NaiveDate, to: NaiveDate, format: &str) -> String {
    let (from, to) = (from.to_string(), to.to_string());
    gw.cli_ok(&[
        "report", kind, "--from", &from, "--to", &to, "--format", format,
    ])
}

#[test]
fn a_period_reported_as_csv_and_json_with_known_counts() {
    let gw = gateway();
    let today = today();
    let ago = |n: u64| today.checked_sub_days(Days::new(n)).unwrap();
    let (from, to) = (ago(40), today);

    // Applications: late approval, timely approval, late rejection,
    // an overdue pending one, and one received before the period.
    let late = submit(&gw, "late.example.kz", "192.0.2.1", ago(30));
    let timely = submit(&gw, "timely.example.kz", "192.0.2.2", today);
    let rejected = submit(&gw, "rejected.example.kz", "192.0.2.3", ago(30));
    let overdue = submit(&gw, "overdue.example.kz", "192.0.2.4", ago(20));
    submit(&gw, "before.example.kz", "192.0.2.5", ago(60));
    gw.cli_ok(&["application", "approve", &late.to_string()]);
    gw.cli_ok(&["application", "approve", &timely.to_string()]);
    let reason = "servers \"192.0.2.3\" not the agency's, and no SPF";
    gw.cli_ok(&[
        "application",
        "reject",
        &rejected.to_string(),
        "--reason",
        reason,
    ]);
    // A domain registered by staff, without a category.
    gw.register("staff.example.kz", &["192.0.2.9"]);

    // Suspensions: a domain suspended and restored, a sender still suspended.
    gw.cli_ok(&["domain", "suspend", "late.example.kz", "--reason", "test"]);
    gw.cli_ok(&["domain", "restore", "late.example.kz"]);
    gw.cli_ok(&[
        "sender",
        "suspend",
        "clerk@staff.example.kz",
        "--reason",
        "phished",
    ]);
    // A disconnection.
    gw.cli_ok(&[
        "domain",
        "disconnect",
        "timely.example.kz",
        "--reason",
        "left, for good",
    ]);

    // Applications, as JSON and as CSV.
    let v = json(&report(&gw, "applications", from, to, "json"));
    let s = &v["summary"];
    assert_eq!(s["received"], 4, "{v}");
    assert_eq!(
        (s["approved"].as_u64(), s["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (s["pending"].as_u64(), s["overdue"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["decided_on_time"], 1);
    assert_eq!(s["decided_late"], 2);
    assert_eq!(s["category.state_body"], 4);
    assert_eq!(v["rows"].as_array().unwrap().len(), 4);
    let rows = csv_records(
        &report(&gw, "applications", from, to, "csv"),
        &["id", "domain", "status", "timeliness", "reason"],
    );
    assert_eq!(rows.len(), 4);
    let by_id = |id: u64| rows.iter().find(|r| r["id"] == id.to_string()).unwrap();
    assert_eq!(by_id(late)["timeliness"], "late");
    assert_eq!(by_id(timely)["timeliness"], "on_time");
    assert_eq!(by_id(rejected)["reason"], reason);
    assert_eq!(by_id(rejected)["status"], "rejected");
    assert_eq!(by_id(overdue)["timeliness"], "overdue");
    // --json is --format json.
    let again = json(&gw.cli_ok(&[
        "--json",
        "report",
        "applications",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ]));
    assert_eq!(again["summary"], v["summary"]);
    // A period before all of it is empty but well formed.
    let empty = json(&report(&gw, "applications", ago(400), ago(370), "json"));
    assert_eq!(empty["summary"]["received"], 0);
    assert_eq!(
        parse_csv(&report(&gw, "applications", ago(400), ago(370), "csv")).len(),
        1
    );

    // Suspensions.
    let v = json(&report(&gw, "suspensions", from, to, "json"));
    let s = &v["summary"];
    assert_eq!(
        (s["total"].as_u64(), s["staff"].as_u64(), s["auto"].as_u64()),
        (Some(2), Some(2), Some(0))
    );
    assert_eq!(
        (s["scope.domain"].as_u64(), s["scope.sender"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (s["active"].as_u64(), s["ended"].as_u64()),
        (Some(1), Some(1))
    );
    let rows = csv_records(
        &report(&gw, "suspensions", from, to, "csv"),
        &["scope", "target", "cause", "duration_hours", "active"],
    );
    assert_eq!(rows.len(), 2);
    let sender = rows.iter().find(|r| r["scope"] == "sender").unwrap();
    assert_eq!(
        (sender["target"].as_str(), sender["active"].as_str()),
        ("clerk@staff.example.kz", "true")
    );
    let domain = rows.iter().find(|r| r["scope"] == "domain").unwrap();
    assert!(
        domain["ended_at"].len() > 10 && domain["cause"] == "staff",
        "{domain:?}"
    );

    // Disconnections.
    let v = json(&report(&gw, "disconnections", from, to, "json"));
    assert_eq!(v["summary"]["disconnected"], 1, "{v}");
    let rows = csv_records(
        &report(&gw, "disconnections", from, to, "csv"),
        &["domain", "reason"],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["domain"].as_str(), rows[0]["reason"].as_str()),
        ("timely.example.kz", "left, for good")
    );

    // The default text form: the summary, then a table.
    let text = report(&gw, "users", from, to, "text");
    assert!(
        text.starts_with(&format!("report users from {from} to {to}")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().eq(["category.unknown", "1"])),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("DOMAIN ")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("late.example.kz ")),
        "{text}"
    );

    // Users: connected at the period's end, by category (the disconnected
    // one left, the rejected and pending ones never came).
    let v = json(&report(&gw, "users", from, to, "json"));
    let s = &v["summary"];
    assert_eq!(s["total"], 2, "{v}");
    assert_eq!(
        (
            s["category.state_body"].as_u64(),
            s["category.unknown"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let rows = csv_records(
        &report(&gw, "users", from, to, "csv"),
        &[
            "domain",
            "owner",
            "category",
            "head",
            "contacts",
            "servers",
            "connected_since",
            "last_application",
        ],
    );
    assert_eq!(rows.len(), 2);
    let late_row = rows
        .iter()
        .find(|r| r["domain"] == "late.example.kz")
        .unwrap();
    assert_eq!(late_row["head"], "Asel Bekova");
    assert_eq!(late_row["last_application"], late.to_string());
    assert_eq!(late_row["servers"], "192.0.2.1/32");
    assert!(
        late_row["contacts"].contains("<it@contact.example.kz>"),
        "{late_row:?}"
    );
    let staff_row = rows
        .iter()
        .find(|r| r["domain"] == "staff.example.kz")
        .unwrap();
    assert_eq!(
        (
            staff_row["category"].as_str(),
            staff_row["last_application"].as_str()
        ),
        ("", "")
    );

    // Listings: none recorded, an empty report with its header.
    let v = json(&report(&gw, "listings", from, to, "json"));
    assert_eq!(v["summary"]["total"], 0);
    let rows = parse_csv(&report(&gw, "listings", from, to, "csv"));
    assert_eq!(rows[0][..3], ["id", "address", "list"]);

    // The API answers CSV itself, and refuses bad periods and kinds.
    let q = format!("/api/v1/reports/users?from={from}&to={to}&format=csv");
    let (st, body) = http(gw.admin, "GET", &q, Some(VIEWER_TOKEN), None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(csv_records(&body, &["domain"]).len(), 2);
    let q = format!("/api/v1/reports/users?from={to}&to={from}");
    assert_eq!(http(gw.admin, "GET", &q, Some(VIEWER_TOKEN), None).0, 400);
    let q = format!("/api/v1/reports/money?from={from}&to={to}");
    assert_eq!(http(gw.admin, "GET", &q, Some(VIEWER_TOKEN), None).0, 400);
    assert_eq!(
        http(
            gw.admin,
            "GET",
            "/api/v1/reports/users",
            Some(VIEWER_TOKEN),
            None
        )
        .0,
        400
    );
}

#[test]
fn application_show_names_the_days_off_its_deadline_skipped() {
    let gw = gateway();
    let today = today();
    // The latest day in the past year before a public holiday (from the
    // shipped calendar: if it has none, the calendar is stale).
    let cal = ugem::calendar::Calendar::kazakhstan();
    let received = (2..300)
        .filter_map(|n| today.checked_sub_days(Days::new(n)))
        .find(|d| {
            matches!(
                cal.day_off(d.succ_opt().unwrap()),
                Some(ugem::calendar::DayOff::Holiday { .. })
            )
        })
        .expect("a public holiday in the past year");
    let id = submit(&gw, "holiday.example.kz", "192.0.2.7", received).to_string();
    let v = json(&gw.cli_ok(&["--json", "application", "show", &id]));
    let due: NaiveDate = v["decision_due"].as_str().unwrap().parse().unwrap();
    let skipped = v["skipped_days"].as_array().unwrap();
    // The first skipped day is the holiday, by name.
    let first = &skipped[0];
    assert_eq!(first["date"], received.succ_opt().unwrap().to_string());
    assert_eq!(first["why"], "holiday", "{first}");
    let name = first["name"].as_str().unwrap();
    assert!(!name.is_empty());
    // Days between receipt and due date, less those skipped, are the 5
    // working days of the deadline; every skipped day lies between them.
    let days = (due - received).num_days();
    assert_eq!(days - skipped.len() as i64, 5, "{v}");
    for d in skipped {
        let date: NaiveDate = d["date"].as_str().unwrap().parse().unwrap();
        assert!(received < date && date <= due, "{d}");
        let weekend = matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        if d["why"] == "weekend" {
            assert!(weekend, "{d}");
        }
    }
    // The text form lists them under "days off".
    let text = gw.cli_ok(&["application", "show", &id]);
    assert!(text.contains("days off:"), "{text}");
    assert!(
        text.contains(&format!("{} ", received.succ_opt().unwrap())),
        "{text}"
    );
    assert!(text.contains(&format!("holiday: {name}")), "{text}");
}

fn calendar_file(dir: &std::path::Path, year: i32) -> std::path::PathBuf {
    let path = dir.join("calendar.toml");
    std::fs::write(
        &path,
        format!(
            "country = \"KZ\"\n[years.{year}]\nholidays = [{{ date = {year}-01-01, name = \"New Year\" }}]\nsources = [{{ kind = \"law\", title = \"test\" }}]\n"
        ),
    )
    .unwrap();
    path
}

fn check_config(config: &std::path::Path) -> Value {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["check-config", "--json", "--config"]).arg(config);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("UGEM_")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap();
    json(&String::from_utf8_lossy(&out.stdout))
}

fn calendar_warnings(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == "warning")
        .filter(|p| p["key"] == "registration.calendar")
        .map(|p| p["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn check_config_warns_when_the_calendar_file_lacks_a_year() {
    let dir = tempfile::tempdir().unwrap();
    let today = today();
    let config = dir.path().join("ugem.toml");
    std::fs::write(
        &config,
        "[admin]\ntoken = \"0123456789abcdef0123456789\"\n[registration]\ncalendar = \"calendar.toml\"\n",
    )
    .unwrap();

    // This year only: from 1 December the next year is asked for.
    calendar_file(dir.path(), today.year());
    let r = check_config(&config);
    assert_eq!(r["ok"], true, "{r}");
    let w = calendar_warnings(&r);
    if today.month() == 12 {
        assert_eq!(w.len(), 1, "{r}");
        assert!(w[0].contains(&(today.year() + 1).to_string()), "{w:?}");
    } else {
        assert!(w.is_empty(), "{r}");
    }

    // Last year only: this year is missing, whatever the month.
    calendar_file(dir.path(), today.year() - 1);
    let w = calendar_warnings(&check_config(&config));
    assert_eq!(w.len(), 1);
    assert!(w[0].contains(&today.year().to_string()), "{w:?}");

    // A configuration from before the calendar file, listing the old 30 August.
    let old = dir.path().join("old.toml");
    std::fs::write(
        &old,
        "[admin]\ntoken = \"0123456789abcdef0123456789\"\n[registration]\nholidays = [2026-01-01, 2026-03-08, 2026-08-30]\n",
    )
    .unwrap();
    let r = check_config(&old);
    assert_eq!(r["ok"], true, "{r}");
    let stale: Vec<&Value> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["key"] == "registration.holidays" && p["severity"] == "warning")
        .collect();
    assert_eq!(stale.len(), 1, "{r}");
    assert!(
        stale[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("2026-08-30 is not a day off"),
        "{r}"
    );

    // A broken file is an error of the key.
    std::fs::write(
        dir.path().join("calendar.toml"),
        "[years.2026]\nholidays = [{ date = \"soon\" }]\n",
    )
    .unwrap();
    let r = check_config(&config);
    assert_eq!(r["ok"], false, "{r}");
    assert!(r.to_string().contains("registration.calendar"), "{r}");
}

#[test]
fn the_gateway_warns_at_start_about_a_calendar_missing_this_year() {
    let dir = tempfile::tempdir().unwrap();
    let last = today().year() - 1;
    calendar_file(dir.path(), last);
    let config = dir.path().join("ugem.toml");
    std::fs::write(
        &config,
        config_text("[registration]\ncalendar = \"calendar.toml\"\n"),
    )
    .unwrap();
    let gw = Gateway::start_in(dir, config);
    let log = gw.log_text();
    assert!(
        log.lines().any(|l| l.contains("registration.calendar")
            && l.contains("lists no holidays or days off")
            && l.contains(&(last + 1).to_string())),
        "{log}"
    );
}

#[test]
fn a_refusal_naming_the_gateway_as_listed_is_kept_for_the_listings_report() {
    // Every remote refuses: the gateway's source address (127.0.0.1) is listed.
    let listed = common::fake_mx::FakeMx::start(common::fake_mx::Behaviour {
        rcpt_reply: Some(
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
                .into(),
        ),
        ..common::fake_mx::Behaviour::accept()
    });
    let gw = Gateway::start(&format!(
        "[delivery]\nmin_backoff = \"1s\"\nnameservers = [\"127.0.0.1:9\"]\n[delivery.routes]\n\"*\" = \"{}\"\n",
        listed.addr()
    ));
    gw.register_shared("a.example.kz");
    for i in 0..3 {
        let mut s = Smtp::greeted(gw.smtp);
        let r = s.send_mail(
            "eve@a.example.kz",
            &[&format!("r{i}@far.example")],
            "From: eve@a.example.kz\r\nTo: r@far.example\r\nSubject: t\r\n\r\nHello.\r\n",
        );
        assert_eq!(r.code, 250, "{}", r.text());
        let _ = s.cmd("QUIT");
    }
    let today = today();
    let from = today.checked_sub_days(Days::new(1)).unwrap();
    let mut v = Value::Null;
    let seen = wait_for(30, || {
        v = json(&report(&gw, "listings", from, today, "json"));
        v["summary"]["total"] == 1
    });
    assert!(seen, "no listing recorded: {v}");
    // One open record however many refusals, named after the list.
    let s = &v["summary"];
    assert_eq!(
        (s["open"].as_u64(), s["addresses"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(s["list.zen.spamhaus.org"], 1, "{v}");
    assert_eq!(s["source.refusal"], 1, "{v}");
    let rows = csv_records(
        &report(&gw, "listings", from, today, "csv"),
        &["address", "list", "code", "meaning", "delisted_at"],
    );
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r["address"].as_str(), r["code"].as_str()),
        ("127.0.0.1", "554 5.7.1")
    );
    assert!(
        r["meaning"].contains("blocked using zen.spamhaus.org"),
        "{r:?}"
    );
    assert_eq!(r["delisted_at"], "");
    // A period that ended before it began does not show it.
    let before = today.checked_sub_days(Days::new(10)).unwrap();
    let v = json(&report(&gw, "listings", before, before, "json"));
    assert_eq!(v["summary"]["total"], 0);
}
