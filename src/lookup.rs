//! One bounty by id: the id says which shard and which millisecond hold its entry
//! ([`crate::bounty::id::locate`]), so a lookup is one Query on a one-millisecond key
//! range.

use crate::bounty::id::locate;
use crate::bounty::Bounty;
use crate::store::{FeedReader, StoreError};

/// The bounty `id`, if the log holds it; `None` for ids that are not ours too.
pub async fn lookup<R: FeedReader>(store: &R, id: &str) -> Result<Option<Bounty>, StoreError> {
    let Some((shard, created_ms)) = locate(id) else {
        return Ok(None);
    };
    if shard >= store.shard_count() {
        return Ok(None);
    }
    // Ids are case-insensitive (Crockford base32); the store holds the canonical form.
    let canonical = id.to_ascii_uppercase();
    store.find(shard, created_ms, &canonical).await
}
