//! [3] Idle stream: one stream with nothing to deliver, for a while; the CPU and
//! memory of the instance serving it, and its DynamoDB requests, counted by a proxy
//! between the function and DynamoDB Local.

use std::time::{Duration, Instant};

use firehose_testkit::process;
use firehose_testkit::proxy::Proxy;

use super::{fresh_table, Bench};
use crate::client::subscribe;
use crate::BoxError;

pub struct IdleResult {
    pub seconds: f64,
    pub instances: usize,
    pub cpu_seconds: f64,
    pub peak_rss_kb: u64,
    pub rss_kb: u64,
    pub requests: std::collections::BTreeMap<String, u64>,
    pub heartbeats: usize,
}

impl IdleResult {
    pub fn requests_per_minute(&self) -> f64 {
        self.requests.values().sum::<u64>() as f64 * 60.0 / self.seconds
    }

    pub fn cpu_percent(&self) -> f64 {
        self.cpu_seconds * 100.0 / self.seconds
    }
}

pub async fn run(bench: &Bench) -> Result<IdleResult, BoxError> {
    let proxy = Proxy::start(&bench.dynamodb_endpoint).await?;
    let table = fresh_table("idle").await?;
    // One instance, so the process serving the stream is the one measured.
    let function = bench
        .function(&table, 1, Some(&proxy.base), Vec::new())
        .await?;
    let mut events = subscribe(
        &bench.http,
        &function.url("/api/v1/bounties/stream?category=bench"),
    )
    .await?;
    let seconds = bench.scale.idle_seconds;
    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut frames = 0usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 10);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, events.next()).await {
            frames += 1;
        }
        frames
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let instances = function.instances();
    if instances.is_empty() {
        return Err("no firehose-lambda process found under cargo lambda watch".into());
    }
    let before_cpu = process::cpu_ticks(&instances);
    let before_requests = proxy.counts();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after_cpu = process::cpu_ticks(&instances);
    let after_requests = proxy.counts();
    let elapsed = started.elapsed().as_secs_f64();
    let peak_rss_kb = instances
        .iter()
        .filter_map(|pid| process::proc_status_kb(*pid, "VmHWM"))
        .max()
        .unwrap_or(0);
    let rss_kb = instances
        .iter()
        .filter_map(|pid| process::proc_status_kb(*pid, "VmRSS"))
        .max()
        .unwrap_or(0);
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
    drop(function);
    let frames = reader.await.unwrap_or(0);
    Ok(IdleResult {
        seconds: elapsed,
        instances: instances.len(),
        cpu_seconds: after_cpu.saturating_sub(before_cpu) as f64 / process::clock_ticks() as f64,
        peak_rss_kb,
        rss_kb,
        requests,
        heartbeats: frames,
    })
}
