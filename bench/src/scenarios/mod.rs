//! The benchmark's scenarios, one file each, and what they share: where the
//! benchmark runs ([`Bench`]), fresh tables, the function under `cargo lambda watch
//! --release` and the latency arithmetic.
//!
//! - [`latency`]: publish-to-receipt time of one stream, at two poll intervals.
//! - [`burst`]: one stream draining a burst written beforehand, against raw reads.
//! - [`idle`]: what an idle stream costs (CPU, memory, DynamoDB requests).
//! - [`fanout`]: many streams receiving the same publishes.
//! - [`startup`]: cold starts, without the emulator, and the binary's size.

pub mod burst;
pub mod fanout;
pub mod idle;
pub mod latency;
pub mod startup;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use firehose::store::dynamo::{client_from_env, schema};
use firehose_testkit::function::{Function, Launch};

use crate::client::{self, HttpClient};
use crate::settle::wait_idle;
use crate::{BoxError, BENCH_KEY, BINARY};

pub use burst::BurstResult;
pub use fanout::FanoutResult;
pub use idle::IdleResult;
pub use latency::LatencyResult;
pub use startup::StartupResult;

/// Where the benchmark runs: paths, endpoints, scale.
pub struct Bench {
    pub root: PathBuf,
    pub log_dir: PathBuf,
    pub dynamodb_endpoint: String,
    /// DynamoDB Local's process, for the CPU split (`BENCH_STORE_PID`).
    pub store_pid: Option<u32>,
    pub http: HttpClient,
    pub scale: Scale,
}

pub struct Scale {
    pub latency_bounties: usize,
    pub burst_bounties: usize,
    pub burst_rounds: usize,
    pub idle_seconds: u64,
    pub fanout_streams: usize,
    pub fanout_bounties: usize,
    pub start_runs: usize,
}

/// A new table on DynamoDB Local, named for what it holds.
pub async fn fresh_table(label: &str) -> Result<String, BoxError> {
    let table = format!(
        "bench-{label}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    schema::create_table(&client_from_env().await, &table).await?;
    Ok(table)
}

impl Bench {
    pub async fn function(
        &self,
        table: &str,
        concurrency: usize,
        endpoint: Option<&str>,
        env: Vec<(&str, String)>,
    ) -> Result<Function, BoxError> {
        let mut launch = Launch::new(BINARY, self.log_dir.join(format!("function-{table}.log")))
            .release(true)
            .concurrency(concurrency)
            .env("TABLE_NAME", table)
            .env(
                "AWS_ENDPOINT_URL_DYNAMODB",
                endpoint.unwrap_or(&self.dynamodb_endpoint),
            )
            .env(
                "PUBLISH_API_KEY_SHA256",
                firehose::auth::ApiKeys::hash_hex(BENCH_KEY),
            )
            .env("RUST_LOG", "info")
            // Every benchmark stream comes from 127.0.0.1: the per-client cap would
            // refuse the fan-out's 50 streams, which stand for 50 clients.
            .env("MAX_STREAMS_PER_CLIENT", "10000")
            .ready_within(Duration::from_secs(600));
        for (name, value) in env {
            launch = launch.env(name, value);
        }
        let function = launch.start().await?;
        // Ready also means every instance the watcher started has finished its init.
        wait_idle(&function, 0).await?;
        Ok(function)
    }
}

/// A pause of 0 to 2x `mean`, so publishes land at every phase of the poll.
pub async fn random_gap(mean: Duration) {
    tokio::time::sleep(mean.mul_f64(2.0 * fastrand::f64())).await;
}

/// Publishes `n` bench bounties one by one, `random_gap(mean_gap)` apart; returns each
/// id with when its 201 was read.
pub async fn publish_spread(
    bench: &Bench,
    function: &Function,
    n: usize,
    mean_gap: Duration,
) -> Result<Vec<(String, Instant)>, BoxError> {
    let mut published = Vec::with_capacity(n);
    for i in 0..n {
        random_gap(mean_gap).await;
        published.push(
            client::publish(
                &bench.http,
                &function.base,
                BENCH_KEY,
                &client::bounty_body(i, "bench"),
            )
            .await?,
        );
    }
    Ok(published)
}

/// Publish-to-receipt times of `published` at one subscriber; ids it never got are
/// counted as missing. A receipt before the publish answer arrived counts as 0.
pub fn latencies(
    published: &[(String, Instant)],
    received: &client::Received,
    samples: &mut Vec<Duration>,
) -> usize {
    let mut missing = 0;
    for (id, answered) in published {
        match received.at.get(id) {
            Some(at) => samples.push(at.saturating_duration_since(*answered)),
            None => missing += 1,
        }
    }
    missing
}
