//! Who the client is: the source IP the Function URL saw. The stream cap counts
//! streams per client and the access log names the client; both ask here.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The key for requests whose event carries no source IP (only hand-made events do):
/// they share one cap.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The client a request comes from: the source IP the Function URL saw (the TCP peer;
/// `X-Forwarded-For` is not used, since clients can write it). Under
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
