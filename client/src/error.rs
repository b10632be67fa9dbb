//! The SDK's one error type.

use std::time::Duration;

use serde::Deserialize;

/// The server's JSON error (`{"error":{"code","param","message"}}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    #[serde(default)]
    pub param: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Envelope {
    error: ApiErrorBody,
}

impl ApiErrorBody {
    /// Parses an error body; anything else becomes a generic body naming the status.
    pub fn from_body(status: u16, body: &str) -> Self {
        match serde_json::from_str::<Envelope>(body) {
            Ok(envelope) => envelope.error,
            Err(_) => ApiErrorBody {
                code: format!("http_{status}"),
                param: None,
                message: if body.trim().is_empty() {
                    format!("the server answered {status}")
                } else {
                    format!(
                        "the server answered {status}: {}",
                        truncate(body.trim(), 300)
                    )
                },
            },
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request (a 4xx): retrying the same request cannot help.
    #[error("{message} ({status} {code}{})", param.as_ref().map(|p| format!(", param {p}")).unwrap_or_default())]
    Rejected {
        status: u16,
        code: String,
        param: Option<String>,
        message: String,
    },
    /// A 5xx or network failure on a one-shot call (the stream retries these itself).
    #[error("the server answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("network error: {0}")]
    Network(#[from] reqwest::Error),
    /// The server sent something the SDK cannot read (a contract mismatch).
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("gave up after {attempts} failed connection attempts over {elapsed:?}: {last}")]
    GaveUp {
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
}

impl ClientError {
    pub(crate) fn rejected(status: u16, body: &str) -> Self {
        let body = ApiErrorBody::from_body(status, body);
        ClientError::Rejected {
            status,
            code: body.code,
            param: body.param,
            message: body.message,
        }
    }

    /// The server's error code, for a rejection.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_servers_error_shape() {
        let err = ClientError::rejected(
            400,
            r#"{"error":{"code":"invalid_parameter","param":"min_budget_cents","message":"min_budget_cents must be zero or more (got -5)"}}"#,
        );
        assert_eq!(err.code(), Some("invalid_parameter"));
        assert_eq!(
            err.to_string(),
            "min_budget_cents must be zero or more (got -5) (400 invalid_parameter, param min_budget_cents)"
        );
    }

    #[test]
    fn a_body_that_is_not_the_error_shape_still_says_what_happened() {
        let body = ApiErrorBody::from_body(404, "<html>nope</html>");
        assert_eq!(body.code, "http_404");
        assert!(body.message.contains("404") && body.message.contains("nope"));
        assert_eq!(
            ApiErrorBody::from_body(400, "").message,
            "the server answered 400"
        );
    }
}
