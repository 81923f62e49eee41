//! Timestamps and durations with CEL's ranges: timestamps from
//! `0001-01-01T00:00:00Z` to `9999-12-31T23:59:59.999999999Z`, durations as
//! 64-bit nanoseconds (about ±292 years), as cel-go.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeZone, Timelike, Utc};

use crate::eval::EvalError;

const MIN_SECS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
const MAX_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
const NANOS: i128 = 1_000_000_000;

/// A point in time with nanosecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// A signed span of time in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Duration {
    nanos: i64,
}

fn range_error() -> EvalError {
    EvalError::new("range error: timestamp or duration out of range")
}

impl Timestamp {
    /// From seconds and nanoseconds since the Unix epoch, checking the range.
    pub fn new(secs: i64, nanos: u32) -> Result<Timestamp, EvalError> {
        if !(MIN_SECS..=MAX_SECS).contains(&secs) || nanos >= 1_000_000_000 {
            return Err(range_error());
        }
        Ok(Timestamp { secs, nanos })
    }

    /// From total nanoseconds since the epoch.
    fn from_total(total: i128) -> Result<Timestamp, EvalError> {
        let secs = i64::try_from(total.div_euclid(NANOS)).map_err(|_| range_error())?;
        Timestamp::new(secs, total.rem_euclid(NANOS) as u32)
    }

    fn total(self) -> i128 {
        self.secs as i128 * NANOS + self.nanos as i128
    }

    /// Parses RFC 3339 (`2009-02-13T23:31:30Z`, with optional fraction and offset).
    pub fn parse(text: &str) -> Result<Timestamp, EvalError> {
        let dt = DateTime::parse_from_rfc3339(text)
            .map_err(|e| EvalError::new(format!("invalid timestamp {text:?}: {e}")))?;
        Timestamp::new(dt.timestamp(), dt.timestamp_subsec_nanos())
    }

    /// The current time.
    pub fn now() -> Timestamp {
        let now = Utc::now();
        Timestamp {
            secs: now.timestamp(),
            nanos: now.timestamp_subsec_nanos(),
        }
    }

    /// Seconds since the epoch.
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// RFC 3339 in UTC, with as many fraction digits as needed (cel-go style).
    pub fn to_rfc3339(self) -> String {
        let dt = self.utc();
        let base = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
        if self.nanos == 0 {
            format!("{base}Z")
        } else {
            let frac = format!("{:09}", self.nanos);
            format!("{base}.{}Z", frac.trim_end_matches('0'))
        }
    }

    fn utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.secs, self.nanos).unwrap_or_default()
    }

    /// `self + d`.
    pub fn checked_add(self, d: Duration) -> Result<Timestamp, EvalError> {
        Timestamp::from_total(self.total() + d.nanos as i128)
    }

    /// `self - d`.
    pub fn checked_sub(self, d: Duration) -> Result<Timestamp, EvalError> {
        Timestamp::from_total(self.total() - d.nanos as i128)
    }

    /// `self - other`.
    pub fn since(self, other: Timestamp) -> Result<Duration, EvalError> {
        Duration::from_total(self.total() - other.total())
    }

    /// A calendar field in the time zone `tz` (an IANA name such as
    /// `America/New_York`, or an offset such as `+05:30`; UTC when `None`).
    pub fn field(self, field: DateField, tz: Option<&str>) -> Result<i64, EvalError> {
        let utc = self.utc();
        let local: NaiveDateTime = match tz {
            None => utc.naive_utc(),
            Some(tz) => match parse_offset(tz) {
                Some(offset) => utc.with_timezone(&offset).naive_local(),
                None => {
                    let zone: chrono_tz::Tz = tz
                        .parse()
                        .map_err(|_| EvalError::new(format!("unknown time zone {tz:?}")))?;
                    zone.from_utc_datetime(&utc.naive_utc()).naive_local()
                }
            },
        };
        Ok(match field {
            DateField::FullYear => local.year() as i64,
            DateField::Month => local.month0() as i64,
            DateField::Date => local.day() as i64,
            DateField::DayOfMonth => local.day0() as i64,
            DateField::DayOfWeek => local.weekday().num_days_from_sunday() as i64,
            DateField::DayOfYear => local.ordinal0() as i64,
            DateField::Hours => local.hour() as i64,
            DateField::Minutes => local.minute() as i64,
            DateField::Seconds => local.second() as i64,
            DateField::Milliseconds => (self.nanos / 1_000_000) as i64,
        })
    }
}

/// `+05:30`, `-02:00`, `02:00`; `None` for zone names.
fn parse_offset(tz: &str) -> Option<FixedOffset> {
    let (sign, rest) = match tz.as_bytes().first()? {
        b'+' => (1, tz.get(1..)?),
        b'-' => (-1, tz.get(1..)?),
        b'0'..=b'9' => (1, tz),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

/// Calendar fields of a timestamp.
#[derive(Clone, Copy, Debug)]
pub enum DateField {
    /// `getFullYear`
    FullYear,
    /// `getMonth` (0-based)
    Month,
    /// `getDate` (1-based)
    Date,
    /// `getDayOfMonth` (0-based)
    DayOfMonth,
    /// `getDayOfWeek` (0 = Sunday)
    DayOfWeek,
    /// `getDayOfYear` (0-based)
    DayOfYear,
    /// `getHours`
    Hours,
    /// `getMinutes`
    Minutes,
    /// `getSeconds`
    Seconds,
    /// `getMilliseconds`
    Milliseconds,
}

impl Duration {
    /// From nanoseconds.
    pub fn from_nanos(nanos: i64) -> Duration {
        Duration { nanos }
    }

    fn from_total(total: i128) -> Result<Duration, EvalError> {
        i64::try_from(total)
            .map(Duration::from_nanos)
            .map_err(|_| range_error())
    }

    /// From seconds, checking the range.
    pub fn from_secs(secs: i64) -> Result<Duration, EvalError> {
        Duration::from_total(secs as i128 * NANOS)
    }

    /// Total nanoseconds.
    pub fn nanos(self) -> i64 {
        self.nanos
    }

    /// Parses Go duration syntax: `1h30m`, `-1.5s`, `100ms`, `2us`, `3ns`.
    pub fn parse(text: &str) -> Result<Duration, EvalError> {
        let bad = || EvalError::new(format!("invalid duration {text:?}"));
        let (neg, mut rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if rest == "0" {
            return Ok(Duration { nanos: 0 });
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: i128 = 0;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (num, tail) = rest.split_at(num_len);
            if num.is_empty() || num == "." {
                return Err(bad());
            }
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let scale: i128 = match unit {
                "h" => 3_600 * NANOS,
                "m" => 60 * NANOS,
                "s" => NANOS,
                "ms" => 1_000_000,
                "us" | "µs" | "μs" => 1_000,
                "ns" => 1,
                _ => return Err(bad()),
            };
            let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
            let int: i128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| range_error())?
            };
            let mut part = int.checked_mul(scale).ok_or_else(range_error)?;
            let mut div = 1i128;
            for c in frac_part.chars().take(18) {
                div *= 10;
                part += (c.to_digit(10).unwrap_or(0) as i128) * scale / div;
            }
            total = total.checked_add(part).ok_or_else(range_error)?;
            if total > i64::MAX as i128 + 1 {
                return Err(range_error());
            }
            rest = tail;
        }
        Duration::from_total(if neg { -total } else { total })
    }

    /// `self + other`.
    pub fn checked_add(self, other: Duration) -> Result<Duration, EvalError> {
        self.nanos
            .checked_add(other.nanos)
            .map(Duration::from_nanos)
            .ok_or_else(range_error)
    }

    /// `self - other`.
    pub fn checked_sub(self, other: Duration) -> Result<Duration, EvalError> {
        self.nanos
            .checked_sub(other.nanos)
            .map(Duration::from_nanos)
            .ok_or_else(range_error)
    }

    /// `-self`.
    pub fn checked_neg(self) -> Result<Duration, EvalError> {
        self.nanos
            .checked_neg()
            .map(Duration::from_nanos)
            .ok_or_else(range_error)
    }
}

impl fmt::Display for Duration {
    /// Seconds with a fraction when needed: `1000000s`, `1.5s`, `-0.000000001s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos as i128;
        let sign = if n < 0 { "-" } else { "" };
        let n = n.abs();
        let secs = n / NANOS;
        let frac = n % NANOS;
        if frac == 0 {
            write!(f, "{sign}{secs}s")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{sign}{secs}.{}s", digits.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let d = |s: &str| {
            Duration::parse(s)
                .map(|d| d.nanos())
                .map_err(|e| e.to_string())
        };
        assert_eq!(d("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(d("-1.5s"), Ok(-1_500_000_000));
        assert_eq!(d("100ms"), Ok(100_000_000));
        assert_eq!(d("0"), Ok(0));
        assert!(d("1x").is_err());
        assert!(d("").is_err());
        assert!(d("320000000000s").is_err());
    }

    #[test]
    fn timestamps_print_rfc3339() {
        let t = Timestamp::parse("2009-02-13T23:31:30.5+01:00").map(|t| t.to_rfc3339());
        assert_eq!(t.ok().as_deref(), Some("2009-02-13T22:31:30.5Z"));
        assert!(Timestamp::parse("10000-01-01T00:00:00Z").is_err());
    }
}
