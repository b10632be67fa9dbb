//! The benchmark's HTTP side: publishing through the function's API and subscribing
//! with a real SSE parser (`eventsource-stream`), as any client would.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, BodyStream, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::BoxError;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A publish body in `category` with a realistic size (~450 bytes of JSON on the wire).
pub fn bounty_body(n: usize, category: &str) -> Value {
    json!({
        "title": format!("Benchmark bounty #{n}: fix the flaky upload test"),
        "description": "test_upload times out one run in ten on CI; find the race, fix it, and add a regression test that fails without the fix.",
        "category": category,
        "budget_cents": 50_000 + n as u64,
        "tags": ["pytest", "ci"],
        "deadline": "2099-01-01T00:00:00Z",
    })
}

/// Publishes `body` with `key`; returns the bounty id and when the 201 was fully read.
pub async fn publish(
    client: &HttpClient,
    base: &str,
    key: &str,
    body: &Value,
) -> Result<(String, Instant), BoxError> {
    let request = Request::post(format!("{base}/api/v1/tasks"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = client.request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let answered = Instant::now();
    if status != StatusCode::CREATED {
        return Err(format!(
            "publish answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    let bounty: Value = serde_json::from_slice(&bytes)?;
    let id = bounty["id"]
        .as_str()
        .ok_or("publish answer without an id")?;
    Ok((id.to_owned(), answered))
}

pub type Events = BoxStream<'static, Result<Event, BoxError>>;

/// Opens `url` as an event stream and waits for its `connected` event, so that the
/// stream is anchored before the caller publishes anything.
pub async fn subscribe(client: &HttpClient, url: &str) -> Result<Events, BoxError> {
    let request = Request::get(url)
        .header(header::ACCEPT, "text/event-stream")
        .body(Full::default())?;
    let response = client.request(request).await?;
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.into_body().collect().await?.to_bytes();
        return Err(format!(
            "stream answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    let bytes = TryStreamExt::map_err(BodyStream::new(response.into_body()), BoxError::from)
        .try_filter_map(|frame| std::future::ready(Ok(frame.into_data().ok())));
    until_connected(events_from(bytes)).await
}

/// Body pieces, as they arrive, parsed as Server-Sent Events.
pub fn events_from<S>(bytes: S) -> Events
where
    S: futures_util::Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
{
    bytes
        .eventsource()
        .map_err(|err| BoxError::from(err.to_string()))
        .boxed()
}

/// Reads `events` up to its `connected` event.
pub async fn until_connected(mut events: Events) -> Result<Events, BoxError> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .map_err(|_| "no connected event within 60 s")?
            .ok_or("the stream closed before its connected event")??;
        if event.event == "connected" {
            return Ok(events);
        }
    }
}

#[derive(Deserialize)]
struct BountyId<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// What one subscriber received: bounty id -> first receipt time, and duplicates.
#[derive(Debug, Default)]
pub struct Received {
    pub at: HashMap<String, Instant>,
    pub duplicates: usize,
    pub last: Option<Instant>,
    /// `bounty` frames seen, and their size on the wire (`event:`, `id:`, `data:` lines).
    pub events: usize,
    pub bytes: usize,
}

/// Reads `bounty` events until `expected` distinct ids arrived or `limit` passed.
pub async fn collect(mut events: Events, expected: usize, limit: Duration) -> Received {
    let mut received = Received::default();
    let deadline = tokio::time::Instant::now() + limit;
    while received.at.len() < expected {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let event = match next {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(err))) => {
                eprintln!("bench: stream error: {err}");
                break;
            }
            Ok(None) | Err(_) => break,
        };
        let now = Instant::now();
        if event.event != "bounty" {
            continue;
        }
        // Only the id: the client's parsing shares the machine with the function and
        // the store, so it does no more than it needs.
        let id = serde_json::from_str::<BountyId>(&event.data)
            .ok()
            .map(|bounty| bounty.id.into_owned());
        let Some(id) = id else {
            eprintln!("bench: bounty event without an id: {}", event.data);
            continue;
        };
        received.events += 1;
        received.bytes +=
            "event: bounty\nid: \ndata: \n\n".len() + event.id.len() + event.data.len();
        match received.at.entry(id) {
            Entry::Occupied(_) => received.duplicates += 1,
            Entry::Vacant(slot) => {
                slot.insert(now);
            }
        }
        received.last = Some(now);
    }
    received
}
