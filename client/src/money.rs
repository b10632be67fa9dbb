//! Money as people write it (`500`, `500.25`, `$1,200.50`) <-> integer cents, exactly:
//! the decimal string is parsed digit by digit, never through a float.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("empty amount")]
    Empty,
    #[error("{0:?} is not an amount: use digits with at most two decimals, like 500 or 500.25")]
    Malformed(String),
    #[error("{0:?} has more than two decimals (cents are the smallest unit)")]
    TooPrecise(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a non-negative amount in major units into cents. Accepts an optional leading
/// `$`, `,` or `_` between digit groups, and up to two decimals.
pub fn parse_cents(text: &str) -> Result<u64, MoneyError> {
    let trimmed = text.trim();
    let body = trimmed.strip_prefix('$').unwrap_or(trimmed);
    if body.is_empty() {
        return Err(MoneyError::Empty);
    }
    let malformed = || MoneyError::Malformed(text.to_owned());
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    let whole_digits: String = whole.chars().filter(|c| *c != ',' && *c != '_').collect();
    let separators_ok = !whole.starts_with([',', '_']) && !whole.ends_with([',', '_']);
    if whole_digits.is_empty() && fraction.is_none_or(str::is_empty) {
        return Err(malformed());
    }
    if !separators_ok || !whole_digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(malformed());
    }
    let mut cents: u64 = 0;
    for digit in whole_digits.bytes() {
        cents = cents
            .checked_mul(10)
            .and_then(|c| c.checked_add(u64::from(digit - b'0')))
            .ok_or_else(|| MoneyError::TooLarge(text.to_owned()))?;
    }
    cents = cents
        .checked_mul(100)
        .ok_or_else(|| MoneyError::TooLarge(text.to_owned()))?;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.chars().all(|c| c.is_ascii_digit()) {
            return Err(malformed());
        }
        if fraction.len() > 2 {
            return Err(MoneyError::TooPrecise(text.to_owned()));
        }
        let mut minor: u64 = fraction.parse().map_err(|_| malformed())?;
        if fraction.len() == 1 {
            minor *= 10;
        }
        cents = cents
            .checked_add(minor)
            .ok_or_else(|| MoneyError::TooLarge(text.to_owned()))?;
    }
    Ok(cents)
}

/// Cents shown in major units with grouping: `Money(120_050, "USD")` -> `1,200.50 USD`.
pub struct Money<'a>(pub u64, pub &'a str);

impl fmt::Display for Money<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = (self.0 / 100).to_string();
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        write!(f, "{grouped}.{:02} {}", self.0 % 100, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_decimal_amounts_exactly() {
        assert_eq!(parse_cents("500"), Ok(50_000));
        assert_eq!(parse_cents("500.25"), Ok(50_025));
        assert_eq!(parse_cents("500.2"), Ok(50_020));
        assert_eq!(parse_cents("0.01"), Ok(1));
        assert_eq!(parse_cents(".5"), Ok(50));
        assert_eq!(parse_cents("0"), Ok(0));
        assert_eq!(parse_cents("$1,200.50"), Ok(120_050));
        assert_eq!(parse_cents("1_000"), Ok(100_000));
        assert_eq!(parse_cents(" 7 "), Ok(700));
        // The classic float trap: 0.29 * 100 = 28.999999999999996.
        assert_eq!(parse_cents("0.29"), Ok(29));
        assert_eq!(parse_cents("1.10"), Ok(110));
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        for bad in [
            "-5", "abc", "5.", "1.2.3", "1e3", "5 00", ",5", "5,", "$", ".",
        ] {
            assert!(parse_cents(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(parse_cents(""), Err(MoneyError::Empty));
        assert_eq!(
            parse_cents("1.005"),
            Err(MoneyError::TooPrecise("1.005".into()))
        );
        assert!(matches!(
            parse_cents("999999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_cents_as_money() {
        assert_eq!(Money(50_000, "USD").to_string(), "500.00 USD");
        assert_eq!(Money(120_050, "USD").to_string(), "1,200.50 USD");
        assert_eq!(Money(5, "EUR").to_string(), "0.05 EUR");
        assert_eq!(Money(100_000_000, "USD").to_string(), "1,000,000.00 USD");
    }
}
