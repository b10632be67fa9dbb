//! The npm `eventsource` package, a plain EventSource that reconnects by itself with
//! `Last-Event-ID`, against the function with a short cap: every bounty arrives once,
//! across several server closes, with no help from the client.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{bounty_body, Function};
use tokio::io::{AsyncBufReadExt, BufReader};

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
