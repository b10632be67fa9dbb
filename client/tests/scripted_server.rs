//! The subscription loop against a scripted HTTP server on loopback: each connection
//! gets the next canned response, and every request head is recorded. This pins down
//! the decisions the real function rarely provokes: `retry:`, `Retry-After`, `204`,
//! `5xx`, resume ids, de-duplication and a wrong content type; and, with responses
//! played in timed steps, heartbeats, silent links, reconnect loops and endless lines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use firehose_client::backoff::MIN_SERVER_RETRY;
use firehose_client::sse::MAX_FRAME_BYTES;
use firehose_client::{Client, ClientError, Filter, SubscriptionEvent};
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
