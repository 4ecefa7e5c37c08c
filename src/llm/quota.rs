//! What a provider's rate-limit headers say about its quota: how many
//! requests are left in its window, and how long until a budget that is
//! used up refills. Read from every answer, good or bad, by `http.rs`;
//! acted on by the model-call limiter (`agent/limiter`).
//!
//! - OpenAI (and compatible servers): `x-ratelimit-remaining-requests`,
//!   `x-ratelimit-remaining-tokens`, `x-ratelimit-reset-requests`,
//!   `x-ratelimit-reset-tokens` (durations such as `1s`, `6m0s`, `20ms`).
//! - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,
//!   output-tokens}-{remaining,reset}` (resets as RFC 3339 times).
//!
//! Headers that are missing or unreadable say nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// The quota headers of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// The fewest requests the provider says are left in its current
    /// window, where it says.
    pub requests_remaining: Option<u64>,
    /// When a budget (requests or tokens) is at zero: how long until it
    /// refills (the longest such wait).
    pub exhausted_for: Option<Duration>,
}

/// The budgets a provider reports: (remaining header, reset header, how
/// the reset is written, whether it counts requests).
const BUDGETS: [(&str, &str, Reset, bool); 6] = [
    (
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        Reset::Duration,
        true,
    ),
    (
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        Reset::Duration,
        false,
    ),
    (
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        Reset::Rfc3339,
        true,
    ),
    (
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        Reset::Rfc3339,
        false,
    ),
    (
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
        Reset::Rfc3339,
        false,
    ),
    (
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
        Reset::Rfc3339,
        false,
    ),
];

/// How a reset header is written.
#[derive(Debug, Clone, Copy)]
enum Reset {
    /// A Go-style duration: `1s`, `6m0s`, `1h2m3.5s`, `20ms`.
    Duration,
    /// An RFC 3339 time: `2025-01-01T00:00:30Z`.
    Rfc3339,
}

/// A used-up budget whose reset cannot be read waits this long.
const UNKNOWN_RESET: Duration = Duration::from_secs(1);

impl Quota {
    /// Reads the quota headers of an answer.
    pub fn from_headers(headers: &HeaderMap) -> Quota {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let mut quota = Quota::default();
        for (remaining, reset, format, requests) in BUDGETS {
            let Some(left) = text(remaining).and_then(|v| v.trim().parse::<u64>().ok()) else {
                continue;
            };
            if requests {
                quota.requests_remaining = Some(
                    quota
                        .requests_remaining
                        .map_or(left, |known| known.min(left)),
                );
            }
            if left == 0 {
                let wait = text(reset)
                    .and_then(|value| match format {
                        Reset::Duration => parse_duration(value),
                        Reset::Rfc3339 => until_rfc3339(value, SystemTime::now()),
                    })
                    .unwrap_or(UNKNOWN_RESET);
                quota.exhausted_for = Some(quota.exhausted_for.map_or(wait, |w| w.max(wait)));
            }
        }
        quota
    }
}

/// Parses a Go-style duration (`6m0s`, `1.5s`, `20ms`, `1h2m`).
fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        seconds += number * scale;
    }
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// How long from `now` until the RFC 3339 time `text` (zero if past).
fn until_rfc3339(text: &str, now: SystemTime) -> Option<Duration> {
    let at = parse_rfc3339(text.trim())?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some(Duration::from_secs_f64((at - now).max(0.0)))
}

/// Seconds since the Unix epoch of an RFC 3339 time
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
fn parse_rfc3339(text: &str) -> Option<f64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        fraction = format!("0.{}", &after_dot[..digits]).parse().ok()?;
        rest = &after_dot[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && zone.as_bytes()[3] == b':' => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = zone.get(1..3)?.parse().ok()?;
            let minutes: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    // Seconds since 1970 fit an f64 exactly.
    Some(seconds as f64 + fraction)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn no_headers_say_nothing() {
        assert_eq!(Quota::from_headers(&HeaderMap::new()), Quota::default());
    }

    #[test]
    fn openai_remaining_and_resets() {
        let quota = Quota::from_headers(&headers(&[
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]));
        assert_eq!(quota.requests_remaining, Some(59));
        assert_eq!(quota.exhausted_for, None);

        let quota = Quota::from_headers(&headers(&[
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1m30.5s"),
        ]));
        assert_eq!(quota.requests_remaining, Some(12));
        assert_eq!(quota.exhausted_for, Some(Duration::from_secs_f64(90.5)));
    }

    #[test]
    fn anthropic_resets_are_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01T00:00:00Z
        assert_eq!(
            until_rfc3339("2025-01-01T00:00:30Z", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            until_rfc3339("2025-01-01T01:00:30.250+01:00", now),
            Some(Duration::from_millis(30_250))
        );
        assert_eq!(
            until_rfc3339("2024-12-31T23:59:00Z", now),
            Some(Duration::ZERO)
        );
        assert_eq!(until_rfc3339("tomorrow", now), None);

        let quota = Quota::from_headers(&headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "not a time"),
            ("anthropic-ratelimit-tokens-remaining", "5000"),
        ]));
        assert_eq!(quota.requests_remaining, Some(0));
        assert_eq!(quota.exhausted_for, Some(UNKNOWN_RESET));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration(""), None);
    }
}
