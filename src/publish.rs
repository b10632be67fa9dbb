//! The append protocol. Each shard's log is dense: entry `n+1` is written in one
//! transaction with the head moving from `n` to `n+1`, conditioned on the head still
//! being `n`. A publisher that is slow between reading the head and committing finds
//! the head moved and retries on top of it, so no entry can appear behind a reader
//! that has already read past its position. The correctness argument is in
//! `docs/storage.md`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::bounty::{Bounty, BountyDraft};
use crate::cursor::{Position, MAX_CREATED_MS};
use crate::store::{AppendError, FeedWriter, LogEntry, StoreError};
use crate::timefmt;

/// How many entries one append may carry (DynamoDB allows 100 items per transaction,
/// one of which is the head).
pub const MAX_BATCH: usize = 99;
/// Attempts before giving up on a contended shard.
const MAX_ATTEMPTS: u32 = 25;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("shard {shard} stayed contended for {attempts} attempts")]
    Contended { shard: usize, attempts: u32 },
    #[error("a batch holds 1 to {MAX_BATCH} bounties (got {0})")]
    BatchSize(usize),
}

/// Picks the shard for a new append: uniform, so load spreads evenly.
pub fn pick_shard(shard_count: usize) -> usize {
    fastrand::usize(..shard_count.max(1))
}

/// The entries that follow `head`, created at `now` (never before the head's time, so
/// `created_ms` is monotone along the log and positions stay ordered by sort key).
pub fn entries_after(
    head: Position,
    now: DateTime<Utc>,
    drafts: &[(String, BountyDraft)],
) -> Vec<LogEntry> {
    let created_ms = timefmt::to_millis(now)
        .max(head.created_ms)
        .min(MAX_CREATED_MS);
    let created_at = timefmt::from_millis(created_ms);
    drafts
        .iter()
        .zip(1u64..)
        .map(|((id, draft), offset)| LogEntry {
            position: Position {
                created_ms,
                seq: head.seq + offset,
            },
            bounty: draft.clone().into_bounty(id.clone(), created_at),
        })
        .collect()
}

/// Appends `drafts` (each with its server-assigned id) to `shard` as one atomic batch,
/// retrying while other publishers win the race. Returns the committed bounties.
pub async fn append<W: FeedWriter>(
    store: &W,
    shard: usize,
    drafts: &[(String, BountyDraft)],
) -> Result<Vec<Bounty>, PublishError> {
    if drafts.is_empty() || drafts.len() > MAX_BATCH {
        return Err(PublishError::BatchSize(drafts.len()));
    }
    for attempt in 1..=MAX_ATTEMPTS {
        let head = store.head(shard).await?;
        let entries = entries_after(head, Utc::now(), drafts);
        let bounties = entries.iter().map(|entry| entry.bounty.clone()).collect();
        match store.append_after(shard, head, entries).await {
            Ok(()) => return Ok(bounties),
            Err(AppendError::HeadMoved) => {
                // Spread the retries of racing publishers apart.
                let spread = 1 + u64::from(attempt.min(8)) * 2;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..spread))).await;
            }
            Err(AppendError::Store(err)) => return Err(err.into()),
        }
    }
    Err(PublishError::Contended {
        shard,
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> BountyDraft {
        BountyDraft {
            title: "t".into(),
            description: String::new(),
            category: "python".into(),
            budget_cents: 1,
            currency: "USD".into(),
            tags: vec![],
            deadline: timefmt::parse("2030-01-01T00:00:00Z").expect("valid"),
        }
    }

    #[test]
    fn entries_follow_the_head_densely_and_never_go_back_in_time() {
        let head = Position {
            created_ms: 2_000,
            seq: 7,
        };
        let drafts = vec![("a".to_owned(), draft()), ("b".to_owned(), draft())];
        // A clock behind the head's time (skew between instances) must not reorder keys.
        let entries = entries_after(head, timefmt::from_millis(1_000), &drafts);
        let positions: Vec<_> = entries.iter().map(|e| e.position).collect();
        assert_eq!(
            positions,
            vec![
                Position {
                    created_ms: 2_000,
                    seq: 8
                },
                Position {
                    created_ms: 2_000,
                    seq: 9
                }
            ]
        );
        assert!(positions.iter().all(|p| p.sort_key() > head.sort_key()));
        assert_eq!(entries[1].bounty.id, "b");
        assert_eq!(timefmt::to_millis(entries[0].bounty.created_at), 2_000);
        let later = entries_after(head, timefmt::from_millis(5_000), &drafts);
        assert_eq!(later[0].position.created_ms, 5_000);
    }

    #[test]
    fn shard_pick_stays_in_range() {
        for _ in 0..100 {
            assert!(pick_shard(4) < 4);
        }
        assert_eq!(pick_shard(0), 0);
    }
}
