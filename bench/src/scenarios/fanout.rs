//! [4] Fan-out: many streams with the same filter, served by ONE function process
//! (`AWS_LAMBDA_MAX_CONCURRENCY`, as on Lambda Managed Instances, with the shared
//! read of the log), bounties published at random gaps, each timed from its publish
//! answer to its receipt at every stream. Every stream must get every bounty exactly
//! once and nothing else. Run under `cargo lambda watch` and on the benchmark's own
//! runtime API: the emulator relays every streamed byte, which on two cores bounds
//! the figure (the CPU split says how much).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use firehose_testkit::function::Runtime;

use super::idle_shared::{Via, POLL_MS, WAVE};
use super::{fresh_table, latencies, open_streams, publish_spread_to, Bench, Target};
use crate::client::collect;
use crate::cpu::CpuSplit;
use crate::stats::Summary;
use crate::BoxError;

pub struct FanoutResult {
    pub via: &'static str,
    pub streams: usize,
    pub bounties: usize,
    pub open: Duration,
    pub delivered: usize,
    pub missing: usize,
    pub duplicates: usize,
    /// Bounty events whose id was never published here.
    pub unexpected: usize,
    /// Streams that received every bounty exactly once and nothing else.
    pub complete_streams: usize,
    pub summary: Option<Summary>,
    /// From the first publish to the last stream done, and the CPU spent meanwhile.
    pub seconds: f64,
    pub cpu: CpuSplit,
}

impl FanoutResult {
    pub fn all_once(&self) -> bool {
        self.delivered == self.streams * self.bounties
            && self.missing == 0
            && self.duplicates == 0
            && self.unexpected == 0
            && self.complete_streams == self.streams
    }
}

pub async fn run(bench: &Bench, via: Via) -> Result<FanoutResult, BoxError> {
    let streams = bench.scale.fanout_streams;
    let n = bench.scale.fanout_bounties;
    let table = fresh_table("fanout").await?;
    let target = match via {
        Via::Emulator => Target::Emulator(
            bench
                .function_in(Runtime::Managed, &table, 64, None, Vec::new())
                .await?,
        ),
        Via::Direct => Target::Direct(bench.direct(&table, streams + 16, None, Vec::new()).await?),
    };
    let opening = Instant::now();
    let opened = open_streams(&target, &bench.http, streams, WAVE, |_| {
        "/api/v1/bounties/stream?category=bench&min_budget_cents=100".to_owned()
    })
    .await?;
    let open = opening.elapsed();
    let limit = Duration::from_secs(180 + n as u64 / 5);
    let collectors: Vec<_> = opened
        .into_iter()
        .map(|events| tokio::spawn(collect(events, n, limit)))
        .collect();
    let instances = target.instances();
    let emulator = target.emulator_pid();
    let before = CpuSplit::of(bench.store_pid, &instances, emulator);
    let started = Instant::now();
    let published = publish_spread_to(bench, &target, n, Duration::from_millis(40)).await?;
    let ids: HashSet<&str> = published.iter().map(|(id, _)| id.as_str()).collect();
    let mut samples = Vec::with_capacity(streams * n);
    let (mut missing, mut duplicates, mut unexpected, mut complete) = (0, 0, 0, 0);
    for collector in collectors {
        let received = collector.await?;
        let lost = latencies(&published, &received, &mut samples);
        let strangers = received
            .at
            .keys()
            .filter(|id| !ids.contains(id.as_str()))
            .count();
        if lost == 0 && received.duplicates == 0 && strangers == 0 {
            complete += 1;
        }
        missing += lost;
        duplicates += received.duplicates;
        unexpected += strangers;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = CpuSplit::of(bench.store_pid, &instances, emulator) - before;
    let via_label = target.label();
    drop(target);
    Ok(FanoutResult {
        via: via_label,
        streams,
        bounties: n,
        open,
        delivered: samples.len(),
        missing,
        duplicates,
        unexpected,
        complete_streams: complete,
        summary: Summary::of(&samples),
        seconds,
        cpu,
    })
}

/// The targets: p50 at most poll/2 + 100 ms, p99 at most poll + 300 ms.
pub fn targets_ms() -> (u64, u64) {
    (POLL_MS / 2 + 100, POLL_MS + 300)
}
