//! Request size limits, checked before anything else reads the request. The publish
//! body limit (413) is in `publish.rs`, where the body is read.
//!
//! The Function URL has its own, larger limits in front of these; what reaches the
//! function is answered here in the contract's JSON shape.

use lambda_http::Request;

use super::ApiError;

/// Longest accepted query string (bytes, as sent, before percent-decoding). A full
/// filter (20 categories, 20 tags of 32 characters, every other parameter and a
/// cursor) fits well within it.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Largest accepted header section (bytes: names, values and `: ` / CRLF per header).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses a request whose query string or headers are over the limits.
pub fn check(req: &Request) -> Result<(), ApiError> {
    let query = req.uri().query().map_or(0, str::len);
    if query > MAX_QUERY_BYTES {
        return Err(ApiError::QueryTooLong {
            limit: MAX_QUERY_BYTES,
        });
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, header: usize) -> Request {
        let mut builder = http::Request::builder().uri(format!("https://x/api/v1/tasks?{query}"));
        if header > 0 {
            builder = builder.header("x-big", "a".repeat(header));
        }
        builder.body(lambda_http::Body::Empty).expect("request")
    }

    #[test]
    fn at_the_limits_is_fine_past_them_is_refused() {
        assert!(check(&request(&"a".repeat(MAX_QUERY_BYTES), 0)).is_ok());
        assert!(matches!(
            check(&request(&"a".repeat(MAX_QUERY_BYTES + 1), 0)),
            Err(ApiError::QueryTooLong { .. })
        ));
        assert!(check(&request("", MAX_HEADER_BYTES - 9)).is_ok());
        assert!(matches!(
            check(&request("", MAX_HEADER_BYTES)),
            Err(ApiError::HeadersTooLarge { .. })
        ));
    }
}
