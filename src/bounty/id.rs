//! Bounty ids: ULIDs whose time is the entry's `created_ms` and whose first random
//! byte is its shard, so an id names the one key range of the log that can hold it
//! (a lookup is one Query, with no index and no extra item per bounty).

/// A new id for a bounty appended to `shard` at `created_ms`.
pub fn bounty_id(created_ms: u64, shard: usize) -> String {
    let shard_byte = u128::from(u8::try_from(shard).unwrap_or(u8::MAX));
    let random = (shard_byte << 72) | (fastrand::u128(..) & ((1u128 << 72) - 1));
    ulid::Ulid::from_parts(created_ms, random).to_string()
}

/// Where the log keeps bounty `id`: `(shard, created_ms)`; `None` if `id` is not one
/// of ours.
pub fn locate(id: &str) -> Option<(usize, u64)> {
    let ulid = ulid::Ulid::from_string(id).ok()?;
    let shard = usize::try_from(ulid.random() >> 72).ok()?;
    Some((shard, ulid.timestamp_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_ulids_that_locate_their_entry() {
        let id = bounty_id(1_800_000_000_123, 63);
        assert_eq!(id.len(), 26);
        assert_eq!(locate(&id), Some((63, 1_800_000_000_123)));
        assert_eq!(
            locate(&id.to_ascii_lowercase()),
            Some((63, 1_800_000_000_123))
        );
        assert!(bounty_id(1_800_000_000_124, 0) > id, "later ids sort after");
        for junk in [
            "",
            "x",
            "01J",
            "not-a-ulid-at-all-0000000000",
            "01ARZ3NDEKTSV4RRFFQ69G5FA!",
        ] {
            assert_eq!(locate(junk), None, "{junk}");
        }
    }
}
