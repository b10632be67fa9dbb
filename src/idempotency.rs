//! Idempotent publishing: the `Idempotency-Key`, the request hash, and the replay rule.
//!
//! The key is claimed in the same all-or-nothing write as the bounty (see
//! [`crate::publish::publish`]), so however many requests race with one key,
//! one bounty is written; every other request answers from the claim's record: the
//! same bounty if its body is the same JSON, `idempotency_key_reused` if not. Keys are
//! scoped per publisher and stored only as hashes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bounty::Bounty;
use crate::store::{IdempotencyClaim, IdempotencyRecord};
use crate::{InputError, InputErrorCode};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest accepted `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 255;
/// The header (and so the `param` of its errors).
const HEADER: &str = "Idempotency-Key";

/// An `Idempotency-Key` as the client sent it: 1 to 255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Keys are the client's secrets as much as its ids: never printed.
impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyKey(..)")
    }
}

impl IdempotencyKey {
    /// The key in a header value, if the request has the header.
    pub fn from_header(value: Option<&[u8]>) -> Result<Option<Self>, InputError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let key = std::str::from_utf8(value)
            .ok()
            .map(str::trim)
            .filter(|key| {
                !key.is_empty()
                    && key.len() <= MAX_KEY_LEN
                    && key.bytes().all(|b| (0x20..0x7f).contains(&b))
            })
            .ok_or_else(|| {
                InputError::new(
                    InputErrorCode::InvalidParameter,
                    HEADER,
                    format!("{HEADER} must be 1 to {MAX_KEY_LEN} printable ASCII characters, such as a UUID"),
                )
            })?;
        Ok(Some(Self(key.to_owned())))
    }

    /// The claim this key makes for `request` by `publisher` (the hash of its API key):
    /// keys are per publisher, and neither the key nor the API key is stored in clear.
    pub fn claim(&self, publisher: &[u8], request: &Value, now: DateTime<Utc>) -> IdempotencyClaim {
        IdempotencyClaim {
            key_hash: hex::encode(
                Sha256::new()
                    .chain_update(publisher)
                    .chain_update(self.0.as_bytes())
                    .finalize(),
            ),
            request_sha256: request_sha256(request),
            expires_at: u64::try_from(now.timestamp()).unwrap_or(0) + IDEMPOTENCY_TTL.as_secs(),
        }
    }
}

/// SHA-256 of the body as JSON with object keys sorted: the same request, whatever its
/// whitespace or key order, has the same hash.
pub fn request_sha256(value: &Value) -> String {
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

/// The replay rule: a key seen before answers with its bounty if the request is the
/// same, and is refused if it is not.
pub fn replay(claim: &IdempotencyClaim, record: IdempotencyRecord) -> Result<Bounty, InputError> {
    if record.request_sha256 != claim.request_sha256 {
        return Err(InputError::new(
            InputErrorCode::IdempotencyKeyReused,
            HEADER,
            "this Idempotency-Key was already used with a different body; use a new key for a new bounty",
        ));
    }
    Ok(record.bounty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounty::parse_json;

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

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert_eq!(IdempotencyKey::from_header(None), Ok(None));
        let key = IdempotencyKey::from_header(Some(b" abc-1 ")).expect("valid");
        assert_eq!(key, Some(IdempotencyKey("abc-1".into())));
        assert!(IdempotencyKey::from_header(Some("k".repeat(255).as_bytes())).is_ok());
        for bad in [
            &b""[..],
            b"   ",
            "k".repeat(256).as_bytes(),
            b"caf\xc3\xa9",
            b"a\x01b",
        ] {
            let err = IdempotencyKey::from_header(Some(bad)).expect_err("invalid key");
            assert_eq!(err.code, InputErrorCode::InvalidParameter);
            assert_eq!(err.param, "Idempotency-Key");
        }
    }

    #[test]
    fn a_claim_is_per_publisher_and_holds_no_key_in_clear() {
        let key = IdempotencyKey("secret-key".into());
        let now = Utc::now();
        let body = serde_json::json!({"title": "t"});
        let a = key.claim(b"publisher-a", &body, now);
        let b = key.claim(b"publisher-b", &body, now);
        assert_ne!(a.key_hash, b.key_hash);
        assert!(!a.key_hash.contains("secret-key"));
        assert_eq!(a.request_sha256, b.request_sha256);
        assert_eq!(
            a.expires_at,
            u64::try_from(now.timestamp()).expect("after 1970") + IDEMPOTENCY_TTL.as_secs()
        );
    }
}
