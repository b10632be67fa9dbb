//! The stream, over real HTTP through `cargo lambda watch`, against DynamoDB Local,
//! read with a real SSE parser. Each test runs its own function and table.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use common::sse::{bounty_id, json};
use common::{bounty_body, http, DynamoLocal, Function, Subscriber};
use firehose::timefmt;
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

fn no_duplicates(ids: &[String]) -> bool {
    ids.iter().collect::<HashSet<_>>().len() == ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_only_bounties_matching_category_budget_tags_and_deadline() {
    let f = Function::on_shared("filter", &[("POLL_INTERVAL_MS", "250")]).await;
    let (mut sub, connected) = f.subscribe(
        "/api/v1/bounties/stream?category=python,rust&min_budget_cents=10000&tag=pytest&tag=tokio&deadline_after=2098-01-01T00:00:00Z",
    ).await;
    assert_eq!(
        connected["filter"],
        json!({"categories":["python","rust"],"min_budget_cents":10000,"tags":["pytest","tokio"],"deadline_after":"2098-01-01T00:00:00.000Z"})
    );
    assert_eq!(connected["resumed"], false);

    let first = f
        .publish(&bounty_body("match", "python", 20_000, &["pytest"]))
        .await;
    f.publish(&bounty_body("wrong category", "go", 20_000, &["pytest"]))
        .await;
    f.publish(&bounty_body("budget too low", "python", 9_999, &["pytest"]))
        .await;
    f.publish(&bounty_body(
        "no matching tag",
        "python",
        20_000,
        &["django"],
    ))
    .await;
    let mut early = bounty_body("deadline too early", "python", 20_000, &["pytest"]);
    early["deadline"] = json!("2097-01-01T00:00:00Z");
    f.publish(&early).await;
    let second = f
        .publish(&bounty_body(
            "boundary budget, second tag",
            "rust",
            10_000,
            &["x", "tokio"],
        ))
        .await;

    let ids = sub.collect_bounties(2, 30 * SECOND).await;
    assert_eq!(ids, [first.clone(), second.clone()]);
    // Nothing else is on its way: the next bounty seen is the next match.
    let third = f
        .publish(&bounty_body("third", "python", 10_000, &["pytest"]))
        .await;
    assert_eq!(sub.collect_bounties(1, 30 * SECOND).await, [third]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_at_connect_time() {
    let f = Function::on_shared("anchor", &[("POLL_INTERVAL_MS", "250")]).await;
    f.publish(&bounty_body("before", "python", 100, &[])).await;
    let (mut sub, _) = f.subscribe("/api/v1/bounties/stream").await;
    let after = f.publish(&bounty_body("after", "python", 100, &[])).await;
    assert_eq!(sub.collect_bounties(1, 30 * SECOND).await, [after]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_while_idle_then_checkpoints_and_closes_at_the_cap() {
    let f = Function::on_shared(
        "heartbeat",
        &[("HEARTBEAT_SECONDS", "1"), ("STREAM_MAX_SECONDS", "4")],
    )
    .await;
    // The function's cap starts after the request is sent, so the stream cannot close
    // sooner than the cap after sending. (The response head is no reference: on a
    // loaded machine the emulator can hand it over late, after the stream began.)
    let sent = std::time::Instant::now();
    let response = http()
        .get(f.url("/api/v1/bounties/stream"))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let text = tokio::time::timeout(30 * SECOND, response.text())
        .await
        .expect("closes")
        .expect("body");
    let elapsed = sent.elapsed();
    assert!(
        text.starts_with("retry: 2000\n\nevent: connected\nid: ")
            && text.contains("\ndata: {\"filter\""),
        "{text}"
    );
    let heartbeats = text.matches("\n: heartbeat\n\n").count();
    assert!(
        (2..=4).contains(&heartbeats),
        "{heartbeats} heartbeats in {text}"
    );
    let tail = text.rsplit("\n\n").nth(1).expect("last frame");
    assert!(tail.starts_with("event: checkpoint\nid: "), "{tail}");
    assert!(tail.contains("\"reason\":\"max_duration\""), "{tail}");
    assert!(
        elapsed >= 4 * SECOND,
        "closed {elapsed:?} after the request, before the cap"
    );
    let connected = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("data: {\"filter\"")
                .map(|rest| format!("{{\"filter\"{rest}"))
        })
        .expect("connected data");
    let connected: serde_json::Value = serde_json::from_str(&connected).expect("connected JSON");
    let instant =
        |field: &str| timefmt::parse(connected[field].as_str().unwrap_or_default()).expect(field);
    assert_eq!(
        (instant("closes_at") - instant("server_time")).num_milliseconds(),
        4000
    );
    assert_eq!(connected["heartbeat_ms"], 1000, "{connected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_across_the_close_with_last_event_id_losing_nothing() {
    let f = Function::on_shared(
        "resume",
        &[("POLL_INTERVAL_MS", "250"), ("STREAM_MAX_SECONDS", "3")],
    )
    .await;
    let (mut sub, _) = f.subscribe("/api/v1/bounties/stream?category=python").await;
    let a = f.publish(&bounty_body("a", "python", 100, &[])).await;
    let first = sub.read_connection(30 * SECOND).await;
    assert!(first.closed, "the server closes at the cap");
    let checkpoint = first.events.last().expect("events");
    assert_eq!(checkpoint.event, "checkpoint");
    assert_eq!(
        json(checkpoint)["cursor"].as_str(),
        Some(checkpoint.id.as_str())
    );
    assert_eq!(json(checkpoint)["reason"], "max_duration");
    // `a` arrived before the close, or comes right after the resume: never both.
    let before_close = first.bounty_ids();

    // Published while nobody is connected.
    let b = f.publish(&bounty_body("b", "python", 100, &[])).await;
    f.publish(&bounty_body("other", "rust", 100, &[])).await;
    let c = f.publish(&bounty_body("c", "python", 100, &[])).await;
    let expected = [a, b, c];
    let want = expected.len() - before_close.len();

    // With the Last-Event-ID header (what EventSource does)...
    let mut header_resume = Subscriber::new(sub.url.clone());
    header_resume.last_event_id = Some(checkpoint.id.clone());
    header_resume.connect().await;
    let connected = json(&header_resume.next_named("connected", 30 * SECOND).await);
    assert_eq!(connected["resumed"], true);
    let after = header_resume.collect_bounties(want, 30 * SECOND).await;
    assert_eq!([before_close.clone(), after].concat(), expected);

    // ...and with the last_event_id parameter, for clients that cannot set headers.
    let mut param_resume = Subscriber::new(f.url(&format!(
        "/api/v1/bounties/stream?category=python&last_event_id={}",
        checkpoint.id
    )));
    let after = param_resume.collect_bounties(want, 30 * SECOND).await;
    assert_eq!([before_close, after].concat(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_replays_from_a_time_within_the_look_back() {
    let f = Function::on_shared("since", &[("POLL_INTERVAL_MS", "250")]).await;
    f.publish(&bounty_body("too early", "python", 100, &[]))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = timefmt::format(Utc::now());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let a = f.publish(&bounty_body("a", "python", 100, &[])).await;
    let b = f.publish(&bounty_body("b", "python", 100, &[])).await;
    let (mut sub, connected) = f
        .subscribe(&format!("/api/v1/bounties/stream?since={since}"))
        .await;
    assert_eq!(connected["resumed"], true);
    let c_publisher = async {
        tokio::time::sleep(SECOND).await;
        f.publish(&bounty_body("c", "python", 100, &[])).await
    };
    let (ids, c) = tokio::join!(sub.collect_bounties(3, 30 * SECOND), c_publisher);
    assert_eq!(ids, [a, b, c]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_racing_across_stream_closes_are_each_delivered_exactly_once() {
    let f = Function::on_shared(
        "race",
        &[
            ("POLL_INTERVAL_MS", "200"),
            ("STREAM_MAX_SECONDS", "2"),
            ("FEED_SHARDS", "3"),
        ],
    )
    .await;
    let (mut sub, _) = f.subscribe("/api/v1/bounties/stream").await;
    let publishers = (0..4).map(|p| {
        let f = &f;
        async move {
            let mut ids = Vec::new();
            for n in 0..30 {
                ids.push(
                    f.publish(&bounty_body(&format!("p{p}-{n}"), "python", 100, &[]))
                        .await,
                );
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..60))).await;
            }
            ids
        }
    });
    let (published, received) = tokio::join!(
        futures_util::future::join_all(publishers),
        sub.collect_bounties(120, 90 * SECOND)
    );
    let mut published: Vec<String> = published.into_iter().flatten().collect();
    assert_eq!(published.len(), 120);
    assert!(no_duplicates(&received), "duplicates in {received:?}");
    assert!(
        sub.connects >= 2,
        "the stream closed and resumed ({} connects)",
        sub.connects
    );
    let mut sorted = received.clone();
    sorted.sort();
    published.sort();
    assert_eq!(sorted, published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_held_between_taking_its_position_and_committing_is_not_skipped() {
    use firehose::publish::{append, entries_after};
    use firehose::store::{AppendError, FeedHeads, FeedWriter};

    let f = Function::on_shared(
        "slowpub",
        &[("POLL_INTERVAL_MS", "200"), ("STREAM_MAX_SECONDS", "3")],
    )
    .await;
    let store = f.store(1).await;
    let (mut sub, _) = f.subscribe("/api/v1/bounties/stream").await;

    // The slow publisher takes its position...
    let held = store.head(0).await.expect("head");
    let draft = common::draft("slow", "python");
    let slow_entries = entries_after(held, Utc::now(), 0, std::slice::from_ref(&draft), None);
    // ...others publish and are delivered, so the stream's cursor moves past it...
    let x = f.publish(&bounty_body("x", "python", 100, &[])).await;
    let y = f.publish(&bounty_body("y", "python", 100, &[])).await;
    assert_eq!(
        sub.collect_bounties(2, 30 * SECOND).await,
        [x.clone(), y.clone()]
    );
    // ...then it commits: the log refuses an entry behind the head,
    let refused = store.append_after(0, held, slow_entries, None).await;
    assert!(
        matches!(refused, Err(AppendError::HeadMoved)),
        "{refused:?}"
    );
    // and the publisher's retry lands after the head, where the stream will see it.
    let committed = append(&store, 0, &[draft]).await.expect("append");
    assert_eq!(committed[0].title, "slow");

    // Across the stream's close and resume: exactly once.
    let after_resume = sub.collect_bounties(1, 30 * SECOND).await;
    assert_eq!(after_resume, [committed[0].id.clone()]);
    let z = f.publish(&bounty_body("z", "python", 100, &[])).await;
    let rest = sub.collect_bounties(1, 30 * SECOND).await;
    assert_eq!(rest, [z], "nothing repeated after the resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_10000_reaches_one_stream_complete_in_order_without_duplicates() {
    use firehose::publish::{append, MAX_BATCH};

    let f = Function::on_shared(
        "burst",
        &[("POLL_INTERVAL_MS", "500"), ("STREAM_MAX_SECONDS", "300")],
    )
    .await;
    let store = f.store(1).await;
    let (mut sub, _) = f.subscribe("/api/v1/bounties/stream").await;

    let draft = common::draft("burst", "python");
    let drafts = vec![draft; 10_000];
    let writer = async {
        let mut ids = Vec::new();
        for chunk in drafts.chunks(MAX_BATCH) {
            ids.extend(
                append(&store, 0, chunk)
                    .await
                    .expect("append")
                    .into_iter()
                    .map(|b| b.id),
            );
        }
        ids
    };
    let (published, received) = tokio::join!(writer, sub.collect_bounties(10_000, 240 * SECOND));
    assert_eq!(received.len(), 10_000);
    assert!(
        received == published,
        "received in publication order, each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_mid_stream_sends_errors_then_delivers_what_it_missed() {
    let mut own = DynamoLocal::start(true).await.expect("DynamoDB Local");
    let endpoint = own.endpoint();
    let f = Function::start(
        &endpoint,
        "outage",
        &[("POLL_INTERVAL_MS", "250"), ("STREAM_MAX_SECONDS", "120")],
    )
    .await;
    let (mut sub, _) = f.subscribe("/api/v1/bounties/stream").await;

    // Published just before the store goes away: the stream may not have read it yet.
    let a = f.publish(&bounty_body("a", "python", 100, &[])).await;
    own.stop();
    // Until the first error frame: `a` may have been read before the store went away.
    let mut before_error = Vec::new();
    let error = loop {
        let event = sub.next(30 * SECOND).await.expect("the stream stays open");
        match event.event.as_str() {
            "bounty" => before_error.push(bounty_id(&event)),
            "error" => break json(&event),
            _ => {}
        }
    };
    assert_eq!(error["code"], "store_unavailable");
    assert!(error["retry_in_ms"].as_u64().is_some_and(|ms| ms > 0));
    // A publish during the outage is refused cleanly, not half-written.
    let (status, body) = f
        .try_publish(&bounty_body("refused", "python", 100, &[]))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    // A new stream is not refused with a status an EventSource would never retry: it
    // is a 200 stream of `retry:` and one `error` frame, without an id, that ends.
    let refused = http()
        .get(f.url("/api/v1/bounties/stream"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 200);
    assert_eq!(refused.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(30 * SECOND, refused.text())
        .await
        .expect("the outage answer ends")
        .expect("body");
    assert!(
        text.starts_with("retry: 2000\n\nevent: error\ndata: {\"code\":\"store_unavailable\""),
        "{text}"
    );
    assert!(
        !text.contains("\nid:"),
        "no id: the client keeps its own: {text}"
    );
    assert_eq!(
        text.matches("\n\n").count(),
        2,
        "two frames, then the end: {text}"
    );
    // The REST paths keep answering 503 with Retry-After.
    let listing = http()
        .get(f.url("/api/v1/tasks"))
        .send()
        .await
        .expect("request");
    assert_eq!(listing.status(), 503);
    assert_eq!(listing.headers()["retry-after"], "1");

    own.resume().await.expect("DynamoDB Local again");
    let b = f.publish(&bounty_body("b", "python", 100, &[])).await;
    let after = sub
        .collect_bounties(2 - before_error.len(), 60 * SECOND)
        .await;
    let mut ids = [before_error, after].concat();
    ids.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(ids, expected, "each bounty once, outage or not");
    let c = f.publish(&bounty_body("c", "python", 100, &[])).await;
    assert_eq!(
        sub.collect_bounties(1, 30 * SECOND).await,
        [c],
        "nothing repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_client_ends_its_stream_at_the_next_write() {
    let f = Function::on_shared(
        "departed",
        &[("HEARTBEAT_SECONDS", "1"), ("POLL_INTERVAL_MS", "250")],
    )
    .await;
    let (sub, _) = f.subscribe("/api/v1/bounties/stream").await;
    drop(sub);
    // Gone at the next heartbeat write: no more polling for nobody.
    let closed = common::eventually(
        "the stream to end after the client left",
        30 * SECOND,
        || async {
            f.logs()
                .lines()
                .any(|line| line.contains("firehose::access") && line.contains("client_gone"))
                .then_some(())
        },
    )
    .await;
    let _: () = closed;
}

/// Never a silent gap: an entry deleted by hand ahead of a stream is waited for (it
/// could be a commit not yet visible), then skipped after the grace period (30 s) with
/// an `error` frame that names it, before what follows it is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_deleted_ahead_of_a_stream_is_announced_as_a_gap_then_the_rest_follows() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use firehose::cursor::Position;
    use firehose::store::FeedHeads;

    let f = Function::on_shared("gap", &[("POLL_INTERVAL_MS", "250")]).await;
    let (first, connected) = f.subscribe("/api/v1/bounties/stream").await;
    let cursor = connected["cursor"].as_str().expect("cursor").to_owned();
    drop(first);
    let store = f.store(1).await;
    let head = store.head(0).await.expect("head");
    let drafts = [
        common::draft("a", "python"),
        common::draft("b", "python"),
        common::draft("c", "python"),
    ];
    let published = firehose::publish::append(&store, 0, &drafts)
        .await
        .expect("append");
    let (_, created_ms) = firehose::bounty::id::locate(&published[1].id).expect("our id");
    let deleted = Position {
        created_ms,
        seq: head.seq + 2,
    };
    common::dynamo::client(&f.dynamo_endpoint)
        .await
        .delete_item()
        .table_name(&f.table)
        .key("pk", AttributeValue::S("feed#0".into()))
        .key("sk", AttributeValue::S(deleted.sort_key()))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send()
        .await
        .expect("delete")
        .attributes
        .expect("the entry of b was there");

    let mut sub = Subscriber::resuming(f.url("/api/v1/bounties/stream"), &cursor);
    sub.connect().await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = sub.next(90 * SECOND).await.expect("the stream stays open");
        match event.event.as_str() {
            "bounty" => seen.push(format!("bounty {}", bounty_id(&event))),
            "error" => {
                let error = json(&event);
                assert_eq!(
                    (
                        &error["code"],
                        &error["shard"],
                        &error["first_seq"],
                        &error["last_seq"]
                    ),
                    (
                        &json!("gap"),
                        &json!(0),
                        &json!(deleted.seq),
                        &json!(deleted.seq)
                    ),
                    "{error}"
                );
                seen.push("gap".to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            format!("bounty {}", published[0].id),
            "gap".to_owned(),
            format!("bounty {}", published[2].id)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_entry_is_named_in_an_error_and_skipped_by_stream_and_backfill() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use firehose::cursor::Position;
    use firehose::store::FeedHeads;

    let f = Function::on_shared("poison", &[("POLL_INTERVAL_MS", "250")]).await;
    let (first, connected) = f.subscribe("/api/v1/bounties/stream").await;
    let cursor = connected["cursor"].as_str().expect("cursor").to_owned();
    drop(first);
    let store = f.store(1).await;
    let head = store.head(0).await.expect("head");
    let drafts = [
        common::draft("a", "python"),
        common::draft("b", "python"),
        common::draft("c", "python"),
    ];
    let published = firehose::publish::append(&store, 0, &drafts)
        .await
        .expect("append");
    let (_, created_ms) = firehose::bounty::id::locate(&published[1].id).expect("our id");
    let poisoned = Position {
        created_ms,
        seq: head.seq + 2,
    };
    // The item stays in the log, with a bounty no version of this code wrote.
    common::dynamo::client(&f.dynamo_endpoint)
        .await
        .update_item()
        .table_name(&f.table)
        .key("pk", AttributeValue::S("feed#0".into()))
        .key("sk", AttributeValue::S(poisoned.sort_key()))
        .update_expression("SET bounty = :junk")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":junk", AttributeValue::S("{\"title\": 42".into()))
        .send()
        .await
        .expect("the entry of b was there");

    let mut sub = Subscriber::resuming(f.url("/api/v1/bounties/stream"), &cursor);
    sub.connect().await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        // Well within the 30 s a gap would wait: an unreadable entry is no gap.
        let event = sub.next(10 * SECOND).await.expect("the stream stays open");
        match event.event.as_str() {
            "bounty" => seen.push(format!("bounty {}", bounty_id(&event))),
            "error" => {
                let error = json(&event);
                assert_eq!(
                    (&error["code"], &error["shard"], &error["seq"], &error["id"]),
                    (
                        &json!("unreadable_entry"),
                        &json!(0),
                        &json!(poisoned.seq),
                        &json!(published[1].id)
                    ),
                    "{error}"
                );
                seen.push("unreadable".to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            format!("bounty {}", published[0].id),
            "unreadable".to_owned(),
            format!("bounty {}", published[2].id)
        ]
    );
    // The backfill lists the others, and does not fail for it.
    let listing = http()
        .get(f.url("/api/v1/tasks?limit=10"))
        .send()
        .await
        .expect("backfill");
    assert_eq!(listing.status(), 200);
    let listing: serde_json::Value = listing.json().await.expect("json");
    let ids: Vec<&str> = listing["bounties"]
        .as_array()
        .expect("bounties")
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, [published[2].id.as_str(), published[0].id.as_str()]);
    assert!(
        f.logs().contains("unreadable log entry"),
        "the operator is told"
    );
}
