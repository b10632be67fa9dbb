//! One read of the log for all the caught-up streams of a process (contract, "One
//! process, many streams").
//!
//! A single task polls every feed shard once per poll interval from the *shared
//! position* and broadcasts what it read as a [`SharedBatch`] that names the position
//! it was read from (`from`) and the position it leaves (`to`). Batches form a chain:
//! each one's `from` is the previous one's `to`, so a stream that joined at a
//! position at or past `from` and takes every batch afterwards sees every entry after
//! its own cursor exactly once: of each batch it takes the entries past its own
//! position, shard by shard. A stream behind the shared position reads on its own
//! (the stream loop's own poll) until it has caught up, then joins again; so does a
//! stream whose receiver fell behind the bounded buffer (a slow client).
//!
//! Joining and sending happen under one lock, so a joiner either sees a batch in its
//! receiver or already has the shared position that batch moved to: nothing falls
//! between the two. Empty reads are not sent (an idle stream is not woken); they
//! only move the time the shared position was last read, which a caught-up stream
//! takes for its checkpoint. The task stops within one poll interval after the last
//! stream left, and the next stream that joins starts another one from its own
//! position.
//!
//! Store failures are sent too: each joined stream says so in an `error` frame with
//! the wait the shared read backs off by. The exactly-once argument is written out in
//! `docs/storage.md`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::{sleep_until, Instant};

use super::backoff::Backoff;
use super::gaps::Gaps;
use super::read_ahead::positions_after;
use crate::cursor::Position;
use crate::feed::read_batch;
use crate::store::{FeedReader, LogEntry};

/// Timing and sizing of the shared read.
#[derive(Debug, Clone)]
pub struct SharedSettings {
    pub poll_interval: Duration,
    /// Entries read per shard per Query.
    pub page_size: usize,
    /// The longest wait between polls while the store keeps failing.
    pub backoff_cap: Duration,
    /// Batches a stream may fall behind before it leaves and reads on its own.
    pub buffer: usize,
}

/// One read of the shared position, as sent to every joined stream.
#[derive(Debug)]
pub struct SharedBatch {
    /// The shared position the read started from.
    pub from: Vec<Position>,
    pub outcome: Result<SharedEntries, SharedFailure>,
}

/// What a successful shared read found.
#[derive(Debug)]
pub struct SharedEntries {
    /// When the read was issued (ms since the epoch).
    pub issued_ms: u64,
    /// (shard, entry), in the order to deliver them.
    pub entries: Vec<(usize, LogEntry)>,
    /// Gaps taken as they are (see [`crate::feed::Batch::skipped`]).
    pub skipped: Vec<(usize, u64, u64)>,
    /// The shared position after this read.
    pub to: Vec<Position>,
}

/// A shared read that failed, and the wait before the next one.
#[derive(Debug)]
pub struct SharedFailure {
    pub retry_in: Duration,
    pub error: String,
}

/// A joined stream's place in the shared read: the batches sent after it joined.
pub type Joined = broadcast::Receiver<Arc<SharedBatch>>;

/// The shared read of one process. Cheap to keep when nobody streams: the task runs
/// only while some stream has joined.
pub struct SharedRead<R> {
    store: Arc<R>,
    settings: SharedSettings,
    state: Mutex<State>,
}

struct State {
    /// Set while the reading task runs.
    sender: Option<broadcast::Sender<Arc<SharedBatch>>>,
    /// Where the next read starts: every entry up to it has been sent.
    position: Vec<Position>,
    /// When the read that found nothing after `position` was issued (ms).
    issued_ms: u64,
    /// Reading tasks started so far (for tests and the benchmark's figures).
    started: u64,
}

impl<R> std::fmt::Debug for SharedRead<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("SharedRead")
            .field("settings", &self.settings)
            .field("running", &state.sender.is_some())
            .field("position", &state.position)
            .finish_non_exhaustive()
    }
}

impl<R> SharedRead<R> {
    pub fn new(store: Arc<R>, settings: SharedSettings) -> Self {
        SharedRead {
            store,
            settings,
            state: Mutex::new(State {
                sender: None,
                position: Vec::new(),
                issued_ms: 0,
                started: 0,
            }),
        }
    }

    /// A poisoned lock only means a panic elsewhere; the state itself is always
    /// consistent between statements, so go on with it.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the reading task runs.
    pub fn running(&self) -> bool {
        self.state().sender.is_some()
    }

    /// How many reading tasks were started so far.
    pub fn started(&self) -> u64 {
        self.state().started
    }

    /// The time a stream joined through `joined` may put in its cursor: when the
    /// shared position was last read, if the stream has taken every batch up to it.
    pub fn issued_ms_for(&self, joined: &Joined) -> Option<u64> {
        let state = self.state();
        (joined.is_empty() && state.sender.is_some()).then_some(state.issued_ms)
    }
}

impl<R: FeedReader> SharedRead<R> {
    /// Joins a stream whose cursor is `positions` and has read everything up to it.
    /// `None` when the stream is behind the shared position on some shard: it must
    /// read on its own first. Starts the reading task from `positions` if none runs.
    pub fn join(self: &Arc<Self>, positions: &[Position], issued_ms: u64) -> Option<Joined> {
        let mut state = self.state();
        if let Some(sender) = &state.sender {
            let caught_up = positions.len() == state.position.len()
                && positions
                    .iter()
                    .zip(&state.position)
                    .all(|(own, at)| own >= at);
            return caught_up.then(|| sender.subscribe());
        }
        let (sender, receiver) = broadcast::channel(self.settings.buffer.max(1));
        state.sender = Some(sender);
        state.position = positions.to_vec();
        state.issued_ms = issued_ms;
        state.started += 1;
        tokio::spawn(self.clone().read_while_joined());
        Some(receiver)
    }

    /// The reading task: one batch per poll interval (at once while a burst lasts),
    /// until nobody listens.
    async fn read_while_joined(self: Arc<Self>) {
        let settings = &self.settings;
        let shards = self.state().position.len();
        let mut gaps = Gaps::new(shards);
        let mut backoff = Backoff::new(settings.poll_interval, settings.backoff_cap);
        let mut next_read = Instant::now() + settings.poll_interval;
        loop {
            // Wait in steps of at most a poll interval, so that a long back-off still
            // notices within one interval that the last stream has left.
            let from = loop {
                let step = (Instant::now() + settings.poll_interval).min(next_read);
                sleep_until(step).await;
                let mut state = self.state();
                let listeners = state.sender.as_ref().map_or(0, |s| s.receiver_count());
                if listeners == 0 {
                    state.sender = None;
                    return;
                }
                if step >= next_read {
                    break state.position.clone();
                }
            };
            let read = read_batch(
                self.store.clone(),
                from.clone(),
                gaps.accepted(),
                Instant::now(),
                settings.page_size,
            )
            .await;
            let mut state = self.state();
            let batch = match read {
                Ok(batch) => {
                    backoff.reset();
                    gaps.observe(&from, &batch.gaps);
                    let to = positions_after(&from, &batch.entries);
                    state.position = to.clone();
                    state.issued_ms = batch.issued_ms;
                    next_read = Instant::now()
                        + if batch.more {
                            Duration::ZERO
                        } else {
                            settings.poll_interval
                        };
                    if batch.entries.is_empty() && batch.skipped.is_empty() {
                        continue;
                    }
                    SharedBatch {
                        from,
                        outcome: Ok(SharedEntries {
                            issued_ms: batch.issued_ms,
                            entries: batch.entries,
                            skipped: batch.skipped,
                            to,
                        }),
                    }
                }
                Err(err) => {
                    let retry_in = backoff.failed();
                    tracing::warn!(error = %err, failures = backoff.failures(), retry_in_ms = retry_in.as_millis() as u64, "shared feed read failed");
                    next_read = Instant::now() + retry_in;
                    SharedBatch {
                        from,
                        outcome: Err(SharedFailure {
                            retry_in,
                            error: err.to_string(),
                        }),
                    }
                }
            };
            if let Some(sender) = &state.sender {
                // No receiver left is fine: the next turn of the loop stops.
                let _ = sender.send(Arc::new(batch));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn settings() -> SharedSettings {
        SharedSettings {
            poll_interval: Duration::from_secs(1),
            page_size: 100,
            backoff_cap: Duration::from_secs(30),
            buffer: 4,
        }
    }

    async fn heads(store: &MemoryStore) -> Vec<Position> {
        crate::store::heads(store).await.expect("heads")
    }

    #[tokio::test(start_paused = true)]
    async fn one_read_per_interval_whatever_the_number_of_streams() {
        let log = MemoryStore::new(2);
        log.push(0, "python");
        let shared = Arc::new(SharedRead::new(log.clone(), settings()));
        let at = heads(&log).await;
        let reads_before = log.reads();
        let joined: Vec<Joined> = (0..100)
            .map(|_| shared.join(&at, 0).expect("caught up"))
            .collect();
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        // 10 polls of 2 shards, not 100 streams' worth.
        assert_eq!(log.reads() - reads_before, 20);
        assert_eq!(shared.started(), 1);
        drop(joined);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_chain_and_empty_reads_are_not_sent() {
        let log = MemoryStore::new(1);
        let shared = Arc::new(SharedRead::new(log.clone(), settings()));
        let mut joined = shared.join(&heads(&log).await, 0).expect("joins");
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert!(joined.is_empty(), "idle reads wake nobody");
        let first = log.push(0, "python");
        let second = log.push(0, "rust");
        let batch = joined.recv().await.expect("a batch");
        let entries = batch.outcome.as_ref().expect("read");
        assert_eq!(batch.from, [Position::START]);
        let ids: Vec<_> = entries
            .entries
            .iter()
            .map(|(_, e)| e.bounty.as_ref().map(|b| b.id.clone()).unwrap_or_default())
            .collect();
        assert_eq!(ids, [first, second]);
        assert_eq!(entries.to[0].seq, 2);
        let third = log.push(0, "go");
        let next = joined.recv().await.expect("a batch");
        assert_eq!(
            next.from, entries.to,
            "each batch starts where the last ended"
        );
        let next_ids: Vec<_> = next
            .outcome
            .as_ref()
            .expect("read")
            .entries
            .iter()
            .map(|(_, e)| e.bounty.as_ref().map(|b| b.id.clone()).unwrap_or_default())
            .collect();
        assert_eq!(next_ids, [third]);
        assert!(shared.issued_ms_for(&joined).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_behind_the_shared_position_is_not_joined() {
        let log = MemoryStore::new(1);
        let shared = Arc::new(SharedRead::new(log.clone(), settings()));
        let _first = shared.join(&heads(&log).await, 0).expect("joins");
        log.push(0, "python");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(shared.join(&[Position::START], 0).is_none(), "behind");
        assert!(shared.join(&heads(&log).await, 0).is_some(), "caught up");
    }

    #[tokio::test(start_paused = true)]
    async fn the_read_stops_within_an_interval_after_the_last_stream_left_even_in_back_off() {
        let log = MemoryStore::new(1);
        log.fail_next_reads(10);
        let shared = Arc::new(SharedRead::new(log.clone(), settings()));
        let joined = shared.join(&heads(&log).await, 0).expect("joins");
        // Several failures: the back-off is now several seconds long.
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(shared.running());
        drop(joined);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(!shared.running(), "stopped within one poll interval");
        let reads = log.reads();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(log.reads(), reads, "no read after it stopped");
        // The next stream starts it again.
        let _again = shared.join(&heads(&log).await, 0).expect("joins");
        assert_eq!(shared.started(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_sent_with_the_wait() {
        let log = MemoryStore::new(1);
        let shared = Arc::new(SharedRead::new(log.clone(), settings()));
        let mut joined = shared.join(&heads(&log).await, 0).expect("joins");
        log.fail_next_reads(1);
        let batch = joined.recv().await.expect("a batch");
        let failure = batch.outcome.as_ref().expect_err("failed");
        assert!(failure.retry_in <= Duration::from_secs(1));
        assert!(shared.issued_ms_for(&joined).is_some());
    }
}
