//! Gaps in a shard's sequence, as one stream sees them. The log is dense, so a gap is
//! a commit not yet readable: the stream waits for it, and takes the page as it is
//! only once the gap has outlived [`GAP_GRACE`] (see [`crate::feed`]).

use tokio::time::Instant;

use crate::cursor::Position;
use crate::feed::GAP_GRACE;

/// Per shard: the position after which a gap was first seen, and when.
#[derive(Debug, Clone)]
pub struct Gaps {
    first_seen: Vec<Option<(Position, Instant)>>,
}

impl Gaps {
    pub fn new(shards: usize) -> Self {
        Gaps {
            first_seen: vec![None; shards],
        }
    }

    /// Per shard: whether to take a page with a gap as it is (the gap outlived the
    /// grace period).
    pub fn accepted(&self) -> Vec<bool> {
        self.first_seen
            .iter()
            .enumerate()
            .map(|(shard, gap)| {
                let accept = gap.is_some_and(|(_, since)| since.elapsed() >= GAP_GRACE);
                if accept {
                    tracing::error!(
                        shard,
                        "a gap in the feed did not fill within the grace period; skipping it"
                    );
                }
                accept
            })
            .collect()
    }

    /// Records what a batch read after `positions` found: per shard, the seq found
    /// where the next one was expected. A gap still at the same position keeps the
    /// time it was first seen, so its grace period runs from then.
    pub fn observe(&mut self, positions: &[Position], found: &[Option<u64>]) {
        for (shard, ((gap, at), found)) in self
            .first_seen
            .iter_mut()
            .zip(positions)
            .zip(found)
            .enumerate()
        {
            *gap = match (found, *gap) {
                (None, _) => None,
                (Some(_), Some((seen, since))) if seen == *at => Some((seen, since)),
                (Some(seq), _) => {
                    tracing::warn!(
                        shard,
                        after = at.seq,
                        found = seq,
                        "gap in the feed; waiting for it to fill"
                    );
                    Some((*at, Instant::now()))
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64) -> Position {
        Position { created_ms: 1, seq }
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_is_accepted_once_it_outlives_the_grace_period() {
        let mut gaps = Gaps::new(2);
        gaps.observe(&[at(3), at(5)], &[Some(5), None]);
        assert_eq!(gaps.accepted(), [false, false]);
        tokio::time::advance(GAP_GRACE / 2).await;
        // Seen again at the same position: the grace period runs from the first sight.
        gaps.observe(&[at(3), at(5)], &[Some(5), None]);
        tokio::time::advance(GAP_GRACE / 2).await;
        assert_eq!(gaps.accepted(), [true, false]);
        // Filled: forgotten.
        gaps.observe(&[at(4), at(5)], &[None, None]);
        assert_eq!(gaps.accepted(), [false, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_at_a_new_position_starts_its_own_grace_period() {
        let mut gaps = Gaps::new(1);
        gaps.observe(&[at(3)], &[Some(5)]);
        tokio::time::advance(GAP_GRACE / 2).await;
        gaps.observe(&[at(4)], &[Some(6)]);
        tokio::time::advance(GAP_GRACE / 2).await;
        assert_eq!(gaps.accepted(), [false]);
    }
}
