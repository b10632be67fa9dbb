//! The one response body type: a boxed stream of frames, so a JSON error and an SSE
//! stream are the same type to the runtime. `lambda_http::Body` would be sent as one
//! chunk, which is no use for SSE.

use std::convert::Infallible;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::StreamBody;

pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;
pub type ResponseBody = StreamBody<FrameStream>;

/// A body sent at once.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    let frame = Frame::data(bytes.into());
    StreamBody::new(Box::pin(futures_util::stream::once(
        async move { Ok(frame) },
    )))
}

/// A JSON answer with the headers every JSON answer carries (errors included; CORS is
/// added to every answer by [`super::handle`]).
pub fn json(status: http::StatusCode, json: Vec<u8>) -> http::Response<ResponseBody> {
    use http::{header, HeaderValue};
    let mut response = http::Response::new(full(json));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `value` serialised as a JSON answer. serde_json fails only on maps with non-string
/// keys or a failing `Serialize` impl, and the answers (bounties, pages) have neither.
pub fn json_of(
    status: http::StatusCode,
    value: &impl serde::Serialize,
) -> http::Response<ResponseBody> {
    json(status, serde_json::to_vec(value).unwrap_or_default())
}

/// `204 No Content`: nothing to send, and (to an `EventSource`) nothing to come back
/// for.
pub fn no_content() -> http::Response<ResponseBody> {
    let mut response = http::Response::new(empty());
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// An empty body.
pub fn empty() -> ResponseBody {
    StreamBody::new(Box::pin(futures_util::stream::empty()))
}

/// A body written chunk by chunk as `chunks` yields them.
pub fn streaming(chunks: impl Stream<Item = Bytes> + Send + 'static) -> ResponseBody {
    StreamBody::new(Box::pin(chunks.map(|chunk| Ok(Frame::data(chunk)))))
}

/// Collects a body (for tests and the local invoke check).
pub async fn collect(body: ResponseBody) -> Bytes {
    use http_body_util::BodyExt;
    match BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    }
}
