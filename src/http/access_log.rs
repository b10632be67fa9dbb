//! One access log line per request: request id, method, path, client, status, filter
//! summary, duration and what was sent (`events`: SSE events, of which `bounties`,
//! `changes` and `errors`; for the backfill, `bounties` is the number listed).
//!
//! A JSON answer is logged when it is returned. A stream is logged once, when it ends:
//! its frames are counted as typed values on their way to the wire, and the line is
//! written when they end (`ended: completed`, or `superseded` when another stream took
//! over from it) or are dropped because the client went away (`ended: client_gone`). Nothing from the request's headers is logged: no
//! `Authorization`, no key, no key hash.

use std::time::Instant;

use futures_util::{Stream, StreamExt};
use http::Response;
use lambda_http::Request;

use super::body::ResponseBody;
use crate::stream::{CheckpointReason, StreamFrame};

/// What an endpoint tells the access log about the filter it applied (a response
/// extension; endpoints without a filter leave it out).
#[derive(Debug, Clone)]
pub struct FilterSummary(pub String);

/// How many bounties a JSON answer carried (a response extension of the backfill).
#[derive(Debug, Clone, Copy)]
pub struct Listed(pub u64);

/// A request being served.
#[derive(Debug)]
pub struct Entry {
    request_id: String,
    method: String,
    path: String,
    client: String,
    started: Instant,
}

impl Entry {
    pub fn start(req: &Request, request_id: String) -> Entry {
        Entry {
            request_id,
            method: req.method().to_string(),
            path: req.uri().path().chars().take(200).collect(),
            client: super::client_ip::client_of(req),
            started: Instant::now(),
        }
    }

    /// Logs a JSON (or empty) answer now.
    pub fn answered(self, response: Response<ResponseBody>) -> Response<ResponseBody> {
        let filter = response
            .extensions()
            .get::<FilterSummary>()
            .map_or_else(|| "-".to_owned(), |summary| summary.0.clone());
        let counts = Counts {
            bounties: response.extensions().get::<Listed>().map_or(0, |l| l.0),
            ..Counts::default()
        };
        self.log(response.status().as_u16(), &filter, counts, "answered");
        response
    }

    /// Counts a stream's frames as they pass, and logs the stream once when they end
    /// or are dropped. Streams answer 200: every refusal came before the first frame.
    pub fn stream(
        self,
        filter: String,
        frames: impl Stream<Item = StreamFrame> + Send + 'static,
    ) -> impl Stream<Item = StreamFrame> + Send + 'static {
        let mut open = OpenStream {
            entry: Some(self),
            filter,
            counts: Counts::default(),
            ended: "client_gone",
        };
        async_stream::stream! {
            let mut frames = std::pin::pin!(frames);
            let mut ended = "completed";
            while let Some(frame) = frames.next().await {
                open.counts.add(&frame);
                if matches!(frame, StreamFrame::Checkpoint { reason: CheckpointReason::Superseded, .. }) {
                    ended = "superseded";
                }
                yield frame;
            }
            open.end(ended);
        }
    }

    fn log(&self, status: u16, filter: &str, counts: Counts, ended: &str) {
        tracing::info!(
            target: "firehose::access",
            request_id = %self.request_id,
            method = %self.method,
            path = %self.path,
            client = %self.client,
            status,
            filter,
            duration_ms = self.started.elapsed().as_millis() as u64,
            events = counts.events,
            bounties = counts.bounties,
            changes = counts.changes,
            errors = counts.errors,
            ended,
            "request"
        );
    }
}

/// SSE events sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    events: u64,
    bounties: u64,
    /// `bounty_updated`, `bounty_closed`, `bounty_expired`.
    changes: u64,
    errors: u64,
}

impl Counts {
    /// Events only: not the `retry:` hint, not heartbeat comments.
    fn add(&mut self, frame: &StreamFrame) {
        let Some(event) = frame.event_name() else {
            return;
        };
        self.events += 1;
        if frame.is_bounty() {
            self.bounties += 1;
        }
        if matches!(frame, StreamFrame::Change { .. }) {
            self.changes += 1;
        }
        if event == "error" {
            self.errors += 1;
        }
    }
}

/// The access log of a stream still being sent; logs when dropped.
struct OpenStream {
    entry: Option<Entry>,
    filter: String,
    counts: Counts,
    ended: &'static str,
}

impl OpenStream {
    fn end(&mut self, how: &'static str) {
        self.ended = how;
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.log(200, &self.filter, self.counts, self.ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::ErrorEvent;

    #[test]
    fn counts_events_bounties_and_errors_not_comments_or_hints() {
        let cursor = crate::cursor::Cursor {
            issued_ms: 0,
            positions: vec![crate::cursor::Position::START],
        };
        let bounty = crate::store::memory::bounty("b", "python", 1_000);
        let mut counts = Counts::default();
        for frame in [
            StreamFrame::Retry(2000),
            StreamFrame::Connected(crate::stream::Connected {
                subject: crate::stream::frame::Subject::Feed {
                    filter: crate::filter::Filter::default(),
                    changes: false,
                },
                server_time: chrono::Utc::now(),
                cursor: cursor.clone(),
                resumed: false,
                closes_at: chrono::Utc::now(),
                heartbeat_ms: 15_000,
            }),
            StreamFrame::Heartbeat,
            StreamFrame::Bounty {
                cursor: cursor.clone(),
                bounty: bounty.clone(),
            },
            StreamFrame::Error(ErrorEvent::StoreUnavailable { retry_in_ms: 500 }),
            StreamFrame::Bounty {
                cursor: cursor.clone(),
                bounty,
            },
            StreamFrame::Checkpoint {
                cursor,
                reason: crate::stream::CheckpointReason::MaxDuration,
            },
        ] {
            counts.add(&frame);
        }
        assert_eq!(
            counts,
            Counts {
                events: 5,
                bounties: 2,
                changes: 0,
                errors: 1
            }
        );
    }
}
