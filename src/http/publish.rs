//! `POST /api/v1/tasks`: check the key, the media type and the size ([`WriteRequest`],
//! which changes share), then publish (validation, idempotency and the append are the
//! core's, in [`crate::publish`]) and answer 201 with the bounty, or 200 with
//! `Idempotent-Replayed` for a replay.

use http::{header, HeaderValue, Response, StatusCode};
use lambda_http::{Body, Request};

use super::body::ResponseBody;
use super::{ApiError, App, MAX_BODY_BYTES};
use crate::bounty::Bounty;
use crate::idempotency::IdempotencyKey;
use crate::store::{FeedWriter, IdempotencyRecords};

pub async fn publish<S: FeedWriter + IdempotencyRecords>(
    app: &App<S>,
    req: &Request,
) -> Result<Response<ResponseBody>, ApiError> {
    let write = WriteRequest::of(app, req)?;
    let published =
        crate::publish::publish(app.store.as_ref(), &write.publisher, write.key, write.body)
            .await?;
    if published.replayed {
        Ok(replayed(answer(StatusCode::OK, &published.bounty)))
    } else {
        Ok(answer(StatusCode::CREATED, &published.bounty))
    }
}

/// What a write (publish or change) carries once its key, media type and size are
/// checked, in that order.
pub(super) struct WriteRequest<'a> {
    /// The hash of the API key: the publisher's identity, never the key itself.
    pub publisher: [u8; 32],
    pub body: &'a [u8],
    pub key: Option<IdempotencyKey>,
}

impl<'a> WriteRequest<'a> {
    pub fn of<S>(app: &App<S>, req: &'a Request) -> Result<Self, ApiError> {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(publisher) = app.config.publish_keys.accepted_hash(authorization) else {
            return Err(ApiError::Unauthorized);
        };
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body: &[u8] = match req.body() {
            Body::Empty => b"",
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => b"",
        };
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        let key = IdempotencyKey::from_header(
            req.headers().get("idempotency-key").map(|v| v.as_bytes()),
        )?;
        Ok(Self {
            publisher,
            body,
            key,
        })
    }
}

/// Marks an answer as the replay of an earlier request with the same idempotency key.
pub(super) fn replayed(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

fn answer(status: StatusCode, bounty: &Bounty) -> Response<ResponseBody> {
    let mut response = super::body::json_of(status, bounty);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", bounty.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
