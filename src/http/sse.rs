//! A stream answer, assembled in one place like axum's `Sse`: the endpoint hands over
//! typed frames ([`StreamFrame`]); the access log counts them as they pass; only then
//! do they become bytes, joined into writes (`http::writes`) and sent with the
//! stream's headers.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use http::{header, HeaderValue, Response};

use super::access_log;
use super::body::{streaming, ResponseBody};
use super::writes::{coalesce_ready, MAX_WRITE_BYTES};
use crate::cursor::StreamTag;
use crate::stream::StreamFrame;

/// The frames of one stream, typed, and the filter they apply (for the access log).
pub struct SseReply {
    pub frames: Pin<Box<dyn Stream<Item = StreamFrame> + Send>>,
    /// The filter as JSON, as `connected` echoes it.
    pub filter: String,
    /// The stream's tag, which every cursor it sends carries (none for a stream that
    /// holds no lease and sends no cursor).
    pub issuer: Option<StreamTag>,
}

impl SseReply {
    /// The response that sends the frames; `access` logs the stream once, at its end.
    pub fn into_response(self, access: access_log::Entry) -> Response<ResponseBody> {
        let counted = access.stream(self.filter, self.frames);
        let issuer = self.issuer;
        let writes = coalesce_ready(
            counted.map(move |frame| frame.encode_issued(issuer.as_ref())),
            MAX_WRITE_BYTES,
        );
        let mut response = Response::new(streaming(writes));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}
