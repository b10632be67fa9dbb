//! One bounty by id, as it is now: its state if it changed since its publish
//! (`FeedReader::states`), else its publish entry. The id says which shard and which
//! millisecond hold that entry ([`crate::bounty::id::locate`]), so finding it is one
//! Query on a one-millisecond key range.

use chrono::{DateTime, Utc};

use crate::bounty::id::locate;
use crate::bounty::Bounty;
use crate::store::{Current, FeedReader, StoreError};

/// The bounty `id` as it is shown at `now` (any status), if the store holds it; `None`
/// for ids that are not ours too.
pub async fn lookup<R: FeedReader>(
    store: &R,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Bounty>, StoreError> {
    Ok(current(store, id)
        .await?
        .map(|found| found.bounty.as_of(now)))
}

/// The bounty `id` as stored now, where its latest entry is, and its owner.
pub async fn current<R: FeedReader>(store: &R, id: &str) -> Result<Option<Current>, StoreError> {
    let Some((shard, created_ms)) = locate(id) else {
        return Ok(None);
    };
    if shard >= store.shard_count() {
        return Ok(None);
    }
    // Ids are case-insensitive (Crockford base32); the store holds the canonical form.
    let canonical = id.to_ascii_uppercase();
    // The state first: read after it, the publish entry cannot be newer than it.
    if let Some(state) = store.states(std::slice::from_ref(&canonical)).await?.pop() {
        return Ok(Some(state));
    }
    store.find(shard, created_ms, &canonical).await
}

/// `bounties` (publish entries) as they are now: each replaced by its state where it
/// changed since. One batched read of the states for all of them.
pub async fn as_they_are_now<R: FeedReader>(
    store: &R,
    bounties: Vec<Bounty>,
) -> Result<Vec<Bounty>, StoreError> {
    if bounties.is_empty() {
        return Ok(bounties);
    }
    let ids: Vec<String> = bounties.iter().map(|bounty| bounty.id.clone()).collect();
    let mut states: std::collections::HashMap<String, Bounty> = store
        .states(&ids)
        .await?
        .into_iter()
        .map(|state| (state.bounty.id.clone(), state.bounty))
        .collect();
    Ok(bounties
        .into_iter()
        .map(|bounty| states.remove(&bounty.id).unwrap_or(bounty))
        .collect())
}
