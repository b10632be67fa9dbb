//! The wire types, as the contract defines them. The SDK keeps its own copies (plain
//! serde structs) rather than depending on the server crate: the JSON is the contract.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A bounty as the server sends it (a `bounty` event, a backfill page, a publish answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounty {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub category: String,
    pub budget_cents: u64,
    pub currency: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// RFC 3339.
    pub deadline: String,
    /// RFC 3339.
    pub created_at: String,
    pub status: String,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
