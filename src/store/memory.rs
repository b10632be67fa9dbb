//! The store traits in memory, for unit tests of the pure logic above them (the
//! stream, the backfill, the append protocol, the stream cap). The DynamoDB store is
//! tested for real against DynamoDB Local in `tests/`; this one only keeps the same
//! conditions: an append commits only on the expected head and an unclaimed key, a
//! lease is taken only if free or lapsed, and is released only by its holder.
//!
//! Hooks the tests need: counts of log reads and of lease checks, scripted failures
//! of both, slow reads, appends that lose the race, expiring the oldest entries of a
//! shard, and entries committed but not yet readable (DynamoDB's visibility window,
//! see `hide`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::bounty::{Bounty, BountyStatus};
use crate::cursor::Position;
use crate::store::{
    AppendError, Current, EntryKind, FeedHeads, FeedReader, FeedWriter, IdempotencyClaim,
    IdempotencyRecord, IdempotencyRecords, LeaseRecord, LogEntry, NewEntry, Page, StoreError,
    StreamLeases, Unreadable,
};
use crate::timefmt;

/// A feed, its idempotency claims and its stream leases, in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Log reads (`read_after`, `read_before`) so far, failed ones included.
    reads: AtomicUsize,
    /// The next this many log reads fail with [`StoreError::Unavailable`].
    failures_left: AtomicU32,
    /// The next this many appends find the head moved, as if another publisher had
    /// appended first (nothing is written).
    lost_appends: AtomicU32,
    /// Every log read waits this long first (tokio time: paused tests skip it).
    read_delay: Mutex<Option<Duration>>,
    /// Batch reads of leases ([`StreamLeases::holders`]) so far, failed ones included.
    lease_checks: AtomicUsize,
    /// The next this many batch reads of leases fail with [`StoreError::Unavailable`].
    lease_failures_left: AtomicU32,
}

#[derive(Debug, Default)]
struct State {
    /// Per shard: the entries still held, in log order.
    logs: Vec<Vec<LogEntry>>,
    /// Per shard: the last committed position (kept when entries expire).
    heads: Vec<Position>,
    /// (shard, seq) of entries that are committed (the head counts them) but not yet
    /// readable, as a DynamoDB Query can see a transaction's head before its entry.
    hidden: HashSet<(usize, u64)>,
    claims: HashMap<String, IdempotencyRecord>,
    /// Per bounty id: its owner, as its publish recorded it.
    owners: HashMap<String, String>,
    /// Per bounty id: its current state, once it changed.
    states: HashMap<String, Current>,
    /// Per client, per slot.
    leases: HashMap<String, BTreeMap<u32, LeaseRecord>>,
}

/// An open bounty for tests: in `category`, created at `created_ms`, due far ahead.
pub fn bounty(id: &str, category: &str, created_ms: u64) -> Bounty {
    Bounty {
        id: id.to_owned(),
        title: "t".into(),
        description: String::new(),
        category: category.into(),
        budget_cents: 100,
        currency: "USD".into(),
        tags: vec![],
        deadline: timefmt::from_millis(4_000_000_000_000),
        created_at: timefmt::from_millis(created_ms),
        status: BountyStatus::Open,
        version: 1,
        updated_at: timefmt::from_millis(created_ms),
        closed_at: None,
        close_reason: None,
    }
}

impl MemoryStore {
    /// An empty feed of `shards` shards (shared, as the function shares its store).
    pub fn new(shards: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                logs: vec![Vec::new(); shards],
                heads: vec![Position::START; shards],
                ..State::default()
            }),
            ..Self::default()
        })
    }

    /// A poisoned lock only means another test thread panicked; its state is whole,
    /// because every change below is made under one lock.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a bounty of `category` to `shard`, created at `1_000 + seq` ms (never
    /// before the head); returns its id, `s<shard>-<seq>`.
    pub fn push(&self, shard: usize, category: &str) -> String {
        let seq = self.state().heads[shard].seq + 1;
        self.push_at(shard, 1_000 + seq, category)
    }

    /// Appends a bounty of `category` to `shard`, created at `created_ms` (never
    /// before the head); returns its id, `s<shard>-<seq>`.
    pub fn push_at(&self, shard: usize, created_ms: u64, category: &str) -> String {
        let seq = self.state().heads[shard].seq + 1;
        let id = format!("s{shard}-{seq}");
        self.push_bounty(shard, created_ms, bounty(&id, category, created_ms));
        id
    }

    /// Appends `bounty` as it is to `shard` at `created_ms` (never before the head);
    /// returns its position.
    pub fn push_bounty(&self, shard: usize, created_ms: u64, bounty: Bounty) -> Position {
        self.push_entry(shard, created_ms, EntryKind::Published, bounty)
    }

    /// Appends an entry of `kind` (a change: `bounty` is the bounty after it) to
    /// `shard` at `created_ms` (never before the head); returns its position.
    pub fn push_entry(
        &self,
        shard: usize,
        created_ms: u64,
        kind: EntryKind,
        bounty: Bounty,
    ) -> Position {
        let mut state = self.state();
        let head = state.heads[shard];
        let position = Position {
            created_ms: created_ms.max(head.created_ms),
            seq: head.seq + 1,
        };
        state.logs[shard].push(LogEntry {
            position,
            kind,
            bounty: Ok(bounty),
        });
        state.heads[shard] = position;
        position
    }

    /// Appends an entry to `shard` whose bounty cannot be read (as a hand-written
    /// item would be), with `id`; returns its position.
    pub fn push_unreadable(&self, shard: usize, id: &str) -> Position {
        let mut state = self.state();
        let head = state.heads[shard];
        let position = Position {
            created_ms: head.created_ms.max(1_000 + head.seq + 1),
            seq: head.seq + 1,
        };
        state.logs[shard].push(LogEntry {
            position,
            kind: EntryKind::Published,
            bounty: Err(Unreadable {
                id: Some(id.to_owned()),
                detail: "expected value at line 1 column 1".into(),
            }),
        });
        state.heads[shard] = position;
        position
    }

    /// Deletes entry `seq` of `shard` (as a hand-made delete would): a gap in the log.
    pub fn delete(&self, shard: usize, seq: u64) {
        self.state().logs[shard].retain(|entry| entry.position.seq != seq);
    }

    /// Forgets `shard`'s entries up to `seq` (as DynamoDB's TTL would); the head stays.
    pub fn expire_through(&self, shard: usize, seq: u64) {
        self.state().logs[shard].retain(|entry| entry.position.seq > seq);
    }

    /// Makes entry `seq` of `shard` unreadable (whether it is written yet or not) until
    /// [`MemoryStore::reveal`]: the head still counts it, as DynamoDB's read-committed
    /// Query can show a transaction's head item before its entry item.
    pub fn hide(&self, shard: usize, seq: u64) {
        self.state().hidden.insert((shard, seq));
    }

    /// Makes entry `seq` of `shard` readable again (the end of the visibility window).
    pub fn reveal(&self, shard: usize, seq: u64) {
        self.state().hidden.remove(&(shard, seq));
    }

    /// The entries `shard` holds, in log order.
    pub fn entries(&self, shard: usize) -> Vec<LogEntry> {
        self.state().logs[shard].clone()
    }

    /// Batch reads of leases ([`StreamLeases::holders`]) so far, failed ones included:
    /// one per call, however many keys it names.
    pub fn lease_checks(&self) -> usize {
        self.lease_checks.load(Ordering::SeqCst)
    }

    /// Makes the next `n` batch reads of leases fail.
    pub fn fail_next_lease_checks(&self, n: u32) {
        self.lease_failures_left.store(n, Ordering::SeqCst);
    }

    /// Log reads (`read_after`, `read_before`) so far, failed ones included.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Makes the next `count` log reads fail with [`StoreError::Unavailable`].
    pub fn fail_next_reads(&self, count: u32) {
        self.failures_left.store(count, Ordering::SeqCst);
    }

    /// Makes every log read wait `delay` first (on tokio time, so a paused test can
    /// hold a read for an hour at no cost); `None` for prompt reads again.
    pub fn slow_reads(&self, delay: Option<Duration>) {
        *self
            .read_delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Makes the next `count` appends fail with [`AppendError::HeadMoved`].
    pub fn lose_next_appends(&self, count: u32) {
        self.lost_appends.store(count, Ordering::SeqCst);
    }

    /// Counts a log read, waits if reads are slow, and fails it if one is scripted.
    async fn begin_read(&self, operation: &'static str) -> Result<(), StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let delay = *self
            .read_delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if take_one(&self.failures_left) {
            return Err(StoreError::Unavailable {
                operation,
                detail: "scripted failure".into(),
            });
        }
        Ok(())
    }
}

impl State {
    /// Whether a read can see `entry` of `shard` (it is not hidden).
    fn readable(&self, shard: usize, entry: &LogEntry) -> bool {
        !self.hidden.contains(&(shard, entry.position.seq))
    }
}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl FeedHeads for MemoryStore {
    fn shard_count(&self) -> usize {
        self.state().heads.len()
    }

    async fn head(&self, shard: usize) -> Result<Position, StoreError> {
        Ok(self.state().heads[shard])
    }
}

impl FeedReader for MemoryStore {
    async fn read_after(
        &self,
        shard: usize,
        after: Position,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.begin_read("Query").await?;
        let state = self.state();
        let mut entries = state.logs[shard]
            .iter()
            .filter(|entry| entry.position > after)
            .filter(|entry| state.readable(shard, entry));
        // A DynamoDB Query returns at least one item per page.
        let page: Vec<LogEntry> = entries.by_ref().take(limit.max(1)).cloned().collect();
        Ok(Page {
            more: entries.next().is_some(),
            entries: page,
        })
    }

    async fn read_before(
        &self,
        shard: usize,
        before: Position,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.begin_read("Query").await?;
        let state = self.state();
        let mut entries = state.logs[shard]
            .iter()
            .rev()
            .filter(|entry| entry.position < before)
            .filter(|entry| state.readable(shard, entry));
        let page: Vec<LogEntry> = entries.by_ref().take(limit.max(1)).cloned().collect();
        Ok(Page {
            more: entries.next().is_some(),
            entries: page,
        })
    }

    async fn find(
        &self,
        shard: usize,
        created_ms: u64,
        id: &str,
    ) -> Result<Option<Current>, StoreError> {
        let state = self.state();
        let Some(log) = state.logs.get(shard) else {
            return Ok(None);
        };
        Ok(log
            .iter()
            .filter(|entry| state.readable(shard, entry))
            .find(|entry| {
                entry.position.created_ms == created_ms
                    && entry.kind == EntryKind::Published
                    && entry.bounty.as_ref().is_ok_and(|bounty| bounty.id == id)
            })
            .and_then(|entry| {
                Some(Current {
                    bounty: entry.bounty.clone().ok()?,
                    shard,
                    position: entry.position,
                    owner: state.owners.get(id).cloned(),
                })
            }))
    }

    async fn states(&self, ids: &[String]) -> Result<Vec<Current>, StoreError> {
        let state = self.state();
        Ok(ids
            .iter()
            .filter_map(|id| state.states.get(id).cloned())
            .collect())
    }
}

impl FeedWriter for MemoryStore {
    async fn append_after(
        &self,
        shard: usize,
        expected_head: Position,
        entries: Vec<NewEntry>,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<(), AppendError> {
        if take_one(&self.lost_appends) {
            return Err(AppendError::HeadMoved);
        }
        let mut state = self.state();
        let Some(last) = entries.last().map(|entry| entry.position) else {
            return Ok(());
        };
        // The claim's condition is reported first, as DynamoDB's cancellation reasons
        // are read by the DynamoDB store.
        if claim.is_some_and(|claim| state.claims.contains_key(&claim.key_hash)) {
            return Err(AppendError::Claimed);
        }
        if state.heads[shard].seq != expected_head.seq {
            return Err(AppendError::HeadMoved);
        }
        // A caller that breaks the log's density is a bug in the code under test.
        let mut previous = expected_head;
        for entry in &entries {
            assert_eq!(entry.position.seq, previous.seq + 1, "entries are dense");
            assert!(entry.position > previous, "entries follow the head");
            previous = entry.position;
        }
        // A change commits only on the version it changes, as the state's condition
        // does on DynamoDB.
        for entry in entries.iter().filter(|e| e.kind != EntryKind::Published) {
            let version = state
                .states
                .get(&entry.bounty.id)
                .map_or(1, |current| current.bounty.version);
            if version + 1 != entry.bounty.version {
                return Err(AppendError::VersionMoved);
            }
        }
        for entry in &entries {
            match (entry.kind, &entry.owner) {
                (EntryKind::Published, Some(owner)) => {
                    state.owners.insert(entry.bounty.id.clone(), owner.clone());
                }
                (EntryKind::Published, None) => {}
                _ => {
                    let current = Current {
                        bounty: entry.bounty.clone(),
                        shard,
                        position: entry.position,
                        owner: entry.owner.clone(),
                    };
                    state.states.insert(entry.bounty.id.clone(), current);
                }
            }
        }
        if let (Some(claim), Some(first)) = (claim, entries.first()) {
            state.claims.insert(
                claim.key_hash.clone(),
                IdempotencyRecord {
                    request_sha256: claim.request_sha256.clone(),
                    bounty: first.bounty.clone(),
                },
            );
        }
        state.logs[shard].extend(entries.into_iter().map(|entry| LogEntry {
            position: entry.position,
            kind: entry.kind,
            bounty: Ok(entry.bounty),
        }));
        state.heads[shard] = last;
        Ok(())
    }
}

impl IdempotencyRecords for MemoryStore {
    async fn idempotency_record(
        &self,
        key_hash: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.state().claims.get(key_hash).cloned())
    }
}

impl StreamLeases for MemoryStore {
    async fn leases(&self, client: &str) -> Result<Vec<LeaseRecord>, StoreError> {
        Ok(self
            .state()
            .leases
            .get(client)
            .map(|slots| slots.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn claim(
        &self,
        client: &str,
        lease: &LeaseRecord,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let slots = state.leases.entry(client.to_owned()).or_default();
        // The DynamoDB store's condition: no lease, or one that lapsed before now.
        if slots
            .get(&lease.slot)
            .is_some_and(|held| held.expires_ms >= now_ms)
        {
            return Ok(false);
        }
        slots.insert(lease.slot, lease.clone());
        Ok(true)
    }

    async fn take_over(
        &self,
        client: &str,
        held: &LeaseRecord,
        lease: &LeaseRecord,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let slots = state.leases.entry(client.to_owned()).or_default();
        // The DynamoDB store's condition: the same holder, its lease not lapsed.
        let still_held = slots
            .get(&held.slot)
            .is_some_and(|now| now.stream_id == held.stream_id && now.expires_ms >= now_ms);
        if still_held {
            slots.insert(
                held.slot,
                LeaseRecord {
                    slot: held.slot,
                    ..lease.clone()
                },
            );
        }
        Ok(still_held)
    }

    async fn holders(
        &self,
        keys: &[(String, u32)],
    ) -> Result<Vec<Option<LeaseRecord>>, StoreError> {
        self.lease_checks.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .lease_failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable {
                operation: "BatchGetItem",
                detail: "scripted failure".into(),
            });
        }
        let state = self.state();
        Ok(keys
            .iter()
            .map(|(client, slot)| {
                state
                    .leases
                    .get(client)
                    .and_then(|slots| slots.get(slot))
                    .cloned()
            })
            .collect())
    }

    async fn release(&self, client: &str, slot: u32, stream_id: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(slots) = state.leases.get_mut(client) {
            if slots
                .get(&slot)
                .is_some_and(|held| held.stream_id == stream_id)
            {
                slots.remove(&slot);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_failures_fail_the_next_reads_and_every_read_counts() {
        let store = MemoryStore::new(1);
        let id = store.push(0, "python");
        assert_eq!(id, "s0-1");
        store.fail_next_reads(2);
        for _ in 0..2 {
            let failed = store.read_after(0, Position::START, 10).await;
            assert!(matches!(failed, Err(StoreError::Unavailable { .. })));
        }
        let page = store
            .read_after(0, Position::START, 10)
            .await
            .expect("read");
        assert_eq!(page.entries.len(), 1);
        assert_eq!(store.reads(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_read_waits_on_tokio_time() {
        let store = MemoryStore::new(1);
        store.slow_reads(Some(Duration::from_secs(3600)));
        let begin = tokio::time::Instant::now();
        let page = store
            .read_after(0, Position::START, 10)
            .await
            .expect("read");
        assert!(page.entries.is_empty());
        assert_eq!(begin.elapsed(), Duration::from_secs(3600));
        store.slow_reads(None);
        let begin = tokio::time::Instant::now();
        store
            .read_before(0, Position::START, 10)
            .await
            .expect("read");
        assert_eq!(begin.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn pages_say_whether_more_follow_in_either_direction() {
        let store = MemoryStore::new(1);
        for _ in 0..3 {
            store.push(0, "c");
        }
        let seqs = |page: &Page| {
            page.entries
                .iter()
                .map(|e| e.position.seq)
                .collect::<Vec<_>>()
        };
        let forward = store.read_after(0, Position::START, 2).await.expect("read");
        assert_eq!((seqs(&forward), forward.more), (vec![1, 2], true));
        let head = store.head(0).await.expect("head");
        let back = store.read_before(0, head, 2).await.expect("read");
        assert_eq!((seqs(&back), back.more), (vec![2, 1], false));
        assert_eq!(
            store
                .find(0, head.created_ms, "s0-3")
                .await
                .expect("find")
                .map(|found| found.bounty),
            store.entries(0)[2].bounty.clone().ok()
        );
        assert_eq!(
            store.find(5, head.created_ms, "s0-3").await.expect("find"),
            None
        );
    }

    #[tokio::test]
    async fn a_hidden_entry_is_counted_by_the_head_but_unreadable_until_revealed() {
        let store = MemoryStore::new(1);
        store.push(0, "c");
        store.hide(0, 2);
        let id = store.push(0, "c");
        let head = store.head(0).await.expect("head");
        assert_eq!(head.seq, 2, "the head counts it");
        let seqs = |page: Page| {
            page.entries
                .iter()
                .map(|e| e.position.seq)
                .collect::<Vec<_>>()
        };
        let after = store
            .read_after(0, Position::START, 10)
            .await
            .expect("read");
        assert_eq!(seqs(after), [1]);
        let end = Position {
            created_ms: crate::cursor::MAX_CREATED_MS,
            seq: crate::cursor::MAX_SEQ,
        };
        let before = store.read_before(0, end, 10).await.expect("read");
        assert_eq!(seqs(before), [1]);
        assert_eq!(
            store.find(0, head.created_ms, &id).await.expect("find"),
            None
        );
        store.reveal(0, 2);
        let after = store
            .read_after(0, Position::START, 10)
            .await
            .expect("read");
        assert_eq!(seqs(after), [1, 2]);
        assert!(store
            .find(0, head.created_ms, &id)
            .await
            .expect("find")
            .is_some());
    }

    #[tokio::test]
    async fn an_append_commits_only_on_the_expected_head() {
        let store = MemoryStore::new(1);
        store.push(0, "c");
        let next = |seq| NewEntry {
            position: Position {
                created_ms: 5_000,
                seq,
            },
            kind: EntryKind::Published,
            bounty: bounty("b", "c", 5_000),
            owner: None,
        };
        let stale = store
            .append_after(0, Position::START, vec![next(1)], None)
            .await;
        assert!(matches!(stale, Err(AppendError::HeadMoved)));
        let head = store.head(0).await.expect("head");
        store
            .append_after(0, head, vec![next(2)], None)
            .await
            .expect("committed");
        assert_eq!(store.head(0).await.expect("head").seq, 2);
    }
}
