//! The connection log: this node's, or with `nodes=all` every node's that
//! shares the registry, each asked through its own admin API with the
//! caller's token (each node keeps its log on its own disk).

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::*;
use crate::model::connections::NodeScope;
use crate::model::nodes::NodeRecord;

/// How long another node may take to answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn list_connections(
    State(st): State<AdminState>,
    _: Authed,
    headers: HeaderMap,
    Query(q): Query<ConnectionFilter>,
) -> Result<axum::response::Response, ApiError> {
    let local = {
        let store = st.store.clone();
        let q = q.clone();
        tokio::task::spawn_blocking(move || store.list_connections(&q))
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))??
    };
    if q.nodes != Some(NodeScope::All) {
        return Ok(Json(local).into_response());
    }
    let cfg = st.cfg();
    let me = cfg.node_name();
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let nodes = st.audit.list_nodes().await?;
    let now = chrono::Utc::now();
    let mut rows: Vec<Value> = tag(&me, serde_json::to_value(local).unwrap_or_default());
    let mut asked = vec![json!({ "name": me, "ok": true, "sessions": rows.len() })];
    let others: Vec<NodeRecord> = nodes.into_iter().filter(|n| n.name != me).collect();
    let roots = crate::trust::all_certs(cfg.admin.tls_ca_file.as_deref());
    let mut jobs = tokio::task::JoinSet::new();
    for n in others {
        let (url, live) = (n.admin_url.clone(), n.is_live(now));
        let (token, roots, q) = (token.clone(), roots.clone(), q.clone());
        jobs.spawn_blocking(move || {
            let got = match (url, live, token) {
                (_, false, _) => Err(format!(
                    "silent since {} (taken as down)",
                    n.seen_at.format("%Y-%m-%d %H:%M:%S UTC")
                )),
                (None, _, _) => Err("no admin_url announced".into()),
                (_, _, None) => Err("no bearer token to pass on".into()),
                (Some(url), true, Some(token)) => ask(&url, &token, roots, &q),
            };
            (n.name, got)
        });
    }
    while let Some(done) = jobs.join_next().await {
        let Ok((name, got)) = done else { continue };
        match got {
            Ok(list) => {
                let list = tag(&name, list);
                asked.push(json!({ "name": name, "ok": true, "sessions": list.len() }));
                rows.extend(list);
            }
            Err(e) => asked.push(json!({ "name": name, "ok": false, "error": e })),
        }
    }
    rows.sort_by(|a, b| b["started_at"].as_str().cmp(&a["started_at"].as_str()));
    rows.truncate(q.limit.unwrap_or(100));
    asked.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(json!({ "connections": rows, "nodes": asked })).into_response())
}

/// Each record of a listing with `"node": name`.
fn tag(name: &str, list: Value) -> Vec<Value> {
    let Value::Array(items) = list else {
        return Vec::new();
    };
    items
        .into_iter()
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.insert("node".into(), Value::from(name));
            }
            r
        })
        .collect()
}

/// Another node's own listing for the same filter.
fn ask(
    url: &str,
    token: &str,
    roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    q: &ConnectionFilter,
) -> Result<Value, String> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(d) = &q.domain {
        pairs.push(("domain", d.clone()));
    }
    if let Some(ip) = q.ip {
        pairs.push(("ip", ip.to_string()));
    }
    if let Some(s) = q.since {
        pairs.push(("since", s.to_rfc3339()));
    }
    if let Some(l) = q.limit {
        pairs.push(("limit", l.to_string()));
    }
    pairs.push(("nodes", "local".into()));
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::admin::client::encode(v)))
        .collect();
    let client = crate::admin::client::AdminClient::with_roots_timeout(
        url,
        Some(token.to_string()),
        roots,
        NODE_TIMEOUT,
    );
    client
        .get(&format!("/api/v1/connections?{}", query.join("&")))
        .map_err(|e| e.to_string())
}
