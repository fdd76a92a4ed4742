//! The console's pages, one file per area; each reads through the API's
//! routes ([`super::api`]) and renders with [`super::layout`].

pub mod applications;
pub mod domains;
pub mod logs;
pub mod overview;
pub mod queue;

use std::collections::HashMap;

use axum::extract::Query;

/// A page's query string.
pub type Params = Query<HashMap<String, String>>;

/// A query parameter, empty when absent.
pub fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> &'a str {
    q.get(k).map(|s| s.trim()).unwrap_or("")
}
