//! The per-client concurrent stream cap: at most `cap` open streams per client (source
//! IP), across every instance of the function, through [`StreamLeases`].
//!
//! Each client has `cap` slots. Opening a stream reads the client's leases, picks a
//! free slot (never held, released, or lapsed) and claims it with a conditional write;
//! two instances racing for the same slot cannot both win, so the cap holds exactly.
//! A lease lapses `grace` after its stream's own cap, which covers a killed process.
//! Design and trade-offs: `docs/reliability.md`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::store::{LeaseRecord, StoreError, StreamLeases};
use crate::timefmt;

/// Claims lost to concurrent openers before giving up with a refusal.
const CLAIM_ATTEMPTS: usize = 4;

/// How leases are taken.
#[derive(Debug, Clone, Copy)]
pub struct CapSettings {
    /// Open streams allowed per client.
    pub max_per_client: u32,
    /// How long a stream may stay open (its own cap).
    pub stream_max: Duration,
    /// How long after the stream's cap its lease lapses if it is never released.
    pub grace: Duration,
}

/// The outcome of asking to open a stream.
pub enum Admission<L: StreamLeases> {
    Admitted(Lease<L>),
    /// Over the cap: try again after this long (when the earliest stream closes).
    Refused {
        retry_after: Duration,
    },
}

/// What to do next, given a client's leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Claim one of these free slots (try them in this order).
    Claim(Vec<u32>),
    /// Every slot is held; the earliest holder's stream closes after this long.
    Full { retry_after: Duration },
}

/// Decides from `leases` (as read at `now_ms`) whether a slot is free. `pick` shuffles
/// the free slots, so that concurrent openers rarely race for the same one.
pub fn plan(
    leases: &[LeaseRecord],
    settings: &CapSettings,
    now_ms: u64,
    pick: impl FnOnce(&mut Vec<u32>),
) -> Plan {
    let live: Vec<&LeaseRecord> = leases.iter().filter(|l| l.expires_ms > now_ms).collect();
    let mut free: Vec<u32> = (0..settings.max_per_client)
        .filter(|slot| !live.iter().any(|l| l.slot == *slot))
        .collect();
    // Lowering the cap leaves leases above it; they still count.
    if free.is_empty() || live.len() >= settings.max_per_client as usize {
        let grace_ms = u64::try_from(settings.grace.as_millis()).unwrap_or(u64::MAX);
        let earliest_close = live
            .iter()
            .map(|l| l.expires_ms.saturating_sub(grace_ms))
            .min()
            .unwrap_or(now_ms);
        let wait_ms = earliest_close.saturating_sub(now_ms);
        // Whole seconds for Retry-After, at least one.
        let seconds = wait_ms.div_ceil(1000).max(1);
        return Plan::Full {
            retry_after: Duration::from_secs(seconds),
        };
    }
    pick(&mut free);
    Plan::Claim(free)
}

/// Asks for a slot for a new stream of `client`.
pub async fn admit<L: StreamLeases>(
    store: Arc<L>,
    client: &str,
    settings: &CapSettings,
) -> Result<Admission<L>, StoreError> {
    let stream_id = ulid::Ulid::new().to_string();
    for _ in 0..CLAIM_ATTEMPTS {
        let now_ms = timefmt::to_millis(Utc::now());
        let leases = store.leases(client).await?;
        let slots = match plan(&leases, settings, now_ms, |slots| fastrand::shuffle(slots)) {
            Plan::Full { retry_after } => return Ok(Admission::Refused { retry_after }),
            Plan::Claim(slots) => slots,
        };
        let expires_ms = now_ms
            .saturating_add(u64::try_from(settings.stream_max.as_millis()).unwrap_or(u64::MAX))
            .saturating_add(u64::try_from(settings.grace.as_millis()).unwrap_or(u64::MAX));
        // Only the first few: if several are taken under us, read the leases again.
        for slot in slots.into_iter().take(2) {
            let record = LeaseRecord {
                slot,
                stream_id: stream_id.clone(),
                expires_ms,
            };
            if store.claim(client, &record, now_ms).await? {
                tracing::debug!(client, slot, stream_id, "stream lease taken");
                return Ok(Admission::Admitted(Lease {
                    store,
                    client: client.to_owned(),
                    slot,
                    stream_id,
                    released: false,
                }));
            }
        }
    }
    // Lost every race: the slots are being taken as fast as we look.
    Ok(Admission::Refused {
        retry_after: Duration::from_secs(1),
    })
}

/// A held slot. Release it with [`Lease::release`]; if it is dropped instead (the
/// runtime drops a stream whose client went away), the release is spawned.
pub struct Lease<L: StreamLeases> {
    store: Arc<L>,
    client: String,
    slot: u32,
    stream_id: String,
    released: bool,
}

impl<L: StreamLeases> std::fmt::Debug for Lease<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("slot", &self.slot)
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}

impl<L: StreamLeases> Lease<L> {
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Frees the slot now (a failure is logged: the lease lapses on its own). Marked
    /// released only once the delete returned: if this future is dropped mid-way (the
    /// body dropped while releasing), `Drop` still releases.
    pub async fn release(mut self) {
        release_logged(
            self.store.clone(),
            self.client.clone(),
            self.slot,
            self.stream_id.clone(),
        )
        .await;
        self.released = true;
    }
}

async fn release_logged<L: StreamLeases>(
    store: Arc<L>,
    client: String,
    slot: u32,
    stream_id: String,
) {
    match store.release(&client, slot, &stream_id).await {
        Ok(()) => tracing::debug!(slot, stream_id, "stream lease released"),
        Err(err) => {
            tracing::warn!(error = %err, slot, stream_id, "could not release a stream lease; it lapses on its own")
        }
    }
}

impl<L: StreamLeases> Drop for Lease<L> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(slot = self.slot, stream_id = %self.stream_id, "no runtime to release a stream lease; it lapses on its own");
            return;
        };
        runtime.spawn(release_logged(
            self.store.clone(),
            std::mem::take(&mut self.client),
            self.slot,
            std::mem::take(&mut self.stream_id),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: CapSettings = CapSettings {
        max_per_client: 3,
        stream_max: Duration::from_secs(270),
        grace: Duration::from_secs(30),
    };

    fn lease(slot: u32, expires_ms: u64) -> LeaseRecord {
        LeaseRecord {
            slot,
            stream_id: format!("s{slot}"),
            expires_ms,
        }
    }

    #[test]
    fn free_slots_are_offered() {
        let plan = plan(&[lease(1, 10_000)], &SETTINGS, 5_000, |_| {});
        assert_eq!(plan, Plan::Claim(vec![0, 2]));
    }

    #[test]
    fn lapsed_leases_free_their_slot() {
        let leases = [lease(0, 4_000), lease(1, 10_000), lease(2, 5_000)];
        assert_eq!(
            plan(&leases, &SETTINGS, 5_000, |_| {}),
            Plan::Claim(vec![0, 2])
        );
    }

    #[test]
    fn full_says_when_the_earliest_stream_closes() {
        // Closes at expires - grace: 40_500 - 30_000 = 10_500, i.e. 5.5 s from now.
        let leases = [lease(0, 40_500), lease(1, 90_000), lease(2, 60_000)];
        assert_eq!(
            plan(&leases, &SETTINGS, 5_000, |_| {}),
            Plan::Full {
                retry_after: Duration::from_secs(6)
            }
        );
        // A stream past its cap but not yet released: retry in a second.
        let leases = [lease(0, 6_000), lease(1, 90_000), lease(2, 60_000)];
        assert_eq!(
            plan(&leases, &SETTINGS, 5_000, |_| {}),
            Plan::Full {
                retry_after: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn leases_above_a_lowered_cap_still_count() {
        let leases = [lease(0, 9_000), lease(4, 9_000), lease(7, 9_000)];
        assert!(matches!(
            plan(&leases, &SETTINGS, 5_000, |_| {}),
            Plan::Full { .. }
        ));
    }

    mod admission {
        use super::*;
        use crate::store::memory::MemoryStore;

        async fn open(store: &Arc<MemoryStore>, client: &str) -> Admission<MemoryStore> {
            admit(store.clone(), client, &SETTINGS)
                .await
                .expect("store")
        }

        #[tokio::test]
        async fn a_client_gets_its_slots_then_a_refusal_until_one_is_released() {
            let store = MemoryStore::new(1);
            let mut held = Vec::new();
            for _ in 0..SETTINGS.max_per_client {
                match open(&store, "10.0.0.1").await {
                    Admission::Admitted(lease) => held.push(lease),
                    Admission::Refused { .. } => panic!("a slot is free"),
                }
            }
            let mut slots: Vec<u32> = held.iter().map(Lease::slot).collect();
            slots.sort_unstable();
            assert_eq!(slots, [0, 1, 2]);
            let Admission::Refused { retry_after } = open(&store, "10.0.0.1").await else {
                panic!("over the cap");
            };
            // The earliest stream closes at its own cap, 270 s from now.
            assert!(
                (Duration::from_secs(269)..=Duration::from_secs(270)).contains(&retry_after),
                "{retry_after:?}"
            );
            assert!(
                matches!(open(&store, "10.0.0.2").await, Admission::Admitted(_)),
                "another client has slots of its own"
            );

            let released = held.pop().expect("held");
            let freed = released.slot();
            released.release().await;
            let Admission::Admitted(again) = open(&store, "10.0.0.1").await else {
                panic!("a slot was released");
            };
            assert_eq!(again.slot(), freed, "the one free slot");
            assert_eq!(store.leases("10.0.0.1").await.expect("read").len(), 3);
        }

        #[tokio::test]
        async fn a_lease_is_released_only_by_its_stream_and_lapsed_ones_are_taken() {
            let store = MemoryStore::new(1);
            let lease = |stream_id: &str, expires_ms| LeaseRecord {
                slot: 0,
                stream_id: stream_id.into(),
                expires_ms,
            };
            assert!(store
                .claim("c", &lease("a", 10_000), 5_000)
                .await
                .expect("claim"));
            assert!(!store
                .claim("c", &lease("b", 20_000), 9_000)
                .await
                .expect("claim"));
            store.release("c", 0, "b").await.expect("release");
            assert_eq!(
                store.leases("c").await.expect("read"),
                [lease("a", 10_000)],
                "not b's to release"
            );
            assert!(store
                .claim("c", &lease("b", 20_000), 10_001)
                .await
                .expect("claim"));
            store.release("c", 0, "a").await.expect("release");
            assert_eq!(store.leases("c").await.expect("read"), [lease("b", 20_000)]);
            store.release("c", 0, "b").await.expect("release");
            assert!(store.leases("c").await.expect("read").is_empty());
        }
    }
}
