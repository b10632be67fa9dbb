//! The feed store on DynamoDB: one table, one log partition and one head item per
//! shard. Item shapes, access patterns and costs are in `docs/storage.md`.
//!
//! - head: `pk = "head#<shard>"`, `sk = "head"`, `seq` (N), `last_ms` (N)
//! - entry: `pk = "feed#<shard>"`, `sk = "<created_ms:13>#<seq:12>"`, `seq` (N),
//!   `id` (S), `bounty` (S, the public JSON), `expires_at` (N, the TTL)

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use crate::bounty::Bounty;
use crate::cursor::Position;
use crate::store::{AppendError, FeedHeads, FeedReader, FeedWriter, LogEntry, Page, StoreError};

mod leases;
pub mod schema;

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

fn head_pk(shard: usize) -> String {
    format!("head#{shard}")
}

const HEAD_SK: &str = "head";

fn feed_pk(shard: usize) -> String {
    format!("feed#{shard}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
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

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn corrupt(key: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        detail: detail.into(),
    }
}

fn decode_entry(item: &HashMap<String, AttributeValue>) -> Result<LogEntry, StoreError> {
    let sk = item
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or_default();
    let position =
        Position::from_sort_key(sk).ok_or_else(|| corrupt(sk, "sort key is not <ms>#<seq>"))?;
    let json = item
        .get("bounty")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt(sk, "no bounty attribute"))?;
    let bounty: Bounty = serde_json::from_str(json).map_err(|err| corrupt(sk, err.to_string()))?;
    Ok(LogEntry { position, bounty })
}

impl FeedHeads for DynamoFeedStore {
    fn shard_count(&self) -> usize {
        self.shards
    }

    async fn head(&self, shard: usize) -> Result<Position, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(head_pk(shard)))
            .key("sk", s(HEAD_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", err))?;
        let Some(item) = output.item() else {
            return Ok(Position::START);
        };
        match (number(item, "last_ms"), number(item, "seq")) {
            (Some(created_ms), Some(seq)) => Ok(Position { created_ms, seq }),
            _ => Err(corrupt(&head_pk(shard), "head without last_ms and seq")),
        }
    }
}

impl FeedReader for DynamoFeedStore {
    async fn read_after(
        &self,
        shard: usize,
        after: Position,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk > :after")
            .expression_attribute_values(":pk", s(feed_pk(shard)))
            .expression_attribute_values(":after", s(after.sort_key()))
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|err| unavailable("Query", err))?;
        let entries = output
            .items()
            .iter()
            .map(decode_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            more: output.last_evaluated_key().is_some(),
            entries,
        })
    }
}

impl FeedWriter for DynamoFeedStore {
    async fn append_after(
        &self,
        shard: usize,
        expected_head: Position,
        entries: Vec<LogEntry>,
    ) -> Result<(), AppendError> {
        let Some(last) = entries.last().map(|entry| entry.position) else {
            return Ok(());
        };
        let build = |what: &str, err: aws_sdk_dynamodb::error::BuildError| {
            AppendError::Store(StoreError::Unavailable {
                operation: "TransactWriteItems",
                detail: format!("could not build the {what}: {err}"),
            })
        };
        // The head moves from `expected_head` to `last` only if nobody moved it first.
        let mut head = Update::builder()
            .table_name(&self.table)
            .key("pk", s(head_pk(shard)))
            .key("sk", s(HEAD_SK))
            .update_expression("SET seq = :seq, last_ms = :last_ms")
            .expression_attribute_values(":seq", n(last.seq))
            .expression_attribute_values(":last_ms", n(last.created_ms));
        head = if expected_head.seq == 0 {
            head.condition_expression("attribute_not_exists(pk)")
        } else {
            head.condition_expression("seq = :expected")
                .expression_attribute_values(":expected", n(expected_head.seq))
        };
        let mut items = vec![TransactWriteItem::builder()
            .update(head.build().map_err(|err| build("head update", err))?)
            .build()];
        for entry in &entries {
            let json = serde_json::to_string(&entry.bounty)
                .map_err(|err| AppendError::Store(corrupt(&entry.bounty.id, err.to_string())))?;
            let expires_at = entry.position.created_ms / 1000 + self.retention.as_secs();
            let put = Put::builder()
                .table_name(&self.table)
                .item("pk", s(feed_pk(shard)))
                .item("sk", s(entry.position.sort_key()))
                .item("seq", n(entry.position.seq))
                .item("id", s(entry.bounty.id.clone()))
                .item("bounty", s(json))
                .item("expires_at", n(expires_at))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|err| build("entry put", err))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let lost_race = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                        cancelled.cancellation_reasons().iter().any(|reason| {
                            matches!(
                                reason.code(),
                                Some("ConditionalCheckFailed" | "TransactionConflict")
                            )
                        })
                    }
                    Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
                    _ => false,
                };
                if lost_race {
                    Err(AppendError::HeadMoved)
                } else {
                    Err(AppendError::Store(unavailable("TransactWriteItems", err)))
                }
            }
        }
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
