//! The opaque cursor: for each feed shard, the position of the last entry delivered,
//! plus the time the cursor was issued (for the look-back window).
//!
//! A position is the entry's sort key (`created_ms`, `seq`): both only grow along a
//! shard's log, so "after this position" is a key range (see `docs/storage.md`).
//! On the wire the cursor is URL-safe base64 of `1.<issued_ms>.<ms>-<seq>.<ms>-<seq>…`,
//! one `ms-seq` pair per shard. Clients must treat it as opaque.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::{InputError, InputErrorCode};

/// The largest values a position may hold (the widths of the sort key's fields).
pub const MAX_CREATED_MS: u64 = 9_999_999_999_999;
pub const MAX_SEQ: u64 = 999_999_999_999;
/// The most shards a feed may have: a cursor, and a backfill page token (which carries
/// a cursor and a bound per shard), then stay within [`crate::filter::MAX_CURSOR_LEN`]
/// at any position.
pub const MAX_FEED_SHARDS: usize = 16;
/// A cursor issued further than this in the future is not one of ours.
pub(crate) const FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

/// A point in one shard's log: just after the entry with this key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub created_ms: u64,
    pub seq: u64,
}

impl Position {
    /// Before every entry of a shard.
    pub const START: Position = Position {
        created_ms: 0,
        seq: 0,
    };

    /// Every entry created at or after `ms` lies after this position (sequence
    /// numbers start at 1, so no entry has `seq` 0).
    pub fn before_time(ms: u64) -> Position {
        Position {
            created_ms: ms.min(MAX_CREATED_MS),
            seq: 0,
        }
    }

    /// The sort key of the entry at this position: fixed-width, so string order is
    /// the order of (`created_ms`, `seq`).
    pub fn sort_key(&self) -> String {
        format!("{:013}#{:012}", self.created_ms, self.seq)
    }

    /// The inverse of [`Position::sort_key`]; `None` for anything else.
    pub fn from_sort_key(key: &str) -> Option<Position> {
        let (ms, seq) = key.split_once('#')?;
        if ms.len() != 13 || seq.len() != 12 {
            return None;
        }
        Some(Position {
            created_ms: parse_digits(ms)?,
            seq: parse_digits(seq)?,
        })
    }
}

/// Digits only: `str::parse` would also take a sign.
pub(crate) fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Where a subscriber is in the feed: one position per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// When the positions were read from the store (ms since the epoch).
    pub issued_ms: u64,
    pub positions: Vec<Position>,
}

/// Limits a decoded cursor must respect.
#[derive(Debug, Clone, Copy)]
pub struct CursorRules {
    pub shards: usize,
    pub now_ms: u64,
    pub lookback_ms: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut text = format!("1.{}", self.issued_ms);
        for position in &self.positions {
            text.push_str(&format!(".{}-{}", position.created_ms, position.seq));
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Parses a cursor's text without judging it (shards, age); `None` if malformed.
    pub fn decode_unchecked(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        let plain = std::str::from_utf8(&bytes).ok()?;
        let mut parts = plain.split('.');
        if parts.next() != Some("1") {
            return None;
        }
        let issued_ms = parts.next().and_then(parse_digits)?;
        let positions = parts
            .map(|pair| {
                let (ms, seq) = pair.split_once('-')?;
                let position = Position {
                    created_ms: parse_digits(ms)?,
                    seq: parse_digits(seq)?,
                };
                (position.created_ms <= MAX_CREATED_MS && position.seq <= MAX_SEQ)
                    .then_some(position)
            })
            .collect::<Option<Vec<_>>>()?;
        (!positions.is_empty()).then_some(Cursor {
            issued_ms,
            positions,
        })
    }

    /// Decodes a cursor from `param` (for error messages) under `rules`.
    pub fn decode(text: &str, param: &str, rules: CursorRules) -> Result<Cursor, InputError> {
        let malformed = || {
            InputError::new(
                InputErrorCode::InvalidCursor,
                param,
                format!("{param} is not a cursor issued by this stream; reconnect without it to start from now"),
            )
        };
        let Cursor {
            issued_ms,
            positions,
        } = Cursor::decode_unchecked(text).ok_or_else(malformed)?;
        if issued_ms > rules.now_ms.saturating_add(FUTURE_TOLERANCE_MS) {
            return Err(malformed());
        }
        let mut positions = positions;
        if positions.len() > rules.shards {
            return Err(InputError::new(
                InputErrorCode::CursorTooOld,
                param,
                format!("{param} was issued when the feed had more shards; reconnect without it (or backfill) to continue"),
            ));
        }
        // Shards added since the cursor was issued started empty after it: read them
        // from their beginning.
        positions.resize(rules.shards, Position::START);
        if rules.now_ms.saturating_sub(issued_ms) > rules.lookback_ms {
            return Err(InputError::new(
                InputErrorCode::CursorTooOld,
                param,
                format!(
                    "{param} is older than the {} s look-back window; backfill, then stream from now",
                    rules.lookback_ms / 1000
                ),
            ));
        }
        Ok(Cursor {
            issued_ms,
            positions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: CursorRules = CursorRules {
        shards: 2,
        now_ms: 1_800_000_000_000,
        lookback_ms: 86_400_000,
    };

    fn cursor() -> Cursor {
        Cursor {
            issued_ms: RULES.now_ms - 1000,
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
    fn round_trips() {
        let text = cursor().encode();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&text, "Last-Event-ID", RULES), Ok(cursor()));
    }

    #[test]
    fn sort_keys_order_like_positions() {
        let a = Position {
            created_ms: 5,
            seq: 9,
        };
        let b = Position {
            created_ms: 5,
            seq: 10,
        };
        let c = Position {
            created_ms: 6,
            seq: 1,
        };
        assert!(a.sort_key() < b.sort_key() && b.sort_key() < c.sort_key());
        assert!(Position::START.sort_key() < a.sort_key());
        assert!(Position::before_time(6).sort_key() < c.sort_key());
        assert_eq!(Position::from_sort_key(&c.sort_key()), Some(c));
        for bad in [
            "",
            "1#2",
            "000000000000a#000000000001",
            "0000000000001#00000000000x",
        ] {
            assert_eq!(Position::from_sort_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_cursors_are_invalid() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let future = b64(&format!("1.{}.1-1.1-1", RULES.now_ms + 3_600_000));
        for bad in [
            "not base64!".to_owned(),
            b64("2.1.1-1.1-1"),
            b64("1.x.1-1.1-1"),
            b64("1.1"),
            b64("1.1.1-1.1"),
            b64("1.1.1-1.-1"),
            b64("1.1.99999999999999-1.1-1"),
            b64(&format!("1.{}.1-1.1-1\n", RULES.now_ms)),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
            future,
        ] {
            let err = Cursor::decode(&bad, "last_event_id", RULES).expect_err(&bad);
            assert_eq!(err.code, InputErrorCode::InvalidCursor, "{bad}");
            assert_eq!(err.param, "last_event_id");
        }
    }

    #[test]
    fn cursors_from_fewer_shards_read_new_shards_from_the_start() {
        let one_shard = Cursor {
            positions: vec![cursor().positions[0]],
            ..cursor()
        };
        let decoded = Cursor::decode(&one_shard.encode(), "Last-Event-ID", RULES).expect("valid");
        assert_eq!(
            decoded.positions,
            vec![cursor().positions[0], Position::START]
        );
    }

    #[test]
    fn old_or_differently_sharded_cursors_are_too_old() {
        let old = Cursor {
            issued_ms: RULES.now_ms - RULES.lookback_ms - 1,
            ..cursor()
        };
        let err = Cursor::decode(&old.encode(), "Last-Event-ID", RULES).expect_err("old");
        assert_eq!(err.code, InputErrorCode::CursorTooOld);
        let three_shards = Cursor {
            positions: vec![Position::START; 3],
            ..cursor()
        };
        let err =
            Cursor::decode(&three_shards.encode(), "Last-Event-ID", RULES).expect_err("layout");
        assert_eq!(err.code, InputErrorCode::CursorTooOld);
    }
}
