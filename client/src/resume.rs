//! The reconnect loop every stream of the server shares: the firehose
//! (`/api/v1/bounties/stream`) and the stream of one bounty (`/api/v1/tasks/{id}/stream`).
//!
//! One loop: connect (with `Last-Event-ID` once there is one), read frames until the
//! connection ends, decide whether and when to come back, repeat. What differs between
//! the streams (the URL, what `connected` carries, which events deliver what) is a
//! [`Protocol`]; everything here is the same for both:
//!
//! - `200`: read. `connected` and `checkpoint` and every delivered event move the
//!   resume cursor; `retry:` sets the base reconnect delay (at least
//!   [`MIN_SERVER_RETRY`](crate::backoff::MIN_SERVER_RETRY), so `retry: 0` cannot make
//!   a reconnect loop); any byte (the heartbeat comment too) proves the link alive, and
//!   none for twice the heartbeat interval means it is dead: drop it and reconnect.
//!   The interval is the server's, from `connected`'s `heartbeat_ms`; until
//!   `connected` arrives, and with servers that do not send it, it is
//!   [`ClientBuilder::heartbeat`](crate::ClientBuilder::heartbeat).
//! - A close right after a `checkpoint` is the server's planned rotation: reconnect at
//!   once. Any other close, a network error, a `5xx` or `429`: reconnect after an
//!   exponential backoff with jitter (at least `Retry-After` when the server sent one).
//!   A line or event over [`MAX_FRAME_BYTES`](crate::sse::MAX_FRAME_BYTES) counts as a
//!   broken connection too.
//! - The backoff starts again from its base only once a connection has proved itself:
//!   it delivered an event or a checkpoint, or it carried a byte (a heartbeat) at least
//!   one heartbeat interval after `connected`. A `connected` alone proves nothing: a
//!   server that accepts and then drops every stream would otherwise be hammered
//!   without ever backing off, and
//!   [`max_failures`](crate::ClientBuilder::max_failures) would never be reached.
//! - `204`: the server says there is nothing more; the stream ends. So does a frame the
//!   protocol calls the last ([`Frame::Last`]: a bounty closed or expired).
//! - Any other `4xx` (a bad filter, a cursor too old, an unknown bounty): the stream
//!   yields [`ClientError::Rejected`] with the server's code and message and ends.
//!   Retrying the same request cannot succeed, so it is never retried.
//!
//! An `Err` item is always the last item.

use std::time::Duration;

use futures_core::Stream;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::backoff::Backoff;
use crate::sse::{SseItem, SseParser};
use crate::{Client, ClientError};

/// What one kind of stream says, and how to reach it.
pub(crate) trait Protocol: Send + 'static {
    /// What `connected` is read as.
    type Connected: Send + 'static;
    /// What the stream delivers.
    type Item: Send + 'static;

    /// The stream's URL; `resuming` when a `Last-Event-ID` goes with the request.
    fn url(&self, client: &Client, resuming: bool) -> Result<Url, ClientError>;

    /// Reads a `connected` event's data.
    fn connected(&mut self, data: &str) -> Result<Hello<Self::Connected>, ClientError>;

    /// Reads any other named event (`checkpoint` and `error` are the loop's). An `Err`
    /// ends the stream with that error: the server sent what the SDK cannot read.
    fn frame(&mut self, event: &str, data: &str) -> Result<Frame<Self::Item>, ClientError>;
}

/// A `connected` event as the loop needs it.
pub(crate) struct Hello<C> {
    pub cursor: String,
    pub heartbeat_ms: Option<u64>,
    pub event: C,
}

/// What a frame means for the stream.
pub(crate) enum Frame<T> {
    /// Deliver it; its `id:` is the new resume point.
    Deliver(T),
    /// Deliver it, then end: nothing can follow it.
    Last(T),
    /// Already delivered (sent again around a reconnect): nothing to deliver, but its
    /// `id:` still moves the resume point and it proves the link.
    Repeat,
    /// An event this stream does not know: skipped.
    Unknown,
}

/// What the loop reports.
pub(crate) enum Event<C, T> {
    Connected(C),
    Item(T),
    Reconnecting {
        failures: u32,
        delay: Duration,
        reason: String,
    },
}

#[derive(Deserialize)]
struct Checkpoint {
    cursor: String,
}

#[derive(Deserialize)]
struct StreamError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The least and the most of a server's `heartbeat_ms` the dead-link timer accepts.
/// Below 100 ms a timer would fire on ordinary scheduling delays; above 300 s (the most
/// the server's `HEARTBEAT_SECONDS` allows) a mangled value would leave a dead link
/// unnoticed for too long.
const SERVER_HEARTBEAT: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(300);

/// The heartbeat interval `connected` announces, if it announces a usable one (`0` is
/// not: it would declare every link dead at once).
fn server_heartbeat(heartbeat_ms: Option<u64>) -> Option<Duration> {
    let interval = Duration::from_millis(heartbeat_ms.filter(|&ms| ms > 0)?);
    Some(interval.clamp(*SERVER_HEARTBEAT.start(), *SERVER_HEARTBEAT.end()))
}

/// How one connection ended, when it did not end the stream.
enum Ended {
    /// At a checkpoint: come back at once.
    Planned,
    /// Anything else: back off. `at_least` is the server's `Retry-After`.
    Failed {
        reason: String,
        at_least: Option<Duration>,
    },
}

pub(crate) fn gave_up(max_failures: &Option<u32>, backoff: &Backoff) -> bool {
    max_failures.is_some_and(|max| backoff.failures() >= max)
}

/// Runs `protocol`'s stream, resuming after `last_event_id` if given, until it ends
/// (see the module docs).
pub(crate) fn run<P: Protocol>(
    client: Client,
    mut protocol: P,
    mut last_event_id: Option<String>,
) -> impl Stream<Item = Result<Event<P::Connected, P::Item>, ClientError>> + Send + 'static {
    async_stream::stream! {
        let settings = client.settings.clone();
        let mut backoff = Backoff::new(settings.initial_retry, settings.max_backoff, settings.jitter);
        let started = Instant::now();
        loop {
            // The server's interval is only known once its `connected` arrives.
            let mut heartbeat = settings.heartbeat;
            let mut idle_limit = heartbeat.saturating_mul(2);
            let url = match protocol.url(&client, last_event_id.is_some()) {
                Ok(url) => url,
                Err(err) => {
                    yield Err(err);
                    return;
                }
            };
            let mut request = client
                .http
                .get(url)
                .header(ACCEPT, "text/event-stream")
                .header(CACHE_CONTROL, "no-cache");
            if let Some(id) = &last_event_id {
                request = request.header("last-event-id", id.as_str());
            }
            // The response head must come within the idle limit too.
            let ended = match tokio::time::timeout(idle_limit, request.send()).await {
                Err(_) => Ended::Failed { reason: format!("no response within {idle_limit:?}"), at_least: None },
                Ok(Err(err)) => Ended::Failed { reason: format!("cannot connect: {err}"), at_least: None },
                Ok(Ok(mut response)) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match status {
                        200 => {
                            let content_type = response
                                .headers()
                                .get(CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            if !content_type.starts_with("text/event-stream") {
                                yield Err(ClientError::Protocol(format!(
                                    "the stream answered 200 with content-type {content_type:?}, not text/event-stream: is the URL right?"
                                )));
                                return;
                            }
                            // Read this connection to its end.
                            let mut parser = SseParser::new();
                            let mut at_checkpoint = false;
                            let mut connected_at = None;
                            let mut proved = false;
                            let ended;
                            loop {
                                let chunk = match tokio::time::timeout(idle_limit, response.chunk()).await {
                                    Err(_) => {
                                        ended = Ended::Failed { reason: format!("no byte for {idle_limit:?} (twice the heartbeat): connection presumed dead"), at_least: None };
                                        break;
                                    }
                                    Ok(Err(err)) => {
                                        ended = Ended::Failed { reason: format!("connection lost: {err}"), at_least: None };
                                        break;
                                    }
                                    Ok(Ok(None)) => {
                                        ended = if at_checkpoint {
                                            Ended::Planned
                                        } else {
                                            Ended::Failed { reason: "the server closed the stream".into(), at_least: None }
                                        };
                                        break;
                                    }
                                    Ok(Ok(Some(chunk))) => chunk,
                                };
                                // A byte a heartbeat after `connected`: the server's
                                // loop has kept the stream up that long.
                                if connected_at.is_some_and(|at: Instant| at.elapsed() >= heartbeat) {
                                    proved = true;
                                }
                                let items = match parser.push(&chunk) {
                                    Ok(items) => items,
                                    Err(err) => {
                                        ended = Ended::Failed { reason: err.to_string(), at_least: None };
                                        break;
                                    }
                                };
                                for item in items {
                                    match item {
                                        SseItem::Retry(ms) => backoff.server_retry(Duration::from_millis(ms)),
                                        SseItem::Comment(_) => {}
                                        SseItem::IdOnly(id) => {
                                            if !id.is_empty() {
                                                last_event_id = Some(id);
                                            }
                                        }
                                        SseItem::Event { event, data, id } => {
                                            let resume_at = id.filter(|id| !id.is_empty());
                                            match event.as_str() {
                                                "connected" => match protocol.connected(&data) {
                                                    Ok(hello) => {
                                                        last_event_id = Some(resume_at.unwrap_or(hello.cursor));
                                                        if let Some(interval) = server_heartbeat(hello.heartbeat_ms) {
                                                            heartbeat = interval;
                                                            idle_limit = interval.saturating_mul(2);
                                                        }
                                                        connected_at = Some(Instant::now());
                                                        at_checkpoint = false;
                                                        yield Ok(Event::Connected(hello.event));
                                                    }
                                                    Err(err) => {
                                                        yield Err(err);
                                                        return;
                                                    }
                                                },
                                                "checkpoint" => {
                                                    let cursor = resume_at.or_else(|| {
                                                        serde_json::from_str::<Checkpoint>(&data).ok().map(|c| c.cursor)
                                                    });
                                                    if let Some(cursor) = cursor {
                                                        last_event_id = Some(cursor);
                                                        at_checkpoint = true;
                                                        proved = true;
                                                    }
                                                }
                                                "error" => {
                                                    let error = serde_json::from_str::<StreamError>(&data).unwrap_or(StreamError { code: String::new(), message: data.clone() });
                                                    // `store_unavailable`: the server catches up by itself; `gap`: entries it
                                                    // could never read were skipped (backfill to look for them);
                                                    // `unreadable_entry`: one entry that cannot be read was skipped.
                                                    tracing::warn!(code = %error.code, message = %error.message, "the server reported an error on the stream; the stream goes on");
                                                }
                                                name => {
                                                    let frame = match protocol.frame(name, &data) {
                                                        Ok(frame) => frame,
                                                        Err(err) => {
                                                            yield Err(err);
                                                            return;
                                                        }
                                                    };
                                                    if !matches!(frame, Frame::Unknown) {
                                                        if let Some(id) = resume_at {
                                                            last_event_id = Some(id);
                                                        }
                                                        proved = true;
                                                    }
                                                    match frame {
                                                        Frame::Deliver(item) => yield Ok(Event::Item(item)),
                                                        Frame::Last(item) => {
                                                            yield Ok(Event::Item(item));
                                                            return;
                                                        }
                                                        Frame::Repeat | Frame::Unknown => {}
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            if proved {
                                backoff.reset();
                            }
                            ended
                        }
                        204 => return,
                        429 => Ended::Failed { reason: "too many open streams (429)".into(), at_least: retry_after },
                        400..=499 => {
                            let body = response.text().await.unwrap_or_default();
                            yield Err(ClientError::rejected(status, &body));
                            return;
                        }
                        _ => {
                            let body = response.text().await.unwrap_or_default();
                            let message = crate::ApiErrorBody::from_body(status, &body).message;
                            Ended::Failed { reason: format!("the server answered {status}: {message}"), at_least: retry_after }
                        }
                    }
                }
            };
            let (delay, reason) = match ended {
                Ended::Planned => (Duration::ZERO, "checkpoint: the server rotated the stream".to_owned()),
                Ended::Failed { reason, at_least } => {
                    let delay = backoff.next_delay();
                    if gave_up(&settings.max_failures, &backoff) {
                        yield Err(ClientError::GaveUp { attempts: backoff.failures(), elapsed: started.elapsed(), last: reason });
                        return;
                    }
                    (at_least.map_or(delay, |floor| delay.max(floor)), reason)
                }
            };
            tracing::debug!(?delay, %reason, "reconnecting");
            yield Ok(Event::Reconnecting { failures: backoff.failures(), delay, reason });
            tokio::time::sleep(delay).await;
        }
    }
}
