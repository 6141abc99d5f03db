//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4). Counters and histograms are kept in memory by
//! the request path — a short uncontended lock per finished request or failed attempt, no allocation once a label
//! set has been seen — and gauges are read at scrape time from the books that already hold them (queue, cooldowns,
//! in-flight requests, history writer). Label values come from closed sets only (surfaces, statuses, error classes,
//! platforms): no request ids, key ids or client-chosen model names, so cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the request-duration and time-to-first-token histograms.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += s;
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// (surface, status, reason) → requests.
    requests: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    /// (platform, class) → failed upstream attempts.
    attempt_failures: BTreeMap<(&'static str, &'static str), u64>,
    /// (surface, direction) → tokens.
    tokens: BTreeMap<(&'static str, &'static str), u64>,
    /// surface → duration of finished requests.
    duration: BTreeMap<&'static str, Histogram>,
    /// surface → time to the first byte of the answer (the first token for streams).
    ttfb: BTreeMap<&'static str, Histogram>,
}

/// What a finished request adds to the metrics.
pub struct RequestSample {
    pub surface: &'static str,
    pub status: &'static str,
    /// The error class or refusal code; `""` for a success.
    pub reason: &'static str,
    pub duration: Duration,
    pub ttfb: Option<Duration>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The gauges read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub in_flight: usize,
    pub queue_depth: usize,
    pub cooling_candidates: usize,
    pub invalid_keys: usize,
    pub provider_keys: usize,
    pub history_written: u64,
    pub history_dropped: u64,
    /// Rows lost after the store refused them too long, and rows held in memory waiting for it.
    pub history_lost: u64,
    pub history_held: usize,
    pub proxies_healthy: usize,
    pub proxies: usize,
    /// In a fleet: (Redis answers, instances alive, notices not delivered).
    pub fleet: Option<(bool, u32, u64)>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn request(&self, s: RequestSample) {
        let mut c = self.counters();
        *c.requests
            .entry((s.surface, s.status, s.reason))
            .or_default() += 1;
        if s.input_tokens > 0 {
            *c.tokens.entry((s.surface, "input")).or_default() += s.input_tokens;
        }
        if s.output_tokens > 0 {
            *c.tokens.entry((s.surface, "output")).or_default() += s.output_tokens;
        }
        c.duration.entry(s.surface).or_default().observe(s.duration);
        if let Some(t) = s.ttfb {
            c.ttfb.entry(s.surface).or_default().observe(t);
        }
    }

    pub fn attempt_failed(&self, platform: &'static str, class: &'static str) {
        *self
            .counters()
            .attempt_failures
            .entry((platform, class))
            .or_default() += 1;
    }

    /// The text exposition of everything, with `gauges` read by the caller.
    pub fn render(&self, gauges: Gauges) -> String {
        let c = self.counters();
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP freellmapi_build_info The running build.\n# TYPE freellmapi_build_info gauge\n\
             freellmapi_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        header(
            &mut out,
            "freellmapi_requests_total",
            "counter",
            "Finished requests by surface, status (success, error, canceled, refused) and reason.",
        );
        for ((surface, status, reason), n) in &c.requests {
            let _ = writeln!(
                out,
                "freellmapi_requests_total{{surface=\"{surface}\",status=\"{status}\",reason=\"{reason}\"}} {n}"
            );
        }
        header(
            &mut out,
            "freellmapi_upstream_attempt_failures_total",
            "counter",
            "Upstream attempts that failed, by platform and error class.",
        );
        for ((platform, class), n) in &c.attempt_failures {
            let _ = writeln!(
                out,
                "freellmapi_upstream_attempt_failures_total{{platform=\"{platform}\",class=\"{class}\"}} {n}"
            );
        }
        header(
            &mut out,
            "freellmapi_tokens_total",
            "counter",
            "Tokens of finished requests (reported by the upstream, else estimated), by surface and direction.",
        );
        for ((surface, direction), n) in &c.tokens {
            let _ = writeln!(
                out,
                "freellmapi_tokens_total{{surface=\"{surface}\",direction=\"{direction}\"}} {n}"
            );
        }
        histogram(
            &mut out,
            "freellmapi_request_duration_seconds",
            "Time from a request's arrival to its end, by surface.",
            &c.duration,
        );
        histogram(
            &mut out,
            "freellmapi_time_to_first_byte_seconds",
            "Time from a request's arrival to the first byte of its answer (first token of a stream), by surface.",
            &c.ttfb,
        );
        drop(c);
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            header(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            &mut out,
            "freellmapi_requests_in_flight",
            "Requests being served now.",
            gauges.in_flight as f64,
        );
        gauge(
            &mut out,
            "freellmapi_queue_depth",
            "Requests waiting in the queue for a candidate.",
            gauges.queue_depth as f64,
        );
        gauge(
            &mut out,
            "freellmapi_cooling_candidates",
            "Key and model pairs cooling down after a failure.",
            gauges.cooling_candidates as f64,
        );
        gauge(
            &mut out,
            "freellmapi_invalid_provider_keys",
            "Provider keys out of rotation because their provider refused their credentials.",
            gauges.invalid_keys as f64,
        );
        gauge(
            &mut out,
            "freellmapi_provider_keys",
            "Enabled provider keys in the routing snapshot.",
            gauges.provider_keys as f64,
        );
        header(
            &mut out,
            "freellmapi_history_rows_total",
            "counter",
            "Request-history rows written, dropped because the writer's channel was full, and lost because the store refused them for too long.",
        );
        let _ = writeln!(
            out,
            "freellmapi_history_rows_total{{outcome=\"written\"}} {}\nfreellmapi_history_rows_total{{outcome=\"dropped\"}} {}\nfreellmapi_history_rows_total{{outcome=\"lost\"}} {}",
            gauges.history_written, gauges.history_dropped, gauges.history_lost
        );
        gauge(
            &mut out,
            "freellmapi_history_rows_held",
            "Request-history rows the store refused, held in memory until it takes them again.",
            gauges.history_held as f64,
        );
        gauge(
            &mut out,
            "freellmapi_proxies",
            "Outbound proxies in the pool.",
            gauges.proxies as f64,
        );
        gauge(
            &mut out,
            "freellmapi_proxies_healthy",
            "Outbound proxies whose last health check passed.",
            gauges.proxies_healthy as f64,
        );
        if let Some((up, instances, dropped)) = gauges.fleet {
            gauge(
                &mut out,
                "freellmapi_fleet_degraded",
                "1 while the fleet's shared state (Redis) is unreachable and this instance counts limits alone.",
                if up { 0.0 } else { 1.0 },
            );
            gauge(
                &mut out,
                "freellmapi_fleet_instances",
                "Gateway instances alive in the fleet at the last heartbeat.",
                f64::from(instances),
            );
            header(
                &mut out,
                "freellmapi_fleet_notices_dropped_total",
                "counter",
                "Notices to the other instances not sent (Redis unreachable or the outbox full).",
            );
            let _ = writeln!(out, "freellmapi_fleet_notices_dropped_total {dropped}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, by: &BTreeMap<&'static str, Histogram>) {
    header(out, name, "histogram", help);
    for (surface, h) in by {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{surface=\"{surface}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{surface=\"{surface}\",le=\"+Inf\"}} {}\n{name}_sum{{surface=\"{surface}\"}} {}\n\
             {name}_count{{surface=\"{surface}\"}} {}",
            h.count, h.sum, h.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        for (status, reason, ms) in [
            ("success", "", 40),
            ("success", "", 700),
            ("error", "timeout", 3_000),
        ] {
            m.request(RequestSample {
                surface: "chat",
                status,
                reason,
                duration: Duration::from_millis(ms),
                ttfb: Some(Duration::from_millis(ms / 2)),
                input_tokens: 10,
                output_tokens: 5,
            });
        }
        m.attempt_failed("groq", "rate_limited");
        m.attempt_failed("groq", "rate_limited");
        let text = m.render(Gauges {
            queue_depth: 3,
            ..Gauges::default()
        });
        assert!(text.contains(
            "freellmapi_requests_total{surface=\"chat\",status=\"success\",reason=\"\"} 2"
        ));
        assert!(text.contains(
            "freellmapi_upstream_attempt_failures_total{platform=\"groq\",class=\"rate_limited\"} 2"
        ));
        assert!(text.contains("freellmapi_tokens_total{surface=\"chat\",direction=\"input\"} 30"));
        assert!(text.contains(
            "freellmapi_request_duration_seconds_bucket{surface=\"chat\",le=\"0.05\"} 1"
        ));
        assert!(text
            .contains("freellmapi_request_duration_seconds_bucket{surface=\"chat\",le=\"1\"} 2"));
        assert!(text.contains(
            "freellmapi_request_duration_seconds_bucket{surface=\"chat\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("freellmapi_request_duration_seconds_count{surface=\"chat\"} 3"));
        assert!(text.contains("freellmapi_queue_depth 3\n"));
        // Every sample line belongs to a declared family.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                declared.iter().any(|d| name == *d
                    || name
                        .strip_prefix(d)
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))),
                "{line}"
            );
        }
    }
}
