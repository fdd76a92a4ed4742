//! Value types written in the configuration and kept in the store: sizes,
//! durations, addresses, next hops, the STARTTLS policy. The ground floor:
//! this file imports nothing from the crate but the domain parser, so that
//! the store, the configuration and the settings files can all use it
//! without depending on one another (see tests/layering.rs).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::domain::Domain;

/// A size in bytes, written as a number or with a unit (`25MiB`, `100KiB`, `10MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (examples: 26214400, 25MiB, 100KiB)"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("unknown size unit `{other}` in `{s}`")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a size: a number of bytes or a string like \"25MiB\"",
            )
        })? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written with a unit (`30s`, `5m`, `90d`), or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(secs) = s.parse::<u64>() {
            return Ok(Span(Duration::from_secs(secs)));
        }
        humantime::parse_duration(s)
            .map(Span)
            .map_err(|e| format!("`{s}` is not a duration ({e}; examples: 30s, 5m, 1h, 90d)"))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration: a string like \"5m\" or a number of seconds",
            )
        })? {
            Raw::N(n) => Ok(Span(Duration::from_secs(n))),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Deserializes any `FromStr` type from a string, naming the value in the error.
pub fn parse_from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse::<T>()
        .map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
}

/// A plain `local@domain` address written by staff (postmaster, contacts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub struct PlainAddress {
    /// The part before `@`, as written.
    pub local: String,
    /// The domain, in A-label form.
    pub domain: Domain,
}

impl FromStr for PlainAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("`{s}` is not an e-mail address"))?;
        if local.is_empty()
            || local.len() > 64
            || !local
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"@<>()[]\\,;:\"%!".contains(&b))
        {
            return Err(format!("`{s}` is not a plain e-mail address"));
        }
        let domain = Domain::parse(domain).map_err(|e| format!("`{s}`: {e}"))?;
        Ok(PlainAddress {
            local: local.to_string(),
            domain,
        })
    }
}

impl fmt::Display for PlainAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl From<PlainAddress> for String {
    fn from(a: PlainAddress) -> String {
        a.to_string()
    }
}

impl<'de> Deserialize<'de> for PlainAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_from_str(d)
    }
}

/// A `host:port` next hop (stored and shown as that text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(HostPort {
                host: sa.ip().to_string(),
                port: sa.port(),
            });
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<std::net::IpAddr>().is_err() {
            Domain::parse(host).map_err(|e| format!("`{host}`: {e}"))?;
        }
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl serde::Serialize for HostPort {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_from_str(d)
    }
}

/// Written back as humantime text (`5m`, `1h 6m 40s`), which parses again.
impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// When to use STARTTLS, like Postfix's `smtp_tls_security_level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered; the certificate is checked but a failed check
    /// does not stop delivery (the session is encrypted, marked unverified);
    /// a failed handshake means a new connection in plaintext (RFC 7435).
    #[default]
    May,
    /// STARTTLS required; any certificate (signatures still checked).
    Encrypt,
    /// STARTTLS required, and the certificate must verify for the host name.
    Verify,
    /// DANE (RFC 7672) where the MX zone is signed and publishes usable
    /// TLSA records: TLS required and the certificate matched against them;
    /// elsewhere as `may`.
    Dane,
}

/// What is wrong with a `[delivery.tls_policy]` key, if anything.
pub fn check_key(key: &str) -> Result<(), String> {
    let name = key.strip_prefix('.').unwrap_or(key);
    match Domain::parse(name) {
        Ok(d) if d.as_str() == name => Ok(()),
        Ok(d) => Err(format!(
            "write the domain as {}",
            if key.starts_with('.') {
                format!(".{d}")
            } else {
                d.to_string()
            }
        )),
        Err(e) => Err(format!(
            "keys are domains (\"partner.example\") or their subdomains (\".partner.example\"): {e}"
        )),
    }
}
