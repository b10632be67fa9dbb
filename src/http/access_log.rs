//! One access log line per request: request id, method, path, client, status, filter
//! summary, duration and event count (`events`: SSE events sent, of which `bounties`;
//! for the backfill, `bounties` is the number listed).
//!
//! A JSON answer is logged when it is returned. A stream's event count and duration are
//! known only when it ends, so a stream is logged when its body ends or is dropped
//! (the client went away), with `ended` saying which. Nothing from the request's
//! headers is logged: no `Authorization`, no key, no key hash.

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, Response};
use http_body_util::StreamBody;
use lambda_http::Request;

use super::body::ResponseBody;

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

    /// Logs `response` now, or, for a stream, when its body ends.
    pub fn finish(self, response: Response<ResponseBody>) -> Response<ResponseBody> {
        let filter = response
            .extensions()
            .get::<FilterSummary>()
            .map(|summary| summary.0.clone())
            .unwrap_or_else(|| "-".to_owned());
        let status = response.status().as_u16();
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !is_stream {
            let counts = Counts {
                events: 0,
                bounties: response.extensions().get::<Listed>().map_or(0, |l| l.0),
            };
            self.log(status, &filter, counts, "answered");
            return response;
        }
        let (parts, body) = response.into_parts();
        let mut open = OpenStream {
            entry: Some(self),
            status,
            filter,
            counts: Counts::default(),
            ended: "client_gone",
        };
        let counted = async_stream::stream! {
            let mut body = std::pin::pin!(body);
            while let Some(frame) = body.next().await {
                if let Ok(frame) = &frame {
                    if let Some(data) = frame.data_ref() {
                        open.counts.add(data);
                    }
                }
                yield frame;
            }
            open.end("completed");
        };
        let counted: super::body::FrameStream = Box::pin(counted);
        Response::from_parts(parts, StreamBody::new(counted))
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
            ended,
            "request"
        );
    }
}

/// SSE events written so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    events: u64,
    bounties: u64,
}

impl Counts {
    /// A chunk holds one or more whole frames (frames ready together are written as
    /// one chunk): count their `event:` lines, not comments (`: heartbeat`) or the
    /// `retry:` hint. Data is one JSON line after `data: `, so no other line starts so.
    fn add(&mut self, chunk: &Bytes) {
        for line in chunk.split(|byte| *byte == b'\n') {
            if let Some(name) = line.strip_prefix(b"event: ") {
                self.events += 1;
                if name == b"bounty" {
                    self.bounties += 1;
                }
            }
        }
    }
}

/// The access log of a stream still being written; logs when dropped.
struct OpenStream {
    entry: Option<Entry>,
    status: u16,
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
            entry.log(self.status, &self.filter, self.counts, self.ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_events_and_bounties_not_comments_or_hints() {
        let mut counts = Counts::default();
        for chunk in [
            "retry: 2000\n\n",
            "event: connected\nid: c\ndata: {}\n\n",
            ": heartbeat\n\n",
            "event: bounty\nid: x\ndata: {}\n\n",
            "event: error\ndata: {}\n\n",
            "event: bounty\nid: y\ndata: {}\n\n",
        ] {
            counts.add(&Bytes::from_static(chunk.as_bytes()));
        }
        assert_eq!(
            counts,
            Counts {
                events: 4,
                bounties: 2
            }
        );
        // The same frames written as one chunk count the same.
        let mut joined = Counts::default();
        joined.add(&Bytes::from_static(
            b"retry: 2000\n\nevent: connected\nid: c\ndata: {}\n\n: heartbeat\n\nevent: bounty\nid: x\ndata: {}\n\nevent: error\ndata: {}\n\nevent: bounty\nid: y\ndata: {}\n\n",
        ));
        assert_eq!(joined, counts);
    }
}
