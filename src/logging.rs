//! The gateway's log on standard error: text lines or JSON lines
//! (`[server] log_format`), filtered by `log_level` (`RUST_LOG` overrides).
//!
//! - Times are RFC 3339 in UTC with a `Z` (`2026-11-29T08:00:00.123456Z`).
//! - Text lines are coloured only when standard error is a terminal (and
//!   `NO_COLOR` is not set): journald and files get plain text.
//! - A JSON line is one object whose keys are unique: `timestamp`, `level`,
//!   `target`, the event's fields (`message` first), then `span` and `spans`
//!   (the SMTP session an event belongs to). An event field that would
//!   repeat one of those keys is written as `field.NAME` instead of being
//!   dropped by the reader; the code itself names no field that way (the
//!   next hop of a delivery is `next_hop`, not `target`).
//!
//! The mail log proper (one line per accepted message and per recipient
//! result) is in [`crate::maillog`].

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::live::Commit;
use crate::config::{Config, ConfigProblem, Live, LogFormat};

/// The keys every JSON line has of its own.
pub const RESERVED_KEYS: &[&str] = &["timestamp", "level", "target", "span", "spans"];

/// The filter of the installed subscriber, replaceable on reload.
type FilterHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Set by [`init`]; None when `RUST_LOG` chose the filter (it overrides
/// `log_level`, at start and on reload alike).
static FILTER: OnceLock<Option<FilterHandle>> = OnceLock::new();

/// Why a log filter was not put in force.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The text is not a filter.
    #[error("not a log filter: {0}")]
    Parse(#[from] tracing_subscriber::filter::ParseError),
    /// The subscriber is gone or was never installed here.
    #[error("the log filter cannot be replaced: {0}")]
    Reload(#[from] tracing_subscriber::reload::Error),
}

/// Installs the subscriber for `format` with the filter `level` (unless
/// `RUST_LOG` is set); a second call does nothing.
pub fn init(format: LogFormat, level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, from_env) = match EnvFilter::try_from_default_env() {
        Ok(f) => (f, true),
        Err(_) => (EnvFilter::new(level), false),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
    });
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour())
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
        .try_init()
        .is_ok();
    if installed {
        let _ = FILTER.set((!from_env).then_some(handle));
    }
}

/// Makes the log filter follow `server.log_level` on each reload (a filter
/// that does not parse refuses the reload).
pub fn follow(live: &Live) {
    live.follow(Box::new(|cfg: &Config| {
        let level = cfg.server.log_level.clone();
        EnvFilter::try_new(&level)
            .map_err(|e| vec![ConfigProblem::new("server.log_level", e.to_string())])?;
        Ok(Box::new(move || {
            if let Err(e) = set_level(&level) {
                tracing::error!(error = %e, "log filter not replaced");
            }
        }) as Commit)
    }));
}

/// Puts the filter `level` in force; `Ok(false)` when `RUST_LOG` governs
/// instead, or no subscriber of ours is installed.
pub fn set_level(level: &str) -> Result<bool, FilterError> {
    let filter = EnvFilter::try_new(level)?;
    match FILTER.get() {
        Some(Some(handle)) => {
            handle.reload(filter)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Colour for a terminal only; `NO_COLOR` (any value) turns it off.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Unix milliseconds as RFC 3339 in UTC, to the second (`2026-11-29T08:00:00Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The JSON event format: one object a line, keys unique (see the module docs).
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = JsonObject::default();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        line.put("timestamp", &serde_json::Value::String(now));
        line.put("level", &serde_json::Value::from(meta.level().as_str()));
        // A `log` record (from a library using the log crate) names its
        // own target.
        let target = fields
            .log_target
            .take()
            .unwrap_or_else(|| meta.target().into());
        line.put("target", &target);
        if let Some(m) = fields.message.take() {
            line.put("message", &m);
        }
        for (name, value) in &fields.rest {
            line.put(name, value);
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<serde_json::Value> = scope
                .from_root()
                .map(|span| {
                    let mut obj = span
                        .extensions()
                        .get::<FormattedFields<N>>()
                        .and_then(|f| {
                            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(f)
                                .ok()
                        })
                        .unwrap_or_default();
                    obj.insert("name".into(), span.name().into());
                    serde_json::Value::Object(obj)
                })
                .collect();
            if let Some(current) = spans.last() {
                line.put("span", current);
                line.put("spans", &serde_json::Value::Array(spans.clone()));
            }
        }
        writeln!(writer, "{}}}", line.text)
    }
}

/// A JSON object written key by key, in order, never with a key twice.
#[derive(Default)]
struct JsonObject {
    text: String,
    keys: HashSet<String>,
}

impl JsonObject {
    fn put(&mut self, name: &str, value: &serde_json::Value) {
        let mut key = name.to_string();
        let mut n = 1;
        while self.keys.contains(&key) {
            n += 1;
            key = if n == 2 {
                format!("field.{name}")
            } else {
                format!("field.{name}.{n}")
            };
        }
        self.text.push(if self.keys.is_empty() { '{' } else { ',' });
        let _ = write!(
            self.text,
            "{}:{}",
            serde_json::Value::String(key.clone()),
            value
        );
        self.keys.insert(key);
    }
}

/// An event's fields as JSON values, in the order they were written.
#[derive(Default)]
struct Fields {
    message: Option<serde_json::Value>,
    /// `log.target` of a record from the log crate.
    log_target: Option<serde_json::Value>,
    rest: Vec<(String, serde_json::Value)>,
}

impl Fields {
    fn add(&mut self, field: &Field, value: serde_json::Value) {
        match field.name() {
            "message" if self.message.is_none() => self.message = Some(value),
            "log.target" => self.log_target = Some(value),
            // Where in a library a log record came from: noise here.
            "log.module_path" | "log.file" | "log.line" => {}
            name => self.rest.push((name.to_string(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.add(field, value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_never_written_twice() {
        let mut o = JsonObject::default();
        o.put("target", &"ugem::x".into());
        o.put("target", &"127.0.0.1:25".into());
        o.put("target", &"again".into());
        o.put("n", &3.into());
        let text = format!("{}}}", o.text);
        assert_eq!(
            text,
            r#"{"target":"ugem::x","field.target":"127.0.0.1:25","field.target.3":"again","n":3}"#
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    /// Lines written by the JSON subscriber while `f` runs.
    fn json_lines(f: impl FnOnce()) -> Vec<String> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn json_lines_keep_every_field_once() {
        let lines = json_lines(|| {
            let span = tracing::info_span!("smtp", session = "s1", peer = "127.0.0.1:4000");
            let _g = span.enter();
            tracing::warn!(
                target = "127.0.0.1:25",
                level = 3,
                n = 1.5,
                ok = true,
                "hello \"you\""
            );
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.starts_with(r#"{"timestamp":""#) && line.contains(r#""level":"WARN","target":"ugem::logging::tests","message":"hello \"you\"","field.target":"127.0.0.1:25","field.level":3,"n":1.5,"ok":true,"span":{"#),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 10, "{line}");
        assert_eq!(v["span"]["session"], "s1");
        assert_eq!(v["span"]["name"], "smtp");
        assert_eq!(v["spans"][0]["peer"], "127.0.0.1:4000");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z'), "{ts}");
        chrono::DateTime::parse_from_rfc3339(ts).unwrap();
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_ms(1_764_403_200_000), "2025-11-29T08:00:00Z");
    }
}
