//! CORS: the function owns it (the stream is public and read-only; publishing needs a
//! bearer key, not cookies, so `*` is safe). [`add_origin`] is applied to every answer
//! once, by [`super::handle`]; a preflight adds what only preflights carry.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::body::{empty, ResponseBody};

pub const ALLOWED_HEADERS: &str =
    "authorization, content-type, last-event-id, idempotency-key, cache-control";

/// Response headers a browser's script may read besides the safelisted ones.
pub const EXPOSED_HEADERS: &str = "retry-after, location, idempotent-replayed";

pub fn add_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
}

/// The answer to an `OPTIONS` preflight on a path that accepts `allow`.
pub fn preflight(allow: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(allow),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
