//! firehose's benchmark driver. `scripts/bench` builds the release binary, starts
//! DynamoDB Local, exports its endpoint (`AWS_ENDPOINT_URL_DYNAMODB`) and runs this;
//! it starts the function under `cargo lambda watch --release` itself, measures over
//! real HTTP with a real SSE parser, prints a table and writes the figures as Markdown
//! (and JSON) for docs/benchmarks.md.
//!
//! Usage: firehose-bench --markdown PATH --json PATH
//!
//! Scale (environment, defaults are the documented run):
//! BENCH_LATENCY_BOUNTIES (200), BENCH_BURST_BOUNTIES (10000), BENCH_BURST_ROUNDS (5),
//! BENCH_IDLE_SECONDS (60), BENCH_FANOUT_STREAMS (50), BENCH_FANOUT_BOUNTIES (500),
//! BENCH_START_RUNS (10).

mod client;
mod cost;
mod cpu;
mod report;
mod runtime_api;
mod settle;
mod stats;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use firehose::bounty::BountyDraft;
use firehose::cursor::Position;
use firehose::store::dynamo::{client_from_env, schema, DynamoFeedStore};
use firehose::store::FeedReader;
use serde_json::{json, Value};

use client::{bounty_body, collect, http_client, publish, subscribe, HttpClient};
use cpu::CpuSplit;
use firehose_testkit::function::{Function, Launch};
use firehose_testkit::process;
use firehose_testkit::proxy::Proxy;
use settle::wait_idle;
use stats::Summary;

/// The publish key the benchmark's functions accept.
pub const BENCH_KEY: &str = "bench-publish-key";
/// The name of the function's binary (and so of its instance processes).
pub const BINARY: &str = "firehose-lambda";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the benchmark runs: paths, endpoints, scale.
struct Bench {
    root: PathBuf,
    log_dir: PathBuf,
    dynamodb_endpoint: String,
    /// DynamoDB Local's process, for the CPU split (`BENCH_STORE_PID`).
    store_pid: Option<u32>,
    http: HttpClient,
    scale: Scale,
}

struct Scale {
    latency_bounties: usize,
    burst_bounties: usize,
    burst_rounds: usize,
    idle_seconds: u64,
    fanout_streams: usize,
    fanout_bounties: usize,
    start_runs: usize,
}

fn env_number(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("{name} must be a positive whole number, got {value:?}").into()
            })
        }
        _ => Ok(default),
    }
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("firehose-bench: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .ok_or_else(|| {
                BoxError::from(format!(
                    "usage: firehose-bench --markdown PATH --json PATH (missing {flag})"
                ))
            })
    };
    let markdown_path = arg("--markdown")?;
    let json_path = arg("--json")?;
    let root = firehose_testkit::workspace_root();
    let dynamodb_endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").map_err(|_| {
        "AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local (scripts/bench sets it)"
    })?;
    let bench = Bench {
        log_dir: root.join(".local/logs/bench"),
        root,
        dynamodb_endpoint,
        store_pid: std::env::var("BENCH_STORE_PID")
            .ok()
            .and_then(|pid| pid.parse().ok()),
        http: http_client(),
        scale: Scale {
            latency_bounties: env_number("BENCH_LATENCY_BOUNTIES", 200)?,
            burst_bounties: env_number("BENCH_BURST_BOUNTIES", 10_000)?,
            burst_rounds: env_number("BENCH_BURST_ROUNDS", 5)?.max(1),
            idle_seconds: env_number("BENCH_IDLE_SECONDS", 60)? as u64,
            fanout_streams: env_number("BENCH_FANOUT_STREAMS", 50)?,
            fanout_bounties: env_number("BENCH_FANOUT_BOUNTIES", 500)?,
            start_runs: env_number("BENCH_START_RUNS", 10)?,
        },
    };

    let mut results = report::Results::default();
    for poll_ms in [1000, 250] {
        eprintln!("bench: [1] latency at POLL_INTERVAL_MS={poll_ms}");
        results.latency.push(latency(&bench, poll_ms).await?);
    }
    eprintln!(
        "bench: [2] burst drain of {} bounties",
        bench.scale.burst_bounties
    );
    results.burst = Some(burst(&bench).await?);
    eprintln!("bench: [3] idle stream for {} s", bench.scale.idle_seconds);
    results.idle = Some(idle(&bench).await?);
    eprintln!(
        "bench: [4] fan-out: {} streams, {} bounties",
        bench.scale.fanout_streams, bench.scale.fanout_bounties
    );
    results.fanout = Some(fanout(&bench).await?);
    eprintln!(
        "bench: [5] start-up ({} cold starts)",
        bench.scale.start_runs
    );
    results.startup = Some(startup(&bench).await?);

    let markdown = report::markdown(&results);
    println!("{}", report::table(&results));
    std::fs::write(&markdown_path, markdown)?;
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(&results))?,
    )?;
    Ok(())
}

/// A new table on DynamoDB Local, named for what it holds.
async fn fresh_table(label: &str) -> Result<String, BoxError> {
    let table = format!(
        "bench-{label}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    schema::create_table(&client_from_env().await, &table).await?;
    Ok(table)
}

impl Bench {
    async fn function(
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
async fn random_gap(mean: Duration) {
    tokio::time::sleep(mean.mul_f64(2.0 * fastrand::f64())).await;
}

/// Publish-to-receipt times of `published` at one subscriber; ids it never got are
/// counted as missing. A receipt before the publish answer arrived counts as 0.
fn latencies(
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

pub struct LatencyResult {
    pub poll_ms: u64,
    pub published: usize,
    pub missing: usize,
    pub duplicates: usize,
    pub summary: Option<Summary>,
}

async fn latency(bench: &Bench, poll_ms: u64) -> Result<LatencyResult, BoxError> {
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
    let mut published = Vec::with_capacity(n);
    for i in 0..n {
        random_gap(Duration::from_millis(100)).await;
        published.push(
            publish(
                &bench.http,
                &function.base,
                BENCH_KEY,
                &bounty_body(i, "bench"),
            )
            .await?,
        );
    }
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

async fn burst(bench: &Bench) -> Result<BurstResult, BoxError> {
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

async fn idle(bench: &Bench) -> Result<IdleResult, BoxError> {
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

pub struct FanoutResult {
    pub streams: usize,
    pub bounties: usize,
    pub delivered: usize,
    pub missing: usize,
    pub duplicates: usize,
    pub summary: Option<Summary>,
}

async fn fanout(bench: &Bench) -> Result<FanoutResult, BoxError> {
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
    let mut published = Vec::with_capacity(n);
    for i in 0..n {
        random_gap(Duration::from_millis(40)).await;
        published.push(
            publish(
                &bench.http,
                &function.base,
                BENCH_KEY,
                &bounty_body(i, "bench"),
            )
            .await?,
        );
    }
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

pub struct StartupResult {
    pub runs: usize,
    pub init: Summary,
    pub first_response: Summary,
    pub binary_bytes: u64,
    pub stripped_bytes: Option<u64>,
}

async fn startup(bench: &Bench) -> Result<StartupResult, BoxError> {
    let binary = bench.root.join("target/release").join(BINARY);
    let binary_bytes = std::fs::metadata(&binary)
        .map_err(|err| format!("{}: {err}", binary.display()))?
        .len();
    let stripped_bytes = stripped_size(&binary, &bench.log_dir);
    let table = fresh_table("startup").await?;
    let event = stream_event();
    let env = vec![
        ("TABLE_NAME", table.clone()),
        (
            "PUBLISH_API_KEY_SHA256",
            firehose::auth::ApiKeys::hash_hex(BENCH_KEY),
        ),
    ];
    let mut init = Vec::new();
    let mut first_response = Vec::new();
    for run in 0..bench.scale.start_runs {
        let log = bench.log_dir.join(format!("startup-{run}.log"));
        let sample = runtime_api::cold_start(&binary, &env, &event, &log).await?;
        init.push(sample.init);
        first_response.push(sample.first_response);
    }
    Ok(StartupResult {
        runs: bench.scale.start_runs,
        init: Summary::of(&init).ok_or("no start-up sample")?,
        first_response: Summary::of(&first_response).ok_or("no start-up sample")?,
        binary_bytes,
        stripped_bytes,
    })
}

/// The size after `strip` (the release profile strips already; this checks it).
fn stripped_size(binary: &Path, scratch: &Path) -> Option<u64> {
    let copy = scratch.join("firehose-lambda.stripped");
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(binary)
        .status()
        .ok()?;
    let size = status
        .success()
        .then(|| std::fs::metadata(&copy).ok().map(|m| m.len()))??;
    let _ = std::fs::remove_file(&copy);
    Some(size)
}

/// A Function URL event opening a stream with no filter (as a first request would).
fn stream_event() -> String {
    let now = Utc::now();
    let event: Value = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/api/v1/bounties/stream",
        "rawQueryString": "",
        "headers": {
            "host": "bench.lambda-url.us-east-1.on.aws",
            "accept": "text/event-stream",
            "x-forwarded-proto": "https",
            "x-forwarded-for": "127.0.0.1"
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "bench",
            "domainName": "bench.lambda-url.us-east-1.on.aws",
            "domainPrefix": "bench",
            "http": {
                "method": "GET",
                "path": "/api/v1/bounties/stream",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "firehose-bench"
            },
            "requestId": ulid::Ulid::new().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "isBase64Encoded": false
    });
    event.to_string()
}
