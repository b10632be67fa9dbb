//! Instants on the wire: RFC 3339 in UTC with milliseconds (`2026-05-07T22:14:00.123Z`).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Formats an instant the one way the API writes instants.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 timestamp (any offset) into UTC.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Milliseconds since the Unix epoch, clamped at zero for instants before it.
pub fn to_millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// The instant `ms` milliseconds after the Unix epoch (saturating far in the future).
pub fn from_millis(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Serde adapter for `DateTime<Utc>` fields in the wire format.
pub mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }
}

/// [`serde_rfc3339`] for optional fields (`null` or missing is `None`).
pub mod serde_rfc3339_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_str(&super::format(*at)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                super::parse(&text)
                    .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_millis() {
        let at = parse("2026-05-07T23:14:00.1234+01:00").expect("valid");
        assert_eq!(format(at), "2026-05-07T22:14:00.123Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2026-05-07",
            "2026-05-07 22:14:00",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn millis_round_trip() {
        let at = parse("2026-05-07T22:14:00.123Z").expect("valid");
        assert_eq!(from_millis(to_millis(at)), at);
        assert_eq!(from_millis(u64::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
