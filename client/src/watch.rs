//! The stream of one bounty (`/api/v1/tasks/{id}/stream`): its changes, until it is
//! closed or expires.
//!
//! The reconnecting is `resume`'s, as for the firehose. What is
//! particular here: `connected` carries the bounty as it is at connect time (reported as
//! [`WatchEvent::Connected`], not as a change); `bounty_closed` and `bounty_expired` are
//! the last frames, after which the stream ends; a `204` (the bounty was already closed
//! or expired, with nothing left after the cursor) ends it with no item; an unknown id
//! ends it with [`ClientError::Rejected`] (404 `not_found`).

use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use url::Url;

use crate::model::{Bounty, WatchConnected};
use crate::resume::{self, Frame, Hello, Protocol};
use crate::{Client, ClientError};

/// One change to a bounty; each carries the bounty after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Its title, description, budget, tags or deadline changed; it is still open.
    Updated(Bounty),
    /// Its publisher closed it (`close_reason` says why). The last change.
    Closed(Bounty),
    /// Its deadline passed. The last change.
    Expired(Bounty),
}

impl Change {
    /// The bounty after the change.
    pub fn bounty(&self) -> &Bounty {
        match self {
            Change::Updated(bounty) | Change::Closed(bounty) | Change::Expired(bounty) => bounty,
        }
    }

    pub fn into_bounty(self) -> Bounty {
        match self {
            Change::Updated(bounty) | Change::Closed(bounty) | Change::Expired(bounty) => bounty,
        }
    }

    /// `updated`, `closed` or `expired`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Updated(_) => "updated",
            Change::Closed(_) => "closed",
            Change::Expired(_) => "expired",
        }
    }

    /// Closed or expired: nothing follows it.
    pub fn is_final(&self) -> bool {
        !matches!(self, Change::Updated(_))
    }
}

/// What [`Client::watch_events`] reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// A connection was opened (also after every reconnect), with the bounty as it is
    /// now. After a reconnect it may already show changes that are still to come as
    /// [`WatchEvent::Change`]s (those made while the link was down).
    Connected(WatchConnected),
    /// A change, exactly once and in order (never one of a version already delivered,
    /// unless de-duplication is off: [`ClientBuilder::dedupe_window`](crate::ClientBuilder::dedupe_window)`(0)`).
    Change(Change),
    /// The connection ended; the next attempt comes after `delay`.
    Reconnecting {
        /// Consecutive failures so far (0 after a planned close at a checkpoint).
        failures: u32,
        delay: Duration,
        reason: String,
    },
}

/// One bounty's stream, as [`resume::run`] drives it.
struct OneBounty {
    id: String,
    /// Drop a change already delivered (a repeat around a reconnect).
    dedupe: bool,
    /// The last change delivered, as `(version, is_final)`. Versions only grow, so it is
    /// all there is to remember; `is_final` because an expiry is not a change anyone
    /// made and keeps the version of the change before it: `bounty_expired` at version
    /// 2 after `bounty_updated` at version 2 is news, not a repeat.
    delivered: Option<(u64, bool)>,
}

impl Protocol for OneBounty {
    type Connected = WatchConnected;
    type Item = Change;

    fn url(&self, client: &Client, _resuming: bool) -> Result<Url, ClientError> {
        client.task_url(&self.id, Some("stream"))
    }

    fn connected(&mut self, data: &str) -> Result<Hello<WatchConnected>, ClientError> {
        let connected = serde_json::from_str::<WatchConnected>(data)
            .map_err(|err| ClientError::Protocol(format!("unreadable connected event: {err}")))?;
        Ok(Hello {
            cursor: connected.cursor.clone(),
            heartbeat_ms: connected.heartbeat_ms,
            event: connected,
        })
    }

    fn frame(&mut self, event: &str, data: &str) -> Result<Frame<Change>, ClientError> {
        let wrap: fn(Bounty) -> Change = match event {
            "bounty_updated" => Change::Updated,
            "bounty_closed" => Change::Closed,
            "bounty_expired" => Change::Expired,
            _ => return Ok(Frame::Unknown),
        };
        let bounty = serde_json::from_str::<Bounty>(data)
            .map_err(|err| ClientError::Protocol(format!("unreadable {event} event: {err}")))?;
        let change = wrap(bounty);
        let order = (change.bounty().version, change.is_final());
        if self.dedupe && self.delivered.is_some_and(|last| order <= last) {
            return Ok(Frame::Repeat);
        }
        self.delivered = Some(order);
        Ok(if change.is_final() {
            Frame::Last(change)
        } else {
            Frame::Deliver(change)
        })
    }
}

impl Client {
    /// The changes to bounty `id` from now on: [`Change::Updated`] for each change while
    /// it is open, then one [`Change::Closed`] or [`Change::Expired`], after which the
    /// stream ends. Its state at connect time is not a change (see
    /// [`Client::watch_events`] for it, or [`Client::get`]).
    ///
    /// Reconnects and resumes by itself, as [`Client::subscribe`] does, so no change is
    /// lost or repeated across reconnects. Ends with no item if the bounty is already
    /// closed or expired (the server answers `204`), and with
    /// [`ClientError::Rejected`] (404, `not_found`) if there is no such bounty.
    pub fn watch(
        &self,
        id: &str,
    ) -> impl Stream<Item = Result<Change, ClientError>> + Send + 'static {
        self.watch_events(id, None).filter_map(|item| {
            std::future::ready(match item {
                Ok(WatchEvent::Change(change)) => Some(Ok(change)),
                Ok(_) => None,
                Err(err) => Some(Err(err)),
            })
        })
    }

    /// Like [`Client::watch`], with connection events (and the bounty as it is at each
    /// connect) too; `resume_from` continues right after a cursor saved from an earlier
    /// watch (a `Last-Event-ID`).
    pub fn watch_events(
        &self,
        id: &str,
        resume_from: Option<&str>,
    ) -> impl Stream<Item = Result<WatchEvent, ClientError>> + Send + 'static {
        let protocol = OneBounty {
            id: id.to_owned(),
            dedupe: self.settings.dedupe_window > 0,
            delivered: None,
        };
        resume::run(self.clone(), protocol, resume_from.map(str::to_owned)).map(|item| {
            item.map(|event| match event {
                resume::Event::Connected(connected) => WatchEvent::Connected(connected),
                resume::Event::Item(change) => WatchEvent::Change(change),
                resume::Event::Reconnecting {
                    failures,
                    delay,
                    reason,
                } => WatchEvent::Reconnecting {
                    failures,
                    delay,
                    reason,
                },
            })
        })
    }
}
