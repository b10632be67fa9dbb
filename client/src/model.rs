//! The wire types, as the contract defines them. The SDK keeps its own copies (plain
//! serde structs) rather than depending on the server crate: the JSON is the contract.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A bounty as the server sends it (a `bounty` event, a change, a backfill page, a
/// publish or update answer).
///
/// Servers from before the bounty lifecycle send neither `version` nor `updated_at`:
/// such a bounty reads as version 1, updated when it was created, so the SDK works
/// against both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireBounty")]
pub struct Bounty {
    pub id: String,
    pub title: String,
    pub description: String,
    pub category: String,
    pub budget_cents: u64,
    pub currency: String,
    pub tags: Vec<String>,
    /// RFC 3339.
    pub deadline: String,
    /// RFC 3339.
    pub created_at: String,
    /// `open`, `closed` (by its publisher) or `expired` (its deadline passed). Kept a
    /// string so that a status a later server adds does not make the bounty unreadable;
    /// [`Bounty::is_final`] tells whether it can still change.
    pub status: String,
    /// 1 at publish, one more per change.
    pub version: u64,
    /// RFC 3339: the last change (the publish, for a bounty never changed).
    pub updated_at: String,
    /// RFC 3339, once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// Why it was closed, once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
}

impl Bounty {
    /// Closed or expired: the bounty will not change again.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "closed" | "expired")
    }
}

/// [`Bounty`] as it may come off the wire: the lifecycle fields optional.
#[derive(Deserialize)]
struct WireBounty {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    category: String,
    budget_cents: u64,
    currency: String,
    #[serde(default)]
    tags: Vec<String>,
    deadline: String,
    created_at: String,
    status: String,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    closed_at: Option<String>,
    #[serde(default)]
    close_reason: Option<CloseReason>,
}

impl From<WireBounty> for Bounty {
    fn from(wire: WireBounty) -> Self {
        Bounty {
            updated_at: wire.updated_at.unwrap_or_else(|| wire.created_at.clone()),
            version: wire.version.unwrap_or(1),
            id: wire.id,
            title: wire.title,
            description: wire.description,
            category: wire.category,
            budget_cents: wire.budget_cents,
            currency: wire.currency,
            tags: wire.tags,
            deadline: wire.deadline,
            created_at: wire.created_at,
            status: wire.status,
            closed_at: wire.closed_at,
            close_reason: wire.close_reason,
        }
    }
}

/// Why a bounty was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The work was done and the bounty awarded.
    Awarded,
    /// The publisher withdrew it.
    Cancelled,
    /// A reason this SDK does not know (a later server's): the bounty stays readable.
    #[serde(other)]
    Other,
}

impl CloseReason {
    /// The wire name (`awarded`, `cancelled`; `other` for a reason this SDK does not know).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Awarded => "awarded",
            CloseReason::Cancelled => "cancelled",
            CloseReason::Other => "other",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change to an open bounty (`PATCH /api/v1/tasks/{id}`): only the fields set are
/// sent, and the server applies the publish rules to each. `tags` replaces the list
/// (`Some(vec![])` removes every tag).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BountyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_cents: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// RFC 3339, in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

impl BountyPatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn budget_cents(mut self, cents: u64) -> Self {
        self.budget_cents = Some(cents);
        self
    }

    pub fn tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    pub fn deadline(mut self, rfc3339: impl Into<String>) -> Self {
        self.deadline = Some(rfc3339.into());
        self
    }

    /// Nothing set: the server would answer with the bounty unchanged.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What to subscribe to or list. Empty lists and `None` mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub min_budget_cents: Option<u64>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// RFC 3339: only bounties whose deadline is after this.
    #[serde(default)]
    pub deadline_after: Option<String>,
}

impl Filter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.categories.push(category.into());
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    pub fn min_budget_cents(mut self, cents: u64) -> Self {
        self.min_budget_cents = Some(cents);
        self
    }

    pub fn deadline_after(mut self, rfc3339: impl Into<String>) -> Self {
        self.deadline_after = Some(rfc3339.into());
        self
    }

    /// The query parameters the stream and the backfill both take.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        pairs.extend(self.categories.iter().map(|c| ("category", c.clone())));
        if let Some(cents) = self.min_budget_cents {
            pairs.push(("min_budget_cents", cents.to_string()));
        }
        pairs.extend(self.tags.iter().map(|t| ("tag", t.clone())));
        if let Some(after) = &self.deadline_after {
            pairs.push(("deadline_after", after.clone()));
        }
        pairs
    }
}

/// A bounty to publish (`POST /api/v1/tasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBounty {
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub category: String,
    pub budget_cents: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// RFC 3339, in the future.
    pub deadline: String,
}

/// One page of the backfill (`GET /api/v1/tasks`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub bounties: Vec<Bounty>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// Where a stream continues exactly after this listing's snapshot.
    pub stream_cursor: String,
}

/// The `connected` event: the filter as the server understood it, and the stream's span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connected {
    pub filter: Value,
    pub server_time: String,
    pub cursor: String,
    pub resumed: bool,
    pub closes_at: String,
    /// The server's heartbeat interval in milliseconds (servers from contract v1.1 on):
    /// the subscription's dead-link timer follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

/// The per-bounty stream's `connected` event: the bounty as it is at connect time, and
/// the stream's span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchConnected {
    pub bounty: Bounty,
    pub cursor: String,
    pub closes_at: String,
    /// The server's heartbeat interval in milliseconds: the dead-link timer follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_pairs_repeat_lists_and_skip_what_is_unset() {
        let filter = Filter::new()
            .category("python")
            .category("rust")
            .tag("tokio")
            .min_budget_cents(50_000);
        assert_eq!(
            filter.query_pairs(),
            vec![
                ("category", "python".to_owned()),
                ("category", "rust".to_owned()),
                ("min_budget_cents", "50000".to_owned()),
                ("tag", "tokio".to_owned()),
            ]
        );
        assert!(Filter::new().query_pairs().is_empty());
    }

    #[test]
    fn new_bounty_omits_unset_optional_fields() {
        let draft = NewBounty {
            title: "t".into(),
            description: String::new(),
            category: "python".into(),
            budget_cents: 100,
            currency: None,
            tags: vec![],
            deadline: "2099-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&draft).unwrap(),
            serde_json::json!({"title":"t","category":"python","budget_cents":100,"deadline":"2099-01-01T00:00:00Z"})
        );
    }

    fn v1_bounty() -> Value {
        json!({"id":"b1","title":"t","category":"python","budget_cents":100,"currency":"USD",
               "deadline":"2099-01-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z","status":"open"})
    }

    #[test]
    fn a_bounty_from_a_server_before_the_lifecycle_reads_as_version_1() {
        let bounty: Bounty = serde_json::from_value(v1_bounty()).unwrap();
        assert_eq!(bounty.version, 1);
        assert_eq!(bounty.updated_at, "2026-01-01T00:00:00Z");
        assert_eq!((&bounty.closed_at, bounty.close_reason), (&None, None));
        assert!(!bounty.is_final());
    }

    #[test]
    fn a_closed_bounty_reads_its_lifecycle_fields_and_writes_them_back() {
        let mut wire = v1_bounty();
        wire["status"] = json!("closed");
        wire["version"] = json!(4);
        wire["updated_at"] = json!("2026-01-02T00:00:00Z");
        wire["closed_at"] = json!("2026-01-02T00:00:00Z");
        wire["close_reason"] = json!("awarded");
        let bounty: Bounty = serde_json::from_value(wire).unwrap();
        assert_eq!(bounty.version, 4);
        assert_eq!(bounty.close_reason, Some(CloseReason::Awarded));
        assert!(bounty.is_final());
        let again = serde_json::to_value(&bounty).unwrap();
        assert_eq!(again["close_reason"], "awarded");
        assert_eq!(again["version"], 4);
        assert_eq!(serde_json::from_value::<Bounty>(again).unwrap(), bounty);
    }

    #[test]
    fn null_lifecycle_fields_and_an_unknown_close_reason_are_readable() {
        let mut wire = v1_bounty();
        wire["closed_at"] = Value::Null;
        wire["close_reason"] = Value::Null;
        let open: Bounty = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(open.close_reason, None);
        wire["close_reason"] = json!("duplicate");
        let later: Bounty = serde_json::from_value(wire).unwrap();
        assert_eq!(later.close_reason, Some(CloseReason::Other));
    }

    #[test]
    fn a_patch_sends_only_what_is_set() {
        let patch = BountyPatch::new()
            .title("New title")
            .tags(Vec::<String>::new());
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"title":"New title","tags":[]})
        );
        assert!(BountyPatch::new().is_empty());
        assert!(!patch.is_empty());
    }
}
