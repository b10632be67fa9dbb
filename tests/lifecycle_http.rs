//! The bounty lifecycle over real HTTP against DynamoDB Local: `PATCH` (updates,
//! closes, every refusal), the per-bounty stream (its frames, its end, resuming, 204),
//! changes on the firehose with `include=changes` (each once, in order, across
//! resumes), racing changes, expiry, and what lookup and backfill show after changes.

mod common;

use std::time::Duration;

use common::sse::{json, Connection};
use common::{bounty_body, expect_error, http, Function, Subscriber, TEST_KEY};
use firehose::auth::ApiKeys;
use serde_json::{json, Value};

const OTHER_KEY: &str = "another-publisher-key";
const WAIT: Duration = Duration::from_secs(20);

/// Both keys may publish; each may change only what it published.
async fn start(label: &str, env: &[(&str, &str)]) -> Function {
    let keys = format!(
        "{},{}",
        ApiKeys::hash_hex(TEST_KEY),
        ApiKeys::hash_hex(OTHER_KEY)
    );
    let mut all = vec![
        ("PUBLISH_API_KEY_SHA256", keys.as_str()),
        ("POLL_INTERVAL_MS", "200"),
    ];
    all.extend_from_slice(env);
    Function::on_shared(label, &all).await
}

async fn patch_with(f: &Function, key: &str, id: &str, body: &Value) -> reqwest::Response {
    http()
        .patch(f.url(&format!("/api/v1/tasks/{id}")))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("patch request")
}

/// PATCHes with the publishing key, insisting on 200; returns the bounty.
async fn patch(f: &Function, id: &str, body: Value) -> Value {
    let response = patch_with(f, TEST_KEY, id, &body).await;
    let status = response.status().as_u16();
    let bounty: Value = response.json().await.expect("JSON");
    assert_eq!(status, 200, "PATCH {body} answered {status}: {bounty}");
    bounty
}

async fn get(f: &Function, path: &str) -> (u16, Value) {
    let response = http().get(f.url(path)).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The status of a stream request from `cursor` (no stream is read).
async fn stream_status(f: &Function, path: &str, cursor: Option<&str>) -> u16 {
    let mut request = http().get(f.url(path));
    if let Some(cursor) = cursor {
        request = request.header("last-event-id", cursor);
    }
    request
        .send()
        .await
        .expect("stream request")
        .status()
        .as_u16()
}

fn names(connection: &Connection) -> Vec<&str> {
    connection
        .events
        .iter()
        .map(|event| event.event.as_str())
        .filter(|name| !matches!(*name, "connected" | "checkpoint"))
        .collect()
}

fn versions(connection: &Connection) -> Vec<u64> {
    connection
        .events
        .iter()
        .filter(|event| event.event.starts_with("bounty"))
        .map(|event| json(event)["version"].as_u64().expect("version"))
        .collect()
}

/// Like an EventSource: reads, reconnecting with the last id after each close, until
/// `want` events named in `wanted` arrived; returns them as (name, id, version).
async fn collect(
    subscriber: &mut Subscriber,
    wanted: &[&str],
    want: usize,
) -> Vec<(String, String, u64)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut got = Vec::new();
    while got.len() < want && tokio::time::Instant::now() < deadline {
        subscriber.connect().await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let connection = subscriber.read_connection(left).await;
        for event in &connection.events {
            if wanted.contains(&event.event.as_str()) {
                let data = json(event);
                got.push((
                    event.event.clone(),
                    data["id"].as_str().expect("id").to_owned(),
                    data["version"].as_u64().expect("version"),
                ));
            }
        }
    }
    got
}

#[tokio::test]
async fn the_per_bounty_stream_shows_each_change_once_then_ends() {
    let f = start("life-stream", &[]).await;
    let id = f
        .publish(&bounty_body("Watch me", "python", 500, &[]))
        .await;
    let path = format!("/api/v1/tasks/{id}/stream");
    let (mut watcher, connected) = f.subscribe(&path).await;
    assert_eq!(connected["bounty"]["id"], id.as_str(), "{connected}");
    assert_eq!(connected["bounty"]["version"], 1, "{connected}");
    assert!(connected["cursor"].is_string() && connected["heartbeat_ms"].is_u64());

    patch(&f, &id, json!({"budget_cents": 900})).await;
    patch(
        &f,
        &id,
        json!({"title": "Watch me closely", "tags": ["ci"]}),
    )
    .await;
    let closed = patch(
        &f,
        &id,
        json!({"status": "closed", "close_reason": "awarded"}),
    )
    .await;
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["close_reason"], "awarded");
    assert!(closed["closed_at"].is_string());

    let connection = watcher.read_connection(WAIT).await;
    assert!(connection.closed, "the stream ends after the close");
    assert_eq!(
        names(&connection),
        ["bounty_updated", "bounty_updated", "bounty_closed"]
    );
    assert_eq!(versions(&connection), [2, 3, 4]);
    assert!(connection.named("checkpoint").is_empty());
    let first_update = connection.named("bounty_updated")[0];
    assert_eq!(json(first_update)["budget_cents"], 900);
    assert!(!first_update.id.is_empty(), "each change carries a cursor");

    // Resuming after the first update: only the two later changes, then the end.
    let mut resumed = Subscriber::resuming(f.url(&path), &first_update.id);
    resumed.connect().await;
    let connection = resumed.read_connection(WAIT).await;
    assert!(connection.closed);
    assert_eq!(names(&connection), ["bounty_updated", "bounty_closed"]);
    assert_eq!(versions(&connection), [3, 4]);
    let close_cursor = connection.named("bounty_closed")[0].id.clone();

    // Terminal with nothing after the cursor: 204, so an EventSource stops for good.
    assert_eq!(stream_status(&f, &path, None).await, 204);
    assert_eq!(stream_status(&f, &path, Some(&close_cursor)).await, 204);
    let (status, lookup) = get(&f, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!((status, lookup["version"].as_u64()), (200, Some(4)));
    assert_eq!(lookup["status"], "closed");

    let unknown = http()
        .get(f.url("/api/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/stream"))
        .send()
        .await
        .expect("request");
    expect_error(unknown, 404, "not_found", Some("id")).await;
}

#[tokio::test]
async fn the_firehose_sends_changes_only_with_include_changes_each_once_in_order() {
    // Streams of 3 s: the changes arrive across several resumes.
    let f = start("life-firehose", &[("STREAM_MAX_SECONDS", "3")]).await;
    let mut with =
        Subscriber::new(f.url("/api/v1/bounties/stream?include=changes&category=python"));
    let mut without = Subscriber::new(f.url("/api/v1/bounties/stream?category=python"));
    with.connect().await;
    let connected = json(&with.next_named("connected", WAIT).await);
    assert_eq!(connected["include"], json!(["changes"]), "{connected}");
    without.connect().await;
    let plain = json(&without.next_named("connected", WAIT).await);
    assert!(
        plain.get("include").is_none(),
        "v1 connected unchanged: {plain}"
    );

    let writer = async {
        let id = f
            .publish(&bounty_body("Changing", "python", 500, &[]))
            .await;
        for budget in [600, 700] {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            patch(&f, &id, json!({ "budget_cents": budget })).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        patch(
            &f,
            &id,
            json!({"status": "closed", "close_reason": "cancelled"}),
        )
        .await;
        // Another category's changes reach neither subscriber.
        let other = f.publish(&bounty_body("Elsewhere", "rust", 500, &[])).await;
        patch(&f, &other, json!({ "budget_cents": 900 })).await;
        id
    };
    let wanted = ["bounty", "bounty_updated", "bounty_closed"];
    let (id, got, plain) = tokio::join!(writer, collect(&mut with, &wanted, 4), async {
        // Well past the last change: whatever else would come has come.
        let mut got = collect(&mut without, &wanted, 1).await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        got.extend(collect_for(&mut without, &wanted, Duration::from_secs(4)).await);
        got
    });
    let expected: Vec<(String, String, u64)> = [
        ("bounty", 1),
        ("bounty_updated", 2),
        ("bounty_updated", 3),
        ("bounty_closed", 4),
    ]
    .iter()
    .map(|(name, version)| ((*name).to_owned(), id.clone(), *version))
    .collect();
    assert_eq!(got, expected);
    assert!(with.connects >= 2, "the changes came across resumes");
    assert_eq!(plain, vec![("bounty".to_owned(), id, 1)]);
}

/// Reads for `window`, reconnecting like an EventSource; returns what was `wanted`.
async fn collect_for(
    subscriber: &mut Subscriber,
    wanted: &[&str],
    window: Duration,
) -> Vec<(String, String, u64)> {
    let deadline = tokio::time::Instant::now() + window;
    let mut got = Vec::new();
    while tokio::time::Instant::now() < deadline {
        subscriber.connect().await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        for event in subscriber.read_connection(left).await.events {
            if wanted.contains(&event.event.as_str()) {
                let data = json(&event);
                got.push((
                    event.event.clone(),
                    data["id"].as_str().unwrap_or_default().to_owned(),
                    data["version"].as_u64().unwrap_or_default(),
                ));
            }
        }
    }
    got
}

#[tokio::test]
async fn a_budget_raised_past_the_minimum_reaches_that_subscriber_as_an_update() {
    let f = start("life-raise", &[]).await;
    let (mut rich, _) = f
        .subscribe("/api/v1/bounties/stream?include=changes&min_budget_cents=1000")
        .await;
    let id = f.publish(&bounty_body("Cheap", "python", 500, &[])).await;
    patch(&f, &id, json!({"budget_cents": 1500})).await;
    let event = rich.next(WAIT).await.expect("an event");
    assert_eq!(
        event.event, "bounty_updated",
        "not the publish: {}",
        event.data
    );
    let data = json(&event);
    assert_eq!(
        (data["id"].as_str(), data["budget_cents"].as_u64()),
        (Some(id.as_str()), Some(1500))
    );
    // Now listed by a backfill with that minimum, as it is now.
    let (status, page) = get(&f, "/api/v1/tasks?min_budget_cents=1000").await;
    assert_eq!(status, 200);
    assert_eq!(page["bounties"][0]["id"], id.as_str(), "{page}");
    assert_eq!(page["bounties"][0]["version"], 2, "{page}");
}

#[tokio::test]
async fn racing_changes_from_one_key_get_dense_versions_and_none_is_lost() {
    let f = start("life-race", &[]).await;
    let id = f.publish(&bounty_body("Raced", "python", 500, &[])).await;
    let path = format!("/api/v1/tasks/{id}/stream");
    let (mut watcher, _) = f.subscribe(&path).await;
    let racers = (0..10).map(|n| {
        let f = &f;
        let id = &id;
        async move { patch(f, id, json!({ "title": format!("title {n}") })).await }
    });
    let answers = futures_util::future::join_all(racers).await;
    let mut answered: Vec<u64> = answers
        .iter()
        .map(|bounty| bounty["version"].as_u64().expect("version"))
        .collect();
    answered.sort_unstable();
    assert_eq!(answered, (2..=11).collect::<Vec<_>>(), "one version each");

    let mut seen = Vec::new();
    while seen.len() < 10 {
        let event = watcher.next_named("bounty_updated", WAIT).await;
        let data = json(&event);
        seen.push((
            data["version"].as_u64().expect("version"),
            data["title"].as_str().expect("title").to_owned(),
        ));
    }
    let versions: Vec<u64> = seen.iter().map(|(version, _)| *version).collect();
    assert_eq!(versions, (2..=11).collect::<Vec<_>>(), "in version order");
    let mut titles: Vec<&str> = seen.iter().map(|(_, title)| title.as_str()).collect();
    titles.sort_unstable();
    let mut expected: Vec<String> = (0..10).map(|n| format!("title {n}")).collect();
    expected.sort_unstable();
    assert_eq!(titles, expected, "every change is in the log");
    let (_, now) = get(&f, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(
        now["title"],
        seen[9].1.as_str(),
        "the last change is the state"
    );
}

#[tokio::test]
async fn changes_are_refused_as_the_contract_names_them_and_nothing_is_written() {
    let f = start("life-refuse", &[]).await;
    let id = f
        .publish(&bounty_body("Mine", "python", 500, &["ci"]))
        .await;
    let path = format!("/api/v1/tasks/{id}");

    let other = patch_with(&f, OTHER_KEY, &id, &json!({"title": "theirs"})).await;
    expect_error(other, 403, "forbidden", Some("Authorization")).await;
    let anonymous = http()
        .patch(f.url(&path))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .expect("request");
    expect_error(anonymous, 401, "unauthorized", Some("Authorization")).await;
    let wrong_key = patch_with(&f, "not-a-key", &id, &json!({"title": "x"})).await;
    expect_error(wrong_key, 401, "unauthorized", Some("Authorization")).await;
    let unknown = patch_with(
        &f,
        TEST_KEY,
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        &json!({"title": "x"}),
    )
    .await;
    expect_error(unknown, 404, "not_found", Some("id")).await;

    for (body, param) in [
        (json!({"colour": "red"}), "colour"),
        (json!({"category": "rust"}), "category"),
        (json!({"title": 7}), "title"),
        (json!({"budget_cents": 0}), "budget_cents"),
        (json!({"deadline": "2020-01-01T00:00:00Z"}), "deadline"),
        (json!({"status": "open"}), "status"),
        (json!({"status": "closed"}), "close_reason"),
        (
            json!({"status": "closed", "close_reason": "bored"}),
            "close_reason",
        ),
    ] {
        let response = patch_with(&f, TEST_KEY, &id, &body).await;
        let code = if param == "colour" || param == "category" {
            "unknown_field"
        } else {
            "invalid_field"
        };
        expect_error(response, 422, code, Some(param)).await;
    }
    let not_json = http()
        .patch(f.url(&path))
        .bearer_auth(TEST_KEY)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    expect_error(not_json, 400, "invalid_json", Some("body")).await;
    let huge = http()
        .patch(f.url(&path))
        .bearer_auth(TEST_KEY)
        .header("content-type", "application/json")
        .body(format!("{{\"description\":\"{}\"}}", "x".repeat(70_000)))
        .send()
        .await
        .expect("request");
    expect_error(huge, 413, "payload_too_large", Some("body")).await;
    let text = http()
        .patch(f.url(&path))
        .bearer_auth(TEST_KEY)
        .body("{}")
        .send()
        .await
        .expect("request");
    expect_error(text, 415, "unsupported_media_type", Some("Content-Type")).await;
    let (_, unchanged) = get(&f, &path).await;
    assert_eq!(unchanged["version"], 1, "nothing written: {unchanged}");

    // A body that changes nothing: 200, the same version.
    let same = patch(&f, &id, json!({"title": "Mine", "tags": ["ci"]})).await;
    assert_eq!(same["version"], 1);

    // Idempotency-Key: the same change once, replayed after.
    let keyed = || {
        http()
            .patch(f.url(&path))
            .bearer_auth(TEST_KEY)
            .header("idempotency-key", "raise-1")
            .json(&json!({"budget_cents": 800}))
            .send()
    };
    let first = keyed().await.expect("request");
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("JSON");
    let again = keyed().await.expect("request");
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("JSON");
    assert_eq!(
        (first["version"].as_u64(), again["version"].as_u64()),
        (Some(2), Some(2))
    );

    patch(
        &f,
        &id,
        json!({"status": "closed", "close_reason": "cancelled"}),
    )
    .await;
    let late = patch_with(&f, TEST_KEY, &id, &json!({"title": "too late"})).await;
    expect_error(late, 409, "bounty_closed", Some("id")).await;
    let reclose = patch_with(
        &f,
        TEST_KEY,
        &id,
        &json!({"status": "closed", "close_reason": "awarded"}),
    )
    .await;
    expect_error(reclose, 409, "bounty_closed", Some("id")).await;

    // The backfill lists open bounties only; the lookup any status.
    let open = f
        .publish(&bounty_body("Still open", "python", 500, &[]))
        .await;
    let (_, page) = get(&f, "/api/v1/tasks").await;
    let listed: Vec<&str> = page["bounties"]
        .as_array()
        .expect("bounties")
        .iter()
        .filter_map(|bounty| bounty["id"].as_str())
        .collect();
    assert_eq!(listed, [open.as_str()]);
    let (status, closed) = get(&f, &path).await;
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")));
    assert_eq!(closed["close_reason"], "cancelled");
}

#[tokio::test]
async fn a_bounty_expires_on_its_stream_and_refuses_changes_after() {
    let f = start("life-expire", &[]).await;
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(4);
    let mut body = bounty_body("Short-lived", "python", 500, &[]);
    body["deadline"] = json!(firehose::timefmt::format(deadline));
    let id = f.publish(&body).await;
    let path = format!("/api/v1/tasks/{id}/stream");
    let (mut watcher, _) = f.subscribe(&path).await;
    patch(&f, &id, json!({"budget_cents": 700})).await;
    let connection = watcher.read_connection(WAIT).await;
    assert!(connection.closed, "the stream ends at the expiry");
    assert_eq!(names(&connection), ["bounty_updated", "bounty_expired"]);
    let expired = json(connection.named("bounty_expired")[0]);
    assert_eq!(
        (expired["status"].as_str(), expired["version"].as_u64()),
        (Some("expired"), Some(2))
    );
    assert!(chrono::Utc::now() >= deadline);

    assert_eq!(stream_status(&f, &path, None).await, 204);
    let late = patch_with(&f, TEST_KEY, &id, &json!({"budget_cents": 900})).await;
    expect_error(late, 409, "bounty_closed", Some("id")).await;
    let (_, lookup) = get(&f, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(lookup["status"], "expired");
}

#[tokio::test]
async fn the_per_bounty_stream_checkpoints_resumes_and_is_superseded_like_the_firehose() {
    // Heartbeats of 2 s: a stream superseded from another process (classic mode)
    // learns it within one, well inside the 8 s cap.
    let f = start(
        "life-cap",
        &[("STREAM_MAX_SECONDS", "8"), ("HEARTBEAT_SECONDS", "2")],
    )
    .await;
    let id = f
        .publish(&bounty_body("Long watch", "python", 500, &[]))
        .await;
    let path = format!("/api/v1/tasks/{id}/stream");
    let (mut watcher, _) = f.subscribe(&path).await;
    let connection = watcher.read_connection(WAIT).await;
    assert!(connection.closed);
    let checkpoint = json(connection.named("checkpoint")[0]);
    assert_eq!(checkpoint["reason"], "max_duration");

    // A change while nobody is connected arrives on the resume, once.
    patch(&f, &id, json!({"budget_cents": 650})).await;
    watcher.connect().await;
    let resumed = watcher.next_named("bounty_updated", WAIT).await;
    assert_eq!(json(&resumed)["version"], 2);

    // A second connection with the first one's cursor supersedes it.
    let mut second = Subscriber::resuming(f.url(&path), &resumed.id);
    second.connect().await;
    second.next_named("connected", WAIT).await;
    let rest = watcher.read_connection(WAIT).await;
    assert!(rest.closed);
    let last = rest.events.last().expect("a last frame");
    assert_eq!(last.event, "checkpoint");
    assert_eq!(json(last)["reason"], "superseded");
    patch(
        &f,
        &id,
        json!({"status": "closed", "close_reason": "awarded"}),
    )
    .await;
    let closed = second.next_named("bounty_closed", WAIT).await;
    assert_eq!(json(&closed)["version"], 3);
}
