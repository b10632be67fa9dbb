//! Exponential backoff with jitter, for reconnecting.
//!
//! The n-th consecutive failure waits `base * 2^(n-1)`, capped, then scaled by a random
//! factor in `[1 - jitter, 1]` ("equal-ish jitter") so that many clients cut off at the
//! same moment do not come back at the same moment.

use std::time::Duration;

/// The shortest reconnect delay a server's `retry:` can ask for.
///
/// `retry: 0` (a misconfigured server, or a proxy rewriting the stream) would otherwise
/// make every failed attempt come back at once: with the exponential growth starting
/// from zero, a client that keeps failing would hammer the server in a tight loop.
/// 250 ms keeps a failing client to at most four attempts a second, far below what a
/// real server asks for (the firehose sends `retry: 2000`), so no legitimate setting is
/// changed by it.
pub const MIN_SERVER_RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Backoff {
    /// The first delay; the server's `retry:` replaces it.
    pub base: Duration,
    pub cap: Duration,
    /// Fraction of the delay that is random, 0.0..=1.0.
    pub jitter: f64,
    /// No delay is shorter than this, jitter included (it beats `cap` too: it is there
    /// to protect the server). Zero until [`Backoff::server_retry`] sets it.
    pub floor: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, jitter: f64) -> Self {
        Self {
            base,
            cap,
            jitter: jitter.clamp(0.0, 1.0),
            floor: Duration::ZERO,
            failures: 0,
        }
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure; returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exponent = (self.failures - 1).min(20);
        let raw = self.base.saturating_mul(1 << exponent).min(self.cap);
        let factor = 1.0 - self.jitter * fastrand::f64();
        raw.mul_f64(factor).max(self.floor)
    }

    /// The server's `retry:` becomes the base delay, never less than
    /// [`MIN_SERVER_RETRY`] (which then also bounds every jittered delay).
    pub fn server_retry(&mut self, retry: Duration) {
        self.floor = MIN_SERVER_RETRY;
        self.base = retry.max(MIN_SERVER_RETRY);
    }

    /// A connection worked: start again from the base delay.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap_without_jitter() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS, 0.0);
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(backoff.failures(), 6);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 100 * MS);
    }

    #[test]
    fn jitter_stays_within_its_share_of_the_delay() {
        let mut backoff = Backoff::new(1000 * MS, 1000 * MS, 0.5);
        for _ in 0..200 {
            let delay = backoff.next_delay();
            assert!(delay >= 500 * MS && delay <= 1000 * MS, "{delay:?}");
        }
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(30), 0.0);
        for _ in 0..100 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
    }

    #[test]
    fn a_servers_retry_is_floored_and_the_floor_survives_jitter() {
        let mut backoff = Backoff::new(10 * MS, 1000 * MS, 1.0);
        backoff.server_retry(Duration::ZERO);
        assert_eq!(backoff.base, MIN_SERVER_RETRY);
        for _ in 0..50 {
            assert!(backoff.next_delay() >= MIN_SERVER_RETRY);
        }
        backoff.server_retry(2000 * MS);
        assert_eq!(backoff.base, 2000 * MS, "a sane retry is kept as it is");
    }
}
