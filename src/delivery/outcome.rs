//! What a delivery attempt's result means for the message: done, retry
//! later, or bounce ([`classify`]); when the next retry is due ([`Backoff`]);
//! and when the queue gives up on a message ([`expired`]).

use std::time::Duration;

use crate::reply::Fate;

/// The fate a remote reply decides for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx: delivered; nothing more to do.
    Success,
    /// 4xx, or anything we cannot interpret: try again later.
    Temporary,
    /// 5xx: give up and bounce.
    Permanent,
}

impl Class {
    /// The recipient's fate when a reply of this class decides it.
    pub fn fate(self) -> Fate {
        match self {
            Class::Success => Fate::Delivered,
            Class::Temporary => Fate::Temporary,
            Class::Permanent => Fate::Permanent,
        }
    }
}

/// Classifies a reply by its code; the enhanced status code (`"5.1.1"`) is
/// only a fallback when the code itself is not 2xx/4xx/5xx.
///
/// When the two disagree (`550 4.2.2`), the reply code wins: it is what the
/// SMTP state machine acts on, and RFC 3463 §2 requires the enhanced class to
/// match it, so the mismatch is the server's bug in the enhanced code. An
/// unintelligible reply is temporary: a retry costs little, a wrong bounce
/// loses mail.
pub fn classify(code: u16, enhanced: Option<&str>) -> Class {
    match code / 100 {
        2 => Class::Success,
        4 => Class::Temporary,
        5 => Class::Permanent,
        _ => match enhanced.and_then(|e| e.split('.').next()) {
            Some("2") => Class::Success,
            Some("5") => Class::Permanent,
            _ => Class::Temporary,
        },
    }
}

/// The retry schedule: `min` after the first failed attempt, doubling per
/// attempt up to `max` (Postfix's `minimal_backoff_time` 300s and
/// `maximal_backoff_time` 4000s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub min: Duration,
    /// The longest delay between two attempts.
    pub max: Duration,
}

impl Default for Backoff {
    /// 5 minutes doubling up to about an hour (4000 s), like Postfix.
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(300),
            max: Duration::from_secs(4000),
        }
    }
}

impl Backoff {
    /// The wait after `attempts` failed attempts (1 = after the first):
    /// `min * 2^(attempts-1)`, at most `max`. 0 is treated like 1.
    pub fn delay(&self, attempts: u32) -> Duration {
        // Past 2^31 the product overflows anyway; checked_mul then says max.
        let doublings = attempts.saturating_sub(1).min(31);
        self.min
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Whether a message that arrived at `arrived_ms` has been queued for
/// `max_lifetime` or longer at `now_ms` (unix milliseconds): its deferred
/// recipients then fail (4.4.7) and are bounced.
pub fn expired(arrived_ms: u64, now_ms: u64, max_lifetime: Duration) -> bool {
    let age = u128::from(now_ms.saturating_sub(arrived_ms));
    age >= max_lifetime.as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_code() {
        assert_eq!(classify(250, None), Class::Success);
        assert_eq!(classify(251, Some("2.1.5")), Class::Success);
        assert_eq!(classify(421, None), Class::Temporary);
        assert_eq!(classify(451, Some("4.3.0")), Class::Temporary);
        assert_eq!(classify(550, Some("5.1.1")), Class::Permanent);
        assert_eq!(classify(554, None), Class::Permanent);
    }

    #[test]
    fn code_wins_over_a_mismatched_enhanced_code() {
        assert_eq!(classify(550, Some("4.2.2")), Class::Permanent);
        assert_eq!(classify(452, Some("5.2.2")), Class::Temporary);
    }

    #[test]
    fn odd_codes_fall_back_to_the_enhanced_code_or_temporary() {
        assert_eq!(classify(354, None), Class::Temporary);
        assert_eq!(classify(0, Some("5.1.1")), Class::Permanent);
        assert_eq!(classify(999, Some("2.0.0")), Class::Success);
        assert_eq!(classify(999, None), Class::Temporary);
        assert_eq!(classify(100, Some("garbage")), Class::Temporary);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let b = Backoff::default();
        let secs = |n| b.delay(n).as_secs();
        assert_eq!(secs(0), 300);
        assert_eq!(secs(1), 300);
        assert_eq!(secs(2), 600);
        assert_eq!(secs(3), 1200);
        assert_eq!(secs(4), 2400);
        assert_eq!(secs(5), 4000);
        assert_eq!(secs(6), 4000);
        assert_eq!(secs(u32::MAX), 4000);
    }

    #[test]
    fn backoff_with_short_test_schedules() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_millis(250),
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(250));
        // A misconfigured min above max never yields more than max.
        let odd = Backoff {
            min: Duration::from_secs(10),
            max: Duration::from_secs(5),
        };
        assert_eq!(odd.delay(1), Duration::from_secs(5));
        assert_eq!(odd.delay(40), Duration::from_secs(5));
    }

    #[test]
    fn expiry() {
        let day = Duration::from_secs(86_400);
        let t0 = 1_700_000_000_000;
        assert!(!expired(t0, t0, day));
        assert!(!expired(t0, t0 + 86_399_999, day));
        assert!(expired(t0, t0 + 86_400_000, day));
        // A clock that went backwards never expires anything.
        assert!(!expired(t0, t0 - 5_000, day));
        assert!(expired(t0, t0, Duration::ZERO));
    }
}
