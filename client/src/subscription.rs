//! The firehose subscription: new bounties matching a filter (and, on request, the
//! changes to them), forever.
//!
//! The reconnecting itself (resume with `Last-Event-ID`, `retry:`, backoff, the
//! dead-link timer, `204` and `4xx`) is `resume`'s, shared with the
//! stream of one bounty; what is here is the firehose's side: where it starts (now, an
//! instant, a cursor, or a backfill first), the filter in the URL, reading its events,
//! and dropping bounties already delivered.
//!
//! An `Err` item is always the last item.

use std::pin::pin;
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use url::Url;

use crate::backoff::Backoff;
use crate::dedupe::DedupeWindow;
use crate::model::{Bounty, Connected, Filter};
use crate::resume::{self, gave_up, Frame, Hello, Protocol};
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

/// What [`Client::subscribe_changes`] reports: new bounties and the changes to them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FeedEvent {
    /// A connection was opened (also after every reconnect).
    Connected(Connected),
    /// A new bounty (from the backfill, or published since).
    Bounty(Bounty),
    /// A bounty that matches the filter changed (title, budget, tags...); this is the
    /// bounty after the change. Also sent for a bounty that matches only since the
    /// change.
    Updated(Bounty),
    /// A bounty that matched the filter was closed by its publisher (the bounty after
    /// the close: `status` `closed`, with `close_reason`).
    Closed(Bounty),
    /// The connection ended; the next attempt comes after `delay`.
    Reconnecting {
        /// Consecutive failures so far (0 after a planned close at a checkpoint).
        failures: u32,
        delay: Duration,
        reason: String,
    },
}

/// A [`SubscriptionEvent`] is a [`FeedEvent`] of a subscription without changes, so
/// callers can handle both with one `match`.
impl From<SubscriptionEvent> for FeedEvent {
    fn from(event: SubscriptionEvent) -> Self {
        match event {
            SubscriptionEvent::Connected(connected) => FeedEvent::Connected(connected),
            SubscriptionEvent::Bounty(bounty) => FeedEvent::Bounty(bounty),
            SubscriptionEvent::Reconnecting {
                failures,
                delay,
                reason,
            } => FeedEvent::Reconnecting {
                failures,
                delay,
                reason,
            },
        }
    }
}

/// The firehose, as [`resume::run`] drives it.
struct Firehose {
    filter: Filter,
    /// Only for the first request: a resume carries its cursor instead.
    since: Option<String>,
    include_changes: bool,
    seen: DedupeWindow,
}

enum FeedItem {
    New(Bounty),
    Updated(Bounty),
    Closed(Bounty),
}

impl Protocol for Firehose {
    type Connected = Connected;
    type Item = FeedItem;

    fn url(&self, client: &Client, resuming: bool) -> Result<Url, ClientError> {
        let mut query = self.filter.query_pairs();
        if self.include_changes {
            query.push(("include", "changes".to_owned()));
        }
        if let (false, Some(at)) = (resuming, &self.since) {
            query.push(("since", at.clone()));
        }
        Ok(client.endpoint("api/v1/bounties/stream", &query))
    }

    fn connected(&mut self, data: &str) -> Result<Hello<Connected>, ClientError> {
        let connected = serde_json::from_str::<Connected>(data)
            .map_err(|err| ClientError::Protocol(format!("unreadable connected event: {err}")))?;
        Ok(Hello {
            cursor: connected.cursor.clone(),
            heartbeat_ms: connected.heartbeat_ms,
            event: connected,
        })
    }

    fn frame(&mut self, event: &str, data: &str) -> Result<Frame<FeedItem>, ClientError> {
        let (wrap, is_change): (fn(Bounty) -> FeedItem, bool) = match event {
            "bounty" => (FeedItem::New, false),
            "bounty_updated" if self.include_changes => (FeedItem::Updated, true),
            "bounty_closed" if self.include_changes => (FeedItem::Closed, true),
            _ => return Ok(Frame::Unknown),
        };
        let bounty = serde_json::from_str::<Bounty>(data)
            .map_err(|err| ClientError::Protocol(format!("unreadable {event} event: {err}")))?;
        // A new bounty is known by its id (the backfill lists it by id too); a change
        // by its kind and the version it left (a kind of change that does not bump the
        // version, as an expiry does not, is still told apart).
        let key = if is_change {
            format!("{}@{}:{event}", bounty.id, bounty.version)
        } else {
            bounty.id.clone()
        };
        Ok(if self.seen.first_time(&key) {
            Frame::Deliver(wrap(bounty))
        } else {
            Frame::Repeat
        })
    }
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
        self.feed(options.into(), false).filter_map(|item| {
            std::future::ready(match item {
                Ok(FeedEvent::Connected(connected)) => {
                    Some(Ok(SubscriptionEvent::Connected(connected)))
                }
                Ok(FeedEvent::Bounty(bounty)) => Some(Ok(SubscriptionEvent::Bounty(bounty))),
                Ok(FeedEvent::Reconnecting {
                    failures,
                    delay,
                    reason,
                }) => Some(Ok(SubscriptionEvent::Reconnecting {
                    failures,
                    delay,
                    reason,
                })),
                // Not asked for (no `include=changes`): the server does not send them.
                Ok(FeedEvent::Updated(_) | FeedEvent::Closed(_)) => None,
                Err(err) => Some(Err(err)),
            })
        })
    }

    /// Like [`Client::subscribe_events`], and the changes too (`include=changes`):
    /// [`FeedEvent::Updated`] and [`FeedEvent::Closed`] for bounties that match the
    /// filter after the change (a close: that matched before it), in log order,
    /// exactly once. Needs a server with the bounty lifecycle (an older one answers
    /// `400` for the unknown parameter, which ends the stream with that error).
    pub fn subscribe_changes(
        &self,
        options: impl Into<SubscribeOptions>,
    ) -> impl Stream<Item = Result<FeedEvent, ClientError>> + Send + 'static {
        self.feed(options.into(), true)
    }

    fn feed(
        &self,
        options: SubscribeOptions,
        include_changes: bool,
    ) -> impl Stream<Item = Result<FeedEvent, ClientError>> + Send + 'static {
        let client = self.clone();
        async_stream::stream! {
            let settings = client.settings.clone();
            let mut seen = DedupeWindow::new(settings.dedupe_window);
            let mut since = None;
            let mut last_event_id = None;
            match options.start {
                StartAt::Now => {}
                StartAt::Since(at) => since = Some(at),
                StartAt::Cursor(cursor) => last_event_id = Some(cursor),
                StartAt::Backfill { max } => {
                    let mut backoff = Backoff::new(settings.initial_retry, settings.max_backoff, settings.jitter);
                    let started = tokio::time::Instant::now();
                    loop {
                        match client.backfill(&options.filter, max).await {
                            Ok((mut bounties, cursor)) => {
                                bounties.reverse(); // oldest first, like the stream
                                for bounty in bounties {
                                    if seen.first_time(&bounty.id) {
                                        yield Ok(FeedEvent::Bounty(bounty));
                                    }
                                }
                                last_event_id = Some(cursor);
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
                                yield Ok(FeedEvent::Reconnecting { failures: backoff.failures(), delay, reason: err.to_string() });
                                tokio::time::sleep(delay).await;
                            }
                        }
                    }
                }
            }
            let firehose = Firehose { filter: options.filter, since, include_changes, seen };
            let mut events = pin!(resume::run(client, firehose, last_event_id));
            while let Some(event) = events.next().await {
                yield event.map(|event| match event {
                    resume::Event::Connected(connected) => FeedEvent::Connected(connected),
                    resume::Event::Item(FeedItem::New(bounty)) => FeedEvent::Bounty(bounty),
                    resume::Event::Item(FeedItem::Updated(bounty)) => FeedEvent::Updated(bounty),
                    resume::Event::Item(FeedItem::Closed(bounty)) => FeedEvent::Closed(bounty),
                    resume::Event::Reconnecting { failures, delay, reason } => {
                        FeedEvent::Reconnecting { failures, delay, reason }
                    }
                });
            }
        }
    }
}
