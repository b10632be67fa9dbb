//! `PATCH /api/v1/tasks/{id}`: the checks every write gets ([`super::publish::WriteRequest`]),
//! then the change (validation, ownership, idempotency and the append are the core's,
//! in [`crate::change`]); 200 with the bounty after it.

use chrono::Utc;
use http::{Response, StatusCode};
use lambda_http::Request;

use super::body::ResponseBody;
use super::publish::{replayed, WriteRequest};
use super::{ApiError, App};
use crate::store::{FeedReader, FeedWriter, IdempotencyRecords};

pub async fn change<S: FeedReader + FeedWriter + IdempotencyRecords>(
    app: &App<S>,
    req: &Request,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let write = WriteRequest::of(app, req)?;
    let changed = crate::change::change(
        app.store.as_ref(),
        &write.publisher,
        id,
        write.key,
        write.body,
    )
    .await?;
    let response = super::body::json_of(StatusCode::OK, &changed.bounty.as_of(Utc::now()));
    Ok(if changed.replayed {
        replayed(response)
    } else {
        response
    })
}
