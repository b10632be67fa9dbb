//! `firehose mcp`: an MCP server on stdin/stdout with two tools.
//!
//! - `subscribe_bounties`: opens a subscription and blocks until `max_results` new
//!   matching bounties arrived or `timeout_ms` passed, then returns them. While it
//!   waits it sends MCP progress notifications (when the caller gave a progress token):
//!   one when the stream is connected, one per match, and one every few seconds.
//! - `list_bounties`: one page of the backfill (open bounties that match, newest first).
//!
//! Stdout carries the protocol only; logs go to stderr.

use std::pin::pin;
use std::time::Duration;

use firehose_client::{Bounty, Client, ClientError, Filter, SubscriptionEvent, MAX_PAGE_SIZE};
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
        description = "Wait for NEW bounties matching a filter (category, minimum budget in cents, tags, deadline) and return them: blocks until max_results matches arrive or timeout_ms passes. Only bounties published after the call starts are returned; use list_bounties for ones already open. Reports progress while waiting."
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
        let mut events = pin!(self.client.subscribe_events(filter));
        let mut found: Vec<Bounty> = Vec::new();
        let mut ticker = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
        let timed_out = loop {
            tokio::select! {
                () = cancel.cancelled() => return Err(ErrorData::internal_error("cancelled by the client", None)),
                () = tokio::time::sleep_until(deadline) => break true,
                _ = ticker.tick() => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    progress.report(found.len(), format!("waiting: {} of {wanted} found, {} s left", found.len(), left.as_secs())).await;
                }
                next = events.next() => match next {
                    None => break false,
                    Some(Err(err)) => return Ok(tool_error(err)),
                    Some(Ok(SubscriptionEvent::Connected(_))) => {
                        progress.report(found.len(), format!("subscribed: waiting for {wanted} new matching bounties")).await;
                    }
                    Some(Ok(SubscriptionEvent::Reconnecting { .. })) => {}
                    Some(Ok(SubscriptionEvent::Bounty(bounty))) => {
                        found.push(bounty);
                        progress.report(found.len(), format!("{} of {wanted} found", found.len())).await;
                        if found.len() >= wanted as usize {
                            break false;
                        }
                    }
                },
            }
        };
        Ok(CallToolResult::structured(json!({
            "bounties": found,
            "timed_out": timed_out,
            "waited_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })))
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
                 (budgets are in cents); list_bounties lists those already open.",
            )
    }
}
