//! The frames of a stream as typed values, with their payloads. They become
//! [`crate::sse::Frame`]s, then bytes, only at the HTTP edge ([`StreamFrame::encode`]),
//! so whoever counts or logs what was sent looks at these, not at bytes.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bounty::Bounty;
use crate::cursor::{Cursor, StreamTag};
use crate::filter::Filter;
use crate::sse::Frame;
use crate::timefmt;

/// One frame of the bounded stream, in the order the contract gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    /// `retry: <ms>`: how long a browser waits before reconnecting.
    Retry(u64),
    /// `event: connected`, with the starting cursor as its id.
    Connected(Connected),
    /// `event: bounty`: a matching bounty, and the cursor just after it as its id.
    Bounty { cursor: Cursor, bounty: Bounty },
    /// `event: bounty_updated`, `bounty_closed` or `bounty_expired`: the bounty after
    /// the change, and the cursor just after it as its id.
    Change {
        change: Change,
        cursor: Cursor,
        bounty: Bounty,
    },
    /// `: heartbeat` while nothing else is sent.
    Heartbeat,
    /// `event: error`, without an id: the stream goes on.
    Error(ErrorEvent),
    /// `event: checkpoint`: the cursor where the stream ends, as its id and its data.
    Checkpoint {
        cursor: Cursor,
        reason: CheckpointReason,
    },
}

/// What changed, in a [`StreamFrame::Change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Updated,
    Closed,
    /// The deadline passed while the per-bounty stream was open.
    Expired,
}

impl Change {
    pub fn event_name(self) -> &'static str {
        match self {
            Change::Updated => "bounty_updated",
            Change::Closed => "bounty_closed",
            Change::Expired => "bounty_expired",
        }
    }
}

/// Whom a stream is for, as `connected` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The firehose: the filter applied, and whether changes are included.
    Feed { filter: Filter, changes: bool },
    /// One bounty: as it is at connect.
    Bounty(Box<Bounty>),
}

/// What `connected` says: whom the stream is for (the filter applied, or the bounty
/// as it is now), the start, and when the stream closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub subject: Subject,
    pub server_time: DateTime<Utc>,
    pub cursor: Cursor,
    pub resumed: bool,
    pub closes_at: DateTime<Utc>,
    /// The heartbeat interval, so clients size their dead-link timers from it.
    pub heartbeat_ms: u64,
}

/// What an `error` event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorEvent {
    /// A poll failed; the next comes after `retry_in_ms`, from the same cursor.
    StoreUnavailable { retry_in_ms: u64 },
    /// Entries `first_seq..=last_seq` of `shard` never became readable within the grace
    /// period and are skipped: the contract's "never a silent gap".
    Gap {
        shard: usize,
        first_seq: u64,
        last_seq: u64,
    },
    /// Entry `seq` of `shard` (bounty `id`, if known) cannot be read and is skipped:
    /// one bad item never stalls a stream.
    UnreadableEntry {
        shard: usize,
        seq: u64,
        id: Option<String>,
    },
}

/// Why a stream ended with a `checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointReason {
    /// The stream reached its cap (`STREAM_MAX_SECONDS`).
    MaxDuration,
    /// A stream opened with a cursor this one issued took over from it.
    Superseded,
}

impl CheckpointReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointReason::MaxDuration => "max_duration",
            CheckpointReason::Superseded => "superseded",
        }
    }
}

// The payloads as they are on the wire; field order is the order of the JSON.

#[derive(Serialize)]
struct ConnectedData<'a> {
    filter: &'a Filter,
    /// `["changes"]` with `include=changes`; left out without it, so the v1 firehose
    /// is as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    include: Option<&'a [&'a str]>,
    server_time: String,
    cursor: &'a str,
    resumed: bool,
    closes_at: String,
    heartbeat_ms: u64,
}

#[derive(Serialize)]
struct BountyConnectedData<'a> {
    bounty: &'a Bounty,
    server_time: String,
    cursor: &'a str,
    resumed: bool,
    closes_at: String,
    heartbeat_ms: u64,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: &'a str,
    message: &'a str,
    retry_in_ms: u64,
}

#[derive(Serialize)]
struct GapData<'a> {
    code: &'a str,
    message: &'a str,
    shard: usize,
    first_seq: u64,
    last_seq: u64,
}

#[derive(Serialize)]
struct UnreadableData<'a> {
    code: &'a str,
    message: &'a str,
    shard: usize,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

#[derive(Serialize)]
struct CheckpointData<'a> {
    cursor: &'a str,
    reason: &'a str,
}

impl StreamFrame {
    /// The `event:` name, `None` for the `retry:` hint and heartbeats.
    pub fn event_name(&self) -> Option<&'static str> {
        match self {
            StreamFrame::Retry(_) | StreamFrame::Heartbeat => None,
            StreamFrame::Connected(_) => Some("connected"),
            StreamFrame::Bounty { .. } => Some("bounty"),
            StreamFrame::Change { change, .. } => Some(change.event_name()),
            StreamFrame::Error(_) => Some("error"),
            StreamFrame::Checkpoint { .. } => Some("checkpoint"),
        }
    }

    pub fn is_bounty(&self) -> bool {
        matches!(self, StreamFrame::Bounty { .. })
    }

    /// The SSE frame: payloads serialised, cursors encoded without a stream tag.
    pub fn to_sse(&self) -> Frame {
        self.to_sse_issued(None)
    }

    /// The SSE frame as the stream `by` sends it: its cursors tagged with the stream,
    /// so that a reconnect with one of them supersedes it.
    pub fn to_sse_issued(&self, by: Option<&StreamTag>) -> Frame {
        match self {
            StreamFrame::Retry(ms) => Frame::Retry(*ms),
            StreamFrame::Heartbeat => Frame::Comment("heartbeat"),
            // `connected` carries the starting cursor as its id too, so a client that
            // loses the connection before any bounty still resumes from here, not from
            // "now".
            StreamFrame::Connected(connected) => {
                let cursor = connected.cursor.encode_issued(by);
                let server_time = timefmt::format(connected.server_time);
                let closes_at = timefmt::format(connected.closes_at);
                let data = match &connected.subject {
                    Subject::Feed { filter, changes } => to_json(&ConnectedData {
                        filter,
                        include: changes.then_some(&["changes"][..]),
                        server_time,
                        cursor: &cursor,
                        resumed: connected.resumed,
                        closes_at,
                        heartbeat_ms: connected.heartbeat_ms,
                    }),
                    Subject::Bounty(bounty) => to_json(&BountyConnectedData {
                        bounty: &(**bounty).clone().as_of(connected.server_time),
                        server_time,
                        cursor: &cursor,
                        resumed: connected.resumed,
                        closes_at,
                        heartbeat_ms: connected.heartbeat_ms,
                    }),
                };
                Frame::event("connected", Some(cursor), data)
            }
            StreamFrame::Bounty { cursor, bounty } => {
                Frame::event("bounty", Some(cursor.encode_issued(by)), to_json(bounty))
            }
            StreamFrame::Change {
                change,
                cursor,
                bounty,
            } => Frame::event(
                change.event_name(),
                Some(cursor.encode_issued(by)),
                to_json(bounty),
            ),
            StreamFrame::Error(ErrorEvent::Gap {
                shard,
                first_seq,
                last_seq,
            }) => Frame::event(
                "error",
                None,
                to_json(&GapData {
                    code: "gap",
                    message: "entries of the log never became readable and are skipped: bounties published in them are not delivered; backfill to look for them",
                    shard: *shard,
                    first_seq: *first_seq,
                    last_seq: *last_seq,
                }),
            ),
            StreamFrame::Error(ErrorEvent::UnreadableEntry { shard, seq, id }) => Frame::event(
                "error",
                None,
                to_json(&UnreadableData {
                    code: "unreadable_entry",
                    message: "an entry of the log cannot be read and is skipped; the stream goes on",
                    shard: *shard,
                    seq: *seq,
                    id: id.as_deref(),
                }),
            ),
            StreamFrame::Error(ErrorEvent::StoreUnavailable { retry_in_ms }) => Frame::event(
                "error",
                None,
                to_json(&ErrorData {
                    code: "store_unavailable",
                    message: "the bounty store did not answer; retrying, nothing will be missed",
                    retry_in_ms: *retry_in_ms,
                }),
            ),
            // With `data:` as well as `id:`: most non-browser clients take an id only
            // from a frame that has data.
            StreamFrame::Checkpoint { cursor, reason } => {
                // A client still reading a superseded stream is a second subscriber on
                // one cursor (two tabs): its reconnect must not supersede the stream
                // that superseded it in turn, so this last cursor names no stream.
                let by = by.filter(|_| *reason != CheckpointReason::Superseded);
                let cursor = cursor.encode_issued(by);
                let data = to_json(&CheckpointData {
                    cursor: &cursor,
                    reason: reason.as_str(),
                });
                Frame::event("checkpoint", Some(cursor), data)
            }
        }
    }

    /// The bytes on the wire, as the stream `by` sends them.
    pub fn encode_issued(&self, by: Option<&StreamTag>) -> Bytes {
        self.to_sse_issued(by).encode()
    }

    /// The bytes on the wire, cursors untagged.
    pub fn encode(&self) -> Bytes {
        self.encode_issued(None)
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|err| {
        tracing::error!(error = %err, "could not serialise a frame");
        "{}".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounty::BountyStatus;
    use crate::cursor::Position;

    fn cursor() -> Cursor {
        Cursor {
            issued_ms: 7,
            positions: vec![Position {
                created_ms: 5,
                seq: 2,
            }],
        }
    }

    fn bounty() -> Bounty {
        Bounty {
            id: "b1".into(),
            title: "t".into(),
            description: String::new(),
            category: "python".into(),
            budget_cents: 100,
            currency: "USD".into(),
            tags: vec![],
            deadline: timefmt::from_millis(4_000_000_000_000),
            created_at: timefmt::from_millis(5),
            status: BountyStatus::Open,
            version: 1,
            updated_at: timefmt::from_millis(5),
            closed_at: None,
            close_reason: None,
        }
    }

    #[test]
    fn each_frame_is_the_same_bytes_as_before_it_was_typed_plus_heartbeat_ms() {
        let id = cursor().encode();
        let connected = StreamFrame::Connected(Connected {
            subject: Subject::Feed {
                filter: Filter::default(),
                changes: false,
            },
            server_time: timefmt::from_millis(1_000),
            cursor: cursor(),
            resumed: false,
            closes_at: timefmt::from_millis(271_000),
            heartbeat_ms: 15_000,
        });
        assert_eq!(StreamFrame::Retry(2000).encode(), "retry: 2000\n\n");
        assert_eq!(StreamFrame::Heartbeat.encode(), ": heartbeat\n\n");
        assert_eq!(
            connected.encode(),
            format!(
                "event: connected\nid: {id}\ndata: {{\"filter\":{},\"server_time\":\"1970-01-01T00:00:01.000Z\",\"cursor\":\"{id}\",\"resumed\":false,\"closes_at\":\"1970-01-01T00:04:31.000Z\",\"heartbeat_ms\":15000}}\n\n",
                serde_json::to_string(&Filter::default()).expect("json")
            )
        );
        assert_eq!(
            StreamFrame::Bounty {
                cursor: cursor(),
                bounty: bounty()
            }
            .encode(),
            format!(
                "event: bounty\nid: {id}\ndata: {}\n\n",
                serde_json::to_string(&bounty()).expect("json")
            )
        );
        assert_eq!(
            StreamFrame::Error(ErrorEvent::StoreUnavailable { retry_in_ms: 750 }).encode(),
            "event: error\ndata: {\"code\":\"store_unavailable\",\"message\":\"the bounty store did not answer; retrying, nothing will be missed\",\"retry_in_ms\":750}\n\n"
        );
        assert_eq!(
            StreamFrame::Checkpoint {
                cursor: cursor(),
                reason: CheckpointReason::MaxDuration
            }
            .encode(),
            format!(
                "event: checkpoint\nid: {id}\ndata: {{\"cursor\":\"{id}\",\"reason\":\"max_duration\"}}\n\n"
            )
        );
    }

    #[test]
    fn a_streams_frames_carry_its_tag_in_every_cursor_and_superseded_says_so() {
        let tag = StreamTag::random();
        let tagged = cursor().encode_issued(Some(&tag));
        assert_ne!(tagged, cursor().encode());
        let at_cap = StreamFrame::Checkpoint {
            cursor: cursor(),
            reason: CheckpointReason::MaxDuration,
        };
        assert!(String::from_utf8_lossy(&at_cap.encode_issued(Some(&tag))).contains(&tagged));
        // Superseded: the position without the tag.
        let id = cursor().encode();
        let superseded = StreamFrame::Checkpoint {
            cursor: cursor(),
            reason: CheckpointReason::Superseded,
        };
        assert_eq!(
            superseded.encode_issued(Some(&tag)),
            format!(
                "event: checkpoint\nid: {id}\ndata: {{\"cursor\":\"{id}\",\"reason\":\"superseded\"}}\n\n"
            )
        );
        let bounty = StreamFrame::Bounty {
            cursor: cursor(),
            bounty: bounty(),
        };
        let Frame::Event { id: Some(sent), .. } = bounty.to_sse_issued(Some(&tag)) else {
            panic!("an event with an id")
        };
        assert_eq!(StreamTag::of_cursor(&sent), Some(tag.clone()));
        let connected = StreamFrame::Connected(Connected {
            subject: Subject::Feed {
                filter: Filter::default(),
                changes: false,
            },
            server_time: timefmt::from_millis(1_000),
            cursor: cursor(),
            resumed: true,
            closes_at: timefmt::from_millis(271_000),
            heartbeat_ms: 15_000,
        });
        let Frame::Event {
            id: Some(sent),
            data,
            ..
        } = connected.to_sse_issued(Some(&tag))
        else {
            panic!("an event with an id")
        };
        assert!(data.contains(&format!("\"cursor\":\"{sent}\"")), "{data}");
        assert_eq!(StreamTag::of_cursor(&sent), Some(tag));
    }

    #[test]
    fn names_and_bounties_for_the_access_log() {
        let bounty = StreamFrame::Bounty {
            cursor: cursor(),
            bounty: bounty(),
        };
        assert_eq!(bounty.event_name(), Some("bounty"));
        assert!(bounty.is_bounty());
        assert_eq!(StreamFrame::Retry(1).event_name(), None);
        assert_eq!(StreamFrame::Heartbeat.event_name(), None);
        let error = StreamFrame::Error(ErrorEvent::StoreUnavailable { retry_in_ms: 1 });
        assert_eq!(error.event_name(), Some("error"));
        assert!(!error.is_bounty());
        let checkpoint = StreamFrame::Checkpoint {
            cursor: cursor(),
            reason: CheckpointReason::MaxDuration,
        };
        assert_eq!(checkpoint.event_name(), Some("checkpoint"));
        // What each name says is what goes on the wire.
        for frame in [bounty, error, checkpoint] {
            let name = frame.event_name().expect("an event");
            assert!(
                String::from_utf8_lossy(&frame.encode()).starts_with(&format!("event: {name}\n"))
            );
        }
    }
}
