//! DNS set-up shared by delivery (MX and address look-ups, MTA-STS) and the
//! registration checks (TXT ownership records): the ground floor, importing
//! nothing from the crate.

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::rr::RData;

/// The TXT records among `answers`, each one's strings joined without
/// spaces (RFC 7208 §3.3, RFC 8461 §3.1).
pub fn txt_strings(answers: &[hickory_resolver::proto::rr::Record]) -> Vec<String> {
    answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

/// A hickory resolver builder for `nameservers` (UDP and TCP on each), or
/// for the system's configuration when the list is empty; shared by
/// delivery and the registration checks.
pub fn resolver_builder(
    nameservers: &[SocketAddr],
) -> Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>, String> {
    if nameservers.is_empty() {
        return TokioResolver::builder_tokio().map_err(|e| e.to_string());
    }
    let servers = nameservers
        .iter()
        .map(|sa| {
            let mut udp = ConnectionConfig::udp();
            udp.port = sa.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = sa.port();
            NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
        })
        .collect();
    Ok(TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    ))
}

/// The DNSSEC trust anchors in `path`: DNSKEY records as zone-file lines
/// (`. 3600 IN DNSKEY 257 3 15 <base64>`; a key for another name anchors
/// that zone). At least one key must be there.
pub fn trust_anchors(path: &std::path::Path) -> Result<TrustAnchors, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !text.contains("DNSKEY") {
        return Err(format!("{} holds no DNSKEY record", path.display()));
    }
    text.parse::<TrustAnchors>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// [`resolver_builder`] with DNSSEC validation: answers carry their proof
/// (secure, insecure, bogus) and bogus ones fail. `anchor`: the trust
/// anchors' file (see [`trust_anchors`]); none: the built-in root keys.
pub fn validating_resolver_builder(
    nameservers: &[SocketAddr],
    anchor: Option<&std::path::Path>,
) -> Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>, String> {
    let builder = resolver_builder(nameservers)?;
    let anchors = match anchor {
        Some(p) => trust_anchors(p)?,
        None => TrustAnchors::default(),
    };
    let mut builder = builder.with_trust_anchor(std::sync::Arc::new(anchors));
    builder.options_mut().validate = true;
    Ok(builder)
}
