//! `firehose mcp`: an MCP server on stdin/stdout with three tools.
//!
//! - `subscribe_bounties`: opens a subscription and blocks until `max_results` new
//!   matching bounties (and, with `include_changes`, changes to matching bounties)
//!   arrived or `timeout_ms` passed, then returns them. While it waits it sends MCP
//!   progress notifications (when the caller gave a progress token): one when the
//!   stream is connected, one per match, and one every few seconds.
//! - `list_bounties`: one page of the backfill (open bounties that match, newest first).
//! - `watch_bounty`: blocks until the next change to one bounty (or `timeout_ms`), then
//!   returns it; progress as for `subscribe_bounties`.
//!
//! Stdout carries the protocol only; logs go to stderr.

use std::pin::pin;
use std::time::Duration;

use firehose_client::{Bounty, Client, ClientError, FeedEvent, Filter, WatchEvent, MAX_PAGE_SIZE};
use futures_util::StreamExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, Implementation, ProgressNotificationParam, ProgressToken, RequestMetaObject,
    ServerCapabilities, ServerConfig,
};
use rmcp::{
    schemars, tool, tool_handler, tool_router, ErrorData, Peer, RoleServer, ServerHandler,
    ServiceExt,
};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::exit::Failure;

const DEFAULT_TIMEOUT_MS: u64 = 240_000;
/// Longer than any MCP client waits for a tool call anyway.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
const MAX_RESULTS: u32 = 100;
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub async fn serve(client: Client) -> Result<(), Failure> {
    let server = FirehoseTools::new(client);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|err| Failure::runtime(format!("MCP handshake failed: {err}")))?;
    running
        .waiting()
        .await
        .map_err(|err| Failure::runtime(format!("MCP server stopped: {err}")))?;
    Ok(())
}

fn one() -> u32 {
    1
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_limit() -> u32 {
    20
}

/// The filter both tools take, as top-level arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FilterParams {
    /// Category slugs; a bounty matches if its category is one of them. Empty: any.
    #[serde(default)]
    pub category: Vec<String>,
    /// Minimum budget in cents (50000 = 500.00).
    #[serde(default)]
    pub min_budget_cents: Option<u64>,
    /// Tag slugs; a bounty matches if it has at least one of them. Empty: any.
    #[serde(default)]
    pub tag: Vec<String>,
    /// RFC 3339: only bounties whose deadline is after this.
    #[serde(default)]
    pub deadline_after: Option<String>,
}

impl From<FilterParams> for Filter {
    fn from(params: FilterParams) -> Filter {
        Filter {
            categories: params.category,
            min_budget_cents: params.min_budget_cents,
            tags: params.tag,
            deadline_after: params.deadline_after,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SubscribeParams {
    #[serde(flatten)]
    pub filter: FilterParams,
    /// Return after this many matching bounties (1 to 100; default 1).
    #[serde(default = "one")]
    pub max_results: u32,
    /// Return after this long even with fewer matches (default 240000 = 4 minutes).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Also return changes to matching bounties (updated, closed) in `changes`; each
    /// counts towards max_results. Default false: new bounties only.
    #[serde(default)]
    pub include_changes: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WatchParams {
    /// The bounty's id.
    pub id: String,
    /// Return after this long if nothing changed (default 240000 = 4 minutes).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The version you already know: if the bounty is already past it, the call
    /// returns at once with the bounty as it is. Without it: the next change from now.
    #[serde(default)]
    pub after_version: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListParams {
    #[serde(flatten)]
    pub filter: FilterParams,
    /// Bounties per page, 1 to 100 (default 20).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// `next_page_token` of the previous page, for the next one.
    #[serde(default)]
    pub page_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FirehoseTools {
    client: Client,
    // Read by the code #[tool_handler] generates, which the lint does not see.
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

impl FirehoseTools {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            tool_router: Self::tool_router(),
        }
    }
}

/// What a bounty's state says happened to it last: `closed` or `expired`, else
/// `updated` (used when the call returns the bounty as it is, not a change it saw).
fn status_change(bounty: &Bounty) -> &'static str {
    match bounty.status.as_str() {
        "closed" => "closed",
        "expired" => "expired",
        _ => "updated",
    }
}

/// A rejection (bad filter and the like) is the caller's to see and fix: a tool-level
/// error with the server's message. Anything else is reported the same way, worded.
fn tool_error(err: ClientError) -> CallToolResult {
    let payload = match &err {
        ClientError::Rejected {
            status,
            code,
            param,
            message,
        } => json!({
            "error": {"status": status, "code": code, "param": param, "message": message}
        }),
        other => json!({"error": {"code": "unavailable", "message": other.to_string()}}),
    };
    CallToolResult::structured_error(payload)
}

struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    total: u32,
}

impl Progress {
    async fn report(&self, found: usize, message: String) {
        if let Some(token) = &self.token {
            let param = ProgressNotificationParam::new(token.clone(), found as f64)
                .with_total(f64::from(self.total))
                .with_message(message);
            if let Err(err) = self.peer.notify_progress(param).await {
                tracing::debug!(%err, "progress notification not sent");
            }
        }
    }
}

#[tool_router]
impl FirehoseTools {
    #[tool(
        description = "Wait for NEW bounties matching a filter (category, minimum budget in cents, tags, deadline) and return them: blocks until max_results matches arrive or timeout_ms passes. Only bounties published after the call starts are returned; use list_bounties for ones already open. Returns {bounties, timed_out, waited_ms}. With include_changes true, changes to matching bounties count too and come in changes: [{change: \"updated\"|\"closed\", bounty}] (the bounty after the change). Reports progress while waiting."
    )]
    async fn subscribe_bounties(
        &self,
        Parameters(params): Parameters<SubscribeParams>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, ErrorData> {
        if !(1..=MAX_RESULTS).contains(&params.max_results) {
            return Err(ErrorData::invalid_params(
                format!(
                    "max_results must be 1 to {MAX_RESULTS} (got {})",
                    params.max_results
                ),
                None,
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&params.timeout_ms) {
            return Err(ErrorData::invalid_params(
                format!(
                    "timeout_ms must be 1 to {MAX_TIMEOUT_MS} (got {})",
                    params.timeout_ms
                ),
                None,
            ));
        }
        let wanted = params.max_results;
        let progress = Progress {
            peer,
            token: meta.get_progress_token(),
            total: wanted,
        };
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_millis(params.timeout_ms);
        let filter = Filter::from(params.filter);
        let include_changes = params.include_changes;
        let mut events = crate::commands::feed(&self.client, filter.into(), include_changes);
        let mut found: Vec<Bounty> = Vec::new();
        let mut changes: Vec<serde_json::Value> = Vec::new();
        let mut ticker = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
        let timed_out = loop {
            let count = found.len() + changes.len();
            tokio::select! {
                () = cancel.cancelled() => return Err(ErrorData::internal_error("cancelled by the client", None)),
                () = tokio::time::sleep_until(deadline) => break true,
                _ = ticker.tick() => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    progress.report(count, format!("waiting: {count} of {wanted} found, {} s left", left.as_secs())).await;
                }
                next = events.next() => {
                    match next {
                        None => break false,
                        Some(Err(err)) => return Ok(tool_error(err)),
                        Some(Ok(FeedEvent::Connected(_))) => {
                            let what = if include_changes { "new matching bounties or changes" } else { "new matching bounties" };
                            progress.report(count, format!("subscribed: waiting for {wanted} {what}")).await;
                            continue;
                        }
                        Some(Ok(FeedEvent::Bounty(bounty))) => found.push(bounty),
                        Some(Ok(FeedEvent::Updated(bounty))) => changes.push(json!({"change": "updated", "bounty": bounty})),
                        Some(Ok(FeedEvent::Closed(bounty))) => changes.push(json!({"change": "closed", "bounty": bounty})),
                        Some(Ok(_)) => continue,
                    }
                    let count = found.len() + changes.len();
                    progress.report(count, format!("{count} of {wanted} found")).await;
                    if count >= wanted as usize {
                        break false;
                    }
                }
            }
        };
        let mut result = json!({
            "bounties": found,
            "timed_out": timed_out,
            "waited_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if include_changes {
            result["changes"] = json!(changes);
        }
        Ok(CallToolResult::structured(result))
    }

    #[tool(
        description = "Wait for the next change to one bounty and return it: blocks until the bounty is updated, closed or expires, or until timeout_ms passes. Returns {change, bounty, final, timed_out, waited_ms}: change is \"updated\", \"closed\" or \"expired\" and bounty the bounty after it; final is true when the bounty can no longer change (closed or expired). On timeout: change null, timed_out true, bounty as it is now. If the bounty was already closed or expired: change null (or its status, with after_version below its version), final true, at once. With after_version, a bounty already past that version returns at once as it is (change: \"updated\" while open). An unknown id is an error (404 not_found)."
    )]
    async fn watch_bounty(
        &self,
        Parameters(params): Parameters<WatchParams>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, ErrorData> {
        if !(1..=MAX_TIMEOUT_MS).contains(&params.timeout_ms) {
            return Err(ErrorData::invalid_params(
                format!(
                    "timeout_ms must be 1 to {MAX_TIMEOUT_MS} (got {})",
                    params.timeout_ms
                ),
                None,
            ));
        }
        let progress = Progress {
            peer,
            token: meta.get_progress_token(),
            total: 1,
        };
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_millis(params.timeout_ms);
        let waited_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut events = pin!(self.client.watch_events(&params.id, None));
        // The bounty as the stream last showed it (at connect or after a change).
        let mut current: Option<Bounty> = None;
        let mut ticker = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Err(ErrorData::internal_error("cancelled by the client", None)),
                () = tokio::time::sleep_until(deadline) => {
                    return Ok(CallToolResult::structured(json!({
                        "change": null, "bounty": current, "final": false, "timed_out": true, "waited_ms": waited_ms(),
                    })));
                }
                _ = ticker.tick() => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    progress.report(0, format!("waiting for a change, {} s left", left.as_secs())).await;
                }
                next = events.next() => match next {
                    // The server answered 204: closed or expired before the call, with
                    // nothing left to report.
                    None => {
                        let bounty = match self.client.get(&params.id).await {
                            Ok(bounty) => bounty,
                            Err(err) => return Ok(tool_error(err)),
                        };
                        let change = params
                            .after_version
                            .filter(|&known| bounty.version > known)
                            .map(|_| status_change(&bounty));
                        return Ok(CallToolResult::structured(json!({
                            "change": change, "final": bounty.is_final(), "bounty": bounty, "timed_out": false, "waited_ms": waited_ms(),
                        })));
                    }
                    Some(Err(err)) => return Ok(tool_error(err)),
                    Some(Ok(WatchEvent::Connected(connected))) => {
                        let bounty = connected.bounty;
                        if params.after_version.is_some_and(|known| bounty.version > known) {
                            return Ok(CallToolResult::structured(json!({
                                "change": status_change(&bounty), "final": bounty.is_final(), "bounty": bounty, "timed_out": false, "waited_ms": waited_ms(),
                            })));
                        }
                        progress.report(0, format!("watching: now version {} ({}); waiting for the next change", bounty.version, bounty.status)).await;
                        current = Some(bounty);
                    }
                    Some(Ok(WatchEvent::Change(change))) => {
                        // Already known, unless it is the expiry, which keeps the version
                        // of the change before it.
                        if !change.is_final() && params.after_version.is_some_and(|known| change.bounty().version <= known) {
                            current = Some(change.into_bounty());
                            continue;
                        }
                        let kind = change.kind();
                        let last = change.is_final();
                        return Ok(CallToolResult::structured(json!({
                            "change": kind, "bounty": change.into_bounty(), "final": last, "timed_out": false, "waited_ms": waited_ms(),
                        })));
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    #[tool(
        description = "List OPEN bounties already published that match a filter (category, minimum budget in cents, tags, deadline), newest first, one page at a time. Returns bounties, next_page_token (null on the last page) and stream_cursor."
    )]
    async fn list_bounties(
        &self,
        Parameters(params): Parameters<ListParams>,
    ) -> Result<CallToolResult, ErrorData> {
        if !(1..=MAX_PAGE_SIZE).contains(&params.limit) {
            return Err(ErrorData::invalid_params(
                format!("limit must be 1 to {MAX_PAGE_SIZE} (got {})", params.limit),
                None,
            ));
        }
        let filter = Filter::from(params.filter);
        match self
            .client
            .list_page(&filter, Some(params.limit), params.page_token.as_deref())
            .await
        {
            Ok(page) => Ok(CallToolResult::structured(json!(page))),
            Err(err) => Ok(tool_error(err)),
        }
    }
}

#[tool_handler]
impl ServerHandler for FirehoseTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("firehose", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Bounties from the firehose. subscribe_bounties waits for new ones that match \
                 (budgets are in cents); list_bounties lists those already open; \
                 watch_bounty waits for the next change to one of them.",
            )
    }
}
