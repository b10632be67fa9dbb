//! `GET /`: the live board, one self-contained page (`board.html`: inline CSS and
//! script, no external assets, no build step) compiled into the binary. The page does
//! the work in the browser, against this function's own API: the backfill, then the
//! firehose from its `stream_cursor` with `include=changes`.
//!
//! Its `content-security-policy` lets only the page's own inline style and script run
//! (pinned by their SHA-256, computed here from the page itself, so an edit of the
//! page cannot leave a stale hash behind) and lets the script talk only to this
//! origin (`connect-src 'self'`, which covers `fetch` and `EventSource`). Bounty data
//! is rendered as text by the script; the policy is the second line: even markup that
//! got in could neither run a script nor load anything from elsewhere.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::body::{empty, full, ResponseBody};

/// The page, as served.
const PAGE: &str = include_str!("board.html");

/// Browsers and caches may keep the page five minutes, then revalidate it with the
/// `ETag`: a deploy shows within minutes, and a revalidation costs one small 304. The
/// page holds no data, only the code that fetches it, so caching it is never stale
/// in what it shows.
const CACHE_CONTROL: &str = "public, max-age=300, must-revalidate";

/// The headers computed once from the page: its policy and its entity tag.
struct PageHeaders {
    csp: HeaderValue,
    etag: HeaderValue,
}

fn page_headers() -> &'static PageHeaders {
    static HEADERS: OnceLock<PageHeaders> = OnceLock::new();
    HEADERS.get_or_init(|| PageHeaders {
        csp: content_security_policy(PAGE),
        etag: entity_tag(PAGE),
    })
}

/// The policy for `page`: its own inline style and script by hash, this origin for
/// `fetch` and `EventSource`, nothing else.
fn content_security_policy(page: &str) -> HeaderValue {
    let hash = |tag: &str| {
        let body = element_text(page, tag).unwrap_or_default();
        format!(
            "'sha256-{}'",
            STANDARD.encode(Sha256::digest(body.as_bytes()))
        )
    };
    // img-src data: for the page's empty icon only (it stops the browser asking for
    // /favicon.ico); form-action 'self' for the filter form, which reloads the page.
    let policy = format!(
        "default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        script = hash("script"),
        style = hash("style"),
    );
    // Base64, quotes, letters and punctuation: always a valid header value.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// The text of the first `<tag>...</tag>` element of `page`, as a browser hashes it
/// for the policy (everything between the tags, byte for byte).
fn element_text<'a>(page: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = page.find(&open)? + open.len();
    let len = page[start..].find(&close)?;
    Some(&page[start..start + len])
}

fn entity_tag(page: &str) -> HeaderValue {
    let digest = Sha256::digest(page.as_bytes());
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"board\""))
}

/// `GET /`: the page, or `304` when the client's copy (`If-None-Match`) is current.
pub fn page(request_headers: &HeaderMap) -> Response<ResponseBody> {
    let headers = page_headers();
    let current = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/").as_bytes() == headers.etag.as_bytes()
        });
    let mut response = if current {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(full(PAGE))
    };
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    out.insert(header::ETAG, headers.etag.clone());
    out.insert(header::CONTENT_SECURITY_POLICY, headers.csp.clone());
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page's URL holds the filter, nothing secret; still, no need to tell others.
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy pins one style and one script: a second element of either would be
    /// refused by the browser, so the page must not grow one.
    #[test]
    fn the_page_has_one_inline_style_and_one_inline_script() {
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        assert!(element_text(PAGE, "script").is_some_and(|s| s.contains("EventSource")));
        assert!(element_text(PAGE, "style").is_some_and(|s| !s.is_empty()));
        // Self-contained: nothing fetched from elsewhere, no handlers in attributes
        // (the policy would block both).
        for outside in [
            "http://",
            "https://",
            "src=",
            " onclick=",
            " onload=",
            "style=\"",
        ] {
            assert!(!PAGE.contains(outside), "{outside}");
        }
    }

    #[test]
    fn the_policy_allows_only_the_page_and_this_origin() {
        let csp = content_security_policy(PAGE);
        let csp = csp.to_str().expect("ASCII");
        let script = STANDARD.encode(Sha256::digest(
            element_text(PAGE, "script").expect("script").as_bytes(),
        ));
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        assert!(
            csp.contains(&format!("script-src 'sha256-{script}';")),
            "{csp}"
        );
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn serves_the_page_then_not_modified() {
        let response = page(&HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], CACHE_CONTROL);
        let etag = headers[header::ETAG].clone();

        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(page(&again).status(), StatusCode::NOT_MODIFIED);
        let weak = HeaderValue::from_str(&format!("\"x\", W/{}", etag.to_str().expect("ASCII")))
            .expect("header");
        again.insert(header::IF_NONE_MATCH, weak);
        assert_eq!(page(&again).status(), StatusCode::NOT_MODIFIED);
        again.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(page(&again).status(), StatusCode::OK);
    }
}
