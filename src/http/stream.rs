//! `GET /api/v1/bounties/stream`: parse the request, find the starting cursor with
//! [`crate::stream::start`] (every refusal is an answer before any byte of the stream),
//! take a slot of the client's stream cap, and hand the typed frames of
//! [`crate::stream`] to the edge ([`super::sse`]), which turns them into bytes.

use chrono::Utc;
use lambda_http::Request;

use super::sse::SseReply;
use super::{query_pairs, ApiError, App};
use crate::query::parse_stream_query;
use crate::store::{FeedReader, StreamLeases};
use crate::stream::start::starting_cursor;
use crate::stream::{bounty_stream, StreamStart};
use crate::timefmt;

pub async fn open<S: FeedReader + StreamLeases>(
    app: &App<S>,
    req: &Request,
) -> Result<SseReply, ApiError> {
    let header_cursor = req
        .headers()
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    let query = parse_stream_query(&query_pairs(req), header_cursor)?;
    let now_ms = timefmt::to_millis(Utc::now());
    let lookback_ms = u64::try_from(app.config.lookback.as_millis()).unwrap_or(u64::MAX);

    let (cursor, resumed) =
        starting_cursor(app.store.as_ref(), query.start, now_ms, lookback_ms).await?;

    // Every refusal of the input came first: a bad request costs no lease. The lease
    // is held until the frames end or are dropped.
    let lease = super::stream_cap::admit_stream(app, req).await?;
    let filter = serde_json::to_string(&query.filter).unwrap_or_default();
    let start = StreamStart {
        filter: query.filter,
        cursor,
        resumed,
    };
    let frames = bounty_stream(app.store.clone(), app.stream_settings(), start);
    Ok(SseReply {
        frames: Box::pin(super::stream_cap::hold(frames, lease)),
        filter,
    })
}
