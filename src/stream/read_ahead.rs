//! Reading the next page of a burst while the stream writes the current one, so a
//! drain runs at the store's pace, not at the sum of store and client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;

use crate::cursor::Position;
use crate::feed::{read_batch, Batch};
use crate::store::{FeedReader, LogEntry, StoreError};

/// A read of the log the stream waits on (a poll, or a read-ahead).
pub type PollFuture = Pin<Box<dyn Future<Output = Result<Batch, StoreError>> + Send>>;

/// A task that runs without waiting to be polled; aborted when dropped, so a stream
/// whose client went away leaves no read behind.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts reading the batch after `positions` at once, on a task of its own, so that
/// it proceeds while the stream writes the previous batch.
pub fn read_ahead<R: FeedReader>(
    store: Arc<R>,
    positions: Vec<Position>,
    accept_gaps: Vec<bool>,
    page_size: usize,
) -> PollFuture {
    let task = AbortOnDrop(tokio::spawn(read_batch(
        store,
        positions,
        accept_gaps,
        Instant::now(),
        page_size,
    )));
    Box::pin(async move {
        let mut task = task;
        (&mut task.0).await.unwrap_or_else(|err| {
            Err(StoreError::Unavailable {
                operation: "Query",
                detail: format!("the read-ahead task failed: {err}"),
            })
        })
    })
}

/// The positions once `entries` (shard, entry) are delivered: where the read-ahead
/// starts.
pub fn positions_after(positions: &[Position], entries: &[(usize, LogEntry)]) -> Vec<Position> {
    let mut after = positions.to_vec();
    for (shard, entry) in entries {
        if let Some(slot) = after.get_mut(*shard) {
            *slot = entry.position;
        }
    }
    after
}
