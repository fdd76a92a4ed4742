//! A key's DNS record (`<selector>._domainkey.<domain> TXT "v=DKIM1; ..."`)
//! and the encodings it needs.

use super::{Algorithm, Selector};
use crate::domain::Domain;

/// The owner name of a selector's key record.
pub fn txt_name(selector: &Selector, domain: &Domain) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// The TXT value to publish for a public key (base64).
pub fn txt_value(algorithm: Algorithm, public_key: &str) -> String {
    format!("v=DKIM1; k={}; p={public_key}", algorithm.key_type())
}

/// The `p=` of a published record, whitespace removed (a long record comes
/// folded); `None` when the text is not a DKIM key record.
pub fn published_key(txt: &str) -> Option<String> {
    let mut is_dkim = true;
    let mut key = None;
    for tag in txt.split(';') {
        let Some((name, value)) = tag.split_once('=') else {
            continue;
        };
        let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        match name.trim() {
            "v" => is_dkim = value == "DKIM1",
            "p" => key = Some(value),
            _ => {}
        }
    }
    key.filter(|_| is_dkim)
}

/// Standard base64 with padding.
pub(super) fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

/// An RSA public key (PKCS#1 DER) as SubjectPublicKeyInfo DER: the form
/// DKIM records carry in practice (`openssl rsa -pubout`), which every
/// verifier reads; some read nothing else.
pub(super) fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALG: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bits);
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(ALG.len() + bits.len(), &mut out);
    out.extend_from_slice(&ALG);
    out.extend_from_slice(&bits);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn records_name_the_selector_and_carry_the_key() {
        let s = Selector::parse("ugem1").unwrap();
        let d = Domain::parse("a.example.kz").unwrap();
        assert_eq!(txt_name(&s, &d), "ugem1._domainkey.a.example.kz");
        let v = txt_value(Algorithm::Ed25519Sha256, "QUJD");
        assert_eq!(v, "v=DKIM1; k=ed25519; p=QUJD");
        assert_eq!(published_key(&v).as_deref(), Some("QUJD"));
        assert_eq!(
            published_key("v=DKIM1; k=rsa; p=QU JD").as_deref(),
            Some("QUJD")
        );
        assert_eq!(published_key("v=spf1 -all"), None);
        assert_eq!(published_key("v=DKIM1; p="), Some(String::new()));
    }

    #[test]
    fn spki_wraps_a_long_pkcs1_key() {
        let pkcs1 = vec![7u8; 270];
        let spki = rsa_spki(&pkcs1);
        assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
        assert_eq!(spki.len(), 4 + 0x122);
        assert!(spki.ends_with(&pkcs1));
    }
}
