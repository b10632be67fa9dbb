//! [1] Delivery latency: one stream, bounties published one by one at random
//! gaps, each timed from its publish answer to its receipt.

use std::time::Duration;

use super::{fresh_table, latencies, publish_spread, Bench};
use crate::client::{collect, subscribe};
use crate::stats::Summary;
use crate::BoxError;

pub struct LatencyResult {
    pub poll_ms: u64,
    pub published: usize,
    pub missing: usize,
    pub duplicates: usize,
    pub summary: Option<Summary>,
}

pub async fn run(bench: &Bench, poll_ms: u64) -> Result<LatencyResult, BoxError> {
    let n = bench.scale.latency_bounties;
    let table = fresh_table(&format!("latency-{poll_ms}")).await?;
    let function = bench
        .function(
            &table,
            4,
            None,
            vec![("POLL_INTERVAL_MS", poll_ms.to_string())],
        )
        .await?;
    let events = subscribe(
        &bench.http,
        &function.url("/api/v1/bounties/stream?category=bench"),
    )
    .await?;
    let collector = tokio::spawn(collect(events, n, Duration::from_secs(120 + n as u64)));
    let published = publish_spread(bench, &function, n, Duration::from_millis(100)).await?;
    let received = collector.await?;
    let mut samples = Vec::new();
    let missing = latencies(&published, &received, &mut samples);
    Ok(LatencyResult {
        poll_ms,
        published: n,
        missing,
        duplicates: received.duplicates,
        summary: Summary::of(&samples),
    })
}
