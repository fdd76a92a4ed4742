//! `ugem queue ...`: the mail queue from the terminal, at the level of
//! Postfix's mailq/postsuper/postcat: a listing with each recipient's state
//! and last reason, bulk hold/release/delete/retry by filter with a dry run,
//! and a queued message's headers or text.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{CliError, Output, query, with_arrival_times};
use crate::admin::client::{AdminClient, segment};

/// `ugem queue ...`
#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Messages in the queue, oldest first, each with its recipients, their
    /// states and last reasons (like mailq); `--json` gives the full records.
    List {
        /// Only held messages.
        #[arg(long)]
        held: bool,
        /// Only messages of this registered domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only senders containing this text.
        #[arg(long)]
        sender: Option<String>,
        /// Only messages with a recipient at this domain.
        #[arg(long)]
        recipient_domain: Option<String>,
        /// Only messages in this state: active, deferred or held.
        #[arg(long)]
        state: Option<String>,
        /// Only messages that arrived longer ago than this (e.g. 2h).
        #[arg(long, value_parser = parse_age)]
        older_than: Option<humantime::Duration>,
        /// At most N messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Counts by state.
    Counts,
    /// One message: envelope, each recipient's state and last error; or
    /// its header section (--headers) or whole text (--body).
    Show {
        /// Queue id.
        id: String,
        /// Print the message's header section.
        #[arg(long, conflicts_with = "body")]
        headers: bool,
        /// Print the message's whole text (headers and body).
        #[arg(long)]
        body: bool,
        /// Print at most this many octets of it (at most 1 MiB).
        #[arg(long, default_value_t = 65536)]
        max_bytes: usize,
    },
    /// Make a message due now, or every message the filter selects.
    Retry {
        /// Queue id (or select by filter).
        id: Option<String>,
        #[command(flatten)]
        filter: BulkFilter,
    },
    /// Start a message over (Postfix's postsuper -r): released if held, due at
    /// once, its retry backoff reset; or every message the filter selects.
    Requeue {
        /// Queue id (or select by filter).
        id: Option<String>,
        #[command(flatten)]
        filter: BulkFilter,
    },
    /// Keep a message from being sent, or every message the filter selects.
    Hold {
        /// Queue id (or select by filter).
        id: Option<String>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        filter: BulkFilter,
    },
    /// Let a held message go (due at once), or every held message the
    /// filter selects.
    Release {
        /// Queue id (or select by filter).
        id: Option<String>,
        #[command(flatten)]
        filter: BulkFilter,
    },
    /// Remove a message without sending it, or every message the filter
    /// selects (audited).
    Delete {
        /// Queue id (or select by filter).
        id: Option<String>,
        #[command(flatten)]
        filter: BulkFilter,
    },
}

/// Which messages a bulk operation takes: every filter given must match.
#[derive(Args, Debug, Default)]
pub struct BulkFilter {
    /// Messages of this registered domain (the sender's, for outbound mail).
    #[arg(long)]
    pub domain: Option<String>,
    /// Messages from this sender address (the whole address).
    #[arg(long)]
    pub sender: Option<String>,
    /// Messages with a recipient at this domain.
    #[arg(long)]
    pub recipient_domain: Option<String>,
    /// Messages in this state: active, deferred or held.
    #[arg(long)]
    pub state: Option<String>,
    /// Messages that arrived longer ago than this (e.g. 30m, 2h, 3days).
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<humantime::Duration>,
    /// Every message (a bulk operation without a filter needs it).
    #[arg(long)]
    pub all: bool,
    /// Print what would be affected; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl BulkFilter {
    fn is_bulk(&self) -> bool {
        self.domain.is_some()
            || self.sender.is_some()
            || self.recipient_domain.is_some()
            || self.state.is_some()
            || self.older_than.is_some()
            || self.all
            || self.dry_run
    }

    fn body(&self) -> Value {
        json!({
            "domain": self.domain,
            "sender": self.sender,
            "recipient_domain": self.recipient_domain,
            "state": self.state,
            "older_than": self.older_than.map(|d| d.to_string()),
            "all": self.all,
            "dry_run": self.dry_run,
        })
    }
}

fn parse_age(s: &str) -> Result<humantime::Duration, String> {
    s.parse::<humantime::Duration>()
        .map_err(|e| format!("`{s}` is not a duration (e.g. 30m, 2h): {e}"))
}

/// Runs a queue verb and prints its answer.
pub fn run(c: &AdminClient, cmd: QueueCmd, as_json: bool) -> Result<(), CliError> {
    let out = match cmd {
        QueueCmd::List {
            held,
            domain,
            sender,
            recipient_domain,
            state,
            older_than,
            limit,
        } => {
            let before = older_than.map(|age| {
                let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                ugem_queue::unix_ms().saturating_sub(age).to_string()
            });
            let v = c.get(&format!(
                "/api/v1/queue{}",
                query(&[
                    ("held", held.then(|| "true".to_string())),
                    ("domain", domain),
                    ("sender", sender),
                    ("recipient_domain", recipient_domain),
                    ("state", state),
                    ("arrived_before_ms", before),
                    ("limit", Some(limit.to_string())),
                ])
            ))?;
            if as_json {
                Output::Record(with_arrival_times(v)).print(true);
            } else {
                print!("{}", mailq(&v));
            }
            return Ok(());
        }
        QueueCmd::Counts => Output::Record(c.get("/api/v1/queue/counts")?),
        QueueCmd::Show {
            id,
            headers,
            body,
            max_bytes,
        } => {
            if !headers && !body {
                Output::Record(c.get(&format!("/api/v1/queue/{}", segment(&id)))?)
            } else {
                let part = if headers { "headers" } else { "body" };
                let v = c.get(&format!(
                    "/api/v1/queue/{}/message?part={part}&max_bytes={max_bytes}",
                    segment(&id)
                ))?;
                if as_json {
                    Output::Record(v).print(true);
                } else {
                    let text = v["text"].as_str().unwrap_or_default();
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(text.as_bytes());
                    let _ = stdout.flush();
                    if v["truncated"].as_bool() == Some(true) {
                        eprintln!(
                            "ugem: shown {} of {} octets (--max-bytes)",
                            v["shown"], v["size"]
                        );
                    }
                }
                return Ok(());
            }
        }
        QueueCmd::Retry { id, filter } => match single(id, &filter, "retry")? {
            Some(id) => Output::Record(
                c.post(&format!("/api/v1/queue/{}/retry", segment(&id)), &json!({}))?,
            ),
            None => return bulk(c, "retry", filter.body(), as_json),
        },
        QueueCmd::Requeue { id, filter } => match single(id, &filter, "requeue")? {
            Some(id) => Output::Record(c.post(
                &format!("/api/v1/queue/{}/requeue", segment(&id)),
                &json!({}),
            )?),
            None => return bulk(c, "requeue", filter.body(), as_json),
        },
        QueueCmd::Hold { id, reason, filter } => match single(id, &filter, "hold")? {
            Some(id) => Output::Record(c.post(
                &format!("/api/v1/queue/{}/hold", segment(&id)),
                &json!({ "reason": reason }),
            )?),
            None => {
                let mut body = filter.body();
                body["reason"] = json!(reason);
                return bulk(c, "hold", body, as_json);
            }
        },
        QueueCmd::Release { id, filter } => match single(id, &filter, "release")? {
            Some(id) => Output::Record(c.post(
                &format!("/api/v1/queue/{}/release", segment(&id)),
                &json!({}),
            )?),
            None => return bulk(c, "release", filter.body(), as_json),
        },
        QueueCmd::Delete { id, filter } => match single(id, &filter, "delete")? {
            Some(id) => Output::Record(c.delete(&format!("/api/v1/queue/{}", segment(&id)))?),
            None => return bulk(c, "delete", filter.body(), as_json),
        },
    };
    out.print(as_json);
    Ok(())
}

/// The id of a single-message form; None for a bulk one. An id and a
/// filter together are refused, and so is neither (the API refuses a bulk
/// call without a filter too, unless it says `--all`).
fn single(id: Option<String>, f: &BulkFilter, verb: &str) -> Result<Option<String>, CliError> {
    match (id, f.is_bulk()) {
        (Some(_), true) => Err(CliError::Usage(format!(
            "give `queue {verb}` a queue id or filters, not both"
        ))),
        (Some(id), false) => Ok(Some(id)),
        (None, true) => Ok(None),
        (None, false) => Err(CliError::Usage(format!(
            "give `queue {verb}` a queue id, filters (--domain, --sender, --recipient-domain, \
             --state, --older-than), or --all for every message"
        ))),
    }
}

fn bulk(c: &AdminClient, op: &str, body: Value, as_json: bool) -> Result<(), CliError> {
    let v = c.post(&format!("/api/v1/queue/bulk/{op}"), &body)?;
    if as_json {
        Output::Record(v).print(true);
        return Ok(());
    }
    let count = v["count"].as_u64().unwrap_or_default();
    let done = match op {
        "hold" => "held",
        "release" => "released",
        "delete" => "deleted",
        _ => "made due now",
    };
    let filter = v["filter"].as_str().unwrap_or_default();
    if v["dry_run"].as_bool() == Some(true) {
        println!("dry run, nothing changed: {op} would take {count} message(s) ({filter})");
    } else {
        println!("{done}: {count} message(s) ({filter})");
    }
    for id in v["ids"].as_array().into_iter().flatten() {
        println!("{}", id.as_str().unwrap_or_default());
    }
    Ok(())
}

/// The listing as mailq prints it: a line per message (id, arrival, size,
/// state, direction, sender; the arrival second, where the table had it), the hold reason, then a line per recipient with its
/// state and last reason; a total at the end.
fn mailq(v: &Value) -> String {
    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return "queue is empty\n".into();
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let id_width = items
        .iter()
        .map(|e| text(&e["id"]).len())
        .max()
        .unwrap_or(2)
        .max(2);
    let mut out = format!(
        "{:<id_width$}  {:<20}  {:>8}  {:<8}  {:<8}  SENDER / RECIPIENTS\n",
        "ID", "ARRIVED", "SIZE", "STATE", "DIR"
    );
    let mut bytes = 0u64;
    for e in items {
        let size = e["size"].as_u64().unwrap_or_default();
        bytes += size;
        let arrived = e["arrived_at_ms"]
            .as_u64()
            .map(crate::logging::rfc3339_ms)
            .unwrap_or_default();
        let state = if !e["held"].is_null() {
            "held"
        } else if e["attempts"].as_u64().unwrap_or_default() > 0 {
            "deferred"
        } else {
            "active"
        };
        let sender = text(&e["sender"]);
        let sender = if sender.is_empty() {
            "<>".into()
        } else {
            sender
        };
        out.push_str(&format!(
            "{:<id_width$}  {arrived:<20}  {size:>8}  {state:<8}  {:<8}  {sender}\n",
            text(&e["id"]),
            text(&e["direction"])
        ));
        let indent = "    ";
        if let Some(why) = e["held"].as_str() {
            out.push_str(&format!("{indent}(held: {})\n", one_line(why)));
        } else if state == "deferred"
            && let Some(next) = e["next_attempt_ms"].as_u64()
        {
            out.push_str(&format!(
                "{indent}(next attempt {}, {} so far)\n",
                crate::logging::rfc3339_ms(next),
                e["attempts"]
            ));
        }
        for r in e["recipients"].as_array().into_iter().flatten() {
            let mut line = format!("{indent}{}  {}", text(&r["address"]), text(&r["status"]));
            if let Some(why) = r["last_error"].as_str() {
                line.push_str(&format!("  ({})", one_line(why)));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.push_str(&format!("-- {} message(s), {bytes} octets\n", items.len()));
    out
}

/// A reason on one line, whatever a remote server put in it.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
