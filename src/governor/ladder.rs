//! The ladder a scope climbs while its rules keep tripping: warn, throttle,
//! suspend. One step per `step_interval` at most, so a burst of trips in one
//! second is one decision, and a quiet day starts the ladder over.

use serde::{Deserialize, Serialize};

use super::settings::Step;

/// After this long without a trip, the ladder starts over.
pub const RESET_AFTER_MS: u64 = 24 * 3600 * 1000;

/// Steps remembered per scope, for the evidence of the next one.
const HISTORY: usize = 6;

/// One step taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// The step.
    pub step: Step,
    /// When (unix ms).
    pub at_ms: u64,
    /// The rule that tripped.
    pub rule: String,
}

/// Where a scope stands on the ladder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadderState {
    /// Index of the next step.
    pub next: usize,
    /// When the last step was taken (unix ms).
    pub last_ms: Option<u64>,
    /// The latest steps, oldest first.
    #[serde(default)]
    pub history: Vec<Taken>,
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

    /// Records a step taken outside the ladder's order (novelty steps go
    /// by their own evidence), or by it.
    pub fn record(&mut self, step: Step, rule: &str, now_ms: u64) {
        if self.history.len() >= HISTORY {
            self.history.remove(0);
        }
        self.history.push(Taken {
            step,
            at_ms: now_ms,
            rule: rule.to_string(),
        });
        self.last_ms = Some(now_ms);
    }

    /// Back to the first step (after a restore); the history stays.
    pub fn reset(&mut self) {
        self.next = 0;
        self.last_ms = None;
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
