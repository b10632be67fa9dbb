//! Reading the log across shards: one batch per poll (a page per shard, kept to its
//! dense prefix, merged in time order), and the check that a resumed cursor's entries
//! are all still there. Pure logic over [`FeedReader`]; the stream loop drives it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::{sleep_until, Instant};

use crate::cursor::{Cursor, Position};
use crate::store::{FeedReader, LogEntry, Page, StoreError};
use crate::{timefmt, InputError, InputErrorCode};

/// Entries read in one poll, merged across shards, and whether more are waiting.
pub struct Batch {
    /// When the read was issued (ms since the epoch).
    pub issued_ms: u64,
    /// (shard, entry), in the order to deliver them.
    pub entries: Vec<(usize, LogEntry)>,
    /// True when a shard has more waiting: read again at once.
    pub more: bool,
    /// Per shard: the seq found where the next one was expected, if any.
    pub gaps: Vec<Option<u64>>,
    /// Gaps taken as they are (they outlived [`GAP_GRACE`]): per shard, the ranges of
    /// seqs skipped, first and last, in log order.
    pub skipped: Vec<(usize, u64, u64)>,
}

/// A gap in a shard's sequence that has lasted this long is accepted as lost
/// (deleted by hand, or expired under a stream lagging by more than the retention);
/// a younger one is a commit not yet fully visible, and is waited for.
pub const GAP_GRACE: Duration = Duration::from_secs(30);

/// Reads the page after each shard's position, concurrently, once `at` has come.
/// Shards whose entry in `accept_gaps` is true take a page with gaps as it is.
pub async fn read_batch<R: FeedReader>(
    store: Arc<R>,
    positions: Vec<Position>,
    accept_gaps: Vec<bool>,
    at: Instant,
    page_size: usize,
) -> Result<Batch, StoreError> {
    sleep_until(at).await;
    let issued_ms = timefmt::to_millis(Utc::now());
    let reads = positions
        .iter()
        .enumerate()
        .map(|(shard, after)| store.read_after(shard, *after, page_size));
    let mut pages = futures_util::future::try_join_all(reads).await?;
    let mut gaps = vec![None; pages.len()];
    let mut skipped = Vec::new();
    for (shard, page) in pages.iter_mut().enumerate() {
        if accept_gaps.get(shard).copied().unwrap_or(false) {
            if let Some((first, last)) = skip_first_gap(positions[shard], page) {
                skipped.push((shard, first, last));
            }
        } else {
            gaps[shard] = keep_dense_prefix(positions[shard], page);
        }
    }
    let mut batch = merge(issued_ms, pages);
    batch.gaps = gaps;
    batch.skipped = skipped;
    for (shard, entry) in &batch.entries {
        if let Err(unreadable) = &entry.bounty {
            tracing::error!(
                shard,
                seq = entry.position.seq,
                id = unreadable.id.as_deref().unwrap_or(""),
                detail = %unreadable.detail,
                "unreadable log entry: skipped, and the subscribers are told"
            );
        }
    }
    Ok(batch)
}

/// The seq after `after`, if it is known: a position taken from a time (`since`) has
/// no known successor, so whatever entry comes first follows it.
fn successor(after: Position) -> Option<u64> {
    (after.seq > 0 || after.created_ms == 0).then_some(after.seq + 1)
}

/// Takes the page past the gap that outlived its grace period, and only that one: the
/// page is cut at any later gap, which gets a grace period of its own from the next
/// poll. Returns the seqs skipped (first and last), if the page starts past a gap.
fn skip_first_gap(after: Position, page: &mut Page) -> Option<(u64, u64)> {
    let first = page.entries.first()?.position;
    let skipped = successor(after)
        .filter(|next| first.seq > *next)
        .map(|next| (next, first.seq - 1));
    let mut rest = Page {
        entries: page.entries.split_off(1),
        more: page.more,
    };
    keep_dense_prefix(first, &mut rest);
    page.entries.append(&mut rest.entries);
    page.more = rest.more;
    skipped
}

/// Keeps the entries that follow `after` seq by seq and drops the rest of the page
/// from the first gap; returns the seq found at the gap. A position taken from a
/// time (`since`) has no known successor, so its first entry is always accepted.
fn keep_dense_prefix(after: Position, page: &mut Page) -> Option<u64> {
    let mut expected = successor(after);
    let mut gap = None;
    let keep = page
        .entries
        .iter()
        .take_while(|entry| {
            let dense = expected.is_none_or(|seq| entry.position.seq == seq);
            if !dense {
                gap = Some(entry.position.seq);
            }
            expected = Some(entry.position.seq + 1);
            dense
        })
        .count();
    if gap.is_some() {
        page.entries.truncate(keep);
        page.more = false;
    }
    gap
}

/// Orders a poll's entries by creation time across shards. When a shard has more
/// than one page waiting, entries of other shards created after that page's last
/// entry are left for the next poll, so a burst still comes out in time order.
fn merge(issued_ms: u64, pages: Vec<Page>) -> Batch {
    let horizon = pages
        .iter()
        .filter(|page| page.more)
        .filter_map(|page| page.entries.last())
        .map(|entry| entry.position.created_ms)
        .min();
    let more = pages.iter().any(|page| page.more);
    let mut entries: Vec<(usize, LogEntry)> = pages
        .into_iter()
        .enumerate()
        .flat_map(|(shard, page)| page.entries.into_iter().map(move |entry| (shard, entry)))
        .filter(|(_, entry)| horizon.is_none_or(|ms| entry.position.created_ms <= ms))
        .collect();
    entries.sort_by_key(|(shard, entry)| (entry.position.created_ms, *shard, entry.position.seq));
    Batch {
        issued_ms,
        entries,
        more,
        gaps: Vec::new(),
        skipped: Vec::new(),
    }
}

/// Why a stream cannot resume from a client's cursor.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks, before a resumed stream starts, that the store still holds every entry
/// after the cursor: the log is dense, so the first entry after a position must be
/// the next seq, unless the head is the position itself, or the next entry may be a
/// commit not readable yet (see [`after_the_cursor_is_held`]).
pub async fn check_resumable<R: FeedReader>(
    store: &R,
    cursor: &Cursor,
    param: &str,
) -> Result<(), ResumeError> {
    for (shard, after) in cursor.positions.iter().enumerate() {
        if after.seq == 0 && after.created_ms > 0 {
            // A time position (`since`): the look-back check on its time is the guard.
            continue;
        }
        let head = store.head(shard).await?;
        if after.seq > head.seq {
            return Err(InputError::new(
                InputErrorCode::InvalidCursor,
                param,
                format!("{param} points past the end of the feed; reconnect without it"),
            )
            .into());
        }
        if head.seq == after.seq {
            continue;
        }
        if !after_the_cursor_is_held(store, shard, *after, head).await? {
            return Err(InputError::new(
                InputErrorCode::CursorTooOld,
                param,
                format!(
                    "entries after {param} are no longer retained; backfill, then stream from now"
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// How long a resume waits, read after read, for a hole under a readable entry of the
/// head's own append to fill before calling it gone. DynamoDB makes a transaction's
/// items readable within milliseconds of each other; this is far beyond that, and
/// short next to a stream's life.
const HOLE_WAITS: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(400),
];

/// What a resume finds after a shard's cursor position, when the head is past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterCursor {
    /// The next seq is readable.
    Next,
    /// Nothing after the cursor is readable although the head counts entries there:
    /// the head's append is not readable yet (the visibility window).
    NotYetReadable,
    /// Entries after the cursor are missing, and so is the cursor's own entry: the log
    /// was expired (or deleted) from below, past the cursor.
    Expired,
    /// The next seq is missing under a readable entry, the first one found.
    Hole(Position),
}

/// Reads, in one Query, the cursor's own entry and the one after it, and says which
/// of [`AfterCursor`] it is.
async fn after_the_cursor<R: FeedReader>(
    store: &R,
    shard: usize,
    after: Position,
) -> Result<AfterCursor, StoreError> {
    // Just before the cursor's own entry: no entry sorts between the two (seqs are
    // unique), so the page starts with the cursor's entry if the log still holds it.
    // The log's start has no entry of its own and nothing before it to expire.
    let (from, own) = match after.seq.checked_sub(1) {
        Some(seq) => (
            Position {
                created_ms: after.created_ms,
                seq,
            },
            true,
        ),
        None => (after, false),
    };
    let page = store
        .read_after(shard, from, if own { 2 } else { 1 })
        .await?;
    let mut entries = page.entries.iter().map(|entry| entry.position).peekable();
    let own_held = !own || entries.next_if(|position| *position == after).is_some();
    Ok(match entries.next() {
        Some(next) if next.seq == after.seq + 1 => AfterCursor::Next,
        _ if !own_held => AfterCursor::Expired,
        None => AfterCursor::NotYetReadable,
        Some(next) => AfterCursor::Hole(next),
    })
}

/// Whether a resume after `after` can go ahead on `shard`, whose head is past it.
///
/// DynamoDB's Query is read-committed towards transactions: the head item of an
/// append can be readable before its entries. Only the head's own append can be in
/// that state (the next append conflicts with it on the head item until it has
/// finished), and all its entries carry the head's `created_ms`. So:
/// - nothing readable after the cursor, whose own entry is still held: the head's
///   entry is on its way. The resume goes ahead; the stream reads it when it is
///   readable (and names a gap, after [`GAP_GRACE`], if it never is);
/// - the cursor's own entry gone too: expired from below, too old;
/// - a hole under an entry created before the head's millisecond: that append has
///   finished, so the hole is gone for good, too old;
/// - a hole under an entry of the head's millisecond: possibly a multi-entry append
///   half readable; read again after each of [`HOLE_WAITS`], too old if it stays.
async fn after_the_cursor_is_held<R: FeedReader>(
    store: &R,
    shard: usize,
    after: Position,
    head: Position,
) -> Result<bool, StoreError> {
    let mut waits = HOLE_WAITS.iter();
    loop {
        match after_the_cursor(store, shard, after).await? {
            AfterCursor::Next | AfterCursor::NotYetReadable => return Ok(true),
            AfterCursor::Expired => return Ok(false),
            AfterCursor::Hole(next) if next.created_ms < head.created_ms => return Ok(false),
            AfterCursor::Hole(next) => {
                let Some(wait) = waits.next() else {
                    tracing::warn!(
                        shard,
                        after = after.seq,
                        found = next.seq,
                        "a hole after a resumed cursor did not fill"
                    );
                    return Ok(false);
                };
                tokio::time::sleep(*wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounty::{Bounty, BountyStatus};

    fn entry(created_ms: u64, seq: u64) -> LogEntry {
        LogEntry {
            position: Position { created_ms, seq },
            kind: crate::store::EntryKind::Published,
            bounty: Ok(Bounty {
                id: format!("{seq}"),
                title: "t".into(),
                description: String::new(),
                category: "c".into(),
                budget_cents: 1,
                currency: "USD".into(),
                tags: vec![],
                deadline: timefmt::from_millis(created_ms),
                created_at: timefmt::from_millis(created_ms),
                status: BountyStatus::Open,
                version: 1,
                updated_at: timefmt::from_millis(created_ms),
                closed_at: None,
                close_reason: None,
            }),
        }
    }

    fn page(entries: Vec<LogEntry>, more: bool) -> Page {
        Page { entries, more }
    }

    #[test]
    fn a_page_is_cut_at_the_first_gap() {
        let mut with_gap = page(
            vec![entry(1, 4), entry(1, 5), entry(2, 7), entry(2, 8)],
            true,
        );
        assert_eq!(
            keep_dense_prefix(
                Position {
                    created_ms: 1,
                    seq: 3
                },
                &mut with_gap
            ),
            Some(7)
        );
        assert_eq!(with_gap.entries.len(), 2);
        assert!(!with_gap.more, "wait a poll for the gap to fill");

        let mut late_start = page(vec![entry(1, 5)], false);
        assert_eq!(keep_dense_prefix(Position::START, &mut late_start), Some(5));
        assert!(late_start.entries.is_empty());

        let mut dense = page(vec![entry(1, 1), entry(1, 2)], false);
        assert_eq!(keep_dense_prefix(Position::START, &mut dense), None);
        assert_eq!(dense.entries.len(), 2);
    }

    #[test]
    fn a_gap_taken_as_it_is_is_named_and_a_later_one_still_waits() {
        let after = Position {
            created_ms: 1,
            seq: 3,
        };
        let mut with_gaps = page(vec![entry(1, 5), entry(1, 6), entry(2, 9)], true);
        assert_eq!(skip_first_gap(after, &mut with_gaps), Some((4, 4)));
        let kept: Vec<u64> = with_gaps.entries.iter().map(|e| e.position.seq).collect();
        assert_eq!(kept, [5, 6], "cut at the later gap");
        assert!(!with_gaps.more, "wait a poll for the later gap");
        let mut dense = page(vec![entry(1, 4), entry(1, 5)], true);
        assert_eq!(skip_first_gap(after, &mut dense), None);
        assert_eq!(dense.entries.len(), 2);
        assert!(dense.more);
        // After a time (`since`) the first entry is not a gap, whatever its seq.
        let mut from_since = page(vec![entry(9, 41), entry(9, 43)], false);
        assert_eq!(
            skip_first_gap(Position::before_time(9), &mut from_since),
            None
        );
        assert_eq!(from_since.entries.len(), 1);
        assert_eq!(skip_first_gap(after, &mut page(vec![], false)), None);
    }

    #[test]
    fn a_time_position_accepts_any_first_entry() {
        let mut from_since = page(vec![entry(9, 41), entry(9, 42)], false);
        assert_eq!(
            keep_dense_prefix(Position::before_time(9), &mut from_since),
            None
        );
        assert_eq!(from_since.entries.len(), 2);
    }

    #[test]
    fn merge_orders_by_time_and_holds_back_what_a_full_page_has_not_reached() {
        // Shard 0 has more after ms 20; shard 1's entry at ms 30 must wait for it.
        let pages = vec![
            page(vec![entry(10, 1), entry(20, 2)], true),
            page(vec![entry(15, 1), entry(30, 2)], false),
        ];
        let batch = merge(7, pages);
        let order: Vec<(usize, u64)> = batch
            .entries
            .iter()
            .map(|(s, e)| (*s, e.position.created_ms))
            .collect();
        assert_eq!(order, [(0, 10), (1, 15), (0, 20)]);
        assert!(batch.more);
        assert_eq!(batch.issued_ms, 7);
    }

    mod over_a_store {
        use super::*;
        use crate::store::memory::MemoryStore;

        fn cursor(positions: Vec<Position>) -> Cursor {
            Cursor {
                issued_ms: 0,
                positions,
            }
        }

        fn at(seq: u64) -> Position {
            Position {
                created_ms: 1_000 + seq,
                seq,
            }
        }

        #[tokio::test]
        async fn a_batch_merges_every_shard_in_time_order() {
            let store = MemoryStore::new(2);
            store.push_at(0, 10, "c");
            store.push_at(0, 30, "c");
            store.push_at(1, 20, "c");
            let batch = read_batch(
                store.clone(),
                vec![Position::START; 2],
                vec![false; 2],
                Instant::now(),
                10,
            )
            .await
            .expect("batch");
            let order: Vec<(usize, u64)> = batch
                .entries
                .iter()
                .map(|(shard, entry)| (*shard, entry.position.created_ms))
                .collect();
            assert_eq!(order, [(0, 10), (1, 20), (0, 30)]);
            assert!(!batch.more);
            assert_eq!(batch.gaps, [None, None]);
            assert_eq!(store.reads(), 2, "one read per shard");

            store.fail_next_reads(1);
            let failed = read_batch(
                store.clone(),
                vec![Position::START; 2],
                vec![false; 2],
                Instant::now(),
                10,
            )
            .await;
            assert!(matches!(failed, Err(StoreError::Unavailable { .. })));
        }

        #[tokio::test]
        async fn a_hole_left_by_expired_entries_is_reported_unless_accepted() {
            let store = MemoryStore::new(1);
            for _ in 0..4 {
                store.push(0, "c");
            }
            store.expire_through(0, 2);
            let read = |accept: bool| {
                read_batch(store.clone(), vec![at(1)], vec![accept], Instant::now(), 10)
            };
            let waiting = read(false).await.expect("batch");
            assert!(waiting.entries.is_empty());
            assert_eq!(waiting.gaps, [Some(3)]);
            let accepted = read(true).await.expect("batch");
            assert_eq!(accepted.entries.len(), 2);
            assert_eq!(accepted.gaps, [None]);
        }

        #[tokio::test]
        async fn a_cursor_resumes_only_while_every_entry_after_it_is_held() {
            let store = MemoryStore::new(2);
            for _ in 0..3 {
                store.push(0, "c");
            }
            let resumes = |positions| {
                let store = store.clone();
                async move { check_resumable(&*store, &cursor(positions), "Last-Event-ID").await }
            };
            for ok in [
                vec![Position::START, Position::START],
                vec![at(1), Position::START],
                vec![at(3), Position::START],
                vec![Position::before_time(5_000), Position::START],
            ] {
                assert!(resumes(ok.clone()).await.is_ok(), "{ok:?}");
            }

            let past_the_end = resumes(vec![at(4), Position::START]).await;
            assert!(
                matches!(&past_the_end, Err(ResumeError::Input(err)) if err.code == InputErrorCode::InvalidCursor),
                "{past_the_end:?}"
            );

            store.expire_through(0, 1);
            assert!(
                resumes(vec![at(1), Position::START]).await.is_ok(),
                "2 is held"
            );
            let expired = resumes(vec![Position::START, Position::START]).await;
            assert!(
                matches!(&expired, Err(ResumeError::Input(err)) if err.code == InputErrorCode::CursorTooOld),
                "{expired:?}"
            );

            store.fail_next_reads(1);
            let failed = resumes(vec![at(1), Position::START]).await;
            assert!(matches!(failed, Err(ResumeError::Store(_))), "{failed:?}");
        }

        fn too_old(result: &Result<(), ResumeError>) -> bool {
            matches!(result, Err(ResumeError::Input(err)) if err.code == InputErrorCode::CursorTooOld)
        }

        #[tokio::test]
        async fn a_resume_inside_the_visibility_window_is_not_refused() {
            let store = MemoryStore::new(1);
            store.push(0, "c");
            // The head counts entry 2 before a Query can read it.
            store.hide(0, 2);
            store.push(0, "c");
            let resumed = check_resumable(&*store, &cursor(vec![at(1)]), "Last-Event-ID").await;
            assert!(resumed.is_ok(), "{resumed:?}");
            // From the log's start too, whatever entry 1 shows.
            store.hide(0, 1);
            let from_start =
                check_resumable(&*store, &cursor(vec![Position::START]), "Last-Event-ID").await;
            assert!(from_start.is_ok(), "{from_start:?}");
        }

        #[tokio::test(start_paused = true)]
        async fn a_hole_in_the_heads_own_append_is_waited_for() {
            let store = MemoryStore::new(1);
            store.push_at(0, 1_000, "c");
            // One append of two entries (one millisecond), the first not readable yet.
            store.hide(0, 2);
            store.push_at(0, 2_000, "c");
            store.push_at(0, 2_000, "c");
            let after_one = cursor(vec![Position {
                created_ms: 1_000,
                seq: 1,
            }]);
            let reveal = {
                let store = store.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    store.reveal(0, 2);
                }
            };
            let (resumed, ()) = tokio::join!(
                check_resumable(&*store, &after_one, "Last-Event-ID"),
                reveal
            );
            assert!(resumed.is_ok(), "{resumed:?}");

            // A hole that stays is gone: refused, after a bounded wait.
            store.delete(0, 2);
            let begin = Instant::now();
            let refused = check_resumable(&*store, &after_one, "Last-Event-ID").await;
            assert!(too_old(&refused), "{refused:?}");
            let waited: Duration = HOLE_WAITS.iter().sum();
            assert_eq!(begin.elapsed(), waited);
        }

        #[tokio::test(start_paused = true)]
        async fn entries_gone_for_good_are_refused_at_once() {
            let store = MemoryStore::new(1);
            for _ in 0..4 {
                store.push(0, "c");
            }
            let begin = Instant::now();
            // A hole under an entry older than the head's append: that append finished.
            store.delete(0, 2);
            let under_old = check_resumable(&*store, &cursor(vec![at(1)]), "Last-Event-ID").await;
            assert!(too_old(&under_old), "{under_old:?}");
            // The cursor's own entry expired with the ones after it, nothing readable
            // up to the head: expired from below, not the head's append on its way.
            store.expire_through(0, 4);
            let expired = check_resumable(&*store, &cursor(vec![at(1)]), "Last-Event-ID").await;
            assert!(too_old(&expired), "{expired:?}");
            assert_eq!(begin.elapsed(), Duration::ZERO, "no wait");
        }
    }
}
