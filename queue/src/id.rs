//! Queue ids: unique, and sorted by arrival so that redb keys iterate in time order.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 48 bits: each half of an id is printed as 12 hex digits.
const MASK48: u64 = (1 << 48) - 1;

/// Identifies one queued message: 48 bits of unix milliseconds, then 48 bits of a per-process
/// sequence, so numeric order, key order and the order of the hex text are all arrival order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u128);

impl QueueId {
    /// Builds an id from its two halves (each truncated to 48 bits).
    pub fn from_parts(unix_ms: u64, seq: u64) -> QueueId {
        QueueId((u128::from(unix_ms & MASK48) << 48) | u128::from(seq & MASK48))
    }

    /// A fresh id, strictly greater than every id this process generated before.
    pub fn generate() -> QueueId {
        // The sequence is seeded randomly so that two processes (or a restart within the same
        // millisecond) are unlikely to collide; the writer also checks before inserting.
        static STATE: Mutex<Option<(u64, u64)>> = Mutex::new(None);
        let mut state = STATE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = unix_ms() & MASK48;
        let (last_ms, last_seq) =
            *state.get_or_insert_with(|| (now, rand::random::<u64>() & (MASK48 >> 1)));
        // Never go back in time, even if the wall clock does: ids must keep increasing.
        let mut ms = now.max(last_ms);
        let mut seq = last_seq + 1;
        if seq > MASK48 {
            // Wrapping the sequence would break ordering; borrowing a millisecond does not.
            seq = 0;
            ms = ms.max(last_ms + 1);
        }
        *state = Some((ms, seq));
        QueueId::from_parts(ms, seq)
    }

    /// The unix milliseconds at which the id was made.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> 48) as u64
    }

    /// The per-process sequence half of the id.
    pub fn seq(self) -> u64 {
        (self.0 as u64) & MASK48
    }

    /// The id as the redb key it is stored under.
    pub(crate) fn key(self) -> u128 {
        self.0
    }

    /// The id stored under a redb key.
    pub(crate) fn from_key(key: u128) -> QueueId {
        QueueId(key)
    }
}

/// Current wall-clock time in unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}{:012x}", self.unix_ms(), self.seq())
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({self})")
    }
}

/// Why a string is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a queue id is 24 lowercase hex digits, got {0:?}")]
pub struct ParseQueueIdError(String);

impl FromStr for QueueId {
    type Err = ParseQueueIdError;

    fn from_str(s: &str) -> Result<QueueId, ParseQueueIdError> {
        // Exactly the Display form, so that one message has exactly one spelling.
        let valid = s.len() == 24
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(ParseQueueIdError(s.to_owned()));
        }
        let ms = u64::from_str_radix(&s[..12], 16).map_err(|_| ParseQueueIdError(s.to_owned()))?;
        let seq = u64::from_str_radix(&s[12..], 16).map_err(|_| ParseQueueIdError(s.to_owned()))?;
        Ok(QueueId::from_parts(ms, seq))
    }
}

impl Serialize for QueueId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QueueId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<QueueId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_fixed_width_hex_and_round_trips() {
        let id = QueueId::from_parts(0x0123_4567_89ab, 0x42);
        assert_eq!(id.to_string(), "0123456789ab000000000042");
        assert_eq!("0123456789ab000000000042".parse::<QueueId>(), Ok(id));
    }

    #[test]
    fn parse_rejects_other_spellings() {
        for bad in [
            "",
            "0123456789AB000000000042",
            "0123456789ab00000000004",
            "0123456789ab0000000000421",
            "+123456789ab000000000042",
            "0123456789ab00000000004g",
        ] {
            assert!(bad.parse::<QueueId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_order_is_numeric_order() {
        let a = QueueId::from_parts(5, 0xffff);
        let b = QueueId::from_parts(6, 1);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn generated_ids_increase_and_carry_the_time() {
        let before = unix_ms();
        let a = QueueId::generate();
        let b = QueueId::generate();
        assert!(a < b);
        assert!(a.unix_ms() >= before);
    }

    #[test]
    fn serde_uses_the_hex_text() {
        let id = QueueId::from_parts(1, 2);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"000000000001000000000002\"");
        assert_eq!(serde_json::from_str::<QueueId>(&json).unwrap(), id);
    }
}
