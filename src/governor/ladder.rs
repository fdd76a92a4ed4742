//! The ladder a scope climbs while its rules keep tripping: warn, throttle,
//! suspend. One step per `step_interval` at most, so a burst of trips in one
//! second is one decision, and a quiet day starts the ladder over.

use serde::{Deserialize, Serialize};

use super::settings::Step;

/// After this long without a trip, the ladder starts over.
pub const RESET_AFTER_MS: u64 = 24 * 3600 * 1000;

/// Where a scope stands on the ladder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadderState {
    /// Index of the next step.
    pub next: usize,
    /// When the last step was taken (unix ms).
    pub last_ms: Option<u64>,
}

impl LadderState {
    /// A rule tripped at `now_ms`: the step to take now, if any.
    pub fn climb(&mut self, ladder: &[Step], interval_ms: u64, now_ms: u64) -> Option<Step> {
        if ladder.is_empty() {
            return None;
        }
        if let Some(last) = self.last_ms {
            if now_ms.saturating_sub(last) >= RESET_AFTER_MS {
                self.next = 0;
            } else if now_ms.saturating_sub(last) < interval_ms {
                return None;
            }
        }
        let step = ladder[self.next.min(ladder.len() - 1)];
        self.next = (self.next + 1).min(ladder.len());
        self.last_ms = Some(now_ms);
        Some(step)
    }

    /// Back to the first step (after a restore).
    pub fn reset(&mut self) {
        *self = LadderState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &[Step] = &[Step::Warn, Step::Throttle, Step::Suspend];

    #[test]
    fn climbs_one_step_per_interval() {
        let mut l = LadderState::default();
        assert_eq!(l.climb(FULL, 1000, 0), Some(Step::Warn));
        assert_eq!(l.climb(FULL, 1000, 500), None, "same burst");
        assert_eq!(l.climb(FULL, 1000, 1000), Some(Step::Throttle));
        assert_eq!(l.climb(FULL, 1000, 2000), Some(Step::Suspend));
        // Stays at the top while it keeps tripping.
        assert_eq!(l.climb(FULL, 1000, 3000), Some(Step::Suspend));
    }

    #[test]
    fn quiet_day_starts_over_and_reset_works() {
        let mut l = LadderState::default();
        l.climb(FULL, 0, 0);
        l.climb(FULL, 0, 1);
        assert_eq!(l.climb(FULL, 0, 1 + RESET_AFTER_MS), Some(Step::Warn));
        l.reset();
        assert_eq!(l.climb(FULL, 0, 5), Some(Step::Warn));
    }

    #[test]
    fn suspend_only_ladder() {
        let mut l = LadderState::default();
        assert_eq!(l.climb(&[Step::Suspend], 0, 0), Some(Step::Suspend));
    }
}
