//! How encoded frames become writes: frames that are ready together (a page of a
//! burst) leave as one write of up to [`MAX_WRITE_BYTES`], so a burst is not ten
//! thousand small writes through the runtime, and a lone frame is never held back.
//!
//! The cap is in bytes, not frames, and is one TLS record: over a Function URL a client
//! receives the stream in records of at most 16 KiB anyway, so larger writes gain
//! nothing there. Over plain HTTP (local runs) a write arrives as one piece, and some
//! SSE parsers (`eventsource-stream`, under `reqwest-eventsource`) take time quadratic
//! in a piece's size (docs/benchmarks.md).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{Fuse, Stream, StreamExt};

/// A write holds frames up to this many bytes (a larger frame goes alone).
pub const MAX_WRITE_BYTES: usize = 16 * 1024;

/// Joins the frames of `frames` that are ready together into writes of at most
/// `max_bytes`, in order. Never waits for a frame to fill a write.
pub fn coalesce_ready<S>(frames: S, max_bytes: usize) -> CoalesceReady<S>
where
    S: Stream<Item = Bytes>,
{
    CoalesceReady {
        frames: Box::pin(frames.fuse()),
        carried: None,
        max_bytes,
    }
}

pub struct CoalesceReady<S> {
    frames: Pin<Box<Fuse<S>>>,
    /// A ready frame that did not fit in the previous write: it starts the next one.
    carried: Option<Bytes>,
    max_bytes: usize,
}

impl<S: Stream<Item = Bytes>> Stream for CoalesceReady<S> {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        let first = match this.carried.take() {
            Some(frame) => frame,
            None => match this.frames.as_mut().poll_next(cx) {
                Poll::Ready(Some(frame)) => frame,
                other => return other,
            },
        };
        let mut write: Option<BytesMut> = None;
        let mut len = first.len();
        while len < this.max_bytes {
            let Poll::Ready(Some(frame)) = this.frames.as_mut().poll_next(cx) else {
                // Pending (the waker is registered) or the end: write what is ready.
                break;
            };
            if len + frame.len() > this.max_bytes {
                this.carried = Some(frame);
                break;
            }
            len += frame.len();
            write
                .get_or_insert_with(|| {
                    let mut joined = BytesMut::with_capacity(this.max_bytes);
                    joined.extend_from_slice(&first);
                    joined
                })
                .extend_from_slice(&frame);
        }
        Poll::Ready(Some(match write {
            Some(joined) => joined.freeze(),
            None => first,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn frames(count: usize, size: usize) -> Vec<Bytes> {
        (0..count)
            .map(|n| {
                let text = format!("data: {n}\n\n");
                Bytes::from(format!("{text:>size$}"))
            })
            .collect()
    }

    #[tokio::test]
    async fn ready_frames_leave_in_writes_of_at_most_the_cap_in_order() {
        let sent = frames(250, 100);
        let writes: Vec<Bytes> = coalesce_ready(stream::iter(sent.clone()), 1_000)
            .collect()
            .await;
        assert_eq!(writes.concat(), sent.concat());
        assert_eq!(writes.len(), 25);
        assert!(writes.iter().all(|write| write.len() == 1_000));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_cap_goes_alone_and_the_rest_follow() {
        let mut sent = frames(3, 100);
        sent.insert(1, Bytes::from(vec![b'x'; 5_000]));
        let writes: Vec<Bytes> = coalesce_ready(stream::iter(sent.clone()), 1_000)
            .collect()
            .await;
        assert_eq!(writes.concat(), sent.concat());
        let sizes: Vec<usize> = writes.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [100, 5_000, 200]);
    }

    #[tokio::test]
    async fn a_lone_frame_is_not_held_back() {
        let frame = Bytes::from_static(b"data: 1\n\n");
        // One frame, then nothing more for as long as anyone waits.
        let frames = stream::iter([frame.clone()]).chain(stream::pending());
        let mut writes = coalesce_ready(frames, 1_000);
        let write = tokio::time::timeout(std::time::Duration::from_secs(1), writes.next())
            .await
            .expect("the frame is written without waiting for more");
        assert_eq!(write, Some(frame));
    }
}
