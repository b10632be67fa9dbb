//! [`Slug`]: a category or tag, checked once when it is parsed, so code that holds one
//! never checks again. Publish bodies and filters both parse slugs through here, with
//! one error message.

use std::fmt;
use std::ops::Deref;

use serde::Serialize;

/// The longest slug, in bytes (slugs are ASCII).
pub const MAX_SLUG_LEN: usize = 32;

/// `[a-z0-9][a-z0-9-]{0,31}`: a category or a tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// A text that is not a slug; its message names what a slug is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a slug: lowercase letters, digits and '-', 1 to {MAX_SLUG_LEN} characters, starting with a letter or digit")]
pub struct NotASlug {
    pub text: String,
}

/// Whether `text` is a slug as it stands (no case folding).
pub fn is_slug(text: &str) -> bool {
    let bytes = text.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && bytes.len() <= MAX_SLUG_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

impl Slug {
    /// `text` exactly as given: publish bodies must send slugs in lower case.
    pub fn parse(text: &str) -> Result<Slug, NotASlug> {
        if is_slug(text) {
            Ok(Slug(text.to_owned()))
        } else {
            Err(NotASlug {
                text: text.to_owned(),
            })
        }
    }

    /// `text` trimmed and lower-cased first: query parameters are forgiving of case.
    pub fn parse_lenient(text: &str) -> Result<Slug, NotASlug> {
        Slug::parse(&text.trim().to_ascii_lowercase()).map_err(|_| NotASlug {
            text: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for Slug {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Slug {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Slug {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Slug {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for good in ["a", "python", "c-plus-plus", "9lives", &"a".repeat(32)] {
            assert!(is_slug(good), "{good}");
            assert_eq!(Slug::parse(good).expect("slug").as_str(), good);
        }
        for bad in ["", "-a", "Python", "a_b", "a b", "é", &"a".repeat(33)] {
            assert!(!is_slug(bad), "{bad}");
            let err = Slug::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("is not a slug"), "{err}");
        }
    }

    #[test]
    fn lenient_parsing_folds_case_and_trims_but_reports_the_text_as_sent() {
        assert_eq!(
            Slug::parse_lenient(" Python ").expect("slug").as_str(),
            "python"
        );
        let err = Slug::parse_lenient("Not_A_Slug").expect_err("underscore");
        assert_eq!(err.text, "Not_A_Slug");
    }
}
