//! `GET /api/v1/bounties/stream`: parse and check everything (400s before any byte
//! of the stream), find the starting cursor, then hand over to [`crate::stream`].

use chrono::Utc;
use futures_util::StreamExt;
use http::{header, HeaderValue, Response};
use lambda_http::{Request, RequestExt};

use super::body::{streaming, ResponseBody};
use super::{cors, query_pairs, writes, ApiError, App};
use crate::cursor::{Cursor, CursorRules, Position};
use crate::feed::check_resumable;
use crate::filter::{parse_stream_query, StartAt};
use crate::store::{heads, FeedReader, FeedWriter, StreamLeases};
use crate::stream::{bounty_stream, StreamStart};
use crate::{timefmt, InputError, InputErrorCode};

/// A `since` further than this in the future is a mistake, not a plan.
const SINCE_FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

pub async fn open<S: FeedReader + FeedWriter + StreamLeases>(
    app: &App<S>,
    req: &Request,
) -> Result<Response<ResponseBody>, ApiError> {
    let header_cursor = req
        .headers()
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    let query = parse_stream_query(&query_pairs(req), header_cursor)?;
    let now_ms = timefmt::to_millis(Utc::now());
    let lookback_ms = u64::try_from(app.config.lookback.as_millis()).unwrap_or(u64::MAX);
    let shards = app.store.shard_count();

    let (cursor, resumed) = match query.start {
        StartAt::Now => (
            Cursor {
                issued_ms: now_ms,
                positions: heads(app.store.as_ref()).await?,
            },
            false,
        ),
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
            if since_ms > now_ms + SINCE_FUTURE_TOLERANCE_MS {
                return Err(InputError::new(
                    InputErrorCode::InvalidParameter,
                    "since",
                    "since is in the future",
                )
                .into());
            }
            let cursor = Cursor {
                issued_ms: since_ms.min(now_ms),
                positions: vec![Position::before_time(since_ms); shards],
            };
            (cursor, true)
        }
        StartAt::Cursor { cursor, param } => {
            let rules = CursorRules {
                shards,
                now_ms,
                lookback_ms,
            };
            let cursor = Cursor::decode(&cursor, param, rules)?;
            check_resumable(app.store.as_ref(), &cursor, param).await?;
            (cursor, true)
        }
    };

    // Every refusal of the input came first: a bad request costs no lease. The lease
    // is held until the body ends or is dropped.
    let lease = super::stream_cap::admit_stream(app, req).await?;
    let filter_json = serde_json::to_string(&query.filter).unwrap_or_default();
    tracing::info!(filter = %filter_json, resumed, cursor = %cursor.encode(), "stream opened");
    let start = StreamStart {
        filter: query.filter,
        cursor,
        resumed,
        request_id: req
            .lambda_context_ref()
            .map(|ctx| ctx.request_id.clone())
            .unwrap_or_default(),
    };
    // The stream's frames are typed values up to here; they become bytes only now.
    let frames = writes::coalesce_ready(
        bounty_stream(app.store.clone(), app.stream_settings(), start).map(|frame| frame.encode()),
        writes::MAX_WRITE_BYTES,
    );
    let frames = super::stream_cap::hold(frames, lease);
    let mut response = Response::new(streaming(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    cors::add_origin(headers);
    response
        .extensions_mut()
        .insert(super::access_log::FilterSummary(filter_json));
    Ok(response)
}
