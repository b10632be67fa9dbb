//! The one place errors become HTTP responses, in the contract's shape:
//! `{"error":{"code":"...","param":"...","message":"..."}}`. Internal details are
//! logged, never sent.

use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::body::ResponseBody;
use crate::bounty::BountyStatus;
use crate::change::ChangeError;
use crate::feed::ResumeError;
use crate::publish::{PublishError, PublishRequestError};
use crate::store::StoreError;
use crate::InputError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("missing or unknown API key")]
    Unauthorized,
    #[error("no such path")]
    NotFound,
    /// The stream, asked of the function that only publishes.
    #[error("the stream is not served here")]
    StreamElsewhere,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content type is not JSON")]
    UnsupportedMediaType,
    #[error("no such bounty")]
    NoSuchBounty,
    /// A change by a key that did not publish the bounty.
    #[error("the bounty was published with another key")]
    Forbidden,
    /// A change to a bounty that is closed or expired.
    #[error("the bounty is no longer open")]
    BountyClosed(BountyStatus),
    /// A change that kept losing races: nothing was written.
    #[error("the bounty stayed contended")]
    Contended,
    #[error("query string longer than {limit} bytes")]
    QueryTooLong { limit: usize },
    #[error("headers larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("more than {limit} open streams from one client")]
    TooManyStreams { limit: u32, retry_after_s: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An append that failed: nothing was written.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<PublishRequestError> for ApiError {
    fn from(err: PublishRequestError) -> Self {
        match err {
            PublishRequestError::Invalid(err) => ApiError::Input(err),
            PublishRequestError::Lookup(err) => ApiError::Store(err),
            PublishRequestError::Append(err) => ApiError::Publish(err),
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(err: ChangeError) -> Self {
        match err {
            ChangeError::Invalid(err) => ApiError::Input(err),
            ChangeError::NotFound => ApiError::NoSuchBounty,
            ChangeError::Forbidden => ApiError::Forbidden,
            ChangeError::Terminal(status) => ApiError::BountyClosed(status),
            ChangeError::Store(err) => ApiError::Store(err),
            ChangeError::Contended(_) => ApiError::Contended,
        }
    }
}

impl From<ResumeError> for ApiError {
    fn from(err: ResumeError) -> Self {
        match err {
            ResumeError::Input(err) => ApiError::Input(err),
            ResumeError::Store(err) => ApiError::Store(err),
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    param: Option<&'a str>,
    message: &'a str,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Input(err) if err.code.is_semantic() => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Input(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound | ApiError::StreamElsewhere => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NoSuchBounty => StatusCode::NOT_FOUND,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BountyClosed(_) => StatusCode::CONFLICT,
            ApiError::TooManyStreams { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::QueryTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Store(_)
            | ApiError::Contended
            | ApiError::Publish(PublishError::Store(_) | PublishError::Contended { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Publish(PublishError::BatchSize(_) | PublishError::Claimed) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn into_response(self) -> Response<ResponseBody> {
        let status = self.status();
        let (code, param, message): (&str, Option<&str>, String) = match &self {
            ApiError::Input(err) => (
                err.code.as_str(),
                Some(err.param.as_str()),
                err.message.clone(),
            ),
            ApiError::Unauthorized => (
                "unauthorized",
                Some("Authorization"),
                "publishing needs a valid API key: Authorization: Bearer <key>".into(),
            ),
            ApiError::NotFound => (
                "not_found",
                None,
                "no such endpoint; see /api/v1/bounties/stream and /api/v1/tasks".into(),
            ),
            ApiError::StreamElsewhere => (
                "not_found",
                None,
                "this URL serves publishing and lookups only; streams are on the stream URL"
                    .into(),
            ),
            ApiError::MethodNotAllowed { allow } => (
                "method_not_allowed",
                None,
                format!("this path accepts {allow}"),
            ),
            ApiError::PayloadTooLarge { limit } => (
                "payload_too_large",
                Some("body"),
                format!("the body must be at most {limit} bytes"),
            ),
            ApiError::UnsupportedMediaType => (
                "unsupported_media_type",
                Some("Content-Type"),
                "send the body as JSON with Content-Type: application/json".into(),
            ),
            ApiError::NoSuchBounty => (
                "not_found",
                Some("id"),
                "no bounty with this id (ids are issued by POST /api/v1/tasks; a bounty is kept until its deadline)".into(),
            ),
            ApiError::Forbidden => (
                "forbidden",
                Some("Authorization"),
                "only the API key that published this bounty can change it".into(),
            ),
            ApiError::BountyClosed(status) => (
                "bounty_closed",
                Some("id"),
                match status {
                    BountyStatus::Expired => {
                        "this bounty expired (its deadline passed); it can no longer change".into()
                    }
                    _ => "this bounty is closed; it can no longer change".into(),
                },
            ),
            ApiError::Contended => {
                tracing::error!("change gave up: the bounty stayed contended");
                (
                    "store_unavailable",
                    None,
                    "the bounty kept changing under this request; nothing was written, retry shortly"
                        .into(),
                )
            }
            ApiError::QueryTooLong { limit } => (
                "query_too_long",
                Some("query"),
                format!("the query string must be at most {limit} bytes"),
            ),
            ApiError::HeadersTooLarge { limit } => (
                "headers_too_large",
                None,
                format!("the request headers must be at most {limit} bytes in all"),
            ),
            ApiError::TooManyStreams { limit, .. } => (
                "too_many_streams",
                None,
                format!("at most {limit} streams may be open at once from one client; close one, or retry after the Retry-After seconds"),
            ),
            ApiError::Store(err) => {
                tracing::error!(error = %err, "store request failed");
                (
                    "store_unavailable",
                    None,
                    "the bounty store is unavailable; retry shortly".into(),
                )
            }
            ApiError::Publish(err) => {
                tracing::error!(error = %err, "publish failed");
                match err {
                    PublishError::BatchSize(_) | PublishError::Claimed => {
                        ("internal", None, "internal error".into())
                    }
                    _ => (
                        "store_unavailable",
                        None,
                        "the bounty store is unavailable; nothing was published, retry shortly"
                            .into(),
                    ),
                }
            }
        };
        let json = serde_json::to_vec(&Envelope {
            error: Body {
                code,
                param,
                message: &message,
            },
        })
        .unwrap_or_else(|_| {
            b"{\"error\":{\"code\":\"internal\",\"param\":null,\"message\":\"internal error\"}}"
                .to_vec()
        });
        let mut response = super::body::json(status, json);
        let headers = response.headers_mut();
        match &self {
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyStreams { retry_after_s, .. } => {
                if let Ok(value) = HeaderValue::from_str(&retry_after_s.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
