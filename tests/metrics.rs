//! /metrics end to end: real traffic through the binary to a loopback sink,
//! the exposition read with a parser of its own (prometheus-parse); and the
//! Prometheus rules and Grafana dashboard in contrib/, checked with promtool
//! and against the names a running gateway exposes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fake_mx::{Behaviour, FakeMx};
use common::*;
use prometheus_parse::{Scrape, Value};

const CLERK: &str = "clerk@agency.example.kz";

/// Destination domains with a series of their own (src/metrics/destinations.rs).
const DESTINATION_LABELS: usize = ugem::metrics::DESTINATION_LABELS;

fn scrape(gw: &Gateway) -> (String, Scrape) {
    let (st, text) = http(gw.admin, "GET", "/metrics", None, None);
    assert_eq!(st, 200, "{text}");
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse /metrics");
    (text, parsed)
}

/// The value of the sample `name` whose labels include `labels`; None when
/// there is none.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a scalar: {other:?}"),
        })
}

fn get(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(s, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing"))
}

/// The histogram `name` (with `labels`): its buckets must rise, end in
/// +Inf at `_count`, and the count is returned.
fn histogram_count(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let h = s
        .samples
        .iter()
        .find(|x| {
            x.metric == name
                && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
                && matches!(x.value, Value::Histogram(_))
        })
        .unwrap_or_else(|| panic!("histogram {name}{labels:?} missing"));
    let Value::Histogram(buckets) = &h.value else {
        unreachable!()
    };
    let count = get(s, &format!("{name}_count"), labels);
    let mut last = 0.0;
    for b in buckets {
        assert!(
            b.count >= last,
            "{name}: buckets must not fall: {buckets:?}"
        );
        last = b.count;
    }
    let inf = buckets.last().expect("buckets");
    assert!(inf.less_than.is_infinite(), "{buckets:?}");
    assert_eq!(inf.count, count, "{name}: +Inf bucket is the count");
    count
}

/// Session outcomes as counted, by outcome.
fn outcomes(s: &Scrape) -> BTreeMap<String, f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == "ugem_smtp_session_outcomes_total")
        .map(|x| {
            let (Value::Untyped(v) | Value::Counter(v)) = x.value else {
                panic!("{x:?}")
            };
            (x.labels.get("outcome").unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn relayed_mail_shows_in_histograms_outcomes_destinations_and_process_gauges() {
    let sink = FakeMx::start(Behaviour::accept());
    let gw = Gateway::start(&format!(
        "[smtp]\ncommand_timeout = \"2s\"\n[delivery]\nmin_backoff = \"1s\"\n\
         [delivery.routes]\n\"*\" = \"{}\"\n\
         [governor]\nconnections_per_minute = 12\nburst_percent = 100\n",
        sink.addr()
    ));
    gw.register(AGENCY, &["127.0.0.1"]);

    // Three messages of one recipient each, one session each.
    const SINGLE: usize = 3;
    for i in 0..SINGLE {
        let mut s = Smtp::greeted(gw.smtp);
        let r = s.send_mail(
            CLERK,
            &[&format!("r{i}@sink.example")],
            "Subject: m\r\n\r\nx\r\n",
        );
        assert_eq!(r.code, 250, "{r:?}");
        s.expect("QUIT", 221);
    }
    // One message to more destination domains than get a label: with
    // sink.example, DESTINATION_LABELS + 3 + 1 domains, so 4 go to "other".
    let many: Vec<String> = (0..DESTINATION_LABELS + 3)
        .map(|i| format!("u@d{i:02}.example"))
        .collect();
    let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut s = Smtp::greeted(gw.smtp);
    assert_eq!(
        s.send_mail(CLERK, &many_refs, "Subject: many\r\n\r\nx\r\n")
            .code,
        250
    );
    s.expect("QUIT", 221);
    let recipients = SINGLE + many.len();
    let messages = SINGLE + 1;

    // Sessions that queue nothing, one of each outcome the test can cause.
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect("MAIL FROM:<x@example.org>", 250);
    s.expect("RCPT TO:<y@example.net>", 550);
    s.expect("QUIT", 221); // refused_rcpt
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("MAIL FROM:<x@example.org>", 503);
    s.expect("QUIT", 221); // refused_mail (no EHLO first)
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    s.expect("QUIT", 221); // quit_without_mail
    let mut s = Smtp::greeted(gw.smtp);
    s.expect("EHLO client.test.example", 250);
    drop(s); // disconnected
    let mut s = Smtp::greeted(gw.smtp);
    assert_eq!(s.reply().code, 421, "command_timeout = 2s"); // timeout

    // Connections until the per-IP rate refuses one (12 a minute; how
    // many are left depends on how fast the above went): refused_connect.
    let mut open = Vec::new();
    let refused = loop {
        let mut c = Smtp::connect(gw.smtp);
        let r = c.reply();
        if r.code == 421 {
            break r;
        }
        assert_eq!(r.code, 220, "{r:?}");
        assert!(open.len() < 30, "never refused");
        open.push(c);
    };
    assert!(refused.text().contains("connections/minute"), "{refused:?}");
    let held_open = open.len();
    drop(open); // disconnected, each

    let sessions = messages + 5 + held_open + 1;
    assert!(
        wait_for(20, || {
            let (_, m) = scrape(&gw);
            value(
                &m,
                "ugem_delivery_recipients_total",
                &[("class", "delivered")],
            ) == Some(recipients as f64)
                && outcomes(&m).values().sum::<f64>() == sessions as f64
        }),
        "deliveries or session ends missing:\n{}",
        scrape(&gw).0
    );
    assert_eq!(sink.messages().len(), messages);
    let (text, m) = scrape(&gw);

    // One attempt per message (every domain routes to the sink: one
    // transaction), one residence per recipient.
    assert_eq!(
        histogram_count(&m, "ugem_delivery_attempt_duration_seconds", &[]),
        messages as f64
    );
    assert_eq!(
        histogram_count(
            &m,
            "ugem_queue_residence_seconds",
            &[("result", "delivered")]
        ),
        recipients as f64
    );
    assert!(get(&m, "ugem_delivery_attempt_duration_seconds_sum", &[]) > 0.0);

    let want: BTreeMap<String, f64> = [
        ("queued", messages as f64),
        ("refused_rcpt", 1.0),
        ("refused_mail", 1.0),
        ("quit_without_mail", 1.0),
        ("disconnected", 1.0 + held_open as f64),
        ("timeout", 1.0),
        ("refused_connect", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(outcomes(&m), want, "{text}");
    assert_eq!(get(&m, "ugem_smtp_sessions_total", &[]), sessions as f64);
    assert_eq!(get(&m, "ugem_smtp_sessions_active", &[]), 0.0);
    assert_eq!(
        get(&m, "ugem_smtp_messages_accepted_total", &[]),
        messages as f64
    );
    assert_eq!(
        get(
            &m,
            "ugem_governor_throttles_total",
            &[("limit", "connections_per_minute")]
        ),
        1.0
    );

    // Per destination: DESTINATION_LABELS domains by name, the rest "other",
    // and together every recipient.
    let by_domain: BTreeMap<String, f64> = m
        .samples
        .iter()
        .filter(|x| x.metric == "ugem_delivery_destination_recipients_total")
        .map(|x| {
            assert_eq!(x.labels.get("class"), Some("delivered"), "{x:?}");
            let (Value::Untyped(v) | Value::Counter(v)) = x.value else {
                panic!("{x:?}")
            };
            (x.labels.get("domain").unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(by_domain.len(), DESTINATION_LABELS + 1, "{by_domain:?}");
    assert_eq!(by_domain.get("sink.example"), Some(&(SINGLE as f64)));
    assert_eq!(by_domain.get("other"), Some(&4.0), "{by_domain:?}");
    assert_eq!(by_domain.values().sum::<f64>(), recipients as f64);

    // Build and process.
    let build = m
        .samples
        .iter()
        .find(|x| x.metric == "ugem_build_info")
        .expect("ugem_build_info");
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    let target = build.labels.get("target").unwrap();
    assert!(target.starts_with(std::env::consts::ARCH), "{target}");
    assert_eq!(get(&m, "ugem_build_info", &[]), 1.0);
    let rss = get(&m, "process_resident_memory_bytes", &[]);
    assert!(rss > 1e6 && rss < 4e9, "{rss}");
    let fds = get(&m, "process_open_fds", &[]);
    assert!(
        fds >= 5.0 && fds <= get(&m, "process_max_fds", &[]),
        "{fds}"
    );
    // No gateway_addresses configured: the family is declared, without samples.
    assert!(text.contains("# TYPE ugem_gateway_listed gauge"), "{text}");
    assert!(value(&m, "ugem_gateway_listed", &[]).is_none());
    // Names that existed before prometheus-client still do.
    for name in [
        "ugem_smtp_accepted_bytes_total",
        "ugem_queue_bytes",
        "ugem_queue_oldest_age_seconds",
        "ugem_notification_backlog",
        "ugem_audit_records",
        "ugem_audit_bytes",
    ] {
        assert!(value(&m, name, &[]).is_some(), "{name} missing:\n{text}");
    }

    // contrib/ names only metrics the gateway exposes (with this traffic).
    let exposed = exposed_names(&text, &m);
    for (file, names) in [
        ("contrib/grafana/ugem-dashboard.json", dashboard_metrics()),
        ("contrib/prometheus/ugem-alerts.yml", rules_metrics()),
    ] {
        assert!(!names.is_empty(), "{file}: no metric found");
        let unknown: Vec<_> = names.difference(&exposed).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics the gateway does not expose: {unknown:?}\nexposed: {exposed:?}"
        );
    }
}

/// Every sample name in the scrape, and those the `# TYPE` lines promise
/// (a counter family's `_total`, a histogram's `_bucket`/`_sum`/`_count`)
/// for families that had no sample yet.
fn exposed_names(text: &str, m: &Scrape) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = m.samples.iter().map(|s| s.metric.clone()).collect();
    for s in &m.samples {
        if matches!(s.value, Value::Histogram(_)) {
            names.insert(format!("{}_bucket", s.metric));
        }
    }
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if (w.next(), w.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(family), Some(kind)) = (w.next(), w.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    }
    names
}

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The metric names (ugem's and the process's) in a PromQL expression.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("ugem_") || word.starts_with("process_") {
                into.insert(word.clone());
            }
            word.clear();
        }
    }
}

/// Every PromQL expression of the dashboard (panel targets and template
/// queries), Grafana's variables as they would be substituted.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(contrib("contrib/grafana/ugem-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    assert!(json["panels"].as_array().is_some_and(|p| !p.is_empty()));
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&json, &mut out);
    out
}

fn dashboard_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in dashboard_exprs() {
        metric_names(&e, &mut names);
    }
    names
}

fn rules_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(contrib("contrib/prometheus/ugem-alerts.yml")).unwrap();
    let mut names = BTreeSet::new();
    // Comments, expressions and annotations alike: a name said anywhere in
    // the file must exist.
    metric_names(&text, &mut names);
    names
}

/// `name` from Debian's `prometheus` package (promtool, prometheus);
/// under CI its absence is a failure, elsewhere a skip with a note.
fn prometheus_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing (Debian package `prometheus`; .ci/run installs it)"
        );
        eprintln!("SKIPPED: {name} not installed (apt-get install prometheus)");
    }
    found
}

fn promtool() -> Option<PathBuf> {
    prometheus_tool("promtool")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run promtool");
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_alert_rules_and_their_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = contrib("contrib/prometheus");
    run(Command::new(&promtool)
        .args(["check", "rules", "ugem-alerts.yml"])
        .current_dir(&dir));
    // The rules' unit tests: each alert fires on the series it is for, and
    // not before its time.
    run(Command::new(&promtool)
        .args(["test", "rules", "ugem-alerts.test.yml"])
        .current_dir(&dir));
}

#[test]
fn promtool_parses_every_dashboard_query() {
    let Some(promtool) = promtool() else { return };
    // promtool parses PromQL only inside rules: one recording rule per
    // query, with Grafana's variables replaced as Grafana would.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let exprs = dashboard_exprs();
    assert!(exprs.len() > 10, "{exprs:?}");
    for (i, e) in exprs.iter().enumerate() {
        let e = if let Some(inner) = e
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
        {
            // A template query: its first argument is the series selector.
            inner.split(',').next().unwrap().trim().to_string()
        } else {
            e.replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
        };
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.yml");
    std::fs::write(&file, &rules).unwrap();
    run(Command::new(&promtool).arg("check").arg("rules").arg(&file));
}

/// A Prometheus server of our own on loopback; killed when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second as job "ugem", with the contrib rules
    /// evaluated every second.
    fn start(bin: &Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let rules = contrib("contrib/prometheus/ugem-alerts.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [{rules:?}]\n\
                 scrape_configs:\n  - job_name: ugem\n    static_configs: [{{targets: [\"{target}\"]}}]\n"
            ),
        )
        .unwrap();
        // A free port: bound, then let go for Prometheus to take.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        assert!(
            wait_for(30, || std::net::TcpStream::connect(addr).is_ok()
                && http(addr, "GET", "/-/ready", None, None).0 == 200),
            "prometheus did not get ready"
        );
        p
    }

    /// GET `path` of the HTTP API, as JSON.
    fn api(&self, path: &str) -> serde_json::Value {
        let (st, body) = http(self.addr, "GET", path, None, None);
        assert_eq!(st, 200, "{path}: {body}");
        serde_json::from_str(&dechunk(&body)).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// The instant vector of a PromQL query.
    fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let v = self.api(&format!("/api/v1/query?query={}", url_encode(q)));
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body of a chunked HTTP response (Go answers larger ones so).
fn dechunk(body: &str) -> String {
    if body.starts_with('{') {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn prometheus_scrapes_the_gateway_and_evaluates_the_rules() {
    let Some(bin) = prometheus_tool("prometheus") else {
        return;
    };
    let sink = FakeMx::start(Behaviour::accept());
    let gw = Gateway::start(&format!(
        "[delivery]\nmin_backoff = \"1s\"\n[delivery.routes]\n\"*\" = \"{}\"\n",
        sink.addr()
    ));
    gw.register(AGENCY, &["127.0.0.1"]);
    let mut s = Smtp::greeted(gw.smtp);
    assert_eq!(
        s.send_mail(CLERK, &["a@sink.example"], "Subject: m\r\n\r\nx\r\n")
            .code,
        250
    );
    s.expect("QUIT", 221);
    assert!(wait_for(20, || sink.messages().len() == 1));

    let prom = Prometheus::start(&bin, gw.admin);
    // Prometheus's own OpenMetrics parser took the scrape: up, and the
    // samples are there under their names.
    assert!(
        wait_for(30, || {
            prom.query("ugem_queue_residence_seconds_count")
                .first()
                .is_some_and(|r| r["value"][1] == "1")
        }),
        "no scrape: {}",
        prom.api("/api/v1/targets")
    );
    let targets = prom.api("/api/v1/targets");
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
    let build = prom.query("ugem_build_info");
    assert_eq!(
        build[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build:?}"
    );
    let p50 = prom.query(
        "histogram_quantile(0.5, sum by (le) (ugem_delivery_attempt_duration_seconds_bucket))",
    );
    let p50: f64 = p50[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p50 > 0.0 && p50 <= 300.0, "{p50}");
    assert_eq!(prom.query("process_open_fds").len(), 1);

    // Every alert rule evaluates without error on the real series, and
    // none fires for a healthy gateway.
    assert!(
        wait_for(30, || {
            let rules = prom.api("/api/v1/rules");
            let all: Vec<&serde_json::Value> = rules["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            !all.is_empty()
                && all.iter().all(|r| {
                    assert_ne!(r["health"], "err", "{r}");
                    r["health"] == "ok"
                })
        }),
        "rules not evaluated: {}",
        prom.api("/api/v1/rules")
    );
    let firing = prom.query("ALERTS{alertstate=\"firing\"}");
    assert!(firing.is_empty(), "{firing:?}");
}
