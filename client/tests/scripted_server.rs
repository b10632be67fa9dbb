//! The subscription loop against a scripted HTTP server on loopback: each connection
//! gets the next canned response, and every request head is recorded. This pins down
//! the decisions the real function rarely provokes: `retry:`, `Retry-After`, `204`,
//! `5xx`, resume ids, de-duplication and a wrong content type; and, with responses
//! played in timed steps, heartbeats, silent links, reconnect loops and endless lines.
//! The stream of one bounty (`watch`) and the firehose with changes
//! (`subscribe_changes`) go through the same loop: their tests pin what is theirs
//! (the URL, resuming, the end at a close, `204`, `404`, repeats dropped by version).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use firehose_client::backoff::MIN_SERVER_RETRY;
use firehose_client::sse::MAX_FRAME_BYTES;
use firehose_client::{
    Change, Client, ClientError, FeedEvent, Filter, SubscriptionEvent, WatchEvent,
};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// One step of a response: bytes to write, or a pause with the connection held open.
#[derive(Debug, Clone)]
enum Step {
    Send(String),
    Wait(Duration),
}

/// A scripted server: where it listens, each request head, and when each arrived.
struct Scripted {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

/// Serves `responses` in order (one per connection; the last one repeats), recording
/// each request head.
async fn scripted(responses: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let server = scripted_steps(responses.into_iter().map(|r| vec![Step::Send(r)]).collect()).await;
    (server.base, server.requests)
}

/// Like [`scripted`], each response played step by step, then the connection closed.
async fn scripted_steps(responses: Vec<Vec<Step>>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let times = arrivals.clone();
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let response = responses[served.min(responses.len() - 1)].clone();
            served += 1;
            let log = log.clone();
            times.lock().unwrap().push(Instant::now());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                for step in response {
                    match step {
                        Step::Send(bytes) => {
                            if socket.write_all(bytes.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        Step::Wait(pause) => tokio::time::sleep(pause).await,
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    Scripted {
        base,
        requests,
        arrivals,
    }
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

fn sse(body: &str) -> String {
    format!("{SSE_HEAD}{body}")
}

fn status(code: u16, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

const CONNECTED: &str = "event: connected\nid: c0\ndata: {\"filter\":{},\"server_time\":\"t\",\"cursor\":\"c0\",\"resumed\":false,\"closes_at\":\"t\"}\n\n";

/// `connected` as a v1.1 server sends it, announcing its heartbeat interval.
fn connected_with_heartbeat(ms: u64) -> String {
    format!("event: connected\nid: c0\ndata: {{\"filter\":{{}},\"server_time\":\"t\",\"cursor\":\"c0\",\"resumed\":false,\"closes_at\":\"t\",\"heartbeat_ms\":{ms}}}\n\n")
}

const HEARTBEAT: &str = ": heartbeat\n\n";

const CHECKPOINT: &str =
    "event: checkpoint\nid: k1\ndata: {\"cursor\":\"k1\",\"reason\":\"max_duration\"}\n\n";

fn bounty(id: &str, cursor: &str) -> String {
    format!(
        "event: bounty\nid: {cursor}\ndata: {{\"id\":\"{id}\",\"title\":\"t\",\"description\":\"\",\"category\":\"python\",\"budget_cents\":100,\"currency\":\"USD\",\"tags\":[],\"deadline\":\"2099-01-01T00:00:00.000Z\",\"created_at\":\"2026-01-01T00:00:00.000Z\",\"status\":\"open\"}}\n\n"
    )
}

fn client(base: &str) -> Client {
    Client::builder(base)
        .initial_retry(Duration::from_secs(5))
        .jitter(0.0)
        .build()
        .unwrap()
}

/// The first `n` items of the subscription.
async fn take(client: &Client, n: usize) -> Vec<Result<SubscriptionEvent, ClientError>> {
    let events = client.subscribe_events(Filter::new().category("python"));
    tokio::time::timeout(Duration::from_secs(30), events.take(n).collect())
        .await
        .expect("items within 30 s")
}

fn last_event_id(head: &str) -> Option<&str> {
    head.lines()
        .find_map(|line| line.strip_prefix("last-event-id: "))
        .map(str::trim)
}

#[tokio::test]
async fn retry_field_sets_the_delay_and_resume_uses_the_last_bounty_id() {
    // 400 ms: above the floor a server's retry may set (a lower one is raised to it).
    let first = sse(&format!("retry: 400\n\n{CONNECTED}{}", bounty("b1", "c1")));
    let second = sse(&format!(
        "{CONNECTED}{}{}",
        bounty("b1", "c1"),
        bounty("b2", "c2")
    ));
    let (base, requests) = scripted(vec![first, second]).await;
    let items = take(&client(&base), 5).await;
    let items: Vec<_> = items.into_iter().map(Result::unwrap).collect();
    match &items[2] {
        SubscriptionEvent::Reconnecting {
            failures,
            delay,
            reason,
        } => {
            assert_eq!(*failures, 1);
            // retry: 400 replaced the 5 s initial delay.
            assert_eq!(*delay, Duration::from_millis(400));
            assert!(reason.contains("closed"), "{reason}");
        }
        other => panic!("expected a reconnect, got {other:?}"),
    }
    let ids: Vec<_> = items
        .iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Bounty(b) => Some(b.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["b1", "b2"], "b1 sent twice, delivered once");
    let requests = requests.lock().unwrap();
    assert_eq!(last_event_id(&requests[0]), None);
    assert_eq!(last_event_id(&requests[1]), Some("c1"));
    assert!(requests[1].starts_with("get /api/v1/bounties/stream?category=python "));
}

#[tokio::test]
async fn a_close_after_a_checkpoint_reconnects_at_once_from_its_cursor() {
    let first = sse(&format!(
        "retry: 3000\n\n{CONNECTED}event: checkpoint\nid: k9\ndata: {{\"cursor\":\"k9\",\"reason\":\"max_duration\"}}\n\n"
    ));
    let (base, requests) = scripted(vec![first, sse(CONNECTED)]).await;
    let items = take(&client(&base), 3).await;
    match items[1].as_ref().unwrap() {
        SubscriptionEvent::Reconnecting {
            failures, delay, ..
        } => {
            assert_eq!((*failures, *delay), (0, Duration::ZERO));
        }
        other => panic!("expected a reconnect, got {other:?}"),
    }
    assert_eq!(last_event_id(&requests.lock().unwrap()[1]), Some("k9"));
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_and_retry_after_is_a_floor() {
    let unavailable = status(
        503,
        "retry-after: 1\r\n",
        r#"{"error":{"code":"store_unavailable","param":null,"message":"the store is down"}}"#,
    );
    let (base, requests) = scripted(vec![unavailable, sse(CONNECTED)]).await;
    let quick = Client::builder(&base)
        .initial_retry(Duration::from_millis(10))
        .build()
        .unwrap();
    let items = take(&quick, 2).await;
    match items[0].as_ref().unwrap() {
        SubscriptionEvent::Reconnecting {
            failures,
            delay,
            reason,
        } => {
            assert_eq!(*failures, 1);
            assert!(*delay >= Duration::from_secs(1), "{delay:?}");
            assert!(
                reason.contains("503") && reason.contains("the store is down"),
                "{reason}"
            );
        }
        other => panic!("expected a reconnect, got {other:?}"),
    }
    assert!(matches!(items[1], Ok(SubscriptionEvent::Connected(_))));
    assert_eq!(requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_204_ends_the_stream_without_a_retry() {
    let (base, requests) = scripted(vec![
        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_owned()
    ])
    .await;
    let items = take(&client(&base), 10).await;
    assert!(items.is_empty(), "{items:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_4xx_ends_the_stream_with_the_servers_words() {
    let body = r#"{"error":{"code":"cursor_too_old","param":"last_event_id","message":"that cursor is older than the look-back window: backfill instead"}}"#;
    let (base, requests) = scripted(vec![status(400, "", body)]).await;
    let items = take(&client(&base), 10).await;
    assert_eq!(items.len(), 1);
    let err = items.into_iter().next().unwrap().unwrap_err();
    assert_eq!(err.code(), Some("cursor_too_old"));
    assert!(err.to_string().contains("backfill instead"), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_200_that_is_not_an_event_stream_is_a_clear_error() {
    let page = "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";
    let (base, _) = scripted(vec![page.to_owned()]).await;
    let items = take(&client(&base), 10).await;
    assert_eq!(items.len(), 1);
    let err = items.into_iter().next().unwrap().unwrap_err();
    assert!(err.to_string().contains("text/html"), "{err}");
}

#[tokio::test]
async fn gives_up_after_max_failures_when_asked() {
    let (base, requests) = scripted(vec![status(502, "", "bad gateway")]).await;
    let client = Client::builder(&base)
        .initial_retry(Duration::from_millis(5))
        .max_failures(3)
        .build()
        .unwrap();
    let items = take(&client, 10).await;
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert!(
        matches!(last, ClientError::GaveUp { attempts: 3, .. }),
        "{last}"
    );
    assert_eq!(requests.lock().unwrap().len(), 3);
}

/// `(failures, delay)` of every `Reconnecting` among `items`.
fn reconnects(items: &[Result<SubscriptionEvent, ClientError>]) -> Vec<(u32, Duration)> {
    items
        .iter()
        .filter_map(|item| match item {
            Ok(SubscriptionEvent::Reconnecting {
                failures, delay, ..
            }) => Some((*failures, *delay)),
            _ => None,
        })
        .collect()
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn a_link_quieter_than_the_setting_but_within_the_servers_heartbeat_is_kept() {
    // The client's own setting would call the link dead after 800 ms; the server says
    // it beats every 1.5 s and does so every second: the link is alive throughout.
    let mut steps = vec![Step::Send(format!(
        "{SSE_HEAD}{}",
        connected_with_heartbeat(1500)
    ))];
    for _ in 0..3 {
        steps.push(Step::Wait(1000 * MS));
        steps.push(Step::Send(HEARTBEAT.to_owned()));
    }
    steps.push(Step::Send(bounty("b1", "c1")));
    let server = scripted_steps(vec![steps]).await;
    let client = Client::builder(&server.base)
        .heartbeat(400 * MS)
        .initial_retry(50 * MS)
        .jitter(0.0)
        .build()
        .unwrap();
    let items = take(&client, 3).await;
    match items[0].as_ref().unwrap() {
        SubscriptionEvent::Connected(connected) => assert_eq!(connected.heartbeat_ms, Some(1500)),
        other => panic!("expected connected, got {other:?}"),
    }
    match items[1].as_ref().unwrap() {
        SubscriptionEvent::Bounty(bounty) => assert_eq!(bounty.id, "b1"),
        other => panic!("the link was dropped before the bounty: {other:?}"),
    }
    match items[2].as_ref().unwrap() {
        SubscriptionEvent::Reconnecting { reason, .. } => {
            assert!(reason.contains("closed"), "{reason}")
        }
        other => panic!("expected a reconnect, got {other:?}"),
    }
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_link_silent_for_twice_the_servers_heartbeat_is_dropped_whatever_the_setting() {
    let steps = vec![
        Step::Send(format!("{SSE_HEAD}{}", connected_with_heartbeat(300))),
        Step::Wait(Duration::from_secs(20)),
    ];
    let server = scripted_steps(vec![steps]).await;
    let client = Client::builder(&server.base)
        .heartbeat(Duration::from_secs(10))
        .jitter(0.0)
        .build()
        .unwrap();
    let mut events = std::pin::pin!(client.subscribe_events(Filter::new()));
    let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    assert!(
        matches!(first, Ok(Some(Ok(SubscriptionEvent::Connected(_))))),
        "{first:?}"
    );
    let connected_at = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("dropped long before the setting's 20 s");
    let silent = connected_at.elapsed();
    match second {
        Some(Ok(SubscriptionEvent::Reconnecting { reason, .. })) => {
            assert!(reason.contains("no byte for 600ms"), "{reason}")
        }
        other => panic!("expected a reconnect, got {other:?}"),
    }
    assert!(
        silent >= 550 * MS && silent < 3000 * MS,
        "dropped after {silent:?}, expected about 600 ms"
    );
}

#[tokio::test]
async fn retry_zero_is_floored_and_the_reconnects_still_back_off() {
    let server = scripted_steps(vec![vec![Step::Send(sse("retry: 0\n\n"))]]).await;
    let items = take(&client(&server.base), 4).await;
    let floor = MIN_SERVER_RETRY;
    assert_eq!(
        reconnects(&items),
        [(1, floor), (2, floor * 2), (3, floor * 4), (4, floor * 8)]
    );
    // What the server saw: attempts spaced by at least the floor, and growing.
    let arrivals = server.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 4);
    let gaps: Vec<_> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, least) in gaps.iter().zip([floor, floor * 2, floor * 4]) {
        assert!(*gap >= least, "gaps {gaps:?}");
    }
}

#[tokio::test]
async fn a_connect_then_drop_loop_backs_off_until_a_checkpoint_proves_the_link() {
    let dropped = vec![Step::Send(sse(CONNECTED))];
    let rotated = vec![Step::Send(sse(&format!("{CONNECTED}{CHECKPOINT}")))];
    let server = scripted_steps(vec![
        dropped.clone(),
        dropped.clone(),
        dropped.clone(),
        dropped.clone(),
        rotated,
        dropped,
    ])
    .await;
    let client = Client::builder(&server.base)
        .initial_retry(50 * MS)
        .jitter(0.0)
        .build()
        .unwrap();
    let items = take(&client, 12).await;
    assert_eq!(
        reconnects(&items),
        [
            (1, 50 * MS),
            (2, 100 * MS),
            (3, 200 * MS),
            (4, 400 * MS),
            // The checkpoint: a planned rotation, at once, and the count starts over.
            (0, Duration::ZERO),
            (1, 50 * MS),
        ]
    );
    assert_eq!(
        last_event_id(&server.requests.lock().unwrap()[5]),
        Some("k1")
    );
}

#[tokio::test]
async fn a_connection_that_carries_a_heartbeat_a_full_interval_has_proved_itself() {
    let dropped = vec![Step::Send(sse(CONNECTED))];
    let lived = vec![
        Step::Send(format!("{SSE_HEAD}{}", connected_with_heartbeat(300))),
        Step::Wait(400 * MS),
        Step::Send(HEARTBEAT.to_owned()),
    ];
    let server = scripted_steps(vec![dropped.clone(), dropped.clone(), lived, dropped]).await;
    let client = Client::builder(&server.base)
        .initial_retry(50 * MS)
        .jitter(0.0)
        .build()
        .unwrap();
    let items = take(&client, 8).await;
    assert_eq!(
        reconnects(&items),
        [(1, 50 * MS), (2, 100 * MS), (1, 50 * MS), (2, 100 * MS)]
    );
}

#[tokio::test]
async fn an_endless_line_is_a_broken_connection_not_unbounded_memory() {
    let endless = vec![
        Step::Send(format!(
            "{SSE_HEAD}{CONNECTED}data: {}",
            "x".repeat(MAX_FRAME_BYTES + 10)
        )),
        // Held open: only the line limit, not a close or the idle timer, ends it.
        Step::Wait(Duration::from_secs(20)),
    ];
    let server = scripted_steps(vec![endless, vec![Step::Send(sse(CONNECTED))]]).await;
    let client = Client::builder(&server.base)
        .initial_retry(50 * MS)
        .jitter(0.0)
        .build()
        .unwrap();
    let items = take(&client, 3).await;
    match items[1].as_ref().unwrap() {
        SubscriptionEvent::Reconnecting {
            failures,
            delay,
            reason,
        } => {
            assert_eq!((*failures, *delay), (1, 50 * MS));
            assert!(reason.contains("longer than 1048576 bytes"), "{reason}");
        }
        other => panic!("expected a reconnect, got {other:?}"),
    }
    assert!(matches!(items[2], Ok(SubscriptionEvent::Connected(_))));
    assert_eq!(
        last_event_id(&server.requests.lock().unwrap()[1]),
        Some("c0")
    );
}

/// A bounty's JSON at `version` with `status` (closed ones awarded).
fn bounty_at(id: &str, version: u64, status: &str) -> String {
    let closed = if status == "closed" {
        r#","closed_at":"2026-01-01T00:00:09.000Z","close_reason":"awarded""#
    } else {
        ""
    };
    format!(
        r#"{{"id":"{id}","title":"t v{version}","description":"","category":"python","budget_cents":100,"currency":"USD","tags":[],"deadline":"2099-01-01T00:00:00.000Z","created_at":"2026-01-01T00:00:00.000Z","status":"{status}","version":{version},"updated_at":"2026-01-01T00:00:0{version}.000Z"{closed}}}"#
    )
}

/// A change frame: `event` with the bounty after it, at `cursor`.
fn change(event: &str, id: &str, version: u64, status: &str, cursor: &str) -> String {
    format!(
        "event: {event}\nid: {cursor}\ndata: {}\n\n",
        bounty_at(id, version, status)
    )
}

/// The per-bounty stream's `connected`, with the bounty at `version`.
fn watch_connected(id: &str, version: u64, cursor: &str) -> String {
    format!(
        "event: connected\nid: {cursor}\ndata: {{\"bounty\":{},\"cursor\":\"{cursor}\",\"closes_at\":\"t\",\"heartbeat_ms\":15000}}\n\n",
        bounty_at(id, version, "open")
    )
}

/// `(kind, version)` of each change.
fn versions(changes: &[Change]) -> Vec<(&'static str, u64)> {
    changes
        .iter()
        .map(|c| (c.kind(), c.bounty().version))
        .collect()
}

#[tokio::test]
async fn watch_resumes_after_the_last_change_drops_a_repeat_and_ends_at_the_close() {
    let first = sse(&format!(
        "retry: 300\n\n{}{}",
        watch_connected("b1", 1, "w0"),
        change("bounty_updated", "b1", 2, "open", "w1")
    ));
    // The server repeats v2 after the reconnect; anything after the close is never read.
    let second = sse(&format!(
        "{}{}{}{}{}",
        watch_connected("b1", 3, "w1"),
        change("bounty_updated", "b1", 2, "open", "w1"),
        change("bounty_updated", "b1", 3, "open", "w2"),
        change("bounty_closed", "b1", 4, "closed", "w3"),
        change("bounty_updated", "b1", 5, "open", "w4"),
    ));
    let (base, requests) = scripted(vec![first, second]).await;
    let changes: Vec<Change> = tokio::time::timeout(
        Duration::from_secs(30),
        client(&base).watch("b1").map(Result::unwrap).collect(),
    )
    .await
    .expect("the watch ends by itself");
    assert_eq!(
        versions(&changes),
        [("updated", 2), ("updated", 3), ("closed", 4)]
    );
    match &changes[2] {
        Change::Closed(bounty) => {
            assert_eq!(
                bounty.close_reason,
                Some(firehose_client::CloseReason::Awarded)
            );
            assert!(bounty.is_final());
        }
        other => panic!("expected the close, got {other:?}"),
    }
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 2, "no reconnect after the close");
    assert!(requests[0].starts_with("get /api/v1/tasks/b1/stream "));
    assert_eq!(last_event_id(&requests[0]), None);
    assert_eq!(last_event_id(&requests[1]), Some("w1"));
}

#[tokio::test]
async fn an_expiry_at_the_version_of_the_last_update_is_delivered_and_ends_the_watch() {
    // An expiry is no one's change: it keeps the version of the update before it.
    let first = sse(&format!(
        "retry: 300\n\n{}{}",
        watch_connected("b1", 1, "w0"),
        change("bounty_updated", "b1", 2, "open", "w1")
    ));
    let second = sse(&format!(
        "{}{}{}",
        watch_connected("b1", 2, "w1"),
        change("bounty_updated", "b1", 2, "open", "w1"),
        change("bounty_expired", "b1", 2, "expired", "w2"),
    ));
    let (base, requests) = scripted(vec![first, second]).await;
    let changes: Vec<Change> = tokio::time::timeout(
        Duration::from_secs(30),
        client(&base).watch("b1").map(Result::unwrap).collect(),
    )
    .await
    .expect("the watch ends by itself");
    assert_eq!(versions(&changes), [("updated", 2), ("expired", 2)]);
    assert_eq!(requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn watch_reports_the_bounty_at_connect_and_resumes_at_once_after_a_checkpoint() {
    let first = sse(&format!(
        "retry: 3000\n\n{}event: checkpoint\nid: k7\ndata: {{\"cursor\":\"k7\",\"reason\":\"max_duration\"}}\n\n",
        watch_connected("b1", 2, "w0")
    ));
    let second = sse(&format!(
        "{}{}",
        watch_connected("b1", 2, "k7"),
        change("bounty_expired", "b1", 3, "expired", "w5")
    ));
    let (base, requests) = scripted(vec![first, second]).await;
    let events: Vec<WatchEvent> = tokio::time::timeout(
        Duration::from_secs(30),
        client(&base)
            .watch_events("b1", None)
            .map(Result::unwrap)
            .collect(),
    )
    .await
    .expect("the watch ends by itself");
    assert_eq!(events.len(), 4, "{events:?}");
    match &events[0] {
        WatchEvent::Connected(connected) => {
            assert_eq!(
                (connected.bounty.version, connected.cursor.as_str()),
                (2, "w0")
            );
        }
        other => panic!("expected connected, got {other:?}"),
    }
    assert!(matches!(
        events[1],
        WatchEvent::Reconnecting {
            failures: 0,
            delay: Duration::ZERO,
            ..
        }
    ));
    match &events[3] {
        WatchEvent::Change(Change::Expired(bounty)) => assert_eq!(bounty.status, "expired"),
        other => panic!("expected the expiry, got {other:?}"),
    }
    assert_eq!(last_event_id(&requests.lock().unwrap()[1]), Some("k7"));
}

#[tokio::test]
async fn watch_can_resume_from_a_saved_cursor() {
    let (base, requests) = scripted(vec![sse(&format!(
        "{}{}",
        watch_connected("b1", 4, "w3"),
        change("bounty_closed", "b1", 4, "closed", "w4")
    ))])
    .await;
    let events: Vec<_> = client(&base)
        .watch_events("b1", Some("w3"))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(last_event_id(&requests.lock().unwrap()[0]), Some("w3"));
}

#[tokio::test]
async fn watching_a_bounty_already_closed_ends_on_204_without_a_retry() {
    let (base, requests) = scripted(vec![
        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_owned()
    ])
    .await;
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(30),
        client(&base).watch_events("b1", None).collect::<Vec<_>>(),
    )
    .await
    .expect("ends at once");
    assert!(events.is_empty(), "{events:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn watching_an_unknown_bounty_is_a_404_error_and_never_retried() {
    let body = r#"{"error":{"code":"not_found","param":null,"message":"no bounty with id nope"}}"#;
    let (base, requests) = scripted(vec![status(404, "", body)]).await;
    let items: Vec<_> = tokio::time::timeout(
        Duration::from_secs(30),
        client(&base).watch("nope").collect::<Vec<_>>(),
    )
    .await
    .expect("ends at once");
    assert_eq!(items.len(), 1, "{items:?}");
    match &items[0] {
        Err(ClientError::Rejected { status, code, .. }) => {
            assert_eq!((*status, code.as_str()), (404, "not_found"));
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn subscribe_changes_asks_for_them_and_delivers_each_change_once() {
    let first = sse(&format!(
        "retry: 300\n\n{CONNECTED}{}{}",
        bounty("b1", "c1"),
        change("bounty_updated", "b1", 2, "open", "c2")
    ));
    let second = sse(&format!(
        "{CONNECTED}{}{}{}",
        change("bounty_updated", "b1", 2, "open", "c2"),
        change("bounty_closed", "b1", 3, "closed", "c3"),
        bounty("b2", "c4"),
    ));
    let (base, requests) = scripted(vec![first, second]).await;
    let events = client(&base).subscribe_changes(Filter::new().category("python"));
    let items: Vec<FeedEvent> = tokio::time::timeout(
        Duration::from_secs(30),
        events.map(Result::unwrap).take(7).collect(),
    )
    .await
    .expect("items within 30 s");
    let delivered: Vec<(&str, &str, u64)> = items
        .iter()
        .filter_map(|event| match event {
            FeedEvent::Bounty(b) => Some(("new", b.id.as_str(), b.version)),
            FeedEvent::Updated(b) => Some(("updated", b.id.as_str(), b.version)),
            FeedEvent::Closed(b) => Some(("closed", b.id.as_str(), b.version)),
            _ => None,
        })
        .collect();
    assert_eq!(
        delivered,
        [
            ("new", "b1", 1),
            ("updated", "b1", 2),
            ("closed", "b1", 3),
            ("new", "b2", 1)
        ]
    );
    let requests = requests.lock().unwrap();
    assert!(
        requests[0].starts_with("get /api/v1/bounties/stream?category=python&include=changes "),
        "{}",
        requests[0]
    );
    assert_eq!(last_event_id(&requests[1]), Some("c2"));
}

#[tokio::test]
async fn subscribe_without_changes_ignores_change_frames() {
    let (base, _) = scripted(vec![sse(&format!(
        "{CONNECTED}{}{}",
        change("bounty_updated", "b0", 2, "open", "c1"),
        bounty("b1", "c2")
    ))])
    .await;
    let items = take(&client(&base), 2).await;
    match items[1].as_ref().unwrap() {
        SubscriptionEvent::Bounty(bounty) => assert_eq!(bounty.id, "b1"),
        other => panic!("expected the new bounty only, got {other:?}"),
    }
}

#[tokio::test]
async fn update_and_close_patch_the_bounty_with_the_key_and_read_the_answer() {
    let updated = status(200, "", &bounty_at("b1", 2, "open"));
    let closed = status(200, "", &bounty_at("b1", 3, "closed"));
    let conflict = status(
        409,
        "",
        r#"{"error":{"code":"bounty_closed","param":null,"message":"the bounty is closed and can no longer change"}}"#,
    );
    let (base, requests) = scripted(vec![updated, closed, conflict]).await;
    let sdk = client(&base);
    let patch = firehose_client::BountyPatch::new().budget_cents(75_000);
    let bounty = sdk.update("b1", &patch, "k", Some("idem-1")).await.unwrap();
    assert_eq!(bounty.version, 2);
    let bounty = sdk
        .close("b1", firehose_client::CloseReason::Awarded, "k", None)
        .await
        .unwrap();
    assert_eq!(
        (bounty.status.as_str(), bounty.close_reason),
        ("closed", Some(firehose_client::CloseReason::Awarded))
    );
    let err = sdk
        .close("b1", firehose_client::CloseReason::Cancelled, "k", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("bounty_closed"));
    let requests = requests.lock().unwrap();
    assert!(
        requests[0].starts_with("patch /api/v1/tasks/b1 "),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains("authorization: bearer k\r\n"));
    assert!(requests[0].contains("idempotency-key: idem-1\r\n"));
    assert!(!requests[1].contains("idempotency-key"));
}
