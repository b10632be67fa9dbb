//! `GET /api/v1/bounties/stream`: parse the request, find the starting cursor with
//! [`crate::stream::start`] (every refusal is an answer before any byte of the stream),
//! take a slot of the client's stream cap, and hand the typed frames of
//! [`crate::stream`] to the edge ([`super::sse`]), which turns them into bytes.
//!
//! A store that cannot be read at connect time is not a 503 here: browser and npm
//! `EventSource` close for good on any status but 200, so the answer is a 200 stream
//! of `retry:` and one `error` frame, without an `id:`, that ends at once; the client
//! reconnects by itself with the `Last-Event-ID` it had ([`crate::stream::unavailable`]).

use std::time::SystemTime;

use chrono::Utc;
use lambda_http::{Request, RequestExt};

use super::sse::SseReply;
use super::{query_pairs, ApiError, App};
use crate::cursor::StreamTag;
use crate::feed::ResumeError;
use crate::query::{parse_stream_query, StartAt};
use crate::store::{FeedReader, StoreError, StreamLeases};
use crate::stream::deadline::run_for;
use crate::stream::start::starting_cursor;
use crate::stream::{bounty_stream_until, StreamStart};
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

    let filter = serde_json::to_string(&query.filter).unwrap_or_default();
    // The stream that issued the client's cursor, which this one supersedes.
    let from = match &query.start {
        StartAt::Cursor { cursor, .. } => StreamTag::of_cursor(cursor),
        StartAt::Now | StartAt::Since(_) => None,
    };

    let (cursor, resumed) =
        match starting_cursor(app.store.as_ref(), query.start, now_ms, lookback_ms).await {
            Ok(start) => start,
            Err(ResumeError::Store(err)) => return Ok(unavailable(app, filter, &err)),
            Err(err) => return Err(err.into()),
        };

    // Every refusal of the input came first: a bad request costs no lease. The lease
    // is held until the frames end or are dropped.
    let lease = match super::stream_cap::admit_stream(app, req, from.as_ref()).await {
        Ok(lease) => lease,
        Err(ApiError::Store(err)) => return Ok(unavailable(app, filter, &err)),
        Err(err) => return Err(err),
    };
    let start = StreamStart {
        filter: query.filter,
        cursor,
        resumed,
    };
    // Timed from now, after every store call before the stream: the checkpoint comes
    // before the invocation's deadline however long those took.
    let mut settings = app.stream_settings();
    let deadline = req.lambda_context_ref().map(|context| context.deadline());
    settings.max_duration = run_for(SystemTime::now(), deadline, settings.max_duration);
    // Told by the process's registry of open streams (`App::open_streams`): at once
    // for a takeover here, within half a heartbeat for one made elsewhere.
    let superseded = lease.superseded();
    let issuer = Some(lease.tag().clone());
    let frames = bounty_stream_until(
        app.store.clone(),
        app.shared_read.clone(),
        settings,
        start,
        superseded,
    );
    Ok(SseReply {
        frames: Box::pin(super::stream_cap::hold(frames, lease)),
        filter,
        issuer,
    })
}

/// The answer to a connect while the store cannot be read: `retry:`, one `error` frame,
/// the end.
fn unavailable<S>(app: &App<S>, filter: String, err: &StoreError) -> SseReply {
    let settings = app.stream_settings();
    tracing::warn!(error = %err, retry_in_ms = settings.retry_ms, "store unavailable at connect; the client is told to come back");
    SseReply {
        frames: Box::pin(crate::stream::unavailable(&settings)),
        filter,
        issuer: None,
    }
}
