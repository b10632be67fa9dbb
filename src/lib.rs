//! firehose: a Server-Sent Events stream of newly posted bounties, served by one AWS
//! Lambda function (response streaming behind a Function URL) reading DynamoDB.
//!
//! # Layout
//!
//! The core knows nothing of Lambda or DynamoDB; the edges do.
//!
//! Core (pure, tested without a network):
//! - [`config`]: environment variables -> validated [`config::Config`].
//! - [`timefmt`]: RFC 3339 parsing and the one wire format for instants.
//! - [`bounty`]: the public bounty, and validation of a publish body into a draft.
//! - [`filter`]: query string -> [`filter::Filter`] (validation, normalisation, matching).
//! - [`cursor`]: opaque cursor <-> a position in each feed shard.
//! - [`sse`]: Server-Sent Events frame encoding.
//! - [`feed`]: reading the log across shards: batches kept dense and in time order, and
//!   the check that a resumed cursor's entries are still there.
//! - [`stream`]: the bounded stream loop: connected, poll, heartbeat, back-off, checkpoint.
//! - [`backfill`]: open bounties newest first, paged from a snapshot whose cursor hands
//!   over exactly to the stream.
//! - [`publish`]: the append protocol (take the head, commit conditionally, retry), and
//!   bounty ids that say where their entry is.
//! - [`auth`]: publish API keys checked against SHA-256 hashes in constant time.
//! - [`store`]: the feed store traits the core needs, and their error type.
//! - [`stream_cap`]: the per-client open stream cap (slots leased through the store).
//!
//! Edges:
//! - [`store::dynamo`]: the DynamoDB implementation of the feed store and the table schema.
//! - [`http`]: routing, request parsing, and the one place errors become HTTP responses.
//! - [`logging`]: log setup, and the rule that keeps request headers out of logs.
//! - `src/main.rs`: wiring: config -> DynamoDB client -> router -> `run_with_streaming_response`.
//! - `src/bin/firehose-admin.rs`: creates the table and seeds demo bounties (local use).
//!
//! Storage design and its correctness argument: `docs/storage.md`.

pub mod auth;
pub mod backfill;
pub mod bounty;
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

mod input_error;
pub use input_error::{InputError, InputErrorCode};
