//! When a stream must end: the earlier of its cap (`STREAM_MAX_SECONDS` from its start)
//! and the invocation's deadline minus a margin (contract, "Deadline"), so that the
//! `checkpoint` is written and the stream's slot released before Lambda stops the
//! invocation, however long the store took before the stream started.

use std::time::{Duration, SystemTime};

/// Time kept back before the invocation's deadline: the `checkpoint`'s write, the
/// release of the stream's slot (at most `http::stream_cap`'s one-second wait) and
/// the runtime's end of the response all fit in it.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// Lambda's longest timeout: no invocation still running can be further past its
/// deadline than this.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(900);

/// How long a stream starting `now` may run, given its cap and the invocation's
/// deadline. A deadline further in the past than any invocation could outlive is not
/// one Lambda gave (`cargo lambda watch` sends 600,000 ms after the epoch): it is
/// ignored, and the cap alone applies. A deadline passed only just now (a slow store
/// used the time up) leaves nothing: the stream checkpoints at once.
pub fn run_for(now: SystemTime, deadline: Option<SystemTime>, cap: Duration) -> Duration {
    let Some(deadline) = deadline else {
        return cap;
    };
    match deadline.duration_since(now) {
        Ok(left) => cap.min(left.saturating_sub(DEADLINE_MARGIN)),
        Err(past) if past.duration() <= LONGEST_TIMEOUT => Duration::ZERO,
        Err(_) => cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(270);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn the_cap_applies_when_the_deadline_is_further() {
        assert_eq!(run_for(at(0), Some(at(300)), CAP), CAP);
        assert_eq!(run_for(at(0), None, CAP), CAP);
    }

    #[test]
    fn a_nearer_deadline_ends_the_stream_a_margin_before_it() {
        // A slow store spent 40 s of a 300 s invocation before the stream started.
        assert_eq!(
            run_for(at(40), Some(at(300)), CAP),
            Duration::from_secs(260) - DEADLINE_MARGIN
        );
        assert_eq!(run_for(at(299), Some(at(300)), CAP), Duration::ZERO);
        assert_eq!(run_for(at(310), Some(at(300)), CAP), Duration::ZERO);
    }

    #[test]
    fn a_deadline_in_the_past_is_the_emulators_and_is_ignored() {
        let emulator = SystemTime::UNIX_EPOCH + Duration::from_millis(600_000);
        assert_eq!(run_for(at(0), Some(emulator), CAP), CAP);
    }
}
