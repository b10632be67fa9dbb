//! Where a stream starts: the rules that turn a request's start (now, `since`, or a
//! client's cursor) into a cursor, and refuse, before any byte of the stream, a start
//! outside the look-back window or in the future.

use crate::cursor::{Cursor, CursorRules, Position, FUTURE_TOLERANCE_MS};
use crate::feed::{check_resumable, ResumeError};
use crate::query::StartAt;
use crate::store::{heads, FeedReader};
use crate::{timefmt, InputError, InputErrorCode};

/// The cursor a stream starts from, and whether it resumes (a client's cursor or
/// `since`: poll at once) rather than starting at the heads of the log now.
pub async fn starting_cursor<R: FeedReader>(
    store: &R,
    start: StartAt,
    now_ms: u64,
    lookback_ms: u64,
) -> Result<(Cursor, bool), ResumeError> {
    match start {
        StartAt::Now => {
            let cursor = Cursor {
                issued_ms: now_ms,
                positions: heads(store).await?,
            };
            Ok((cursor, false))
        }
        StartAt::Since(at) => {
            let since_ms = timefmt::to_millis(at);
            if now_ms.saturating_sub(since_ms) > lookback_ms {
                return Err(InputError::new(
                    InputErrorCode::CursorTooOld,
                    "since",
                    format!(
                        "since is older than the {} s look-back window; backfill instead",
                        lookback_ms / 1000
                    ),
                )
                .into());
            }
            if since_ms > now_ms.saturating_add(FUTURE_TOLERANCE_MS) {
                return Err(InputError::new(
                    InputErrorCode::InvalidParameter,
                    "since",
                    "since is in the future",
                )
                .into());
            }
            let cursor = Cursor {
                issued_ms: since_ms.min(now_ms),
                positions: vec![Position::before_time(since_ms); store.shard_count()],
            };
            Ok((cursor, true))
        }
        StartAt::Cursor { cursor, param } => {
            let rules = CursorRules {
                shards: store.shard_count(),
                now_ms,
                lookback_ms,
            };
            let cursor = Cursor::decode(&cursor, param, rules)?;
            check_resumable(store, &cursor, param).await?;
            Ok((cursor, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;

    /// A log whose shards hold entries `1..=head`, all still retained.
    fn heads(heads: &[u64]) -> Arc<MemoryStore> {
        let store = MemoryStore::new(heads.len());
        for (shard, head) in heads.iter().enumerate() {
            for _ in 0..*head {
                store.push(shard, "c");
            }
        }
        store
    }

    /// Where [`MemoryStore::push`] puts entry `seq`.
    fn at(seq: u64) -> Position {
        Position {
            created_ms: 1_000 + seq,
            seq,
        }
    }

    const NOW_MS: u64 = 1_800_000_000_000;
    const LOOKBACK_MS: u64 = 3_600_000;

    async fn start(store: &MemoryStore, start: StartAt) -> Result<(Cursor, bool), ResumeError> {
        starting_cursor(store, start, NOW_MS, LOOKBACK_MS).await
    }

    fn input_error(result: Result<(Cursor, bool), ResumeError>) -> InputError {
        match result {
            Err(ResumeError::Input(err)) => err,
            other => panic!("not an input error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn now_starts_at_the_heads_without_resuming() {
        let (cursor, resumed) = start(&heads(&[3, 5]), StartAt::Now).await.expect("starts");
        assert_eq!(cursor.positions, [at(3), at(5)]);
        assert_eq!(cursor.issued_ms, NOW_MS);
        assert!(!resumed);
    }

    #[tokio::test]
    async fn since_resumes_from_its_time_within_the_window_only() {
        let store = heads(&[3, 5]);
        let since = |ms| StartAt::Since(timefmt::from_millis(ms));
        let (cursor, resumed) = start(&store, since(NOW_MS - 60_000)).await.expect("starts");
        assert_eq!(
            cursor.positions,
            vec![Position::before_time(NOW_MS - 60_000); 2]
        );
        assert!(resumed);

        let too_old = input_error(start(&store, since(NOW_MS - LOOKBACK_MS - 1)).await);
        assert_eq!(
            (too_old.code, too_old.param.as_str()),
            (InputErrorCode::CursorTooOld, "since")
        );

        // A clock a little behind is forgiven; the cursor is not issued in the future.
        let (cursor, _) = start(&store, since(NOW_MS + FUTURE_TOLERANCE_MS))
            .await
            .expect("starts");
        assert_eq!(cursor.issued_ms, NOW_MS);
        let future = input_error(start(&store, since(NOW_MS + FUTURE_TOLERANCE_MS + 1)).await);
        assert_eq!(
            (future.code, future.param.as_str()),
            (InputErrorCode::InvalidParameter, "since")
        );
    }

    #[tokio::test]
    async fn a_cursor_resumes_only_while_its_entries_are_there() {
        let store = heads(&[3]);
        let issued = |positions| Cursor {
            issued_ms: NOW_MS - 1_000,
            positions,
        };
        let param = "Last-Event-ID";
        let resume = |cursor: Cursor| StartAt::Cursor {
            cursor: cursor.encode(),
            param,
        };
        let (cursor, resumed) = start(&store, resume(issued(vec![at(1)])))
            .await
            .expect("starts");
        assert_eq!(cursor.positions, [at(1)]);
        assert!(resumed);

        let past_the_end = input_error(start(&store, resume(issued(vec![at(4)]))).await);
        assert_eq!(
            (past_the_end.code, past_the_end.param.as_str()),
            (InputErrorCode::InvalidCursor, param)
        );

        let malformed = input_error(
            start(
                &store,
                StartAt::Cursor {
                    cursor: "not a cursor".into(),
                    param,
                },
            )
            .await,
        );
        assert_eq!(malformed.code, InputErrorCode::InvalidCursor);
    }
}
