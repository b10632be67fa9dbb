//! `POST /api/v1/tasks`: check the key, the media type and the size, validate the
//! body field by field, append, answer 201 with the bounty. With an
//! `Idempotency-Key`, the key is claimed in the same write as the bounty, so the same
//! key and body answer 200 with that bounty, however many requests race.

use chrono::Utc;
use http::{header, HeaderValue, Response, StatusCode};
use lambda_http::{Body, Request};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::body::ResponseBody;
use super::{ApiError, App, MAX_BODY_BYTES};
use crate::bounty::{parse_json, Bounty, BountyDraft};
use crate::publish::{append, append_claimed, pick_shard, PublishError, IDEMPOTENCY_TTL};
use crate::store::{
    FeedReader, FeedWriter, IdempotencyClaim, IdempotencyRecord, IdempotencyRecords,
};
use crate::{InputError, InputErrorCode};

/// The longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

pub async fn publish<S: FeedReader + FeedWriter + IdempotencyRecords>(
    app: &App<S>,
    req: &Request,
) -> Result<Response<ResponseBody>, ApiError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(publisher) = app.config.publish_keys.accepted_hash(authorization) else {
        return Err(ApiError::Unauthorized);
    };
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let shard = pick_shard(app.store.shard_count());
    let Some(key) = idempotency_key(req)? else {
        let draft = BountyDraft::from_json(body, Utc::now())?;
        let mut published = append(app.store.as_ref(), shard, &[draft]).await?;
        let bounty = published.pop().ok_or(PublishError::BatchSize(0))?;
        tracing::info!(id = %bounty.id, shard, category = %bounty.category, budget_cents = bounty.budget_cents, "bounty published");
        return Ok(answer(StatusCode::CREATED, &bounty));
    };

    // Parsed once: hashed for the claim, then validated if the key is new.
    let value = parse_json(body)?;
    let claim = IdempotencyClaim {
        key_hash: hex::encode(
            Sha256::new()
                .chain_update(publisher)
                .chain_update(key.as_bytes())
                .finalize(),
        ),
        request_sha256: request_sha256(&value),
        expires_at: u64::try_from(Utc::now().timestamp()).unwrap_or(0) + IDEMPOTENCY_TTL.as_secs(),
    };
    // A key seen before answers from its record, without validating the body again
    // (its deadline may have passed since).
    if let Some(record) = app.store.idempotency_record(&claim.key_hash).await? {
        return replay(&claim, record);
    }
    let draft = BountyDraft::from_value(value, Utc::now())?;
    match append_claimed(app.store.as_ref(), shard, draft, &claim).await {
        Ok(bounty) => {
            tracing::info!(id = %bounty.id, shard, category = %bounty.category, budget_cents = bounty.budget_cents, idempotent = true, "bounty published");
            Ok(answer(StatusCode::CREATED, &bounty))
        }
        Err(PublishError::Claimed) => {
            // A racing request with the same key committed first: answer as it did.
            let record = app
                .store
                .idempotency_record(&claim.key_hash)
                .await?
                .ok_or_else(|| crate::store::StoreError::Corrupt {
                    key: "idempotency claim".into(),
                    detail: "claimed but not readable".into(),
                })?;
            replay(&claim, record)
        }
        Err(err) => Err(err.into()),
    }
}

/// The `Idempotency-Key` header, if any: 1 to 255 printable ASCII characters.
fn idempotency_key(req: &Request) -> Result<Option<String>, InputError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| {
            !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
                && key.bytes().all(|b| (0x20..0x7f).contains(&b))
        })
        .ok_or_else(|| {
            InputError::new(
                InputErrorCode::InvalidParameter,
                "Idempotency-Key",
                format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters, such as a UUID"),
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// SHA-256 of the body as JSON with object keys sorted: the same request, whatever its
/// whitespace or key order, has the same hash.
fn request_sha256(value: &Value) -> String {
    let canonical = serde_json::to_vec(&sorted(value.clone())).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The answer to a key seen before: its bounty, or 422 if the body differs.
fn replay(
    claim: &IdempotencyClaim,
    record: IdempotencyRecord,
) -> Result<Response<ResponseBody>, ApiError> {
    if record.request_sha256 != claim.request_sha256 {
        return Err(InputError::new(
            InputErrorCode::IdempotencyKeyReused,
            "Idempotency-Key",
            "this Idempotency-Key was already used with a different body; use a new key for a new bounty",
        )
        .into());
    }
    tracing::info!(id = %record.bounty.id, "idempotent replay");
    let mut response = answer(StatusCode::OK, &record.bounty);
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

fn answer(status: StatusCode, bounty: &Bounty) -> Response<ResponseBody> {
    let mut response = super::body::json_of(status, bounty);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", bounty.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_ignores_whitespace_and_key_order_but_not_values() {
        let request_sha256 =
            |body: &[u8]| parse_json(body).map(|value| super::request_sha256(&value));
        let a = request_sha256(br#"{"title":"t","tags":["a","b"],"x":{"b":1,"a":2}}"#);
        let b = request_sha256(
            b"{ \"x\": {\"a\":2, \"b\":1}, \"tags\": [\"a\",\"b\"], \"title\": \"t\" }",
        );
        let c = request_sha256(br#"{"title":"t","tags":["b","a"],"x":{"b":1,"a":2}}"#);
        assert_eq!(a.clone().expect("json"), b.expect("json"));
        assert_ne!(a.expect("json"), c.expect("json"));
        assert!(request_sha256(b"{").is_err());
    }
}
