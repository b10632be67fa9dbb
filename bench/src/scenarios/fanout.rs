//! [4] Fan-out: many streams with the same filter, bounties published at random
//! gaps, each timed from its publish answer to its receipt at every stream.

use std::time::Duration;

use super::{fresh_table, latencies, publish_spread, Bench};
use crate::client::{collect, subscribe};
use crate::stats::Summary;
use crate::BoxError;

pub struct FanoutResult {
    pub streams: usize,
    pub bounties: usize,
    pub delivered: usize,
    pub missing: usize,
    pub duplicates: usize,
    pub summary: Option<Summary>,
}

pub async fn run(bench: &Bench) -> Result<FanoutResult, BoxError> {
    let streams = bench.scale.fanout_streams;
    let n = bench.scale.fanout_bounties;
    let table = fresh_table("fanout").await?;
    // One invocation per open stream, plus room for the publishes.
    let function = bench
        .function(&table, streams + 6, None, Vec::new())
        .await?;
    let url = function.url("/api/v1/bounties/stream?category=bench&min_budget_cents=100");
    let subscriptions =
        futures_util::future::join_all((0..streams).map(|_| subscribe(&bench.http, &url))).await;
    let mut collectors = Vec::new();
    for events in subscriptions {
        collectors.push(tokio::spawn(collect(
            events?,
            n,
            Duration::from_secs(180 + n as u64 / 5),
        )));
    }
    let published = publish_spread(bench, &function, n, Duration::from_millis(40)).await?;
    let mut samples = Vec::new();
    let mut missing = 0;
    let mut duplicates = 0;
    for collector in collectors {
        let received = collector.await?;
        missing += latencies(&published, &received, &mut samples);
        duplicates += received.duplicates;
    }
    Ok(FanoutResult {
        streams,
        bounties: n,
        delivered: samples.len(),
        missing,
        duplicates,
        summary: Summary::of(&samples),
    })
}
