//! Test harness: real DynamoDB Local, the real function under `cargo lambda watch`,
//! real HTTP, and a real SSE parser (`eventsource-stream`).
//!
//! `scripts/test` installs DynamoDB Local and cargo-lambda and exports:
//! - `FIREHOSE_TEST_DYNAMODB_ENDPOINT`: a shared in-memory DynamoDB Local;
//! - `FIREHOSE_TEST_DYNAMODB_DIR`: its jar folder, for tests that need their own
//!   instance (to stop and restart it);
//! - `PATH` with `cargo-lambda` on it.
//!
//! Every test gets its own table and its own function process, so tests run in
//! parallel without seeing each other's bounties.
//!
//! The tooling (DynamoDB Local, the launcher, the fault proxy) is firehose-testkit's;
//! what is here is the tests' vocabulary: publishing, subscribing, the error answer.

#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod dynamo;
pub mod function;
pub mod sse;

pub use firehose_testkit::dynamo_local::DynamoLocal;
pub use firehose_testkit::proxy::{Fault, Proxy};
pub use function::Function;
pub use sse::Subscriber;

use std::time::Duration;

use serde_json::{json, Value};

/// Asserts the contract's error answer (status, JSON, code, param and a message a
/// person can act on) and returns its headers and body.
pub async fn expect_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
    param: Option<&str>,
) -> (reqwest::header::HeaderMap, Value) {
    let headers = response.headers().clone();
    let got = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(got, status, "{body}");
    assert_eq!(headers["content-type"], "application/json", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["param"].as_str(), param, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() > 10),
        "{body}"
    );
    (headers, body)
}

/// The publish key every test function accepts.
pub const TEST_KEY: &str = "test-publish-key";

/// A valid publish body for `category`, with a budget and tags.
pub fn bounty_body(title: &str, category: &str, budget_cents: u64, tags: &[&str]) -> Value {
    json!({
        "title": title,
        "description": "published by a test",
        "category": category,
        "budget_cents": budget_cents,
        "tags": tags,
        "deadline": "2099-01-01T00:00:00Z",
    })
}

/// A validated draft of [`bounty_body`], for appending through the store directly.
pub fn draft(title: &str, category: &str) -> firehose::bounty::BountyDraft {
    let body = bounty_body(title, category, 100, &[]).to_string();
    firehose::bounty::BountyDraft::from_json(body.as_bytes(), chrono::Utc::now())
        .expect("a valid draft")
}

/// An HTTP client for the tests (no pooling surprises across restarts).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("reqwest client")
}

/// Runs `op` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = op().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
