//! The reconnecting subscription.
//!
//! One loop: connect (with `Last-Event-ID` once there is one), read frames until the
//! connection ends, decide whether and when to come back, repeat.
//!
//! - `200`: read. `connected` and `checkpoint` and every `bounty` move the resume
//!   cursor; `retry:` sets the base reconnect delay (at least
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
//!   it delivered a bounty or a checkpoint, or it carried a byte (a heartbeat) at least
//!   one heartbeat interval after `connected`. A `connected` alone proves nothing: a
//!   server that accepts and then drops every stream would otherwise be hammered
//!   without ever backing off, and
//!   [`max_failures`](crate::ClientBuilder::max_failures) would never be reached.
//! - `204`: the server says there is nothing more; the stream ends.
//! - Any other `4xx` (a bad filter, a cursor too old): the stream yields
//!   [`ClientError::Rejected`] with the server's code and message and ends. Retrying
//!   the same request cannot succeed, so it is never retried.
//!
//! An `Err` item is always the last item.

use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::dedupe::DedupeWindow;
use crate::model::{Bounty, Connected, Filter};
use crate::sse::{SseItem, SseParser};
use crate::{Client, ClientError};

/// Where a subscription starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StartAt {
    /// Only bounties published after the connect (the server's default).
    #[default]
    Now,
    /// From an RFC 3339 instant, within the server's look-back window.
    Since(String),
    /// Right after a cursor (a `Last-Event-ID` saved from an earlier subscription).
    Cursor(String),
    /// First the open bounties that already match (up to `max`, oldest first), then
    /// the stream from the backfill's `stream_cursor`: nothing missed between the two.
    Backfill { max: usize },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    pub filter: Filter,
    pub start: StartAt,
}

impl From<Filter> for SubscribeOptions {
    fn from(filter: Filter) -> Self {
        Self {
            filter,
            start: StartAt::Now,
        }
    }
}

/// What a subscription reports, for callers that want more than the bounties.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionEvent {
    /// A connection was opened (also after every reconnect).
    Connected(Connected),
    /// A new bounty (never one already delivered within the de-duplication window).
    Bounty(Bounty),
    /// The connection ended; the next attempt comes after `delay`.
    Reconnecting {
        /// Consecutive failures so far (0 after a planned close at a checkpoint).
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
fn server_heartbeat(connected: &Connected) -> Option<Duration> {
    let interval = Duration::from_millis(connected.heartbeat_ms.filter(|&ms| ms > 0)?);
    Some(interval.clamp(*SERVER_HEARTBEAT.start(), *SERVER_HEARTBEAT.end()))
}

/// How one connection ended, when it did not end the subscription.
enum Ended {
    /// At a checkpoint: come back at once.
    Planned,
    /// Anything else: back off. `at_least` is the server's `Retry-After`.
    Failed {
        reason: String,
        at_least: Option<Duration>,
    },
}

impl Client {
    /// New bounties matching `filter`, forever: reconnects, resumes and de-duplicates
    /// by itself. Ends only after an `Err` (a rejection, or
    /// [`ClientBuilder::max_failures`](crate::ClientBuilder::max_failures) reached) or a
    /// `204` from the server.
    pub fn subscribe(
        &self,
        options: impl Into<SubscribeOptions>,
    ) -> impl Stream<Item = Result<Bounty, ClientError>> + Send + 'static {
        self.subscribe_events(options).filter_map(|item| {
            std::future::ready(match item {
                Ok(SubscriptionEvent::Bounty(bounty)) => Some(Ok(bounty)),
                Ok(_) => None,
                Err(err) => Some(Err(err)),
            })
        })
    }

    /// Like [`Client::subscribe`], with connection events too.
    pub fn subscribe_events(
        &self,
        options: impl Into<SubscribeOptions>,
    ) -> impl Stream<Item = Result<SubscriptionEvent, ClientError>> + Send + 'static {
        let options = options.into();
        let client = self.clone();
        async_stream::stream! {
            let settings = client.settings.clone();
            let mut backoff = Backoff::new(settings.initial_retry, settings.max_backoff, settings.jitter);
            let mut seen = DedupeWindow::new(settings.dedupe_window);
            let mut since = None;
            let mut last_event_id = None;
            let started = Instant::now();
            match options.start {
                StartAt::Now => {}
                StartAt::Since(at) => since = Some(at),
                StartAt::Cursor(cursor) => last_event_id = Some(cursor),
                StartAt::Backfill { max } => loop {
                    match client.backfill(&options.filter, max).await {
                        Ok((mut bounties, cursor)) => {
                            bounties.reverse(); // oldest first, like the stream
                            for bounty in bounties {
                                if seen.first_time(&bounty.id) {
                                    yield Ok(SubscriptionEvent::Bounty(bounty));
                                }
                            }
                            last_event_id = Some(cursor);
                            backoff.reset();
                            break;
                        }
                        Err(err @ (ClientError::Rejected { .. } | ClientError::Protocol(_))) => {
                            yield Err(err);
                            return;
                        }
                        Err(err) => {
                            let delay = backoff.next_delay();
                            if gave_up(&settings.max_failures, &backoff) {
                                yield Err(ClientError::GaveUp { attempts: backoff.failures(), elapsed: started.elapsed(), last: err.to_string() });
                                return;
                            }
                            yield Ok(SubscriptionEvent::Reconnecting { failures: backoff.failures(), delay, reason: err.to_string() });
                            tokio::time::sleep(delay).await;
                        }
                    }
                },
            }

            loop {
                // The server's interval is only known once its `connected` arrives.
                let mut heartbeat = settings.heartbeat;
                let mut idle_limit = heartbeat.saturating_mul(2);
                let mut query = options.filter.query_pairs();
                if last_event_id.is_none() {
                    if let Some(at) = &since {
                        query.push(("since", at.clone()));
                    }
                }
                let mut request = client
                    .http
                    .get(client.endpoint("api/v1/bounties/stream", &query))
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
                                                    "connected" => match serde_json::from_str::<Connected>(&data) {
                                                        Ok(connected) => {
                                                            last_event_id = Some(resume_at.unwrap_or_else(|| connected.cursor.clone()));
                                                            if let Some(interval) = server_heartbeat(&connected) {
                                                                heartbeat = interval;
                                                                idle_limit = interval.saturating_mul(2);
                                                            }
                                                            connected_at = Some(Instant::now());
                                                            at_checkpoint = false;
                                                            yield Ok(SubscriptionEvent::Connected(connected));
                                                        }
                                                        Err(err) => {
                                                            yield Err(ClientError::Protocol(format!("unreadable connected event: {err}")));
                                                            return;
                                                        }
                                                    },
                                                    "bounty" => match serde_json::from_str::<Bounty>(&data) {
                                                        Ok(bounty) => {
                                                            if let Some(id) = resume_at {
                                                                last_event_id = Some(id);
                                                            }
                                                            proved = true;
                                                            if seen.first_time(&bounty.id) {
                                                                yield Ok(SubscriptionEvent::Bounty(bounty));
                                                            }
                                                        }
                                                        Err(err) => {
                                                            yield Err(ClientError::Protocol(format!("unreadable bounty event: {err}")));
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
                                                    _ => {}
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
                yield Ok(SubscriptionEvent::Reconnecting { failures: backoff.failures(), delay, reason });
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn gave_up(max_failures: &Option<u32>, backoff: &Backoff) -> bool {
    max_failures.is_some_and(|max| backoff.failures() >= max)
}
