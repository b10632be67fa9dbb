//! Bounty states on DynamoDB: the current version of a bounty that has changed since
//! its publish.
//!
//! - state: `pk = "bounty#<id>"`, `sk = "state"`, `bounty` (S, the public JSON),
//!   `version` (N), `shard` (N), `position` (S, the sort key of the entry that made
//!   this version), `owner` (S), `expires_at` (N, the TTL)
//!
//! A state is written only in the transaction that appends a change entry
//! (`feed.rs`), conditioned on the version it changes, so the versions of a bounty
//! are dense and in log order. Read with a consistent `BatchGetItem`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put};

use super::{corrupt, n, number, s, string, unavailable, unbuildable, DynamoFeedStore};
use crate::bounty::Bounty;
use crate::cursor::Position;
use crate::store::{Current, NewEntry, StoreError};

pub(super) fn state_pk(id: &str) -> String {
    format!("bounty#{id}")
}

const STATE_SK: &str = "state";
/// Keys per `BatchGetItem` (DynamoDB's limit).
const BATCH_KEYS: usize = 100;
/// Rounds of unprocessed keys (throttling) before the read counts as failed.
const UNPROCESSED_ROUNDS: u32 = 5;

impl DynamoFeedStore {
    /// The put of `entry`'s state, for the same transaction as `entry`: only if the
    /// bounty is still at the version before it (none stored means version 1).
    pub(super) fn state_put(
        &self,
        shard: usize,
        entry: &NewEntry,
        expires_at: u64,
    ) -> Result<Put, StoreError> {
        let bounty = &entry.bounty;
        let json =
            serde_json::to_string(bounty).map_err(|err| corrupt(&bounty.id, err.to_string()))?;
        let previous = bounty.version.saturating_sub(1);
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(state_pk(&bounty.id)))
            .item("sk", s(STATE_SK))
            .item("bounty", s(json))
            .item("version", n(bounty.version))
            .item("shard", n(shard as u64))
            .item("position", s(entry.position.sort_key()))
            .item("expires_at", n(expires_at));
        if let Some(owner) = &entry.owner {
            put = put.item("owner", s(owner.clone()));
        }
        put = if previous <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :previous")
                .expression_attribute_values(":previous", n(previous))
        };
        put.build().map_err(|err| unbuildable("state put", err))
    }

    pub(super) async fn read_states(&self, ids: &[String]) -> Result<Vec<Current>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(BATCH_KEYS) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        ("pk".to_owned(), s(state_pk(id))),
                        ("sk".to_owned(), s(STATE_SK)),
                    ])
                })
                .collect();
            let mut round = 0;
            while !keys.is_empty() {
                if round == UNPROCESSED_ROUNDS {
                    return Err(StoreError::Unavailable {
                        operation: "BatchGetItem",
                        detail: format!("{} keys still unprocessed", keys.len()),
                    });
                }
                if round > 0 {
                    // Throttled: DynamoDB asks for an exponential back-off.
                    tokio::time::sleep(Duration::from_millis(50 << round)).await;
                }
                round += 1;
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
                for item in output
                    .responses()
                    .and_then(|tables| tables.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    found.push(decode_state(item)?);
                }
                keys = output
                    .unprocessed_keys()
                    .and_then(|tables| tables.get(&self.table))
                    .map(|left| left.keys().to_vec())
                    .unwrap_or_default();
            }
        }
        Ok(found)
    }
}

fn decode_state(item: &HashMap<String, AttributeValue>) -> Result<Current, StoreError> {
    let key = string(item, "pk").unwrap_or_default();
    let bounty: Bounty = string(item, "bounty")
        .ok_or_else(|| corrupt(key, "state without bounty"))
        .and_then(|json| serde_json::from_str(json).map_err(|err| corrupt(key, err.to_string())))?;
    let position = string(item, "position")
        .and_then(Position::from_sort_key)
        .ok_or_else(|| corrupt(key, "state without a position"))?;
    let shard = number(item, "shard")
        .and_then(|shard| usize::try_from(shard).ok())
        .ok_or_else(|| corrupt(key, "state without a shard"))?;
    Ok(Current {
        bounty,
        shard,
        position,
        owner: string(item, "owner").map(str::to_owned),
    })
}
