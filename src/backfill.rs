//! The backfill (`GET /api/v1/tasks`): open bounties matching a filter, newest first,
//! paged, from a snapshot that hands over exactly to the stream.
//!
//! The first page reads every shard's head: that is the snapshot. Pages list entries
//! at or before the snapshot's heads, walking each shard's log backwards and merging
//! shards by creation time; the snapshot itself, as a cursor, is the `stream_cursor`.
//! A stream resumed from it delivers exactly the entries after those heads, so
//! backfill plus stream is every bounty once, however publishes interleave.
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
use crate::store::{heads, FeedReader, LogEntry, StoreError};
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
    /// The snapshot: the heads read by the first page, as a stream cursor.
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

impl PageToken {
    /// The first page's token: the walk starts just after each head.
    fn start(snapshot: Cursor, filter_fingerprint: String) -> Self {
        let before = snapshot
            .positions
            .iter()
            .map(|head| {
                (head.seq > 0).then(|| Position {
                    created_ms: head.created_ms,
                    seq: head.seq + 1,
                })
            })
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
    let token = match token {
        Some(token) => token,
        None => {
            let snapshot = Cursor {
                issued_ms: timefmt::to_millis(now),
                positions: heads(store).await?,
            };
            PageToken::start(snapshot, fingerprint(filter))
        }
    };
    let mut walks: Vec<ShardWalk> = token
        .before
        .iter()
        .map(|bound| ShardWalk {
            buffer: VecDeque::new(),
            read_before: *bound,
            listed_before: *bound,
        })
        .collect();

    let mut bounties = Vec::new();
    let mut reads = 0;
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
            if lists(filter, &entry.bounty, now) {
                bounties.push(entry.bounty);
            }
        }
    }

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
