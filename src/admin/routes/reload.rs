//! `POST /api/v1/reload`: reads the configuration file again and puts what
//! may change live in force (the same reload as SIGHUP). Admins only,
//! audited whether it took or was refused.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::super::{AdminState, ApiError, Authed, record};
use crate::config::{ConfigError, ConfigProblem};

/// 200 with the keys changed and those that need a restart; 422 with the
/// problems when the new configuration is refused (the old one stays).
pub(super) async fn reload(State(st): State<AdminState>, who: Authed) -> Response {
    let live = st.live.clone();
    let result = tokio::task::spawn_blocking(move || live.reload())
        .await
        .unwrap_or_else(|e| {
            Err(ConfigError {
                source_name: "(reload)".into(),
                problems: vec![ConfigProblem::new("", format!("the reload failed: {e}"))],
            })
        });
    match result {
        Ok(r) => {
            let keys = |c: &[crate::config::live::Change]| {
                c.iter()
                    .map(|c| c.key.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let target = format!(
                "changed: {}; restart needed: {}",
                keys(&r.changed),
                keys(&r.restart_needed)
            );
            record(&st, &who, target, &Ok::<(), ApiError>(())).await;
            Json(json!({
                "changed": r.changed,
                "restart_needed": r.restart_needed,
                "problems": [],
            }))
            .into_response()
        }
        Err(e) => {
            let problems: Vec<_> = e.problems.iter().map(|p| p.to_json("error")).collect();
            let err = ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "invalid_configuration",
                message: format!("reload refused, the running configuration stays: {e}"),
            };
            record(&st, &who, e.source_name.clone(), &Err::<(), _>(err)).await;
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": format!("reload refused, the running configuration stays: {e}"),
                    "kind": "invalid_configuration",
                    "problems": problems,
                })),
            )
                .into_response()
        }
    }
}
