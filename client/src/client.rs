//! [`Client`]: where the firehose is and how to talk to it; the one-shot REST calls.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::error::ApiErrorBody;
use crate::model::{Bounty, BountyPatch, CloseReason, Filter, NewBounty, Page};
use crate::ClientError;

/// The most a backfill page holds (the server's limit).
pub const MAX_PAGE_SIZE: u32 = 100;

/// A firehose client. Cheap to clone (the HTTP connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    base: Url,
    pub(crate) settings: Arc<Settings>,
}

/// Reconnect and liveness settings of subscriptions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The heartbeat interval to assume until the server announces its own
    /// (`heartbeat_ms` in `connected`, which then sizes the dead-link timer), and with
    /// servers that never do. A stream silent for twice the interval is dead.
    pub heartbeat: Duration,
    /// First reconnect delay until the server's `retry:` says otherwise.
    pub initial_retry: Duration,
    pub max_backoff: Duration,
    pub jitter: f64,
    /// How many recent deliveries to remember for de-duplication (0: off); see
    /// [`ClientBuilder::dedupe_window`].
    pub dedupe_window: usize,
    /// Give up after this many consecutive failed connection attempts (None: never); see
    /// [`ClientBuilder::max_failures`].
    pub max_failures: Option<u32>,
    /// Timeout of the one-shot REST calls.
    pub request_timeout: Duration,
    /// Bounties per backfill page (1..=100).
    pub page_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            initial_retry: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            jitter: 0.5,
            dedupe_window: 10_000,
            max_failures: None,
            request_timeout: Duration::from_secs(30),
            page_size: MAX_PAGE_SIZE,
        }
    }
}

/// Builds a [`Client`]: `Client::builder(url).heartbeat(..).build()`.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    settings: Settings,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// The heartbeat interval to assume (default 15 s, the server's default). A stream
    /// with no byte for twice the interval is treated as dead and reconnected. Servers
    /// that announce theirs (`heartbeat_ms` in `connected`) override this once their
    /// `connected` arrives; it still bounds the wait for the response and `connected`.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.settings.heartbeat = interval;
        self
    }

    /// The first reconnect delay (default 1 s) until the server sends `retry:` (which
    /// may not go below [`MIN_SERVER_RETRY`](crate::backoff::MIN_SERVER_RETRY); this
    /// setting may).
    pub fn initial_retry(mut self, delay: Duration) -> Self {
        self.settings.initial_retry = delay;
        self
    }

    /// The longest wait between reconnect attempts (default 30 s).
    pub fn max_backoff(mut self, cap: Duration) -> Self {
        self.settings.max_backoff = cap;
        self
    }

    /// How much of each delay is random, 0.0..=1.0 (default 0.5).
    pub fn jitter(mut self, share: f64) -> Self {
        self.settings.jitter = share;
        self
    }

    /// How many recent bounty ids (and, with changes, id and version pairs) to remember
    /// to drop duplicates (default 10,000). 0 turns de-duplication off, for
    /// [`Client::watch`] too, which otherwise drops a change of a version it delivered.
    pub fn dedupe_window(mut self, ids: usize) -> Self {
        self.settings.dedupe_window = ids;
        self
    }

    /// Give up (with [`ClientError::GaveUp`]) after this many consecutive failed
    /// connection attempts (a stream that opens but ends before it delivered a bounty, a
    /// checkpoint or a heartbeat counts as failed). Default: keep trying.
    pub fn max_failures(mut self, attempts: u32) -> Self {
        self.settings.max_failures = Some(attempts);
        self
    }

    /// Timeout of the REST calls (backfill, get, publish, update, close); default 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// Bounties per page when [`Client::backfill`] follows pages (default and most: 100).
    pub fn page_size(mut self, size: u32) -> Self {
        self.settings.page_size = size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: self.base_url.clone(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(self.base_url.trim()).map_err(|err| invalid(&err.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("give the base URL without a query or fragment"));
        }
        // Paths are joined relative to the base, so a base with a path prefix keeps it.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("firehose-client/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base,
            settings: Arc::new(self.settings),
        })
    }
}

impl Client {
    /// A client with default settings for the firehose at `base_url`
    /// (e.g. `http://127.0.0.1:9000` or the Function URL).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::builder(base_url).build()
    }

    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            settings: Settings::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The base URL, with a trailing `/`.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `path` (without a leading `/`) under the base URL, with `query`.
    pub(crate) fn endpoint(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self
            .base
            .join(path)
            .expect("a relative path joins onto an http(s) base");
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// One page of open bounties matching `filter`, newest first (`limit` 1..=100,
    /// default 50 on the server).
    pub async fn list_page(
        &self,
        filter: &Filter,
        limit: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Page, ClientError> {
        let mut query = filter.query_pairs();
        if let Some(limit) = limit {
            query.push(("limit", limit.clamp(1, MAX_PAGE_SIZE).to_string()));
        }
        if let Some(token) = page_token {
            query.push(("page_token", token.to_owned()));
        }
        let request = self.http.get(self.endpoint("api/v1/tasks", &query));
        self.send_json(request).await
    }

    /// Up to `max` open bounties matching `filter`, newest first, following pages; and
    /// the listing's `stream_cursor` (a stream started there continues exactly after it).
    pub async fn backfill(
        &self,
        filter: &Filter,
        max: usize,
    ) -> Result<(Vec<Bounty>, String), ClientError> {
        let mut bounties = Vec::new();
        let mut token: Option<String> = None;
        let mut cursor: Option<String> = None;
        loop {
            let left = max.saturating_sub(bounties.len());
            let size = u32::try_from(left)
                .unwrap_or(u32::MAX)
                .min(self.settings.page_size);
            let page = self
                .list_page(filter, Some(size.max(1)), token.as_deref())
                .await?;
            // Every page of one listing carries the same cursor: keep the first.
            cursor.get_or_insert(page.stream_cursor);
            bounties.extend(page.bounties);
            bounties.truncate(max);
            token = page.next_page_token;
            if bounties.len() >= max || token.is_none() {
                break;
            }
        }
        Ok((bounties, cursor.unwrap_or_default()))
    }

    /// One bounty by id, whatever its status.
    pub async fn get(&self, id: &str) -> Result<Bounty, ClientError> {
        let url = self.task_url(id, None)?;
        self.send_json(self.http.get(url)).await
    }

    /// `api/v1/tasks/{id}` (then `/{tail}`), the id percent-encoded as one segment.
    pub(crate) fn task_url(&self, id: &str, tail: Option<&str>) -> Result<Url, ClientError> {
        let mut url = self.endpoint("api/v1/tasks/", &[]);
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| ClientError::Protocol("base URL cannot take a path".into()))?;
            segments.pop_if_empty().push(id);
            if let Some(tail) = tail {
                segments.push(tail);
            }
        }
        Ok(url)
    }

    /// Changes the open bounty `id` (only the fields `patch` sets) with the `api_key`
    /// that published it; returns the bounty after the change. With an
    /// `idempotency_key`, sending the same change again returns the first answer
    /// instead of changing it twice. A patch that changes nothing returns the bounty as
    /// it is (same version).
    ///
    /// Errors (as [`ClientError::Rejected`]): 409 `bounty_closed` (closed or expired),
    /// 403 `forbidden` (another publisher's key), 401, 404, 422 naming the field.
    pub async fn update(
        &self,
        id: &str,
        patch: &BountyPatch,
        api_key: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Bounty, ClientError> {
        let body = serde_json::to_value(patch)
            .map_err(|err| ClientError::Protocol(format!("cannot encode the change: {err}")))?;
        self.update_json(id, &body, api_key, idempotency_key).await
    }

    /// Closes the open bounty `id` for `reason` with the `api_key` that published it;
    /// returns the closed bounty. Closing a closed or expired bounty is 409
    /// `bounty_closed`; the rest as [`Client::update`].
    pub async fn close(
        &self,
        id: &str,
        reason: CloseReason,
        api_key: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Bounty, ClientError> {
        let body = serde_json::json!({"status": "closed", "close_reason": reason});
        self.update_json(id, &body, api_key, idempotency_key).await
    }

    /// [`Client::update`] with a raw JSON body (the server validates it).
    pub async fn update_json(
        &self,
        id: &str,
        body: &Value,
        api_key: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Bounty, ClientError> {
        let mut request = self
            .http
            .patch(self.task_url(id, None)?)
            .bearer_auth(api_key)
            .json(body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send_json(request).await
    }

    /// Publishes a bounty with `api_key`. With an `idempotency_key`, sending the same
    /// bounty again returns the first one instead of creating another. Returns the
    /// bounty and whether this call created it (201) or found it (200).
    pub async fn publish(
        &self,
        bounty: &NewBounty,
        api_key: &str,
        idempotency_key: Option<&str>,
    ) -> Result<(Bounty, bool), ClientError> {
        let body = serde_json::to_value(bounty)
            .map_err(|err| ClientError::Protocol(format!("cannot encode the bounty: {err}")))?;
        self.publish_json(&body, api_key, idempotency_key).await
    }

    /// [`Client::publish`] with a raw JSON body (the server validates it).
    pub async fn publish_json(
        &self,
        body: &Value,
        api_key: &str,
        idempotency_key: Option<&str>,
    ) -> Result<(Bounty, bool), ClientError> {
        let mut request = self
            .http
            .post(self.endpoint("api/v1/tasks", &[]))
            .bearer_auth(api_key)
            .json(body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request
            .timeout(self.settings.request_timeout)
            .send()
            .await?;
        let created = response.status().as_u16() == 201;
        let bounty = read_json(response).await?;
        Ok((bounty, created))
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .timeout(self.settings.request_timeout)
            .send()
            .await?;
        read_json(response).await
    }
}

/// A 2xx body as `T`; a 4xx as [`ClientError::Rejected`]; anything else as
/// [`ClientError::Server`].
async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    let body = response.text().await?;
    match status {
        200..=299 => serde_json::from_str(&body).map_err(|err| {
            ClientError::Protocol(format!("cannot read the {status} answer: {err}"))
        }),
        400..=499 => Err(ClientError::rejected(status, &body)),
        _ => Err(ClientError::Server {
            status,
            message: ApiErrorBody::from_body(status, &body).message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_a_base_path_prefix_and_encode_the_query() {
        let client = Client::new("https://example.test/prefix").unwrap();
        let url = client.endpoint(
            "api/v1/bounties/stream",
            &[
                ("category", "python".into()),
                ("deadline_after", "2026-01-01T00:00:00+01:00".into()),
            ],
        );
        assert_eq!(
            url.as_str(),
            "https://example.test/prefix/api/v1/bounties/stream?category=python&deadline_after=2026-01-01T00%3A00%3A00%2B01%3A00"
        );
        let root = Client::new("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            root.endpoint("api/v1/tasks", &[]).as_str(),
            "http://127.0.0.1:9000/api/v1/tasks"
        );
    }

    #[test]
    fn a_task_url_encodes_the_id_as_one_segment() {
        let client = Client::new("https://example.test/prefix/").unwrap();
        assert_eq!(
            client.task_url("01ABC", Some("stream")).unwrap().as_str(),
            "https://example.test/prefix/api/v1/tasks/01ABC/stream"
        );
        assert_eq!(
            client.task_url("a/b c", None).unwrap().as_str(),
            "https://example.test/prefix/api/v1/tasks/a%2Fb%20c"
        );
    }

    #[test]
    fn rejects_unusable_base_urls() {
        for bad in ["", "127.0.0.1:9000", "ftp://x/", "http://x/?a=1"] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad:?}"
            );
        }
    }
}
