//! `ugem dkim ...`: DKIM keys of registered domains, made on the gateway.

use clap::Subcommand;
use serde_json::{Value, json};

use super::{CliError, print_table, query};
use crate::admin::client::{AdminClient, segment};

/// `ugem dkim ...`
#[derive(Subcommand, Debug)]
pub enum DkimCmd {
    /// Make a domain's first key on the gateway (it signs at once) and
    /// print the TXT record to publish.
    Generate {
        /// The registered domain.
        domain: String,
        /// The selector; default `ugem-YYYYMMDD`.
        #[arg(long)]
        selector: Option<String>,
        /// rsa-sha256 (default; known to every verifier) or ed25519-sha256.
        #[arg(long, default_value = "rsa-sha256")]
        algorithm: String,
    },
    /// The keys: selector, algorithm, state, created, the TXT record.
    List {
        /// Only this domain's keys.
        domain: Option<String>,
    },
    /// Make the next key (publish its record), or with --activate switch
    /// signing to it once its record is published.
    Rotate {
        /// The registered domain.
        domain: String,
        /// The next key's selector; default `ugem-YYYYMMDD`.
        #[arg(long)]
        selector: Option<String>,
        /// rsa-sha256 (default) or ed25519-sha256.
        #[arg(long, default_value = "rsa-sha256")]
        algorithm: String,
        /// Switch signing to the next key (made earlier, now published).
        #[arg(long, conflicts_with_all = ["selector"])]
        activate: bool,
    },
}

/// A key's record in zone-file form: `name TXT "..." "..."`, the value cut
/// into strings of at most 255 octets (a 2048-bit RSA key needs two).
pub fn zone_line(key: &Value) -> String {
    let name = key["record_name"].as_str().unwrap_or_default();
    let value = key["record"].as_str().unwrap_or_default();
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{name} TXT {}", strings.join(" "))
}

fn print_key(v: &Value, what: &str) {
    println!(
        "{what} {} key {} for {} ({}).",
        v["algorithm"].as_str().unwrap_or_default(),
        v["selector"].as_str().unwrap_or_default(),
        v["domain"].as_str().unwrap_or_default(),
        v["state"].as_str().unwrap_or_default(),
    );
    println!("Publish this DNS record:");
    println!("{}", zone_line(v));
}

/// Runs one `ugem dkim` verb.
pub fn run(c: &AdminClient, cmd: DkimCmd, as_json: bool) -> Result<(), CliError> {
    let (v, what) = match cmd {
        DkimCmd::Generate {
            domain,
            selector,
            algorithm,
        } => (
            c.post(
                &format!("/api/v1/domains/{}/dkim", segment(&domain)),
                &json!({ "selector": selector, "algorithm": algorithm }),
            )?,
            "Generated",
        ),
        DkimCmd::Rotate {
            domain,
            selector,
            algorithm,
            activate,
        } => {
            let path = format!("/api/v1/domains/{}/dkim/rotate", segment(&domain));
            if activate {
                (c.post(&path, &json!({ "activate": true }))?, "Activated")
            } else {
                (
                    c.post(
                        &path,
                        &json!({ "selector": selector, "algorithm": algorithm }),
                    )?,
                    "Generated the next",
                )
            }
        }
        DkimCmd::List { domain } => {
            let v = c.get(&format!("/api/v1/dkim{}", query(&[("domain", domain)])))?;
            if as_json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print_table(
                    &v,
                    &[
                        ("DOMAIN", "/domain"),
                        ("SELECTOR", "/selector"),
                        ("ALGORITHM", "/algorithm"),
                        ("STATE", "/state"),
                        ("CREATED", "/created_at"),
                        ("RECORD", "/record"),
                    ],
                );
            }
            return Ok(());
        }
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_key(&v, what);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_records_are_cut_into_255_octet_strings() {
        let v = json!({"record_name": "s._domainkey.a.kz", "record": "x".repeat(300)});
        let line = zone_line(&v);
        assert_eq!(
            line,
            format!(
                "s._domainkey.a.kz TXT \"{}\" \"{}\"",
                "x".repeat(255),
                "x".repeat(45)
            )
        );
    }
}
