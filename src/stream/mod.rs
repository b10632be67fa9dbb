//! The bounded stream: `retry`, `connected`, then `bounty` frames read by polling the
//! log from the cursor, `: heartbeat` while idle, `error` frames with back-off while
//! the store fails, and a `checkpoint` carrying the cursor at the cap.
//!
//! One `select!` over the cap, the poll in flight and the heartbeat, like
//! mini-redis's subscribe loop; each outcome is handled by a method of
//! `Subscription` that says what to send. The poll in flight survives heartbeats, so
//! a slow store never starves them. When the client goes away the runtime drops this
//! stream at its next failed write, and with it the poll in flight: nothing polls for a
//! departed client. The stream does not log its own end: the access log at the HTTP
//! edge logs each stream once, when it ends.
//!
//! - [`frame`]: the frames as typed values; bytes only at the HTTP edge.
//! - `backoff`: the waits between polls while the store fails.
//! - `gaps`: gaps in a shard's sequence, waited for, then skipped after a grace period.
//! - `read_ahead`: the next page of a burst, read while the current one is written.
//! - [`start`]: the cursor a stream starts from (now, `since`, or a client's cursor).
//! - [`deadline`]: how long a stream may run (its cap, or the invocation's deadline).
//! - [`shared_read`]: one read of the log for all the caught-up streams of a process;
//!   a stream joins it once caught up and reads on its own while behind.
//! - [`selection`]: what the stream sends of each entry: the firehose's bounties (and
//!   changes), or one bounty's changes (the per-bounty stream, which ends after a
//!   terminal change: a close, or its deadline passing while it is open).

mod backoff;
pub mod deadline;
pub mod frame;
mod gaps;
mod read_ahead;
pub mod selection;
pub mod shared_read;
pub mod start;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{sleep_until, Instant};

use crate::cursor::Cursor;
use crate::feed::{read_batch, Batch};
use crate::store::{FeedReader, LogEntry, StoreError};

use self::backoff::Backoff;
use self::gaps::Gaps;
use self::read_ahead::{positions_after, read_ahead, PollFuture};
use self::selection::Selection;
use self::shared_read::{Joined, SharedBatch, SharedEntries, SharedRead};

pub use self::frame::{Change, CheckpointReason, Connected, ErrorEvent, StreamFrame};

/// Timing and sizing of one stream (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub poll_interval: Duration,
    pub heartbeat: Duration,
    pub max_duration: Duration,
    /// Entries read per shard per Query.
    pub page_size: usize,
    /// The `retry:` hint sent first, in ms.
    pub retry_ms: u64,
    /// The longest wait between polls while the store keeps failing.
    pub backoff_cap: Duration,
}

/// Where a stream starts and what it sends.
#[derive(Debug, Clone)]
pub struct StreamStart {
    pub selection: Selection,
    pub cursor: Cursor,
    /// True when resuming from a client's cursor or `since`: poll at once.
    pub resumed: bool,
}

/// What woke the loop.
enum Step {
    Close,
    /// Another stream took over from this one.
    Superseded,
    Polled(Result<Batch, StoreError>),
    Shared(Result<Arc<SharedBatch>, RecvError>),
    Heartbeat,
    /// A per-bounty stream's bounty reached its deadline.
    Expiry,
}

/// What to send for a step, and, once it is sent, how long until the next poll
/// (`None`: as planned).
struct Reply {
    frames: Vec<StreamFrame>,
    poll_in: Option<Duration>,
    /// The last frame is the stream's last: a per-bounty stream's terminal change.
    ends: bool,
}

impl Reply {
    fn send(frame: StreamFrame) -> Reply {
        Reply::of(vec![frame], None)
    }

    fn of(frames: Vec<StreamFrame>, poll_in: Option<Duration>) -> Reply {
        Reply {
            frames,
            poll_in,
            ends: false,
        }
    }
}

/// One subscriber's place in the log, and its timers.
struct Subscription<R> {
    store: Arc<R>,
    settings: StreamSettings,
    selection: Selection,
    /// Just after the last entry read, matching or not.
    cursor: Cursor,
    backoff: Backoff,
    gaps: Gaps,
    /// The process's shared read, when it is on.
    shared: Option<Arc<SharedRead<R>>>,
    /// Set while the stream takes its entries from the shared read.
    joined: Option<Joined>,
    /// The stream's own read the loop waits on while not joined; kept across
    /// heartbeats.
    in_flight: Option<PollFuture>,
    next_poll: Instant,
    last_write: Instant,
    /// A per-bounty stream looks at its deadline again no earlier than this (after a
    /// failed read at the deadline).
    expiry_retry: Option<Instant>,
}

/// The stream of frames for one subscriber. Ends after `settings.max_duration`.
/// With `shared`, it takes its entries from the process's shared read whenever it is
/// caught up with it.
pub fn bounty_stream<R: FeedReader>(
    store: Arc<R>,
    shared: Option<Arc<SharedRead<R>>>,
    settings: StreamSettings,
    start: StreamStart,
) -> impl Stream<Item = StreamFrame> + Send + 'static {
    bounty_stream_until(store, shared, settings, start, std::future::pending())
}

/// [`bounty_stream`], which also ends as soon as `superseded` completes (another
/// stream took over from this one: [`crate::stream_cap::Lease::superseded`]): the read
/// in flight is dropped unfinished, nothing is read after, and the last frame is a
/// `checkpoint` with reason `superseded`.
pub fn bounty_stream_until<R: FeedReader>(
    store: Arc<R>,
    shared: Option<Arc<SharedRead<R>>>,
    settings: StreamSettings,
    start: StreamStart,
    superseded: impl Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = StreamFrame> + Send + 'static {
    async_stream::stream! {
        let mut superseded = std::pin::pin!(superseded);
        let mut reason = CheckpointReason::MaxDuration;
        let started = Instant::now();
        let deadline = started + settings.max_duration;
        let retry_ms = settings.retry_ms;
        let (mut subscription, connected) =
            Subscription::open(store, shared, settings, start, started);
        yield StreamFrame::Retry(retry_ms);
        yield connected;
        subscription.sent();

        let mut finished = subscription.selection.finished();
        while !finished {
            let heartbeat_at = subscription.heartbeat_at();
            let expiry_at = subscription.expiry_at();
            let step = tokio::select! {
                biased;
                _ = sleep_until(deadline) => Step::Close,
                () = &mut superseded => Step::Superseded,
                _ = sleep_until(expiry_at.unwrap_or(deadline)), if expiry_at.is_some() => Step::Expiry,
                step = subscription.next_read() => step,
                _ = sleep_until(heartbeat_at) => Step::Heartbeat,
            };
            let reply = match step {
                Step::Close => break,
                Step::Superseded => {
                    reason = CheckpointReason::Superseded;
                    break;
                }
                Step::Heartbeat => Reply::send(StreamFrame::Heartbeat),
                Step::Expiry => subscription.expiring().await,
                Step::Polled(Ok(batch)) => subscription.delivered(batch),
                Step::Polled(Err(err)) => subscription.failed(&err),
                Step::Shared(Ok(batch)) => subscription.shared(&batch),
                Step::Shared(Err(err)) => subscription.left(&err),
            };
            for frame in reply.frames {
                yield frame;
                subscription.sent();
            }
            finished = reply.ends;
            subscription.schedule(reply.poll_in);
        }
        if finished {
            // The terminal change was the last frame: nothing to resume after it.
            subscription.stop_reading();
            return;
        }

        let checkpoint = subscription.checkpoint(reason);
        // Whatever the loop was waiting on is not awaited again: drop it now rather
        // than hold a read open while the last frame is written.
        subscription.stop_reading();
        yield checkpoint;
    }
}

/// The frames of a stream that cannot start because the store cannot be read: the
/// `retry:` hint and one `error` frame saying when to come back, with no `id:`, so a
/// client reconnects with the `Last-Event-ID` it already had.
pub fn unavailable(settings: &StreamSettings) -> impl Stream<Item = StreamFrame> + Send + 'static {
    futures_util::stream::iter([
        StreamFrame::Retry(settings.retry_ms),
        StreamFrame::Error(ErrorEvent::StoreUnavailable {
            retry_in_ms: settings.retry_ms,
        }),
    ])
}

impl<R: FeedReader> Subscription<R> {
    /// The subscription, and its `connected` frame. A stream that starts at the heads
    /// joins the shared read at once; a resumed one reads on its own first.
    fn open(
        store: Arc<R>,
        shared: Option<Arc<SharedRead<R>>>,
        settings: StreamSettings,
        start: StreamStart,
        started: Instant,
    ) -> (Self, StreamFrame) {
        let StreamStart {
            selection,
            cursor,
            resumed,
        } = start;
        let now = Utc::now();
        let connected = StreamFrame::Connected(Connected {
            subject: selection.subject(),
            server_time: now,
            cursor: cursor.clone(),
            resumed,
            closes_at: now + settings.max_duration,
            heartbeat_ms: u64::try_from(settings.heartbeat.as_millis()).unwrap_or(u64::MAX),
        });
        let next_poll = if resumed {
            started
        } else {
            started + settings.poll_interval
        };
        let mut subscription = Subscription {
            store,
            shared,
            joined: None,
            backoff: Backoff::new(settings.poll_interval, settings.backoff_cap),
            gaps: Gaps::new(cursor.positions.len()),
            settings,
            selection,
            cursor,
            in_flight: None,
            next_poll,
            last_write: started,
            expiry_retry: None,
        };
        if !resumed {
            subscription.join();
        }
        (subscription, connected)
    }

    /// Joins the shared read, if it is on and the stream is not behind it.
    fn join(&mut self) {
        if let Some(shared) = &self.shared {
            self.joined = shared.join(&self.cursor.positions, self.cursor.issued_ms);
        }
    }

    /// What the loop waits for: the next shared batch while joined, else the
    /// stream's own read.
    async fn next_read(&mut self) -> Step {
        match &mut self.joined {
            Some(joined) => Step::Shared(joined.recv().await),
            None => Step::Polled(self.poll().await),
        }
    }

    /// The read in flight, or a poll of the cursor at `next_poll`.
    fn poll(&mut self) -> &mut PollFuture {
        let Subscription {
            store,
            settings,
            cursor,
            gaps,
            in_flight,
            next_poll,
            ..
        } = self;
        in_flight.get_or_insert_with(|| {
            Box::pin(read_batch(
                store.clone(),
                cursor.positions.clone(),
                gaps.accepted(),
                *next_poll,
                settings.page_size,
            ))
        })
    }

    fn heartbeat_at(&self) -> Instant {
        self.last_write + self.settings.heartbeat
    }

    /// A poll answered: the cursor moves past every entry read, and the matching ones
    /// are sent.
    fn delivered(&mut self, batch: Batch) -> Reply {
        self.in_flight = None;
        self.backoff.reset();
        self.cursor.issued_ms = batch.issued_ms;
        self.gaps.observe(&self.cursor.positions, &batch.gaps);
        if batch.more {
            // A burst: read the next page while this one is written to the client.
            let after = positions_after(&self.cursor.positions, &batch.entries);
            self.in_flight = Some(read_ahead(
                self.store.clone(),
                after,
                self.gaps.accepted(),
                self.settings.page_size,
            ));
        }
        // Never a silent gap: say what is skipped before what follows it.
        let mut frames: Vec<StreamFrame> = batch
            .skipped
            .iter()
            .map(|&(shard, first_seq, last_seq)| {
                tracing::error!(
                    shard,
                    first_seq,
                    last_seq,
                    "gap skipped; the subscriber is told"
                );
                StreamFrame::Error(ErrorEvent::Gap {
                    shard,
                    first_seq,
                    last_seq,
                })
            })
            .collect();
        for (shard, entry) in batch.entries {
            if let Some(slot) = self.cursor.positions.get_mut(shard) {
                *slot = entry.position;
            }
            frames.extend(self.frame_for(shard, &entry));
            if self.selection.finished() {
                return Reply {
                    frames,
                    poll_in: None,
                    ends: true,
                };
            }
        }
        if !batch.more {
            // Caught up with the log: from now on the shared read, if it has not
            // moved past this stream meanwhile (then one more read of its own).
            self.join();
        }
        Reply::of(
            frames,
            Some(if batch.more {
                Duration::ZERO
            } else {
                self.settings.poll_interval
            }),
        )
    }

    /// A shared batch: the entries past this stream's own position, shard by shard,
    /// the gaps past it, then the stream is at the batch's end (or further).
    fn shared(&mut self, batch: &SharedBatch) -> Reply {
        let behind = batch
            .from
            .iter()
            .zip(&self.cursor.positions)
            .any(|(from, own)| own < from);
        if behind || batch.from.len() != self.cursor.positions.len() {
            // Cannot happen while the chain holds; read on its own rather than skip.
            return self.read_alone();
        }
        let entries = match &batch.outcome {
            Ok(entries) => entries,
            Err(failure) => {
                let retry_in_ms = u64::try_from(failure.retry_in.as_millis()).unwrap_or(u64::MAX);
                return Reply::send(StreamFrame::Error(ErrorEvent::StoreUnavailable {
                    retry_in_ms,
                }));
            }
        };
        let SharedEntries {
            issued_ms,
            entries,
            skipped,
            to,
        } = entries;
        let mut frames: Vec<StreamFrame> = skipped
            .iter()
            .filter(|(shard, _, last_seq)| {
                self.cursor
                    .positions
                    .get(*shard)
                    .is_some_and(|own| own.seq < *last_seq)
            })
            .map(|&(shard, first_seq, last_seq)| {
                StreamFrame::Error(ErrorEvent::Gap {
                    shard,
                    first_seq,
                    last_seq,
                })
            })
            .collect();
        self.cursor.issued_ms = self.cursor.issued_ms.max(*issued_ms);
        for (shard, entry) in entries {
            let Some(slot) = self.cursor.positions.get_mut(*shard) else {
                continue;
            };
            if entry.position <= *slot {
                continue;
            }
            *slot = entry.position;
            frames.extend(self.frame_for(*shard, entry));
            if self.selection.finished() {
                return Reply {
                    frames,
                    poll_in: None,
                    ends: true,
                };
            }
        }
        for (slot, end) in self.cursor.positions.iter_mut().zip(to) {
            *slot = (*slot).max(*end);
        }
        Reply::of(frames, None)
    }

    /// What an entry the cursor has just passed sends ([`Selection::frame_for`]), or,
    /// for an entry that cannot be read, an `error` naming it (every firehose stream
    /// says so: nobody can tell whether it would have matched).
    fn frame_for(&mut self, shard: usize, entry: &LogEntry) -> Option<StreamFrame> {
        match &entry.bounty {
            Ok(bounty) => self.selection.frame_for(entry.kind, bounty, &self.cursor),
            // Logged once per read that found it (`feed::read_batch`), not per stream.
            Err(unreadable) => self.selection.concerns(unreadable.id.as_deref()).then(|| {
                StreamFrame::Error(ErrorEvent::UnreadableEntry {
                    shard,
                    seq: entry.position.seq,
                    id: unreadable.id.clone(),
                })
            }),
        }
    }

    /// When to look at a per-bounty stream's deadline: at the deadline, or after the
    /// back-off of a failed look.
    fn expiry_at(&self) -> Option<Instant> {
        let deadline = self.selection.expires_at()?;
        let at = instant_of(deadline);
        Some(self.expiry_retry.map_or(at, |retry| retry.max(at)))
    }

    /// The bounty's deadline has come: first the log up to its head, since a change
    /// committed before the deadline (one that moves it, say) may not be read yet; then
    /// `bounty_expired` if the deadline still stands, and the end.
    async fn expiring(&mut self) -> Reply {
        self.in_flight = None;
        let mut frames = Vec::new();
        loop {
            let read = read_batch(
                self.store.clone(),
                self.cursor.positions.clone(),
                self.gaps.accepted(),
                Instant::now(),
                self.settings.page_size,
            )
            .await;
            let batch = match read {
                Ok(batch) => batch,
                Err(err) => {
                    let mut reply = self.failed(&err);
                    self.expiry_retry = reply.poll_in.map(|wait| Instant::now() + wait);
                    frames.append(&mut reply.frames);
                    reply.frames = frames;
                    return reply;
                }
            };
            let more = batch.more;
            let mut reply = self.delivered(batch);
            // This loop reads the rest itself: no read ahead alongside it.
            self.in_flight = None;
            frames.append(&mut reply.frames);
            if reply.ends {
                return Reply {
                    frames,
                    poll_in: None,
                    ends: true,
                };
            }
            if !more {
                break;
            }
        }
        self.expiry_retry = None;
        match self.selection.expire(Utc::now(), &self.cursor) {
            Some(expired) => {
                frames.push(expired);
                Reply {
                    frames,
                    poll_in: None,
                    ends: true,
                }
            }
            // A change moved the deadline: the stream goes on.
            None => Reply::of(frames, Some(self.settings.poll_interval)),
        }
    }

    /// The stream fell out of the shared read (its client was too slow for the
    /// bounded buffer, or the read ended): it reads on its own from its cursor, at
    /// once, and joins again once caught up.
    fn left(&mut self, err: &RecvError) -> Reply {
        tracing::debug!(error = %err, "stream left the shared read; reading on its own");
        self.read_alone()
    }

    fn read_alone(&mut self) -> Reply {
        self.joined = None;
        self.in_flight = None;
        Reply::of(Vec::new(), Some(Duration::ZERO))
    }

    /// A poll failed: say so, and back off.
    fn failed(&mut self, err: &StoreError) -> Reply {
        self.in_flight = None;
        let delay = self.backoff.failed();
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(error = %err, failures = self.backoff.failures(), retry_in_ms, "feed poll failed");
        Reply::of(
            vec![StreamFrame::Error(ErrorEvent::StoreUnavailable {
                retry_in_ms,
            })],
            Some(delay),
        )
    }

    /// A frame was taken by the client: the heartbeat waits from now.
    fn sent(&mut self) {
        self.last_write = Instant::now();
    }

    /// Once a reply is sent: the next poll `poll_in` from now.
    fn schedule(&mut self, poll_in: Option<Duration>) {
        if let Some(wait) = poll_in {
            self.next_poll = Instant::now() + wait;
        }
    }

    /// Drops the read in flight (and leaves the shared read): nothing more is read.
    fn stop_reading(&mut self) {
        self.in_flight = None;
        self.joined = None;
    }

    fn checkpoint(&self, reason: CheckpointReason) -> StreamFrame {
        let mut cursor = self.cursor.clone();
        // A joined stream that took every batch is as fresh as the shared read's
        // last (empty) read, which it was never woken for.
        if let (Some(shared), Some(joined)) = (&self.shared, &self.joined) {
            if let Some(issued_ms) = shared.issued_ms_for(joined) {
                cursor.issued_ms = cursor.issued_ms.max(issued_ms);
            }
        }
        StreamFrame::Checkpoint { cursor, reason }
    }
}

/// The tokio instant of a wall-clock time (now, if it has passed).
fn instant_of(at: DateTime<Utc>) -> Instant {
    // Capped: far deadlines come after any stream's end anyway, and an instant far
    // ahead could overflow.
    let wait = (at - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(366 * 24 * 3600));
    Instant::now() + wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::Position;
    use crate::filter::Filter;
    use crate::sse::Frame;
    use crate::store::memory::MemoryStore;
    use futures_util::StreamExt;

    fn settings() -> StreamSettings {
        StreamSettings {
            poll_interval: Duration::from_secs(1),
            heartbeat: Duration::from_secs(15),
            max_duration: Duration::from_secs(60),
            page_size: 100,
            retry_ms: 2000,
            backoff_cap: Duration::from_secs(30),
        }
    }

    fn feed(filter: Filter) -> Selection {
        Selection::Feed {
            filter,
            changes: false,
        }
    }

    fn start(shards: usize, filter: Filter) -> StreamStart {
        StreamStart {
            selection: feed(filter),
            cursor: Cursor {
                issued_ms: 0,
                positions: vec![Position::START; shards],
            },
            resumed: false,
        }
    }

    fn data(frame: &Frame) -> serde_json::Value {
        match frame {
            Frame::Event { data, .. } => serde_json::from_str(data).expect("json"),
            other => panic!("not an event: {other:?}"),
        }
    }

    fn name(frame: &Frame) -> &str {
        match frame {
            Frame::Event { event, .. } => event,
            Frame::Retry(_) => "retry",
            Frame::Comment(_) => "comment",
        }
    }

    /// Collects every frame with the instant (since start) it was produced.
    /// Frames are looked at as the client gets them: as SSE frames.
    async fn collect(stream: impl Stream<Item = StreamFrame>) -> Vec<(Duration, Frame)> {
        let begin = Instant::now();
        stream
            .map(|f| (begin.elapsed(), f.to_sse()))
            .collect()
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn idle_stream_heartbeats_then_checkpoints_at_the_cap() {
        let log = MemoryStore::new(1);
        let frames = collect(bounty_stream(
            log.clone(),
            None,
            settings(),
            start(1, Filter::default()),
        ))
        .await;
        let names: Vec<_> = frames.iter().map(|(_, f)| name(f)).collect();
        assert_eq!(
            names,
            [
                "retry",
                "connected",
                "comment",
                "comment",
                "comment",
                "checkpoint"
            ]
        );
        let times: Vec<_> = frames.iter().map(|(t, _)| t.as_secs()).collect();
        assert_eq!(times, [0, 0, 15, 30, 45, 60]);
        assert_eq!(frames[0].1, Frame::Retry(2000));
        let connected = data(&frames[1].1);
        assert_eq!(connected["resumed"], false);
        let Frame::Event {
            id: connected_id, ..
        } = &frames[1].1
        else {
            panic!("event")
        };
        assert_eq!(connected_id.as_deref(), connected["cursor"].as_str());
        assert!(connected["cursor"].is_string() && connected["closes_at"].is_string());
        assert_eq!(connected["heartbeat_ms"], 15_000);
        let checkpoint = data(&frames[5].1);
        assert_eq!(checkpoint["reason"], "max_duration");
        let Frame::Event { id, .. } = &frames[5].1 else {
            panic!("event")
        };
        assert_eq!(id.as_deref(), checkpoint["cursor"].as_str());
        // One poll per second, nothing more.
        assert!((59..=61).contains(&log.reads()));
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_matching_entries_once_with_resumable_ids() {
        let log = MemoryStore::new(1);
        let filter =
            crate::query::parse_stream_query(&[("category".into(), "python".into())], None)
                .expect("valid")
                .filter;
        let stream = bounty_stream(
            log.clone(),
            None,
            StreamSettings {
                max_duration: Duration::from_secs(10),
                ..settings()
            },
            start(1, filter),
        );
        let writer = log.clone();
        let publisher = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let a = writer.push(0, "python");
            writer.push(0, "rust");
            let b = writer.push(0, "python");
            (a, b)
        });
        let frames = collect(stream).await;
        let (a, b) = publisher.await.expect("publisher");
        let bounties: Vec<_> = frames.iter().filter(|(_, f)| name(f) == "bounty").collect();
        let ids: Vec<_> = bounties
            .iter()
            .map(|(_, f)| data(f)["id"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(ids, [Some(a), Some(b)]);
        // Delivered at the first poll after publishing: within one interval.
        assert!(bounties[0].0 <= Duration::from_millis(3500));
        // The checkpoint is past the non-matching entry too.
        let (_, checkpoint) = frames.last().expect("frames");
        let rules = crate::cursor::CursorRules {
            shards: 1,
            now_ms: u64::MAX / 2,
            lookback_ms: u64::MAX,
        };
        let cursor = Cursor::decode(
            data(checkpoint)["cursor"].as_str().expect("cursor"),
            "c",
            rules,
        )
        .expect("decodes");
        assert_eq!(cursor.positions[0].seq, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn store_failures_send_error_frames_back_off_and_recover_without_loss() {
        let log = MemoryStore::new(1);
        log.fail_next_reads(4);
        let id = log.push(0, "python");
        let mut begin = start(1, Filter::default());
        begin.resumed = true;
        let frames = collect(bounty_stream(
            log.clone(),
            None,
            StreamSettings {
                max_duration: Duration::from_secs(40),
                ..settings()
            },
            begin,
        ))
        .await;
        let errors: Vec<_> = frames.iter().filter(|(_, f)| name(f) == "error").collect();
        assert_eq!(errors.len(), 4);
        let waits: Vec<u64> = errors
            .iter()
            .map(|(_, f)| data(f)["retry_in_ms"].as_u64().expect("ms"))
            .collect();
        for (n, wait) in waits.iter().enumerate() {
            let full = 1000u64 << n;
            assert!((full / 2..=full).contains(wait), "retry {n}: {wait}");
        }
        assert_eq!(data(&errors[0].1)["code"], "store_unavailable");
        // Each error comes after the previous announced wait.
        for pair in errors.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert_eq!(
                gap.as_millis() as u64,
                data(&pair[0].1)["retry_in_ms"].as_u64().expect("ms")
            );
        }
        let delivered: Vec<_> = frames
            .iter()
            .filter(|(_, f)| name(f) == "bounty")
            .map(|(_, f)| data(f)["id"].clone())
            .collect();
        assert_eq!(delivered, [serde_json::json!(id)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_larger_than_a_page_arrives_complete_and_in_order_across_shards() {
        let log = MemoryStore::new(2);
        let mut expected = Vec::new();
        for n in 0..1_000 {
            expected.push(log.push(n % 2, "python"));
        }
        let mut begin = start(2, Filter::default());
        begin.resumed = true;
        let stream = bounty_stream(
            log.clone(),
            None,
            StreamSettings {
                max_duration: Duration::from_secs(5),
                page_size: 64,
                ..settings()
            },
            begin,
        );
        let frames = collect(stream).await;
        let bounties: Vec<_> = frames.iter().filter(|(_, f)| name(f) == "bounty").collect();
        let created: Vec<_> = bounties
            .iter()
            .map(|(_, f)| data(f)["created_at"].as_str().map(str::to_owned))
            .collect();
        assert!(
            created.windows(2).all(|w| w[0] <= w[1]),
            "time order across shards"
        );
        let mut ids: Vec<_> = bounties
            .iter()
            .map(|(_, f)| data(f)["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        expected.sort();
        assert_eq!(ids, expected);
        // Paging did not wait a poll interval between pages.
        assert!(bounties.last().expect("some").0 < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_stream_that_cannot_start_says_when_to_come_back_and_ends_without_an_id() {
        let frames: Vec<Frame> = unavailable(&settings())
            .map(|frame| frame.to_sse())
            .collect()
            .await;
        assert_eq!(frames[0], Frame::Retry(2000));
        assert_eq!(frames.len(), 2);
        let Frame::Event { event, id, data } = &frames[1] else {
            panic!("an event: {frames:?}")
        };
        assert_eq!((*event, id), ("error", &None));
        let data: serde_json::Value = serde_json::from_str(data).expect("json");
        assert_eq!(data["code"], "store_unavailable");
        assert_eq!(data["retry_in_ms"], 2000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_that_never_fills_is_announced_then_skipped() {
        let log = MemoryStore::new(1);
        let first = log.push(0, "python");
        log.push(0, "python");
        let third = log.push(0, "python");
        log.delete(0, 2);
        let mut begin = start(1, Filter::default());
        begin.resumed = true;
        let frames = collect(bounty_stream(
            log.clone(),
            None,
            StreamSettings {
                max_duration: Duration::from_secs(45),
                ..settings()
            },
            begin,
        ))
        .await;
        let events: Vec<(Duration, &str)> = frames
            .iter()
            .filter(|(_, f)| matches!(name(f), "bounty" | "error"))
            .map(|(at, f)| (*at, name(f)))
            .collect();
        let kinds: Vec<&str> = events.iter().map(|(_, kind)| *kind).collect();
        assert_eq!(kinds, ["bounty", "error", "bounty"]);
        let error = frames
            .iter()
            .find(|(_, f)| name(f) == "error")
            .map(|(_, f)| data(f))
            .expect("error");
        assert_eq!(error["code"], "gap");
        assert_eq!(
            (&error["shard"], &error["first_seq"], &error["last_seq"]),
            (
                &serde_json::json!(0),
                &serde_json::json!(2),
                &serde_json::json!(2)
            )
        );
        // Waited out the grace period first: a commit not yet visible is not a gap.
        assert!(events[1].0 >= crate::feed::GAP_GRACE, "{:?}", events[1].0);
        let ids: Vec<_> = frames
            .iter()
            .filter(|(_, f)| name(f) == "bounty")
            .map(|(_, f)| data(f)["id"].clone())
            .collect();
        assert_eq!(ids, [serde_json::json!(first), serde_json::json!(third)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_superseded_stream_drops_its_read_and_ends_with_a_superseded_checkpoint() {
        // Every read takes an hour: the one in flight when the takeover comes must be
        // dropped, not awaited.
        let log = MemoryStore::new(1);
        log.push(0, "python");
        log.slow_reads(Some(Duration::from_secs(3600)));
        let (tell, told) = tokio::sync::oneshot::channel::<()>();
        let mut begin = start(1, Filter::default());
        begin.resumed = true;
        let stream = bounty_stream_until(log.clone(), None, settings(), begin, async move {
            let _ = told.await;
        });
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20_500)).await;
            let _ = tell.send(());
        });
        let frames = collect(stream).await;
        let names: Vec<_> = frames.iter().map(|(_, f)| name(f)).collect();
        assert_eq!(names, ["retry", "connected", "comment", "checkpoint"]);
        let (at, checkpoint) = frames.last().expect("frames");
        assert_eq!(*at, Duration::from_millis(20_500), "ends at the takeover");
        let data = data(checkpoint);
        assert_eq!(data["reason"], "superseded");
        // Where it was: nothing read yet, so the cursor it started from.
        let Frame::Event { id, .. } = checkpoint else {
            panic!("event")
        };
        assert_eq!(id.as_deref(), data["cursor"].as_str());
        let reads = log.reads();
        assert_eq!(reads, 1, "the one read, dropped in flight");
        tokio::time::sleep(Duration::from_secs(7200)).await;
        assert_eq!(log.reads(), reads, "nothing read after");
    }

    #[tokio::test(start_paused = true)]
    async fn a_superseded_stream_on_the_shared_read_leaves_it() {
        let log = MemoryStore::new(1);
        let read = shared(&log, 64);
        let (tell, told) = tokio::sync::oneshot::channel::<()>();
        let begin = now_start(&log, Filter::default()).await;
        let superseded = bounty_stream_until(
            log.clone(),
            Some(read.clone()),
            settings(),
            begin,
            async move {
                let _ = told.await;
            },
        );
        let superseded = tokio::spawn(collect(superseded));
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let delivered = log.push(0, "python");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = tell.send(());
        let frames = superseded.await.expect("stream");
        assert_eq!(bounty_ids(&frames), [delivered]);
        let (at, last) = frames.last().expect("frames");
        assert_eq!(*at, Duration::from_millis(5_500));
        assert_eq!(data(last)["reason"], "superseded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_store_does_not_starve_heartbeats() {
        // Every read takes an hour (paused time): the heartbeats must not wait for it.
        let slow = MemoryStore::new(1);
        slow.slow_reads(Some(Duration::from_secs(3600)));
        let frames = collect(bounty_stream(
            slow,
            None,
            settings(),
            start(1, Filter::default()),
        ))
        .await;
        let heartbeats = frames.iter().filter(|(_, f)| name(f) == "comment").count();
        assert_eq!(heartbeats, 3);
        assert_eq!(name(&frames.last().expect("frames").1), "checkpoint");
    }

    fn shared(log: &Arc<MemoryStore>, buffer: usize) -> Arc<SharedRead<MemoryStore>> {
        Arc::new(SharedRead::new(
            log.clone(),
            shared_read::SharedSettings {
                poll_interval: Duration::from_secs(1),
                page_size: 100,
                backoff_cap: Duration::from_secs(30),
                buffer,
            },
        ))
    }

    fn bounty_ids(frames: &[(Duration, Frame)]) -> Vec<String> {
        frames
            .iter()
            .filter(|(_, f)| name(f) == "bounty")
            .map(|(_, f)| data(f)["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn now_start(log: &MemoryStore, filter: Filter) -> StreamStart {
        StreamStart {
            selection: feed(filter),
            cursor: Cursor {
                issued_ms: 0,
                positions: crate::store::heads(log).await.expect("heads"),
            },
            resumed: false,
        }
    }

    fn category(name: &str) -> Filter {
        crate::query::parse_stream_query(&[("category".into(), name.into())], None)
            .expect("valid")
            .filter
    }

    #[tokio::test(start_paused = true)]
    async fn shared_streams_get_their_own_matches_once_and_read_the_log_once_per_interval() {
        let log = MemoryStore::new(2);
        let read = shared(&log, 64);
        let short = StreamSettings {
            max_duration: Duration::from_secs(20),
            ..settings()
        };
        let mut streams = Vec::new();
        for n in 0..30 {
            let filter = match n % 3 {
                0 => Filter::default(),
                1 => category("python"),
                _ => category("rust"),
            };
            let start = now_start(&log, filter).await;
            streams.push(tokio::spawn(collect(bounty_stream(
                log.clone(),
                Some(read.clone()),
                short.clone(),
                start,
            ))));
        }
        let reads_before = log.reads();
        let writer = log.clone();
        let publisher = tokio::spawn(async move {
            let mut published = Vec::new();
            for n in 0..40u64 {
                tokio::time::sleep(Duration::from_millis(130)).await;
                let category = if n % 2 == 0 { "python" } else { "rust" };
                published.push((writer.push((n % 2) as usize, category), category));
            }
            published
        });
        let published = publisher.await.expect("publisher");
        let mut all = Vec::new();
        for (n, stream) in streams.into_iter().enumerate() {
            let frames = stream.await.expect("stream");
            let want: Vec<String> = published
                .iter()
                .filter(|(_, category)| match n % 3 {
                    0 => true,
                    1 => *category == "python",
                    _ => *category == "rust",
                })
                .map(|(id, _)| id.clone())
                .collect();
            let mut got = bounty_ids(&frames);
            got.sort();
            let mut want_sorted = want.clone();
            want_sorted.sort();
            assert_eq!(got, want_sorted, "stream {n}");
            all.push(frames);
        }
        // About 20 polls of 2 shards for all 30 streams together.
        let reads = log.reads() - reads_before;
        assert!(reads <= 2 * 21, "{reads} reads");
        assert_eq!(read.started(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_stream_reads_alone_then_joins_without_gap_or_duplicate() {
        let log = MemoryStore::new(1);
        let read = shared(&log, 64);
        let mut published: Vec<String> = (0..5).map(|_| log.push(0, "python")).collect();
        // A caught-up stream keeps the shared read going.
        let live = now_start(&log, Filter::default()).await;
        let live = tokio::spawn(collect(bounty_stream(
            log.clone(),
            Some(read.clone()),
            settings(),
            live,
        )));
        let writer = log.clone();
        let publisher = tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                ids.push(writer.push(0, "python"));
            }
            ids
        });
        tokio::time::sleep(Duration::from_millis(3_100)).await;
        let reads_before = log.reads();
        let mut resumed = start(1, Filter::default());
        resumed.resumed = true;
        let frames = collect(bounty_stream(
            log.clone(),
            Some(read.clone()),
            StreamSettings {
                max_duration: Duration::from_secs(20),
                ..settings()
            },
            resumed,
        ))
        .await;
        published.extend(publisher.await.expect("publisher"));
        assert_eq!(bounty_ids(&frames), published, "each once, in order");
        // 20 s of the shared read's one poll a second, and a few reads of its own
        // (alone it would have doubled them).
        let reads = log.reads() - reads_before;
        assert!(reads <= 25, "{reads} reads");
        assert_eq!(read.started(), 1, "joined the running read");
        drop(live);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_stops_reading_leaves_and_later_gets_everything_once() {
        let log = MemoryStore::new(1);
        let read = shared(&log, 2);
        let begin = now_start(&log, Filter::default()).await;
        let mut stream = Box::pin(bounty_stream(
            log.clone(),
            Some(read.clone()),
            StreamSettings {
                max_duration: Duration::from_secs(30),
                ..settings()
            },
            begin,
        ));
        // retry, connected: the stream has joined.
        for _ in 0..2 {
            stream.next().await.expect("frame");
        }
        let mut published = Vec::new();
        // Not read for 10 polls with a new entry each: far past a buffer of 2.
        for _ in 0..10 {
            published.push(log.push(0, "python"));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        published.push(log.push(0, "python"));
        let frames = collect(stream).await;
        assert_eq!(bounty_ids(&frames), published);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_shared_read_reaches_each_stream_as_error_frames_then_recovers() {
        let log = MemoryStore::new(1);
        let read = shared(&log, 64);
        let short = StreamSettings {
            max_duration: Duration::from_secs(20),
            ..settings()
        };
        let mut streams = Vec::new();
        for _ in 0..3 {
            let begin = now_start(&log, Filter::default()).await;
            streams.push(tokio::spawn(collect(bounty_stream(
                log.clone(),
                Some(read.clone()),
                short.clone(),
                begin,
            ))));
        }
        let reads = log.reads();
        log.fail_next_reads(3);
        let id = log.push(0, "python");
        for stream in streams {
            let frames = stream.await.expect("stream");
            let errors = frames.iter().filter(|(_, f)| name(f) == "error").count();
            assert_eq!(errors, 3);
            assert_eq!(bounty_ids(&frames), std::slice::from_ref(&id));
        }
        // The failures cost the store one read each, not one per stream.
        assert!(log.reads() - reads <= 20, "{}", log.reads() - reads);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_entry_is_named_in_an_error_then_skipped_alone_or_shared() {
        for with_shared in [false, true] {
            let log = MemoryStore::new(1);
            let read = with_shared.then(|| shared(&log, 64));
            let begin = now_start(&log, Filter::default()).await;
            let writer = log.clone();
            let publisher = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                let before = writer.push(0, "python");
                let poison = writer.push_unreadable(0, "s0-poison");
                let after = writer.push(0, "python");
                (before, poison, after)
            });
            let frames = collect(bounty_stream(
                log.clone(),
                read,
                StreamSettings {
                    max_duration: Duration::from_secs(10),
                    ..settings()
                },
                begin,
            ))
            .await;
            let (before, poison, after) = publisher.await.expect("publisher");
            let events: Vec<&str> = frames
                .iter()
                .map(|(_, f)| name(f))
                .filter(|name| matches!(*name, "bounty" | "error"))
                .collect();
            assert_eq!(
                events,
                ["bounty", "error", "bounty"],
                "shared: {with_shared}"
            );
            assert_eq!(bounty_ids(&frames), [before, after]);
            let error = frames
                .iter()
                .find(|(_, f)| name(f) == "error")
                .map(|(_, f)| data(f))
                .expect("error");
            assert_eq!(error["code"], "unreadable_entry");
            assert_eq!(error["shard"], 0);
            assert_eq!(error["seq"], poison.seq);
            assert_eq!(error["id"], "s0-poison");
            // Skipped at once: no grace period, no stall.
            let at = frames
                .iter()
                .find(|(_, f)| name(f) == "error")
                .map(|(at, _)| *at)
                .expect("error");
            assert!(at < Duration::from_secs(3), "{at:?}");
        }
    }
}
