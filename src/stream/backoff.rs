//! Back-off between polls while the store keeps failing.

use std::time::Duration;

/// The delay before retry number `failures` (1-based): exponential from `base`,
/// capped, with jitter in [50 %, 100 %] of the step (`jitter` in [0, 1]) so that
/// many streams failing together do not retry together.
pub fn backoff_delay(failures: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let step = base.saturating_mul(1u32 << doublings).min(cap);
    step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The failures in a row of one stream's polls, and the wait each one earns.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// A poll succeeded: the next failure starts again from `base`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// A poll failed: the wait before the next one, in whole milliseconds, so the
    /// stream waits exactly what its `error` frame announces.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let delay = backoff_delay(self.failures, self.base, self.cap, fastrand::f64());
        Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff_delay(1, base, cap, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(1, base, cap, 0.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(10, base, cap, 1.0), cap);
        assert_eq!(backoff_delay(u32::MAX, base, cap, 0.0), cap / 2);
    }

    #[test]
    fn a_success_starts_the_waits_again_from_the_base() {
        let base = Duration::from_secs(1);
        let mut backoff = Backoff::new(base, Duration::from_secs(30));
        for _ in 0..5 {
            backoff.failed();
        }
        assert_eq!(backoff.failures(), 5);
        backoff.reset();
        let wait = backoff.failed();
        assert!((base / 2..=base).contains(&wait), "{wait:?}");
        assert_eq!(wait.subsec_nanos() % 1_000_000, 0, "whole milliseconds");
    }
}
