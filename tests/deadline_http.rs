//! The stream ends before the invocation's deadline however slow the store is
//! (contract, "Deadline"). `cargo lambda watch` sends no real deadline (600,000 ms after
//! the epoch), so the function runs here under firehose-testkit's own runtime API,
//! which gives each invocation one, against DynamoDB Local behind a proxy that holds
//! every request 2 s.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{DynamoLocal, Fault, Proxy};
use firehose::auth::ApiKeys;
use firehose_testkit::runtime_api::{function_url_event, RuntimeApi};

/// Kills the function process when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_still_gets_the_checkpoint_out_before_the_deadline() {
    let endpoint = DynamoLocal::shared_endpoint().await;
    let table = common::dynamo::fresh_table(&endpoint, "deadline").await;
    let proxy = Proxy::start(&endpoint).await.expect("proxy");
    let api = RuntimeApi::start().await.expect("runtime api");
    let log_path = firehose_testkit::workspace_root()
        .join("target/test-logs")
        .join(format!("{table}.log"));
    std::fs::create_dir_all(log_path.parent().expect("dir")).expect("log dir");
    let log = std::fs::File::create(&log_path).expect("log file");
    let binary = firehose_testkit::workspace_root().join("target/debug/firehose-lambda");
    let child = Command::new(&binary)
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "firehose")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("TABLE_NAME", &table)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy.base)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env(
            "PUBLISH_API_KEY_SHA256",
            ApiKeys::hash_hex(common::TEST_KEY),
        )
        .env("HEARTBEAT_SECONDS", "2")
        // The cap is close to the function's timeout (20 s): timed from the stream's
        // start, after several slow store calls, it alone would run past the deadline.
        .env("STREAM_MAX_SECONDS", "18")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("{} did not start: {err}", binary.display()));
    let _function = Killed(child);

    proxy.set_fault(Fault::Delay(Duration::from_secs(2)));
    let timeout = Duration::from_secs(20);
    let invoked = Instant::now();
    let event = function_url_event(
        "GET",
        "/api/v1/bounties/stream",
        &[("accept", "text/event-stream")],
        None,
    );
    let mut answer = tokio::time::timeout(timeout, api.invoke_due(event, timeout))
        .await
        .expect("the answer's head before the deadline")
        .expect("a response");
    assert_eq!(answer.status, 200, "{}", answer.headers);
    let mut body = Vec::new();
    let mut checkpoint_at = None;
    let ended = tokio::time::timeout(timeout + Duration::from_secs(30), async {
        loop {
            if checkpoint_at.is_none()
                && String::from_utf8_lossy(&body).contains("event: checkpoint")
            {
                checkpoint_at = Some(invoked.elapsed());
            }
            match answer.body.recv().await {
                Some(bytes) => body.extend_from_slice(&bytes),
                None => return invoked.elapsed(),
            }
        }
    })
    .await
    .expect("the response ends");
    let text = String::from_utf8_lossy(&body);
    let checkpoint_at = checkpoint_at.unwrap_or_else(|| panic!("no checkpoint in {text}"));
    assert!(
        checkpoint_at < timeout,
        "checkpoint at {checkpoint_at:?}, the deadline at {timeout:?}"
    );
    assert!(
        ended < timeout,
        "the response ended at {ended:?}, after the deadline at {timeout:?}"
    );
    // It was the deadline that ended it, not the cap: the store took seconds first.
    assert!(
        checkpoint_at > Duration::from_secs(10),
        "checkpoint at {checkpoint_at:?}"
    );
    assert!(text.contains("\"reason\":\"max_duration\""), "{text}");
    assert_eq!(api.init_error(), None);
}
