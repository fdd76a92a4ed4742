//! The queue, one message at a time (bulk tools: `queue_tools`).

use super::*;

pub(super) async fn list_queue(
    State(st): State<AdminState>,
    _: Authed,
    Query(f): Query<ugem_queue::ListFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let q = st.queue.clone();
    let list = tokio::task::spawn_blocking(move || q.list(&f))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(list))
}

pub(super) async fn queue_counts(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let q = st.queue.clone();
    let c = tokio::task::spawn_blocking(move || q.counts())
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(c))
}

pub(super) async fn show_queued(
    State(st): State<AdminState>,
    _: Authed,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: ugem_queue::QueueId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a queue id")))?;
    let q = st.queue.clone();
    let env = tokio::task::spawn_blocking(move || q.get(id))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??
        .ok_or_else(|| ApiError::not_found(format!("no message {id} in the queue")))?;
    Ok(Json(env))
}

/// Body of `POST /api/v1/queue/{id}/hold`.
#[derive(Debug, Default, Deserialize)]
pub struct HoldBody {
    /// Why (shown in `queue show`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The queue operations that take one id: retry, hold, release, delete.
#[derive(Debug, Clone, Copy)]
pub(super) enum QueueOp {
    Retry,
    Hold,
    Release,
    Delete,
}

pub(super) async fn queue_op(
    st: AdminState,
    who: Authed,
    id: String,
    op: QueueOp,
    body: Option<JsonBody>,
) -> Result<axum::response::Response, ApiError> {
    let queue = st.queue.clone();
    let note = who.note.clone();
    let changed = audited_blocking(&st, &who, id.clone(), move |caller| {
        let qid = parse_queue_id(&id)?;
        let done = match op {
            QueueOp::Retry => {
                let v = retry_one(&queue, qid)?;
                tracing::info!(target: crate::maillog::TARGET, queue_id = %qid, actor = %caller.name, "retry by staff");
                return Ok(v);
            }
            QueueOp::Hold => {
                let reason = match &body {
                    Some(b) => b.or_default::<HoldBody>()?.reason,
                    None => None,
                };
                if let Some(r) = &reason {
                    note.reason(r);
                }
                block_on(queue.hold(
                    qid,
                    reason.unwrap_or_else(|| format!("held by {}", caller.name)),
                ))?
            }
            QueueOp::Release => block_on(queue.release(qid))?,
            QueueOp::Delete => block_on(queue.delete(qid))?,
        };
        if !done {
            return Err(ApiError::not_found(match op {
                QueueOp::Release => format!("no held message {id} in the queue"),
                _ => format!("no message {id} in the queue"),
            }));
        }
        let what = match op {
            QueueOp::Hold => "held by staff",
            QueueOp::Release => "released by staff",
            _ => "deleted by staff",
        };
        tracing::info!(target: crate::maillog::TARGET, queue_id = %qid, actor = %caller.name, "{what}");
        Ok(serde_json::json!({"ok": true}))
    })
    .await;
    changed.map(|v| Json(v).into_response())
}

/// `queue retry ID`: the message is due now, or the answer says why not.
pub(super) fn retry_one(
    queue: &ugem_queue::Queue,
    id: ugem_queue::QueueId,
) -> Result<serde_json::Value, ApiError> {
    let now = ugem_queue::unix_ms();
    let env = queue
        .get(id)?
        .ok_or_else(|| ApiError::not_found(format!("no message {id} in the queue")))?;
    if let Some(why) = &env.held {
        return Err(ApiError::conflict(format!(
            "message {id} is held ({why}); release it first (`ugem queue release {id}`)"
        )));
    }
    if env.is_leased(now) {
        return Err(ApiError::conflict(format!(
            "message {id} is being delivered now; its attempt will be recorded when it ends"
        )));
    }
    if !block_on(queue.retry(id, now))? {
        return Err(ApiError::not_found(format!("no message {id} in the queue")));
    }
    let due = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok(serde_json::json!({"ok": true, "due": due}))
}

pub(super) async fn retry_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Retry, None).await
}

pub(super) async fn hold_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Hold, Some(body)).await
}

pub(super) async fn release_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Release, None).await
}

pub(super) async fn delete_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Delete, None).await
}

pub(super) async fn retry_all(
    State(st): State<AdminState>,
    who: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let n = audited_blocking(&st, &who, "*".into(), move |_| {
        Ok(block_on(queue.retry_all(ugem_queue::unix_ms()))?)
    })
    .await?;
    Ok(Json(serde_json::json!({"retried": n})))
}
