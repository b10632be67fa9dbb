//! The HTTP edge: one entry point, [`handle`], that routes a request to its handler
//! and applies what every answer gets, once: errors as the contract's JSON
//! ([`error`]), CORS ([`cors`]), the request id and the access log ([`access_log`]).
//! Handlers parse, call the core and answer: a JSON [`Response`], or the typed frames
//! of a stream ([`sse::SseReply`]).

use std::sync::Arc;

use http::{Method, Response};
use lambda_http::{Request, RequestExt};
use tracing::Instrument;

use crate::config::{Config, Routes};
use crate::store::{FeedReader, FeedWriter, IdempotencyRecords, StreamLeases};
use crate::stream::shared_read::{SharedRead, SharedSettings};
use crate::stream::StreamSettings;
use crate::stream_cap::OpenStreams;

pub mod access_log;
mod board;
pub mod body;
mod change;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod limits;
mod publish;
pub mod sse;
mod stream;
mod stream_cap;
mod tasks;
mod writes;

pub use body::ResponseBody;
pub use error::ApiError;

/// Publish bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The `retry:` hint: how long a browser waits before reconnecting.
pub const RETRY_HINT_MS: u64 = 2000;
/// Entries read per shard per Query: bounds memory per stream during a burst.
pub const PAGE_SIZE: usize = 500;
/// The longest wait between polls while the store keeps failing.
const BACKOFF_CAP: std::time::Duration = std::time::Duration::from_secs(30);
/// Shared batches (each one poll's worth, one page per shard at most) a stream may
/// fall behind before it leaves the shared read and reads on its own: bounds the
/// memory a client that stopped reading can hold.
const SHARED_BUFFER: usize = 64;

/// What every request needs: configuration and the store.
#[derive(Debug)]
pub struct App<S> {
    pub config: Config,
    pub store: Arc<S>,
    /// The process's one read of the log for its caught-up streams (`SHARED_READ`).
    pub shared_read: Option<Arc<SharedRead<S>>>,
    /// The streams open in this process: a takeover here supersedes at once, and one
    /// task watches their leases for takeovers made elsewhere.
    pub open_streams: Arc<OpenStreams<S>>,
}

impl<S> App<S> {
    pub fn new(config: Config, store: S) -> Self {
        let store = Arc::new(store);
        let shared_read = config.shared_read.then(|| {
            Arc::new(SharedRead::new(
                store.clone(),
                SharedSettings {
                    poll_interval: config.poll_interval,
                    page_size: PAGE_SIZE,
                    backoff_cap: BACKOFF_CAP,
                    buffer: SHARED_BUFFER,
                },
            ))
        });
        // Half a heartbeat between looks at the leases: a stream superseded from
        // another instance ends within one heartbeat of the takeover, the read included.
        let open_streams = Arc::new(OpenStreams::new(store.clone(), config.heartbeat / 2));
        Self {
            config,
            store,
            shared_read,
            open_streams,
        }
    }

    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            poll_interval: self.config.poll_interval,
            heartbeat: self.config.heartbeat,
            max_duration: self.config.stream_max,
            page_size: PAGE_SIZE,
            retry_ms: RETRY_HINT_MS,
            backoff_cap: BACKOFF_CAP,
        }
    }
}

/// The endpoints of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// The live board (`GET /`), a page that streams from this same function.
    Board,
    Stream,
    Tasks,
    /// One bounty, by id (as it appears in the path: ids are plain ASCII).
    Task(String),
    /// One bounty's changes, as a stream.
    TaskStream(String),
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        if path == "/" {
            return Some(Route::Board);
        }
        match path.strip_prefix("/api/v1/")? {
            "bounties/stream" => Some(Route::Stream),
            "tasks" => Some(Route::Tasks),
            rest => {
                let rest = rest.strip_prefix("tasks/")?;
                let (id, stream) = match rest.strip_suffix("/stream") {
                    Some(id) => (id, true),
                    None => (rest, false),
                };
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                Some(if stream {
                    Route::TaskStream(id.to_owned())
                } else {
                    Route::Task(id.to_owned())
                })
            }
        }
    }

    fn allow(&self) -> &'static str {
        match self {
            Route::Board | Route::Stream | Route::TaskStream(_) => "GET, OPTIONS",
            Route::Task(_) => "GET, PATCH, OPTIONS",
            Route::Tasks => "GET, POST, OPTIONS",
        }
    }
}

/// What a handler answers: a response ready to send, or a stream still to assemble.
enum Reply {
    Answer(Response<ResponseBody>),
    Stream(sse::SseReply),
}

impl From<Response<ResponseBody>> for Reply {
    fn from(response: Response<ResponseBody>) -> Self {
        Reply::Answer(response)
    }
}

/// Serves one request. Never fails: errors are responses. What every answer gets is
/// applied here, once: the request id on its log lines, CORS, the access log (a stream
/// is logged when it ends).
pub async fn handle<S: FeedReader + FeedWriter + IdempotencyRecords + StreamLeases>(
    app: &App<S>,
    req: Request,
) -> Response<ResponseBody> {
    let request_id = req
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .unwrap_or_default();
    let access = access_log::Entry::start(&req, request_id.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // Instrumented, not entered: an entered span held across an await would tag other
    // requests' log lines on this thread with this request.
    let span = tracing::info_span!("request", %request_id, %method, %path);
    let reply = route(app, req)
        .instrument(span.clone())
        .await
        .unwrap_or_else(|err| err.into_response().into());
    let mut response = span.in_scope(|| match reply {
        Reply::Answer(response) => access.answered(response),
        Reply::Stream(stream) => stream.into_response(access),
    });
    cors::add_origin(response.headers_mut());
    response
}

async fn route<S: FeedReader + FeedWriter + IdempotencyRecords + StreamLeases>(
    app: &App<S>,
    req: Request,
) -> Result<Reply, ApiError> {
    limits::check(&req)?;
    let route = Route::of(req.uri().path()).ok_or(ApiError::NotFound)?;
    // The board is a page that streams from the URL that served it: on a function
    // without the stream it could only show an error, so it is not served there.
    let is_stream = matches!(route, Route::Stream | Route::TaskStream(_) | Route::Board);
    if is_stream && app.config.routes == Routes::Publish {
        return Err(ApiError::StreamElsewhere);
    }
    match (route, req.method()) {
        (route, &Method::OPTIONS) => Ok(cors::preflight(route.allow()).into()),
        (Route::Board, &Method::GET) => Ok(board::page(req.headers()).into()),
        (Route::Stream, &Method::GET) => stream::open(app, &req).await.map(Reply::Stream),
        (Route::Tasks, &Method::POST) => publish::publish(app, &req).await.map(Reply::from),
        (Route::Tasks, &Method::GET) => tasks::list(app, &req).await.map(Reply::from),
        (Route::Task(id), &Method::GET) => tasks::get(app, &id).await.map(Reply::from),
        (Route::Task(id), &Method::PATCH) => change::change(app, &req, &id).await.map(Reply::from),
        (Route::TaskStream(id), &Method::GET) => stream::open_bounty(app, &req, &id).await,
        (route, _) => Err(ApiError::MethodNotAllowed {
            allow: route.allow(),
        }),
    }
}

/// The query string's pairs, percent-decoded, in order (repeats kept).
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::of("/"), Some(Route::Board));
        assert_eq!(Route::of("/api/v1/bounties/stream"), Some(Route::Stream));
        assert_eq!(Route::of("/api/v1/tasks"), Some(Route::Tasks));
        assert_eq!(
            Route::of("/api/v1/tasks/01J"),
            Some(Route::Task("01J".into()))
        );
        assert_eq!(
            Route::of("/api/v1/tasks/01J/stream"),
            Some(Route::TaskStream("01J".into()))
        );
        for none in [
            "",
            "//",
            "/index.html",
            "/board",
            "/api/v1/tasks/",
            "/api/v1/tasks//stream",
            "/api/v1/tasks/a/b",
            "/api/v1/tasks/a/b/stream",
            "/api/v2/tasks",
            "/api/v1/bounties",
        ] {
            assert_eq!(Route::of(none), None, "{none}");
        }
    }
}
