//! Telephone numbers of technical contacts, as the application form asks
//! for them (mobile and office).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Fewest digits of a number (a short office extension with its code).
const MIN_DIGITS: usize = 5;
/// Most digits of a number (E.164 allows 15).
const MAX_DIGITS: usize = 15;

/// A telephone number: digits with an optional leading `+`, the spaces,
/// dashes, dots and parentheses people type removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// The number as kept: `+77172000000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Phone {
    type Err = String;
    fn from_str(s: &str) -> Result<Phone, String> {
        let t = s.trim();
        let (plus, rest) = match t.strip_prefix('+') {
            Some(r) => ("+", r),
            None => ("", t),
        };
        let mut digits = String::with_capacity(rest.len());
        for ch in rest.chars() {
            match ch {
                '0'..='9' => digits.push(ch),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(format!(
                        "phone `{s}`: digits with an optional leading +, spaces and - . ( ) only"
                    ));
                }
            }
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
            return Err(format!(
                "phone `{s}`: {MIN_DIGITS} to {MAX_DIGITS} digits, not {}",
                digits.len()
            ));
        }
        Ok(Phone(format!("{plus}{digits}")))
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    /// Records written before numbers were parsed held the text as typed
    /// (digits, spaces and `+-()`, at most 40 characters): such a text that
    /// does not parse is kept as it was rather than making the record
    /// unreadable.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Phone, D::Error> {
        let s = String::deserialize(d)?;
        match s.parse() {
            Ok(p) => Ok(p),
            Err(e) if s.len() > 40 || s.chars().any(char::is_control) => {
                Err(serde::de::Error::custom(e))
            }
            Err(_) => Ok(Phone(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_kept_as_digits_with_an_optional_plus() {
        let p: Phone = "+7 (7172) 00-00-00".parse().unwrap();
        assert_eq!(p.as_str(), "+77172000000");
        assert_eq!(
            "8 701 000 0000".parse::<Phone>().unwrap().as_str(),
            "87010000000"
        );
        assert!("call me".parse::<Phone>().is_err());
        assert!("+7 12".parse::<Phone>().is_err());
        assert!("1234567890123456".parse::<Phone>().is_err());
        assert!("7+7172000000".parse::<Phone>().is_err());
    }

    #[test]
    fn old_records_stay_readable() {
        let p: Phone = serde_json::from_str("\"+7 7172 000000\"").unwrap();
        assert_eq!(p.as_str(), "+77172000000");
        // Too short for today's rule, accepted by the old one: kept as is.
        let p: Phone = serde_json::from_str("\"12-3\"").unwrap();
        assert_eq!(p.as_str(), "12-3");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"12-3\"");
    }
}
