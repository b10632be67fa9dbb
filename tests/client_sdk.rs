//! The Rust SDK (package firehose-client) against the real function under
//! `cargo lambda watch` and DynamoDB Local: reconnects at the stream's time cap, through
//! cut, stalled and refused connections, its wait when refused for too many open
//! streams (429), and its stop on any other 4xx.
//!
//! De-duplication is turned off in the delivery tests (`dedupe_window(0)`), so "exactly
//! once" is what the wire and the SDK's resume deliver, not what the window hides.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Proxy;
use common::{bounty_body, eventually, Function};
use firehose_client::{Client, ClientError, Filter, StartAt, SubscribeOptions, SubscriptionEvent};
use futures_util::StreamExt;

const SECOND: Duration = Duration::from_secs(1);

/// What a background subscriber has seen so far.
#[derive(Default)]
struct Seen {
    bounties: Vec<String>,
    connects: usize,
    failures: usize,
    end: Option<String>,
}

/// Runs `client.subscribe_events(options)` in the background.
fn collect(client: Client, options: impl Into<SubscribeOptions>) -> Arc<Mutex<Seen>> {
    let options = options.into();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(client.subscribe_events(options));
        while let Some(event) = events.next().await {
            let mut seen = sink.lock().unwrap();
            match event {
                Ok(SubscriptionEvent::Connected(_)) => seen.connects += 1,
                Ok(SubscriptionEvent::Bounty(bounty)) => seen.bounties.push(bounty.id),
                Ok(SubscriptionEvent::Reconnecting { failures, .. }) => {
                    if failures > 0 {
                        seen.failures += 1;
                    }
                }
                Err(err) => seen.end = Some(err.to_string()),
            }
        }
        sink.lock()
            .unwrap()
            .end
            .get_or_insert_with(|| "ended".into());
    });
    seen
}

async fn connected(seen: &Arc<Mutex<Seen>>, times: usize) {
    eventually("the subscriber to connect", 60 * SECOND, || async {
        (seen.lock().unwrap().connects >= times).then_some(())
    })
    .await;
}

/// Waits until `seen` holds as many bounties as `published`, then checks it holds
/// exactly those, once each, in publish order.
async fn assert_exactly_once(seen: &Arc<Mutex<Seen>>, published: &[String]) {
    eventually("every published bounty", 60 * SECOND, || async {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.end, None, "the subscription ended");
        (seen.bounties.len() >= published.len()).then_some(())
    })
    .await;
    // Anything extra (a duplicate) would come within a poll or two.
    tokio::time::sleep(2 * SECOND).await;
    let seen = seen.lock().unwrap();
    let unique: HashSet<_> = seen.bounties.iter().collect();
    assert_eq!(
        unique.len(),
        seen.bounties.len(),
        "duplicates: {:?}",
        seen.bounties
    );
    assert_eq!(seen.bounties, published, "missing, extra or out of order");
}

fn client(base: &str) -> Client {
    Client::builder(base)
        .dedupe_window(0)
        .initial_retry(Duration::from_millis(200))
        .max_backoff(2 * SECOND)
        .build()
        .expect("client")
}

fn python() -> Filter {
    Filter::new().category("python").min_budget_cents(50_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bounty_exactly_once_across_30_seconds_of_stream_rotations() {
    let f = Function::on_shared(
        "sdk-rotate",
        &[("STREAM_MAX_SECONDS", "3"), ("POLL_INTERVAL_MS", "200")],
    )
    .await;
    let seen = collect(client(&f.base), python());
    connected(&seen, 1).await;

    let mut published = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = tokio::time::Instant::now() + 30 * SECOND;
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        tick.tick().await;
        n += 1;
        if n % 4 == 0 {
            // Just under the minimum budget: must never arrive.
            f.publish(&bounty_body(&format!("cheap {n}"), "python", 49_999, &[]))
                .await;
        } else {
            published.push(
                f.publish(&bounty_body(&format!("match {n}"), "python", 50_000, &[]))
                    .await,
            );
        }
    }
    assert_exactly_once(&seen, &published).await;
    let connects = seen.lock().unwrap().connects;
    assert!(
        connects >= 5,
        "a 3 s cap over 30 s means many reconnects, saw {connects}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_stream_lose_nothing() {
    let f = Function::on_shared("sdk-cut", &[("POLL_INTERVAL_MS", "200")]).await;
    let proxy = Proxy::start(&f.base).await.expect("proxy");
    let seen = collect(client(&proxy.base), python());
    connected(&seen, 1).await;

    let mut published = Vec::new();
    for round in 1..=3 {
        for i in 0..5 {
            published.push(
                f.publish(&bounty_body(
                    &format!("r{round} b{i}"),
                    "python",
                    60_000,
                    &[],
                ))
                .await,
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Cut once bounties of this round are flowing, mid-stream.
        eventually("some of this round", 30 * SECOND, || async {
            (seen.lock().unwrap().bounties.len() > (round - 1) * 5).then_some(())
        })
        .await;
        proxy.cut_all();
        connected(&seen, round + 1).await;
    }
    assert_exactly_once(&seen, &published).await;
    assert!(
        seen.lock().unwrap().failures >= 3,
        "each cut is a reconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_for_five_seconds_loses_nothing() {
    let f = Function::on_shared("sdk-outage", &[("POLL_INTERVAL_MS", "200")]).await;
    let proxy = Proxy::start(&f.base).await.expect("proxy");
    let seen = collect(client(&proxy.base), python());
    connected(&seen, 1).await;

    let mut published = vec![
        f.publish(&bounty_body("before", "python", 50_000, &[]))
            .await,
    ];
    eventually("the first bounty", 30 * SECOND, || async {
        (seen.lock().unwrap().bounties.len() == 1).then_some(())
    })
    .await;
    let outage = tokio::spawn(async move {
        proxy.outage(5 * SECOND).await;
        proxy
    });
    // Published while the subscriber cannot reach the server.
    for i in 0..10 {
        published.push(
            f.publish(&bounty_body(&format!("during {i}"), "python", 50_000, &[]))
                .await,
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _proxy = outage.await.expect("outage task");
    published.push(
        f.publish(&bounty_body("after", "python", 50_000, &[]))
            .await,
    );
    assert_exactly_once(&seen, &published).await;
    let seen = seen.lock().unwrap();
    assert!(
        seen.failures >= 2,
        "refused connections are retried with backoff, saw {} failures",
        seen.failures
    );
    assert!(seen.connects >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_silent_for_twice_the_heartbeat_is_dropped_and_resumed() {
    let f = Function::on_shared(
        "sdk-silent",
        &[("POLL_INTERVAL_MS", "200"), ("HEARTBEAT_SECONDS", "1")],
    )
    .await;
    let proxy = Proxy::start(&f.base).await.expect("proxy");
    let sdk = Client::builder(&proxy.base)
        .dedupe_window(0)
        .heartbeat(SECOND)
        .initial_retry(Duration::from_millis(200))
        .build()
        .expect("client");
    let seen = collect(sdk, python());
    connected(&seen, 1).await;
    let mut published = vec![
        f.publish(&bounty_body("before", "python", 50_000, &[]))
            .await,
    ];
    eventually("the first bounty", 30 * SECOND, || async {
        (seen.lock().unwrap().bounties.len() == 1).then_some(())
    })
    .await;
    // The link goes quiet without closing: only the watchdog can notice.
    proxy.stall_all();
    published.push(
        f.publish(&bounty_body("while stalled", "python", 50_000, &[]))
            .await,
    );
    connected(&seen, 2).await;
    assert_exactly_once(&seen, &published).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_filter_ends_the_subscription_with_the_servers_message_and_no_retry() {
    let f = Function::on_shared("sdk-400", &[]).await;
    let proxy = Proxy::start(&f.base).await.expect("proxy");
    let sdk = Client::builder(&proxy.base)
        .initial_retry(Duration::from_millis(50))
        .build()
        .expect("client");
    let mut bounties = std::pin::pin!(sdk.subscribe(Filter::new().category("Not a slug!")));
    let first = tokio::time::timeout(30 * SECOND, bounties.next())
        .await
        .expect("an answer");
    match first {
        Some(Err(ClientError::Rejected {
            status,
            code,
            param,
            message,
        })) => {
            assert_eq!(status, 400);
            assert_eq!(code, "invalid_parameter");
            assert_eq!(param.as_deref(), Some("category"));
            assert!(message.contains("Not a slug!"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(
        bounties.next().await.is_none(),
        "the stream ends after the error"
    );
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(
        proxy.requests_to("GET", "/api/v1/bounties/stream"),
        1,
        "a 4xx is never retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_stream_hands_over_without_a_gap_or_a_repeat() {
    let f = Function::on_shared("sdk-backfill", &[("POLL_INTERVAL_MS", "200")]).await;
    let mut published = Vec::new();
    for i in 0..7 {
        published.push(
            f.publish(&bounty_body(&format!("old {i}"), "python", 50_000, &[]))
                .await,
        );
        f.publish(&bounty_body(&format!("old cheap {i}"), "python", 100, &[]))
            .await;
    }
    // Pages of 2 make the backfill follow page tokens; publishing goes on meanwhile,
    // so some bounties land around the snapshot.
    let sdk = Client::builder(&f.base)
        .dedupe_window(0)
        .page_size(2)
        .build()
        .expect("client");
    let seen = collect(
        sdk,
        SubscribeOptions {
            filter: python(),
            start: StartAt::Backfill { max: 1000 },
        },
    );
    for i in 0..10 {
        published.push(
            f.publish(&bounty_body(&format!("new {i}"), "python", 50_000, &[]))
                .await,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Backfilled oldest first, then streamed: together, exactly the publish order.
    assert_exactly_once(&seen, &published).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_follows_pages_newest_first_up_to_the_limit() {
    let f = Function::on_shared("sdk-pages", &[]).await;
    let mut published = Vec::new();
    for i in 0..5 {
        published.push(
            f.publish(&bounty_body(&format!("b{i}"), "python", 50_000, &[]))
                .await,
        );
    }
    let sdk = Client::builder(&f.base)
        .page_size(2)
        .build()
        .expect("client");
    let (bounties, cursor) = sdk.backfill(&python(), 4).await.expect("backfill");
    let ids: Vec<_> = bounties.iter().map(|b| b.id.clone()).collect();
    let newest_first: Vec<_> = published.iter().rev().take(4).cloned().collect();
    assert_eq!(ids, newest_first);
    assert!(!cursor.is_empty());
    let one = sdk.get(&published[0]).await.expect("get");
    assert_eq!(one.title, "b0");
    let missing = sdk.get("01ARZ3NDEKTSV4RRFFQ69G5FAV").await.unwrap_err();
    assert_eq!(missing.code(), Some("not_found"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refused_at_its_stream_cap_waits_as_told_then_connects() {
    let f = Function::on_shared(
        "sdk-429",
        &[
            ("MAX_STREAMS_PER_CLIENT", "1"),
            ("STREAM_MAX_SECONDS", "5"),
            ("HEARTBEAT_SECONDS", "1"),
        ],
    )
    .await;
    // Another stream from this address holds the only slot; it closes at its 5 s cap.
    let held = common::http()
        .get(f.url("/api/v1/bounties/stream"))
        .send()
        .await
        .expect("the first stream");
    assert_eq!(held.status(), 200);
    let refused_at = std::time::Instant::now();

    let mut events = std::pin::pin!(client(&f.base).subscribe_events(python()));
    let first = tokio::time::timeout(30 * SECOND, events.next())
        .await
        .expect("an event");
    match first {
        Some(Ok(SubscriptionEvent::Reconnecting {
            failures,
            delay,
            reason,
        })) => {
            assert_eq!(failures, 1);
            assert!(reason.contains("429"), "{reason}");
            // Retry-After is whole seconds, at least 1: the client waits at least that
            // long, although its own back-off starts at 200 ms.
            assert!(delay >= SECOND, "{delay:?}");
        }
        other => panic!("expected a 429 and a wait, got {other:?}"),
    }
    drop(held);
    let connected = loop {
        match tokio::time::timeout(30 * SECOND, events.next()).await {
            Ok(Some(Ok(SubscriptionEvent::Connected(_)))) => break refused_at.elapsed(),
            Ok(Some(Ok(SubscriptionEvent::Reconnecting { reason, .. }))) => {
                assert!(reason.contains("429"), "{reason}");
            }
            other => panic!("expected to connect once the slot is free, got {other:?}"),
        }
    };
    assert!(connected >= SECOND, "connected after {connected:?}");
    let id = f
        .publish(&bounty_body("after the wait", "python", 60_000, &[]))
        .await;
    let delivered = loop {
        match tokio::time::timeout(30 * SECOND, events.next()).await {
            Ok(Some(Ok(SubscriptionEvent::Bounty(bounty)))) => break bounty.id,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected the bounty, got {other:?}"),
        }
    };
    assert_eq!(delivered, id);
}
