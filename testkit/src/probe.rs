//! One-shot HTTP requests, to tell when a process we started is ready: the answer's
//! status is all that matters. A new connection every time, so that a try never
//! reuses a connection to a process that has since gone.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The status of `method url` with `headers` and `body` (the answer's body read and
/// dropped), or `None` when nothing answered within `limit`.
pub async fn status(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    limit: Duration,
) -> Option<u16> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .ok()?;
    let answer = async {
        let response = client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        Some(status)
    };
    tokio::time::timeout(limit, answer).await.ok().flatten()
}

/// The status of a GET of `url`, or `None` when nothing answered within `limit`.
pub async fn get_status(url: &str, limit: Duration) -> Option<u16> {
    status(Method::GET, url, &[], "", limit).await
}
