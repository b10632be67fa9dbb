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
//! process, else at the process's next look at its lease, and ends
//! ([`Lease::superseded`]). Both go through [`OpenStreams`], the process's registry of
//! its open streams: one task reads all their leases together every `check_every`
//! (one batch read for up to 100 streams), not one read per stream, so that the cost
//! of watching for takeovers grows with the batches, not with the streams.
//! Design and trade-offs: `docs/reliability.md`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

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

/// The streams open in this process, by tag, each with its lease's (client, slot) and
/// the watch that ends it once superseded.
///
/// A takeover made here reaches the stream it supersedes at once. A takeover made by
/// another process (on classic Lambda every stream runs in its own) is found by the
/// checking task: while any stream is open, it reads every open stream's lease in one
/// [`StreamLeases::holders`] call every `check_every`, and tells each stream whose
/// lease now names another stream. One task and one batch read per process, instead
/// of a loop and a read per stream: with 1,000 idle streams in one process (Lambda
/// Managed Instances) one read per stream was most of the process's CPU. A failed
/// read ends nobody; the next tick reads again. The task starts with the first stream
/// registered and stops at the first tick that finds none open (the next registration
/// starts another), so an idle process does not read the store.
pub struct OpenStreams<L> {
    store: Arc<L>,
    check_every: Duration,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    open: HashMap<StreamTag, OpenStream>,
    /// Set while the checking task runs.
    checking: bool,
    /// Checking tasks started so far (for tests).
    started: u64,
}

/// What the checking task needs of one open stream.
struct OpenStream {
    client: String,
    slot: u32,
    superseded: Arc<watch::Sender<bool>>,
}

impl<L> std::fmt::Debug for OpenStreams<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registry = self.registry();
        f.debug_struct("OpenStreams")
            .field("check_every", &self.check_every)
            .field("open", &registry.open.len())
            .field("checking", &registry.checking)
            .finish_non_exhaustive()
    }
}

impl<L> OpenStreams<L> {
    /// A registry of the streams `store`'s leases are held for, whose leases are read
    /// every `check_every` while any is open.
    pub fn new(store: Arc<L>, check_every: Duration) -> Self {
        OpenStreams {
            store,
            // A zero period would spin (and tokio's interval refuses it).
            check_every: check_every.max(Duration::from_millis(1)),
            registry: Mutex::default(),
        }
    }

    /// A poisoned lock only means a thread panicked between two plain map operations;
    /// the map is whole.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remove(&self, tag: &StreamTag) {
        self.registry().open.remove(tag);
    }

    /// Tells the stream `stream_id`, if it runs here, that it was superseded.
    fn supersede(&self, stream_id: &str) {
        if let Some(tag) = StreamTag::parse(stream_id) {
            self.supersede_tag(&tag);
        }
    }

    fn supersede_tag(&self, tag: &StreamTag) {
        // Out of the registry first: it is no longer watched, and its end unregisters
        // nothing else.
        let removed = self.registry().open.remove(tag);
        if let Some(open) = removed {
            open.superseded.send_replace(true);
        }
    }

    /// How many streams are open here.
    pub fn len(&self) -> usize {
        self.registry().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the checking task runs.
    pub fn checking(&self) -> bool {
        self.registry().checking
    }

    /// How many checking tasks were started so far.
    pub fn started(&self) -> u64 {
        self.registry().started
    }
}

impl<L: StreamLeases> OpenStreams<L> {
    /// Registers the stream `tag` holding `slot` of `client`, and starts the checking
    /// task if none runs. Needs a tokio runtime.
    fn register(
        self: &Arc<Self>,
        tag: &StreamTag,
        client: &str,
        slot: u32,
        superseded: &Arc<watch::Sender<bool>>,
    ) {
        let mut registry = self.registry();
        registry.open.insert(
            tag.clone(),
            OpenStream {
                client: client.to_owned(),
                slot,
                superseded: superseded.clone(),
            },
        );
        // Under the same lock as the task's own decision to stop: a stream registered
        // while it stops finds it stopped and starts the next.
        if !registry.checking {
            registry.checking = true;
            registry.started += 1;
            tokio::spawn(self.clone().check_while_open());
        }
    }

    /// The checking task: every `check_every`, one batch read of every open stream's
    /// lease, until none is open.
    async fn check_while_open(self: Arc<Self>) {
        // A tick late (a slow batch) shifts the next ones rather than bunching them.
        let mut ticks =
            tokio::time::interval_at(Instant::now() + self.check_every, self.check_every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let (tags, keys): (Vec<StreamTag>, Vec<(String, u32)>) = {
                let mut registry = self.registry();
                if registry.open.is_empty() {
                    registry.checking = false;
                    return;
                }
                registry
                    .open
                    .iter()
                    .map(|(tag, open)| (tag.clone(), (open.client.clone(), open.slot)))
                    .unzip()
            };
            let holders = match self.store.holders(&keys).await {
                Ok(holders) => holders,
                // Not a reason to end any stream: look again at the next tick. The
                // keys are clients' addresses: not logged.
                Err(err) => {
                    tracing::warn!(error = %err, streams = keys.len(), "could not read the open streams' leases; looking again at the next check");
                    continue;
                }
            };
            for ((tag, (_, slot)), holder) in tags.iter().zip(&keys).zip(holders) {
                match holder {
                    Some(holder) if holder.stream_id != tag.as_str() => {
                        tracing::info!(slot, stream_id = %tag, by = holder.stream_id, "stream superseded by another instance's takeover");
                        self.supersede_tag(tag);
                    }
                    // Still its own; or gone (lapsed and deleted): nobody took it over.
                    _ => {}
                }
            }
        }
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
/// this process, where the new one is registered (and a superseded one told at once);
/// without it, the lease is not watched for takeovers.
pub async fn admit_resuming<L: StreamLeases>(
    store: Arc<L>,
    client: &str,
    settings: &CapSettings,
    from: Option<&StreamTag>,
    open: Option<&Arc<OpenStreams<L>>>,
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
    open: Option<Arc<OpenStreams<L>>>,
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
        open: Option<&Arc<OpenStreams<L>>>,
    ) -> Self {
        let superseded = Arc::new(watch::channel(false).0);
        if let Some(open) = open {
            open.register(&tag, client, slot, &superseded);
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
    /// happened in this process, else at the process's first look at the leases after
    /// it (every `check_every` of its [`OpenStreams`]; a failed look is tried again at
    /// the next). Never, for a lease admitted without a registry. Independent of the
    /// lease's own lifetime, so the stream loop can own it.
    pub fn superseded(&self) -> impl Future<Output = ()> + Send + 'static {
        let superseded = self.superseded.clone();
        let mut told = superseded.subscribe();
        async move {
            // The sender lives as long as this future (it holds it), so this only ends
            // when told.
            let _sender = superseded;
            if told.wait_for(|superseded| *superseded).await.is_err() {
                std::future::pending::<()>().await;
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

        /// A process's registry of open streams on `store`.
        fn process(store: &Arc<MemoryStore>) -> Arc<OpenStreams<MemoryStore>> {
            Arc::new(OpenStreams::new(store.clone(), CHECK))
        }

        async fn open_for(
            store: &Arc<MemoryStore>,
            client: &str,
            from: Option<&StreamTag>,
            here: &Arc<OpenStreams<MemoryStore>>,
        ) -> Lease<MemoryStore> {
            match admit_resuming(store.clone(), client, &SETTINGS, from, Some(here))
                .await
                .expect("store")
            {
                Admission::Admitted(lease) => lease,
                Admission::Refused { retry_after } => {
                    panic!("refused, retry after {retry_after:?}")
                }
            }
        }

        async fn open(
            store: &Arc<MemoryStore>,
            from: Option<&StreamTag>,
            here: &Arc<OpenStreams<MemoryStore>>,
        ) -> Lease<MemoryStore> {
            open_for(store, CLIENT, from, here).await
        }

        /// Passes `lease`'s slot to a stream of another process, as that process's
        /// takeover would: written to the store, nobody here told.
        async fn take_over_elsewhere(
            store: &Arc<MemoryStore>,
            client: &str,
            lease: &Lease<MemoryStore>,
        ) {
            let now_ms = timefmt::to_millis(Utc::now());
            let held = store
                .leases(client)
                .await
                .expect("read")
                .into_iter()
                .find(|l| l.slot == lease.slot())
                .expect("held");
            let by = LeaseRecord {
                stream_id: StreamTag::random().as_str().to_owned(),
                resumed_from: Some(lease.tag().as_str().to_owned()),
                ..held.clone()
            };
            assert!(store
                .take_over(client, &held, &by, now_ms)
                .await
                .expect("store"));
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
            let here = process(&store);
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
                let mut superseded = Box::pin(last.superseded());
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
            let first = process(&store);
            let second = process(&store);
            let old = open(&store, None, &first).await;
            // Running, as the stream loop runs it.
            let superseded = tokio::spawn(old.superseded());
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
            let here = process(&store);
            let ended = open(&store, None, &here).await;
            let ended_tag = ended.tag().clone();
            ended.release().await;
            assert!(store.leases(CLIENT).await.expect("read").is_empty());
            // Its checkpoint's cursor: no stream to supersede, a free slot.
            let first = open(&store, Some(&ended_tag), &here).await;
            let mut first_superseded = Box::pin(first.superseded());
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
            let here = process(&store);
            let theirs =
                match admit_resuming(store.clone(), "10.9.9.9", &SETTINGS, None, Some(&here))
                    .await
                    .expect("store")
                {
                    Admission::Admitted(lease) => lease,
                    Admission::Refused { .. } => panic!("a free slot"),
                };
            let superseded = tokio::spawn(theirs.superseded());
            let _ours = open(&store, Some(theirs.tag()), &here).await;
            tokio::time::sleep(CHECK * 2 + Duration::from_millis(10)).await;
            assert!(store.lease_checks() >= 2, "it did look");
            assert!(!superseded.is_finished(), "a cursor is not a credential");
            assert_eq!(store.leases("10.9.9.9").await.expect("read").len(), 1);
            assert_eq!(store.leases(CLIENT).await.expect("read").len(), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn one_read_a_tick_finds_every_takeover_made_elsewhere_and_ends_only_those() {
            let store = MemoryStore::new(1);
            let here = process(&store);
            // Five clients with three streams each, all in this process.
            let mut streams = Vec::new();
            for client in 0..5 {
                for _ in 0..SETTINGS.max_per_client {
                    let client = format!("10.0.0.{client}");
                    let lease = open_for(&store, &client, None, &here).await;
                    let superseded = Box::pin(lease.superseded());
                    streams.push((client, lease, superseded));
                }
            }
            assert_eq!(here.len(), 15);
            // Another process takes two of them over, halfway to the first tick.
            tokio::time::sleep(CHECK / 2).await;
            let taken_at = tokio::time::Instant::now();
            for (client, lease, _) in [&streams[4], &streams[11]] {
                take_over_elsewhere(&store, client, lease).await;
            }
            tokio::time::sleep(CHECK / 2 + Duration::from_millis(10)).await;
            assert_eq!(store.lease_checks(), 1, "one read for every open stream");
            assert!(taken_at.elapsed() <= CHECK);
            for (n, (_, lease, superseded)) in streams.iter_mut().enumerate() {
                let taken = n == 4 || n == 11;
                assert_eq!(done(superseded).await, taken, "stream {n}");
                assert_eq!(lease.is_superseded(), taken, "stream {n}");
            }
            assert_eq!(here.len(), 13, "the superseded are no longer watched");
            // The others are left alone at the next ticks too.
            tokio::time::sleep(CHECK * 2).await;
            assert_eq!(store.lease_checks(), 3);
            let superseded = streams.iter().filter(|(_, l, _)| l.is_superseded()).count();
            assert_eq!(superseded, 2);
            assert_eq!(here.len(), 13);
        }

        #[tokio::test(start_paused = true)]
        async fn a_failed_read_ends_nobody_and_the_next_tick_reads_again() {
            let store = MemoryStore::new(1);
            let here = process(&store);
            let kept = open(&store, None, &here).await;
            let taken = open(&store, None, &here).await;
            let mut superseded = Box::pin(taken.superseded());
            take_over_elsewhere(&store, CLIENT, &taken).await;
            store.fail_next_lease_checks(1);
            tokio::time::sleep(CHECK + Duration::from_millis(10)).await;
            assert_eq!(store.lease_checks(), 1);
            assert!(!done(&mut superseded).await, "nothing known yet");
            assert!(!kept.is_superseded());
            assert_eq!(here.len(), 2);
            tokio::time::sleep(CHECK).await;
            assert_eq!(store.lease_checks(), 2);
            assert!(done(&mut superseded).await, "found at the next tick");
            assert!(!kept.is_superseded());
            assert_eq!(here.len(), 1);
        }

        #[tokio::test(start_paused = true)]
        async fn the_leases_are_read_only_while_streams_are_open() {
            let store = MemoryStore::new(1);
            let here = process(&store);
            tokio::time::sleep(CHECK * 3).await;
            assert!(!here.checking());
            assert_eq!(store.lease_checks(), 0, "nothing open, nothing read");
            let a = open(&store, None, &here).await;
            let b = open(&store, None, &here).await;
            assert!(here.checking());
            assert_eq!(here.started(), 1, "one task for every stream");
            tokio::time::sleep(CHECK * 2 + Duration::from_millis(10)).await;
            assert_eq!(store.lease_checks(), 2);
            a.release().await;
            b.release().await;
            assert!(here.is_empty());
            // The next tick finds none open: it reads nothing and stops.
            tokio::time::sleep(CHECK).await;
            assert!(!here.checking());
            tokio::time::sleep(CHECK * 5).await;
            assert_eq!(store.lease_checks(), 2);
            // The next stream starts another task.
            let c = open(&store, None, &here).await;
            assert!(here.checking());
            assert_eq!(here.started(), 2);
            tokio::time::sleep(CHECK + Duration::from_millis(10)).await;
            assert_eq!(store.lease_checks(), 3);
            // A stream dropped rather than released (its client gone) unregisters too.
            drop(c);
            tokio::time::sleep(CHECK).await;
            assert!(!here.checking());
            assert_eq!(store.lease_checks(), 3);
        }
    }
}
