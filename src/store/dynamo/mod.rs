//! The feed store on DynamoDB: one table holding, per shard, a log partition and a
//! head item, plus idempotency claims and stream leases. Item shapes, access patterns
//! and costs are in `docs/storage.md`; each concern's items are in its own file:
//!
//! - `feed.rs`: shard heads and log entries (read, append).
//! - `idempotency.rs`: the claim item an append may write, and its read.
//! - `leases.rs`: per-client stream slots.
//! - `states.rs`: the current state of a bounty that changed since its publish.
//! - [`schema`]: the table itself.
//!
//! This file holds the store, its client and the attribute helpers they share.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;

use crate::store::StoreError;

mod feed;
mod idempotency;
mod leases;
pub mod schema;
mod states;

/// Entries outlive the look-back window by this much, so a stream that lags behind
/// the log (or a publish that took long to commit) still finds them.
pub const RETENTION_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// The DynamoDB feed store.
#[derive(Debug, Clone)]
pub struct DynamoFeedStore {
    client: Client,
    table: String,
    shards: usize,
    retention: Duration,
}

impl DynamoFeedStore {
    /// `lookback` is how far back cursors may reach; entries are kept that long plus
    /// [`RETENTION_MARGIN`].
    pub fn new(
        client: Client,
        table: impl Into<String>,
        shards: usize,
        lookback: Duration,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            shards: shards.max(1),
            retention: lookback + RETENTION_MARGIN,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// A DynamoDB client with short timeouts: a poll that hangs is worse than one that
/// fails, because the stream backs off and tells the subscriber. Region, credentials
/// and `AWS_ENDPOINT_URL_DYNAMODB` come from the SDK's usual sources.
pub async fn client_from_env() -> Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    Client::new(&sdk)
}

/// One item as DynamoDB returns it, or one key of it.
type Item = HashMap<String, AttributeValue>;

/// Keys per `BatchGetItem` request (DynamoDB's limit).
const BATCH_KEYS: usize = 100;
/// Requests for one batch of keys before the keys DynamoDB keeps leaving unprocessed
/// (throttling) fail the read.
const BATCH_ROUNDS: u32 = 4;
/// The wait before asking again for unprocessed keys; it doubles each round.
const UNPROCESSED_WAIT: Duration = Duration::from_millis(25);

impl DynamoFeedStore {
    /// The items of `keys` (no two alike: DynamoDB refuses a request that names a key
    /// twice) that exist, read consistently with `BatchGetItem`, 100 keys a request,
    /// asking again after a short, growing wait for those DynamoDB leaves unprocessed.
    /// The one batched read of the store: bounty states and stream leases use it.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        // One request after the other: callers ask for a few batches at most.
        for chunk in keys.chunks(BATCH_KEYS) {
            let mut keys = chunk.to_vec();
            let mut wait = UNPROCESSED_WAIT;
            for round in 1..=BATCH_ROUNDS {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|err| StoreError::Unavailable {
                        operation: "BatchGetItem",
                        detail: format!("could not build the request: {err}"),
                    })?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|err| unavailable("BatchGetItem", err))?;
                // One table asked for: whatever the answer is keyed by (name or ARN).
                found.extend(
                    output
                        .responses()
                        .into_iter()
                        .flat_map(|tables| tables.values().flatten().cloned()),
                );
                keys = output
                    .unprocessed_keys()
                    .into_iter()
                    .flat_map(|tables| tables.values().flat_map(|k| k.keys().iter().cloned()))
                    .collect();
                if keys.is_empty() {
                    break;
                }
                if round == BATCH_ROUNDS {
                    return Err(StoreError::Unavailable {
                        operation: "BatchGetItem",
                        detail: format!(
                            "{} keys still unprocessed after {BATCH_ROUNDS} requests",
                            keys.len()
                        ),
                    });
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Ok(found)
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn unavailable<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable {
        operation,
        detail: DisplayErrorContext(&err).to_string(),
    }
}

/// A transaction item the SDK refused to build: nothing was sent.
fn unbuildable(what: &str, err: BuildError) -> StoreError {
    StoreError::Unavailable {
        operation: "TransactWriteItems",
        detail: format!("could not build the {what}: {err}"),
    }
}

fn corrupt(key: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        detail: detail.into(),
    }
}
