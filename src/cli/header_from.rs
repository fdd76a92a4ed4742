//! `ugem domain header-from`: which header From a domain's relayed mail may
//! carry (its own domain and subdomains, plus domains staff approve).

use clap::Args;
use serde_json::{Value, json};

use super::{CliError, Output};
use crate::admin::client::{AdminClient, segment};

/// `ugem domain header-from DOMAIN [--on|--off] [--allow D]... [--disallow D]...`
#[derive(Args, Debug)]
pub struct HeaderFromArgs {
    /// The domain.
    pub domain: String,
    /// Refuse mail whose header From is of another domain (the default).
    #[arg(long, conflicts_with = "off")]
    pub on: bool,
    /// Let any header From through for this domain.
    #[arg(long)]
    pub off: bool,
    /// Approve a further domain (and its subdomains) for the header From (repeatable).
    #[arg(long = "allow")]
    pub allow: Vec<String>,
    /// Withdraw an approved domain (repeatable).
    #[arg(long = "disallow")]
    pub disallow: Vec<String>,
}

/// Shows the setting, or changes what the flags say and shows the result.
pub fn run(c: &AdminClient, a: HeaderFromArgs) -> Result<Output, CliError> {
    let path = format!("/api/v1/domains/{}/header-from", segment(&a.domain));
    let current = c.get(&path)?;
    if !a.on && !a.off && a.allow.is_empty() && a.disallow.is_empty() {
        return Ok(Output::Record(current));
    }
    // Start from the setting in force, so one flag changes one thing.
    let mut extra: Vec<String> = current["extra_domains"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let lower = |s: &String| s.trim_end_matches('.').to_lowercase();
    for d in &a.allow {
        if !extra.iter().any(|e| lower(e) == lower(d)) {
            extra.push(d.clone());
        }
    }
    extra.retain(|e| !a.disallow.iter().any(|d| lower(d) == lower(e)));
    let enforce = if a.on {
        true
    } else if a.off {
        false
    } else {
        current["enforce"].as_bool().unwrap_or(true)
    };
    Ok(Output::Record(c.post(
        &path,
        &json!({ "enforce": enforce, "extra_domains": extra }),
    )?))
}
