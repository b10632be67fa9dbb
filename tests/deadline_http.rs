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
use firehose_testkit::runtime_api::RuntimeApi;
use serde_json::json;

/// A Function URL event for `GET path`.
fn stream_event(path: &str) -> String {
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "test.lambda-url.us-east-1.on.aws",
            "accept": "text/event-stream",
            "x-forwarded-proto": "https",
            "x-forwarded-for": "127.0.0.1"
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "test",
            "domainName": "test.lambda-url.us-east-1.on.aws",
            "domainPrefix": "test",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "deadline-test"
            },
            "requestId": "deadline-test",
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "isBase64Encoded": false
    })
    .to_string()
}

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
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
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
    let mut response = api.invoke(stream_event("/api/v1/bounties/stream"), timeout);
    let (prelude, mut body) = tokio::time::timeout(timeout, response.prelude())
        .await
        .expect("the answer's head before the deadline")
        .expect("a response");
    let prelude: serde_json::Value = serde_json::from_str(&prelude).expect("prelude JSON");
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    let mut checkpoint_at = None;
    let ended = tokio::time::timeout(timeout + Duration::from_secs(30), async {
        loop {
            if checkpoint_at.is_none()
                && String::from_utf8_lossy(&body).contains("event: checkpoint")
            {
                checkpoint_at = Some(invoked.elapsed());
            }
            match response.bytes.recv().await {
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
    assert!(api.errors().is_empty(), "{:?}", api.errors());
}
