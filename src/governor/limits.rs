//! Rates and the two kinds of GCRA limiter that apply them.
//!
//! - [`Cell`]: one GCRA cell kept inside a sender's or domain's state. Its
//!   theoretical arrival time is unix time on the governor's clock, so it is
//!   saved with the scope (a restart, kill -9 included, hands out no fresh
//!   burst), runs on a replay's virtual clock, and a throttle divides the
//!   rate of the same cell instead of starting a new one full.
//! - [`Limiters`]: keyed limiters of the governor crate for the per-IP
//!   connection rate, which needs neither (a restart forgetting a minute of
//!   connection counts costs nothing). governor fixes one `Quota` per
//!   limiter; one keyed limiter is kept per distinct (rate, burst).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// Limiter keys are 128-bit ([`super::scopes::ScopeKey::limit`], or an IP
/// address with a tag): no allocation and no pointer to follow per check.
type Keyed<C> = RateLimiter<
    u128,
    DashMapStateStore<u128, foldhash::fast::RandomState>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// The limiter key of a client address: one per IPv4 address, one per IPv6
/// /64 (a host owns a whole /64, and it bounds the keys); the tag in the top
/// byte keeps IP keys apart from the other kinds.
pub fn ip_key(ip: std::net::IpAddr) -> u128 {
    match crate::policy::canonical_ip(ip) {
        std::net::IpAddr::V4(v4) => (4u128 << 120) | u128::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => (6u128 << 120) | (u128::from(v6) >> 64),
    }
}

/// A rate: `count` per `per`, with a burst of `burst` cells at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Cells per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
    /// Cells allowed at once.
    pub burst: u32,
}

impl Rate {
    /// `count` per hour with `burst_percent` of it allowed at once.
    pub fn per_hour(count: u32, burst_percent: u32) -> Rate {
        Rate::new(count, Duration::from_secs(3600), burst_percent)
    }

    /// `count` per minute with `burst_percent` of it allowed at once.
    pub fn per_minute(count: u32, burst_percent: u32) -> Rate {
        Rate::new(count, Duration::from_secs(60), burst_percent)
    }

    fn new(count: u32, per: Duration, burst_percent: u32) -> Rate {
        let count = count.max(1);
        let burst = (u64::from(count) * u64::from(burst_percent.clamp(1, 100)) / 100).max(1);
        Rate {
            count,
            per,
            burst: burst as u32,
        }
    }

    /// The emission interval: one cell per this many microseconds.
    pub fn interval_us(&self) -> u64 {
        (self.per.as_micros() as u64 / u64::from(self.count.max(1))).max(1)
    }

    fn quota(&self) -> Quota {
        // count >= 1 and burst >= 1 by construction.
        let period = self.per / self.count;
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN))
            .allow_burst(burst)
    }

    /// "500/hour", as SMTP replies and notices say it.
    pub fn describe(&self) -> String {
        let unit = match self.per.as_secs() {
            3600 => "hour".to_string(),
            60 => "minute".to_string(),
            s => format!("{s}s"),
        };
        format!("{}/{unit}", self.count)
    }
}

/// A GCRA cell: the theoretical arrival time of the next cell, in unix
/// microseconds (0: never used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Cell(pub u64);

impl Cell {
    /// Takes one cell at `rate` at `now_ms`; false (and nothing taken) when
    /// over the limit.
    pub fn take(&mut self, rate: Rate, now_ms: u64) -> bool {
        let now = now_ms.saturating_mul(1000);
        let t = rate.interval_us();
        let tolerance = t.saturating_mul(u64::from(rate.burst.saturating_sub(1)));
        let tat = self.0.max(now);
        if tat - now > tolerance {
            return false;
        }
        self.0 = tat + t;
        true
    }

    /// Takes one cell whatever the rate says: traffic another node already
    /// accepted. The cell ends at most empty, as a single node's would, so
    /// the excess two nodes let through together is not charged twice.
    pub fn charge(&mut self, rate: Rate, now_ms: u64) {
        let now = now_ms.saturating_mul(1000);
        let t = rate.interval_us();
        let full = now + t.saturating_mul(u64::from(rate.burst));
        self.0 = (self.0.max(now) + t).min(full.max(self.0));
    }

    /// True when the cell is full again (nothing to remember).
    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.0 <= now_ms.saturating_mul(1000)
    }
}

/// Keyed limiters by rate class.
pub struct Limiters<C: Clock + Clone = DefaultClock> {
    clock: C,
    classes: RwLock<HashMap<Rate, Arc<Keyed<C>>, foldhash::fast::RandomState>>,
}

impl Limiters<DefaultClock> {
    /// Limiters on the monotonic clock.
    pub fn new() -> Self {
        Limiters::with_clock(DefaultClock::default())
    }
}

impl Default for Limiters<DefaultClock> {
    fn default() -> Self {
        Limiters::new()
    }
}

impl<C: Clock + Clone> Limiters<C> {
    /// Limiters on a given clock (tests use `FakeRelativeClock`).
    pub fn with_clock(clock: C) -> Self {
        Limiters {
            clock,
            classes: RwLock::new(HashMap::default()),
        }
    }

    fn class(&self, rate: Rate) -> Arc<Keyed<C>> {
        // Sessions share the read lock; a new class is rare.
        if let Some(c) = self
            .classes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&rate)
        {
            return c.clone();
        }
        let mut m = self.classes.write().unwrap_or_else(|p| p.into_inner());
        m.entry(rate)
            .or_insert_with(|| {
                Arc::new(RateLimiter::dashmap_with_clock_and_hasher(
                    rate.quota(),
                    self.clock.clone(),
                    foldhash::fast::RandomState::default(),
                ))
            })
            .clone()
    }

    /// Takes one cell for `key` at `rate`; false when over the limit.
    pub fn check(&self, rate: Rate, key: u128) -> bool {
        // Keys carry their kind of limit (tags), so one class may serve
        // several kinds of limit without collisions.
        {
            // The common case: the class exists; no Arc traffic.
            let m = self.classes.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = m.get(&rate) {
                return c.check_key(&key).is_ok();
            }
        }
        self.class(rate).check_key(&key).is_ok()
    }

    /// Drops keys whose state equals a fresh one; bounds memory.
    pub fn retain_recent(&self) {
        let classes: Vec<_> = {
            let m = self.classes.read().unwrap_or_else(|p| p.into_inner());
            m.values().cloned().collect()
        };
        for c in classes {
            c.retain_recent();
            c.shrink_to_fit();
        }
    }

    /// Keys held across all classes.
    pub fn keys(&self) -> usize {
        let m = self.classes.read().unwrap_or_else(|p| p.into_inner());
        m.values().map(|c| c.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    const K_A: u128 = 1;
    const K_B: u128 = 2;

    #[test]
    fn a_charge_takes_a_cell_past_the_limit_but_never_beyond_empty() {
        let r = Rate::per_minute(5, 100);
        let mut c = Cell::default();
        for _ in 0..3 {
            c.charge(r, 1_000);
        }
        assert!(c.take(r, 1_000) && c.take(r, 1_000));
        assert!(!c.take(r, 1_000));
        // Ten more charged: still as empty as five takes leave it, so a
        // cell comes back one interval (12 s) later, not ten.
        for _ in 0..10 {
            c.charge(r, 1_000);
        }
        assert!(!c.take(r, 12_999));
        assert!(c.take(r, 13_000));
    }

    #[test]
    fn hourly_limit_with_full_burst_then_refill() {
        let clock = FakeRelativeClock::default();
        let l = Limiters::with_clock(clock.clone());
        let r = Rate::per_hour(5, 100);
        for i in 0..5 {
            assert!(l.check(r, K_A), "cell {i}");
        }
        assert!(!l.check(r, K_A));
        // Another key is unaffected.
        assert!(l.check(r, K_B));
        // One cell comes back every 12 minutes.
        clock.advance(Duration::from_secs(12 * 60));
        assert!(l.check(r, K_A));
        assert!(!l.check(r, K_A));
    }

    #[test]
    fn burst_percent_smooths() {
        let clock = FakeRelativeClock::default();
        let l = Limiters::with_clock(clock.clone());
        let r = Rate::per_hour(100, 10);
        assert_eq!(r.burst, 10);
        let ok = (0..50).filter(|_| l.check(r, K_A)).count();
        assert_eq!(ok, 10);
        clock.advance(Duration::from_secs(36));
        assert!(l.check(r, K_A));
    }

    #[test]
    fn classes_are_separate() {
        let clock = FakeRelativeClock::default();
        let l = Limiters::with_clock(clock);
        let r = Rate::per_hour(100, 100);
        let t = Rate::per_hour(10, 100);
        assert_eq!((0..20).filter(|_| l.check(t, K_A)).count(), 10);
        assert!(l.check(r, K_A));
        assert_eq!(r.describe(), "100/hour");
    }

    #[test]
    fn cell_allows_the_burst_then_one_per_interval() {
        let r = Rate::per_hour(100, 10);
        let mut c = Cell::default();
        let t0 = 1_772_409_600_000;
        assert_eq!((0..50).filter(|_| c.take(r, t0)).count(), 10);
        // One cell comes back every 36 s.
        assert!(!c.take(r, t0 + 35_000));
        assert!(c.take(r, t0 + 36_000));
        assert!(!c.take(r, t0 + 36_000));
        assert!(!c.is_idle(t0 + 36_000));
        assert!(c.is_idle(t0 + 3_600_000));
    }

    #[test]
    fn a_saved_cell_keeps_its_debt() {
        let r = Rate::per_hour(1000, 20);
        let mut c = Cell::default();
        let t0 = 1_772_409_600_000;
        assert_eq!((0..500).filter(|_| c.take(r, t0)).count(), 200);
        // Saved and loaded (a restart): no fresh burst a minute later.
        let mut back: Cell = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        let ok = (0..500).filter(|_| back.take(r, t0 + 60_000)).count();
        assert!(ok <= 17, "{ok}");
    }

    #[test]
    fn retain_recent_bounds_keys() {
        let clock = FakeRelativeClock::default();
        let l = Limiters::with_clock(clock.clone());
        let r = Rate::per_minute(60, 100);
        for i in 0..1000 {
            l.check(r, i);
        }
        assert_eq!(l.keys(), 1000);
        clock.advance(Duration::from_secs(120));
        l.retain_recent();
        assert_eq!(l.keys(), 0);
    }
}
