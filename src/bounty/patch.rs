//! The body of `PATCH /api/v1/tasks/{id}`, validated into a [`Patch`]: new values for
//! some of the publisher's fields (the publish rules apply to each), or a close. A
//! patch is checked whole before anything is written, so no partial update exists.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    budget_cents, deadline, description, invalid, parse_json, tags, title, Bounty, BountyStatus,
    CloseReason, Slug,
};
use crate::{InputError, InputErrorCode};

/// The fields a publisher may change, in the order they are checked.
pub const CHANGEABLE: [&str; 5] = ["title", "description", "budget_cents", "tags", "deadline"];

/// What a PATCH asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// New values for the fields given; the others stay.
    Update(Update),
    /// `{"status":"closed","close_reason":...}`: the end of the bounty.
    Close(CloseReason),
}

/// New values, each already valid by the publish rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub title: Option<String>,
    pub description: Option<String>,
    pub budget_cents: Option<u64>,
    pub tags: Option<Vec<Slug>>,
    pub deadline: Option<DateTime<Utc>>,
}

impl Patch {
    /// Parses and validates a PATCH body; `now` judges a new deadline.
    pub fn from_json(body: &[u8], now: DateTime<Utc>) -> Result<Patch, InputError> {
        Self::from_value(parse_json(body)?, now)
    }

    /// Validates a PATCH body already parsed as JSON.
    pub fn from_value(value: Value, now: DateTime<Utc>) -> Result<Patch, InputError> {
        let Value::Object(mut fields) = value else {
            return Err(InputError::new(
                InputErrorCode::InvalidJson,
                "body",
                "the body must be a JSON object",
            ));
        };
        let status = fields.remove("status");
        let close_reason = fields.remove("close_reason");
        if status.is_none() && close_reason.is_none() {
            return update(fields, now).map(Patch::Update);
        }
        match status {
            Some(Value::String(status)) if status == "closed" => {}
            None => {
                return Err(invalid(
                    "status",
                    "close_reason goes with \"status\": \"closed\"",
                ))
            }
            Some(_) => {
                return Err(invalid(
                    "status",
                    "status can only be set to \"closed\" (with a close_reason)",
                ))
            }
        }
        let reason = match close_reason {
            Some(Value::String(text)) => CloseReason::parse(&text),
            None | Some(Value::Null) => {
                return Err(invalid(
                    "close_reason",
                    "close_reason is required to close a bounty: \"awarded\" or \"cancelled\"",
                ))
            }
            Some(_) => None,
        }
        .ok_or_else(|| {
            invalid(
                "close_reason",
                "close_reason must be \"awarded\" or \"cancelled\"",
            )
        })?;
        // A close is the whole change: other fields would be a second change in one.
        if let Some(name) = CHANGEABLE.iter().find(|name| fields.contains_key(**name)) {
            return Err(invalid(
                name,
                format!("a close changes nothing else; send {name} in a PATCH of its own, before the close"),
            ));
        }
        reject_leftovers(fields)?;
        Ok(Patch::Close(reason))
    }

    /// The bounty after this patch at `now`, or `None` when it changes nothing (the
    /// answer is then the bounty as it is, same version). `bounty` must be open.
    pub fn apply(&self, bounty: &Bounty, now: DateTime<Utc>) -> Option<Bounty> {
        let mut after = bounty.clone();
        match self {
            Patch::Update(update) => {
                if let Some(title) = &update.title {
                    after.title.clone_from(title);
                }
                if let Some(description) = &update.description {
                    after.description.clone_from(description);
                }
                if let Some(cents) = update.budget_cents {
                    after.budget_cents = cents;
                }
                if let Some(tags) = &update.tags {
                    after.tags = tags.iter().map(|tag| tag.as_str().to_owned()).collect();
                }
                if let Some(deadline) = update.deadline {
                    after.deadline = deadline;
                }
                if after == *bounty {
                    return None;
                }
            }
            Patch::Close(reason) => {
                after.status = BountyStatus::Closed;
                after.closed_at = Some(now);
                after.close_reason = Some(*reason);
            }
        }
        after.version = bounty.version + 1;
        // Never before the last change, whatever this instance's clock says.
        after.updated_at = now.max(bounty.updated_at);
        if let Some(closed_at) = &mut after.closed_at {
            *closed_at = (*closed_at).max(after.updated_at);
        }
        Some(after)
    }

    /// `closed` or `updated`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Patch::Update(_) => "update",
            Patch::Close(_) => "close",
        }
    }
}

fn update(mut fields: Map<String, Value>, now: DateTime<Utc>) -> Result<Update, InputError> {
    // `null` is not "leave it": it would be a second way to say nothing, or to clear a
    // field the publish rules require.
    let mut present = |name: &str| -> Result<Option<Value>, InputError> {
        match fields.remove(name) {
            Some(Value::Null) => Err(invalid(
                name,
                format!("{name} cannot be null; leave it out to keep it"),
            )),
            other => Ok(other),
        }
    };
    let title_value = present("title")?;
    let description_value = present("description")?;
    let budget_value = present("budget_cents")?;
    let tags_value = present("tags")?;
    let deadline_value = present("deadline")?;
    let update = Update {
        title: title_value.map(|v| title(Some(v))).transpose()?,
        description: description_value
            .map(|v| description(Some(v)))
            .transpose()?,
        budget_cents: budget_value.map(|v| budget_cents(Some(v))).transpose()?,
        tags: tags_value.map(|v| tags(Some(v))).transpose()?,
        deadline: deadline_value.map(|v| deadline(Some(v), now)).transpose()?,
    };
    reject_leftovers(fields)?;
    Ok(update)
}

fn reject_leftovers(fields: Map<String, Value>) -> Result<(), InputError> {
    let Some(name) = fields.keys().next() else {
        return Ok(());
    };
    let message = match name.as_str() {
        "category" | "currency" => format!("{name} cannot be changed after publish"),
        "id" | "created_at" | "version" | "updated_at" | "closed_at" => {
            format!("{name} is set by the server; leave it out")
        }
        _ => format!(
            "unknown field {name:?}; expected any of title, description, budget_cents, tags, deadline, or status with close_reason"
        ),
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
    use crate::timefmt;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        timefmt::parse("2026-05-07T22:14:00Z").expect("valid")
    }

    fn parse(value: Value) -> Result<Patch, InputError> {
        Patch::from_json(value.to_string().as_bytes(), now())
    }

    fn bounty() -> Bounty {
        Bounty {
            id: "01J".into(),
            title: "Fix it".into(),
            description: String::new(),
            category: "python".into(),
            budget_cents: 500,
            currency: "USD".into(),
            tags: vec!["ci".into()],
            deadline: timefmt::parse("2026-06-01T00:00:00Z").expect("valid"),
            created_at: timefmt::parse("2026-05-01T00:00:00Z").expect("valid"),
            status: BountyStatus::Open,
            version: 1,
            updated_at: timefmt::parse("2026-05-01T00:00:00Z").expect("valid"),
            closed_at: None,
            close_reason: None,
        }
    }

    #[test]
    fn an_update_changes_only_what_it_names_and_counts_a_version() {
        let patch = parse(json!({"budget_cents": 900, "tags": ["ci", "docs"]})).expect("valid");
        let after = patch.apply(&bounty(), now()).expect("changed");
        assert_eq!(after.budget_cents, 900);
        assert_eq!(after.tags, ["ci", "docs"]);
        assert_eq!(after.title, "Fix it");
        assert_eq!((after.version, after.updated_at), (2, now()));
        assert_eq!(after.status, BountyStatus::Open);
    }

    #[test]
    fn a_patch_that_changes_nothing_is_no_change() {
        for body in [json!({}), json!({"title": " Fix it ", "budget_cents": 500})] {
            assert_eq!(parse(body).expect("valid").apply(&bounty(), now()), None);
        }
    }

    #[test]
    fn a_close_records_when_and_why() {
        let after = parse(json!({"status": "closed", "close_reason": "awarded"}))
            .expect("valid")
            .apply(&bounty(), now())
            .expect("changed");
        assert_eq!(after.status, BountyStatus::Closed);
        assert_eq!(after.close_reason, Some(CloseReason::Awarded));
        assert_eq!(after.closed_at, Some(now()));
        assert_eq!(after.version, 2);
        let json = serde_json::to_value(&after).expect("json");
        assert_eq!(json["close_reason"], "awarded");
        assert_eq!(json["status"], "closed");
    }

    #[test]
    fn every_bad_body_names_its_field() {
        let cases: Vec<(Value, &str, InputErrorCode)> = vec![
            (
                json!({"colour": "red"}),
                "colour",
                InputErrorCode::UnknownField,
            ),
            (
                json!({"category": "rust"}),
                "category",
                InputErrorCode::UnknownField,
            ),
            (
                json!({"version": 3}),
                "version",
                InputErrorCode::UnknownField,
            ),
            (json!({"title": 7}), "title", InputErrorCode::InvalidField),
            (
                json!({"title": null}),
                "title",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"budget_cents": 0}),
                "budget_cents",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"budget_cents": -3}),
                "budget_cents",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"budget_cents": "9"}),
                "budget_cents",
                InputErrorCode::InvalidField,
            ),
            (json!({"tags": "ci"}), "tags", InputErrorCode::InvalidField),
            (
                json!({"deadline": "2026-05-01T00:00:00Z"}),
                "deadline",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"status": "open"}),
                "status",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"status": "closed"}),
                "close_reason",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"status": "closed", "close_reason": "bored"}),
                "close_reason",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"close_reason": "awarded"}),
                "status",
                InputErrorCode::InvalidField,
            ),
            (
                json!({"status": "closed", "close_reason": "awarded", "title": "x"}),
                "title",
                InputErrorCode::InvalidField,
            ),
            (json!([1]), "body", InputErrorCode::InvalidJson),
        ];
        for (body, param, code) in cases {
            let err = parse(body.clone()).expect_err(&body.to_string());
            assert_eq!((err.param.as_str(), err.code), (param, code), "{body}");
        }
        let err = Patch::from_json(b"{", now()).expect_err("not json");
        assert_eq!(err.code, InputErrorCode::InvalidJson);
    }
}
