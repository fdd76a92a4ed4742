//! The governor's clock, as a dependency: `serve` reads the system time, a
//! replay sets a virtual one, so weeks of traffic run through the same code
//! in seconds.

use std::sync::atomic::{AtomicU64, Ordering};

/// Unix time in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::store::now_ms()
    }
}

/// A clock that moves only when told (replays and tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn new(ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(ms))
    }

    /// Sets the time; a clock never goes back, so an earlier `ms` is ignored.
    pub fn set(&self, ms: u64) {
        self.0.fetch_max(ms, Ordering::Relaxed);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Unix milliseconds as a UTC time.
pub fn utc(ms: u64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_forward_only() {
        let c = ManualClock::new(1_000);
        c.advance(500);
        assert_eq!(c.now_ms(), 1_500);
        c.set(1_200);
        assert_eq!(c.now_ms(), 1_500);
        c.set(2_000);
        assert_eq!(c.now_ms(), 2_000);
        assert_eq!(utc(0).timestamp(), 0);
    }
}
