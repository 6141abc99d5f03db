//! Providers' own rate-limit headers on successful answers: how much of the allowance is left, and — when it is
//! used up — how long until it resets. The router uses the first as headroom and the second as a cooldown, so the
//! next request goes elsewhere instead of provoking a 429.
//!
//! Recognised: OpenAI/Groq `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset like `2m59.56s`, `6ms`),
//! Cerebras `x-ratelimit-{limit,remaining,reset}-{requests-day,tokens-minute}` (reset in seconds), OpenRouter
//! `x-ratelimit-{limit,remaining,reset}` (reset as epoch milliseconds) and the IETF `ratelimit-{limit,remaining,reset}`
//! (reset in seconds).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// What the headers say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitHint {
    /// The smallest `remaining / limit` over the advertised allowances, in 0..=1.
    pub remaining_fraction: f64,
    /// Set when an allowance is used up: the time until it resets.
    pub exhausted_for: Option<Duration>,
}

const SUFFIXES: [&str; 5] = [
    "-requests",
    "-tokens",
    "-requests-day",
    "-tokens-minute",
    "",
];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Parses the hint from a response's headers, or `None` when the provider sends none.
pub fn rate_limit_hint(headers: &HeaderMap) -> Option<RateLimitHint> {
    // Most answers carry no such header: one pass over the names, no allocation, before any lookup.
    let advertised = headers.keys().any(|name| {
        let name = name.as_str();
        name.starts_with("x-ratelimit-") || name.starts_with("ratelimit-")
    });
    if !advertised {
        return None;
    }
    let mut hint: Option<RateLimitHint> = None;
    for prefix in ["x-ratelimit-", "ratelimit-"] {
        for suffix in SUFFIXES {
            let get = |what: &str| header(headers, &format!("{prefix}{what}{suffix}"));
            let (Some(limit), Some(remaining)) = (get("limit"), get("remaining")) else {
                continue;
            };
            let (Ok(limit), Ok(remaining)) = (limit.parse::<f64>(), remaining.parse::<f64>())
            else {
                continue;
            };
            if limit <= 0.0 || remaining < 0.0 {
                continue;
            }
            let fraction = (remaining / limit).clamp(0.0, 1.0);
            let exhausted_for = if remaining < 1.0 {
                get("reset").and_then(parse_reset)
            } else {
                None
            };
            let h = hint.get_or_insert(RateLimitHint {
                remaining_fraction: 1.0,
                exhausted_for: None,
            });
            h.remaining_fraction = h.remaining_fraction.min(fraction);
            if let Some(d) = exhausted_for {
                h.exhausted_for = Some(h.exhausted_for.map_or(d, |e| e.max(d)));
            }
        }
    }
    hint
}

/// A reset value: a Go-style duration (`1m30s`, `7.66s`, `250ms`), plain seconds, or epoch seconds/milliseconds.
fn parse_reset(text: &str) -> Option<Duration> {
    if let Ok(n) = text.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        return Some(if n > 1e12 {
            Duration::from_millis(n as u64).saturating_sub(now)
        } else if n > 1e9 {
            Duration::from_secs(n as u64).saturating_sub(now)
        } else {
            Duration::from_secs_f64(n)
        });
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn groq_style_headers() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-limit-tokens", "18000"),
            ("x-ratelimit-remaining-tokens", "1800"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ]);
        let hint = rate_limit_hint(&h).unwrap();
        assert!((hint.remaining_fraction - 0.1).abs() < 1e-9);
        assert_eq!(hint.exhausted_for, None);
    }

    #[test]
    fn exhausted_allowance_gives_its_reset() {
        let h = headers(&[
            ("x-ratelimit-limit-requests-day", "1000"),
            ("x-ratelimit-remaining-requests-day", "0"),
            ("x-ratelimit-reset-requests-day", "3600.5"),
        ]);
        let hint = rate_limit_hint(&h).unwrap();
        assert_eq!(hint.remaining_fraction, 0.0);
        assert_eq!(hint.exhausted_for, Some(Duration::from_secs_f64(3600.5)));
        let h = headers(&[
            ("x-ratelimit-limit-requests", "30"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1m2s"),
        ]);
        assert_eq!(
            rate_limit_hint(&h).unwrap().exhausted_for,
            Some(Duration::from_secs(62))
        );
    }

    #[test]
    fn openrouter_epoch_millisecond_reset() {
        let in_ten =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(10);
        let h = headers(&[
            ("x-ratelimit-limit", "20"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &in_ten.as_millis().to_string()),
        ]);
        let d = rate_limit_hint(&h).unwrap().exhausted_for.unwrap();
        assert!(
            d > Duration::from_secs(8) && d <= Duration::from_secs(10),
            "{d:?}"
        );
    }

    #[test]
    fn absent_or_garbage_headers_give_nothing() {
        assert_eq!(rate_limit_hint(&HeaderMap::new()), None);
        let h = headers(&[
            ("x-ratelimit-limit-requests", "many"),
            ("x-ratelimit-remaining-requests", "5"),
        ]);
        assert_eq!(rate_limit_hint(&h), None);
        assert_eq!(parse_reset("5 fortnights"), None);
        assert_eq!(parse_reset("250ms"), Some(Duration::from_millis(250)));
    }
}
