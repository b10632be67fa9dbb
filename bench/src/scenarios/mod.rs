//! The benchmark's scenarios, one file each, and what they share: where the
//! benchmark runs ([`Bench`]), fresh tables, the function under `cargo lambda watch
//! --release` and the latency arithmetic.
//!
//! - [`latency`]: publish-to-receipt time of one stream, at two poll intervals.
//! - [`burst`]: one stream draining a burst written beforehand, against raw reads.
//! - [`idle`]: what an idle stream costs (CPU, memory, DynamoDB requests), alone in
//!   its process (classic) and 1, 100 or 1,000 to a process (managed), with the
//!   shared read of the log on and off.
//! - [`fanout`]: many streams of one process receiving the same publishes.
//! - [`startup`]: cold starts, without the emulator, and the binary's size.

pub mod burst;
pub mod fanout;
pub mod idle;
pub mod idle_shared;
pub mod latency;
pub mod startup;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use firehose::store::dynamo::{client_from_env, schema};
use firehose_testkit::function::{Function, Launch, Runtime};
use http::StatusCode;
use serde_json::Value;

use crate::client::{self, Events, HttpClient};
use crate::runtime_api::Direct;
use crate::settle::wait_idle;
use crate::{BoxError, BENCH_KEY, BINARY};

pub use burst::BurstResult;
pub use fanout::FanoutResult;
pub use idle::IdleResult;
pub use idle_shared::IdleSharedResult;
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
    /// The N of the idle streams served by one process.
    pub idle_streams: Vec<usize>,
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
    /// The environment every benchmark function gets, then `env`.
    fn function_env(
        &self,
        table: &str,
        endpoint: Option<&str>,
        env: Vec<(&str, String)>,
    ) -> Vec<(String, String)> {
        let mut all = vec![
            ("TABLE_NAME".to_owned(), table.to_owned()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB".to_owned(),
                endpoint.unwrap_or(&self.dynamodb_endpoint).to_owned(),
            ),
            (
                "PUBLISH_API_KEY_SHA256".to_owned(),
                firehose::auth::ApiKeys::hash_hex(BENCH_KEY),
            ),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            // Every benchmark stream comes from 127.0.0.1: the per-client cap would
            // refuse the fan-out's streams, which stand for as many clients.
            ("MAX_STREAMS_PER_CLIENT".to_owned(), "10000".to_owned()),
        ];
        all.extend(env.into_iter().map(|(k, v)| (k.to_owned(), v)));
        all
    }

    /// The function under `cargo lambda watch --release` in `runtime` mode: classic,
    /// up to `concurrency` processes of one invocation each; managed, one process
    /// serving up to `concurrency` invocations at once.
    pub async fn function_in(
        &self,
        runtime: Runtime,
        table: &str,
        concurrency: usize,
        endpoint: Option<&str>,
        env: Vec<(&str, String)>,
    ) -> Result<Function, BoxError> {
        let mut launch = Launch::new(BINARY, self.log_dir.join(format!("function-{table}.log")))
            .release(true)
            .runtime(runtime)
            .concurrency(concurrency)
            .ready_within(Duration::from_secs(600));
        for (name, value) in self.function_env(table, endpoint, env) {
            launch = launch.env(name, value);
        }
        let function = launch.start().await?;
        // Ready also means every instance the watcher started has finished its init.
        wait_idle(&function, 0).await?;
        Ok(function)
    }

    /// The classic mode (one invocation per process), as on classic Lambda.
    pub async fn function(
        &self,
        table: &str,
        concurrency: usize,
        endpoint: Option<&str>,
        env: Vec<(&str, String)>,
    ) -> Result<Function, BoxError> {
        self.function_in(Runtime::Classic, table, concurrency, endpoint, env)
            .await
    }

    /// One release process on the benchmark's own runtime API (no emulator),
    /// serving up to `concurrency` invocations at once.
    pub async fn direct(
        &self,
        table: &str,
        concurrency: usize,
        endpoint: Option<&str>,
        env: Vec<(&str, String)>,
    ) -> Result<Direct, BoxError> {
        let binary = self.root.join("target/release").join(BINARY);
        let log = self.log_dir.join(format!("direct-{table}.log"));
        Direct::start(
            &binary,
            &self.function_env(table, endpoint, env),
            concurrency,
            &log,
        )
        .await
    }
}

/// Where a scenario reaches the function.
pub enum Target {
    /// Under `cargo lambda watch`, over HTTP through its Function URL emulation.
    Emulator(Function),
    /// On the benchmark's own runtime API ([`Direct`]).
    Direct(Direct),
}

impl Target {
    /// How the figures name this way of running the function.
    pub fn label(&self) -> &'static str {
        match self {
            Target::Emulator(_) => "cargo lambda watch",
            Target::Direct(_) => "bench runtime API",
        }
    }

    /// The function's processes.
    pub fn instances(&self) -> Vec<u32> {
        match self {
            Target::Emulator(function) => function.instances(),
            Target::Direct(direct) => vec![direct.pid()],
        }
    }

    /// The emulator's process (the root of its tree), if one is in the way.
    pub fn emulator_pid(&self) -> Option<u32> {
        match self {
            Target::Emulator(function) => Some(function.watcher_pid()),
            Target::Direct(_) => None,
        }
    }

    /// Opens a stream at `path_and_query` and reads it up to its `connected` event.
    pub async fn subscribe(
        &self,
        http: &HttpClient,
        path_and_query: &str,
    ) -> Result<Events, BoxError> {
        match self {
            Target::Emulator(function) => {
                client::subscribe(http, &function.url(path_and_query)).await
            }
            Target::Direct(direct) => {
                let answer = direct
                    .request(
                        "GET",
                        path_and_query,
                        &[("accept", "text/event-stream")],
                        None,
                    )
                    .await?;
                let content_type = answer.headers["content-type"].as_str().unwrap_or_default();
                if answer.status != 200 || !content_type.starts_with("text/event-stream") {
                    let status = answer.status;
                    let body = answer.collect().await;
                    return Err(format!(
                        "stream answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    )
                    .into());
                }
                client::until_connected(client::events_from(answer.into_stream())).await
            }
        }
    }

    /// Publishes `body`; returns the bounty id and when the 201 was fully read.
    pub async fn publish(
        &self,
        http: &HttpClient,
        body: &Value,
    ) -> Result<(String, Instant), BoxError> {
        match self {
            Target::Emulator(function) => {
                client::publish(http, &function.base, BENCH_KEY, body).await
            }
            Target::Direct(direct) => {
                let authorization = format!("Bearer {BENCH_KEY}");
                let answer = direct
                    .request(
                        "POST",
                        "/api/v1/tasks",
                        &[
                            ("authorization", &authorization),
                            ("content-type", "application/json"),
                        ],
                        Some(&body.to_string()),
                    )
                    .await?;
                let status = answer.status;
                let bytes = answer.collect().await;
                let answered = Instant::now();
                if status != StatusCode::CREATED.as_u16() {
                    return Err(format!(
                        "publish answered {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    )
                    .into());
                }
                let bounty: Value = serde_json::from_slice(&bytes)?;
                let id = bounty["id"]
                    .as_str()
                    .ok_or("publish answer without an id")?;
                Ok((id.to_owned(), answered))
            }
        }
    }
}

/// Opens `n` streams, `path(i)` each, in waves of `wave` (every stream of a wave
/// connected before the next wave starts): `cargo lambda watch` 1.9.2 deadlocks once
/// more than 100 invocations wait for the function at once.
pub async fn open_streams(
    target: &Target,
    http: &HttpClient,
    n: usize,
    wave: usize,
    path: impl Fn(usize) -> String,
) -> Result<Vec<Events>, BoxError> {
    let mut streams = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + wave.max(1)).min(n);
        let opened = futures_util::future::join_all((start..end).map(|i| {
            let path = path(i);
            async move { target.subscribe(http, &path).await }
        }))
        .await;
        for events in opened {
            streams.push(events?);
        }
        start = end;
    }
    Ok(streams)
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

/// [`publish_spread`] through any [`Target`].
pub async fn publish_spread_to(
    bench: &Bench,
    target: &Target,
    n: usize,
    mean_gap: Duration,
) -> Result<Vec<(String, Instant)>, BoxError> {
    let mut published = Vec::with_capacity(n);
    for i in 0..n {
        random_gap(mean_gap).await;
        published.push(
            target
                .publish(&bench.http, &client::bounty_body(i, "bench"))
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
