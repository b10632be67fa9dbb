//! The per-client concurrent stream cap: at most `cap` open streams per client (source
//! IP), across every instance of the function, through [`StreamLeases`].
//!
//! Each client has `cap` slots. Opening a stream reads the client's leases, picks a
//! free slot (never held, released, or lapsed) and claims it with a conditional write;
//! two instances racing for the same slot cannot both win, so the cap holds exactly.
//! A lease lapses `grace` after its stream's own cap, which covers a killed process.
//!
//! Superseding: a stream opened with a cursor that one of the client's open streams
//! issued (its [`StreamTag`]) takes that stream's slot over with one conditional
//! write, instead of taking a new one, so a client that reconnects with its last id is
//! never refused because of the streams it left behind (on AWS a departed client's
//! stream runs on). The stream it supersedes learns it at once when it runs in this
//! process ([`OpenStreams`]), else from its own lease, read at most every
//! `check_every` ([`Lease::superseded`]), and ends.
//! Design and trade-offs: `docs/reliability.md`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::cursor::StreamTag;
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

/// The live lease a stream opened with a cursor tagged `from` supersedes, among a
/// client's `leases` read at `now_ms`: the stream that issued the cursor, or else the
/// stream that was itself opened with that cursor (a client whose reconnect failed
/// before it saw a frame of the new stream comes back with the same cursor again).
pub fn superseded_by<'a>(
    leases: &'a [LeaseRecord],
    from: &StreamTag,
    now_ms: u64,
) -> Option<&'a LeaseRecord> {
    let live = || leases.iter().filter(|l| l.expires_ms > now_ms);
    live()
        .find(|l| l.stream_id == from.as_str())
        .or_else(|| live().find(|l| l.resumed_from.as_deref() == Some(from.as_str())))
}

/// The streams open in this process, by tag: a takeover made here reaches the stream
/// it supersedes at once, without waiting for that stream's next look at its lease.
/// (On classic Lambda a process serves one stream at a time, so this only helps where
/// one process serves several, as on Lambda Managed Instances; the lease check covers
/// the rest.)
#[derive(Debug, Default)]
pub struct OpenStreams {
    open: Mutex<HashMap<StreamTag, Arc<watch::Sender<bool>>>>,
}

impl OpenStreams {
    /// A poisoned lock only means a thread panicked between two plain map operations;
    /// the map is whole.
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<StreamTag, Arc<watch::Sender<bool>>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, tag: &StreamTag, superseded: &Arc<watch::Sender<bool>>) {
        self.open().insert(tag.clone(), superseded.clone());
    }

    fn remove(&self, tag: &StreamTag) {
        self.open().remove(tag);
    }

    /// Tells the stream `stream_id`, if it runs here, that it was superseded.
    fn supersede(&self, stream_id: &str) {
        let Some(tag) = StreamTag::parse(stream_id) else {
            return;
        };
        if let Some(superseded) = self.open().remove(&tag) {
            superseded.send_replace(true);
        }
    }

    /// How many streams are open here.
    pub fn len(&self) -> usize {
        self.open().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Asks for a slot for a new stream of `client`.
pub async fn admit<L: StreamLeases>(
    store: Arc<L>,
    client: &str,
    settings: &CapSettings,
) -> Result<Admission<L>, StoreError> {
    admit_resuming(store, client, settings, None, None).await
}

/// Asks for a slot for a new stream of `client` that starts from a cursor issued by
/// the stream `from` (if it is tagged): if `from` (or a stream opened with its cursor)
/// still holds a lease of this client, the new stream takes that slot over and `from`
/// is superseded; otherwise, a free slot as [`admit`] takes. `open`: the streams of
/// this process, where the new one is registered (and a superseded one told at once).
pub async fn admit_resuming<L: StreamLeases>(
    store: Arc<L>,
    client: &str,
    settings: &CapSettings,
    from: Option<&StreamTag>,
    open: Option<&Arc<OpenStreams>>,
) -> Result<Admission<L>, StoreError> {
    let tag = StreamTag::random();
    let stream_id = tag.as_str().to_owned();
    for _ in 0..CLAIM_ATTEMPTS {
        let now_ms = timefmt::to_millis(Utc::now());
        let leases = store.leases(client).await?;
        let expires_ms = now_ms
            .saturating_add(u64::try_from(settings.stream_max.as_millis()).unwrap_or(u64::MAX))
            .saturating_add(u64::try_from(settings.grace.as_millis()).unwrap_or(u64::MAX));
        let record = |slot| LeaseRecord {
            slot,
            stream_id: stream_id.clone(),
            resumed_from: from.map(|tag| tag.as_str().to_owned()),
            expires_ms,
        };
        let held = from.and_then(|from| superseded_by(&leases, from, now_ms));
        if let Some(held) = held {
            if store
                .take_over(client, held, &record(held.slot), now_ms)
                .await?
            {
                tracing::info!(
                    client,
                    slot = held.slot,
                    stream_id,
                    superseded = held.stream_id,
                    "stream lease taken over: the stream that issued the cursor is superseded"
                );
                if let Some(open) = open {
                    open.supersede(&held.stream_id);
                }
                return Ok(Admission::Admitted(Lease::new(
                    store, client, held.slot, tag, open,
                )));
            }
            // It ended, or another reconnect took it first: read the leases again.
            continue;
        }
        let slots = match plan(&leases, settings, now_ms, |slots| fastrand::shuffle(slots)) {
            Plan::Full { retry_after } => return Ok(Admission::Refused { retry_after }),
            Plan::Claim(slots) => slots,
        };
        // Only the first few: if several are taken under us, read the leases again.
        for slot in slots.into_iter().take(2) {
            if store.claim(client, &record(slot), now_ms).await? {
                tracing::debug!(client, slot, stream_id, "stream lease taken");
                return Ok(Admission::Admitted(Lease::new(
                    store, client, slot, tag, open,
                )));
            }
        }
    }
    // Lost every race: the slots are being taken as fast as we look.
    Ok(Admission::Refused {
        retry_after: Duration::from_secs(1),
    })
}

/// A held slot. Release it with [`Lease::release`]; if it is dropped instead (the
/// runtime drops a stream whose client went away), the release is spawned. A lease
/// taken over by another stream is not released: the slot is that stream's now.
pub struct Lease<L: StreamLeases> {
    store: Arc<L>,
    client: String,
    slot: u32,
    tag: StreamTag,
    released: bool,
    /// Set once the slot passed to a stream that superseded this one.
    superseded: Arc<watch::Sender<bool>>,
    /// The process's open streams, where this one is registered.
    open: Option<Arc<OpenStreams>>,
}

impl<L: StreamLeases> std::fmt::Debug for Lease<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("slot", &self.slot)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl<L: StreamLeases> Lease<L> {
    fn new(
        store: Arc<L>,
        client: &str,
        slot: u32,
        tag: StreamTag,
        open: Option<&Arc<OpenStreams>>,
    ) -> Self {
        let superseded = Arc::new(watch::channel(false).0);
        if let Some(open) = open {
            open.register(&tag, &superseded);
        }
        Lease {
            store,
            client: client.to_owned(),
            slot,
            tag,
            released: false,
            superseded,
            open: open.cloned(),
        }
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The tag of the stream holding this lease: the cursors it sends carry it.
    pub fn tag(&self) -> &StreamTag {
        &self.tag
    }

    /// Whether another stream took this slot over (as far as this stream knows yet).
    pub fn is_superseded(&self) -> bool {
        *self.superseded.borrow()
    }

    /// Completes once another stream took this slot over: at once if the takeover
    /// happened in this process, else at the first look at the lease after it (one
    /// consistent read every `check_every`; a failed read is tried again at the next).
    /// Independent of the lease's own lifetime, so the stream loop can own it.
    pub fn superseded(&self, check_every: Duration) -> impl Future<Output = ()> + Send + 'static {
        let superseded = self.superseded.clone();
        let mut told = superseded.subscribe();
        let store = self.store.clone();
        let client = self.client.clone();
        let slot = self.slot;
        let tag = self.tag.clone();
        async move {
            let here = async {
                // The sender lives as long as this future (it holds it), so this only
                // ends when told.
                if told.wait_for(|superseded| *superseded).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let elsewhere = async {
                loop {
                    tokio::time::sleep(check_every).await;
                    match store.holder(&client, slot).await {
                        Ok(Some(holder)) if holder.stream_id != tag.as_str() => {
                            tracing::info!(slot, stream_id = %tag, by = holder.stream_id, "stream superseded by another instance's takeover");
                            superseded.send_replace(true);
                            return;
                        }
                        Ok(_) => {}
                        // Not a reason to end the stream: look again next time.
                        Err(err) => {
                            tracing::debug!(error = %err, slot, "could not read the stream's lease")
                        }
                    }
                }
            };
            tokio::select! {
                () = here => {}
                () = elsewhere => {}
            }
        }
    }

    /// Frees the slot now (a failure is logged: the lease lapses on its own). Marked
    /// released only once the delete returned: if this future is dropped mid-way (the
    /// body dropped while releasing), `Drop` still releases.
    pub async fn release(mut self) {
        if !self.is_superseded() {
            release_logged(
                self.store.clone(),
                self.client.clone(),
                self.slot,
                self.tag.as_str().to_owned(),
            )
            .await;
        }
        self.released = true;
        self.unregister();
    }

    fn unregister(&self) {
        if let Some(open) = &self.open {
            open.remove(&self.tag);
        }
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
        self.unregister();
        if self.is_superseded() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(slot = self.slot, stream_id = %self.tag, "no runtime to release a stream lease; it lapses on its own");
            return;
        };
        runtime.spawn(release_logged(
            self.store.clone(),
            std::mem::take(&mut self.client),
            self.slot,
            self.tag.as_str().to_owned(),
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
            resumed_from: None,
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
                resumed_from: None,
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

    mod superseding {
        use super::*;
        use crate::store::memory::MemoryStore;
        use std::future::Future;

        const CLIENT: &str = "10.0.0.1";
        const CHECK: Duration = Duration::from_secs(2);

        fn held(
            slot: u32,
            stream_id: &str,
            resumed_from: Option<&str>,
            expires_ms: u64,
        ) -> LeaseRecord {
            LeaseRecord {
                slot,
                stream_id: stream_id.into(),
                resumed_from: resumed_from.map(str::to_owned),
                expires_ms,
            }
        }

        fn tag(text: &str) -> StreamTag {
            StreamTag::parse(text).expect("a tag")
        }

        #[test]
        fn the_issuer_is_superseded_first_then_a_stream_opened_with_its_cursor() {
            let leases = [
                held(0, "a", None, 10_000),
                held(1, "b", Some("a"), 10_000),
                held(2, "c", Some("x"), 4_000),
                held(3, "x", None, 4_000),
            ];
            let slot = |from: &str| superseded_by(&leases, &tag(from), 5_000).map(|l| l.slot);
            assert_eq!(slot("a"), Some(0), "the issuer itself");
            assert_eq!(slot("b"), Some(1));
            // `a` gone: the stream that resumed from a's cursor is the one to replace.
            let without_a = &leases[1..];
            assert_eq!(
                superseded_by(without_a, &tag("a"), 5_000).map(|l| l.slot),
                Some(1)
            );
            // Lapsed leases hold nothing; unknown tags supersede nothing.
            assert_eq!(slot("x"), None);
            assert_eq!(slot("nobody"), None);
        }

        async fn open(
            store: &Arc<MemoryStore>,
            from: Option<&StreamTag>,
            here: &Arc<OpenStreams>,
        ) -> Lease<MemoryStore> {
            match admit_resuming(store.clone(), CLIENT, &SETTINGS, from, Some(here))
                .await
                .expect("store")
            {
                Admission::Admitted(lease) => lease,
                Admission::Refused { retry_after } => {
                    panic!("refused, retry after {retry_after:?}")
                }
            }
        }

        /// Whether `future` has completed by now (polled once, without waiting).
        async fn done(future: &mut std::pin::Pin<Box<impl Future<Output = ()>>>) -> bool {
            tokio::time::timeout(Duration::ZERO, future.as_mut())
                .await
                .is_ok()
        }

        #[tokio::test(start_paused = true)]
        async fn a_reconnect_with_the_last_id_takes_the_slot_over_at_any_count() {
            let store = MemoryStore::new(1);
            let here = Arc::new(OpenStreams::default());
            // The client fills its cap, then reconnects 30 times, each time with the
            // last id it got, leaving each stream behind (as on AWS, where the old
            // streams run on): never refused, never more than the cap held.
            let mut others = Vec::new();
            for _ in 0..2 {
                others.push(open(&store, None, &here).await);
            }
            let mut last = open(&store, None, &here).await;
            let mut left_behind = Vec::new();
            for _ in 0..30 {
                let mut superseded = Box::pin(last.superseded(CHECK));
                assert!(!done(&mut superseded).await);
                let next = open(&store, Some(last.tag()), &here).await;
                assert_eq!(next.slot(), last.slot(), "the same slot, passed on");
                // Same process: told at once, no lease read needed.
                assert!(done(&mut superseded).await, "superseded at once");
                assert!(last.is_superseded());
                left_behind.push(last);
                last = next;
            }
            assert_eq!(store.lease_checks(), 0);
            let leases = store.leases(CLIENT).await.expect("read");
            assert_eq!(leases.len(), 3);
            assert!(leases.iter().any(|l| l.stream_id == last.tag().as_str()));
            // The superseded streams end; their releases leave the new holder alone.
            for old in left_behind {
                old.release().await;
            }
            assert_eq!(store.leases(CLIENT).await.expect("read"), leases);
            assert_eq!(here.len(), 3, "only the live streams are registered");
            // A fresh stream (no cursor) is still refused: the cap holds.
            let refused = admit_resuming(store.clone(), CLIENT, &SETTINGS, None, Some(&here))
                .await
                .expect("store");
            assert!(matches!(refused, Admission::Refused { .. }));
            drop(others);
        }

        #[tokio::test(start_paused = true)]
        async fn a_stream_superseded_from_another_process_learns_it_at_its_next_look() {
            let store = MemoryStore::new(1);
            // Two processes: their own registries, one store.
            let first = Arc::new(OpenStreams::default());
            let second = Arc::new(OpenStreams::default());
            let old = open(&store, None, &first).await;
            // Running, as the stream loop runs it.
            let superseded = tokio::spawn(old.superseded(CHECK));
            // Looks at its lease every CHECK while nobody takes it over.
            tokio::time::sleep(CHECK * 3 + Duration::from_millis(10)).await;
            assert!(!superseded.is_finished());
            assert_eq!(store.lease_checks(), 3);
            let taken_at = tokio::time::Instant::now();
            let new = open(&store, Some(old.tag()), &second).await;
            assert_eq!(new.slot(), old.slot());
            assert!(!old.is_superseded(), "not told: another process");
            superseded.await.expect("the watch");
            assert!(taken_at.elapsed() <= CHECK, "{:?}", taken_at.elapsed());
            assert!(old.is_superseded());
            assert_eq!(store.lease_checks(), 4);
            // Its drop (the runtime dropping its body) does not free the slot it no
            // longer holds.
            let old_tag = old.tag().as_str().to_owned();
            drop(old);
            tokio::task::yield_now().await;
            let leases = store.leases(CLIENT).await.expect("read");
            assert_eq!(leases.len(), 1);
            assert_eq!(leases[0].stream_id, new.tag().as_str());
            assert_eq!(leases[0].resumed_from, Some(old_tag));
        }

        #[tokio::test(start_paused = true)]
        async fn a_cursor_of_a_stream_that_ended_takes_a_free_slot_and_a_repeat_replaces_that_one()
        {
            let store = MemoryStore::new(1);
            let here = Arc::new(OpenStreams::default());
            let ended = open(&store, None, &here).await;
            let ended_tag = ended.tag().clone();
            ended.release().await;
            assert!(store.leases(CLIENT).await.expect("read").is_empty());
            // Its checkpoint's cursor: no stream to supersede, a free slot.
            let first = open(&store, Some(&ended_tag), &here).await;
            let mut first_superseded = Box::pin(first.superseded(CHECK));
            // The client never got a frame of `first` and comes back with the same
            // cursor: `first` is replaced, not left holding a second slot.
            let second = open(&store, Some(&ended_tag), &here).await;
            assert!(done(&mut first_superseded).await);
            assert_eq!(second.slot(), first.slot());
            assert_eq!(store.leases(CLIENT).await.expect("read").len(), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn another_clients_cursor_supersedes_nothing() {
            let store = MemoryStore::new(1);
            let here = Arc::new(OpenStreams::default());
            let theirs =
                match admit_resuming(store.clone(), "10.9.9.9", &SETTINGS, None, Some(&here))
                    .await
                    .expect("store")
                {
                    Admission::Admitted(lease) => lease,
                    Admission::Refused { .. } => panic!("a free slot"),
                };
            let superseded = tokio::spawn(theirs.superseded(CHECK));
            let _ours = open(&store, Some(theirs.tag()), &here).await;
            tokio::time::sleep(CHECK * 2 + Duration::from_millis(10)).await;
            assert!(store.lease_checks() >= 2, "it did look");
            assert!(!superseded.is_finished(), "a cursor is not a credential");
            assert_eq!(store.leases("10.9.9.9").await.expect("read").len(), 1);
            assert_eq!(store.leases(CLIENT).await.expect("read").len(), 1);
        }
    }
}
