//! The backfill (`GET /api/v1/tasks`): open bounties matching a filter, newest first,
//! paged, from a snapshot that hands over exactly to the stream.
//!
//! The first page reads every shard's head and the newest entries at or before it.
//! The snapshot is, per shard, the head, or lower when an entry of the head's own
//! append is not readable yet (DynamoDB can show a transaction's head before its
//! entry; see [`handover`]). Pages list entries at or before the snapshot, walking
//! each shard's log backwards and merging shards by creation time; the snapshot
//! itself, as a cursor, is the `stream_cursor`. A stream resumed from it delivers
//! exactly the entries after it, so backfill plus stream is every bounty once,
//! however publishes interleave and whatever the listing could not read yet.
//!
//! The page token carries the snapshot, a fingerprint of the filter and, per shard,
//! where the walk stopped. Pure logic over [`FeedReader`].

use std::collections::VecDeque;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::bounty::Bounty;
use crate::cursor::{Cursor, Position};
use crate::filter::Filter;
use crate::lookup::as_they_are_now;
use crate::store::{heads, EntryKind, FeedReader, LogEntry, StoreError};
use crate::{timefmt, InputError, InputErrorCode};

/// Entries read per shard per Query while walking back.
const READ_CHUNK: usize = 200;
/// Queries one page may spend beyond one per shard (every shard may need its first
/// read before anything can be listed); a page cut short still returns a token, so a
/// very selective filter costs several small requests instead of one unbounded one.
const MAX_REFILLS_PER_PAGE: usize = 16;

/// Where a listing is: its snapshot and, per shard, the walk's next upper bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// The snapshot: where the first page handed each shard over, as a stream cursor.
    pub snapshot: Cursor,
    /// The filter the listing was started with (a fingerprint).
    pub filter_fingerprint: String,
    /// Per shard: list entries strictly before this position; `None` when done.
    pub before: Vec<Option<Position>>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub bounties: Vec<Bounty>,
    /// `None` when the listing is complete.
    pub next: Option<PageToken>,
    /// The cursor a stream continues from, the same on every page.
    pub stream_cursor: Cursor,
}

/// A short fingerprint of the normalised filter, so a token is not reused with
/// another filter (the pages would silently mix two listings).
pub fn fingerprint(filter: &Filter) -> String {
    let json = serde_json::to_string(filter).unwrap_or_default();
    hex::encode(&Sha256::digest(json.as_bytes())[..8])
}

/// Whether a bounty is open at `now` and matches `filter`.
pub fn lists(filter: &Filter, bounty: &Bounty, now: DateTime<Utc>) -> bool {
    filter.matches(bounty) && bounty.deadline > now
}

/// Whether a bounty as published may be listed once its changes are known: only its
/// category cannot change.
fn may_list(filter: &Filter, bounty: &Bounty) -> bool {
    filter.categories.is_empty() || filter.categories.iter().any(|c| *c == bounty.category)
}

/// Moves `candidates`, as they are now (one batched read of their states), to
/// `bounties` where they are listed.
async fn list_current<R: FeedReader>(
    store: &R,
    filter: &Filter,
    now: DateTime<Utc>,
    candidates: &mut Vec<Bounty>,
    bounties: &mut Vec<Bounty>,
) -> Result<(), StoreError> {
    let current = as_they_are_now(store, std::mem::take(candidates)).await?;
    bounties.extend(
        current
            .into_iter()
            .filter(|bounty| lists(filter, bounty, now)),
    );
    Ok(())
}

impl PageToken {
    /// The first page's token: the walk starts just after each shard's hand-over.
    fn start(snapshot: Cursor, filter_fingerprint: String) -> Self {
        let before = snapshot
            .positions
            .iter()
            .map(|at| (at.seq > 0).then(|| just_after(*at)))
            .collect();
        Self {
            snapshot,
            filter_fingerprint,
            before,
        }
    }

    pub fn encode(&self) -> String {
        let mut text = format!("1.{}.{}", self.filter_fingerprint, self.snapshot.encode());
        for bound in &self.before {
            match bound {
                Some(position) => {
                    text.push('.');
                    text.push_str(&position.to_text());
                }
                None => text.push_str(".x"),
            }
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Decodes a token for `filter` on a feed of `shards` shards.
    pub fn decode(text: &str, filter: &Filter, shards: usize) -> Result<PageToken, InputError> {
        let invalid = |why: &str| {
            InputError::new(
                InputErrorCode::InvalidPageToken,
                "page_token",
                format!("page_token {why}; start the listing again without it"),
            )
        };
        let malformed = || invalid("is not a token issued by this endpoint");
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| malformed())?;
        let plain = std::str::from_utf8(&bytes).map_err(|_| malformed())?;
        let mut parts = plain.split('.');
        if parts.next() != Some("1") {
            return Err(malformed());
        }
        let filter_fingerprint = parts.next().ok_or_else(malformed)?.to_owned();
        let snapshot_text = parts.next().ok_or_else(malformed)?;
        let snapshot = Cursor::decode_unchecked(snapshot_text).ok_or_else(malformed)?;
        let before = parts
            .map(|part| match part {
                "x" => Some(None),
                bound => Position::bound_from_text(bound).map(Some),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(malformed)?;
        if before.len() != snapshot.positions.len() {
            return Err(malformed());
        }
        if filter_fingerprint != fingerprint(filter) {
            return Err(invalid("was issued for a different filter"));
        }
        if before.len() != shards {
            return Err(invalid(
                "was issued when the feed had another number of shards",
            ));
        }
        Ok(PageToken {
            snapshot,
            filter_fingerprint,
            before,
        })
    }
}

/// One shard's part of the walk: entries read but not yet listed, and where to read.
struct ShardWalk {
    /// Newest first.
    buffer: VecDeque<LogEntry>,
    /// Read entries strictly before this next; `None` when nothing is left to read.
    read_before: Option<Position>,
    /// The token's bound: before the last entry taken from this shard.
    listed_before: Option<Position>,
}

/// Lists one page: the first (a new snapshot) when `token` is `None`.
pub async fn list_page<R: FeedReader>(
    store: &R,
    filter: &Filter,
    limit: usize,
    token: Option<PageToken>,
    now: DateTime<Utc>,
) -> Result<ListPage, StoreError> {
    let (token, mut walks, mut reads) = match token {
        Some(token) => {
            let walks = token
                .before
                .iter()
                .map(|bound| ShardWalk {
                    buffer: VecDeque::new(),
                    read_before: *bound,
                    listed_before: *bound,
                })
                .collect();
            (token, walks, 0)
        }
        None => take_snapshot(store, filter, now).await?,
    };

    let mut bounties = Vec::new();
    // Published bounties taken from the walk, not yet looked up as they are now.
    let mut candidates = Vec::new();
    let max_reads = walks.len() + MAX_REFILLS_PER_PAGE;
    'page: while bounties.len() < limit {
        // Every shard still walking needs its next entry in hand before the newest
        // of them can be chosen.
        for (shard, walk) in walks.iter_mut().enumerate() {
            if !walk.buffer.is_empty() {
                continue;
            }
            let Some(before) = walk.read_before else {
                continue;
            };
            if reads == max_reads {
                break 'page;
            }
            reads += 1;
            let page = store.read_before(shard, before, READ_CHUNK).await?;
            walk.read_before = match page.entries.last() {
                Some(oldest) if page.more => Some(oldest.position),
                _ => None,
            };
            walk.buffer.extend(page.entries);
        }
        let newest = walks
            .iter()
            .enumerate()
            .filter_map(|(shard, walk)| {
                let entry = walk.buffer.front()?;
                Some((
                    (entry.position.created_ms, shard, entry.position.seq),
                    shard,
                ))
            })
            .max();
        let Some((_, shard)) = newest else {
            break;
        };
        let walk = &mut walks[shard];
        if let Some(entry) = walk.buffer.pop_front() {
            walk.listed_before = Some(entry.position);
            match entry.bounty {
                // Changes are not listed: each bounty is listed once, where it was
                // published, as it is now.
                Ok(_) if entry.kind != EntryKind::Published => {}
                Ok(bounty) if may_list(filter, &bounty) => candidates.push(bounty),
                Ok(_) => {}
                // Skipped, never a 503: one bad item must not hide the rest.
                Err(unreadable) => tracing::error!(
                    shard,
                    seq = entry.position.seq,
                    id = unreadable.id.as_deref().unwrap_or(""),
                    detail = %unreadable.detail,
                    "unreadable log entry left out of the backfill"
                ),
            }
        }
        if bounties.len() + candidates.len() >= limit {
            list_current(store, filter, now, &mut candidates, &mut bounties).await?;
        }
    }
    list_current(store, filter, now, &mut candidates, &mut bounties).await?;

    let before: Vec<Option<Position>> = walks
        .iter()
        .map(|walk| {
            let done = walk.buffer.is_empty() && walk.read_before.is_none();
            if done {
                None
            } else {
                walk.listed_before
            }
        })
        .collect();
    let next = before.iter().any(Option::is_some).then(|| PageToken {
        snapshot: token.snapshot.clone(),
        filter_fingerprint: token.filter_fingerprint.clone(),
        before,
    });
    Ok(ListPage {
        bounties,
        next,
        stream_cursor: token.snapshot,
    })
}

/// The first page's start: reads every shard's head, then the newest entries at or
/// before it (the walk's first read), and hands each shard over where [`handover`]
/// says. Returns the token, the walks with those entries in hand (only those at or
/// before the hand-over) and the reads spent.
async fn take_snapshot<R: FeedReader>(
    store: &R,
    filter: &Filter,
    now: DateTime<Utc>,
) -> Result<(PageToken, Vec<ShardWalk>, usize), StoreError> {
    let heads = heads(store).await?;
    let tops = heads.iter().enumerate().map(|(shard, head)| async move {
        if head.seq == 0 {
            return Ok(None);
        }
        store
            .read_before(shard, just_after(*head), READ_CHUNK)
            .await
            .map(Some)
    });
    let tops = futures_util::future::try_join_all(tops).await?;
    let reads = tops.iter().filter(|top| top.is_some()).count();
    let positions = heads
        .iter()
        .zip(&tops)
        .map(|(head, top)| match top {
            Some(top) => handover(*head, &top.entries, top.more),
            None => *head,
        })
        .collect();
    let snapshot = Cursor {
        issued_ms: timefmt::to_millis(now),
        positions,
    };
    let token = PageToken::start(snapshot, fingerprint(filter));
    let walks = token
        .before
        .iter()
        .zip(tops)
        .map(|(bound, top)| match (bound, top) {
            (Some(bound), Some(top)) => ShardWalk {
                read_before: top
                    .entries
                    .last()
                    .filter(|_| top.more)
                    .map(|oldest| oldest.position),
                // Entries above the hand-over are the stream's to deliver.
                buffer: top
                    .entries
                    .into_iter()
                    .filter(|entry| entry.position < *bound)
                    .collect(),
                listed_before: Some(*bound),
            },
            _ => ShardWalk {
                buffer: VecDeque::new(),
                read_before: None,
                listed_before: None,
            },
        })
        .collect();
    Ok((token, walks, reads))
}

/// The bound just after `position`: every entry at or before it sorts below it, and
/// every later entry of the shard (a larger seq, never an earlier time) above it.
fn just_after(position: Position) -> Position {
    Position {
        created_ms: position.created_ms,
        seq: position.seq + 1,
    }
}

/// Where the backfill hands a shard over to the stream: the highest position such
/// that the listing saw every entry at or before it that can still appear.
///
/// `head` is the shard's head and `newest` the entries read at or before it, newest
/// first (`more` when older ones were left unread). DynamoDB's Query is read-committed
/// towards transactions, so the head can be readable before entries of the append
/// that moved it. Only that append can be partly readable (the next append on the
/// shard conflicts with it on the head item until it has finished), and its entries
/// all carry the head's `created_ms`. So a missing seq above the newest entry created
/// before the head's millisecond may still appear, and the hand-over goes just below
/// the lowest such seq: the stream delivers it, and the entries above it, once they
/// are readable (or names a gap if one never comes). Holes further down are entries
/// that were deleted or expired, and do not move the hand-over. `READ_CHUNK` is larger
/// than the largest append, so the head's append lies within `newest`.
fn handover(head: Position, newest: &[LogEntry], more: bool) -> Position {
    let mut at = head;
    let mut expected = head.seq;
    for entry in newest {
        if entry.position.seq < expected {
            // Seqs entry.seq + 1 ..= expected are not readable.
            at = entry.position;
        }
        if entry.position.created_ms < head.created_ms {
            return at;
        }
        expected = entry.position.seq.saturating_sub(1);
    }
    if !more && expected > 0 {
        // The log's start is not readable, and it may be the head's own append.
        return Position::START;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::{MAX_CREATED_MS, MAX_FEED_SHARDS, MAX_SEQ};
    use crate::query::MAX_CURSOR_LEN;

    fn snapshot() -> Cursor {
        Cursor {
            issued_ms: 1_800_000_000_000,
            positions: vec![
                Position {
                    created_ms: 1_799_999_999_000,
                    seq: 42,
                },
                Position::START,
            ],
        }
    }

    #[test]
    fn a_new_walk_starts_just_after_each_head_and_skips_empty_shards() {
        let token = PageToken::start(snapshot(), "f".into());
        assert_eq!(
            token.before,
            vec![
                Some(Position {
                    created_ms: 1_799_999_999_000,
                    seq: 43
                }),
                None
            ]
        );
        let head_key = snapshot().positions[0].sort_key();
        assert!(head_key < token.before[0].expect("bound").sort_key());
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_filter_and_shards() {
        let filter = Filter {
            categories: vec![crate::bounty::Slug::parse("python").expect("slug")],
            ..Filter::default()
        };
        let mut token = PageToken::start(snapshot(), fingerprint(&filter));
        token.before[0] = Some(Position {
            created_ms: 1_799_999_000_000,
            seq: 7,
        });
        let text = token.encode();
        assert_eq!(PageToken::decode(&text, &filter, 2), Ok(token));

        let other = Filter::default();
        let err = PageToken::decode(&text, &other, 2).expect_err("other filter");
        assert_eq!(err.code, InputErrorCode::InvalidPageToken);
        assert!(err.message.contains("different filter"), "{}", err.message);
        let err = PageToken::decode(&text, &filter, 3).expect_err("other shard count");
        assert!(err.message.contains("shards"), "{}", err.message);
    }

    #[test]
    fn the_wire_text_of_a_token_is_unchanged() {
        // Tokens issued before must still decode: this is their exact text.
        let filter = Filter::default();
        let mut token = PageToken::start(snapshot(), fingerprint(&filter));
        token.before[0] = Some(Position {
            created_ms: 1_799_999_000_000,
            seq: 7,
        });
        let plain = format!(
            "1.{}.{}.1799999000000-7.x",
            fingerprint(&filter),
            URL_SAFE_NO_PAD.encode("1.1800000000000.1799999999000-42.0-0")
        );
        assert_eq!(token.encode(), URL_SAFE_NO_PAD.encode(&plain));
        assert_eq!(
            PageToken::decode(&URL_SAFE_NO_PAD.encode(&plain), &filter, 2),
            Ok(token)
        );
    }

    #[test]
    fn at_the_most_shards_and_the_largest_positions_tokens_and_cursors_fit_their_limit() {
        let largest = Position {
            created_ms: MAX_CREATED_MS,
            seq: MAX_SEQ,
        };
        let snapshot = Cursor {
            issued_ms: MAX_CREATED_MS,
            positions: vec![largest; MAX_FEED_SHARDS],
        };
        assert!(snapshot.encode().len() <= MAX_CURSOR_LEN);
        let filter = Filter::default();
        let mut token = PageToken::start(snapshot, fingerprint(&filter));
        token.before = vec![Some(largest); MAX_FEED_SHARDS];
        let text = token.encode();
        assert!(text.len() <= MAX_CURSOR_LEN, "{} bytes", text.len());
        assert_eq!(
            PageToken::decode(&text, &filter, MAX_FEED_SHARDS),
            Ok(token)
        );
    }

    #[test]
    fn malformed_tokens_are_refused_as_page_token_errors() {
        let filter = Filter::default();
        let good = PageToken::start(snapshot(), fingerprint(&filter)).encode();
        let truncated = &good[..good.len() - 3];
        for junk in [
            "",
            "%%%",
            "bm90IGEgdG9rZW4",
            truncated,
            &URL_SAFE_NO_PAD.encode("1.abc.zzz.x.x"),
            &URL_SAFE_NO_PAD.encode(format!(
                "1.{}.{}.1-2",
                fingerprint(&filter),
                snapshot().encode()
            )),
            &URL_SAFE_NO_PAD.encode(format!(
                "1.{}.{}.1-2.+3-4",
                fingerprint(&filter),
                snapshot().encode()
            )),
        ] {
            let err = PageToken::decode(junk, &filter, 2).expect_err(junk);
            assert_eq!(err.code, InputErrorCode::InvalidPageToken, "{junk}");
            assert_eq!(err.param, "page_token");
        }
    }

    #[test]
    fn only_open_bounties_before_their_deadline_are_listed() {
        let deadline = timefmt::parse("2030-01-01T00:00:00Z").expect("valid");
        let bounty = Bounty {
            id: "a".into(),
            title: "t".into(),
            description: String::new(),
            category: "python".into(),
            budget_cents: 100,
            currency: "USD".into(),
            tags: vec![],
            deadline,
            created_at: deadline - chrono::Duration::days(10),
            status: crate::bounty::BountyStatus::Open,
            version: 1,
            updated_at: deadline - chrono::Duration::days(10),
            closed_at: None,
            close_reason: None,
        };
        let filter = Filter::default();
        assert!(lists(
            &filter,
            &bounty,
            deadline - chrono::Duration::seconds(1)
        ));
        assert!(!lists(&filter, &bounty, deadline));
        let closed = Bounty {
            status: crate::bounty::BountyStatus::Closed,
            ..bounty
        };
        assert!(!lists(
            &filter,
            &closed,
            deadline - chrono::Duration::days(1)
        ));
    }

    fn entry_at(created_ms: u64, seq: u64) -> LogEntry {
        let id = format!("e{seq}");
        LogEntry {
            position: Position { created_ms, seq },
            kind: EntryKind::Published,
            bounty: Ok(crate::store::memory::bounty(&id, "c", created_ms)),
        }
    }

    /// Entries newest first, as the walk reads them: (created_ms, seq).
    fn newest(entries: &[(u64, u64)]) -> Vec<LogEntry> {
        entries
            .iter()
            .map(|(ms, seq)| entry_at(*ms, *seq))
            .collect()
    }

    #[test]
    fn the_hand_over_is_the_head_when_its_append_is_readable() {
        let head = Position {
            created_ms: 9,
            seq: 5,
        };
        let read = newest(&[(9, 5), (9, 4), (7, 3), (7, 2)]);
        assert_eq!(handover(head, &read, true), head);
        // A hole under the head's append was deleted or expired: it cannot appear.
        let old_hole = newest(&[(9, 5), (8, 4), (7, 2), (7, 1)]);
        assert_eq!(handover(head, &old_hole, false), head);
    }

    #[test]
    fn the_hand_over_goes_below_an_entry_of_the_heads_append_not_yet_readable() {
        let head = Position {
            created_ms: 9,
            seq: 5,
        };
        // The head is readable, its entry is not.
        let read = newest(&[(8, 4), (7, 3)]);
        assert_eq!(handover(head, &read, true), read[0].position);
        // A multi-entry append (4 and 5 at ms 9) with its first entry unreadable.
        let read = newest(&[(9, 5), (8, 3), (7, 2)]);
        assert_eq!(handover(head, &read, true), read[1].position);
        // The lowest of several holes decides.
        let read = newest(&[(9, 5), (9, 3), (9, 1)]);
        assert_eq!(handover(head, &read, false), read[2].position);
        // Nothing readable yet, or the log's start missing within the head's append.
        assert_eq!(handover(head, &[], false), Position::START);
        let read = newest(&[(9, 5), (9, 4)]);
        assert_eq!(handover(head, &read, false), Position::START);
    }

    mod listing {
        use super::*;
        use crate::bounty::BountyStatus;
        use crate::store::memory::{bounty, MemoryStore};

        fn python() -> Filter {
            Filter {
                categories: vec![crate::bounty::Slug::parse("python").expect("slug")],
                ..Filter::default()
            }
        }

        fn ids(bounties: &[Bounty]) -> Vec<&str> {
            bounties.iter().map(|b| b.id.as_str()).collect()
        }

        /// The next page's token, through its text as a client sends it back.
        fn resend(next: &Option<PageToken>, filter: &Filter, shards: usize) -> PageToken {
            let text = next.as_ref().expect("a next page").encode();
            PageToken::decode(&text, filter, shards).expect("our own token")
        }

        #[tokio::test]
        async fn pages_merge_shards_newest_first_from_one_snapshot() {
            let store = MemoryStore::new(2);
            store.push_at(0, 1_000, "python");
            store.push_at(0, 3_000, "python");
            store.push_at(0, 5_000, "rust");
            store.push_at(0, 6_000, "python");
            store.push_at(1, 2_000, "python");
            store.push_at(1, 4_000, "python");
            store.push_at(1, 4_000, "python");
            let now = timefmt::from_millis(10_000);
            let filter = python();

            let first = list_page(&*store, &filter, 2, None, now)
                .await
                .expect("page");
            assert_eq!(ids(&first.bounties), ["s0-4", "s1-3"]);
            let snapshot = Cursor {
                issued_ms: 10_000,
                positions: vec![
                    Position {
                        created_ms: 6_000,
                        seq: 4,
                    },
                    Position {
                        created_ms: 4_000,
                        seq: 3,
                    },
                ],
            };
            assert_eq!(first.stream_cursor, snapshot);

            // Published after the snapshot: the stream delivers it, not the listing.
            store.push_at(0, 7_000, "python");
            store.push_at(1, 7_000, "python");

            let mut listed = ids(&first.bounties)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            let mut next = first.next;
            let mut pages = 1;
            while next.is_some() {
                let token = resend(&next, &filter, 2);
                let page = list_page(&*store, &filter, 2, Some(token), now)
                    .await
                    .expect("page");
                assert!(page.bounties.len() <= 2);
                assert_eq!(page.stream_cursor, snapshot, "the same on every page");
                listed.extend(ids(&page.bounties).into_iter().map(str::to_owned));
                next = page.next;
                pages += 1;
                assert!(pages < 10, "the listing ends");
            }
            assert_eq!(listed, ["s0-4", "s1-3", "s1-2", "s0-2", "s1-1", "s0-1"]);
        }

        #[tokio::test]
        async fn an_entry_not_yet_readable_is_never_handed_over_past() {
            let store = MemoryStore::new(2);
            store.push_at(0, 1_000, "python");
            store.push_at(1, 2_000, "python");
            // Shard 0's head moves to 2 before entry 2 can be read.
            store.hide(0, 2);
            let late = store.push_at(0, 3_000, "python");
            let now = timefmt::from_millis(10_000);
            let filter = Filter::default();
            let page = list_page(&*store, &filter, 10, None, now)
                .await
                .expect("page");
            assert_eq!(ids(&page.bounties), ["s1-1", "s0-1"]);
            assert_eq!(page.next, None);
            let handed_over = page.stream_cursor.positions[0];
            assert_eq!(handed_over.seq, 1, "below the entry it could not read");
            assert_eq!(page.stream_cursor.positions[1].seq, 1);

            // Once readable, the stream's read after the hand-over finds it, once.
            store.reveal(0, 2);
            let after = store.read_after(0, handed_over, 10).await.expect("read");
            let streamed: Vec<&str> = after
                .entries
                .iter()
                .filter_map(|e| e.bounty.as_ref().ok())
                .map(|b| b.id.as_str())
                .collect();
            assert_eq!(streamed, [late.as_str()]);
        }

        #[tokio::test]
        async fn entries_above_a_lowered_hand_over_are_left_to_the_stream() {
            let store = MemoryStore::new(1);
            store.push_at(0, 1_000, "python");
            // One append of three entries (one millisecond), the middle one unreadable.
            store.hide(0, 3);
            for _ in 0..3 {
                store.push_at(0, 2_000, "python");
            }
            let now = timefmt::from_millis(10_000);
            let filter = Filter::default();
            let first = list_page(&*store, &filter, 1, None, now)
                .await
                .expect("page");
            assert_eq!(first.stream_cursor.positions[0].seq, 2);
            assert_eq!(ids(&first.bounties), ["s0-2"], "not s0-4: the stream's");
            let token = resend(&first.next, &filter, 1);
            let rest = list_page(&*store, &filter, 10, Some(token), now)
                .await
                .expect("page");
            assert_eq!(ids(&rest.bounties), ["s0-1"]);
            assert_eq!(rest.next, None);
            assert_eq!(rest.stream_cursor, first.stream_cursor);
        }

        #[tokio::test]
        async fn a_token_is_refused_with_another_filter() {
            let store = MemoryStore::new(1);
            for _ in 0..3 {
                store.push(0, "python");
            }
            let now = timefmt::from_millis(10_000);
            let page = list_page(&*store, &python(), 1, None, now)
                .await
                .expect("page");
            let text = page.next.expect("more to list").encode();
            let err = PageToken::decode(&text, &Filter::default(), 1).expect_err("other filter");
            assert_eq!(err.code, InputErrorCode::InvalidPageToken);
            assert!(err.message.contains("different filter"), "{}", err.message);
        }

        #[tokio::test]
        async fn a_selective_filter_stops_after_the_refills_and_resumes_with_its_token() {
            let store = MemoryStore::new(1);
            store.push(0, "python");
            let misses = (1 + MAX_REFILLS_PER_PAGE) * READ_CHUNK + 100;
            for _ in 0..misses {
                store.push(0, "rust");
            }
            let now = timefmt::from_millis(100_000);
            let filter = python();
            let cut = list_page(&*store, &filter, 10, None, now)
                .await
                .expect("page");
            assert!(cut.bounties.is_empty());
            assert_eq!(store.reads(), 1 + MAX_REFILLS_PER_PAGE, "the page's budget");
            let token = resend(&cut.next, &filter, 1);
            let rest = list_page(&*store, &filter, 10, Some(token), now)
                .await
                .expect("page");
            assert_eq!(ids(&rest.bounties), ["s0-1"]);
            assert_eq!(rest.next, None);
            assert_eq!(
                store.reads(),
                2 + MAX_REFILLS_PER_PAGE,
                "one read for the rest"
            );
        }

        #[tokio::test]
        async fn closed_and_past_deadline_bounties_are_skipped() {
            let store = MemoryStore::new(1);
            let now = timefmt::from_millis(10_000);
            store.push_bounty(
                0,
                1_000,
                Bounty {
                    status: BountyStatus::Closed,
                    ..bounty("closed", "python", 1_000)
                },
            );
            store.push_bounty(
                0,
                2_000,
                Bounty {
                    deadline: now,
                    ..bounty("due", "python", 2_000)
                },
            );
            store.push_at(0, 3_000, "python");
            let page = list_page(&*store, &Filter::default(), 10, None, now)
                .await
                .expect("page");
            assert_eq!(ids(&page.bounties), ["s0-3"]);
            assert_eq!(page.next, None);
        }

        #[tokio::test]
        async fn an_unreadable_entry_is_left_out_and_the_rest_listed() {
            let store = MemoryStore::new(1);
            store.push(0, "python");
            store.push_unreadable(0, "s0-poison");
            store.push(0, "python");
            let now = timefmt::from_millis(100_000);
            let page = list_page(&*store, &Filter::default(), 10, None, now)
                .await
                .expect("a page, not a failure");
            assert_eq!(ids(&page.bounties), ["s0-3", "s0-1"]);
            assert_eq!(page.stream_cursor.positions[0].seq, 3);
        }

        #[tokio::test]
        async fn an_empty_feed_lists_nothing_and_hands_over_from_the_start() {
            let store = MemoryStore::new(2);
            let page = list_page(
                &*store,
                &Filter::default(),
                10,
                None,
                timefmt::from_millis(5),
            )
            .await
            .expect("page");
            assert!(page.bounties.is_empty());
            assert_eq!(page.next, None);
            assert_eq!(page.stream_cursor.positions, vec![Position::START; 2]);
            assert_eq!(store.reads(), 0, "an empty shard is not read");
        }

        #[tokio::test]
        async fn a_store_failure_fails_the_page() {
            let store = MemoryStore::new(1);
            store.push(0, "python");
            store.fail_next_reads(1);
            let err = list_page(
                &*store,
                &Filter::default(),
                10,
                None,
                timefmt::from_millis(5),
            )
            .await
            .expect_err("unavailable");
            assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
        }
    }
}
