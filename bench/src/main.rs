//! firehose's benchmark driver. `scripts/bench` builds the release binary, starts
//! DynamoDB Local, exports its endpoint (`AWS_ENDPOINT_URL_DYNAMODB`) and runs this;
//! it starts the function under `cargo lambda watch --release` itself, measures over
//! real HTTP with a real SSE parser, prints a table and writes the figures as Markdown
//! (and JSON) for docs/benchmarks.md. Each measurement is a file of `scenarios/`;
//! this runs them in order and writes the report.
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
mod scenarios;
mod settle;
mod stats;

use std::path::PathBuf;

use client::http_client;
use scenarios::{burst, fanout, idle, latency, startup, Bench, Scale};

/// The publish key the benchmark's functions accept.
pub const BENCH_KEY: &str = "bench-publish-key";
/// The name of the function's binary (and so of its instance processes).
pub const BINARY: &str = "firehose-lambda";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
        results.latency.push(latency::run(&bench, poll_ms).await?);
    }
    eprintln!(
        "bench: [2] burst drain of {} bounties",
        bench.scale.burst_bounties
    );
    results.burst = Some(burst::run(&bench).await?);
    eprintln!("bench: [3] idle stream for {} s", bench.scale.idle_seconds);
    results.idle = Some(idle::run(&bench).await?);
    eprintln!(
        "bench: [4] fan-out: {} streams, {} bounties",
        bench.scale.fanout_streams, bench.scale.fanout_bounties
    );
    results.fanout = Some(fanout::run(&bench).await?);
    eprintln!(
        "bench: [5] start-up ({} cold starts)",
        bench.scale.start_runs
    );
    results.startup = Some(startup::run(&bench).await?);

    let markdown = report::markdown(&results);
    println!("{}", report::table(&results));
    std::fs::write(&markdown_path, markdown)?;
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(&results))?,
    )?;
    Ok(())
}
