//! Bounty states on DynamoDB: the current version of a bounty that has changed since
//! its publish.
//!
//! - state: `pk = "bounty#<id>"`, `sk = "state"`, `bounty` (S, the public JSON),
//!   `version` (N), `shard` (N), `position` (S, the sort key of the entry that made
//!   this version), `owner` (S), `expires_at` (N, the TTL)
//!
//! A state is written only in the transaction that appends a change entry
//! (`feed.rs`), conditioned on the version it changes, so the versions of a bounty
//! are dense and in log order. Read with the store's consistent batched read.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put};

use super::{corrupt, n, number, s, string, unbuildable, DynamoFeedStore};
use crate::bounty::Bounty;
use crate::cursor::Position;
use crate::store::{Current, NewEntry, StoreError};

pub(super) fn state_pk(id: &str) -> String {
    format!("bounty#{id}")
}

const STATE_SK: &str = "state";

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
        let keys = ids
            .iter()
            .map(|id| {
                HashMap::from([
                    ("pk".to_owned(), s(state_pk(id))),
                    ("sk".to_owned(), s(STATE_SK)),
                ])
            })
            .collect();
        self.batch_get(keys)
            .await?
            .iter()
            .map(decode_state)
            .collect()
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
