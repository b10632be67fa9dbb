//! [2] Burst drain: a burst written straight into the store beforehand, drained by
//! one stream from `since`, in turns with raw reads of the same items (what the store
//! alone takes), with the CPU of each party.

use std::time::{Duration, Instant};

use chrono::Utc;
use firehose::bounty::BountyDraft;
use firehose::cursor::Position;
use firehose::store::dynamo::{client_from_env, DynamoFeedStore};
use firehose::store::FeedReader;

use super::{fresh_table, Bench};
use crate::client::{bounty_body, collect, subscribe};
use crate::cpu::CpuSplit;
use crate::settle::wait_idle;
use crate::{cost, stats, BoxError};

/// One stream draining the burst from `since`.
pub struct Drain {
    pub delivered: usize,
    /// From sending the stream request to parsing the last event.
    pub time: Duration,
    pub first_event: Duration,
}

pub struct BurstResult {
    pub bounties: usize,
    pub write: Duration,
    /// Streams, one after another.
    pub drains: Vec<Drain>,
    pub raw_items: usize,
    /// Raw reads, each read in full: one before every stream and one after the last.
    pub raw_times: Vec<Duration>,
    /// CPU spent during the streams, and during the raw reads, summed.
    pub drain_cpu: CpuSplit,
    pub raw_cpu: CpuSplit,
    pub bytes_per_event: f64,
    pub item_bytes: usize,
}

impl BurstResult {
    pub fn stream_time(&self) -> Duration {
        stats::median(&self.drains.iter().map(|d| d.time).collect::<Vec<_>>()).unwrap_or_default()
    }

    pub fn first_event(&self) -> Duration {
        stats::median(
            &self
                .drains
                .iter()
                .map(|d| d.first_event)
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default()
    }

    pub fn stream_rate(&self) -> f64 {
        self.bounties as f64 / self.stream_time().as_secs_f64()
    }

    pub fn raw_rate(&self) -> f64 {
        let median = stats::median(&self.raw_times).unwrap_or_default();
        self.raw_items as f64 / median.as_secs_f64()
    }

    pub fn all_delivered(&self) -> bool {
        !self.drains.is_empty() && self.drains.iter().all(|d| d.delivered == self.bounties)
    }
}

pub async fn run(bench: &Bench) -> Result<BurstResult, BoxError> {
    let n = bench.scale.burst_bounties;
    let table = fresh_table("burst").await?;
    let store = DynamoFeedStore::new(
        client_from_env().await,
        &table,
        1,
        Duration::from_secs(86_400),
    );
    let since_ms = firehose::timefmt::to_millis(Utc::now()).saturating_sub(1000);
    let now = Utc::now();
    let drafts = (0..n)
        .map(|i| {
            let body = bounty_body(i, "bench").to_string();
            BountyDraft::from_json(body.as_bytes(), now)
        })
        .collect::<Result<Vec<_>, firehose::InputError>>()?;
    let started = Instant::now();
    let mut item_bytes = 0;
    for chunk in drafts.chunks(firehose::publish::MAX_BATCH) {
        let bounties = firehose::publish::append(&store, 0, chunk).await?;
        if let Some(bounty) = bounties.first() {
            item_bytes = cost::item_bytes(&serde_json::to_string(bounty)?);
        }
    }
    let write = started.elapsed();
    eprintln!(
        "bench:     wrote {n} bounties in {:.1} s",
        write.as_secs_f64()
    );

    // DynamoDB Local is a JVM: one read to warm it up, so neither side pays for that.
    raw_read(&store, since_ms).await?;
    // A one-second heartbeat ends each drained stream's invocation soon after its
    // client leaves (at the failed write), so the next stream finds an idle instance.
    let function = bench
        .function(&table, 2, None, vec![("HEARTBEAT_SECONDS", "1".to_owned())])
        .await?;
    let since = firehose::timefmt::format(firehose::timefmt::from_millis(since_ms));
    let url = function.url(&format!("/api/v1/bounties/stream?since={since}"));
    // Streams and raw reads take turns, so that both see the store in the same state
    // (the JVM's warmth, its garbage); the medians are compared.
    let mut raw_items = 0;
    let mut raw_times = Vec::new();
    let mut drains = Vec::new();
    let mut frames = (0usize, 0usize);
    let (mut drain_cpu, mut raw_cpu) = (CpuSplit::default(), CpuSplit::default());
    for round in 0..bench.scale.burst_rounds {
        wait_idle(&function, round).await?;
        let cpu = CpuSplit::now(bench.store_pid, None);
        let (items, raw_time) = raw_read(&store, since_ms).await?;
        raw_cpu += CpuSplit::now(bench.store_pid, None) - cpu;
        raw_items = items;
        raw_times.push(raw_time);
        let cpu = CpuSplit::now(bench.store_pid, Some(&function));
        let opened = Instant::now();
        let events = subscribe(&bench.http, &url).await?;
        let received = collect(events, n, Duration::from_secs(600)).await;
        drain_cpu += CpuSplit::now(bench.store_pid, Some(&function)) - cpu;
        let last = received.last.unwrap_or(opened);
        let first = received.at.values().min().copied().unwrap_or(opened);
        frames = (frames.0 + received.events, frames.1 + received.bytes);
        drains.push(Drain {
            delivered: received.at.len(),
            time: last - opened,
            first_event: first - opened,
        });
    }
    wait_idle(&function, bench.scale.burst_rounds).await?;
    let cpu = CpuSplit::now(bench.store_pid, None);
    let (_, raw_time) = raw_read(&store, since_ms).await?;
    raw_cpu += CpuSplit::now(bench.store_pid, None) - cpu;
    raw_times.push(raw_time);
    drop(function);
    Ok(BurstResult {
        bounties: n,
        write,
        drains,
        raw_items,
        raw_times,
        drain_cpu,
        raw_cpu,
        bytes_per_event: frames.1 as f64 / frames.0.max(1) as f64,
        item_bytes,
    })
}

/// Reads the whole burst the way a stream does (consistent Query after a position,
/// the function's page size), without the function; returns items and time.
async fn raw_read(store: &DynamoFeedStore, since_ms: u64) -> Result<(usize, Duration), BoxError> {
    let started = Instant::now();
    let mut position = Position::before_time(since_ms);
    let mut items = 0;
    loop {
        let page = store
            .read_after(0, position, firehose::http::PAGE_SIZE)
            .await?;
        let Some(last) = page.entries.last() else {
            break;
        };
        position = last.position;
        items += page.entries.len();
        if !page.more {
            break;
        }
    }
    Ok((items, started.elapsed()))
}
