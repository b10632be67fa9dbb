//! The Rust SDK (package firehose-client) against the real function under
//! `cargo lambda watch` and DynamoDB Local: reconnects at the stream's time cap, through
//! cut, stalled and refused connections, its wait when refused for too many open
//! streams (429), and its stop on any other 4xx. The bounty lifecycle: `watch` (each
//! change once, across rotations, ending at the close), `update`, `close`, their
//! errors, and `subscribe_changes`.
//!
//! De-duplication is turned off in the delivery tests (`dedupe_window(0)`), so "exactly
//! once" is what the wire and the SDK's resume deliver, not what the window hides.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Proxy;
use common::{bounty_body, eventually, Function, TEST_KEY};
use firehose_client::{
    BountyPatch, Change, Client, ClientError, CloseReason, FeedEvent, Filter, StartAt,
    SubscribeOptions, SubscriptionEvent, WatchEvent,
};
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

/// The next watch event within 30 s (the stream must not end first).
async fn next_watch_event(
    events: &mut (impl futures_util::Stream<Item = Result<WatchEvent, ClientError>> + Unpin),
) -> WatchEvent {
    match tokio::time::timeout(30 * SECOND, events.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

/// Changes only, until the watch ends by itself (within 60 s).
async fn remaining_changes(
    events: &mut (impl futures_util::Stream<Item = Result<WatchEvent, ClientError>> + Unpin),
) -> Vec<Change> {
    let mut changes = Vec::new();
    loop {
        match tokio::time::timeout(60 * SECOND, events.next()).await {
            Ok(None) => return changes,
            Ok(Some(Ok(WatchEvent::Change(change)))) => changes.push(change),
            Ok(Some(Ok(_))) => {}
            other => panic!("the watch failed or hung after {changes:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_yields_each_update_and_the_close_then_ends() {
    let f = Function::on_shared("sdk-watch", &[("POLL_INTERVAL_MS", "200")]).await;
    let id = f
        .publish(&bounty_body("watched", "python", 50_000, &["pytest"]))
        .await;
    let sdk = client(&f.base);
    let mut events = std::pin::pin!(sdk.watch_events(&id, None));
    match next_watch_event(&mut events).await {
        WatchEvent::Connected(connected) => {
            assert_eq!(connected.bounty.id, id);
            assert_eq!(connected.bounty.version, 1);
            assert_eq!(connected.bounty.status, "open");
        }
        other => panic!("expected connected first, got {other:?}"),
    }

    let raised = sdk
        .update(
            &id,
            &BountyPatch::new().budget_cents(60_000),
            TEST_KEY,
            None,
        )
        .await
        .expect("update");
    assert_eq!((raised.version, raised.budget_cents), (2, 60_000));
    let renamed = sdk
        .update(
            &id,
            &BountyPatch::new()
                .title("watched, renamed")
                .tags(["pytest", "ci"]),
            TEST_KEY,
            Some("rename-1"),
        )
        .await
        .expect("update");
    assert_eq!(renamed.version, 3);
    // The same idempotency key again: the first answer, not a fourth version.
    let again = sdk
        .update(
            &id,
            &BountyPatch::new()
                .title("watched, renamed")
                .tags(["pytest", "ci"]),
            TEST_KEY,
            Some("rename-1"),
        )
        .await
        .expect("replayed update");
    assert_eq!(again.version, 3);
    let closed = sdk
        .close(&id, CloseReason::Awarded, TEST_KEY, None)
        .await
        .expect("close");
    assert_eq!(closed.status, "closed");
    assert_eq!(closed.close_reason, Some(CloseReason::Awarded));
    assert!(closed.closed_at.is_some());

    let changes = remaining_changes(&mut events).await;
    let seen: Vec<(&str, u64)> = changes
        .iter()
        .map(|c| (c.kind(), c.bounty().version))
        .collect();
    assert_eq!(seen, [("updated", 2), ("updated", 3), ("closed", 4)]);
    assert_eq!(changes[0].bounty().budget_cents, 60_000);
    assert_eq!(changes[1].bounty().title, "watched, renamed");
    assert_eq!(changes[1].bounty().tags, ["pytest", "ci"]);
    assert_eq!(changes[2].bounty(), &closed);

    // Closed: no more changes (409), and a new watch ends at once (204).
    let refused = sdk
        .update(&id, &BountyPatch::new().budget_cents(1), TEST_KEY, None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("bounty_closed"), "{refused}");
    let after: Vec<_> = tokio::time::timeout(30 * SECOND, sdk.watch(&id).collect::<Vec<_>>())
        .await
        .expect("a watch of a closed bounty ends at once");
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(sdk.get(&id).await.expect("get").version, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_update_errors_carry_the_servers_code() {
    let f = Function::on_shared("sdk-watch-errors", &[]).await;
    let sdk = client(&f.base);
    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let items: Vec<_> = tokio::time::timeout(30 * SECOND, sdk.watch(unknown).collect::<Vec<_>>())
        .await
        .expect("a 404 ends the watch");
    match items.as_slice() {
        [Err(ClientError::Rejected { status: 404, .. })] => {}
        other => panic!("expected one 404, got {other:?}"),
    }
    let patch = BountyPatch::new().budget_cents(70_000);
    let missing = sdk
        .update(unknown, &patch, TEST_KEY, None)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ClientError::Rejected { status: 404, .. }),
        "{missing}"
    );
    let id = f.publish(&bounty_body("mine", "python", 50_000, &[])).await;
    let wrong_key = sdk
        .update(&id, &patch, "not-a-key", None)
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_key, ClientError::Rejected { status: 401, .. }),
        "{wrong_key}"
    );
    let bad = sdk
        .update(&id, &BountyPatch::new().budget_cents(0), TEST_KEY, None)
        .await
        .unwrap_err();
    match &bad {
        ClientError::Rejected { status, param, .. } => {
            assert_eq!(
                (*status, param.as_deref()),
                (422, Some("budget_cents")),
                "{bad}"
            );
        }
        other => panic!("expected a 422, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_across_stream_rotations_without_a_loss_or_a_repeat() {
    let f = Function::on_shared(
        "sdk-watch-rotate",
        &[("STREAM_MAX_SECONDS", "3"), ("POLL_INTERVAL_MS", "200")],
    )
    .await;
    let id = f
        .publish(&bounty_body("long-lived", "python", 50_000, &[]))
        .await;
    let sdk = client(&f.base);
    let mut events = Box::pin(sdk.watch_events(&id, None));
    assert!(matches!(
        next_watch_event(&mut events).await,
        WatchEvent::Connected(_)
    ));
    // Read the stream in the background while changes are made across several
    // rotations (every 3 s).
    let reader = tokio::spawn(async move {
        let mut changes = Vec::new();
        let mut connects = 1;
        while let Some(event) = events.next().await {
            match event.expect("no error") {
                WatchEvent::Change(change) => changes.push(change),
                WatchEvent::Connected(_) => connects += 1,
                _ => {}
            }
        }
        (changes, connects)
    });
    for cents in [51_000, 52_000, 53_000, 54_000] {
        sdk.update(&id, &BountyPatch::new().budget_cents(cents), TEST_KEY, None)
            .await
            .expect("update");
        tokio::time::sleep(2 * SECOND).await;
    }
    sdk.close(&id, CloseReason::Cancelled, TEST_KEY, None)
        .await
        .expect("close");
    let (changes, connects) = tokio::time::timeout(60 * SECOND, reader)
        .await
        .expect("the watch ends after the close")
        .expect("reader");
    let seen: Vec<(&str, u64, u64)> = changes
        .iter()
        .map(|c| (c.kind(), c.bounty().version, c.bounty().budget_cents))
        .collect();
    assert_eq!(
        seen,
        [
            ("updated", 2, 51_000),
            ("updated", 3, 52_000),
            ("updated", 4, 53_000),
            ("updated", 5, 54_000),
            ("closed", 6, 54_000),
        ]
    );
    assert!(
        connects >= 3,
        "a 3 s cap over ~8 s: reconnects, saw {connects}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_changes_delivers_new_updated_and_closed_bounties_in_order() {
    let f = Function::on_shared("sdk-changes", &[("POLL_INTERVAL_MS", "200")]).await;
    let sdk = client(&f.base);
    let mut events = std::pin::pin!(sdk.subscribe_changes(python()));
    match tokio::time::timeout(30 * SECOND, events.next()).await {
        Ok(Some(Ok(FeedEvent::Connected(_)))) => {}
        other => panic!("expected connected, got {other:?}"),
    }
    let id = f
        .publish(&bounty_body("tracked", "python", 50_000, &[]))
        .await;
    sdk.update(
        &id,
        &BountyPatch::new().budget_cents(80_000),
        TEST_KEY,
        None,
    )
    .await
    .expect("update");
    sdk.close(&id, CloseReason::Awarded, TEST_KEY, None)
        .await
        .expect("close");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(30 * SECOND, events.next()).await {
            Ok(Some(Ok(FeedEvent::Bounty(b)))) => seen.push(("new", b.id, b.version)),
            Ok(Some(Ok(FeedEvent::Updated(b)))) => seen.push(("updated", b.id, b.version)),
            Ok(Some(Ok(FeedEvent::Closed(b)))) => seen.push(("closed", b.id, b.version)),
            Ok(Some(Ok(_))) => {}
            other => panic!("expected the changes, got {other:?} after {seen:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("new", id.clone(), 1),
            ("updated", id.clone(), 2),
            ("closed", id, 3)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_at_the_expiry_after_an_update_at_the_same_version() {
    let f = Function::on_shared("sdk-watch-expire", &[("POLL_INTERVAL_MS", "200")]).await;
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(4);
    let mut body = bounty_body("short-lived", "python", 50_000, &[]);
    body["deadline"] = serde_json::json!(firehose::timefmt::format(deadline));
    let id = f.publish(&body).await;
    let sdk = client(&f.base);
    let mut events = std::pin::pin!(sdk.watch_events(&id, None));
    assert!(matches!(
        next_watch_event(&mut events).await,
        WatchEvent::Connected(_)
    ));
    sdk.update(
        &id,
        &BountyPatch::new().budget_cents(55_000),
        TEST_KEY,
        None,
    )
    .await
    .expect("update");
    let changes = remaining_changes(&mut events).await;
    let seen: Vec<(&str, u64, &str)> = changes
        .iter()
        .map(|c| (c.kind(), c.bounty().version, c.bounty().status.as_str()))
        .collect();
    // The expiry is no one's change: it keeps the update's version, and still arrives.
    assert_eq!(seen, [("updated", 2, "open"), ("expired", 2, "expired")]);
    assert!(chrono::Utc::now() >= deadline);
}
