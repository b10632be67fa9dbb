//! `GET /api/v1/tasks` (the backfill) and `GET /api/v1/tasks/{id}` (one bounty).

use chrono::Utc;
use http::{Response, StatusCode};
use lambda_http::Request;
use serde::Serialize;

use super::body::ResponseBody;
use super::{query_pairs, ApiError, App};
use crate::backfill::{list_page, PageToken};
use crate::bounty::Bounty;
use crate::lookup::lookup;
use crate::query::parse_list_query;
use crate::store::FeedReader;

/// The backfill's body.
#[derive(Serialize)]
struct ListBody<'a> {
    bounties: &'a [Bounty],
    next_page_token: Option<String>,
    stream_cursor: String,
}

pub async fn list<S: FeedReader>(
    app: &App<S>,
    req: &Request,
) -> Result<Response<ResponseBody>, ApiError> {
    let query = parse_list_query(&query_pairs(req))?;
    let shards = app.store.shard_count();
    let token = query
        .page_token
        .as_deref()
        .map(|text| PageToken::decode(text, &query.filter, shards))
        .transpose()?;
    let continued = token.is_some();
    let page = list_page(
        app.store.as_ref(),
        &query.filter,
        query.limit,
        token,
        Utc::now(),
    )
    .await?;
    let stream_cursor = page.stream_cursor.encode();
    tracing::info!(
        filter = %serde_json::to_string(&query.filter).unwrap_or_default(),
        limit = query.limit,
        continued,
        listed = page.bounties.len(),
        more = page.next.is_some(),
        stream_cursor = %stream_cursor,
        "backfill page"
    );
    let body = ListBody {
        bounties: &page.bounties,
        next_page_token: page.next.map(|token| token.encode()),
        stream_cursor,
    };
    let mut response = super::body::json_of(StatusCode::OK, &body);
    let extensions = response.extensions_mut();
    extensions.insert(super::access_log::FilterSummary(
        serde_json::to_string(&query.filter).unwrap_or_default(),
    ));
    extensions.insert(super::access_log::Listed(page.bounties.len() as u64));
    Ok(response)
}

pub async fn get<S: FeedReader>(
    app: &App<S>,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let bounty = lookup(app.store.as_ref(), id, Utc::now())
        .await?
        .ok_or(ApiError::NoSuchBounty)?;
    Ok(super::body::json_of(StatusCode::OK, &bounty))
}
