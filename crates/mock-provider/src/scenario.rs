//! Parsing of the scenario path segment (`429ra5`, `slow300+ok`, `drip5+chunks3`, ...).

use std::time::Duration;

/// What a streaming response does once it has sent a given number of delta chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitKind {
    /// Keep the connection open and send nothing more.
    Stall,
    /// Abort the connection mid-body (no `[DONE]`, no chunked terminator).
    Cut,
}

/// A parsed scenario: the union of all its directives (later directives win on conflict).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scenario {
    /// Error status to answer with (400..=599).
    pub status: Option<u16>,
    /// `Retry-After` header value in seconds.
    pub retry_after: Option<u64>,
    /// Delay before the response headers.
    pub slow: Option<Duration>,
    /// Never answer.
    pub hang: bool,
    /// Streaming: stop (stall or cut) after this many delta chunks.
    pub limit: Option<(usize, LimitKind)>,
    /// Streaming: role chunk then `[DONE]` only.
    pub empty: bool,
    /// Streaming: delay between delta chunks.
    pub drip: Option<Duration>,
    /// Number of content chunks (overrides `MockOptions::stream_chunks`).
    pub chunks: Option<usize>,
    /// Answer with a tool call when the request carries `tools`.
    pub tool: bool,
    /// One scripted coding-agent turn (see `agent.rs`).
    pub agent: bool,
    /// Emit reasoning deltas before the content.
    pub reason: bool,
    /// Non-stream: the reasoning as a `<think>…</think>` block opening the content (Cloudflare, DeepSeek-style).
    pub think: bool,
    /// Non-stream: empty content, the whole answer in `reasoning_content` (Z.ai reasoning-first models).
    pub reason_only: bool,
    /// Streaming: a single in-band error event.
    pub inband_err: bool,
    /// Required bearer token.
    pub auth: Option<String>,
    /// The error `status` applies to the first n hits of this scenario only; later hits succeed.
    pub first: Option<usize>,
    /// The faults (`status`, `hang`, `stall`, `stallafter`, `cut`) apply to every n-th hit only; the others succeed.
    pub every: Option<usize>,
    /// At most this many accepted requests within the rate window; more answer 429 with `Retry-After`.
    pub rpm: Option<u32>,
    /// Length of the `rpm` window (default 60 s).
    pub rpm_window: Option<Duration>,
    /// The `rpm` window sends no `x-ratelimit-*` headers (only `Retry-After` on a refusal).
    pub no_rate_headers: bool,
}

impl Scenario {
    /// Parses a scenario segment; the error names the offending directive.
    pub(crate) fn parse(segment: &str) -> Result<Scenario, String> {
        let mut sc = Scenario::default();
        for directive in segment.split('+') {
            if !sc.apply(directive) {
                return Err(format!(
                    "mock: unknown scenario directive '{directive}' in scenario '{segment}'"
                ));
            }
        }
        Ok(sc)
    }

    /// Applies one directive; returns false if it is not understood.
    fn apply(&mut self, d: &str) -> bool {
        match d {
            "ok" => return true,
            "hang" => {
                self.hang = true;
                return true;
            }
            "stall" => {
                self.limit = Some((0, LimitKind::Stall));
                return true;
            }
            "empty" => {
                self.empty = true;
                return true;
            }
            "tool" => {
                self.tool = true;
                return true;
            }
            "agent" => {
                self.agent = true;
                return true;
            }
            "reason" => {
                self.reason = true;
                return true;
            }
            "think" => {
                self.think = true;
                return true;
            }
            "reasononly" => {
                self.reason_only = true;
                return true;
            }
            "inbanderr" => {
                self.inband_err = true;
                return true;
            }
            "noratehdr" => {
                self.no_rate_headers = true;
                return true;
            }
            _ => {}
        }
        if let Some(token) = d.strip_prefix("auth=") {
            if token.is_empty() {
                return false;
            }
            self.auth = Some(token.to_owned());
            return true;
        }
        if let Some(n) = d.strip_prefix("id") {
            // A name only: scenarios that behave alike keep separate counters and rate windows.
            return number(n).is_some();
        }
        if let Some(n) = d.strip_prefix("every") {
            return match number(n) {
                Some(n) if n >= 1 => {
                    self.every = Some(n as usize);
                    true
                }
                _ => false,
            };
        }
        if let Some(n) = d.strip_prefix("rpmw") {
            return match number(n) {
                Some(secs) if secs >= 1 => {
                    self.rpm_window = Some(Duration::from_secs(secs));
                    true
                }
                _ => false,
            };
        }
        if let Some(n) = d.strip_prefix("rpm") {
            return match number(n).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= 1 => {
                    self.rpm = Some(n);
                    true
                }
                _ => false,
            };
        }
        if let Some(n) = d.strip_prefix("first") {
            return match number(n) {
                Some(n) => {
                    self.first = Some(n as usize);
                    true
                }
                None => false,
            };
        }
        if let Some(n) = d.strip_prefix("stallafter") {
            return match number(n) {
                Some(n) => {
                    self.limit = Some((n as usize, LimitKind::Stall));
                    true
                }
                None => false,
            };
        }
        if let Some(n) = d.strip_prefix("cut") {
            return match number(n) {
                Some(n) => {
                    self.limit = Some((n as usize, LimitKind::Cut));
                    true
                }
                None => false,
            };
        }
        if let Some(n) = d.strip_prefix("slow") {
            return match number(n) {
                Some(ms) => {
                    self.slow = Some(Duration::from_millis(ms));
                    true
                }
                None => false,
            };
        }
        if let Some(n) = d.strip_prefix("drip") {
            return match number(n) {
                Some(ms) => {
                    self.drip = Some(Duration::from_millis(ms));
                    true
                }
                None => false,
            };
        }
        if let Some(n) = d.strip_prefix("chunks") {
            return match number(n) {
                Some(n) => {
                    self.chunks = Some(n as usize);
                    true
                }
                None => false,
            };
        }
        if let Some(n) = d.strip_prefix("ra") {
            return match number(n) {
                Some(secs) => {
                    self.retry_after = Some(secs);
                    true
                }
                None => false,
            };
        }
        // `<3-digit status>` optionally followed by `ra<secs>` (shorthand `429ra5`).
        if d.len() >= 3 && d.is_char_boundary(3) {
            let (code, rest) = d.split_at(3);
            let Some(code) = number(code) else {
                return false;
            };
            if rest.is_empty() {
                return self.set_status(code);
            }
            if let Some(secs) = rest.strip_prefix("ra").and_then(number) {
                if self.set_status(code) {
                    self.retry_after = Some(secs);
                    return true;
                }
            }
        }
        false
    }

    /// Whether this hit (1-based) of the scenario gets the scripted faults (`every`): `hang`, `stall`,
    /// `stallafter`, `cut` and the error status.
    pub(crate) fn faulty(&self, hit: usize) -> bool {
        self.every.is_none_or(|n| hit.is_multiple_of(n))
    }

    /// The error status for this hit, if any: `first` and `every` both narrow it.
    pub(crate) fn status_for(&self, hit: usize) -> Option<u16> {
        self.status
            .filter(|_| self.faulty(hit) && self.first.is_none_or(|n| hit <= n))
    }

    fn set_status(&mut self, code: u64) -> bool {
        match code {
            200 => true,
            400..=599 => {
                self.status = Some(code as u16);
                true
            }
            _ => false,
        }
    }
}

/// Parses a non-empty run of ASCII digits.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simple_directives() {
        assert_eq!(Scenario::parse("ok"), Ok(Scenario::default()));
        let sc = Scenario::parse("429ra5").unwrap_or_default();
        assert_eq!(sc.status, Some(429));
        assert_eq!(sc.retry_after, Some(5));
        assert_eq!(Scenario::parse("429+ra5"), Ok(sc));
        let sc = Scenario::parse("slow300+ok").unwrap_or_default();
        assert_eq!(sc.slow, Some(Duration::from_millis(300)));
        let sc =
            Scenario::parse("stallafter3+drip5+chunks7+tool+reason+auth=abc").unwrap_or_default();
        assert_eq!(sc.limit, Some((3, LimitKind::Stall)));
        assert_eq!(sc.drip, Some(Duration::from_millis(5)));
        assert_eq!(sc.chunks, Some(7));
        assert!(sc.tool && sc.reason);
        assert_eq!(sc.auth.as_deref(), Some("abc"));
        let sc = Scenario::parse("cut2").unwrap_or_default();
        assert_eq!(sc.limit, Some((2, LimitKind::Cut)));
        let sc = Scenario::parse("stall").unwrap_or_default();
        assert_eq!(sc.limit, Some((0, LimitKind::Stall)));
        assert!(Scenario::parse("hang+empty+inbanderr").is_ok());
        assert_eq!(Scenario::parse("200"), Ok(Scenario::default()));
    }

    #[test]
    fn parses_rate_limit_and_intermittent_faults() {
        let sc = Scenario::parse("rpm5+slow200+id7").unwrap_or_default();
        assert_eq!(sc.rpm, Some(5));
        assert_eq!(sc.rpm_window, None);
        assert_eq!(sc.slow, Some(Duration::from_millis(200)));
        let sc = Scenario::parse("rpm30+rpmw10").unwrap_or_default();
        assert_eq!(sc.rpm, Some(30));
        assert_eq!(sc.rpm_window, Some(Duration::from_secs(10)));
        assert!(!sc.no_rate_headers);
        assert!(Scenario::parse("rpm3+noratehdr").is_ok_and(|sc| sc.no_rate_headers));
        // `id` changes nothing but the name.
        assert_eq!(Scenario::parse("id3+ok"), Scenario::parse("ok"));

        let sc = Scenario::parse("500+every3").unwrap_or_default();
        assert_eq!(sc.status, Some(500));
        assert_eq!(sc.every, Some(3));
        let faulty: Vec<usize> = (1..=9).filter(|&hit| sc.faulty(hit)).collect();
        assert_eq!(faulty, [3, 6, 9]);
        assert_eq!(sc.status_for(2), None);
        assert_eq!(sc.status_for(6), Some(500));
        let sc = Scenario::parse("429+first2").unwrap_or_default();
        assert_eq!(sc.status_for(2), Some(429));
        assert_eq!(sc.status_for(3), None);
        let sc = Scenario::parse("429+first4+every2").unwrap_or_default();
        let failing: Vec<usize> = (1..=6)
            .filter(|&hit| sc.status_for(hit).is_some())
            .collect();
        assert_eq!(failing, [2, 4]);
        assert!(Scenario::default().faulty(1));
    }

    #[test]
    fn rejects_unknown_directives() {
        for bad in [
            "okk",
            "",
            "ok+",
            "slow",
            "slowx",
            "42",
            "4290",
            "299",
            "429ra",
            "ra",
            "auth=",
            "stallafter",
            "cut-1",
            "rpm",
            "rpm0",
            "rpmx",
            "rpm99999999999",
            "rpmw0",
            "rpmw",
            "every0",
            "every",
            "id",
            "idx",
            "é",
            "5é",
        ] {
            assert!(Scenario::parse(bad).is_err(), "{bad} should be rejected");
        }
        let err = Scenario::parse("ok+typo").err().unwrap_or_default();
        assert!(err.contains("'typo'"), "{err}");
    }
}
