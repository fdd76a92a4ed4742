//! Each traffic profile of the reputation issue, replayed through the real
//! governor with the default `[governor]`, meets its target: takeovers are
//! suspended in time and before too many recipients, nobody else ever is.

use ugem_reputation::{Expect, build, run};

fn check(name: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (row, report) = rt.block_on(run(name, 1, ugem::config::Config::default()));
    let p = build(name, 1);
    let table = ugem_reputation::table(std::slice::from_ref(&row));
    println!("{table}");
    assert!(
        row.pass,
        "{name} missed its target:\n{table}\ndecisions: {:#?}",
        &report.decisions[..report.decisions.len().min(5)]
    );
    match p.expect {
        Expect::NoSuspension => {
            assert!(row.falsely_suspended.is_empty(), "{table}");
            assert_eq!(row.false_suspensions_per_week, 0.0);
        }
        Expect::Caught { .. } => assert_eq!(row.caught, Some(true), "{table}"),
    }
}

#[test]
fn office_traffic_is_left_alone() {
    check("office");
}

#[test]
fn burst_takeover_is_caught_in_time() {
    check("burst_takeover");
}

#[test]
fn bcc_takeover_is_caught_in_time() {
    check("bcc_takeover");
}

#[test]
fn slow_compromise_is_caught_within_an_hour() {
    check("slow_compromise");
}

#[test]
fn a_takeover_across_a_window_boundary_is_caught_on_the_floor() {
    check("boundary_takeover");
}

#[test]
fn declared_tax_office_is_never_suspended() {
    check("tax_office_declared");
}

#[test]
fn undeclared_tax_office_is_deferred_not_suspended() {
    check("tax_office_undeclared");
}

#[test]
fn notification_service_is_never_suspended() {
    check("notification_service");
}

#[test]
fn day_night_sender_is_never_suspended() {
    check("day_night_sender");
}

#[test]
fn thirty_percent_unknown_suspends_the_sender_not_its_domain() {
    check("unknown_30");
}

#[test]
fn two_percent_unknown_is_left_alone() {
    check("unknown_2");
}

#[test]
fn greylisting_is_not_the_senders_fault() {
    check("greylisted_35");
}

#[test]
fn a_listing_of_the_gateway_alarms_and_blames_nobody() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (row, report) = rt.block_on(run("gateway_listed", 1, ugem::config::Config::default()));
    assert!(
        row.pass,
        "{}",
        ugem_reputation::table(std::slice::from_ref(&row))
    );
    // Alarms, but at most one a minute per address.
    assert!(row.listing_alarms >= 1, "{row:?}");
    assert!(
        report.decisions.iter().all(|d| d.step == "gateway_listed"),
        "{:?}",
        report.decisions.first()
    );
}

#[test]
fn one_off_invitations_are_never_suspended() {
    check("office_invitations");
}
