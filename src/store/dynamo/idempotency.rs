//! Idempotency claims on DynamoDB: one item per claimed key, in the feed's table.
//!
//! - claim: `pk = "idem#<key hash>"`, `sk = "idem"`, `request_sha256` (S),
//!   `bounty` (S, the public JSON of the bounty it created), `expires_at` (N, the TTL)
//!
//! A claim is written only inside an append's transaction (see [`super::feed`]), so
//! the bounty and its claim exist together or not at all; it is read back here.

use aws_sdk_dynamodb::types::Put;

use super::{corrupt, n, s, string, unavailable, unbuildable, DynamoFeedStore};
use crate::bounty::Bounty;
use crate::store::{IdempotencyClaim, IdempotencyRecord, IdempotencyRecords, StoreError};

fn idem_pk(key_hash: &str) -> String {
    format!("idem#{key_hash}")
}

const IDEM_SK: &str = "idem";

impl DynamoFeedStore {
    /// The put of `claim`'s item, recording `bounty`, for an append's transaction: on
    /// condition that the key is not claimed yet.
    pub(super) fn claim_put(
        &self,
        claim: &IdempotencyClaim,
        bounty: &Bounty,
    ) -> Result<Put, StoreError> {
        let json =
            serde_json::to_string(bounty).map_err(|err| corrupt(&bounty.id, err.to_string()))?;
        Put::builder()
            .table_name(&self.table)
            .item("pk", s(idem_pk(&claim.key_hash)))
            .item("sk", s(IDEM_SK))
            .item("request_sha256", s(claim.request_sha256.clone()))
            .item("bounty", s(json))
            .item("expires_at", n(claim.expires_at))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|err| unbuildable("idempotency claim put", err))
    }
}

impl IdempotencyRecords for DynamoFeedStore {
    async fn idempotency_record(
        &self,
        key_hash: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = idem_pk(key_hash);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key.clone()))
            .key("sk", s(IDEM_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", err))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let request_sha256 = string(item, "request_sha256")
            .ok_or_else(|| corrupt(&key, "claim without request_sha256"))?;
        let json = string(item, "bounty").ok_or_else(|| corrupt(&key, "claim without bounty"))?;
        let bounty = serde_json::from_str(json).map_err(|err| corrupt(&key, err.to_string()))?;
        Ok(Some(IdempotencyRecord {
            request_sha256: request_sha256.to_owned(),
            bounty,
        }))
    }
}
