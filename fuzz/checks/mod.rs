//! Invariants for the fuzz targets whose code under test has no `fuzzing`
//! module of its own: the configuration loader, the delivery reply parser and
//! the outbound message check. Shared by `fuzz/fuzz_targets/*.rs` (nightly,
//! libFuzzer) and `tests/fuzz_corpus.rs` (stable, corpus replay) through
//! `#[path]`, so both check exactly the same thing.
#![allow(dead_code)]

use std::path::PathBuf;

use ugem::config::{Config, ConfigSource};
use ugem::delivery::client::{
    MAX_LINE_LENGTH, MAX_REPLY_LINE, MAX_REPLY_LINES, MAX_REPLY_SIZE, check_message, parse_reply,
    wire_form,
};

/// Sections `Config` knows; any other top-level key must be named in the error.
const SECTIONS: [&str; 7] = [
    "server",
    "smtp",
    "delivery",
    "admin",
    "connections",
    "registration",
    "alarms",
];

/// Loads arbitrary text as a configuration. The input is TOML, optionally
/// followed by a NUL and `UGEM_...=value` lines for the environment.
/// Checks: never panics; an error has at least one problem, each with a
/// message, and its text names every key it blames; an unknown top-level
/// section in otherwise valid TOML is refused and named; loading is
/// deterministic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml_text, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let source = ConfigSource::Text {
        text: toml_text.to_string(),
        base: PathBuf::from("/nonexistent/ugem-fuzz"),
    };
    let first = Config::load_with_env(&source, &env);
    match &first {
        Ok(cfg) => {
            let _ = format!("{cfg:?}");
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without problems");
            let shown = e.to_string();
            for p in &e.problems {
                assert!(!p.message.is_empty(), "problem without a message: {p:?}");
                assert!(shown.contains(&p.key), "{shown} does not name {}", p.key);
            }
        }
    }
    if env.is_empty()
        && let Ok(table) = toml_text.parse::<toml::Table>()
        && let Some(unknown) = table.keys().find(|k| !SECTIONS.contains(&k.as_str()))
    {
        let e = first.as_ref().expect_err("unknown section accepted");
        assert!(
            e.problems
                .iter()
                .any(|p| p.key.starts_with(unknown.as_str())),
            "unknown section {unknown:?} not named: {e}"
        );
    }
    let second = Config::load_with_env(&source, &env);
    assert_eq!(
        first.is_ok(),
        second.is_ok(),
        "loading is not deterministic"
    );
}

/// Parses arbitrary bytes as a remote SMTP reply. Checks: never panics; a
/// reply has a 2xx-5xx code, at most MAX_REPLY_LINES lines, no CR/LF/NUL in
/// its text, consumed at most the input and at most MAX_REPLY_SIZE; the
/// consumed prefix parses to the same reply; an incomplete reply is never
/// longer than the limits allow.
pub fn reply(data: &[u8]) {
    match parse_reply(data) {
        Ok(Some((r, used))) => {
            assert!(
                used <= data.len() && used > 0,
                "consumed {used} of {}",
                data.len()
            );
            assert!(used <= MAX_REPLY_SIZE + MAX_REPLY_LINE, "consumed {used}");
            assert!((200..600).contains(&r.code), "code {}", r.code);
            assert!(!r.lines.is_empty() && r.lines.len() <= MAX_REPLY_LINES);
            for l in &r.lines {
                assert!(
                    !l.contains(['\r', '\n', '\0']),
                    "control character in reply text {l:?}"
                );
            }
            let shown = r.to_string();
            assert!(!shown.contains(['\r', '\n']), "{shown:?}");
            assert!(shown.starts_with(&r.code.to_string()));
            let _ = r.class();
            match parse_reply(&data[..used]) {
                Ok(Some((again, n))) => {
                    assert_eq!(n, used);
                    assert_eq!(again, r);
                }
                other => panic!("prefix parses differently: {other:?}"),
            }
        }
        Ok(None) => {
            assert!(
                !data.contains(&b'\n') || data.len() < MAX_REPLY_SIZE + MAX_REPLY_LINE,
                "{} octets still incomplete",
                data.len()
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Checks arbitrary bytes as an outbound message body. Checks: `check_message`
/// agrees with a plain reference (CRLF-only line ends, no NUL, lines of at
/// most 998 octets); a message it passes goes on the wire dot-stuffed with
/// CRLF-only lines ending in a lone ".", never an early end of data.
pub fn message(data: &[u8]) {
    let verdict = check_message(data);
    assert_eq!(verdict.is_ok(), reference_ok(data), "{verdict:?}");
    if verdict.is_err() {
        return;
    }
    let wire = wire_form(data);
    assert!(wire.ends_with(b".\r\n"), "wire form without end of data");
    let body = &wire[..wire.len() - 3];
    assert!(body.is_empty() || body.ends_with(b"\r\n"));
    let mut unstuffed = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "bare line end on the wire");
        assert!(
            !line[..line.len() - 2].contains(&b'\r'),
            "bare CR on the wire"
        );
        assert_ne!(line, b".\r\n", "early end of data on the wire");
        let line = if line.first() == Some(&b'.') {
            &line[1..]
        } else {
            line
        };
        unstuffed.extend_from_slice(line);
    }
    // Unstuffing gives the message back (with a final CRLF added if it had none).
    let mut want = data.to_vec();
    if !want.is_empty() && !want.ends_with(b"\r\n") {
        want.extend_from_slice(b"\r\n");
    }
    assert_eq!(unstuffed, want, "the wire form changes the message");
}

fn reference_ok(data: &[u8]) -> bool {
    if data.contains(&0) {
        return false;
    }
    let mut rest = data;
    loop {
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => return rest.len() <= MAX_LINE_LENGTH,
            Some(i) => {
                if i > MAX_LINE_LENGTH || rest[i] != b'\r' || rest.get(i + 1) != Some(&b'\n') {
                    return false;
                }
                rest = &rest[i + 2..];
            }
        }
    }
}
