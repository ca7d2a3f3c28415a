//! Amounts in cents: parsed once from what people type ("1,500", "1500.5"), shown as "1,500.50".

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(i64);

impl Money {
    pub const fn from_units(units: i64) -> Money {
        Money(units * 100)
    }

    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// A non-negative amount with at most two decimals; commas and spaces group digits.
    pub fn parse(text: &str) -> Option<Money> {
        let cleaned: String = text
            .trim()
            .chars()
            .filter(|c| *c != ',' && *c != ' ')
            .collect();
        let (whole, frac) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if !digits(whole) || !digits(frac) || frac.len() > 2 || whole.len() > 12 {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let frac: i64 = format!("{frac:0<2}").parse().ok()?;
        Some(Money(whole * 100 + frac))
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).filter(|c| *c >= 0).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = (abs / 100).to_string();
        let mut grouped = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        write!(f, "{sign}{grouped}.{:02}", abs % 100)
    }
}

/// JSON carries amounts as strings ("1500.00"), so no float ever touches money.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{}.{:02}",
            self.0 / 100,
            self.0.unsigned_abs() % 100
        ))
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let text = String::deserialize(d)?;
        Money::parse(&text).ok_or_else(|| serde::de::Error::custom("an amount such as \"1500.00\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_type() {
        assert_eq!(Money::parse("1500"), Some(Money(150_000)));
        assert_eq!(Money::parse("1,500.5"), Some(Money(150_050)));
        assert_eq!(Money::parse(" 0.07 "), Some(Money(7)));
        assert_eq!(Money::parse(".5"), Some(Money(50)));
        for bad in ["", ".", "-5", "1.234", "12a", "1e3"] {
            assert_eq!(Money::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn displays_grouped() {
        assert_eq!(Money(123_456_789).to_string(), "1,234,567.89");
        assert_eq!(Money(100_000).to_string(), "1,000.00");
        assert_eq!(Money(5).to_string(), "0.05");
        assert_eq!(
            serde_json::to_string(&Money(150_000)).unwrap(),
            "\"1500.00\""
        );
    }
}
