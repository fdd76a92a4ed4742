//! Advice on a registered domain's DNS, shown by `domain show`: is the
//! active DKIM key published as it is, does SPF authorise the gateway, is
//! there a DMARC record. Like the application checks: never a gate, never
//! an error.

use std::time::Duration;

use super::{Advice, DNS_BUDGET, DnsFail, HickoryLookup, Lookup, Verdict, advice, could_not};
use crate::config::Config;
use crate::dkim::{KeyInfo, published_key, txt_name};
use crate::domain::Domain;

/// Is the active DKIM key (if any) published under its selector, unchanged?
pub async fn dkim_advice<L: Lookup>(dns: &L, domain: &Domain, active: Option<&KeyInfo>) -> Advice {
    let Some(key) = active else {
        return advice(
            "dkim",
            Verdict::Warning,
            "no DKIM key: the gateway does not sign this domain's mail (ugem dkim generate)",
        );
    };
    let name = txt_name(&key.selector, domain);
    let records = match dns.txt(&name).await {
        Ok(v) => v,
        Err(DnsFail::NxDomain | DnsFail::NoRecords) => {
            return advice(
                "dkim",
                Verdict::Problem,
                format!("no TXT record at {name}: receivers cannot verify the signatures"),
            );
        }
        Err(DnsFail::Failed(e)) => return could_not("dkim", &e),
    };
    let published: Vec<String> = records.iter().filter_map(|r| published_key(r)).collect();
    if published.contains(&key.public_key) {
        advice(
            "dkim",
            Verdict::Ok,
            format!("{name} publishes the active key ({})", key.algorithm),
        )
    } else if published.is_empty() {
        advice(
            "dkim",
            Verdict::Problem,
            format!("{name} has no DKIM key record"),
        )
    } else {
        advice(
            "dkim",
            Verdict::Problem,
            format!("{name} publishes another key than the active one: signatures fail"),
        )
    }
}

/// The DMARC record that applies: the domain's, or the nearest parent's
/// (a stand-in for the organisational domain, which needs the public
/// suffix list).
pub async fn dmarc_advice<L: Lookup>(dns: &L, domain: &Domain) -> Advice {
    let mut name = domain.as_str();
    loop {
        match dns.txt(&format!("_dmarc.{name}")).await {
            Ok(v) => {
                if let Some(r) = v.iter().find(|r| r.trim_start().starts_with("v=DMARC1")) {
                    return advice("dmarc", Verdict::Ok, format!("_dmarc.{name}: `{r}`"));
                }
            }
            Err(DnsFail::Failed(e)) => return could_not("dmarc", &e),
            Err(_) => {}
        }
        match name.split_once('.') {
            // Stop above a two-label name: `_dmarc.kz` is no one's policy.
            Some((_, parent)) if parent.contains('.') => name = parent,
            _ => break,
        }
    }
    advice(
        "dmarc",
        Verdict::Warning,
        format!("no DMARC record at _dmarc.{domain} or above: receivers apply their own policy"),
    )
}

/// Every DNS check of a registered domain; `active` is its active DKIM key.
pub async fn advise_domain(domain: &Domain, active: Option<&KeyInfo>, cfg: &Config) -> Vec<Advice> {
    let checks = ["dkim", "spf", "dmarc"];
    let dns = match HickoryLookup::new(&cfg.delivery.nameservers, Duration::from_secs(2)) {
        Ok(d) => d,
        Err(e) => return checks.iter().map(|c| could_not(c, &e)).collect(),
    };
    let all = async {
        tokio::join!(
            dkim_advice(&dns, domain, active),
            super::spf_advice(&dns, domain, &cfg.registration.gateway_addresses),
            dmarc_advice(&dns, domain)
        )
    };
    match tokio::time::timeout(DNS_BUDGET, all).await {
        Ok((dkim, spf, dmarc)) => vec![dkim, spf, dmarc],
        Err(_) => {
            let why = format!("DNS did not answer within {}s", DNS_BUDGET.as_secs());
            checks.iter().map(|c| could_not(c, &why)).collect()
        }
    }
}
