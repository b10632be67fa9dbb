//! Client SDK for the firehose bounty stream, with the `firehose` CLI and MCP server
//! built on it (the `cli` feature, on by default).
//!
//! ```no_run
//! use firehose_client::{Client, Filter};
//! use futures_util::StreamExt;
//!
//! # async fn run() -> Result<(), firehose_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:9000")?;
//! let filter = Filter::new().category("python").min_budget_cents(50_000);
//! let mut bounties = std::pin::pin!(client.subscribe(filter));
//! while let Some(bounty) = bounties.next().await {
//!     let bounty = bounty?; // an error is final: the stream ends after it
//!     println!("{} {}", bounty.id, bounty.title);
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`client`]: [`Client`] and its builder: base URL, timeouts, reconnect settings;
//!   the REST calls (backfill pages, one bounty, publish, update, close).
//! - `resume`: the reconnect loop both streams share: connect, read, resume with
//!   `Last-Event-ID`, drop a link silent for twice the server's `heartbeat_ms`, back
//!   off, stop on 4xx/204.
//! - [`subscription`]: the firehose on top of it: new bounties matching a filter
//!   (`subscribe`), and their changes too (`subscribe_changes`); backfill first.
//! - [`watch`]: one bounty's changes until it is closed or expires (`watch`).
//! - [`sse`]: a small incremental Server-Sent Events parser (it surfaces `retry:` and
//!   comments, which the stream relies on; lines and events are bounded to 1 MiB).
//! - [`backoff`]: exponential backoff with jitter, and the floor of a server's `retry:`.
//! - [`dedupe`]: a bounded window of what was already delivered (bounty ids; a change
//!   as id and version).
//! - [`model`]: the wire types: [`Bounty`], [`Filter`], [`NewBounty`], [`BountyPatch`],
//!   [`Page`].
//! - [`money`]: money strings (`500`, `500.25`) <-> integer cents, exactly.
//! - [`error`]: the error type, [`ClientError`].
//!
//! The `firehose` binary lives in `src/bin/firehose/` (CLI commands and the MCP server).

pub mod backoff;
pub mod client;
pub mod dedupe;
pub mod error;
pub mod model;
pub mod money;
mod resume;
pub mod sse;
pub mod subscription;
pub mod watch;

pub use client::{Client, ClientBuilder, MAX_PAGE_SIZE};
pub use error::{ApiErrorBody, ClientError};
pub use model::{
    Bounty, BountyPatch, CloseReason, Connected, Filter, NewBounty, Page, WatchConnected,
};
pub use subscription::{FeedEvent, StartAt, SubscribeOptions, SubscriptionEvent};
pub use watch::{Change, WatchEvent};
