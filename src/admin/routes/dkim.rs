//! DKIM keys of registered domains: `POST /api/v1/domains/{name}/dkim`
//! generates the first key, `.../dkim/rotate` the next one (or, with
//! `activate`, switches signing to it), `GET /api/v1/dkim` lists them with
//! the TXT record to publish. Keys are made on the gateway host: the
//! answers carry the public half only. Changes are admin-only and audited.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::{AdminState, ApiError, Authed, JsonBody, audited_blocking_as};
use super::parse_domain;
use crate::dkim::{Algorithm, DkimError, KeyInfo, Selector, txt_name, txt_value};
use crate::domain::Domain;

impl From<DkimError> for ApiError {
    fn from(e: DkimError) -> Self {
        match &e {
            DkimError::Algorithm(_) | DkimError::Selector(_) => {
                ApiError::bad_request(e.to_string())
            }
            _ if e.is_conflict() => ApiError::conflict(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// A key as the API shows it: its fields and the record to publish.
pub(crate) fn key_view(domain: &Domain, k: &KeyInfo) -> Value {
    let mut v = serde_json::to_value(k).unwrap_or_default();
    v["domain"] = json!(domain.as_str());
    v["record_name"] = json!(txt_name(&k.selector, domain));
    v["record"] = json!(txt_value(k.algorithm, &k.public_key));
    v
}

/// Body of the generate and rotate calls.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    /// The selector; default `ugem-YYYYMMDD`.
    #[serde(default)]
    pub selector: Option<String>,
    /// rsa-sha256 (default) or ed25519-sha256.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Rotate only: switch signing to the next key instead of making one.
    #[serde(default)]
    pub activate: bool,
}

struct KeyRequest {
    selector: Option<Selector>,
    algorithm: Algorithm,
    activate: bool,
}

fn parse_body(body: &JsonBody) -> Result<KeyRequest, ApiError> {
    let b: KeyBody = body.optional()?.unwrap_or_default();
    Ok(KeyRequest {
        selector: b.selector.as_deref().map(Selector::parse).transpose()?,
        algorithm: match b.algorithm.as_deref() {
            Some(a) => a.parse()?,
            None => Algorithm::RsaSha256,
        },
        activate: b.activate,
    })
}

/// The audit target: the domain, and the key's selector, algorithm and
/// state once the call made one.
fn audit_target(name: String) -> impl FnOnce(&Result<Value, ApiError>) -> String {
    move |r| match r {
        Ok(k) => format!(
            "{name} selector={} algorithm={} state={}",
            k["selector"].as_str().unwrap_or_default(),
            k["algorithm"].as_str().unwrap_or_default(),
            k["state"].as_str().unwrap_or_default()
        ),
        Err(_) => name,
    }
}

/// The domain of the path, which must be registered.
fn registered(st: &AdminState, name: &str) -> Result<Domain, ApiError> {
    let d = parse_domain(name)?;
    if st.registry.snapshot().domain(&d).is_none() {
        return Err(ApiError::not_found(format!("domain {d} is not registered")));
    }
    Ok(d)
}

/// `POST /api/v1/domains/{name}/dkim`: the domain's first key, active.
pub(super) async fn generate(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let signers = st.dkim.clone();
    let req = parse_body(&body);
    let domain = registered(&st, &name);
    let v = audited_blocking_as(&st, &who, audit_target(name), move |_| {
        let (req, domain) = (req?, domain?);
        let k = signers.generate(&domain, req.selector, req.algorithm)?;
        tracing::info!(domain = %domain, selector = %k.selector, algorithm = %k.algorithm, "DKIM key generated");
        Ok(key_view(&domain, &k))
    })
    .await?;
    Ok(Json(v))
}

/// `POST /api/v1/domains/{name}/dkim/rotate`: the next key, or with
/// `activate` the switch to it.
pub(super) async fn rotate(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let signers = st.dkim.clone();
    let req = parse_body(&body);
    let domain = registered(&st, &name);
    let v = audited_blocking_as(&st, &who, audit_target(name), move |_| {
        let (req, domain) = (req?, domain?);
        let k = if req.activate {
            signers.activate(&domain)?
        } else {
            signers.rotate(&domain, req.selector, req.algorithm)?
        };
        tracing::info!(domain = %domain, selector = %k.selector, state = ?k.state, "DKIM key rotated");
        Ok(key_view(&domain, &k))
    })
    .await?;
    Ok(Json(v))
}

/// Query of `GET /api/v1/dkim`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this domain's keys.
    #[serde(default)]
    pub domain: Option<String>,
}

/// `GET /api/v1/dkim`: every key (or one domain's), with its record.
pub(super) async fn list(
    State(st): State<AdminState>,
    _: Authed,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let domain = q.domain.as_deref().map(parse_domain).transpose()?;
    let signers = st.dkim.clone();
    let keys = tokio::task::spawn_blocking(move || signers.list(domain.as_ref()))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(
        keys.iter().map(|(d, k)| key_view(d, k)).collect::<Vec<_>>(),
    ))
}

/// The DNS advice of `domain show` (DKIM, SPF, DMARC).
pub(super) async fn advice(
    st: &AdminState,
    domain: &Domain,
) -> Vec<crate::registry::checks::Advice> {
    let signers = st.dkim.clone();
    let d = domain.clone();
    let active = tokio::task::spawn_blocking(move || signers.list(Some(&d)))
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|keys| {
            keys.into_iter()
                .map(|(_, k)| k)
                .find(|k| k.state == crate::dkim::KeyState::Active)
        });
    crate::registry::checks::domain::advise_domain(domain, active.as_ref(), &st.cfg()).await
}
