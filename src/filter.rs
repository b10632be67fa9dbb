//! The subscriber's [`Filter`] and matching: [`Filter::matches`] is the one place that
//! decides whether a bounty reaches a subscriber. Query strings become filters in
//! [`crate::query`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bounty::{Bounty, BountyStatus, Slug};
use crate::timefmt;

/// At most this many categories, and this many tags, in one filter.
pub const MAX_FILTER_VALUES: usize = 20;

/// The normalised filter; serialises as the `filter` echoed in `connected`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filter {
    /// Sorted, without duplicates; empty means every category.
    pub categories: Vec<Slug>,
    pub min_budget_cents: Option<u64>,
    /// Sorted, without duplicates; empty means any tags. Otherwise at least one must match.
    pub tags: Vec<Slug>,
    #[serde(serialize_with = "serialize_optional_instant")]
    pub deadline_after: Option<DateTime<Utc>>,
}

fn serialize_optional_instant<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&timefmt::format(*at)),
        None => serializer.serialize_none(),
    }
}

impl Filter {
    /// Whether `bounty` reaches a subscriber with this filter. Only open bounties do.
    pub fn matches(&self, bounty: &Bounty) -> bool {
        bounty.status == BountyStatus::Open && self.matches_fields(bounty)
    }

    /// Whether the filter takes `bounty`'s fields, whatever its status: a close
    /// reaches the subscribers the bounty matched just before it.
    pub fn matches_fields(&self, bounty: &Bounty) -> bool {
        (self.categories.is_empty() || self.categories.iter().any(|c| *c == bounty.category))
            && self
                .min_budget_cents
                .is_none_or(|min| bounty.budget_cents >= min)
            && (self.tags.is_empty()
                || bounty
                    .tags
                    .iter()
                    .any(|tag| self.tags.iter().any(|t| t == tag)))
            && self
                .deadline_after
                .is_none_or(|after| bounty.deadline > after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_stream_query;

    fn parse(query: &str) -> Filter {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        parse_stream_query(&pairs, None).expect("valid").filter
    }

    fn bounty() -> Bounty {
        Bounty {
            id: "01J".into(),
            title: "t".into(),
            description: String::new(),
            category: "python".into(),
            budget_cents: 75_000,
            currency: "USD".into(),
            tags: vec!["pytest".into(), "ci".into()],
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
    fn matching_applies_every_criterion() {
        let b = bounty();
        let f = parse;
        assert!(f("").matches(&b));
        assert!(f("category=python,rust").matches(&b));
        assert!(!f("category=rust").matches(&b));
        assert!(f("min_budget_cents=75000").matches(&b));
        assert!(!f("min_budget_cents=75001").matches(&b));
        assert!(f("tag=ci&tag=docs").matches(&b));
        assert!(!f("tag=docs").matches(&b));
        assert!(f("deadline_after=2026-05-31T23:59:59Z").matches(&b));
        assert!(!f("deadline_after=2026-06-01T00:00:00Z").matches(&b));
        let closed = Bounty {
            status: BountyStatus::Closed,
            ..b
        };
        assert!(!f("").matches(&closed));
    }
}
