//! The npm `eventsource` package, a plain EventSource that reconnects by itself with
//! `Last-Event-ID`, against the function with a short cap: every bounty arrives once,
//! across several server closes, with no help from the client; and across a store that
//! hangs (SIGSTOP) while the client connects or reconnects: an EventSource closes for
//! good on any status but 200, so the function must answer those connects with a
//! stream it comes back from.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{bounty_body, DynamoLocal, Function};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

fn node_modules() -> PathBuf {
    std::env::var("FIREHOSE_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/node/node_modules")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_eventsource_client_gets_every_bounty_once_across_reconnects() {
    let modules = node_modules();
    assert!(
        modules.join("eventsource").exists(),
        "npm eventsource not found in {}: run the tests with scripts/test (it installs it)",
        modules.display()
    );
    let f = Function::on_shared(
        "npm-es",
        &[("POLL_INTERVAL_MS", "200"), ("STREAM_MAX_SECONDS", "2")],
    )
    .await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/eventsource-subscriber.cjs");
    let total = 30;
    let mut node = tokio::process::Command::new("node")
        .arg(script)
        .arg(f.url("/api/v1/bounties/stream?category=python"))
        .arg(total.to_string())
        .arg("90000")
        .env("FIREHOSE_NODE_MODULES", &modules)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    assert!(
        matches!(first, Ok(Ok(Some(ref line))) if line == "connected"),
        "{first:?}"
    );

    // Spread over several 2 s streams and the 2 s reconnect waits between them.
    let mut published = Vec::new();
    for n in 0..total {
        published.push(
            f.publish(&bounty_body(&format!("n{n}"), "python", 100, &[]))
                .await,
        );
        if n % 3 == 0 {
            f.publish(&bounty_body("not for this filter", "rust", 100, &[]))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut received = Vec::new();
    let mut connects = 1;
    let reading = async {
        while let Ok(Some(line)) = lines.next_line().await {
            match line.split_once(' ') {
                Some(("bounty", id)) => received.push(id.to_owned()),
                _ if line == "connected" => connects += 1,
                _ if line == "done" => break,
                _ => panic!("subscriber: {line}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(90), reading)
        .await
        .expect("the subscriber finishes");
    let _ = node.wait().await;

    assert!(
        connects >= 2,
        "the client reconnected across closes ({connects} connects)"
    );
    assert_eq!(
        received.len(),
        total,
        "exactly {total} deliveries: {received:?}"
    );
    assert_eq!(received, published, "each once, in publication order");
}

/// The subscriber script on `url`, until `want` bounties or `timeout_ms`.
fn subscriber(url: &str, want: usize, timeout_ms: u64) -> (Child, Lines<BufReader<ChildStdout>>) {
    let modules = node_modules();
    assert!(
        modules.join("eventsource").exists(),
        "npm eventsource not found in {}: run the tests with scripts/test (it installs it)",
        modules.display()
    );
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/eventsource-subscriber.cjs");
    let mut node = tokio::process::Command::new("node")
        .arg(script)
        .arg(url)
        .arg(want.to_string())
        .arg(timeout_ms.to_string())
        .env("FIREHOSE_NODE_MODULES", &modules)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed");
    let lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    (node, lines)
}

/// What the subscriber printed, line by line, as it comes.
#[derive(Default, Debug)]
struct Seen {
    connects: usize,
    errors: Vec<String>,
    bounties: Vec<String>,
}

impl Seen {
    /// Reads lines until `until` holds, or the subscriber ends; panics after `within`.
    async fn read_until(
        &mut self,
        lines: &mut Lines<BufReader<ChildStdout>>,
        within: Duration,
        until: impl Fn(&Seen) -> bool,
    ) {
        let reading = async {
            while !until(self) {
                let Ok(Some(line)) = lines.next_line().await else {
                    break;
                };
                match line.split_once(' ') {
                    Some(("bounty", id)) => self.bounties.push(id.to_owned()),
                    Some(("error", code)) => self.errors.push(code.to_owned()),
                    _ if line == "connected" => self.connects += 1,
                    _ if line == "done" => break,
                    _ => panic!("subscriber: {line}"),
                }
            }
        };
        tokio::time::timeout(within, reading)
            .await
            .unwrap_or_else(|_| panic!("subscriber after {within:?}: {self:?}"));
        assert!(until(self), "the subscriber ended early: {self:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_eventsource_client_connecting_during_a_store_outage_comes_back_by_itself() {
    let mut own = DynamoLocal::start(false).await.expect("DynamoDB Local");
    let f = Function::start(
        &own.endpoint(),
        "npm-outage",
        &[("POLL_INTERVAL_MS", "200")],
    )
    .await;
    own.pause();
    let (mut node, mut lines) = subscriber(&f.url("/api/v1/bounties/stream"), 1, 120_000);
    let mut seen = Seen::default();
    // The function cannot read the heads: it answers 200 with an error frame and ends;
    // the client reconnects by itself every `retry:` until the store answers again.
    seen.read_until(&mut lines, Duration::from_secs(60), |seen| {
        !seen.errors.is_empty()
    })
    .await;
    assert_eq!(seen.errors[0], "store_unavailable", "{seen:?}");
    assert_eq!(seen.connects, 0, "{seen:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    own.unpause();
    seen.read_until(&mut lines, Duration::from_secs(60), |seen| {
        seen.connects >= 1
    })
    .await;
    let id = f.publish(&bounty_body("after", "python", 100, &[])).await;
    seen.read_until(&mut lines, Duration::from_secs(30), |seen| {
        !seen.bounties.is_empty()
    })
    .await;
    assert_eq!(seen.bounties, [id], "{seen:?}");
    let _ = node.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumed_across_a_store_outage_loses_nothing_and_repeats_nothing() {
    let mut own = DynamoLocal::start(false).await.expect("DynamoDB Local");
    let f = Function::start(
        &own.endpoint(),
        "npm-resume-outage",
        &[("POLL_INTERVAL_MS", "200"), ("STREAM_MAX_SECONDS", "3")],
    )
    .await;
    // Wants one more than is published, so that it is still listening for repeats.
    let (mut node, mut lines) = subscriber(&f.url("/api/v1/bounties/stream"), 4, 120_000);
    let mut seen = Seen::default();
    seen.read_until(&mut lines, Duration::from_secs(30), |seen| {
        seen.connects >= 1
    })
    .await;
    let a = f.publish(&bounty_body("a", "python", 100, &[])).await;
    seen.read_until(&mut lines, Duration::from_secs(30), |seen| {
        seen.bounties.len() == 1
    })
    .await;
    // Published just before the store hangs: the stream may or may not have read it.
    let b = f.publish(&bounty_body("b", "python", 100, &[])).await;
    own.pause();
    // Over several 3 s caps: polls fail, the stream checkpoints, the client reconnects
    // with its last id into the outage (a connect waits out the store's timeouts, about
    // 6 s) and is told to come back.
    tokio::time::sleep(Duration::from_secs(20)).await;
    own.unpause();
    let c = f.publish(&bounty_body("c", "python", 100, &[])).await;
    seen.read_until(&mut lines, Duration::from_secs(60), |seen| {
        seen.bounties.len() >= 3
    })
    .await;
    assert_eq!(seen.bounties, [a, b, c], "each once, in order: {seen:?}");
    assert!(
        seen.errors.iter().all(|code| code == "store_unavailable") && !seen.errors.is_empty(),
        "{seen:?}"
    );
    // Nothing more comes: nothing was repeated after the third.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = node.kill().await;
    while let Ok(Some(line)) = lines.next_line().await {
        assert!(
            !line.starts_with("bounty "),
            "repeated: {line} after {seen:?}"
        );
    }
}
