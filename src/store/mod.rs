//! The feed store as the core sees it: a dense, append-only log per shard.
//!
//! Small traits, one per concern, implemented at the edge by [`dynamo`], and in memory
//! (`memory.rs`) for unit tests of the logic above them. The stream loop and the
//! backfill need only [`FeedReader`]; the append protocol only [`FeedWriter`]; a
//! publish with an idempotency key also [`IdempotencyRecords`]; the stream cap
//! [`StreamLeases`].

use std::future::Future;

use crate::bounty::Bounty;
use crate::cursor::Position;

pub mod dynamo;
#[cfg(test)]
pub mod memory;

/// What an entry of the log records: a bounty published, or a change to one (the
/// bounty after it). A bounty's changes come after its publish, in version order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Published,
    Updated,
    Closed,
}

impl EntryKind {
    /// The `kind` attribute of a change entry; a publish has none (entries written
    /// before changes existed are publishes).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Published => "published",
            EntryKind::Updated => "updated",
            EntryKind::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        match text {
            "published" => Some(EntryKind::Published),
            "updated" => Some(EntryKind::Updated),
            "closed" => Some(EntryKind::Closed),
            _ => None,
        }
    }
}

/// One entry of a shard's log: its bounty, or why it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub position: Position,
    pub kind: EntryKind,
    pub bounty: Result<Bounty, Unreadable>,
}

/// An entry to append: its position, its bounty, and what it records. A change entry
/// (not [`EntryKind::Published`]) also moves the bounty's current state
/// ([`FeedReader::states`]) from version `bounty.version - 1`, in the same write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub position: Position,
    pub kind: EntryKind,
    pub bounty: Bounty,
    /// Who may change the bounty ([`crate::change::owner_of`]); kept with it.
    pub owner: Option<String>,
}

/// A bounty as it is now, where its latest entry is, and who may change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub bounty: Bounty,
    pub shard: usize,
    /// The position of the entry that made this version (its publish, or its last
    /// change).
    pub position: Position,
    /// `None` for bounties published before owners were recorded: nobody may change
    /// them.
    pub owner: Option<String>,
}

/// An entry whose key is sound but whose bounty does not decode (written by hand, or
/// by another version of this code). Readers skip it and say so, rather than stall
/// on it: its position is known, so the log stays dense around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The bounty's id, when the item has one.
    pub id: Option<String>,
    pub detail: String,
}

/// Entries after a position, in log order, and whether more follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<LogEntry>,
    pub more: bool,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store refused or failed the request (network, 5xx, throttling, timeout).
    #[error("{operation} failed: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
    /// An item that is not in the shape this code writes.
    #[error("corrupt item {key}: {detail}")]
    Corrupt { key: String, detail: String },
}

/// The outcome of a conditional append that did not commit.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another publisher appended first: the head moved; take it again and retry.
    #[error("the shard head moved")]
    HeadMoved,
    /// The idempotency key was claimed by another append first.
    #[error("the idempotency key is already claimed")]
    Claimed,
    /// The bounty a change entry changes is no longer at the version it changes: another
    /// change committed first; read it again and retry.
    #[error("the bounty's version moved")]
    VersionMoved,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What readers and writers both need: the shards and their heads.
pub trait FeedHeads: Send + Sync + 'static {
    /// How many shards the feed has.
    fn shard_count(&self) -> usize;

    /// The position of the last committed entry of `shard` ([`Position::START`] if
    /// none), read consistently.
    fn head(&self, shard: usize) -> impl Future<Output = Result<Position, StoreError>> + Send;
}

/// Reads the log: consistent reads only, so a reader sees every committed entry.
pub trait FeedReader: FeedHeads {
    /// Up to `limit` entries of `shard` strictly after `after`, in log order.
    fn read_after(
        &self,
        shard: usize,
        after: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Up to `limit` entries of `shard` strictly before `before`, newest first.
    fn read_before(
        &self,
        shard: usize,
        before: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// The publish entry of bounty `id` of `shard` created at `created_ms`, if the log
    /// still holds it: the bounty as published.
    fn find(
        &self,
        shard: usize,
        created_ms: u64,
        id: &str,
    ) -> impl Future<Output = Result<Option<Current>, StoreError>> + Send;

    /// The current state of each of `ids` that has changed since its publish, read
    /// consistently; a bounty never changed has none (its publish entry is its state).
    /// Ids of one call are distinct.
    fn states(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Current>, StoreError>> + Send;
}

/// An idempotency key taken by an append, in the same all-or-nothing write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The key, already hashed with the publisher's identity (never the raw key).
    pub key_hash: String,
    /// SHA-256 of the request it was first used with.
    pub request_sha256: String,
    /// When the store may forget the claim (seconds since the epoch).
    pub expires_at: u64,
}

/// What a claimed idempotency key recorded: the request and the bounty it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_sha256: String,
    pub bounty: Bounty,
}

/// Appends to the log.
pub trait FeedWriter: FeedHeads {
    /// Appends `entries` (their positions follow `expected_head` densely) only if the
    /// head is still `expected_head` and `claim`'s key is not taken yet; all or nothing.
    /// A claim records the first entry's bounty.
    fn append_after(
        &self,
        shard: usize,
        expected_head: Position,
        entries: Vec<NewEntry>,
        claim: Option<&IdempotencyClaim>,
    ) -> impl Future<Output = Result<(), AppendError>> + Send;
}

/// Reads back the idempotency claims that [`FeedWriter::append_after`] writes.
pub trait IdempotencyRecords: Send + Sync + 'static {
    /// The record of a claimed idempotency key, read consistently.
    fn idempotency_record(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;
}

/// Reads the heads of every shard, concurrently.
pub async fn heads<H: FeedHeads>(store: &H) -> Result<Vec<Position>, StoreError> {
    let reads = (0..store.shard_count()).map(|shard| store.head(shard));
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .collect()
}

/// One stream's hold on one of its client's slots (the per-client stream cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Which of the client's slots (`0..cap`).
    pub slot: u32,
    /// The stream holding it (its [`crate::cursor::StreamTag`]).
    pub stream_id: String,
    /// The tag of the cursor the stream was opened with, if it had one: a reconnect
    /// with that same cursor supersedes this stream too (`crate::stream_cap`).
    pub resumed_from: Option<String>,
    /// When the hold lapses if nobody releases it (ms since the epoch).
    pub expires_ms: u64,
}

/// Leases on per-client stream slots, shared by every instance of the function. The
/// admission logic is in [`crate::stream_cap`]; one conditional write per slot makes
/// two instances unable to take the same slot.
pub trait StreamLeases: Send + Sync + 'static {
    /// Every lease of `client`, lapsed or not, read consistently.
    fn leases(
        &self,
        client: &str,
    ) -> impl Future<Output = Result<Vec<LeaseRecord>, StoreError>> + Send;

    /// Takes `lease.slot` for `client` if it is free or its lease lapsed before
    /// `now_ms`. `Ok(false)` when another stream holds it.
    fn claim(
        &self,
        client: &str,
        lease: &LeaseRecord,
        now_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Passes `held.slot` from the stream that holds it, `held.stream_id`, to
    /// `lease.stream_id`, only if that stream still holds it and its lease had not
    /// lapsed before `now_ms` (superseding). `Ok(false)` when it no longer does.
    fn take_over(
        &self,
        client: &str,
        held: &LeaseRecord,
        lease: &LeaseRecord,
        now_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The leases on these `(client, slot)` pairs, each read consistently, in the
    /// order of `keys`: `None` where a slot has no lease (lapsed leases are returned
    /// as they are). A key given twice is read once. How the streams open in a process
    /// learn, all together, that another stream took their slot over
    /// ([`crate::stream_cap::OpenStreams`]).
    fn holders(
        &self,
        keys: &[(String, u32)],
    ) -> impl Future<Output = Result<Vec<Option<LeaseRecord>>, StoreError>> + Send;

    /// Frees `slot` of `client` if `stream_id` still holds it.
    fn release(
        &self,
        client: &str,
        slot: u32,
        stream_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
