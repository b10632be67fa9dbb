//! Changing a bounty (`PATCH /api/v1/tasks/{id}`): each change is an entry in the same
//! log as publishes, appended to the bounty's shard with the bounty's state moving
//! from version `v` to `v + 1` in the same transaction. The head's condition keeps the
//! log dense, the state's condition keeps versions dense; together a bounty's
//! versions are in log order, so changes reach streams exactly once and in order, as
//! publishes do (`docs/storage.md`, "Changes").

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::bounty::patch::Patch;
use crate::bounty::{parse_json, Bounty, BountyStatus};
use crate::cursor::MAX_CREATED_MS;
use crate::idempotency::{self, IdempotencyKey};
use crate::lookup::current;
use crate::store::{
    AppendError, Current, EntryKind, FeedReader, FeedWriter, IdempotencyClaim, IdempotencyRecords,
    NewEntry, StoreError,
};
use crate::{timefmt, InputError};

/// Attempts before giving up on a bounty (or shard) other writers keep changing.
const MAX_ATTEMPTS: u32 = 25;

/// Who may change a bounty: derived from the hash of the API key that published it,
/// so the stored value is not the hash the configuration holds.
pub fn owner_of(publisher: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"firehose bounty owner\0")
        .chain_update(publisher)
        .finalize();
    hex::encode(&digest[..16])
}

/// Why a change was not made. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Invalid(#[from] InputError),
    #[error("no such bounty")]
    NotFound,
    /// The key is not the one that published the bounty.
    #[error("the bounty was published with another key")]
    Forbidden,
    /// Closed or expired: nothing changes it any more.
    #[error("the bounty is {}", status_word(*.0))]
    Terminal(BountyStatus),
    /// Reading the bounty or an idempotency claim failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the bounty stayed contended for {0} attempts")]
    Contended(u32),
}

fn status_word(status: BountyStatus) -> &'static str {
    match status {
        BountyStatus::Open => "open",
        BountyStatus::Closed => "closed",
        BountyStatus::Expired => "expired",
    }
}

/// A change that was answered: the bounty after it, and whether an earlier request
/// with the same idempotency key made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub bounty: Bounty,
    pub replayed: bool,
}

/// Applies the PATCH `body` to bounty `id` for `publisher` (the hash of its API key),
/// once per `key` if it sent one.
pub async fn change<S: FeedReader + FeedWriter + IdempotencyRecords>(
    store: &S,
    publisher: &[u8],
    id: &str,
    key: Option<IdempotencyKey>,
    body: &[u8],
) -> Result<Changed, ChangeError> {
    let request = parse_json(body)?;
    let claim = key.map(|key| key.claim(publisher, &scoped_request(id, &request), Utc::now()));
    if let Some(claim) = &claim {
        // A key seen before answers from its record, without validating again (the
        // deadline it set may have passed since).
        if let Some(record) = store.idempotency_record(&claim.key_hash).await? {
            return replayed(claim, record);
        }
    }
    let patch = Patch::from_value(request, Utc::now())?;
    let owner = owner_of(publisher);
    for attempt in 1..=MAX_ATTEMPTS {
        let now = Utc::now();
        let Current {
            bounty,
            shard,
            owner: bounty_owner,
            ..
        } = current(store, id).await?.ok_or(ChangeError::NotFound)?;
        if bounty_owner.as_deref() != Some(owner.as_str()) {
            return Err(ChangeError::Forbidden);
        }
        if bounty.is_terminal(now) {
            return Err(ChangeError::Terminal(bounty.as_of(now).status));
        }
        let Some(after) = patch.apply(&bounty, now) else {
            return Ok(Changed {
                bounty,
                replayed: false,
            });
        };
        match append_change(store, shard, after, &owner, claim.as_ref(), now).await {
            Ok(bounty) => {
                tracing::info!(id = %bounty.id, shard, version = bounty.version, change = patch.kind(), "bounty changed");
                return Ok(Changed {
                    bounty,
                    replayed: false,
                });
            }
            Err(AppendError::HeadMoved | AppendError::VersionMoved) => {
                // Another publish or change committed first: read again, apply again.
                let spread = 1 + u64::from(attempt.min(8)) * 2;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..spread))).await;
            }
            Err(AppendError::Claimed) => {
                // A racing request with the same key committed first: answer as it did.
                let Some(claim) = &claim else {
                    return Err(ChangeError::Contended(attempt));
                };
                let record = store
                    .idempotency_record(&claim.key_hash)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt {
                        key: "idempotency claim".into(),
                        detail: "claimed but not readable".into(),
                    })?;
                return replayed(claim, record);
            }
            Err(AppendError::Store(err)) => return Err(err.into()),
        }
    }
    Err(ChangeError::Contended(MAX_ATTEMPTS))
}

/// Appends `after` (the bounty after a change) to `shard` on its current head.
async fn append_change<W: FeedWriter>(
    store: &W,
    shard: usize,
    after: Bounty,
    owner: &str,
    claim: Option<&IdempotencyClaim>,
    now: DateTime<Utc>,
) -> Result<Bounty, AppendError> {
    let head = store.head(shard).await?;
    // Never before the head's time, so sort-key order stays log order.
    let created_ms = timefmt::to_millis(now)
        .max(head.created_ms)
        .min(MAX_CREATED_MS);
    let kind = match after.status {
        BountyStatus::Closed => EntryKind::Closed,
        _ => EntryKind::Updated,
    };
    let entry = NewEntry {
        position: crate::cursor::Position {
            created_ms,
            seq: head.seq + 1,
        },
        kind,
        bounty: after.clone(),
        owner: Some(owner.to_owned()),
    };
    store.append_after(shard, head, vec![entry], claim).await?;
    Ok(after)
}

fn replayed(
    claim: &IdempotencyClaim,
    record: crate::store::IdempotencyRecord,
) -> Result<Changed, ChangeError> {
    let bounty = idempotency::replay(claim, record)?;
    tracing::info!(id = %bounty.id, "idempotent replay of a change");
    Ok(Changed {
        bounty,
        replayed: true,
    })
}

/// The request an idempotency key of a PATCH is bound to: the bounty is part of it, so
/// one key cannot change two bounties.
fn scoped_request(id: &str, body: &Value) -> Value {
    json!({ "patch": id.to_ascii_uppercase(), "body": body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use serde_json::json;

    const PUBLISHER: &[u8] = b"publisher-hash";

    async fn published(store: &MemoryStore) -> Bounty {
        let body = json!({
            "title": "Fix it", "category": "python", "budget_cents": 500,
            "deadline": "2099-01-01T00:00:00Z"
        });
        crate::publish::publish(store, PUBLISHER, None, body.to_string().as_bytes())
            .await
            .expect("published")
            .bounty
    }

    async fn patch(store: &MemoryStore, id: &str, body: Value) -> Result<Changed, ChangeError> {
        change(store, PUBLISHER, id, None, body.to_string().as_bytes()).await
    }

    #[tokio::test]
    async fn changes_are_entries_after_the_publish_with_dense_versions() {
        let store = MemoryStore::new(1);
        let bounty = published(&store).await;
        let first = patch(&store, &bounty.id, json!({"budget_cents": 900}))
            .await
            .expect("changed");
        assert_eq!((first.bounty.version, first.bounty.budget_cents), (2, 900));
        let closed = patch(
            &store,
            &bounty.id,
            json!({"status": "closed", "close_reason": "cancelled"}),
        )
        .await
        .expect("closed");
        assert_eq!(closed.bounty.version, 3);
        let kinds: Vec<_> = store.entries(0).iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EntryKind::Published, EntryKind::Updated, EntryKind::Closed]
        );
        let err = patch(&store, &bounty.id, json!({"title": "again"}))
            .await
            .expect_err("closed");
        assert!(
            matches!(err, ChangeError::Terminal(BountyStatus::Closed)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn only_the_publishing_key_changes_a_bounty() {
        let store = MemoryStore::new(1);
        let bounty = published(&store).await;
        let err = change(&*store, b"other", &bounty.id, None, br#"{"title":"x"}"#)
            .await
            .expect_err("forbidden");
        assert!(matches!(err, ChangeError::Forbidden), "{err}");
        let err = patch(&store, "01ARZ3NDEKTSV4RRFFQ69G5FAV", json!({"title": "x"}))
            .await
            .expect_err("unknown");
        assert!(matches!(err, ChangeError::NotFound), "{err}");
    }

    #[tokio::test]
    async fn a_patch_that_changes_nothing_writes_nothing() {
        let store = MemoryStore::new(1);
        let bounty = published(&store).await;
        let same = patch(&store, &bounty.id, json!({"title": "Fix it"}))
            .await
            .expect("answered");
        assert_eq!(same.bounty, bounty);
        assert_eq!(store.entries(0).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_that_lost_the_race_is_applied_again_on_top() {
        let store = MemoryStore::new(1);
        let bounty = published(&store).await;
        store.lose_next_appends(3);
        let changed = patch(&store, &bounty.id, json!({"tags": ["ci"]}))
            .await
            .expect("changed");
        assert_eq!(changed.bounty.version, 2);
    }

    #[tokio::test]
    async fn an_idempotent_change_is_made_once_and_replayed() {
        let store = MemoryStore::new(1);
        let bounty = published(&store).await;
        let key = || IdempotencyKey::from_header(Some(b"k-1")).expect("valid");
        let body = br#"{"budget_cents": 700}"#;
        let first = change(&*store, PUBLISHER, &bounty.id, key(), body)
            .await
            .expect("changed");
        let again = change(&*store, PUBLISHER, &bounty.id, key(), body)
            .await
            .expect("replayed");
        assert!(!first.replayed && again.replayed);
        assert_eq!(first.bounty, again.bounty);
        assert_eq!(store.entries(0).len(), 2, "one change");
        let err = change(
            &*store,
            PUBLISHER,
            &bounty.id,
            key(),
            br#"{"budget_cents": 9}"#,
        )
        .await
        .expect_err("reused");
        assert!(matches!(err, ChangeError::Invalid(_)), "{err}");
    }
}
