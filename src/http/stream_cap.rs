//! The stream cap at the HTTP edge: who the client is (the Function URL's source IP),
//! admission before any stream byte (429 over the cap), and holding the lease for
//! exactly as long as the response body lives.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::{ApiError, App};
use crate::store::StreamLeases;
use crate::stream_cap::{admit, Admission, CapSettings, Lease};

/// The key for requests whose event carries no source IP (only hand-made events do):
/// they share one cap.
const UNKNOWN_CLIENT: &str = "unknown";

/// The client a stream counts against: the source IP the Function URL saw (the TCP
/// peer; `X-Forwarded-For` is not used, since clients can write it). Under
/// `cargo lambda watch` every request has 127.0.0.1.
pub fn client_of(req: &Request) -> String {
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    ip.filter(|ip| !ip.is_empty() && ip.len() <= 64)
        .unwrap_or_else(|| UNKNOWN_CLIENT.to_owned())
}

/// Takes a slot for a new stream of this request's client, or refuses with 429.
pub async fn admit_stream<S: StreamLeases>(
    app: &App<S>,
    req: &Request,
) -> Result<Lease<S>, ApiError> {
    let settings = CapSettings {
        max_per_client: app.config.max_streams_per_client,
        stream_max: app.config.stream_max,
        grace: app.config.stream_lease_grace,
    };
    let client = client_of(req);
    match admit(app.store.clone(), &client, &settings).await? {
        Admission::Admitted(lease) => Ok(lease),
        Admission::Refused { retry_after } => {
            tracing::warn!(
                client,
                limit = settings.max_per_client,
                "too many open streams"
            );
            Err(ApiError::TooManyStreams {
                limit: settings.max_per_client,
                retry_after_s: retry_after.as_secs().max(1),
            })
        }
    }
}

/// The body's chunks, then the lease's release once the stream has ended by itself. If
/// the body is dropped first (the client went away), the lease's drop releases it.
pub fn hold<L: StreamLeases>(
    chunks: impl Stream<Item = Bytes> + Send + 'static,
    lease: Lease<L>,
) -> impl Stream<Item = Bytes> + Send + 'static {
    async_stream::stream! {
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            yield chunk;
        }
        lease.release().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_function_url_source_ip_not_x_forwarded_for() {
        let event = include_str!("../../events/stream-filter.json");
        let mut req = lambda_http::request::from_str(event).expect("a Function URL event");
        req.headers_mut().insert(
            "x-forwarded-for",
            http::HeaderValue::from_static("10.9.8.7"),
        );
        assert_eq!(client_of(&req), "203.0.113.17");
        let bare = http::Request::builder()
            .uri("/api/v1/bounties/stream")
            .body(lambda_http::Body::Empty)
            .expect("request");
        assert_eq!(client_of(&bare), UNKNOWN_CLIENT);
    }
}
