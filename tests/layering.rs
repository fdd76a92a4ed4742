//! The module layering check (issue #14, item 1): no import circles between
//! the crate's top-level modules, and no module importing from a floor above
//! its own.
//!
//! It reads every `src/**/*.rs`, and for each file collects the `crate::X`
//! references it makes (`use crate::X::…`, `use crate::{X, …}`, and paths
//! written inline such as `crate::X::f()`), where `X` is a top-level module
//! (a file or folder directly under `src/`). A few files that live inside a
//! folder but are leaves in their own right (see [`LEAVES`]) count as units
//! of their own. `super::` and `self::` paths stay inside a unit and are not
//! counted; nor are doc comments and line comments.
//!
//! Two tests:
//! - `no_import_cycles`: the graph of units has no cycle (each cycle found
//!   is printed, unit by unit, with the files that make each step).
//! - `no_upward_imports`: every import goes to the same floor or below, per
//!   [`FLOORS`], except the pairs in [`ALLOWED_UPWARD`].
//!
//! A new top-level module must be given a floor here, or the test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The floors, lowest first. A unit may import from its own floor and any
/// floor below; the cycle check keeps imports within one floor acyclic.
const FLOORS: &[(&str, &[&str])] = &[
    (
        "ground floor: std and crates only (domain parsing, value types, \
         shutdown signalling, SMTP reply types, DNS and TLS set-up, trust \
         anchors, counters)",
        &[
            "shutdown", "domain", "values", "reply", "dns", "tls", "trust", "calendar", "metrics",
            "sdnotify",
        ],
    ),
    (
        "parsers and leaves on the ground floor's types",
        &["address", "maillog", "mailbox", "governor::settings"],
    ),
    (
        "records: the registry's and the node's record types, shared by the \
         store (which keeps them) and everything above (which reads them)",
        &["model"],
    ),
    ("configuration", &["config"]),
    ("logging set-up", &["logging"]),
    // DKIM keys and signers: files under data_dir/dkim; the registry's
    // advice reads the active key, preparation signs with it.
    ("DKIM keys", &["dkim"]),
    ("store", &["store"]),
    ("registry", &["registry"]),
    ("policy", &["policy"]),
    // Every message on its way into the queue: trace headers, (signing).
    ("message preparation", &["prepare"]),
    // The queue is its own crate (`queue/`, `ugem_queue`) below everything
    // here; it imports nothing from this crate, so it has no floor.
    //
    // Notifications sit below the governor: the governor queues notices and
    // webhooks, and notify needs nothing from the governor, delivery or smtp.
    ("notifications", &["notify"]),
    ("governor", &["governor"]),
    ("delivery", &["delivery"]),
    ("inbound SMTP", &["smtp"]),
    ("admin API", &["admin"]),
    ("command line", &["cli"]),
    ("the serve command", &["server"]),
];

/// Files inside a folder that are leaves in their own right: they import
/// only lower floors, and lower floors may import them without importing
/// their folder. `(unit, file under src/)`.
const LEAVES: &[(&str, &str)] = &[
    // `[governor]` settings: config/ embeds the section; the file imports
    // only `values`.
    ("governor::settings", "governor/settings.rs"),
];

/// Upward imports that are accepted for now, `(from, to, why)`. Empty: keep
/// it so, or say why in the entry.
const ALLOWED_UPWARD: &[(&str, &str, &str)] = &[];

/// Files that are not part of the library's module tree.
const SKIPPED: &[&str] = &["main.rs", "lib.rs"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The unit a file belongs to, from its path relative to `src/`.
fn unit_of(rel: &str) -> String {
    if let Some((unit, _)) = LEAVES.iter().find(|(_, f)| *f == rel) {
        return unit.to_string();
    }
    let first = rel.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The unit a reference `crate::<top>::<rest…>` lands in.
fn unit_of_path(top: &str, rest: &[&str]) -> String {
    for (unit, _) in LEAVES {
        let parts: Vec<&str> = unit.split("::").collect();
        let inner = &parts[1..];
        if parts[0] == top && rest.len() >= inner.len() && rest[..inner.len()] == *inner {
            return unit.to_string();
        }
    }
    top.to_string()
}

/// Drops whole-line comments (doc comments included), which name modules
/// in prose and links. Strings are kept: a `crate::` in one is rare enough
/// to fix by hand if it ever shows.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("//") { "" } else { l }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Reads a path after `crate::`: either `a::b::c` or a group `{a, b::c, …}`
/// (nested groups included). Returns each referenced path as segments.
fn paths_after(s: &str) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        // Split the group at top-level commas.
        let mut depth = 1;
        let mut end = inner.len();
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let group = &inner[..end];
        let mut items = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&group[start..]);
        return items
            .into_iter()
            .filter(|i| !i.trim().is_empty())
            .flat_map(|item| {
                let item = item.trim();
                let head: String = item.chars().take_while(|c| is_ident(*c)).collect();
                let rest = &item[head.len()..];
                match rest.trim_start().strip_prefix("::") {
                    Some(more) => paths_after(more)
                        .into_iter()
                        .map(|mut p| {
                            p.insert(0, head.clone());
                            p
                        })
                        .collect(),
                    None => vec![vec![head]],
                }
            })
            .collect();
    }
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let seg: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if seg.is_empty() {
            if let Some(more) = rest.strip_prefix('{') {
                // `crate::a::{b, c}`: a group after some segments.
                return paths_after(&format!("{{{more}"))
                    .into_iter()
                    .map(|p| segs.iter().cloned().chain(p).collect())
                    .collect();
            }
            break;
        }
        rest = &rest[seg.len()..];
        segs.push(seg);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    vec![segs]
}

/// unit -> (imported unit -> files making the import)
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph() -> Graph {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for path in files {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if SKIPPED.contains(&rel.as_str()) {
            continue;
        }
        let from = unit_of(&rel);
        let text = strip_comments(&std::fs::read_to_string(&path).unwrap());
        g.entry(from.clone()).or_default();
        let mut at = 0;
        while let Some(i) = text[at..].find("crate::") {
            let start = at + i;
            at = start + "crate::".len();
            // `ugem_queue::crate::` never occurs; `$crate::` would be a macro's.
            if start > 0 && is_ident(text[..start].chars().next_back().unwrap()) {
                continue;
            }
            for p in paths_after(&text[at..]) {
                let Some(top) = p.first() else { continue };
                if top.is_empty() || top == "self" {
                    continue;
                }
                let rest: Vec<&str> = p[1..].iter().map(String::as_str).collect();
                let to = unit_of_path(top, &rest);
                if to != from {
                    g.entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_default()
                        .insert(rel.clone());
                }
            }
        }
    }
    g
}

fn floor_of(unit: &str) -> Option<usize> {
    FLOORS.iter().position(|(_, units)| units.contains(&unit))
}

/// Cycles in `g`: a depth-first search that reports the cycle closed by
/// each back edge it meets (each rotated to start at its smallest unit).
/// Linear in the graph's size; a graph with cycles yields at least one.
fn cycles(g: &Graph) -> BTreeSet<Vec<String>> {
    fn walk(
        g: &Graph,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut c: Vec<String> = stack[pos..].to_vec();
            let min = c.iter().enumerate().min_by_key(|(_, n)| *n).unwrap().0;
            c.rotate_left(min);
            found.insert(c);
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        if let Some(next) = g.get(node) {
            for to in next.keys() {
                walk(g, to, stack, done, found);
            }
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for start in g.keys() {
        walk(g, start, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn every_unit_has_a_floor() {
    let g = graph();
    let missing: Vec<_> = g.keys().filter(|u| floor_of(u).is_none()).collect();
    assert!(
        missing.is_empty(),
        "give these modules a floor in tests/layering.rs FLOORS: {missing:?}"
    );
    for (unit, file) in LEAVES {
        assert!(
            src_dir().join(file).is_file(),
            "leaf {unit}: src/{file} is gone"
        );
    }
}

#[test]
fn no_import_cycles() {
    let g = graph();
    let found = cycles(&g);
    let mut report = String::new();
    for c in &found {
        let mut steps = Vec::new();
        for (i, from) in c.iter().enumerate() {
            let to = &c[(i + 1) % c.len()];
            let files = &g[from][to];
            steps.push(format!(
                "{from} -> {to} ({})",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        report.push_str(&format!("\n  cycle: {}", steps.join("; ")));
    }
    assert!(found.is_empty(), "import cycles between modules:{report}");
}

#[test]
fn no_upward_imports() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, tos) in &g {
        let Some(f) = floor_of(from) else { continue };
        for (to, files) in tos {
            let Some(t) = floor_of(to) else {
                bad.push(format!("{from} -> {to}: `{to}` has no floor"));
                continue;
            };
            if t > f && !ALLOWED_UPWARD.iter().any(|(a, b, _)| a == from && b == to) {
                bad.push(format!(
                    "{from} ({}) -> {to} ({}) in {}",
                    FLOORS[f].0,
                    FLOORS[t].0,
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports from a higher floor (move the item down, or add to ALLOWED_UPWARD with a why):\n  {}",
        bad.join("\n  ")
    );
    for (from, to, why) in ALLOWED_UPWARD {
        assert!(!why.is_empty(), "ALLOWED_UPWARD {from} -> {to} needs a why");
        assert!(
            g.get(*from).is_some_and(|t| t.contains_key(*to)),
            "ALLOWED_UPWARD {from} -> {to} no longer happens: remove it"
        );
    }
}

/// The parser itself: groups, nested groups, inline paths, leaves.
#[test]
fn the_path_reader_sees_every_form() {
    assert_eq!(
        paths_after("config::Config;"),
        vec![vec!["config", "Config"]]
    );
    assert_eq!(
        paths_after("{config::Config, store::{Store, x::Y}, shutdown};"),
        vec![
            vec!["config", "Config"],
            vec!["store", "Store"],
            vec!["store", "x", "Y"],
            vec!["shutdown"],
        ]
    );
    assert_eq!(
        paths_after("governor::{settings::GovernorSection, Governor};"),
        vec![
            vec!["governor", "settings", "GovernorSection"],
            vec!["governor", "Governor"],
        ]
    );
    assert_eq!(
        unit_of_path("governor", &["settings", "X"]),
        "governor::settings"
    );
    assert_eq!(unit_of_path("governor", &["Governor"]), "governor");
    assert_eq!(unit_of("governor/settings.rs"), "governor::settings");
    assert_eq!(unit_of("smtp/session.rs"), "smtp");
    assert_eq!(unit_of("config.rs"), "config");
}

/// The cycle search finds a loop through three units and passes a diamond.
#[test]
fn the_cycle_search_finds_loops_only() {
    fn g(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .entry(b.to_string())
                .or_default()
                .insert(format!("{a}.rs"));
            g.entry(b.to_string()).or_default();
        }
        g
    }
    let diamond = g(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]);
    assert!(cycles(&diamond).is_empty());
    let looped = g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    assert_eq!(
        cycles(&looped).into_iter().collect::<Vec<_>>(),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}
