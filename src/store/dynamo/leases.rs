//! Stream leases on DynamoDB: one item per (client, slot), in the feed's table.
//!
//! - lease: `pk = "lease#<client>"`, `sk = "slot#<slot:05>"`, `stream_id` (S, the
//!   holder's tag), `resumed_from` (S, optional: the tag of the cursor the holder was
//!   opened with), `expires_ms` (N), `expires_at` (N, the TTL, only to clean up:
//!   lapsed leases are free as soon as `expires_ms` passes, whether or not TTL has
//!   deleted them yet)
//!
//! Admission is one consistent Query on the client's partition plus one conditional
//! PutItem (a claim of a free slot, or a takeover of a superseded stream's); release is
//! one conditional DeleteItem. To learn whether they were superseded, the streams open
//! in one process have their leases read together, consistently, with BatchGetItem
//! (100 keys a request, DynamoDB's limit), not one GetItem each.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{n, number, s, string, unavailable, DynamoFeedStore};
use crate::store::{LeaseRecord, StoreError, StreamLeases};

fn lease_pk(client: &str) -> String {
    format!("lease#{client}")
}

fn slot_sk(slot: u32) -> String {
    format!("slot#{slot:05}")
}

type Key = HashMap<String, AttributeValue>;

fn key(client: &str, slot: u32) -> Key {
    HashMap::from([
        ("pk".to_owned(), s(lease_pk(client))),
        ("sk".to_owned(), s(slot_sk(slot))),
    ])
}

fn decode(item: &HashMap<String, AttributeValue>) -> Option<LeaseRecord> {
    let slot = item
        .get("sk")?
        .as_s()
        .ok()?
        .strip_prefix("slot#")?
        .parse()
        .ok()?;
    let stream_id = item.get("stream_id")?.as_s().ok()?.clone();
    let resumed_from = item
        .get("resumed_from")
        .and_then(|value| value.as_s().ok())
        .cloned();
    let expires_ms = number(item, "expires_ms")?;
    Some(LeaseRecord {
        slot,
        stream_id,
        resumed_from,
        expires_ms,
    })
}

impl DynamoFeedStore {
    /// A PutItem of `lease` for `client`, without its condition yet.
    fn put_lease(&self, client: &str, lease: &LeaseRecord) -> PutItemFluentBuilder {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(lease_pk(client)))
            .item("sk", s(slot_sk(lease.slot)))
            .item("stream_id", s(lease.stream_id.clone()))
            .item("expires_ms", n(lease.expires_ms))
            .item("expires_at", n(lease.expires_ms.div_ceil(1000)));
        match &lease.resumed_from {
            Some(tag) => put.item("resumed_from", s(tag.clone())),
            None => put,
        }
    }
}

/// True when a conditional PutItem failed only because its condition did not hold.
fn lost(err: &aws_sdk_dynamodb::error::SdkError<PutItemError>) -> bool {
    matches!(
        err.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

impl StreamLeases for DynamoFeedStore {
    async fn leases(&self, client: &str) -> Result<Vec<LeaseRecord>, StoreError> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(lease_pk(client)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| unavailable("Query", err))?;
            for item in output.items() {
                match decode(item) {
                    Some(lease) => leases.push(lease),
                    None => tracing::warn!(client, "ignoring a lease item in an unknown shape"),
                }
            }
            match output.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(leases),
            }
        }
    }

    async fn claim(
        &self,
        client: &str,
        lease: &LeaseRecord,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let outcome = self
            .put_lease(client, lease)
            .condition_expression("attribute_not_exists(pk) OR expires_ms < :now")
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(err) if lost(&err) => Ok(false),
            Err(err) => Err(unavailable("PutItem", err)),
        }
    }

    async fn take_over(
        &self,
        client: &str,
        held: &LeaseRecord,
        lease: &LeaseRecord,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let lease = LeaseRecord {
            slot: held.slot,
            ..lease.clone()
        };
        // Exactly when a claim of this slot would fail because `held` holds it: two
        // reconnects racing for one stream's slot cannot both win it.
        let outcome = self
            .put_lease(client, &lease)
            .condition_expression("stream_id = :holder AND expires_ms >= :now")
            .expression_attribute_values(":holder", s(held.stream_id.clone()))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(err) if lost(&err) => Ok(false),
            Err(err) => Err(unavailable("PutItem", err)),
        }
    }

    async fn holders(
        &self,
        keys: &[(String, u32)],
    ) -> Result<Vec<Option<LeaseRecord>>, StoreError> {
        // BatchGetItem refuses a request that names one key twice.
        let mut distinct: Vec<&(String, u32)> = keys.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let request = distinct
            .iter()
            .map(|(client, slot)| key(client, *slot))
            .collect();
        let mut found = HashMap::with_capacity(distinct.len());
        for item in self.batch_get(request).await? {
            let client = string(&item, "pk").and_then(|pk| pk.strip_prefix("lease#"));
            match (client, decode(&item)) {
                (Some(client), Some(lease)) => {
                    found.insert((client.to_owned(), lease.slot), lease);
                }
                _ => tracing::warn!("ignoring a lease item in an unknown shape"),
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn release(&self, client: &str, slot: u32, stream_id: &str) -> Result<(), StoreError> {
        let outcome = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(lease_pk(client)))
            .key("sk", s(slot_sk(slot)))
            .condition_expression("stream_id = :me")
            .expression_attribute_values(":me", s(stream_id))
            .send()
            .await;
        match outcome {
            // Already gone, or lapsed and taken by another stream: not ours to delete.
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable("DeleteItem", err)),
        }
    }
}
