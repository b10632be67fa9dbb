//! The REST half over real HTTP against DynamoDB Local: the backfill and its exact
//! hand-over to the stream, paging, lookup by id, and idempotent publishing.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use common::{bounty_body, http, Function, Subscriber, TEST_KEY};
use firehose::auth::ApiKeys;
use firehose::bounty::BountyDraft;
use firehose::publish::{append, pick_shard, MAX_BATCH};
use firehose::store::FeedHeads;
use serde_json::{json, Value};

const SECOND: Duration = Duration::from_secs(1);

async fn get_json(url: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = http().get(url).send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

fn ids(page: &Value) -> Vec<String> {
    page["bounties"]
        .as_array()
        .expect("bounties array")
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Follows a listing to its end; returns every page.
async fn all_pages(f: &Function, query: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = f.url(&format!("/api/v1/tasks?{query}"));
        if let Some(token) = &token {
            url.push_str(&format!("&page_token={token}"));
        }
        let (status, page, headers) = get_json(&url).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["access-control-allow-origin"], "*");
        token = page["next_page_token"].as_str().map(str::to_owned);
        pages.push(page);
        if token.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the listing never ends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_stream_from_its_cursor_is_every_bounty_once_while_publishing() {
    let f = Function::on_shared(
        "handover",
        &[
            ("FEED_SHARDS", "3"),
            ("POLL_INTERVAL_MS", "200"),
            ("STREAM_MAX_SECONDS", "3"),
        ],
    )
    .await;
    let mut published = Vec::new();
    for n in 0..20 {
        published.push(
            f.publish(&bounty_body(&format!("before {n}"), "python", 100, &[]))
                .await,
        );
    }

    // Another task publishes every 100 ms through the whole hand-over.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let publisher = {
        let url = f.url("/api/v1/tasks");
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for n in 0.. {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tick.tick() => {}
                }
                let response = http()
                    .post(&url)
                    .bearer_auth(TEST_KEY)
                    .json(&bounty_body(&format!("during {n}"), "python", 100, &[]))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(response.status(), 201);
                let bounty: Value = response.json().await.expect("bounty");
                ids.push(bounty["id"].as_str().expect("id").to_owned());
            }
            ids
        })
    };
    tokio::time::sleep(SECOND).await;

    // Backfill in small pages while the publisher runs.
    let pages = all_pages(&f, "category=python&limit=7").await;
    let stream_cursor = pages[0]["stream_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    assert!(
        pages.iter().all(|p| p["stream_cursor"] == stream_cursor),
        "one snapshot per listing"
    );
    let backfilled: Vec<String> = pages.iter().flat_map(ids).collect();
    assert!(backfilled.len() >= 20, "{}", backfilled.len());

    // Stream from the backfill's cursor while the publisher goes on, across closes.
    let mut sub = Subscriber::resuming(f.url("/api/v1/bounties/stream"), &stream_cursor);
    sub.connect().await;
    tokio::time::sleep(4 * SECOND).await;
    stop_tx.send(()).expect("stop the publisher");
    published.extend(publisher.await.expect("publisher"));
    let expected_from_stream = published.len() - backfilled.len();
    let streamed = sub
        .collect_bounties(expected_from_stream, 60 * SECOND)
        .await;
    // One more publish: anything repeated would arrive before it.
    let sentinel = f
        .publish(&bounty_body("sentinel", "python", 100, &[]))
        .await;
    assert_eq!(sub.collect_bounties(1, 30 * SECOND).await, [sentinel]);

    let mut union: Vec<String> = backfilled.iter().chain(&streamed).cloned().collect();
    let distinct: HashSet<&String> = union.iter().collect();
    assert_eq!(distinct.len(), union.len(), "no bounty twice");
    union.sort();
    published.sort();
    assert_eq!(union, published, "every bounty, backfilled or streamed");
    assert!(sub.connects >= 2, "the stream resumed at least once");
}

fn expired_draft() -> BountyDraft {
    BountyDraft {
        deadline: Utc::now() - chrono::Duration::hours(1),
        ..common::draft("expired", "python")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_250_bounties_returns_each_once_newest_first() {
    let f = Function::on_shared("paging", &[("FEED_SHARDS", "3")]).await;
    let store = f.store(3).await;
    let mut drafts: Vec<BountyDraft> = Vec::new();
    for n in 0..300 {
        // 250 python, 50 rust, and a few python ones whose deadline has passed.
        let category = if n % 6 == 5 { "rust" } else { "python" };
        drafts.push(common::draft(&format!("b{n}"), category));
    }
    drafts.extend((0..4).map(|_| expired_draft()));
    let mut python = Vec::new();
    for chunk in drafts.chunks(MAX_BATCH / 3) {
        let shard = pick_shard(3);
        for bounty in append(&store, shard, chunk).await.expect("append") {
            if bounty.category == "python" && bounty.title != "expired" {
                python.push(bounty.id);
            }
        }
    }
    assert_eq!(python.len(), 250);

    let pages = all_pages(&f, "category=python&limit=100").await;
    let sizes: Vec<usize> = pages.iter().map(|p| ids(p).len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let distinct: HashSet<&String> = listed.iter().collect();
    assert_eq!(distinct.len(), 250, "each once");
    let mut sorted = listed.clone();
    sorted.sort();
    python.sort();
    assert_eq!(sorted, python, "every open python bounty, nothing else");
    let created: Vec<String> = pages
        .iter()
        .flat_map(|p| p["bounties"].as_array().cloned().unwrap_or_default())
        .map(|b| b["created_at"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first across shards"
    );

    // The default page size, and every bounty of any category.
    let everything = all_pages(&f, "").await;
    assert_eq!(ids(&everything[0]).len(), 50);
    assert_eq!(everything.iter().map(|p| ids(p).len()).sum::<usize>(), 300);

    // A token is bound to its filter.
    let token = pages[0]["next_page_token"].as_str().expect("token");
    let (status, body, _) =
        get_json(&f.url(&format!("/api/v1/tasks?category=rust&page_token={token}"))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_page_token");
    assert_eq!(body["error"]["param"], "page_token");
}

/// Every shard non-empty at the most shards a feed may have: a page first reads each
/// shard once, and a shard whose newest entries do not match is walked in several reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_at_the_most_shards_lists_every_bounty_once_across_pages() {
    let shards = firehose::cursor::MAX_FEED_SHARDS;
    let f = Function::on_shared("most-shards", &[("FEED_SHARDS", &shards.to_string())]).await;
    let store = f.store(shards).await;
    let mut python = Vec::new();
    for shard in 0..shards {
        let drafts: Vec<BountyDraft> = (0..2)
            .map(|n| common::draft(&format!("s{shard}-{n}"), "python"))
            .collect();
        for bounty in append(&store, shard, &drafts).await.expect("append") {
            python.push(bounty.id);
        }
    }
    // The newest 450 entries of shard 0 are rust: listing python walks past them.
    let rust: Vec<BountyDraft> = (0..450)
        .map(|n| common::draft(&format!("r{n}"), "rust"))
        .collect();
    for chunk in rust.chunks(MAX_BATCH) {
        append(&store, 0, chunk).await.expect("append");
    }

    let pages = all_pages(&f, "category=python&limit=5").await;
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(listed.len(), 2 * shards, "{} pages", pages.len());
    let mut sorted = listed.clone();
    sorted.sort();
    python.sort();
    assert_eq!(sorted, python, "every python bounty, each once");
    assert!(pages.iter().all(|p| ids(p).len() <= 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounty_is_found_by_its_id_and_an_unknown_id_is_a_404() {
    let f = Function::on_shared("lookup", &[("FEED_SHARDS", "2")]).await;
    let (status, published) = f
        .try_publish(&bounty_body("find me", "python", 4200, &["pytest"]))
        .await;
    assert_eq!(status, 201);
    let id = published["id"].as_str().expect("id");

    let (status, found, headers) = get_json(&f.url(&format!("/api/v1/tasks/{id}"))).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found, published);
    assert_eq!(headers["access-control-allow-origin"], "*");
    let (status, lower, _) =
        get_json(&f.url(&format!("/api/v1/tasks/{}", id.to_ascii_lowercase()))).await;
    assert_eq!(status, 200, "ids are case-insensitive");
    assert_eq!(lower, published);

    let unknown = ulid::Ulid::new().to_string();
    for missing in [unknown.as_str(), "not-an-id", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"] {
        let (status, body, headers) = get_json(&f.url(&format!("/api/v1/tasks/{missing}"))).await;
        assert_eq!(status, 404, "{missing}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
        assert_eq!(body["error"]["param"], "id", "{body}");
    }
}

async fn publish_with_key(f: &Function, key: &str, body: &Value) -> (u16, Value, bool) {
    publish_as(f, TEST_KEY, key, body).await
}

/// Publishes `body` with API key `api_key` and Idempotency-Key `key`.
async fn publish_as(f: &Function, api_key: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let response = http()
        .post(f.url("/api/v1/tasks"))
        .bearer_auth(api_key)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("publish");
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    // A browser's script reads only the headers the response exposes.
    let exposed = response
        .headers()
        .get("access-control-expose-headers")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        exposed
            .split(',')
            .any(|name| name.trim() == "idempotent-replayed"),
        "exposed: {exposed:?}"
    );
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        replayed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_and_body_return_the_same_bounty_without_a_second_write() {
    let f = Function::on_shared("idem", &[]).await;
    let store = f.store(1).await;
    let body = bounty_body("once", "python", 100, &["a", "b"]);

    let (status, first, replayed) = publish_with_key(&f, "key-1", &body).await;
    assert_eq!((status, replayed), (201, false), "{first}");
    let (status, again, replayed) = publish_with_key(&f, "key-1", &body).await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again, first);
    // The same request with its keys in another order and other whitespace.
    let reordered: Value = serde_json::from_str(&format!(
        "{{ \"tags\": [\"a\",\"b\"], \"deadline\": {}, \"budget_cents\": 100, \"category\": \"python\", \"description\": {}, \"title\": \"once\" }}",
        body["deadline"], body["description"]
    ))
    .expect("json");
    let (status, same, _) = publish_with_key(&f, "key-1", &reordered).await;
    assert_eq!(status, 200);
    assert_eq!(same["id"], first["id"]);
    assert_eq!(store.head(0).await.expect("head").seq, 1, "one write");

    // The same key with another body: refused, nothing written.
    let other = bounty_body("twice", "python", 100, &["a", "b"]);
    let (status, err, _) = publish_with_key(&f, "key-1", &other).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    assert_eq!(err["error"]["param"], "Idempotency-Key");
    assert_eq!(store.head(0).await.expect("head").seq, 1);

    // Another key is another bounty; a malformed key is a 400.
    let (status, second, _) = publish_with_key(&f, "key-2", &body).await;
    assert_eq!(status, 201);
    assert_ne!(second["id"], first["id"]);
    let (status, err, _) = publish_with_key(&f, &"k".repeat(300), &body).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_parameter");
    assert_eq!(err["error"]["param"], "Idempotency-Key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_belongs_to_the_api_key_that_used_it() {
    let other_api_key = "another-publisher-key";
    let keys = format!(
        "{}, {}",
        ApiKeys::hash_hex(TEST_KEY),
        ApiKeys::hash_hex(other_api_key)
    );
    let f = Function::on_shared("idemkeys", &[("PUBLISH_API_KEY_SHA256", &keys)]).await;
    let store = f.store(1).await;
    let mine = bounty_body("mine", "python", 100, &[]);
    let theirs = bounty_body("theirs", "python", 200, &[]);

    let (status, first, _) = publish_as(&f, TEST_KEY, "order-1", &mine).await;
    assert_eq!(status, 201, "{first}");
    // Another publisher's "order-1" is its own request, not a reuse of ours.
    let (status, second, replayed) = publish_as(&f, other_api_key, "order-1", &theirs).await;
    assert_eq!((status, replayed), (201, false), "{second}");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(store.head(0).await.expect("head").seq, 2, "two writes");
    // Each still replays its own.
    let (status, again, replayed) = publish_as(&f, other_api_key, "order-1", &theirs).await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again["id"], second["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_idempotency_key_create_one_bounty() {
    let f = Function::on_shared("idemrace", &[]).await;
    let store = f.store(1).await;
    for round in 0..3 {
        let key = format!("race-{round}");
        let body = bounty_body(&format!("race {round}"), "python", 100, &[]);
        let answers =
            futures_util::future::join_all((0..6).map(|_| publish_with_key(&f, &key, &body))).await;
        let statuses: Vec<u16> = answers.iter().map(|(status, _, _)| *status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            5,
            "{statuses:?}"
        );
        let ids: HashSet<&Value> = answers.iter().map(|(_, bounty, _)| &bounty["id"]).collect();
        assert_eq!(ids.len(), 1, "one bounty: {answers:?}");
        assert_eq!(
            store.head(0).await.expect("head").seq,
            round + 1,
            "one write per key"
        );
    }
    let (status, listed, _) = get_json(&f.url("/api/v1/tasks")).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&listed).len(), 3);
    assert_eq!(
        listed["bounties"][0]["title"],
        json!("race 2"),
        "newest first"
    );
}
