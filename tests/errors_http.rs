//! Every refusal of the contract, over real HTTP: status, JSON shape, code, param,
//! before any stream starts.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{bounty_body, expect_error, http, Function, TEST_KEY};
use firehose::cursor::{Cursor, Position};
use firehose::timefmt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_stream_request_is_a_400_before_any_stream() {
    let f = Function::on_shared("errors", &[("LOOKBACK_SECONDS", "3600")]).await;
    let now_ms = timefmt::to_millis(Utc::now());
    let too_many: String = (0..21).map(|i| format!("category=c{i}&")).collect();
    let too_many_tags = format!(
        "tag={}",
        (0..21)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let old_cursor = Cursor {
        issued_ms: now_ms - 7_200_000,
        positions: vec![Position::START],
    }
    .encode();
    let future_cursor = Cursor {
        issued_ms: now_ms,
        positions: vec![Position {
            created_ms: now_ms,
            seq: 99,
        }],
    }
    .encode();
    let old_since = timefmt::format(Utc::now() - chrono::Duration::hours(2));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "min_budget_cents=abc".into(),
            "invalid_parameter",
            "min_budget_cents",
        ),
        (
            "min_budget_cents=-5".into(),
            "invalid_parameter",
            "min_budget_cents",
        ),
        (
            "min_budget_cents=1&min_budget_cents=2".into(),
            "duplicate_parameter",
            "min_budget_cents",
        ),
        ("category=Bad_Slug".into(), "invalid_parameter", "category"),
        ("tag=".into(), "invalid_parameter", "tag"),
        ("colour=red".into(), "unknown_parameter", "colour"),
        (too_many, "too_many_values", "category"),
        (too_many_tags, "too_many_values", "tag"),
        (
            "deadline_after=tomorrow".into(),
            "invalid_parameter",
            "deadline_after",
        ),
        (
            "since=2026-13-01T00:00:00Z".into(),
            "invalid_parameter",
            "since",
        ),
        (format!("since={old_since}"), "cursor_too_old", "since"),
        (
            "last_event_id=garbage!".into(),
            "invalid_cursor",
            "last_event_id",
        ),
        (
            format!("last_event_id={old_cursor}"),
            "cursor_too_old",
            "last_event_id",
        ),
        (
            format!("last_event_id={future_cursor}"),
            "invalid_cursor",
            "last_event_id",
        ),
    ];
    for (query, code, param) in cases {
        let url = f.url(&format!(
            "/api/v1/bounties/stream?{}",
            query.replace('+', "%2B")
        ));
        let response = http().get(&url).send().await.expect("request");
        expect_error(response, 400, code, Some(param)).await;
    }
    let response = http()
        .get(f.url("/api/v1/bounties/stream"))
        .header("last-event-id", "not-a-cursor")
        .send()
        .await
        .expect("request");
    expect_error(response, 400, "invalid_cursor", Some("Last-Event-ID")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_whose_entries_are_gone_is_too_old_never_a_silent_gap() {
    use firehose::publish::append;
    use firehose::store::dynamo::DynamoFeedStore;

    let f = Function::on_shared("gone", &[]).await;
    let client = common::dynamo::client(&f.dynamo_endpoint).await;
    let store = DynamoFeedStore::new(client.clone(), &f.table, 1, Duration::from_secs(86_400));
    let draft = common::draft("x", "python");
    let drafts = vec![draft; 3];
    append(&store, 0, &drafts).await.expect("append");
    // A cursor after entry 1, then entry 2 disappears (as if expired by TTL).
    let first = store_position(&store, 1).await;
    let cursor = Cursor {
        issued_ms: timefmt::to_millis(Utc::now()),
        positions: vec![first],
    }
    .encode();
    let second = store_position(&store, 2).await;
    client
        .delete_item()
        .table_name(&f.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("feed#0".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(second.sort_key()),
        )
        .send()
        .await
        .expect("delete");
    let response = http()
        .get(f.url("/api/v1/bounties/stream"))
        .header("last-event-id", cursor)
        .send()
        .await
        .expect("request");
    expect_error(response, 400, "cursor_too_old", Some("Last-Event-ID")).await;
}

async fn store_position(store: &firehose::store::dynamo::DynamoFeedStore, seq: u64) -> Position {
    use firehose::store::FeedReader;
    let page = store
        .read_after(0, Position::START, 10)
        .await
        .expect("read");
    page.entries
        .iter()
        .find(|e| e.position.seq == seq)
        .expect("entry")
        .position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_routing_errors_have_the_contract_shape() {
    let f = Function::on_shared("puberr", &[]).await;
    let body = bounty_body("t", "python", 100, &[]);
    let tasks = f.url("/api/v1/tasks");

    let (headers, _) = expect_error(
        http().post(&tasks).json(&body).send().await.expect("req"),
        401,
        "unauthorized",
        Some("Authorization"),
    )
    .await;
    assert_eq!(headers["www-authenticate"], "Bearer");
    let wrong_key = http()
        .post(&tasks)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .expect("req");
    expect_error(wrong_key, 401, "unauthorized", Some("Authorization")).await;
    let text = http()
        .post(&tasks)
        .bearer_auth(TEST_KEY)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .expect("req");
    expect_error(text, 415, "unsupported_media_type", Some("Content-Type")).await;
    let broken = http()
        .post(&tasks)
        .bearer_auth(TEST_KEY)
        .header("content-type", "application/json")
        .body("{\"title\":")
        .send()
        .await
        .expect("req");
    expect_error(broken, 400, "invalid_json", Some("body")).await;
    let mut bad = body.clone();
    bad["budget_cents"] = serde_json::json!(0);
    expect_error(
        f.try_publish_raw(&bad).await,
        422,
        "invalid_field",
        Some("budget_cents"),
    )
    .await;
    let mut past = body.clone();
    past["deadline"] = serde_json::json!("2001-01-01T00:00:00Z");
    expect_error(
        f.try_publish_raw(&past).await,
        422,
        "invalid_field",
        Some("deadline"),
    )
    .await;
    let mut server_field = body.clone();
    server_field["id"] = serde_json::json!("mine");
    expect_error(
        f.try_publish_raw(&server_field).await,
        422,
        "unknown_field",
        Some("id"),
    )
    .await;
    let huge = serde_json::json!({"title": "t", "description": "x".repeat(70_000)});
    expect_error(
        f.try_publish_raw(&huge).await,
        413,
        "payload_too_large",
        Some("body"),
    )
    .await;

    expect_error(
        http().get(f.url("/api/v1/nope")).send().await.expect("req"),
        404,
        "not_found",
        None,
    )
    .await;
    let (headers, _) = expect_error(
        http()
            .delete(f.url("/api/v1/bounties/stream"))
            .send()
            .await
            .expect("req"),
        405,
        "method_not_allowed",
        None,
    )
    .await;
    assert_eq!(headers["allow"], "GET, OPTIONS");
    let preflight = http()
        .request(reqwest::Method::OPTIONS, tasks.clone())
        .send()
        .await
        .expect("req");
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default()
        .contains("last-event-id"));

    let (status, bounty) = f.try_publish(&body).await;
    assert_eq!(status, 201);
    assert_eq!(bounty["status"], "open");
    assert_eq!(bounty["currency"], "USD");
    assert!(bounty["id"].as_str().is_some_and(|id| id.len() == 26));
    assert!(timefmt::parse(bounty["created_at"].as_str().unwrap_or_default()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_backfill_request_is_a_400() {
    let f = Function::on_shared("listerr", &[]).await;
    let cases: Vec<(&str, &str, &str)> = vec![
        ("limit=0", "invalid_parameter", "limit"),
        ("limit=101", "invalid_parameter", "limit"),
        ("limit=ten", "invalid_parameter", "limit"),
        ("limit=5&limit=6", "duplicate_parameter", "limit"),
        ("page_token=garbage!", "invalid_page_token", "page_token"),
        ("page_token=", "invalid_page_token", "page_token"),
        ("since=2026-01-01T00:00:00Z", "unknown_parameter", "since"),
        ("last_event_id=abc", "unknown_parameter", "last_event_id"),
        ("colour=red", "unknown_parameter", "colour"),
        ("category=Bad_Slug", "invalid_parameter", "category"),
        (
            "min_budget_cents=-1",
            "invalid_parameter",
            "min_budget_cents",
        ),
        ("deadline_after=soon", "invalid_parameter", "deadline_after"),
    ];
    for (query, code, param) in cases {
        let response = http()
            .get(f.url(&format!("/api/v1/tasks?{query}")))
            .send()
            .await
            .expect("request");
        expect_error(response, 400, code, Some(param)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_answers_preflights_and_wrong_methods_with_allow() {
    let f = Function::on_shared("routes", &[]).await;
    let paths = [
        ("/api/v1/bounties/stream", "GET, OPTIONS"),
        ("/api/v1/tasks", "GET, POST, OPTIONS"),
        (
            "/api/v1/tasks/01JABCDEFGHJKMNPQRSTVWXYZ0",
            "GET, PATCH, OPTIONS",
        ),
        (
            "/api/v1/tasks/01JABCDEFGHJKMNPQRSTVWXYZ0/stream",
            "GET, OPTIONS",
        ),
        ("/", "GET, OPTIONS"),
    ];
    for (path, allow) in paths {
        let preflight = http()
            .request(reqwest::Method::OPTIONS, f.url(path))
            .header("origin", "https://agent.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .expect("preflight");
        assert_eq!(preflight.status(), 204, "{path}");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(headers["access-control-allow-methods"], allow, "{path}");
        assert!(headers["access-control-allow-headers"]
            .to_str()
            .unwrap_or_default()
            .contains("idempotency-key"));
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
        ] {
            if allow.contains(method.as_str()) {
                continue;
            }
            let (headers, _) = expect_error(
                http()
                    .request(method.clone(), f.url(path))
                    .send()
                    .await
                    .expect("req"),
                405,
                "method_not_allowed",
                None,
            )
            .await;
            assert_eq!(headers["allow"], allow, "{method} {path}");
        }
    }
    let (headers, _) = expect_error(
        http()
            .post(f.url("/api/v1/tasks/01JABCDEFGHJKMNPQRSTVWXYZ0"))
            .bearer_auth(TEST_KEY)
            .json(&bounty_body("t", "python", 1, &[]))
            .send()
            .await
            .expect("req"),
        405,
        "method_not_allowed",
        None,
    )
    .await;
    assert_eq!(headers["allow"], "GET, PATCH, OPTIONS");
    // `/` is the live board (tests/board_browser.rs); nothing else outside the API.
    for unknown in [
        "/index.html",
        "/api/v1",
        "/api/v1/tasks/a/b",
        "/api/v2/tasks",
    ] {
        expect_error(
            http().get(f.url(unknown)).send().await.expect("req"),
            404,
            "not_found",
            None,
        )
        .await;
    }
}

/// One CORS layer: the template leaves CORS to the function (a Function URL `Cors`
/// would add a second `Access-Control-Allow-Origin`, which browsers reject), and the
/// function sends exactly one set on every kind of answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_and_the_function_send_exactly_one_cors_header_set() {
    let template: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
            .expect("template.yaml"),
    )
    .expect("YAML");
    let urls: Vec<&serde_yaml::Value> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .map(|resource| &resource["Properties"]["FunctionUrlConfig"])
        .filter(|config| !config.is_null())
        .collect();
    assert!(!urls.is_empty(), "a Function URL");
    assert!(
        urls.iter().all(|config| config["Cors"].is_null()),
        "the Function URL adds no CORS of its own"
    );

    let f = Function::on_shared("one-cors", &[]).await;
    let preflight = http()
        .request(reqwest::Method::OPTIONS, f.url("/api/v1/tasks"))
        .header("origin", "https://agent.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    let list = http()
        .get(f.url("/api/v1/tasks"))
        .send()
        .await
        .expect("list");
    let error = http()
        .get(f.url("/api/v1/tasks?colour=red"))
        .send()
        .await
        .expect("error");
    let stream = http()
        .get(f.url("/api/v1/bounties/stream"))
        .send()
        .await
        .expect("stream");
    for (what, response) in [
        ("preflight", &preflight),
        ("list", &list),
        ("error", &error),
        ("stream", &stream),
    ] {
        let headers = response.headers();
        let origins: Vec<_> = headers
            .get_all("access-control-allow-origin")
            .iter()
            .collect();
        assert_eq!(origins, ["*"], "{what}");
        assert_eq!(
            headers
                .get_all("access-control-expose-headers")
                .iter()
                .count(),
            1,
            "{what}"
        );
    }
    assert_eq!(
        preflight
            .headers()
            .get_all("access-control-allow-methods")
            .iter()
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_function_refuses_the_stream_and_serves_the_rest() {
    let f = Function::on_shared("routes", &[("ROUTES", "publish")]).await;
    let response = http()
        .get(f.url("/api/v1/bounties/stream"))
        .send()
        .await
        .expect("request");
    let (_, body) = expect_error(response, 404, "not_found", None).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stream URL")),
        "{body}"
    );
    let id = f
        .publish(&bounty_body("publish only", "python", 1_000, &[]))
        .await;
    let found = http()
        .get(f.url(&format!("/api/v1/tasks/{id}")))
        .send()
        .await
        .expect("lookup");
    assert_eq!(found.status(), 200);
    let listed = http()
        .get(f.url("/api/v1/tasks"))
        .send()
        .await
        .expect("backfill");
    assert_eq!(listed.status(), 200);
}
