//! [5] Start-up: cold starts of the release binary under a runtime API played by
//! the benchmark (no emulator in the way), and the binary's size.

use std::path::Path;

use super::{fresh_table, Bench};
use crate::stats::Summary;
use crate::{runtime_api, BoxError, BENCH_KEY, BINARY};

pub struct StartupResult {
    pub runs: usize,
    pub init: Summary,
    pub first_response: Summary,
    pub binary_bytes: u64,
    pub stripped_bytes: Option<u64>,
}

pub async fn run(bench: &Bench) -> Result<StartupResult, BoxError> {
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
    runtime_api::function_url_event(
        "GET",
        "/api/v1/bounties/stream",
        &[("accept", "text/event-stream")],
        None,
    )
}
