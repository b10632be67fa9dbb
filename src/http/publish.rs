//! `POST /api/v1/tasks`: check the key, the media type and the size, validate the
//! body field by field, append, answer 201 with the bounty.

use chrono::Utc;
use http::{header, HeaderValue, Response, StatusCode};
use lambda_http::{Body, Request};

use super::body::{full, ResponseBody};
use super::{cors, ApiError, App, MAX_BODY_BYTES};
use crate::bounty::BountyDraft;
use crate::publish::{append, pick_shard};
use crate::store::{FeedReader, FeedWriter};

pub async fn publish<S: FeedReader + FeedWriter>(
    app: &App<S>,
    req: &Request,
) -> Result<Response<ResponseBody>, ApiError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !app.config.publish_keys.accepts(authorization) {
        return Err(ApiError::Unauthorized);
    }
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
    let draft = BountyDraft::from_json(body, Utc::now())?;
    let id = ulid::Ulid::new().to_string();
    let shard = pick_shard(app.store.shard_count());
    let published = append(app.store.as_ref(), shard, &[(id, draft)]).await?;
    let Some(bounty) = published.into_iter().next() else {
        return Err(ApiError::Publish(crate::publish::PublishError::BatchSize(
            0,
        )));
    };
    tracing::info!(id = %bounty.id, shard, category = %bounty.category, budget_cents = bounty.budget_cents, "bounty published");

    let json = serde_json::to_vec(&bounty).unwrap_or_default();
    let mut response = Response::new(full(json));
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", bounty.id)) {
        headers.insert(header::LOCATION, location);
    }
    cors::add_origin(headers);
    Ok(response)
}
