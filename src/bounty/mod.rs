//! The public bounty, and the validation of a publish body into a [`BountyDraft`].
//!
//! A draft is everything the publisher chose; the server adds `id` ([`id`]),
//! `created_at` and `status` when the bounty is appended to the feed (see
//! [`crate::publish`]). Categories and tags are [`Slug`]s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{timefmt, InputError, InputErrorCode};

pub mod id;
pub mod patch;
mod slug;

pub use slug::{is_slug, NotASlug, Slug, MAX_SLUG_LEN};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_TAGS: usize = 10;
/// Ten billion dollars: anything larger is a typo, not a bounty.
pub const MAX_BUDGET_CENTS: u64 = 1_000_000_000_000;

/// Where a bounty is in its life. `Closed` and `Expired` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BountyStatus {
    Open,
    /// Closed by its publisher (`close_reason` says why).
    Closed,
    /// Its deadline passed while it was open. Never stored: it is how an open bounty
    /// past its deadline is shown ([`Bounty::as_of`]).
    Expired,
}

/// Why a publisher closed a bounty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    Awarded,
    Cancelled,
}

impl CloseReason {
    pub fn parse(text: &str) -> Option<CloseReason> {
        match text {
            "awarded" => Some(CloseReason::Awarded),
            "cancelled" => Some(CloseReason::Cancelled),
            _ => None,
        }
    }
}

/// A bounty as subscribers see it (the `data:` of a `bounty` frame). Entries written
/// before bounties had a life (no `version`, no `updated_at`) read as version 1,
/// updated when created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredBounty")]
pub struct Bounty {
    pub id: String,
    pub title: String,
    pub description: String,
    pub category: String,
    pub budget_cents: u64,
    pub currency: String,
    pub tags: Vec<String>,
    #[serde(with = "timefmt::serde_rfc3339")]
    pub deadline: DateTime<Utc>,
    #[serde(with = "timefmt::serde_rfc3339")]
    pub created_at: DateTime<Utc>,
    pub status: BountyStatus,
    /// 1 at publish, one more per change: orders a bounty's changes.
    pub version: u64,
    #[serde(with = "timefmt::serde_rfc3339")]
    pub updated_at: DateTime<Utc>,
    #[serde(
        with = "timefmt::serde_rfc3339_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
}

/// [`Bounty`] as stored: the fields added with the bounty lifecycle may be missing.
#[derive(Deserialize)]
struct StoredBounty {
    id: String,
    title: String,
    description: String,
    category: String,
    budget_cents: u64,
    currency: String,
    tags: Vec<String>,
    #[serde(with = "timefmt::serde_rfc3339")]
    deadline: DateTime<Utc>,
    #[serde(with = "timefmt::serde_rfc3339")]
    created_at: DateTime<Utc>,
    status: BountyStatus,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default, with = "timefmt::serde_rfc3339_option")]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timefmt::serde_rfc3339_option")]
    closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    close_reason: Option<CloseReason>,
}

impl From<StoredBounty> for Bounty {
    fn from(stored: StoredBounty) -> Self {
        Bounty {
            id: stored.id,
            title: stored.title,
            description: stored.description,
            category: stored.category,
            budget_cents: stored.budget_cents,
            currency: stored.currency,
            tags: stored.tags,
            deadline: stored.deadline,
            created_at: stored.created_at,
            status: stored.status,
            version: stored.version.unwrap_or(1),
            updated_at: stored.updated_at.unwrap_or(stored.created_at),
            closed_at: stored.closed_at,
            close_reason: stored.close_reason,
        }
    }
}

impl Bounty {
    /// Whether nothing can change it any more at `now`: closed, or past its deadline.
    pub fn is_terminal(&self, now: DateTime<Utc>) -> bool {
        self.status != BountyStatus::Open || self.deadline <= now
    }

    /// The bounty as it is shown at `now`: an open one past its deadline is `expired`.
    pub fn as_of(mut self, now: DateTime<Utc>) -> Bounty {
        if self.status == BountyStatus::Open && self.deadline <= now {
            self.status = BountyStatus::Expired;
        }
        self
    }
}

/// A validated publish body: what the publisher decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BountyDraft {
    pub title: String,
    pub description: String,
    pub category: Slug,
    pub budget_cents: u64,
    pub currency: String,
    pub tags: Vec<Slug>,
    pub deadline: DateTime<Utc>,
}

/// Parses a request body as JSON: `invalid_json` if it is not.
pub fn parse_json(body: &[u8]) -> Result<Value, InputError> {
    serde_json::from_slice(body).map_err(|err| {
        InputError::new(
            InputErrorCode::InvalidJson,
            "body",
            format!("the body is not valid JSON: {err}"),
        )
    })
}

impl BountyDraft {
    /// The bounty this draft becomes when appended with `id` at `created_at`.
    pub fn into_bounty(self, id: String, created_at: DateTime<Utc>) -> Bounty {
        Bounty {
            id,
            title: self.title,
            description: self.description,
            category: self.category.into_string(),
            budget_cents: self.budget_cents,
            currency: self.currency,
            tags: self.tags.into_iter().map(Slug::into_string).collect(),
            deadline: self.deadline,
            created_at,
            status: BountyStatus::Open,
            version: 1,
            updated_at: created_at,
            closed_at: None,
            close_reason: None,
        }
    }

    /// Parses and validates a publish body, field by field; `now` judges the deadline.
    pub fn from_json(body: &[u8], now: DateTime<Utc>) -> Result<Self, InputError> {
        Self::from_value(parse_json(body)?, now)
    }

    /// Validates a publish body already parsed as JSON.
    pub fn from_value(value: Value, now: DateTime<Utc>) -> Result<Self, InputError> {
        let Value::Object(mut fields) = value else {
            return Err(InputError::new(
                InputErrorCode::InvalidJson,
                "body",
                "the body must be a JSON object",
            ));
        };
        let draft = Self {
            title: title(fields.remove("title"))?,
            description: description(fields.remove("description"))?,
            category: category(fields.remove("category"))?,
            budget_cents: budget_cents(fields.remove("budget_cents"))?,
            currency: currency(fields.remove("currency"))?,
            tags: tags(fields.remove("tags"))?,
            deadline: deadline(fields.remove("deadline"), now)?,
        };
        reject_leftovers(fields)?;
        Ok(draft)
    }
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> InputError {
    InputError::new(InputErrorCode::InvalidField, field, message)
}

fn required_string(value: Option<Value>, field: &str) -> Result<String, InputError> {
    match value {
        Some(Value::String(text)) => Ok(text),
        None | Some(Value::Null) => Err(invalid(field, format!("{field} is required"))),
        Some(_) => Err(invalid(field, format!("{field} must be a string"))),
    }
}

pub(crate) fn title(value: Option<Value>) -> Result<String, InputError> {
    let text = required_string(value, "title")?;
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_TITLE_CHARS {
        return Err(invalid(
            "title",
            format!("title must be 1 to {MAX_TITLE_CHARS} characters (got {chars})"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub(crate) fn description(value: Option<Value>) -> Result<String, InputError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(Value::String(text)) => text,
        Some(_) => return Err(invalid("description", "description must be a string")),
    };
    let chars = text.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters (got {chars})"),
        ));
    }
    Ok(text)
}

fn category(value: Option<Value>) -> Result<Slug, InputError> {
    let text = required_string(value, "category")?;
    Slug::parse(&text).map_err(|err| invalid("category", format!("category {err}")))
}

pub(crate) fn budget_cents(value: Option<Value>) -> Result<u64, InputError> {
    let message =
        format!("budget_cents must be a whole number of cents from 1 to {MAX_BUDGET_CENTS}");
    match value {
        None | Some(Value::Null) => Err(invalid("budget_cents", "budget_cents is required")),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(cents) if (1..=MAX_BUDGET_CENTS).contains(&cents) => Ok(cents),
            _ => Err(invalid("budget_cents", message)),
        },
        Some(_) => Err(invalid("budget_cents", message)),
    }
}

fn currency(value: Option<Value>) -> Result<String, InputError> {
    let text = match value {
        None | Some(Value::Null) => return Ok("USD".to_owned()),
        Some(Value::String(text)) => text,
        Some(_) => return Err(invalid("currency", "currency must be a string")),
    };
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text)
    } else {
        Err(invalid(
            "currency",
            format!("currency {text:?} must be a three-letter ISO 4217 code in capitals, like USD"),
        ))
    }
}

pub(crate) fn tags(value: Option<Value>) -> Result<Vec<Slug>, InputError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("tags", "tags must be an array of slugs")),
    };
    let mut tags: Vec<Slug> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(text) = item else {
            return Err(invalid("tags", "tags must be an array of slugs"));
        };
        let tag = Slug::parse(&text).map_err(|err| invalid("tags", format!("tag {err}")))?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(invalid(
            "tags",
            format!("at most {MAX_TAGS} tags (got {})", tags.len()),
        ));
    }
    Ok(tags)
}

pub(crate) fn deadline(
    value: Option<Value>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, InputError> {
    let text = required_string(value, "deadline")?;
    let at = timefmt::parse(&text).ok_or_else(|| {
        invalid(
            "deadline",
            format!("deadline {text:?} is not an RFC 3339 timestamp like 2026-05-07T22:14:00Z"),
        )
    })?;
    if at <= now {
        return Err(invalid("deadline", "deadline must be in the future"));
    }
    Ok(at)
}

fn reject_leftovers(fields: Map<String, Value>) -> Result<(), InputError> {
    let Some(name) = fields.keys().next() else {
        return Ok(());
    };
    let message = if matches!(name.as_str(), "id" | "created_at" | "status") {
        format!("{name} is set by the server; leave it out")
    } else {
        format!("unknown field {name:?}; expected title, description, category, budget_cents, currency, tags, deadline")
    };
    Err(InputError::new(
        InputErrorCode::UnknownField,
        name.clone(),
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        timefmt::parse("2026-05-07T22:14:00Z").expect("valid")
    }

    fn valid() -> Value {
        json!({
            "title": "  Fix the flaky test ",
            "description": "It fails on Tuesdays.",
            "category": "python",
            "budget_cents": 50000,
            "tags": ["pytest", "ci", "pytest"],
            "deadline": "2026-06-01T00:00:00+02:00"
        })
    }

    fn parse(value: &Value) -> Result<BountyDraft, InputError> {
        BountyDraft::from_json(value.to_string().as_bytes(), now())
    }

    #[test]
    fn accepts_and_normalises_a_valid_body() {
        let draft = parse(&valid()).expect("valid");
        assert_eq!(draft.title, "Fix the flaky test");
        assert_eq!(draft.currency, "USD");
        assert_eq!(draft.tags, vec!["pytest", "ci"]);
        assert_eq!(timefmt::format(draft.deadline), "2026-05-31T22:00:00.000Z");
    }

    #[test]
    fn refuses_each_bad_field_by_name() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("title", json!(""), "title"),
            ("title", json!("x".repeat(201)), "title"),
            ("title", json!(7), "title"),
            ("description", json!("x".repeat(10_001)), "description"),
            ("category", json!("Python!"), "category"),
            ("budget_cents", json!(0), "budget_cents"),
            ("budget_cents", json!(-5), "budget_cents"),
            ("budget_cents", json!(12.5), "budget_cents"),
            ("budget_cents", json!("500"), "budget_cents"),
            ("currency", json!("usd"), "currency"),
            ("tags", json!(["a", "B"]), "tags"),
            (
                "tags",
                json!((0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()),
                "tags",
            ),
            ("deadline", json!("2026-05-07T00:00:00Z"), "deadline"),
            ("deadline", json!("next week"), "deadline"),
        ];
        for (field, bad, param) in cases {
            let mut body = valid();
            body[field] = bad.clone();
            let err = parse(&body).expect_err(&format!("{field}={bad}"));
            assert_eq!(err.code, InputErrorCode::InvalidField, "{field}={bad}");
            assert_eq!(err.param, param);
        }
    }

    #[test]
    fn missing_required_fields_are_named() {
        for field in ["title", "category", "budget_cents", "deadline"] {
            let mut body = valid();
            body.as_object_mut().expect("object").remove(field);
            let err = parse(&body).expect_err(field);
            assert_eq!(err.param, field);
            assert!(err.message.contains("required"), "{}", err.message);
        }
    }

    #[test]
    fn server_fields_and_unknown_fields_are_refused() {
        for field in ["id", "status", "colour"] {
            let mut body = valid();
            body[field] = json!("x");
            let err = parse(&body).expect_err(field);
            assert_eq!(err.code, InputErrorCode::UnknownField);
            assert_eq!(err.param, field);
        }
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        for body in [&b"{"[..], b"[]", b"", b"\xff"] {
            let err = BountyDraft::from_json(body, now()).expect_err("malformed");
            assert_eq!(err.code, InputErrorCode::InvalidJson);
        }
    }
}
