//! Shard heads and log entries on DynamoDB.
//!
//! - head: `pk = "head#<shard>"`, `sk = "head"`, `seq` (N), `last_ms` (N)
//! - entry: `pk = "feed#<shard>"`, `sk = "<created_ms:13>#<seq:12>"`, `seq` (N),
//!   `id` (S), `bounty` (S, the public JSON), `expires_at` (N, the TTL), `txn` (S, the
//!   append's token); a publish also `owner` (S), a change `kind` (S: `updated`,
//!   `closed`)
//!
//! Reads are consistent Queries on one side of a sort key; an append is one
//! transaction that moves the head on condition and puts the entries (a change also
//! its bounty's state, `states.rs`; with an idempotency key, the claim of
//! [`super::idempotency`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::{corrupt, n, number, s, string, unavailable, unbuildable, DynamoFeedStore};
use crate::bounty::Bounty;
use crate::cursor::{Position, MAX_SEQ};
use crate::store::{
    AppendError, Current, EntryKind, FeedHeads, FeedReader, FeedWriter, IdempotencyClaim, LogEntry,
    NewEntry, Page, StoreError, Unreadable,
};

fn head_pk(shard: usize) -> String {
    format!("head#{shard}")
}

const HEAD_SK: &str = "head";

fn feed_pk(shard: usize) -> String {
    format!("feed#{shard}")
}

/// An entry with a key out of shape is corrupt (the page cannot be placed in the log);
/// one whose bounty does not decode is an entry all the same, marked unreadable.
fn decode_entry(item: &HashMap<String, AttributeValue>) -> Result<LogEntry, StoreError> {
    let sk = string(item, "sk").unwrap_or_default();
    let position =
        Position::from_sort_key(sk).ok_or_else(|| corrupt(sk, "sort key is not <ms>#<seq>"))?;
    let kind = match string(item, "kind") {
        None => Ok(EntryKind::Published),
        Some(kind) => EntryKind::parse(kind).ok_or_else(|| format!("unknown kind {kind:?}")),
    };
    let bounty = match string(item, "bounty") {
        None => Err("no bounty attribute".to_owned()),
        Some(json) => serde_json::from_str::<Bounty>(json).map_err(|err| err.to_string()),
    }
    .and_then(|bounty| kind.clone().map(|_| bounty))
    .map_err(|detail| Unreadable {
        id: string(item, "id").map(str::to_owned),
        detail,
    });
    Ok(LogEntry {
        position,
        kind: kind.unwrap_or(EntryKind::Published),
        bounty,
    })
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

impl DynamoFeedStore {
    /// One consistent Query of `shard`'s log on one side of `bound`: `sk > bound` in
    /// log order, or `sk < bound` newest first.
    async fn read_page(
        &self,
        shard: usize,
        bound: Position,
        forward: bool,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let condition = if forward {
            "pk = :pk AND sk > :bound"
        } else {
            "pk = :pk AND sk < :bound"
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(condition)
            .expression_attribute_values(":pk", s(feed_pk(shard)))
            .expression_attribute_values(":bound", s(bound.sort_key()))
            .scan_index_forward(forward)
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

impl FeedReader for DynamoFeedStore {
    async fn read_after(
        &self,
        shard: usize,
        after: Position,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.read_page(shard, after, true, limit).await
    }

    async fn read_before(
        &self,
        shard: usize,
        before: Position,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.read_page(shard, before, false, limit).await
    }

    async fn find(
        &self,
        shard: usize,
        created_ms: u64,
        id: &str,
    ) -> Result<Option<Current>, StoreError> {
        if shard >= self.shards {
            return Ok(None);
        }
        // Every entry created in that millisecond: a batch at most, usually one.
        let first = Position { created_ms, seq: 0 };
        let last = Position {
            created_ms,
            seq: MAX_SEQ,
        };
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            // The publish, not a change made in the same millisecond.
            .filter_expression("id = :id AND attribute_not_exists(kind)")
            .expression_attribute_values(":pk", s(feed_pk(shard)))
            .expression_attribute_values(":first", s(first.sort_key()))
            .expression_attribute_values(":last", s(last.sort_key()))
            .expression_attribute_values(":id", s(id))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| unavailable("Query", err))?;
            if let Some(item) = page.items().first() {
                let entry = decode_entry(item)?;
                return match entry.bounty {
                    Ok(bounty) => Ok(Some(Current {
                        bounty,
                        shard,
                        position: entry.position,
                        owner: string(item, "owner").map(str::to_owned),
                    })),
                    Err(unreadable) => Err(corrupt(&entry.position.sort_key(), unreadable.detail)),
                };
            }
        }
        Ok(None)
    }

    async fn states(&self, ids: &[String]) -> Result<Vec<Current>, StoreError> {
        self.read_states(ids).await
    }
}

impl FeedWriter for DynamoFeedStore {
    async fn append_after(
        &self,
        shard: usize,
        expected_head: Position,
        entries: Vec<NewEntry>,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<(), AppendError> {
        let Some(last) = entries.last().map(|entry| entry.position) else {
            return Ok(());
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
            .update(
                head.build()
                    .map_err(|err| unbuildable("head update", err))?,
            )
            .build()];
        // One token for every send of this transaction: DynamoDB treats a resend with
        // the same token as the same transaction (for 10 minutes), so a resend after a
        // lost answer cannot append the entries a second time. Kept on the entries, so
        // that an append whose answer was lost can be recognised as ours.
        let token = ulid::Ulid::new().to_string();
        let mut state_indexes = Vec::new();
        for entry in &entries {
            let json = serde_json::to_string(&entry.bounty)
                .map_err(|err| AppendError::Store(corrupt(&entry.bounty.id, err.to_string())))?;
            // Kept for the look-back window (resumes) and at least until the deadline
            // (the backfill lists open bounties, and `GET /api/v1/tasks/{id}` finds them).
            let expires_at = (entry.position.created_ms / 1000 + self.retention.as_secs())
                .max(u64::try_from(entry.bounty.deadline.timestamp()).unwrap_or(0));
            let mut put = Put::builder()
                .table_name(&self.table)
                .item("pk", s(feed_pk(shard)))
                .item("sk", s(entry.position.sort_key()))
                .item("seq", n(entry.position.seq))
                .item("id", s(entry.bounty.id.clone()))
                .item("bounty", s(json))
                .item("expires_at", n(expires_at))
                .item("txn", s(token.clone()))
                .condition_expression("attribute_not_exists(pk)");
            match entry.kind {
                EntryKind::Published => {
                    if let Some(owner) = &entry.owner {
                        put = put.item("owner", s(owner.clone()));
                    }
                }
                kind => put = put.item("kind", s(kind.as_str())),
            }
            let put = put.build().map_err(|err| unbuildable("entry put", err))?;
            items.push(TransactWriteItem::builder().put(put).build());
            if entry.kind != EntryKind::Published {
                let state = self.state_put(shard, entry, expires_at)?;
                items.push(TransactWriteItem::builder().put(state).build());
                state_indexes.push(items.len() - 1);
            }
        }
        if let (Some(claim), Some(first)) = (claim, entries.first()) {
            let put = self.claim_put(claim, &first.bounty)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let claim_index = claim.map(|_| items.len() - 1);
        let mut unsure: Option<String> = None;
        for send in 0..SENDS {
            if send > 0 {
                tokio::time::sleep(RESEND_WAIT * (1 << (send - 1))).await;
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .send()
                .await;
            match outcome(result, claim_index, &state_indexes) {
                Outcome::Committed => return Ok(()),
                Outcome::Refused(err) => {
                    if unsure.is_none() {
                        return Err(err);
                    }
                    // An earlier send may have committed: this refusal can be our own
                    // entries seen again (a store that does not honour the token).
                    return match self.committed(shard, &entries, &token).await? {
                        true => Ok(()),
                        false => Err(err),
                    };
                }
                Outcome::Unknown(detail) => {
                    tracing::warn!(shard, send, error = %detail, "append outcome unknown; sending the same transaction again");
                    unsure = Some(detail);
                }
            }
        }
        // Still unknown: look before answering.
        if self.committed(shard, &entries, &token).await? {
            return Ok(());
        }
        Err(AppendError::Store(StoreError::Unavailable {
            operation: "TransactWriteItems",
            detail: format!(
                "no answer after {SENDS} sends, and the entries are not in the log: {}",
                unsure.unwrap_or_default()
            ),
        }))
    }
}

/// Sends of one append transaction (the SDK's own retries come on top of each).
const SENDS: u32 = 3;
/// The wait before the second send; it doubles before each next one.
const RESEND_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// What a send of an append transaction says about it.
enum Outcome {
    Committed,
    /// Not committed, for sure (as far as this send knows).
    Refused(AppendError),
    /// It may or may not have committed: a timeout, a lost connection, a 5xx, or
    /// DynamoDB still running an earlier send of it (`TransactionInProgress`).
    Unknown(String),
}

fn outcome<R: std::fmt::Debug + Send + Sync + 'static>(
    result: Result<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
        SdkError<TransactWriteItemsError, R>,
    >,
    claim_index: Option<usize>,
    state_indexes: &[usize],
) -> Outcome {
    let err = match result {
        Ok(_) => return Outcome::Committed,
        Err(err) => err,
    };
    match &err {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                let reasons = cancelled.cancellation_reasons();
                // Reasons come in item order; the claim is the last item.
                let claim_taken = claim_index
                    .and_then(|index| reasons.get(index))
                    .is_some_and(|reason| reason.code() == Some("ConditionalCheckFailed"));
                if claim_taken {
                    return Outcome::Refused(AppendError::Claimed);
                }
                let version_moved = state_indexes.iter().any(|index| {
                    reasons
                        .get(*index)
                        .is_some_and(|reason| reason.code() == Some("ConditionalCheckFailed"))
                });
                if version_moved {
                    return Outcome::Refused(AppendError::VersionMoved);
                }
                let lost_race = reasons.iter().any(|reason| {
                    matches!(
                        reason.code(),
                        Some("ConditionalCheckFailed" | "TransactionConflict")
                    )
                });
                if lost_race {
                    Outcome::Refused(AppendError::HeadMoved)
                } else {
                    Outcome::Refused(AppendError::Store(unavailable("TransactWriteItems", err)))
                }
            }
            TransactWriteItemsError::TransactionInProgressException(_)
            | TransactWriteItemsError::InternalServerError(_) => {
                Outcome::Unknown(DisplayErrorContext(&err).to_string())
            }
            // Throttled, invalid, or refused otherwise: not executed.
            _ => Outcome::Refused(AppendError::Store(unavailable("TransactWriteItems", err))),
        },
        // The request may have reached DynamoDB and committed; its answer was lost.
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) | SdkError::DispatchFailure(_) => {
            Outcome::Unknown(DisplayErrorContext(&err).to_string())
        }
        _ => Outcome::Refused(AppendError::Store(unavailable("TransactWriteItems", err))),
    }
}

impl DynamoFeedStore {
    /// Whether the first of `entries` is in the log as ours (written by the append with
    /// `token`, or, for entries written before tokens were kept, its id at its
    /// position), read consistently: the way to find out what happened to an append
    /// whose answer was lost.
    async fn committed(
        &self,
        shard: usize,
        entries: &[NewEntry],
        token: &str,
    ) -> Result<bool, AppendError> {
        let Some(first) = entries.first() else {
            return Ok(true);
        };
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(feed_pk(shard)))
            .key("sk", s(first.position.sort_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| AppendError::Store(unavailable("GetItem", err)))?;
        let ours = item.item().is_some_and(|item| match string(item, "txn") {
            Some(txn) => txn == token,
            None => string(item, "id") == Some(first.bounty.id.as_str()),
        });
        tracing::info!(
            shard,
            seq = first.position.seq,
            ours,
            "looked for an append whose answer was lost"
        );
        Ok(ours)
    }
}
