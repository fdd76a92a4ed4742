//! The admin API's exposure: refused calls, tokens, TLS, authentication
//! before any body is read.

mod common;

use common::*;

fn store_bytes(gw: &Gateway) -> u64 {
    std::fs::metadata(gw.data_dir().join("ugem.redb"))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn refused_calls_do_not_grow_the_audit_log_without_limit() {
    let gw = Gateway::start("");
    gw.register(AGENCY, &["127.0.0.1"]);
    let before = store_bytes(&gw);
    let long = "x".repeat(4000);
    for i in 0..200 {
        let (st, _) = http(
            gw.admin,
            "POST",
            &format!("/api/v1/domains/probe-{i}-{long}.example.kz/suspend"),
            None,
            Some(r#"{"reason":"probe"}"#),
        );
        assert_eq!(st, 401);
    }
    let after = store_bytes(&gw);
    let (_, audit) = http(
        gw.admin,
        "GET",
        "/api/v1/audit?limit=1000",
        Some(VIEWER_TOKEN),
        None,
    );
    let rows: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let rows = rows.as_array().unwrap();
    let bytes: usize = rows.iter().map(|r| r.to_string().len()).sum();
    eprintln!(
        "200 refused calls: store file {before} -> {after} (+{}), {} audit records, {bytes} bytes of JSON",
        after - before,
        rows.len()
    );
}
