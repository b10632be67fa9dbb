//! The subscription loop against a scripted HTTP server on loopback: each connection
//! gets the next canned response, and every request head is recorded. This pins down
//! the decisions the real function rarely provokes: `retry:`, `Retry-After`, `204`,
//! `5xx`, resume ids, de-duplication and a wrong content type.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use firehose_client::{Client, ClientError, Filter, SubscriptionEvent};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `responses` in order (one per connection; the last one repeats), recording
/// each request head.
async fn scripted(responses: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let response = responses[served.min(responses.len() - 1)].clone();
            served += 1;
            let log = log.clone();
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
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, requests)
}

fn sse(body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}")
}

fn status(code: u16, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

const CONNECTED: &str = "event: connected\nid: c0\ndata: {\"filter\":{},\"server_time\":\"t\",\"cursor\":\"c0\",\"resumed\":false,\"closes_at\":\"t\"}\n\n";

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
    let first = sse(&format!("retry: 40\n\n{CONNECTED}{}", bounty("b1", "c1")));
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
            // retry: 40 replaced the 5 s initial delay.
            assert_eq!(*delay, Duration::from_millis(40));
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
