//! Queue tools beyond one id: hold, release, delete and retry by filter
//! (`/api/v1/queue/bulk/...`), and a queued message's text
//! (`/api/v1/queue/{id}/message`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use ugem_queue::{Envelope, ListFilter, MessageState, QueueId};

use super::super::{AdminState, ApiError, Authed, JsonBody, audited_blocking, audited_blocking_as};
use super::{block_on, parse_queue_id};

/// What a bulk call does to the messages its filter selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BulkOp {
    Hold,
    Release,
    Delete,
    Retry,
    Requeue,
}

impl BulkOp {
    fn name(self) -> &'static str {
        match self {
            BulkOp::Hold => "hold",
            BulkOp::Release => "release",
            BulkOp::Delete => "delete",
            BulkOp::Retry => "retry",
            BulkOp::Requeue => "requeue",
        }
    }

    /// Whether the operation changes `env` (what a dry run counts): hold
    /// leaves held mail its reason, release takes only held mail, retry
    /// leaves held mail and mail being delivered right now.
    fn applies(self, env: &Envelope, now_ms: u64) -> bool {
        match self {
            BulkOp::Hold => env.held.is_none(),
            BulkOp::Release => env.held.is_some(),
            BulkOp::Delete => true,
            BulkOp::Retry => env.held.is_none() && !env.is_leased(now_ms),
            BulkOp::Requeue => !env.is_leased(now_ms),
        }
    }

    /// The mail log's words for a message it touched.
    fn logged(self) -> &'static str {
        match self {
            BulkOp::Hold => "held by staff",
            BulkOp::Release => "released by staff",
            BulkOp::Delete => "deleted by staff",
            BulkOp::Retry => "retry by staff",
            BulkOp::Requeue => "requeued by staff",
        }
    }
}

/// Body of `POST /api/v1/queue/bulk/{hold,release,delete,retry}`: every
/// filter given must match; with none, `all` must say that every message
/// is meant. Unknown keys are refused, so a misspelt filter never widens
/// the selection to everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// The registered domain the message matched (the sender's, for
    /// outbound mail), case-insensitive.
    #[serde(default)]
    pub domain: Option<String>,
    /// The sender address, whole and case-insensitive.
    #[serde(default)]
    pub sender: Option<String>,
    /// A recipient's domain, case-insensitive.
    #[serde(default)]
    pub recipient_domain: Option<String>,
    /// active, deferred or held.
    #[serde(default)]
    pub state: Option<MessageState>,
    /// Arrived longer ago than this (humantime: `2h`, `30m`, `1day`).
    #[serde(default)]
    pub older_than: Option<String>,
    /// Every message (required when no filter is given).
    #[serde(default)]
    pub all: bool,
    /// Only say which messages would be affected.
    #[serde(default)]
    pub dry_run: bool,
    /// For hold: why (shown in `queue show`).
    #[serde(default)]
    pub reason: Option<String>,
}

impl BulkBody {
    fn filters(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let text = [
            ("domain", &self.domain),
            ("sender", &self.sender),
            ("recipient_domain", &self.recipient_domain),
        ];
        for (k, v) in text {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        if let Some(s) = self.state {
            out.push(("state", state_name(s).into()));
        }
        if let Some(o) = &self.older_than {
            out.push(("older_than", o.clone()));
        }
        out
    }

    /// The filter as the audit record and the answer name it.
    fn describe(&self) -> String {
        let f = self.filters();
        let mut text = if f.is_empty() {
            if self.all { "all" } else { "no filter" }.to_string()
        } else {
            f.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if self.dry_run {
            text.push_str(" (dry run)");
        }
        text
    }

    fn selector(&self, now_ms: u64) -> Result<Selector, ApiError> {
        let filters = self.filters();
        if filters.is_empty() && !self.all {
            return Err(ApiError::bad_request(
                "a bulk operation needs a filter (domain, sender, recipient_domain, state, \
                 older_than), or `all` to mean every message",
            ));
        }
        if !filters.is_empty() && self.all {
            return Err(ApiError::bad_request(
                "`all` means every message: give it or filters, not both",
            ));
        }
        if let Some((k, _)) = filters.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(ApiError::bad_request(format!("filter `{k}` is empty")));
        }
        let arrived_before_ms = match &self.older_than {
            None => None,
            Some(text) => {
                let age = humantime::parse_duration(text.trim()).map_err(|e| {
                    ApiError::bad_request(format!("older_than `{text}` is not a duration: {e}"))
                })?;
                let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                Some(now_ms.saturating_sub(age))
            }
        };
        Ok(Selector {
            filter: ListFilter {
                domain: self.domain.clone(),
                state: self.state,
                recipient_domain: self.recipient_domain.clone(),
                arrived_before_ms,
                ..ListFilter::default()
            },
            sender: self.sender.clone(),
        })
    }
}

fn state_name(s: MessageState) -> &'static str {
    match s {
        MessageState::Active => "active",
        MessageState::Deferred => "deferred",
        MessageState::Held => "held",
    }
}

/// Which messages a bulk call selects.
struct Selector {
    filter: ListFilter,
    /// The whole sender address (the list's `sender` is a substring).
    sender: Option<String>,
}

impl Selector {
    fn matches(&self, env: &Envelope) -> bool {
        self.filter.matches(env)
            && self
                .sender
                .as_deref()
                .is_none_or(|s| env.sender.eq_ignore_ascii_case(s.trim()))
    }
}

async fn bulk(
    st: AdminState,
    who: Authed,
    op: BulkOp,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let note = who.note.clone();
    let parsed: Result<BulkBody, ApiError> = body.or_default();
    let described = match &parsed {
        Ok(b) => b.describe(),
        Err(_) => "invalid filter".to_string(),
    };
    let target = {
        let described = described.clone();
        move |r: &Result<Vec<QueueId>, ApiError>| match r {
            Ok(ids) => format!("{described}: {} message(s)", ids.len()),
            Err(_) => described,
        }
    };
    let dry_run = parsed.as_ref().is_ok_and(|b| b.dry_run);
    let ids = audited_blocking_as(&st, &who, target, move |caller| {
        let b = parsed?;
        let now = ugem_queue::unix_ms();
        let sel = b.selector(now)?;
        if b.dry_run {
            return Ok(queue
                .list(&ListFilter::default())?
                .into_iter()
                .filter(|e| sel.matches(e) && op.applies(e, now))
                .map(|e| e.id)
                .collect());
        }
        let pred = move |e: &Envelope| sel.matches(e);
        let ids = match op {
            BulkOp::Hold => {
                let reason = b
                    .reason
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| format!("held by {}", caller.name));
                note.reason(&reason);
                block_on(queue.hold_matching(reason, pred))?
            }
            BulkOp::Release => block_on(queue.release_matching(pred))?,
            BulkOp::Delete => block_on(queue.delete_matching(pred))?,
            BulkOp::Retry => block_on(queue.retry_matching(now, pred))?,
            BulkOp::Requeue => block_on(queue.requeue_matching(now, pred))?,
        };
        for id in &ids {
            tracing::info!(target: crate::maillog::TARGET, queue_id = %id,
                actor = %caller.name, "{}", op.logged());
        }
        Ok(ids)
    })
    .await?;
    Ok(Json(json!({
        "action": op.name(),
        "dry_run": dry_run,
        "filter": described,
        "count": ids.len(),
        "ids": ids,
    })))
}

pub(super) async fn bulk_hold(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    bulk(st, who, BulkOp::Hold, body).await
}

pub(super) async fn bulk_release(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    bulk(st, who, BulkOp::Release, body).await
}

pub(super) async fn bulk_delete(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    bulk(st, who, BulkOp::Delete, body).await
}

pub(super) async fn bulk_retry(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    bulk(st, who, BulkOp::Retry, body).await
}

pub(super) async fn bulk_requeue(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    bulk(st, who, BulkOp::Requeue, body).await
}

/// `POST /api/v1/queue/{id}/requeue`: one message, released if held, due
/// at once, its backoff started over.
pub(super) async fn requeue_one(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let answer = audited_blocking(&st, &who, id.clone(), move |caller| {
        let qid = parse_queue_id(&id)?;
        if queue.get(qid)?.is_none() {
            return Err(ApiError::not_found(format!("no message {id} in the queue")));
        }
        let now = ugem_queue::unix_ms();
        let done = block_on(queue.requeue_matching(now, move |e| e.id == qid))?;
        if done.is_empty() {
            return Err(ApiError::conflict(format!(
                "message {id} is being delivered right now; it gets its result first"
            )));
        }
        tracing::info!(target: crate::maillog::TARGET, queue_id = %qid,
            actor = %caller.name, "{}", BulkOp::Requeue.logged());
        Ok(json!({ "ok": true, "id": qid, "action": "requeue" }))
    })
    .await?;
    Ok(Json(answer))
}

/// Most octets of a message one call returns unless asked for fewer.
const MESSAGE_MAX_BYTES: usize = 1 << 20;

/// Query of `GET /api/v1/queue/{id}/message`.
#[derive(Debug, Default, Deserialize)]
pub struct MessageQuery {
    /// `headers` (the header section) or `body` (the whole text, the default).
    #[serde(default)]
    pub part: Option<String>,
    /// Return at most this many octets (at most 1 MiB).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// The header section of a message: up to and including the empty line
/// that ends it (all of it when there is none).
fn header_section(msg: &[u8]) -> &[u8] {
    let crlf = msg.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = msg.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(msg.len()),
    };
    &msg[..end]
}

/// A queued message's header section or whole text, cut at `max_bytes`.
/// Operators only, and audited: it is someone's mail.
pub(super) async fn message(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    Query(q): Query<MessageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let target = format!("{id} {}", q.part.as_deref().unwrap_or("body"));
    let answer = audited_blocking(&st, &who, target, move |_| {
        let qid = parse_queue_id(&id)?;
        let headers = match q.part.as_deref() {
            None | Some("body") | Some("message") => false,
            Some("headers") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "part must be `headers` or `body`, not `{other}`"
                )));
            }
        };
        let msg = queue
            .body(qid)?
            .ok_or_else(|| ApiError::not_found(format!("no message {id} in the queue")))?;
        let part = if headers { header_section(&msg) } else { &msg };
        let max = q
            .max_bytes
            .unwrap_or(MESSAGE_MAX_BYTES)
            .min(MESSAGE_MAX_BYTES);
        let shown = &part[..part.len().min(max)];
        Ok(json!({
            "id": qid,
            "part": if headers { "headers" } else { "body" },
            "size": part.len(),
            "shown": shown.len(),
            "truncated": shown.len() < part.len(),
            "text": String::from_utf8_lossy(shown),
        }))
    })
    .await?;
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_section_ends_at_the_first_empty_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_section(b"A: 1\n\nbody"), b"A: 1\n\n");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
    }

    #[test]
    fn a_filterless_body_is_refused_unless_it_says_all() {
        assert!(BulkBody::default().selector(0).is_err());
        let all = BulkBody {
            all: true,
            ..BulkBody::default()
        };
        assert!(all.selector(0).is_ok());
        let both = BulkBody {
            all: true,
            sender: Some("a@b".into()),
            ..BulkBody::default()
        };
        assert!(both.selector(0).is_err());
        let empty = BulkBody {
            sender: Some(" ".into()),
            ..BulkBody::default()
        };
        assert!(empty.selector(0).is_err());
        assert!(serde_json::from_str::<BulkBody>(r#"{"sendr":"a@b"}"#).is_err());
    }
}
