//! What a stream sends of the log: the one place that turns a log entry into a frame
//! for a subscriber, for the firehose and for the per-bounty stream alike.
//!
//! - The firehose sends each new bounty its filter takes (`bounty`); with
//!   `include=changes` also the updates of bounties the filter takes after the change,
//!   and the closes of those it took before (`bounty_updated`, `bounty_closed`).
//! - The per-bounty stream sends each change of its bounty, and ends after a terminal
//!   one (a close here; an expiry is the stream's own timer, `super::bounty_stream`).

use chrono::{DateTime, Utc};

use crate::bounty::{Bounty, BountyStatus};
use crate::cursor::Cursor;
use crate::filter::Filter;
use crate::store::EntryKind;

use super::frame::{Change, StreamFrame, Subject};

/// Whom a stream is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The firehose: new bounties matching `filter`, and with `changes` their changes.
    Feed { filter: Filter, changes: bool },
    /// One bounty's changes after the cursor.
    Bounty {
        /// The newest version known: at first the bounty as it was at connect (a
        /// resumed stream then sends changes older than it, which the cursor says are
        /// not sent yet).
        bounty: Box<Bounty>,
        /// Set once the terminal change is sent.
        ended: bool,
    },
}

impl Selection {
    /// The frame for a readable entry the cursor has just passed (`cursor` is just
    /// after it), if this stream sends one.
    pub fn frame_for(
        &mut self,
        kind: EntryKind,
        bounty: &Bounty,
        cursor: &Cursor,
    ) -> Option<StreamFrame> {
        let change = match (self, kind) {
            (Selection::Feed { filter, .. }, EntryKind::Published) => {
                return filter.matches(bounty).then(|| StreamFrame::Bounty {
                    cursor: cursor.clone(),
                    bounty: bounty.clone(),
                });
            }
            (Selection::Feed { changes: false, .. }, _) => return None,
            (Selection::Feed { filter, .. }, EntryKind::Updated) => {
                filter.matches(bounty).then_some(Change::Updated)?
            }
            // A close changes no field the filter looks at: the filter took the bounty
            // just before it if it takes its fields now.
            (Selection::Feed { filter, .. }, EntryKind::Closed) => {
                filter.matches_fields(bounty).then_some(Change::Closed)?
            }
            (Selection::Bounty { .. }, EntryKind::Published) => return None,
            (
                Selection::Bounty {
                    bounty: newest,
                    ended,
                },
                kind,
            ) => {
                if bounty.id != newest.id {
                    return None;
                }
                if bounty.version > newest.version {
                    **newest = bounty.clone();
                }
                match kind {
                    EntryKind::Closed => {
                        *ended = true;
                        Change::Closed
                    }
                    _ => Change::Updated,
                }
            }
        };
        Some(StreamFrame::Change {
            change,
            cursor: cursor.clone(),
            bounty: bounty.clone(),
        })
    }

    /// Whom the stream is for, as its `connected` says.
    pub fn subject(&self) -> Subject {
        match self {
            Selection::Feed { filter, changes } => Subject::Feed {
                filter: filter.clone(),
                changes: *changes,
            },
            Selection::Bounty { bounty, .. } => Subject::Bounty(bounty.clone()),
        }
    }

    /// Whether an unreadable entry concerns this stream: every firehose stream is told
    /// (nobody can tell whether it would have matched); a per-bounty stream only when
    /// the entry is its bounty's or has no id.
    pub fn concerns(&self, id: Option<&str>) -> bool {
        match self {
            Selection::Feed { .. } => true,
            Selection::Bounty { bounty, .. } => {
                id.is_none_or(|id| id.eq_ignore_ascii_case(&bounty.id))
            }
        }
    }

    /// Whether the stream has sent its last change (a per-bounty stream after a close).
    pub fn finished(&self) -> bool {
        matches!(self, Selection::Bounty { ended: true, .. })
    }

    /// When a per-bounty stream's bounty expires, while it is open. (A closed one ends
    /// with its close, which the log holds.)
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Selection::Bounty {
                bounty,
                ended: false,
            } if bounty.status == BountyStatus::Open => Some(bounty.deadline),
            _ => None,
        }
    }

    /// The `bounty_expired` frame of a per-bounty stream whose bounty is past its
    /// deadline at `now`, and the stream is finished; `None` otherwise.
    pub fn expire(&mut self, now: DateTime<Utc>, cursor: &Cursor) -> Option<StreamFrame> {
        let Selection::Bounty { bounty, ended } = self else {
            return None;
        };
        if *ended || bounty.status != BountyStatus::Open || bounty.deadline > now {
            return None;
        }
        let expired = (**bounty).clone().as_of(now);
        **bounty = expired.clone();
        *ended = true;
        Some(StreamFrame::Change {
            change: Change::Expired,
            cursor: cursor.clone(),
            bounty: expired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::bounty;
    use crate::timefmt;

    fn cursor() -> Cursor {
        Cursor {
            issued_ms: 0,
            positions: vec![],
        }
    }

    fn names(selection: &mut Selection, entries: &[(EntryKind, Bounty)]) -> Vec<&'static str> {
        entries
            .iter()
            .filter_map(|(kind, bounty)| selection.frame_for(*kind, bounty, &cursor()))
            .filter_map(|frame| frame.event_name())
            .collect()
    }

    fn changed(mut b: Bounty, version: u64, budget: u64) -> Bounty {
        b.version = version;
        b.budget_cents = budget;
        b
    }

    fn closed(mut b: Bounty, version: u64) -> Bounty {
        b.version = version;
        b.status = BountyStatus::Closed;
        b
    }

    #[test]
    fn the_firehose_sends_changes_only_when_asked_and_by_the_filter_after_them() {
        let a = bounty("a", "python", 1);
        let entries = vec![
            (EntryKind::Published, a.clone()),
            (EntryKind::Updated, changed(a.clone(), 2, 50)),
            (EntryKind::Updated, changed(a.clone(), 3, 500)),
            (EntryKind::Closed, closed(changed(a.clone(), 4, 500), 4)),
        ];
        let feed = |changes, min| Selection::Feed {
            filter: Filter {
                min_budget_cents: Some(min),
                ..Filter::default()
            },
            changes,
        };
        assert_eq!(names(&mut feed(false, 0), &entries), ["bounty"]);
        assert_eq!(
            names(&mut feed(true, 0), &entries),
            [
                "bounty",
                "bounty_updated",
                "bounty_updated",
                "bounty_closed"
            ]
        );
        // Raised past the subscriber's minimum: the update reaches it, and the close.
        assert_eq!(
            names(&mut feed(true, 200), &entries),
            ["bounty_updated", "bounty_closed"]
        );
    }

    fn one(bounty: Bounty) -> Selection {
        Selection::Bounty {
            bounty: Box::new(bounty),
            ended: false,
        }
    }

    #[test]
    fn the_per_bounty_stream_sends_its_bounty_changes_and_finishes_at_a_close() {
        let a = bounty("a", "python", 1);
        // Resumed before both changes: the newest known is the close, not yet sent.
        let mut resumed = one(closed(a.clone(), 3));
        assert!(!resumed.finished());
        assert_eq!(resumed.expires_at(), None);
        let entries = vec![
            (EntryKind::Published, bounty("b", "python", 2)),
            (EntryKind::Updated, changed(bounty("b", "python", 2), 2, 9)),
            (EntryKind::Updated, changed(a.clone(), 2, 9)),
            (EntryKind::Closed, closed(a.clone(), 3)),
        ];
        assert_eq!(
            names(&mut resumed, &entries),
            ["bounty_updated", "bounty_closed"]
        );
        assert!(resumed.finished());
    }

    #[test]
    fn an_open_bounty_expires_at_its_deadline_only() {
        let a = bounty("a", "python", 1);
        let mut one = one(a.clone());
        assert_eq!(one.expires_at(), Some(a.deadline));
        let before = a.deadline - chrono::Duration::milliseconds(1);
        assert_eq!(one.expire(before, &cursor()), None);
        let frame = one.expire(a.deadline, &cursor()).expect("expired");
        assert_eq!(frame.event_name(), Some("bounty_expired"));
        assert!(one.finished());
        assert!(timefmt::to_millis(a.deadline) > 0);
    }
}
