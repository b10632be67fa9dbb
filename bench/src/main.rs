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
//! BENCH_IDLE_SECONDS (60), BENCH_IDLE_STREAMS (1,100,1000), BENCH_FANOUT_STREAMS
//! (1000), BENCH_FANOUT_BOUNTIES (200), BENCH_START_RUNS (10).
//! BENCH_ONLY (a comma list of latency, burst, idle, idle-shared, fanout, startup):
//! run only those, for a quick try.

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
use scenarios::idle_shared::Via;
use scenarios::{burst, fanout, idle, idle_shared, latency, startup, Bench, Scale};

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

/// A comma list of positive whole numbers.
fn env_list(name: &str, default: &[usize]) -> Result<Vec<usize>, BoxError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .split(',')
            .map(|n| {
                n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    BoxError::from(format!(
                        "{name} must be a comma list of positive whole numbers, got {value:?}"
                    ))
                })
            })
            .collect(),
        _ => Ok(default.to_vec()),
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
            idle_streams: env_list("BENCH_IDLE_STREAMS", &[1, 100, 1000])?,
            fanout_streams: env_number("BENCH_FANOUT_STREAMS", 1000)?,
            fanout_bounties: env_number("BENCH_FANOUT_BOUNTIES", 200)?,
            start_runs: env_number("BENCH_START_RUNS", 10)?,
        },
    };

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.trim().is_empty() || only.split(',').any(|n| n.trim() == name);
    let mut results = report::Results::default();
    if wanted("latency") {
        for poll_ms in [1000, 250] {
            eprintln!("bench: [1] latency at POLL_INTERVAL_MS={poll_ms}");
            results.latency.push(latency::run(&bench, poll_ms).await?);
        }
    }
    if wanted("burst") {
        eprintln!(
            "bench: [2] burst drain of {} bounties",
            bench.scale.burst_bounties
        );
        results.burst = Some(burst::run(&bench).await?);
    }
    if wanted("idle") {
        eprintln!("bench: [3] idle stream for {} s", bench.scale.idle_seconds);
        results.idle = Some(idle::run(&bench).await?);
    }
    if wanted("idle-shared") {
        // Under the emulator for every N; on the benchmark's own runtime API for the
        // largest, where the emulator's relay and queue are most in the way.
        let largest = bench.scale.idle_streams.iter().copied().max().unwrap_or(0);
        let runs = bench
            .scale
            .idle_streams
            .iter()
            .map(|n| (Via::Emulator, *n))
            .chain(std::iter::once((Via::Direct, largest)));
        for (via, n) in runs {
            for shared in [true, false] {
                eprintln!(
                    "bench: [3b] {n} idle streams in one process, shared read {}, {via:?}, {} s",
                    if shared { "on" } else { "off" },
                    bench.scale.idle_seconds
                );
                results
                    .idle_shared
                    .push(idle_shared::run(&bench, via, n, shared).await?);
            }
        }
    }
    if wanted("fanout") {
        for via in [Via::Emulator, Via::Direct] {
            eprintln!(
                "bench: [4] fan-out: {} streams, {} bounties, {via:?}",
                bench.scale.fanout_streams, bench.scale.fanout_bounties
            );
            results.fanout.push(fanout::run(&bench, via).await?);
        }
    }
    if wanted("startup") {
        eprintln!(
            "bench: [5] start-up ({} cold starts)",
            bench.scale.start_runs
        );
        results.startup = Some(startup::run(&bench).await?);
    }

    let markdown = report::markdown(&results);
    println!("{}", report::table(&results));
    std::fs::write(&markdown_path, markdown)?;
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(&results))?,
    )?;
    Ok(())
}
