//! A subscriber over real HTTP with a real SSE parser, behaving like a plain
//! EventSource: it remembers the last `id:` it saw and sends it as `Last-Event-ID`
//! when it reconnects, with no de-duplication of its own.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::Value;

use super::http;

pub struct Subscriber {
    pub url: String,
    pub last_event_id: Option<String>,
    events: Option<BoxStream<'static, Event>>,
    pub connects: usize,
}

/// What one connection showed.
#[derive(Debug, Default)]
pub struct Connection {
    pub events: Vec<Event>,
    /// True when the server closed the stream (as opposed to our time limit).
    pub closed: bool,
}

impl Connection {
    pub fn named(&self, name: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|event| event.event == name)
            .collect()
    }

    pub fn bounty_ids(&self) -> Vec<String> {
        self.named("bounty")
            .iter()
            .map(|event| bounty_id(event))
            .collect()
    }
}

pub fn json(event: &Event) -> Value {
    serde_json::from_str(&event.data)
        .unwrap_or_else(|err| panic!("event data is not JSON ({err}): {}", event.data))
}

pub fn bounty_id(event: &Event) -> String {
    json(event)["id"].as_str().expect("bounty id").to_owned()
}

impl Subscriber {
    pub fn new(url: String) -> Self {
        Self {
            url,
            last_event_id: None,
            events: None,
            connects: 0,
        }
    }

    /// A subscriber that starts from `cursor`, sent as `Last-Event-ID` like a resume.
    pub fn resuming(url: String, cursor: &str) -> Self {
        Self {
            last_event_id: Some(cursor.to_owned()),
            ..Self::new(url)
        }
    }

    /// Opens the stream (with `Last-Event-ID` if one was seen), insisting on 200.
    pub async fn connect(&mut self) {
        let mut request = http().get(&self.url);
        if let Some(id) = &self.last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("stream request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("stream answered {status}: {body}");
        }
        assert_eq!(content_type, "text/event-stream");
        self.connects += 1;
        self.events = Some(
            response
                .bytes_stream()
                .eventsource()
                .take_while(|event| std::future::ready(event.is_ok()))
                .filter_map(|event| std::future::ready(event.ok()))
                .boxed(),
        );
    }

    /// The next event, `None` when the server closed the stream.
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        let events = self.events.as_mut().expect("connected");
        match tokio::time::timeout(within, events.next()).await {
            Ok(Some(event)) => {
                if !event.id.is_empty() {
                    self.last_event_id = Some(event.id.clone());
                }
                Some(event)
            }
            Ok(None) => {
                self.events = None;
                None
            }
            Err(_) => panic!("no event within {within:?} from {}", self.url),
        }
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str, within: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) if event.event == name => return event,
                Some(_) => {}
                None => panic!("stream closed before a {name} event"),
            }
        }
    }

    /// Reads until the server closes the stream, or `limit` passes.
    pub async fn read_connection(&mut self, limit: Duration) -> Connection {
        let deadline = tokio::time::Instant::now() + limit;
        let mut connection = Connection::default();
        while self.events.is_some() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let events = self.events.as_mut().expect("connected");
            match tokio::time::timeout(left, events.next()).await {
                Ok(Some(event)) => {
                    if !event.id.is_empty() {
                        self.last_event_id = Some(event.id.clone());
                    }
                    connection.events.push(event);
                }
                Ok(None) => {
                    self.events = None;
                    connection.closed = true;
                }
                Err(_) => break,
            }
        }
        connection
    }

    /// Like a plain EventSource: read, and on close reconnect with the last id, until
    /// `want` bounties arrived or `limit` passed. Returns every bounty id received, in
    /// order, duplicates included.
    pub async fn collect_bounties(&mut self, want: usize, limit: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut ids = Vec::new();
        while ids.len() < want && tokio::time::Instant::now() < deadline {
            if self.events.is_none() {
                self.connect().await;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let events = self.events.as_mut().expect("connected");
            match tokio::time::timeout(left, events.next()).await {
                Ok(Some(event)) => {
                    if !event.id.is_empty() {
                        self.last_event_id = Some(event.id.clone());
                    }
                    if event.event == "bounty" {
                        ids.push(bounty_id(&event));
                    }
                }
                Ok(None) => self.events = None,
                Err(_) => break,
            }
        }
        ids
    }
}
