//! The append protocol. Each shard's log is dense: entry `n+1` is written in one
//! transaction with the head moving from `n` to `n+1`, conditioned on the head still
//! being `n`. A publisher that is slow between reading the head and committing finds
//! the head moved and retries on top of it, so no entry can appear behind a reader
//! that has already read past its position. The correctness argument is in
//! `docs/storage.md`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::bounty::id::bounty_id;
use crate::bounty::{parse_json, Bounty, BountyDraft};
use crate::change::owner_of;
use crate::cursor::{Position, MAX_CREATED_MS};
use crate::idempotency::{self, IdempotencyKey};
use crate::store::{
    AppendError, EntryKind, FeedWriter, IdempotencyClaim, IdempotencyRecord, IdempotencyRecords,
    NewEntry, StoreError,
};
use crate::{timefmt, InputError};

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
    /// The idempotency key was claimed by another request first.
    #[error("the idempotency key is already claimed")]
    Claimed,
}

/// Why a publish request got no bounty: the request was refused, the store could not
/// say whether its idempotency key was used, or the append failed (nothing written).
#[derive(Debug, thiserror::Error)]
pub enum PublishRequestError {
    #[error(transparent)]
    Invalid(#[from] InputError),
    /// Reading an idempotency claim failed: whether the key was used is unknown.
    #[error(transparent)]
    Lookup(StoreError),
    #[error(transparent)]
    Append(#[from] PublishError),
}

/// A publish that was answered: the bounty, and whether an earlier request with the
/// same idempotency key created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub bounty: Bounty,
    pub replayed: bool,
}

impl Published {
    pub fn created(bounty: Bounty) -> Self {
        Self {
            bounty,
            replayed: false,
        }
    }

    pub fn replayed(bounty: Bounty) -> Self {
        Self {
            bounty,
            replayed: true,
        }
    }
}

/// Publishes one bounty from a request body, on a shard picked at random: once per
/// `key` if the publisher sent one.
pub async fn publish<W: FeedWriter + IdempotencyRecords>(
    store: &W,
    publisher: &[u8],
    key: Option<IdempotencyKey>,
    body: &[u8],
) -> Result<Published, PublishRequestError> {
    let shard = pick_shard(store.shard_count());
    let owner = owner_of(publisher);
    let published = match key {
        None => {
            let draft = BountyDraft::from_json(body, Utc::now())?;
            let mut appended = append_with(store, shard, &[draft], Some(&owner), None).await?;
            let bounty = appended.pop().ok_or(PublishError::BatchSize(0))?;
            tracing::info!(id = %bounty.id, shard, category = %bounty.category, budget_cents = bounty.budget_cents, "bounty published");
            Published::created(bounty)
        }
        Some(key) => {
            // Parsed once: hashed for the claim, then validated if the key is new.
            let request = parse_json(body)?;
            let claim = key.claim(publisher, &request, Utc::now());
            publish_once(store, shard, &owner, &claim, request, Utc::now()).await?
        }
    };
    Ok(published)
}

/// Publishes `request` (a publish body parsed as JSON) under `claim` on `shard`: the
/// first request with the key creates the bounty, every later or racing one replays it.
async fn publish_once<W: FeedWriter + IdempotencyRecords>(
    store: &W,
    shard: usize,
    owner: &str,
    claim: &IdempotencyClaim,
    request: Value,
    now: DateTime<Utc>,
) -> Result<Published, PublishRequestError> {
    // A key seen before answers from its record, without validating the body again
    // (its deadline may have passed since).
    let seen = store
        .idempotency_record(&claim.key_hash)
        .await
        .map_err(PublishRequestError::Lookup)?;
    if let Some(record) = seen {
        return replayed(claim, record);
    }
    let draft = BountyDraft::from_value(request, now)?;
    let appended = append_with(store, shard, &[draft], Some(owner), Some(claim)).await;
    match appended.and_then(|mut bounties| bounties.pop().ok_or(PublishError::BatchSize(0))) {
        Ok(bounty) => {
            tracing::info!(id = %bounty.id, shard, category = %bounty.category, budget_cents = bounty.budget_cents, idempotent = true, "bounty published");
            Ok(Published::created(bounty))
        }
        Err(PublishError::Claimed) => {
            // A racing request with the same key committed first: answer as it did.
            let record = store
                .idempotency_record(&claim.key_hash)
                .await
                .and_then(|record| {
                    record.ok_or_else(|| StoreError::Corrupt {
                        key: "idempotency claim".into(),
                        detail: "claimed but not readable".into(),
                    })
                })
                .map_err(PublishRequestError::Lookup)?;
            replayed(claim, record)
        }
        Err(err) => Err(err.into()),
    }
}

/// The answer from a claim's record (or 422 if the request differs).
fn replayed(
    claim: &IdempotencyClaim,
    record: IdempotencyRecord,
) -> Result<Published, PublishRequestError> {
    let bounty = idempotency::replay(claim, record)?;
    tracing::info!(id = %bounty.id, "idempotent replay");
    Ok(Published::replayed(bounty))
}

/// Picks the shard for a new append: uniform, so load spreads evenly.
pub fn pick_shard(shard_count: usize) -> usize {
    fastrand::usize(..shard_count.max(1))
}

/// The entries that follow `head` in `shard`, created at `now` (never before the
/// head's time, so `created_ms` is monotone along the log and positions stay ordered
/// by sort key), published by `owner`. Ids are assigned here, at commit time, so they
/// carry `created_ms`.
pub fn entries_after(
    head: Position,
    now: DateTime<Utc>,
    shard: usize,
    drafts: &[BountyDraft],
    owner: Option<&str>,
) -> Vec<NewEntry> {
    let created_ms = timefmt::to_millis(now)
        .max(head.created_ms)
        .min(MAX_CREATED_MS);
    let created_at = timefmt::from_millis(created_ms);
    drafts
        .iter()
        .zip(1u64..)
        .map(|(draft, offset)| NewEntry {
            position: Position {
                created_ms,
                seq: head.seq + offset,
            },
            kind: EntryKind::Published,
            bounty: draft
                .clone()
                .into_bounty(bounty_id(created_ms, shard), created_at),
            owner: owner.map(str::to_owned),
        })
        .collect()
}

/// Appends `drafts` to `shard` as one atomic batch, retrying while other publishers
/// win the race. Returns the committed bounties. Nobody owns them: they cannot be
/// changed (seeding and benchmarks; requests publish with an owner).
pub async fn append<W: FeedWriter>(
    store: &W,
    shard: usize,
    drafts: &[BountyDraft],
) -> Result<Vec<Bounty>, PublishError> {
    append_with(store, shard, drafts, None, None).await
}

/// Appends one bounty and claims `claim`'s idempotency key in the same write: either
/// both happen or neither. [`PublishError::Claimed`] if another request took the key.
pub async fn append_claimed<W: FeedWriter>(
    store: &W,
    shard: usize,
    draft: BountyDraft,
    claim: &IdempotencyClaim,
) -> Result<Bounty, PublishError> {
    let mut bounties = append_with(store, shard, &[draft], None, Some(claim)).await?;
    bounties.pop().ok_or(PublishError::BatchSize(0))
}

/// Appends `drafts` published by `owner` (who may change them), with `claim` if any.
async fn append_with<W: FeedWriter>(
    store: &W,
    shard: usize,
    drafts: &[BountyDraft],
    owner: Option<&str>,
    claim: Option<&IdempotencyClaim>,
) -> Result<Vec<Bounty>, PublishError> {
    if drafts.is_empty() || drafts.len() > MAX_BATCH {
        return Err(PublishError::BatchSize(drafts.len()));
    }
    for attempt in 1..=MAX_ATTEMPTS {
        let head = store.head(shard).await?;
        let entries = entries_after(head, Utc::now(), shard, drafts, owner);
        let bounties = entries.iter().map(|entry| entry.bounty.clone()).collect();
        match store.append_after(shard, head, entries, claim).await {
            Ok(()) => return Ok(bounties),
            Err(AppendError::HeadMoved) => {
                // Spread the retries of racing publishers apart.
                let spread = 1 + u64::from(attempt.min(8)) * 2;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..spread))).await;
            }
            Err(AppendError::Claimed) => return Err(PublishError::Claimed),
            // Only changes are conditioned on a version: a store that says so of a
            // publish is broken, and nothing was written.
            Err(AppendError::VersionMoved) => {
                return Err(PublishError::Store(StoreError::Corrupt {
                    key: format!("feed#{shard}"),
                    detail: "a publish was refused on a bounty version".into(),
                }))
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
            category: crate::bounty::Slug::parse("python").expect("slug"),
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
        let drafts = vec![draft(), draft()];
        // A clock behind the head's time (skew between instances) must not reorder keys.
        let entries = entries_after(head, timefmt::from_millis(1_000), 3, &drafts, None);
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
        assert_ne!(entries[0].bounty.id, entries[1].bounty.id);
        assert_eq!(
            crate::bounty::id::locate(&entries[1].bounty.id),
            Some((3, 2_000))
        );
        assert_eq!(timefmt::to_millis(entries[0].bounty.created_at), 2_000);
        let later = entries_after(head, timefmt::from_millis(5_000), 3, &drafts, None);
        assert_eq!(later[0].position.created_ms, 5_000);
    }

    #[test]
    fn shard_pick_stays_in_range() {
        for _ in 0..100 {
            assert!(pick_shard(4) < 4);
        }
        assert_eq!(pick_shard(0), 0);
    }

    mod appending {
        use super::*;
        use crate::store::memory::MemoryStore;
        use crate::store::IdempotencyRecords;

        fn claim(key_hash: &str) -> IdempotencyClaim {
            IdempotencyClaim {
                key_hash: key_hash.into(),
                request_sha256: "r".into(),
                expires_at: 1,
            }
        }

        #[tokio::test(start_paused = true)]
        async fn a_publisher_that_lost_the_race_retries_on_the_new_head() {
            let store = MemoryStore::new(2);
            store.push(1, "rust");
            store.lose_next_appends(3);
            let bounties = append(&*store, 1, &[draft(), draft()])
                .await
                .expect("committed");
            let entries = store.entries(1);
            let seqs: Vec<u64> = entries.iter().map(|e| e.position.seq).collect();
            assert_eq!(seqs, [1, 2, 3]);
            let committed: Vec<&Bounty> = entries[1..]
                .iter()
                .filter_map(|e| e.bounty.as_ref().ok())
                .collect();
            assert_eq!(committed, bounties.iter().collect::<Vec<_>>());
            assert!(store.entries(0).is_empty());
        }

        #[tokio::test(start_paused = true)]
        async fn a_shard_contended_on_every_attempt_is_given_up() {
            let store = MemoryStore::new(1);
            store.lose_next_appends(MAX_ATTEMPTS);
            let err = append(&*store, 0, &[draft()]).await.expect_err("contended");
            assert!(
                matches!(err, PublishError::Contended { shard: 0, attempts } if attempts == MAX_ATTEMPTS),
                "{err}"
            );
            assert!(store.entries(0).is_empty());
        }

        #[tokio::test]
        async fn a_batch_holds_one_to_the_most_drafts() {
            let store = MemoryStore::new(1);
            let err = append(&*store, 0, &[]).await.expect_err("empty");
            assert!(matches!(err, PublishError::BatchSize(0)), "{err}");
            let too_many = vec![draft(); MAX_BATCH + 1];
            let err = append(&*store, 0, &too_many).await.expect_err("too many");
            assert!(
                matches!(err, PublishError::BatchSize(n) if n == MAX_BATCH + 1),
                "{err}"
            );
            let most = vec![draft(); MAX_BATCH];
            assert_eq!(
                append(&*store, 0, &most).await.expect("fits").len(),
                MAX_BATCH
            );
        }

        #[tokio::test]
        async fn a_claim_is_written_with_its_bounty_and_taken_once() {
            let store = MemoryStore::new(1);
            let bounty = append_claimed(&*store, 0, draft(), &claim("k"))
                .await
                .expect("committed");
            let record = store
                .idempotency_record("k")
                .await
                .expect("read")
                .expect("recorded");
            assert_eq!(record.bounty, bounty);
            assert_eq!(record.request_sha256, "r");
            let err = append_claimed(&*store, 0, draft(), &claim("k"))
                .await
                .expect_err("claimed");
            assert!(matches!(err, PublishError::Claimed), "{err}");
            assert_eq!(store.entries(0).len(), 1, "no second bounty");
            assert_eq!(store.idempotency_record("other").await.expect("read"), None);
        }
    }
}
