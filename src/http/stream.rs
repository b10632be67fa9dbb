//! `GET /api/v1/bounties/stream` (the firehose) and `GET /api/v1/tasks/{id}/stream`
//! (one bounty's changes): parse the request, find the starting cursor with
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
use super::{query_pairs, ApiError, App, Reply};
use crate::cursor::StreamTag;
use crate::feed::ResumeError;
use crate::lookup::current;
use crate::query::{parse_bounty_stream_query, parse_stream_query, StartAt};
use crate::store::{FeedReader, StoreError, StreamLeases};
use crate::stream::deadline::run_for;
use crate::stream::selection::Selection;
use crate::stream::start::starting_cursor;
use crate::stream::{bounty_stream_until, StreamStart};
use crate::timefmt;

pub async fn open<S: FeedReader + StreamLeases>(
    app: &App<S>,
    req: &Request,
) -> Result<SseReply, ApiError> {
    let query = parse_stream_query(&query_pairs(req), last_event_id(req))?;
    let summary = serde_json::to_string(&query.filter).unwrap_or_default();
    let from = issuer_of(&query.start);
    let (cursor, resumed) =
        match starting_cursor(app.store.as_ref(), query.start, now_ms(), lookback_ms(app)).await {
            Ok(start) => start,
            Err(ResumeError::Store(err)) => return Ok(unavailable(app, summary, &err)),
            Err(err) => return Err(err.into()),
        };
    let start = StreamStart {
        selection: Selection::Feed {
            filter: query.filter,
            changes: query.changes,
        },
        cursor,
        resumed,
    };
    serve(app, req, summary, from, start).await
}

/// `GET /api/v1/tasks/{id}/stream`: one bounty's changes, from its latest entry (or
/// the client's cursor); `204` when it is terminal with nothing after the cursor, so an
/// `EventSource` stops for good.
pub async fn open_bounty<S: FeedReader + StreamLeases>(
    app: &App<S>,
    req: &Request,
    id: &str,
) -> Result<Reply, ApiError> {
    let start_at = parse_bounty_stream_query(&query_pairs(req), last_event_id(req))?;
    let summary = serde_json::json!({ "bounty": id }).to_string();
    let from = issuer_of(&start_at);
    // The bounty first, then the heads: the heads are at or past its latest entry.
    let found = match current(app.store.as_ref(), id).await {
        Ok(found) => found.ok_or(ApiError::NoSuchBounty)?,
        Err(err) => return Ok(Reply::Stream(unavailable(app, summary, &err))),
    };
    let (mut cursor, resumed) =
        match starting_cursor(app.store.as_ref(), start_at, now_ms(), lookback_ms(app)).await {
            Ok(start) => start,
            Err(ResumeError::Store(err)) => {
                return Ok(Reply::Stream(unavailable(app, summary, &err)))
            }
            Err(err) => return Err(err.into()),
        };
    let Some(slot) = cursor.positions.get_mut(found.shard) else {
        return Err(ApiError::NoSuchBounty);
    };
    if !resumed {
        // Just after the entry that made the version `connected` shows: every later
        // change follows, whatever committed between the two reads.
        *slot = found.position;
    }
    if *slot >= found.position && found.bounty.is_terminal(Utc::now()) {
        return Ok(Reply::Answer(super::body::no_content()));
    }
    let start = StreamStart {
        selection: Selection::Bounty {
            bounty: Box::new(found.bounty),
            ended: false,
        },
        cursor,
        resumed,
    };
    serve(app, req, summary, from, start)
        .await
        .map(Reply::Stream)
}

/// Takes a slot of the client's stream cap (superseding the stream `from`, if it is
/// the client's), then streams `start` until the cap, the invocation's deadline, a
/// takeover or a terminal change.
async fn serve<S: FeedReader + StreamLeases>(
    app: &App<S>,
    req: &Request,
    summary: String,
    from: Option<StreamTag>,
    start: StreamStart,
) -> Result<SseReply, ApiError> {
    // Every refusal of the input came first: a bad request costs no lease. The lease
    // is held until the frames end or are dropped.
    let lease = match super::stream_cap::admit_stream(app, req, from.as_ref()).await {
        Ok(lease) => lease,
        Err(ApiError::Store(err)) => return Ok(unavailable(app, summary, &err)),
        Err(err) => return Err(err),
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
        filter: summary,
        issuer,
    })
}

fn last_event_id(req: &Request) -> Option<&str> {
    req.headers()
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

/// The stream that issued the client's cursor, which the new one supersedes.
fn issuer_of(start: &StartAt) -> Option<StreamTag> {
    match start {
        StartAt::Cursor { cursor, .. } => StreamTag::of_cursor(cursor),
        StartAt::Now | StartAt::Since(_) => None,
    }
}

fn now_ms() -> u64 {
    timefmt::to_millis(Utc::now())
}

fn lookback_ms<S>(app: &App<S>) -> u64 {
    u64::try_from(app.config.lookback.as_millis()).unwrap_or(u64::MAX)
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
