//! [3b] Idle streams in one process: N streams with filters that match nothing,
//! served by ONE function process (`AWS_LAMBDA_MAX_CONCURRENCY`, as on Lambda
//! Managed Instances), with the shared read of the log on and off (`SHARED_READ`).
//! Measured over a window once every stream is connected: the process's CPU and
//! memory, and DynamoDB's requests, counted by a proxy between the function and
//! DynamoDB Local. The CPU of the store, the emulator and the driver is recorded too:
//! on a small machine they share the cores.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firehose_testkit::function::Runtime;
use firehose_testkit::process;
use firehose_testkit::proxy::Proxy;
use futures_util::StreamExt;

use super::{fresh_table, open_streams, Bench, Target};
use crate::cpu::CpuSplit;
use crate::BoxError;

/// Where the process runs: under `cargo lambda watch` or on the benchmark's own
/// runtime API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Emulator,
    Direct,
}

/// Streams opened at once; `cargo lambda watch` 1.9.2 deadlocks past 100 waiting.
pub const WAVE: usize = 50;
/// The function's defaults, which the benchmark keeps.
pub const POLL_MS: u64 = 1000;
pub const FEED_SHARDS: u64 = 1;

pub struct IdleSharedResult {
    pub via: &'static str,
    pub streams: usize,
    pub shared: bool,
    /// Time to open every stream (waves of [`WAVE`]).
    pub open: Duration,
    pub seconds: f64,
    pub processes: usize,
    pub cpu: CpuSplit,
    pub peak_rss_kb: u64,
    pub rss_kb: u64,
    pub requests: BTreeMap<String, u64>,
    /// SSE events received in the window (none expected: nothing is published, and
    /// heartbeats are comments, which the parser does not yield), and streams that
    /// ended in it (none expected).
    pub events: usize,
    pub ended: usize,
}

impl IdleSharedResult {
    pub fn queries_per_second(&self) -> f64 {
        self.requests.get("Query").copied().unwrap_or(0) as f64 / self.seconds
    }

    /// Queries the process may make in the window: FEED_SHARDS per poll interval,
    /// plus one per shard for where the window cuts the cadence.
    pub fn query_allowance(&self) -> u64 {
        FEED_SHARDS * ((self.seconds * 1000.0 / POLL_MS as f64).floor() as u64 + 1)
    }

    pub fn queries(&self) -> u64 {
        self.requests.get("Query").copied().unwrap_or(0)
    }

    /// The function process's CPU, % of one core.
    pub fn cpu_percent(&self) -> f64 {
        self.cpu.percent_over(self.seconds)[1]
    }
}

pub async fn run(
    bench: &Bench,
    via: Via,
    streams: usize,
    shared: bool,
) -> Result<IdleSharedResult, BoxError> {
    let proxy = Proxy::start(&bench.dynamodb_endpoint).await?;
    let table = fresh_table(&format!(
        "idle-{streams}-{}",
        if shared { "on" } else { "off" }
    ))
    .await?;
    let env = vec![
        ("SHARED_READ", if shared { "on" } else { "off" }.to_owned()),
        // No stream reaches its cap while the others open and the window runs.
        ("STREAM_MAX_SECONDS", "890".to_owned()),
    ];
    let target = match via {
        // Under the emulator a stream's invocation frees its worker once the
        // response head is sent, so a few workers open any number of streams.
        Via::Emulator => Target::Emulator(
            bench
                .function_in(Runtime::Managed, &table, 64, Some(&proxy.base), env)
                .await?,
        ),
        // On Lambda (and here) an invocation is busy until its response ends: one
        // worker per stream, and room for more.
        Via::Direct => Target::Direct(
            bench
                .direct(&table, streams + 16, Some(&proxy.base), env)
                .await?,
        ),
    };
    let opening = Instant::now();
    let opened = open_streams(&target, &bench.http, streams, WAVE, |i| {
        format!("/api/v1/bounties/stream?category=idle-nothing-{}", i % 50)
    })
    .await?;
    let open = opening.elapsed();
    let received = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = opened
        .into_iter()
        .map(|mut events| {
            let (received, ended) = (received.clone(), ended.clone());
            tokio::spawn(async move {
                while let Some(Ok(_)) = events.next().await {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                ended.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    // Two poll intervals: every stream has joined the shared read (or polls alone).
    tokio::time::sleep(Duration::from_millis(2 * POLL_MS)).await;
    let instances = target.instances();
    if instances.is_empty() {
        return Err("no firehose-lambda process found".into());
    }
    let emulator = target.emulator_pid();
    let before_cpu = CpuSplit::of(bench.store_pid, &instances, emulator);
    let before_requests = proxy.counts();
    let (before_events, before_ended) = (
        received.load(Ordering::Relaxed),
        ended.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(bench.scale.idle_seconds)).await;
    let cpu = CpuSplit::of(bench.store_pid, &instances, emulator) - before_cpu;
    let after_requests = proxy.counts();
    let seconds = started.elapsed().as_secs_f64();
    let window_events = received.load(Ordering::Relaxed) - before_events;
    let window_ended = ended.load(Ordering::Relaxed) - before_ended;
    let peak_rss_kb = instances
        .iter()
        .filter_map(|pid| process::proc_status_kb(*pid, "VmHWM"))
        .sum();
    let rss_kb = instances
        .iter()
        .filter_map(|pid| process::proc_status_kb(*pid, "VmRSS"))
        .sum();
    let requests = after_requests
        .iter()
        .map(|(op, n)| {
            (
                op.clone(),
                n - before_requests.get(op).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let label = target.label();
    drop(target);
    for reader in readers {
        reader.abort();
    }
    Ok(IdleSharedResult {
        via: label,
        streams,
        shared,
        open,
        seconds,
        processes: instances.len(),
        cpu,
        peak_rss_kb,
        rss_kb,
        requests,
        events: window_events,
        ended: window_ended,
    })
}
