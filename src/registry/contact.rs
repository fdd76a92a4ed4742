//! Technical contacts as staff type them on the command line.

use crate::config::PlainAddress;
use crate::model::domains::Contact;
use crate::model::phone::Phone;

/// Parses `EMAIL` or `Full Name <EMAIL>`, optionally followed by
/// `; office=PHONE; mobile=PHONE`.
pub fn parse_contact(s: &str) -> Result<Contact, String> {
    let mut parts = s.split(';');
    let who = parts.next().unwrap_or("").trim();
    let (name, email) = match (who.find('<'), who.strip_suffix('>')) {
        (Some(i), Some(_)) => (
            who[..i].trim().to_string(),
            who[i + 1..who.len() - 1].trim(),
        ),
        _ => (String::new(), who),
    };
    let email: PlainAddress = email.parse()?;
    let mut c = Contact {
        name,
        email: email.to_string(),
        office_phone: None,
        mobile_phone: None,
    };
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        match p.split_once('=') {
            Some(("office", v)) => c.office_phone = Some(v.parse()?),
            Some(("mobile", v)) => c.mobile_phone = Some(v.parse()?),
            _ => return Err(format!("`{p}`: expected office=PHONE or mobile=PHONE")),
        }
    }
    validate(&c)?;
    Ok(c)
}

/// Checks a contact given through the API.
pub fn validate(c: &Contact) -> Result<(), String> {
    c.email
        .parse::<PlainAddress>()
        .map_err(|e| format!("contact e-mail: {e}"))?;
    if c.name.len() > 200 || c.name.chars().any(|ch| ch.is_control()) {
        return Err("contact name: at most 200 characters, no control characters".into());
    }
    // A number read through the API parses like one typed on the command
    // line; the text of an old record that does not parse is refused here.
    for phone in [&c.office_phone, &c.mobile_phone].into_iter().flatten() {
        phone.as_str().parse::<Phone>()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_contact() {
        let c = parse_contact(
            "Aliya Nurlanova <it@minfin.example.kz>; office=+7 7172 000000; mobile=+7 701 000 0000",
        )
        .unwrap();
        assert_eq!(c.name, "Aliya Nurlanova");
        assert_eq!(c.email, "it@minfin.example.kz");
        assert_eq!(c.office_phone.unwrap().as_str(), "+77172000000");
        assert_eq!(c.mobile_phone.unwrap().as_str(), "+77010000000");
    }

    #[test]
    fn bare_email_and_errors() {
        assert_eq!(parse_contact("it@a.example.kz").unwrap().name, "");
        assert!(parse_contact("not an address").is_err());
        assert!(parse_contact("it@a.example.kz; fax=1").is_err());
        assert!(parse_contact("it@a.example.kz; office=call me").is_err());
    }
}
