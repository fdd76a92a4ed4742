//! Deliveries per minute: the recipients' delivery results the governor
//! observes ([`super::Governor::observe_delivery`]), counted in one-minute
//! buckets over the last hour, for `GET /api/v1/governor` and the staff
//! console's overview. Fixed size, behind a mutex taken once per attempt.

use std::sync::Mutex;

use serde_json::json;

use crate::reply::Fate;

/// Minutes kept.
pub const MINUTES: usize = 60;
const MINUTE_MS: u64 = 60_000;

/// Per minute: delivered, deferred, failed (bounced).
#[derive(Debug, Default)]
pub struct Throughput(Mutex<Buckets>);

#[derive(Debug, Clone, Copy)]
struct Buckets {
    /// Start of the newest minute (unix ms).
    start_ms: u64,
    counts: [[u32; 3]; MINUTES],
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            start_ms: 0,
            counts: [[0; 3]; MINUTES],
        }
    }
}

impl Buckets {
    fn roll(&mut self, now_ms: u64) {
        let target = now_ms - now_ms % MINUTE_MS;
        if self.start_ms >= target {
            return;
        }
        let shift = ((target - self.start_ms) / MINUTE_MS).min(MINUTES as u64) as usize;
        self.counts.rotate_left(shift);
        for c in &mut self.counts[MINUTES - shift..] {
            *c = [0; 3];
        }
        self.start_ms = target;
    }
}

impl Throughput {
    /// Counts recipients' results of one attempt at `now_ms`.
    pub fn count<'a>(&self, fates: impl Iterator<Item = &'a Fate>, now_ms: u64) {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        b.roll(now_ms);
        let cur = &mut b.counts[MINUTES - 1];
        for f in fates {
            let i = match f {
                Fate::Delivered => 0,
                Fate::Temporary => 1,
                Fate::Permanent | Fate::Expired => 2,
            };
            cur[i] = cur[i].saturating_add(1);
        }
    }

    /// The last hour, oldest minute first (the newest is the current,
    /// partial, one), and the rates: delivered in the last 60 seconds
    /// (the current minute and the share of the previous one still in
    /// them) and the average per minute over the last 15 minutes.
    pub fn to_json(&self, now_ms: u64) -> serde_json::Value {
        let mut b = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        b.roll(now_ms);
        let col = |i: usize| b.counts.iter().map(|c| c[i]).collect::<Vec<_>>();
        let delivered = col(0);
        let into = (now_ms - b.start_ms) as f64 / MINUTE_MS as f64;
        let last_minute =
            f64::from(delivered[MINUTES - 1]) + f64::from(delivered[MINUTES - 2]) * (1.0 - into);
        let quarter: u32 = delivered[MINUTES - 15..].iter().sum();
        let first = b.start_ms.saturating_sub((MINUTES as u64 - 1) * MINUTE_MS);
        json!({
            "bucket_seconds": MINUTE_MS / 1000,
            "first_bucket": super::clock::utc(first),
            "delivered": delivered,
            "deferred": col(1),
            "failed": col(2),
            "delivered_last_minute": last_minute.round() as u64,
            "delivered_per_minute_15min": (f64::from(quarter) / 15.0 * 10.0).round() / 10.0,
            "delivered_hour": delivered.iter().map(|n| u64::from(*n)).sum::<u64>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_772_409_600_000;

    #[test]
    fn results_are_counted_per_minute_over_the_last_hour() {
        let t = Throughput::default();
        t.count(
            [Fate::Delivered, Fate::Delivered, Fate::Temporary].iter(),
            T + 1_000,
        );
        t.count(
            [Fate::Permanent, Fate::Delivered].iter(),
            T + MINUTE_MS + 5_000,
        );
        // 30 s into the second minute: all of it and half of the first.
        let v = t.to_json(T + MINUTE_MS + 30_000);
        assert_eq!(v["delivered"][MINUTES - 1], 1);
        assert_eq!(v["delivered"][MINUTES - 2], 2);
        assert_eq!(v["deferred"][MINUTES - 2], 1);
        assert_eq!(v["failed"][MINUTES - 1], 1);
        assert_eq!(v["delivered_last_minute"], 2);
        assert_eq!(v["delivered_per_minute_15min"], 0.2);
        assert_eq!(v["delivered_hour"], 3);
        // An hour on, nothing is left.
        let v = t.to_json(T + 62 * MINUTE_MS);
        assert_eq!(v["delivered_hour"], 0);
        assert_eq!(v["delivered"].as_array().unwrap().len(), MINUTES);
    }
}
