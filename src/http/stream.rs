//! `GET /api/v1/bounties/stream`: parse the request, find the starting cursor with
//! [`crate::stream::start`] (every refusal is an answer before any byte of the stream),
//! then hand over to [`crate::stream`], whose typed frames become bytes here.

use chrono::Utc;
use futures_util::StreamExt;
use http::{header, HeaderValue, Response};
use lambda_http::Request;

use super::body::{streaming, ResponseBody};
use super::{cors, query_pairs, writes, ApiError, App};
use crate::filter::parse_stream_query;
use crate::store::{FeedReader, FeedWriter, StreamLeases};
use crate::stream::start::starting_cursor;
use crate::stream::{bounty_stream, StreamStart};
use crate::timefmt;

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

    let (cursor, resumed) =
        starting_cursor(app.store.as_ref(), query.start, now_ms, lookback_ms).await?;

    // Every refusal of the input came first: a bad request costs no lease. The lease
    // is held until the body ends or is dropped.
    let lease = super::stream_cap::admit_stream(app, req).await?;
    let filter_json = serde_json::to_string(&query.filter).unwrap_or_default();
    tracing::info!(filter = %filter_json, resumed, cursor = %cursor.encode(), "stream opened");
    let start = StreamStart {
        filter: query.filter,
        cursor,
        resumed,
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
