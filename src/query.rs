//! Query string -> what a request asks for: [`StreamQuery`] (a filter and where to
//! start) for the stream, [`ListQuery`] (a filter, a limit and a page) for the
//! backfill. Both share one filter grammar.
//!
//! Every refusal happens here, before any stream starts, as an [`InputError`] that
//! names the parameter.

use chrono::{DateTime, Utc};

use crate::bounty::Slug;
use crate::filter::{Filter, MAX_FILTER_VALUES};
use crate::{timefmt, InputError, InputErrorCode};

/// Longest accepted cursor, in bytes: far above any cursor the server issues.
pub const MAX_CURSOR_LEN: usize = 2048;

/// Where a stream starts when the client asked for something other than "now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// Anchored at connect time: only bounties committed after the connect.
    Now,
    /// Bounties created at or after this instant (`since`).
    Since(DateTime<Utc>),
    /// Resume after this opaque cursor, from `param` (`Last-Event-ID` or `last_event_id`).
    Cursor { cursor: String, param: &'static str },
}

/// A parsed stream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamQuery {
    pub filter: Filter,
    /// `include=changes`: also the updates and closes of matching bounties.
    pub changes: bool,
    pub start: StartAt,
}

/// The filter parameters the stream and the backfill share, gathered pair by pair.
#[derive(Default)]
struct FilterParams {
    categories: Vec<Slug>,
    tags: Vec<Slug>,
    min_budget_cents: Option<u64>,
    deadline_after: Option<DateTime<Utc>>,
}

impl FilterParams {
    /// Takes the pair if it is a filter parameter; `Ok(false)` if it is not one.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, InputError> {
        match key {
            "category" => push_slugs(&mut self.categories, "category", value)?,
            "tag" => push_slugs(&mut self.tags, "tag", value)?,
            "min_budget_cents" => set_once(
                &mut self.min_budget_cents,
                "min_budget_cents",
                parse_cents(value)?,
            )?,
            "deadline_after" => set_once(
                &mut self.deadline_after,
                "deadline_after",
                parse_instant("deadline_after", value)?,
            )?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(self) -> Result<Filter, InputError> {
        Ok(Filter {
            categories: normalise(self.categories, "category")?,
            min_budget_cents: self.min_budget_cents,
            tags: normalise(self.tags, "tag")?,
            deadline_after: self.deadline_after,
        })
    }
}

fn unknown(key: &str, expected: &str) -> InputError {
    InputError::new(
        InputErrorCode::UnknownParameter,
        key,
        format!("unknown parameter {key:?}; expected {expected}"),
    )
}

/// Parses the stream's query string pairs (already percent-decoded) and the
/// `Last-Event-ID` header. The header wins over `last_event_id`, and a cursor wins
/// over `since`: a browser's EventSource reconnects to the same URL and adds the
/// header, and it must resume where it was, not where it first started.
pub fn parse_stream_query(
    pairs: &[(String, String)],
    last_event_id_header: Option<&str>,
) -> Result<StreamQuery, InputError> {
    let mut filter = FilterParams::default();
    let mut since = None;
    let mut last_event_id = None;
    let mut changes = false;

    for (key, value) in pairs {
        if filter.take(key, value)? {
            continue;
        }
        match key.as_str() {
            "since" => set_once(&mut since, "since", parse_instant("since", value)?)?,
            "last_event_id" => set_once(
                &mut last_event_id,
                "last_event_id",
                check_cursor_text("last_event_id", value)?,
            )?,
            "include" => changes |= parse_include(value)?,
            _ => return Err(unknown(
                key,
                "category, min_budget_cents, tag, deadline_after, include, since or last_event_id",
            )),
        }
    }

    Ok(StreamQuery {
        filter: filter.finish()?,
        changes,
        start: start_at(last_event_id, last_event_id_header, since)?,
    })
}

/// Where a stream starts: the header wins over `last_event_id`, and a cursor over
/// `since`.
fn start_at(
    last_event_id: Option<String>,
    last_event_id_header: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> Result<StartAt, InputError> {
    let header_cursor = match last_event_id_header.map(str::trim) {
        Some(text) if !text.is_empty() => {
            Some((check_cursor_text("Last-Event-ID", text)?, "Last-Event-ID"))
        }
        _ => None,
    };
    let param_cursor = last_event_id.map(|cursor| (cursor, "last_event_id"));
    Ok(match (header_cursor.or(param_cursor), since) {
        (Some((cursor, param)), _) => StartAt::Cursor { cursor, param },
        (None, Some(at)) => StartAt::Since(at),
        (None, None) => StartAt::Now,
    })
}

/// `include`: a comma list of what else to stream; `changes` is all there is.
fn parse_include(value: &str) -> Result<bool, InputError> {
    for item in value.split(',').map(str::trim) {
        if item != "changes" {
            return Err(InputError::new(
                InputErrorCode::InvalidParameter,
                "include",
                format!("include {item:?} is not known; the one value is \"changes\""),
            ));
        }
    }
    Ok(true)
}

/// Parses the per-bounty stream's query string (`last_event_id` only) and the
/// `Last-Event-ID` header into where it starts: now, or a client's cursor.
pub fn parse_bounty_stream_query(
    pairs: &[(String, String)],
    last_event_id_header: Option<&str>,
) -> Result<StartAt, InputError> {
    let mut last_event_id = None;
    for (key, value) in pairs {
        match key.as_str() {
            "last_event_id" => set_once(
                &mut last_event_id,
                "last_event_id",
                check_cursor_text("last_event_id", value)?,
            )?,
            _ => return Err(unknown(key, "last_event_id")),
        }
    }
    start_at(last_event_id, last_event_id_header, None)
}

/// Bounties per backfill page when the client does not say.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// The most bounties one backfill page may hold.
pub const MAX_LIST_LIMIT: usize = 100;

/// A parsed backfill request (`GET /api/v1/tasks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub filter: Filter,
    pub limit: usize,
    /// The opaque token of the page to continue from; see [`crate::backfill`].
    pub page_token: Option<String>,
}

/// Parses the backfill's query string pairs: the stream's filter, `limit` and
/// `page_token`.
pub fn parse_list_query(pairs: &[(String, String)]) -> Result<ListQuery, InputError> {
    let mut filter = FilterParams::default();
    let mut limit = None;
    let mut page_token = None;
    for (key, value) in pairs {
        if filter.take(key, value)? {
            continue;
        }
        match key.as_str() {
            "limit" => set_once(&mut limit, "limit", parse_limit(value)?)?,
            "page_token" => {
                if value.is_empty() || value.len() > MAX_CURSOR_LEN {
                    return Err(InputError::new(
                        InputErrorCode::InvalidPageToken,
                        "page_token",
                        "page_token is not a token issued by this endpoint",
                    ));
                }
                set_once(&mut page_token, "page_token", value.clone())?
            }
            "since" | "last_event_id" => {
                return Err(InputError::new(
                    InputErrorCode::UnknownParameter,
                    key.clone(),
                    format!(
                        "{key} belongs to the stream; the backfill lists every open bounty, newest first, and returns a stream_cursor to stream from"
                    ),
                ))
            }
            _ => {
                return Err(unknown(
                    key,
                    "category, min_budget_cents, tag, deadline_after, limit or page_token",
                ))
            }
        }
    }
    Ok(ListQuery {
        filter: filter.finish()?,
        limit: limit.unwrap_or(DEFAULT_LIST_LIMIT),
        page_token,
    })
}

fn parse_limit(value: &str) -> Result<usize, InputError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|limit| (1..=MAX_LIST_LIMIT).contains(limit) && !value.starts_with('+'))
        .ok_or_else(|| {
            InputError::new(
                InputErrorCode::InvalidParameter,
                "limit",
                format!("limit must be a whole number from 1 to {MAX_LIST_LIMIT} (got {value:?})"),
            )
        })
}

fn push_slugs(into: &mut Vec<Slug>, param: &str, value: &str) -> Result<(), InputError> {
    for item in value.split(',') {
        let slug = Slug::parse_lenient(item).map_err(|err| {
            InputError::new(
                InputErrorCode::InvalidParameter,
                param,
                format!("{param} {err}"),
            )
        })?;
        into.push(slug);
        // Stop early on absurd input rather than collecting it all.
        if into.len() > MAX_FILTER_VALUES * 4 {
            return Err(too_many(param));
        }
    }
    Ok(())
}

fn too_many(param: &str) -> InputError {
    InputError::new(
        InputErrorCode::TooManyValues,
        param,
        format!("at most {MAX_FILTER_VALUES} distinct {param} values"),
    )
}

fn normalise(mut values: Vec<Slug>, param: &str) -> Result<Vec<Slug>, InputError> {
    values.sort();
    values.dedup();
    if values.len() > MAX_FILTER_VALUES {
        return Err(too_many(param));
    }
    Ok(values)
}

fn set_once<T>(slot: &mut Option<T>, param: &str, value: T) -> Result<(), InputError> {
    if slot.is_some() {
        return Err(InputError::new(
            InputErrorCode::DuplicateParameter,
            param,
            format!("{param} may be given only once"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_cents(value: &str) -> Result<u64, InputError> {
    let invalid = |message: String| {
        InputError::new(
            InputErrorCode::InvalidParameter,
            "min_budget_cents",
            message,
        )
    };
    if value.starts_with('-') && value.len() > 1 && value[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "min_budget_cents must be zero or more (got {value})"
        )));
    }
    if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "min_budget_cents must be a whole number of cents, like 50000 for $500 (got {value:?})"
        )));
    }
    value
        .parse()
        .map_err(|_| invalid(format!("min_budget_cents {value:?} is out of range")))
}

fn parse_instant(param: &str, value: &str) -> Result<DateTime<Utc>, InputError> {
    // An unencoded `+02:00` offset arrives as ` 02:00`: read it as the user meant it.
    timefmt::parse(value)
        .or_else(|| timefmt::parse(&value.replace(' ', "+")))
        .ok_or_else(|| {
            InputError::new(
                InputErrorCode::InvalidParameter,
                param,
                format!("{param} {value:?} is not an RFC 3339 timestamp like 2026-05-07T22:14:00Z"),
            )
        })
}

/// Shape checks only; [`crate::cursor::Cursor::decode`] does the rest.
fn check_cursor_text(param: &str, value: &str) -> Result<String, InputError> {
    if value.is_empty() || value.len() > MAX_CURSOR_LEN {
        return Err(InputError::new(
            InputErrorCode::InvalidCursor,
            param,
            format!("{param} is not a cursor issued by this stream"),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    fn parse(query: &str) -> Result<StreamQuery, InputError> {
        parse_stream_query(&pairs(query), None)
    }

    #[test]
    fn parses_and_normalises_every_parameter() {
        let query = parse(
            "category=rust,Python&category=go&category=rust&tag=ci&min_budget_cents=50000&deadline_after=2026-05-08T00:00:00%2B02:00",
        )
        .expect("valid");
        assert_eq!(query.filter.categories, vec!["go", "python", "rust"]);
        assert_eq!(query.filter.tags, vec!["ci"]);
        assert_eq!(query.filter.min_budget_cents, Some(50_000));
        assert_eq!(
            query.filter.deadline_after.map(timefmt::format).as_deref(),
            Some("2026-05-07T22:00:00.000Z")
        );
        assert_eq!(query.start, StartAt::Now);
        let unencoded_plus = parse("deadline_after=2026-05-08T00:00:00+02:00").expect("valid");
        assert_eq!(
            unencoded_plus.filter.deadline_after,
            query.filter.deadline_after
        );
        let echo = serde_json::to_value(&query.filter).expect("serialises");
        assert_eq!(
            echo,
            serde_json::json!({"categories":["go","python","rust"],"min_budget_cents":50000,"tags":["ci"],"deadline_after":"2026-05-07T22:00:00.000Z"})
        );
    }

    #[test]
    fn empty_filter_echoes_nulls() {
        let echo = serde_json::to_value(&parse("").expect("valid").filter).expect("serialises");
        assert_eq!(
            echo,
            serde_json::json!({"categories":[],"min_budget_cents":null,"tags":[],"deadline_after":null})
        );
    }

    #[test]
    fn refusals_name_code_and_param() {
        let many: String = (0..21).map(|i| format!("category=c{i}&")).collect();
        let many_tags = format!(
            "tag={}",
            (0..21)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let cases = [
            (
                "min_budget_cents=abc",
                InputErrorCode::InvalidParameter,
                "min_budget_cents",
            ),
            (
                "min_budget_cents=-5",
                InputErrorCode::InvalidParameter,
                "min_budget_cents",
            ),
            (
                "min_budget_cents=1.5",
                InputErrorCode::InvalidParameter,
                "min_budget_cents",
            ),
            (
                "min_budget_cents=",
                InputErrorCode::InvalidParameter,
                "min_budget_cents",
            ),
            (
                "min_budget_cents=99999999999999999999",
                InputErrorCode::InvalidParameter,
                "min_budget_cents",
            ),
            (
                "min_budget_cents=1&min_budget_cents=2",
                InputErrorCode::DuplicateParameter,
                "min_budget_cents",
            ),
            (
                "category=Not_A_Slug",
                InputErrorCode::InvalidParameter,
                "category",
            ),
            (
                "category=python,,rust",
                InputErrorCode::InvalidParameter,
                "category",
            ),
            ("category=", InputErrorCode::InvalidParameter, "category"),
            ("tag=a%20b", InputErrorCode::InvalidParameter, "tag"),
            (many.as_str(), InputErrorCode::TooManyValues, "category"),
            (many_tags.as_str(), InputErrorCode::TooManyValues, "tag"),
            ("colour=red", InputErrorCode::UnknownParameter, "colour"),
            (
                "deadline_after=tomorrow",
                InputErrorCode::InvalidParameter,
                "deadline_after",
            ),
            (
                "since=2026-05-07",
                InputErrorCode::InvalidParameter,
                "since",
            ),
            (
                "since=2026-05-07T00:00:00Z&since=2026-05-07T00:00:00Z",
                InputErrorCode::DuplicateParameter,
                "since",
            ),
            (
                "last_event_id=",
                InputErrorCode::InvalidCursor,
                "last_event_id",
            ),
        ];
        for (query, code, param) in cases {
            let err = parse(query).expect_err(query);
            assert_eq!(
                (err.code, err.param.as_str()),
                (code, param),
                "{query}: {}",
                err.message
            );
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn twenty_distinct_values_are_allowed_and_duplicates_do_not_count() {
        let twenty: String = (0..20)
            .map(|i| format!("category=c{i}&category=c{i}&"))
            .collect();
        assert_eq!(parse(&twenty).expect("valid").filter.categories.len(), 20);
    }

    #[test]
    fn header_cursor_wins_over_parameter_and_since() {
        let query = parse_stream_query(
            &pairs("last_event_id=old&since=2026-05-07T00:00:00Z"),
            Some("new"),
        )
        .expect("valid");
        assert_eq!(
            query.start,
            StartAt::Cursor {
                cursor: "new".into(),
                param: "Last-Event-ID"
            }
        );
        let query = parse("last_event_id=old").expect("valid");
        assert_eq!(
            query.start,
            StartAt::Cursor {
                cursor: "old".into(),
                param: "last_event_id"
            }
        );
        let query = parse("since=2026-05-07T00:00:00Z").expect("valid");
        assert!(matches!(query.start, StartAt::Since(_)));
        let query = parse_stream_query(&pairs(""), Some("  ")).expect("blank header ignored");
        assert_eq!(query.start, StartAt::Now);
    }
}
