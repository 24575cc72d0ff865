//! Timestamp precisions and conversions.
//!
//! Storage and PromQL work in milliseconds since the Unix epoch; line
//! protocol carries timestamps in a request-chosen precision.

use std::str::FromStr;

/// The unit of a line-protocol timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Nanoseconds (the line-protocol default).
    #[default]
    Nanoseconds,
    /// Microseconds.
    Microseconds,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

/// An unknown precision string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision {0:?} (expected one of ns, us, ms, s)")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            other => return Err(UnknownPrecision(other.to_owned())),
        })
    }
}

impl Precision {
    /// Converts a timestamp in this precision to milliseconds, rounding
    /// towards negative infinity; `None` on overflow.
    pub fn to_millis(self, ts: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(ts.div_euclid(1_000_000)),
            Precision::Microseconds => Some(ts.div_euclid(1_000)),
            Precision::Milliseconds => Some(ts),
            Precision::Seconds => ts.checked_mul(1_000),
        }
    }

    /// Converts nanoseconds since the epoch into this precision.
    pub fn from_nanos(self, ns: i64) -> i64 {
        match self {
            Precision::Nanoseconds => ns,
            Precision::Microseconds => ns.div_euclid(1_000),
            Precision::Milliseconds => ns.div_euclid(1_000_000),
            Precision::Seconds => ns.div_euclid(1_000_000_000),
        }
    }
}

/// Current wall-clock time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Current wall-clock time in milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    now_nanos() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_precisions_to_millis() {
        assert_eq!(Precision::Nanoseconds.to_millis(1_700_000_000_123_456_789), Some(1_700_000_000_123));
        assert_eq!(Precision::Microseconds.to_millis(1_500), Some(1));
        assert_eq!(Precision::Seconds.to_millis(2), Some(2_000));
        assert_eq!(Precision::Seconds.to_millis(i64::MAX), None);
        assert_eq!(Precision::Nanoseconds.to_millis(-1), Some(-1));
        assert!("h".parse::<Precision>().is_err());
    }
}
