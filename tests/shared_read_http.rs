//! One function process, many streams, one read of the log (contract, "One process,
//! many streams"), over real HTTP against DynamoDB Local: every stream still gets
//! exactly its matching bounties, once and in order per shard, whether it started at
//! the heads, from `since` or resumed from its last id; the store sees one poll per
//! shard per interval whatever the number of caught-up streams; a client that stops
//! reading holds nobody up; and the shared read stops when the last stream leaves.
//!
//! Streams are opened in waves of 50, each waited for: `cargo lambda watch` hangs when
//! more than about 100 invocations wait at once (docs/reliability.md).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::function::CONCURRENCY;
use common::{bounty_body, DynamoLocal, Function, Proxy, Subscriber};
use eventsource_stream::Event;
use firehose::cursor::Cursor;
use firehose_testkit::function::Runtime;
use futures_util::future::join_all;

const SHARDS: &str = "2";
const WAVE: usize = 50;

/// The settings every test here runs with: two shards, no per-client cap in the way
/// (every stream comes from 127.0.0.1), streams that outlive the test, one process:
/// managed, one process running many invocations at once; classic, one process
/// running one at a time (which the emulator lets serve many streams, see
/// docs/reliability.md), where the default would start eight.
fn settings<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let concurrency = match Runtime::from_env().expect("FIREHOSE_TEST_RUNTIME") {
        Runtime::Managed => "256",
        Runtime::Classic => "1",
    };
    let mut env = vec![
        ("FEED_SHARDS", SHARDS),
        ("MAX_STREAMS_PER_CLIENT", "10000"),
        ("STREAM_MAX_SECONDS", "600"),
        ("POLL_INTERVAL_MS", "1000"),
        (CONCURRENCY, concurrency),
    ];
    env.extend_from_slice(more);
    env
}

/// One of the filters the streams use, as a query and as the rule it stands for.
struct Filter {
    query: &'static str,
    matches: fn(&Published) -> bool,
}

const FILTERS: [Filter; 5] = [
    Filter {
        query: "",
        matches: |_| true,
    },
    Filter {
        query: "category=python",
        matches: |b| b.category == "python",
    },
    Filter {
        query: "category=rust&min_budget_cents=5000",
        matches: |b| b.category == "rust" && b.budget_cents >= 5000,
    },
    Filter {
        query: "tag=urgent",
        matches: |b| b.urgent,
    },
    Filter {
        query: "category=python&category=go",
        matches: |b| b.category == "python" || b.category == "go",
    },
];

#[derive(Debug, Clone)]
struct Published {
    id: String,
    category: &'static str,
    budget_cents: u64,
    urgent: bool,
}

fn stream_path(query: &str) -> String {
    format!("/api/v1/bounties/stream?{query}")
}

/// Opens a subscriber per path, `WAVE` at a time, each past its `connected`.
async fn open_all(function: &Function, paths: &[String]) -> Vec<Subscriber> {
    let mut subscribers = Vec::with_capacity(paths.len());
    for wave in paths.chunks(WAVE) {
        let opened = join_all(wave.iter().map(|path| async move {
            let (subscriber, _) = function.subscribe(path).await;
            subscriber
        }))
        .await;
        subscribers.extend(opened);
    }
    subscribers
}

/// Publishes `count` bounties from `publishers` concurrent publishers.
async fn publish_all(function: &Function, count: usize, publishers: usize) -> Vec<Published> {
    let per = count / publishers;
    let batches = join_all((0..publishers).map(|p| async move {
        let mut published = Vec::new();
        for n in 0..per {
            let k = p * per + n;
            let category = ["python", "rust", "go", "ts"][k % 4];
            let budget_cents = [1_000, 6_000, 20_000][k % 3];
            let urgent = k.is_multiple_of(5);
            let tags: &[&str] = if urgent { &["urgent"] } else { &["calm"] };
            let id = function
                .publish(&bounty_body(
                    &format!("shared {k}"),
                    category,
                    budget_cents,
                    tags,
                ))
                .await;
            published.push(Published {
                id,
                category,
                budget_cents,
                urgent,
            });
        }
        published
    }))
    .await;
    batches.into_iter().flatten().collect()
}

/// Reads `subscriber` until it has `want` bounties (or `limit` passes), then a little
/// longer to catch a duplicate; returns every `bounty` event.
async fn read_bounties(mut subscriber: Subscriber, want: usize, limit: Duration) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut events = Vec::new();
    let mut settle_until = None;
    loop {
        let now = tokio::time::Instant::now();
        let until = settle_until.unwrap_or(deadline).min(deadline);
        if now >= until {
            return events;
        }
        // The outer timeout decides; the subscriber's own limit is only a backstop.
        let left = until - now;
        match tokio::time::timeout(left, subscriber.next(left + Duration::from_secs(5))).await {
            Ok(Some(event)) if event.event == "bounty" => {
                events.push(event);
                if events.len() >= want && settle_until.is_none() {
                    settle_until = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return events,
            Err(_) => return events,
        }
    }
}

/// Every pair of consecutive cursors moves forward on some shard and back on none:
/// the stream's entries came in log order per shard.
fn assert_in_order_per_shard(events: &[Event], what: &str) {
    let cursors: Vec<Cursor> = events
        .iter()
        .map(|event| Cursor::decode_unchecked(&event.id).expect("a cursor id"))
        .collect();
    for pair in cursors.windows(2) {
        let forward = pair[0]
            .positions
            .iter()
            .zip(&pair[1].positions)
            .all(|(a, b)| a <= b);
        assert!(
            forward && pair[0].positions != pair[1].positions,
            "{what}: out of order {:?} then {:?}",
            pair[0].positions,
            pair[1].positions
        );
    }
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(common::sse::bounty_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_streams_each_get_their_matches_once_in_order_resumed_or_not() {
    let function = Function::on_shared("shared500", &settings(&[])).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    // 400 streams from now, 80 per filter. 50 more will start from `since` during the
    // publishing, and 50 will leave half-way and resume with their last id.
    let live_paths: Vec<String> = (0..400)
        .map(|n| stream_path(FILTERS[n % FILTERS.len()].query))
        .collect();
    let live = open_all(&function, &live_paths).await;
    let leaving_paths: Vec<String> = (0..50)
        .map(|n| stream_path(FILTERS[n % FILTERS.len()].query))
        .collect();
    let leaving = open_all(&function, &leaving_paths).await;

    let publishing = {
        let function = &function;
        async move {
            let first = publish_all(function, 100, 4).await;
            // Half-way: let the leaving streams see some, then the second half.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let second = publish_all(function, 100, 4).await;
            (first, second)
        }
    };
    let late_and_resumed = {
        let function = &function;
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let since_paths: Vec<String> = (0..50)
                .map(|n| {
                    let filter = FILTERS[n % FILTERS.len()].query;
                    stream_path(&format!("{filter}&since={since}"))
                })
                .collect();
            let late = open_all(function, &since_paths).await;
            // The leaving streams read what came so far, drop their connection, and
            // come back with the last id they saw.
            let mut seen_before_leaving = Vec::new();
            let mut resumed = Vec::new();
            for mut subscriber in leaving {
                let mut got = Vec::new();
                while let Ok(Some(event)) = tokio::time::timeout(
                    Duration::from_millis(20),
                    subscriber.next(Duration::from_secs(5)),
                )
                .await
                {
                    if event.event == "bounty" {
                        got.push(event);
                    }
                }
                let url = subscriber.url.clone();
                let last = subscriber
                    .last_event_id
                    .clone()
                    .expect("connected gave an id");
                drop(subscriber);
                let mut again = Subscriber::resuming(url, &last);
                again.connect().await;
                seen_before_leaving.push(got);
                resumed.push(again);
            }
            (late, seen_before_leaving, resumed)
        }
    };
    let ((first, second), (late, seen_before_leaving, resumed)) =
        tokio::join!(publishing, late_and_resumed);
    let published: Vec<Published> = first.into_iter().chain(second).collect();
    assert_eq!(published.len(), 200);
    let expected = |filter: &Filter| -> Vec<String> {
        let mut ids: Vec<String> = published
            .iter()
            .filter(|b| (filter.matches)(b))
            .map(|b| b.id.clone())
            .collect();
        ids.sort();
        ids
    };

    let limit = Duration::from_secs(60);
    let mut readers = Vec::new();
    for (n, subscriber) in live.into_iter().enumerate() {
        let want = expected(&FILTERS[n % FILTERS.len()]).len();
        readers.push((
            "live",
            n,
            tokio::spawn(read_bounties(subscriber, want, limit)),
        ));
    }
    for (n, subscriber) in late.into_iter().enumerate() {
        let want = expected(&FILTERS[n % FILTERS.len()]).len();
        readers.push((
            "since",
            n,
            tokio::spawn(read_bounties(subscriber, want, limit)),
        ));
    }
    let mut before_leaving: HashMap<usize, Vec<Event>> =
        seen_before_leaving.into_iter().enumerate().collect();
    for (n, subscriber) in resumed.into_iter().enumerate() {
        let want = expected(&FILTERS[n % FILTERS.len()]).len()
            - before_leaving.get(&n).map_or(0, Vec::len);
        readers.push((
            "resumed",
            n,
            tokio::spawn(read_bounties(subscriber, want, limit)),
        ));
    }
    let mut resumed_twice = 0;
    for (kind, n, reader) in readers {
        let mut events = reader.await.expect("reader");
        if kind == "resumed" {
            let mut all = before_leaving.remove(&n).unwrap_or_default();
            if !all.is_empty() {
                resumed_twice += 1;
            }
            all.append(&mut events);
            events = all;
        }
        let what = format!("{kind} stream {n} ({})", FILTERS[n % FILTERS.len()].query);
        let mut got = ids(&events);
        got.sort();
        assert_eq!(got, expected(&FILTERS[n % FILTERS.len()]), "{what}");
        assert_in_order_per_shard(&events, &what);
    }
    assert!(
        resumed_twice > 0,
        "some leaving streams saw bounties before they left"
    );
}

/// Query requests the proxy saw from `from` on.
fn queries_since(proxy: &Proxy, from: Instant) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|seen| seen.at >= from && seen.operation == "Query")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caught_up_streams_cost_one_query_per_shard_per_interval_whatever_their_number() {
    let endpoint = DynamoLocal::shared_endpoint().await;
    let proxy = Proxy::start(&endpoint).await.expect("proxy");
    let table = common::dynamo::fresh_table(&endpoint, "sharedq").await;
    let function = Function::start_on_table(&proxy.base, &table, &settings(&[])).await;
    let mut open: Vec<Subscriber> = Vec::new();
    let window = Duration::from_secs(5);
    let shards: usize = SHARDS.parse().expect("shards");
    for n in [1usize, 50, 500] {
        // Mixed filters, each of which takes the bounty published at the end.
        let more: Vec<String> = (open.len()..n)
            .map(|k| {
                let filters = ["", "category=python", "tag=urgent", "min_budget_cents=5000"];
                stream_path(filters[k % filters.len()])
            })
            .collect();
        open.extend(open_all(&function, &more).await);
        // Let the connects' own reads (heads, leases) pass.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let from = Instant::now();
        tokio::time::sleep(window).await;
        let queries = queries_since(&proxy, from);
        // One poll per shard per second, plus one poll that may straddle the window.
        let most = shards * (window.as_secs() as usize + 1);
        assert!(
            queries <= most,
            "{n} idle streams: {queries} Queries in {window:?}, at most {most}"
        );
        assert!(queries >= shards, "{n} idle streams: the log is still read");
    }
    // All 500 still stream: one more bounty reaches every stream whose filter takes it.
    let id = function
        .publish(&bounty_body("to all", "python", 20_000, &["urgent"]))
        .await;
    let got = join_all(open.iter_mut().map(|subscriber| async move {
        common::sse::bounty_id(
            &subscriber
                .next_named("bounty", Duration::from_secs(30))
                .await,
        )
    }))
    .await;
    assert!(got.iter().all(|got| *got == id), "every stream got {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_holds_nobody_up_and_gets_everything_later() {
    let function = Function::on_shared("sharedslow", &settings(&[])).await;
    let (mut stalled, _) = function.subscribe(&stream_path("")).await;
    let paths: Vec<String> = (0..20).map(|_| stream_path("")).collect();
    let readers = open_all(&function, &paths).await;
    // The readers read as events come and note when each bounty arrived.
    let reading: Vec<_> = readers
        .into_iter()
        .map(|mut subscriber| {
            tokio::spawn(async move {
                let mut arrived = HashMap::new();
                while arrived.len() < 30 {
                    match subscriber.next(Duration::from_secs(30)).await {
                        Some(event) if event.event == "bounty" => {
                            arrived.insert(common::sse::bounty_id(&event), Instant::now());
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
                arrived
            })
        })
        .collect();
    // Large bounties, so the stalled connection's buffers fill up.
    let mut answered = Vec::new();
    for k in 0..30 {
        let mut body = bounty_body(&format!("slow {k}"), "python", 1000, &[]);
        body["description"] = serde_json::json!("x".repeat(9_000));
        let id = function.publish(&body).await;
        answered.push((id, Instant::now()));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let poll = Duration::from_millis(1000);
    for reader in reading {
        let arrived = reader.await.expect("reader");
        for (id, published) in &answered {
            let at = arrived
                .get(id)
                .unwrap_or_else(|| panic!("{id} never arrived"));
            let latency = at.saturating_duration_since(*published);
            // One poll interval, the Query, and this loaded machine's scheduling.
            assert!(
                latency <= poll + Duration::from_millis(1500),
                "{id} took {latency:?}"
            );
        }
    }
    // The stalled client reads again: every bounty, once, in order.
    let want: Vec<String> = answered.iter().map(|(id, _)| id.clone()).collect();
    let mut got = Vec::new();
    while got.len() < want.len() {
        match stalled.next(Duration::from_secs(30)).await {
            Some(event) if event.event == "bounty" => got.push(common::sse::bounty_id(&event)),
            Some(_) => {}
            None => panic!("the stalled stream ended early"),
        }
    }
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shared_read_stops_when_the_last_stream_leaves() {
    let endpoint = DynamoLocal::shared_endpoint().await;
    let proxy = Proxy::start(&endpoint).await.expect("proxy");
    let table = common::dynamo::fresh_table(&endpoint, "sharedstop").await;
    // A short heartbeat: the emulator notices a departed client at the next write.
    let function = Function::start_on_table(
        &proxy.base,
        &table,
        &settings(&[("HEARTBEAT_SECONDS", "1")]),
    )
    .await;
    let paths: Vec<String> = (0..10).map(|_| stream_path("")).collect();
    let subscribers = open_all(&function, &paths).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        queries_since(&proxy, from) > 0,
        "read while streams are open"
    );
    drop(subscribers);
    // A heartbeat to notice each departure, then at most one poll interval.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        queries_since(&proxy, quiet_from),
        0,
        "no read of the log once every stream has left"
    );
    // And a new stream starts it again.
    let (mut again, _) = function.subscribe(&stream_path("")).await;
    let id = function
        .publish(&bounty_body("after", "python", 1000, &[]))
        .await;
    let event = again.next_named("bounty", Duration::from_secs(10)).await;
    assert_eq!(common::sse::bounty_id(&event), id);
}
