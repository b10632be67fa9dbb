//! Logs and limits over real HTTP: one access line per request (request id, status,
//! filter, duration, events), no secret in any log line even at RUST_LOG=trace, and
//! oversized query strings and headers answered with the contract's JSON errors.

mod common;

use std::time::Duration;

use common::{bounty_body, expect_error, http, Function, TEST_KEY};
use firehose::auth::ApiKeys;
use firehose::http::limits::{MAX_HEADER_BYTES, MAX_QUERY_BYTES};
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);

/// The function's access lines (JSON), in order.
fn access_lines(f: &Function) -> Vec<Value> {
    f.logs()
        .lines()
        .filter(|line| line.contains("\"target\":\"firehose::access\""))
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_once_with_id_status_filter_duration_and_events() {
    let f = Function::on_shared(
        "access",
        &[
            ("LOG_FORMAT", "json"),
            ("POLL_INTERVAL_MS", "250"),
            ("STREAM_MAX_SECONDS", "8"),
        ],
    )
    .await;
    // A first publish starts a second instance, so that the ones below are quick.
    f.publish(&bounty_body("warm-up", "rust", 500, &[])).await;
    let before = access_lines(&f).len();

    // A stream that runs to its cap, delivering two bounties.
    let (mut sub, _) = f
        .subscribe("/api/v1/bounties/stream?category=python&min_budget_cents=100")
        .await;
    f.publish(&bounty_body("a", "python", 500, &[])).await;
    f.publish(&bounty_body("b", "python", 500, &[])).await;
    f.publish(&bounty_body("c", "rust", 500, &[])).await;
    let connection = sub.read_connection(30 * SECOND).await;
    assert!(connection.closed);
    assert_eq!(connection.bounty_ids().len(), 2);
    // A refused one.
    let refused = http()
        .get(f.url("/api/v1/bounties/stream?colour=red"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 400);
    // A backfill.
    let listed = http()
        .get(f.url("/api/v1/tasks?category=python"))
        .send()
        .await
        .expect("request");
    assert_eq!(listed.status(), 200);

    // 3 publishes + 2 streams + 1 backfill = 6 requests, each logged once (the stream
    // at its end).
    let lines = common::eventually("six access lines", 30 * SECOND, || async {
        let lines = access_lines(&f);
        (lines.len() >= before + 6).then_some(lines)
    })
    .await;
    tokio::time::sleep(SECOND).await;
    assert_eq!(access_lines(&f).len(), before + 6, "one line per request");
    let lines = &lines[before..];
    for line in lines {
        assert!(
            line["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{line}"
        );
        assert!(line["duration_ms"].as_u64().is_some(), "{line}");
        assert!(line["status"].as_u64().is_some(), "{line}");
        assert!(line["filter"].as_str().is_some(), "{line}");
        assert!(line["events"].as_u64().is_some(), "{line}");
    }
    let ids: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 6, "distinct request ids");
    let publishes: Vec<&Value> = lines.iter().filter(|l| l["method"] == "POST").collect();
    assert_eq!(publishes.len(), 3);
    assert!(publishes
        .iter()
        .all(|l| l["status"] == 201 && l["events"] == 0));
    let stream = lines
        .iter()
        .find(|l| l["status"] == 200)
        .expect("the stream's line");
    assert_eq!(stream["path"], "/api/v1/bounties/stream");
    let filter = stream["filter"].as_str().expect("filter");
    assert!(
        filter.contains("\"categories\":[\"python\"]")
            && filter.contains("\"min_budget_cents\":100"),
        "{filter}"
    );
    // retry hint aside: connected, two bounties, checkpoint.
    assert_eq!(stream["events"], 4, "{stream}");
    assert_eq!(stream["bounties"], 2, "{stream}");
    assert_eq!(stream["ended"], "completed", "{stream}");
    assert!(
        stream["duration_ms"].as_u64().is_some_and(|ms| ms >= 3000),
        "{stream}"
    );
    let backfill = lines
        .iter()
        .find(|l| l["path"] == "/api/v1/tasks" && l["method"] == "GET")
        .expect("the backfill's line");
    assert_eq!(backfill["status"], 200, "{backfill}");
    assert_eq!(backfill["bounties"], 2, "{backfill}");
    assert!(
        backfill["filter"]
            .as_str()
            .is_some_and(|f| f.contains("python")),
        "{backfill}"
    );
    let bad = lines
        .iter()
        .find(|l| l["status"] == 400)
        .expect("the 400's line");
    assert_eq!(bad["filter"], "-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_left_is_logged_when_the_function_notices() {
    let f = Function::on_shared(
        "accessgone",
        &[("LOG_FORMAT", "json"), ("HEARTBEAT_SECONDS", "1")],
    )
    .await;
    let (sub, _) = f.subscribe("/api/v1/bounties/stream?tag=rust").await;
    drop(sub);
    let line = common::eventually("the stream's access line", 30 * SECOND, || async {
        access_lines(&f).into_iter().find(|l| l["status"] == 200)
    })
    .await;
    assert_eq!(line["ended"], "client_gone", "{line}");
    assert_eq!(line["bounties"], 0, "{line}");
    assert!(line["events"].as_u64().is_some_and(|n| n >= 1), "{line}");
    assert!(
        line["filter"].as_str().is_some_and(|f| f.contains("rust")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_authorization_headers_and_key_hashes_never_reach_the_logs() {
    // As verbose as an operator can make it, for everything in the function that sees
    // a request. (Not `trace` for all: `cargo lambda watch` reads RUST_LOG too, and its
    // file watcher would trace its own writes to the log file without end.)
    let f = Function::on_shared(
        "secrets",
        &[
            (
                "RUST_LOG",
                "info,firehose=trace,firehose_lambda=trace,lambda_runtime=trace,lambda_http=trace,aws_smithy_runtime=trace,aws_smithy_runtime_api=trace,aws_sigv4=trace,aws_config=trace",
            ),
            ("LOG_FORMAT", "json"),
        ],
    )
    .await;
    let wrong_key = "wrong-key-4c1d9a7e";
    f.publish(&bounty_body("with a key", "python", 100, &[]))
        .await;
    for authorization in [
        format!("Bearer {wrong_key}"),
        format!("bearer {TEST_KEY}x"),
        format!("Basic {wrong_key}"),
        wrong_key.to_owned(),
    ] {
        let response = http()
            .post(f.url("/api/v1/tasks"))
            .header("authorization", &authorization)
            .json(&bounty_body("refused", "python", 100, &[]))
            .send()
            .await
            .expect("publish");
        assert_eq!(response.status(), 401, "{authorization}");
    }
    // Let the log catch up with the last request.
    common::eventually("five access lines", 30 * SECOND, || async {
        (access_lines(&f).len() >= 5).then_some(())
    })
    .await;
    let logs = f.logs();
    assert!(logs.contains("\"status\":201"), "the run was logged");
    for secret in [
        TEST_KEY.to_owned(),
        wrong_key.to_owned(),
        ApiKeys::hash_hex(TEST_KEY),
        ApiKeys::hash_hex(wrong_key),
    ] {
        let hits: Vec<&str> = logs.lines().filter(|l| l.contains(&secret)).collect();
        assert!(hits.is_empty(), "{secret:?} in the logs: {hits:?}");
    }
    let bearer: Vec<&str> = logs
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("bearer "))
        .collect();
    assert!(
        bearer.is_empty(),
        "an Authorization header in the logs: {bearer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_query_strings_and_headers_are_refused_in_json() {
    let f = Function::on_shared("limits", &[]).await;
    // At the limit: an ordinary 400 for the (invalid) parameter, not a size refusal.
    let at_limit = format!("colour={}", "a".repeat(MAX_QUERY_BYTES - "colour=".len()));
    let response = http()
        .get(f.url(&format!("/api/v1/bounties/stream?{at_limit}")))
        .send()
        .await
        .expect("request");
    expect_error(response, 400, "unknown_parameter", Some("colour")).await;
    for path in ["/api/v1/bounties/stream", "/api/v1/tasks"] {
        let response = http()
            .get(f.url(&format!("{path}?category={}", "a".repeat(MAX_QUERY_BYTES))))
            .send()
            .await
            .expect("request");
        expect_error(response, 414, "query_too_long", Some("query")).await;
    }
    let response = http()
        .get(f.url("/api/v1/bounties/stream"))
        .header("x-padding", "p".repeat(MAX_HEADER_BYTES))
        .send()
        .await
        .expect("request");
    expect_error(response, 431, "headers_too_large", None).await;
    let response = http()
        .post(f.url("/api/v1/tasks"))
        .bearer_auth(TEST_KEY)
        .header("content-type", "application/json")
        .body(vec![b' '; firehose::http::MAX_BODY_BYTES + 1])
        .send()
        .await
        .expect("request");
    expect_error(response, 413, "payload_too_large", Some("body")).await;
}
