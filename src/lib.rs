//! firehose: a Server-Sent Events stream of newly posted bounties, served by one AWS
//! Lambda function (response streaming behind a Function URL) reading DynamoDB.
//!
//! # Layout
//!
//! Data walks one way: request -> [`http`] (parse) -> the core -> typed frames or a
//! JSON answer -> [`http`] (bytes). The core knows nothing of Lambda or DynamoDB; the
//! edges do. Each line names the one home of a behaviour of the contract (private
//! modules in plain code, public ones as links).
//!
//! The bounty and what a request asks for:
//! - [`bounty`]: the public bounty and a publish body validated into a draft;
//!   `bounty::slug`: the slug type (categories, tags), checked once;
//!   [`bounty::id`]: bounty ids, which say where their entry is in the log;
//!   [`bounty::patch`]: a PATCH body validated into an update or a close.
//! - [`query`]: query string -> the stream's filter and start, or the backfill's filter,
//!   limit and page: every 400 before a stream starts.
//! - [`filter`]: the filter and matching (the one place that decides who gets a bounty).
//! - [`cursor`]: opaque cursor <-> a position in each shard, and positions' one text form.
//! - [`timefmt`]: RFC 3339 parsing and the one wire format for instants.
//! - [`config`]: environment variables -> validated [`config::Config`].
//!
//! The stream:
//! - [`stream`]: the bounded stream, a short `select!` dispatcher over cap, poll and
//!   heartbeat; [`stream::start`]: where a stream starts (now, `since`, a cursor, the
//!   look-back rule); [`stream::frame`]: the frames as typed values;
//!   `stream::backoff`: waits while the store fails; `stream::gaps`: gaps in a
//!   shard, waited for, then skipped; `stream::read_ahead`: the next page of a burst;
//!   [`stream::shared_read`]: one read of the log for all the caught-up streams of a
//!   process; [`stream::deadline`]: the stream's end, before the invocation's deadline;
//!   [`stream::selection`]: what a stream sends of each entry (the firehose's bounties
//!   and changes, or one bounty's changes).
//! - [`feed`]: reading the log across shards (dense batches in time order) and the
//!   check that a resumed cursor's entries are still there.
//! - [`sse`]: Server-Sent Events framing: the wire format and nothing else.
//! - [`stream_cap`]: the per-client open stream cap (slots leased through the store).
//!
//! The REST half:
//! - [`backfill`]: open bounties newest first, paged from a snapshot whose cursor hands
//!   over exactly to the stream.
//! - [`lookup`]: one bounty by id, as it is now.
//! - [`change`]: updates and closes, as entries of the same log (`PATCH`).
//! - [`publish`]: the append protocol (take the head, commit conditionally, retry) and
//!   a publish from a request body.
//! - [`idempotency`]: `Idempotency-Key`, the request hash and the replay rule.
//! - [`auth`]: publish API keys checked against SHA-256 hashes in constant time.
//! - [`input_error`]: the typed error for anything a client sent that is refused.
//!
//! The store:
//! - [`store`]: the small traits the core needs (feed heads, reader, writer,
//!   idempotency records, stream leases) and their error type; `store::memory`: an
//!   in-memory implementation for unit tests of the core.
//! - [`store::dynamo`]: the DynamoDB implementation: `store::dynamo::feed` (the log),
//!   `store::dynamo::idempotency` (claims), `store::dynamo::leases` (stream slots),
//!   `store::dynamo::states` (bounty states after changes),
//!   [`store::dynamo::schema`] (the table).
//!
//! The HTTP edge:
//! - [`http`]: one entry point: routing, then CORS, the request id, the access log and
//!   errors applied once; [`http::error`]: the one place errors become HTTP answers;
//!   [`http::cors`]; [`http::access_log`]: one line per request (a stream's at its
//!   end); [`http::client_ip`]: who the client is; [`http::limits`]: 414 and 431;
//!   [`http::body`]: the response body type.
//! - Thin handlers: `http::stream`, `http::tasks` (backfill and lookup),
//!   `http::publish`, `http::change` (PATCH), `http::stream_cap` (admission and
//!   holding the lease).
//! - `http::board`: `GET /`, the live board: one self-contained page (`board.html`)
//!   that lists and streams bounties in the browser, and its security policy.
//! - [`http::sse`]: a stream answer assembled in one place (typed frames counted, then
//!   encoded); `http::writes`: frames ready together leave as one write.
//! - [`logging`]: log setup, and the rule that keeps request headers out of logs.
//! - `src/main.rs`: wiring: config -> DynamoDB client -> router -> runtime.
//! - `src/bin/firehose-admin.rs`: creates the table and seeds demo bounties (local use).
//!
//! Storage design and its correctness argument: `docs/storage.md`.

pub mod auth;
pub mod backfill;
pub mod bounty;
pub mod change;
pub mod config;
pub mod cursor;
pub mod feed;
pub mod filter;
pub mod http;
pub mod idempotency;
pub mod logging;
pub mod lookup;
pub mod publish;
pub mod query;
pub mod sse;
pub mod store;
pub mod stream;
pub mod stream_cap;
pub mod timefmt;

pub mod input_error;
pub use input_error::{InputError, InputErrorCode};
