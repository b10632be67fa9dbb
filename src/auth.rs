//! Publish API keys. The configuration holds only SHA-256 hashes of the keys; a
//! presented key is hashed and compared with every configured hash in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The accepted key hashes. `Debug` prints only how many there are.
#[derive(Clone, Default)]
pub struct ApiKeys {
    hashes: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} hashes)", self.hashes.len())
    }
}

impl ApiKeys {
    /// Parses a comma-separated list of hex SHA-256 hashes.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut hashes = Vec::new();
        for item in list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(item, &mut hash).map_err(|_| {
                "expected comma-separated SHA-256 hashes, 64 hex characters each (sha256sum of the key)".to_owned()
            })?;
            hashes.push(hash);
        }
        Ok(Self { hashes })
    }

    /// The hash of `key`, as the configuration holds it.
    pub fn hash_hex(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether an `Authorization` header value carries an accepted bearer key.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        self.accepted_hash(authorization).is_some()
    }

    /// The hash of the accepted bearer key in an `Authorization` header value: the
    /// publisher's identity, never the key itself.
    pub fn accepted_hash(&self, authorization: Option<&str>) -> Option<[u8; 32]> {
        let key = authorization.and_then(bearer_token)?;
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Compare against every hash, without stopping early, so timing says nothing.
        let found: bool = self
            .hashes
            .iter()
            .fold(subtle::Choice::from(0), |found, hash| {
                found | hash.ct_eq(&presented)
            })
            .into();
        found.then_some(presented)
    }
}

fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_bearer_keys() {
        let keys = ApiKeys::parse(&format!(
            "{}, {}",
            ApiKeys::hash_hex("one"),
            ApiKeys::hash_hex("two")
        ))
        .expect("valid");
        assert!(keys.accepts(Some("Bearer one")));
        assert!(keys.accepts(Some("bearer   two ")));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer three"),
            Some("Basic one"),
            Some("one"),
        ] {
            assert!(!keys.accepts(bad), "{bad:?}");
        }
        assert!(!ApiKeys::default().accepts(Some("Bearer one")));
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 hashes)");
    }

    #[test]
    fn refuses_malformed_hash_lists() {
        assert!(ApiKeys::parse("abc").is_err());
        assert!(ApiKeys::parse(&"g".repeat(64)).is_err());
        assert_eq!(ApiKeys::parse(" , ").expect("empty is fine").len(), 0);
    }
}
