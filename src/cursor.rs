//! The opaque cursor: for each feed shard, the position of the last entry delivered,
//! plus the time the cursor was issued (for the look-back window).
//!
//! A position is the entry's sort key (`created_ms`, `seq`): both only grow along a
//! shard's log, so "after this position" is a key range (see `docs/storage.md`).
//! On the wire the cursor is URL-safe base64 of `1.<issued_ms>.<ms>-<seq>.<ms>-<seq>…`,
//! one position per shard in its text form (`<ms>-<seq>`, [`Position::to_text`]), which
//! backfill page tokens use too. Clients must treat it as opaque.
//!
//! A cursor a stream sends ends with `~<tag>`, the [`StreamTag`] of the stream that
//! issued it, so that a client reconnecting with it can be matched to that stream
//! (superseding, `docs/reliability.md`). The tag is not part of the position: cursors
//! without one (issued before tags, or by the backfill) decode as before, to the same
//! [`Cursor`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::{InputError, InputErrorCode};

/// The largest values a position may hold (the widths of the sort key's fields).
pub const MAX_CREATED_MS: u64 = 9_999_999_999_999;
pub const MAX_SEQ: u64 = 999_999_999_999;
/// The most shards a feed may have: a cursor, and a backfill page token (which carries
/// a cursor and a bound per shard), then stay within [`crate::query::MAX_CURSOR_LEN`]
/// at any position.
pub const MAX_FEED_SHARDS: usize = 16;
/// A cursor (or a `since`) further than this in the future is not one of ours: clocks
/// of instances differ a little, not by minutes.
pub const FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

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

    /// The position's text in cursors and page tokens: `<created_ms>-<seq>`, decimal,
    /// no padding (shorter than the sort key; these strings travel in URLs).
    pub fn to_text(&self) -> String {
        format!("{}-{}", self.created_ms, self.seq)
    }

    /// The inverse of [`Position::to_text`], for a position within the sort key's
    /// bounds; `None` for anything else.
    pub fn from_text(text: &str) -> Option<Position> {
        Self::from_text_up_to(text, MAX_SEQ)
    }

    /// [`Position::from_text`] for an exclusive upper bound: the bound just after a
    /// head, whose `seq` may be one past [`MAX_SEQ`].
    pub fn bound_from_text(text: &str) -> Option<Position> {
        Self::from_text_up_to(text, MAX_SEQ + 1)
    }

    fn from_text_up_to(text: &str, max_seq: u64) -> Option<Position> {
        let (ms, seq) = text.split_once('-')?;
        let position = Position {
            created_ms: parse_digits(ms)?,
            seq: parse_digits(seq)?,
        };
        (position.created_ms <= MAX_CREATED_MS && position.seq <= max_seq).then_some(position)
    }
}

/// Digits only: `str::parse` would also take a sign.
fn parse_digits(text: &str) -> Option<u64> {
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

/// The stream that issued a cursor: a short random token, also the id of the stream's
/// lease. Letters and digits only, so it never meets the cursor's separators.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamTag(String);

impl StreamTag {
    /// Characters of a new tag: 10 of 62 letters and digits, about 59 bits. A tag
    /// only has to tell apart the streams of one client (see `docs/reliability.md`).
    const LEN: usize = 10;
    /// The longest tag a cursor may carry.
    const MAX_LEN: usize = 32;

    /// A new random tag.
    pub fn random() -> StreamTag {
        StreamTag(
            std::iter::repeat_with(fastrand::alphanumeric)
                .take(Self::LEN)
                .collect(),
        )
    }

    /// A tag from its text: 1 to 32 ASCII letters or digits; `None` for anything else.
    pub fn parse(text: &str) -> Option<StreamTag> {
        let valid = (1..=Self::MAX_LEN).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric());
        valid.then(|| StreamTag(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag a cursor's text carries: `None` if it carries none or is malformed.
    pub fn of_cursor(text: &str) -> Option<StreamTag> {
        Cursor::decode_tagged(text).and_then(|(_, tag)| tag)
    }
}

impl std::fmt::Display for StreamTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Limits a decoded cursor must respect.
#[derive(Debug, Clone, Copy)]
pub struct CursorRules {
    pub shards: usize,
    pub now_ms: u64,
    pub lookback_ms: u64,
}

impl Cursor {
    /// The cursor's text without a tag (the backfill's hand-over, page tokens).
    pub fn encode(&self) -> String {
        self.encode_issued(None)
    }

    /// The cursor's text as the stream `by` sends it: tagged with the stream.
    pub fn encode_issued(&self, by: Option<&StreamTag>) -> String {
        let mut text = format!("1.{}", self.issued_ms);
        for position in &self.positions {
            text.push('.');
            text.push_str(&position.to_text());
        }
        if let Some(tag) = by {
            text.push('~');
            text.push_str(tag.as_str());
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Parses a cursor's text without judging it (shards, age); `None` if malformed.
    /// A tag, if any, is checked and left out.
    pub fn decode_unchecked(text: &str) -> Option<Cursor> {
        Self::decode_tagged(text).map(|(cursor, _)| cursor)
    }

    /// [`Cursor::decode_unchecked`], and the tag of the stream that issued it, if any.
    fn decode_tagged(text: &str) -> Option<(Cursor, Option<StreamTag>)> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        let plain = std::str::from_utf8(&bytes).ok()?;
        let (plain, tag) = match plain.split_once('~') {
            Some((plain, tag)) => (plain, Some(StreamTag::parse(tag)?)),
            None => (plain, None),
        };
        let mut parts = plain.split('.');
        if parts.next() != Some("1") {
            return None;
        }
        let issued_ms = parts.next().and_then(parse_digits)?;
        let positions = parts.map(Position::from_text).collect::<Option<Vec<_>>>()?;
        let cursor = Cursor {
            issued_ms,
            positions,
        };
        (!cursor.positions.is_empty()).then_some((cursor, tag))
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
    fn positions_round_trip_through_their_text_within_bounds() {
        let largest = Position {
            created_ms: MAX_CREATED_MS,
            seq: MAX_SEQ,
        };
        for position in [
            Position::START,
            cursor().positions[0],
            Position::before_time(7),
            largest,
        ] {
            let text = position.to_text();
            assert_eq!(Position::from_text(&text), Some(position), "{text}");
            assert_eq!(Position::bound_from_text(&text), Some(position), "{text}");
        }
        assert_eq!(cursor().positions[0].to_text(), "1799999999000-42");
        let past_the_largest = Position {
            seq: MAX_SEQ + 1,
            ..largest
        };
        let text = past_the_largest.to_text();
        assert_eq!(Position::from_text(&text), None);
        assert_eq!(Position::bound_from_text(&text), Some(past_the_largest));
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "1-2-3",
            "+1-2",
            "1-+2",
            " 1-2",
            "1.5-2",
            "10000000000000-1",
            "1-1000000000001",
            "99999999999999999999999-1",
        ] {
            assert_eq!(Position::from_text(bad), None, "{bad}");
            assert_eq!(Position::bound_from_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_wire_text_of_a_cursor_is_unchanged() {
        // Cursors issued before must still decode: this is their exact text.
        let plain = "1.1799999999000.1799999999000-42.0-0";
        assert_eq!(cursor().encode(), URL_SAFE_NO_PAD.encode(plain));
        assert_eq!(
            Cursor::decode_unchecked(&URL_SAFE_NO_PAD.encode(plain)),
            Some(cursor())
        );
    }

    #[test]
    fn a_stream_tag_rides_along_without_changing_the_position() {
        let tag = StreamTag::random();
        assert_eq!(tag.as_str().len(), 10);
        assert_eq!(StreamTag::parse(tag.as_str()), Some(tag.clone()));
        let text = cursor().encode_issued(Some(&tag));
        assert_eq!(
            text,
            URL_SAFE_NO_PAD.encode(format!("1.1799999999000.1799999999000-42.0-0~{tag}"))
        );
        assert_eq!(Cursor::decode(&text, "Last-Event-ID", RULES), Ok(cursor()));
        assert_eq!(StreamTag::of_cursor(&text), Some(tag));
        // Untagged cursors (the old ones, the backfill's) carry none and are unchanged.
        assert_eq!(cursor().encode_issued(None), cursor().encode());
        assert_eq!(StreamTag::of_cursor(&cursor().encode()), None);
        assert_eq!(StreamTag::of_cursor("not a cursor"), None);
        for bad in ["", "a-b", "a.b", "a~b", &"x".repeat(33)] {
            assert_eq!(StreamTag::parse(bad), None, "{bad}");
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
            b64("1.1.1-1.1-1~"),
            b64("1.1.1-1.1-1~a-b"),
            b64("1.1.1-1.1-1~a~b"),
            b64("1.1~abc"),
            b64(&format!("1.1.1-1.1-1~{}", "x".repeat(33))),
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
