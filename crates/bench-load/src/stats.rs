//! Sample collection and the exact-percentile JSON report.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

/// One measured request, reduced to what the report needs.
pub struct Record {
    pub ok: bool,
    pub headers_us: u32,
    pub ttfb_us: u32,
    pub total_us: u32,
    pub incomplete_stream: bool,
}

/// Per-task samples; merged once at the end so the hot path never shares state.
#[derive(Default)]
pub struct WorkerStats {
    /// Latencies of 2xx responses only, in microseconds.
    pub total_us: Vec<u32>,
    pub ttfb_us: Vec<u32>,
    pub headers_us: Vec<u32>,
    /// Measured requests (2xx and errors), i.e. started inside the window.
    pub requests: u64,
    /// Non-2xx responses plus transport failures and timeouts.
    pub errors: u64,
    /// Every completed exchange including warm-up (for CPU-per-request maths).
    pub all_requests: u64,
    pub reconnects: u64,
    /// 2xx streaming responses whose body did not end with `[DONE]`.
    pub incomplete_streams: u64,
    /// When the last measured request finished.
    pub last_done: Option<Instant>,
}

impl WorkerStats {
    pub fn record(&mut self, r: &Record, done: Instant) {
        self.requests += 1;
        self.last_done = Some(self.last_done.map_or(done, |t| t.max(done)));
        if r.ok {
            self.total_us.push(r.total_us);
            self.ttfb_us.push(r.ttfb_us);
            self.headers_us.push(r.headers_us);
        } else {
            self.errors += 1;
        }
        if r.incomplete_stream {
            self.incomplete_streams += 1;
        }
    }

    pub fn merge(&mut self, other: WorkerStats) {
        self.total_us.extend_from_slice(&other.total_us);
        self.ttfb_us.extend_from_slice(&other.ttfb_us);
        self.headers_us.extend_from_slice(&other.headers_us);
        self.requests += other.requests;
        self.errors += other.errors;
        self.all_requests += other.all_requests;
        self.reconnects += other.reconnects;
        self.incomplete_streams += other.incomplete_streams;
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Nearest-rank percentile of an ascending-sorted slice, `p` in (0, 100].
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

pub struct Report {
    label: String,
    concurrency: usize,
    stream: bool,
    requests: u64,
    errors: u64,
    ok: usize,
    all_requests: u64,
    reconnects: u64,
    incomplete_streams: u64,
    duration: Duration,
    total: Vec<u32>,
    ttfb: Vec<u32>,
    headers: Vec<u32>,
}

impl Report {
    pub fn new(
        label: String,
        concurrency: usize,
        stream: bool,
        mut stats: WorkerStats,
        duration: Duration,
    ) -> Report {
        stats.total_us.sort_unstable();
        stats.ttfb_us.sort_unstable();
        stats.headers_us.sort_unstable();
        Report {
            label,
            concurrency,
            stream,
            requests: stats.requests,
            errors: stats.errors,
            ok: stats.total_us.len(),
            all_requests: stats.all_requests,
            reconnects: stats.reconnects,
            incomplete_streams: stats.incomplete_streams,
            duration,
            total: stats.total_us,
            ttfb: stats.ttfb_us,
            headers: stats.headers_us,
        }
    }

    /// Successful (2xx) responses per second of measurement window.
    fn rps(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    fn mean_ms(&self) -> Option<f64> {
        if self.total.is_empty() {
            return None;
        }
        let sum: u64 = self.total.iter().map(|&v| u64::from(v)).sum();
        Some(sum as f64 / self.total.len() as f64 / 1000.0)
    }

    /// The single JSON output line; field order is fixed for readability.
    pub fn to_json_line(&self) -> String {
        let label = serde_json::to_string(&self.label).unwrap_or_else(|_| "\"\"".to_owned());
        let ms = |v: Option<u32>| v.map_or("null".to_owned(), |us| fmt3(f64::from(us) / 1000.0));
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "{{\"label\":{label},\"concurrency\":{},\"stream\":{},\"requests\":{},\"errors\":{},\
             \"rps\":{},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"max_ms\":{},\
             \"ttfb_p50_ms\":{},\"ttfb_p99_ms\":{},\"duration_s\":{},\
             \"mean_ms\":{},\"headers_p50_ms\":{},\"headers_p99_ms\":{},\
             \"requests_incl_warmup\":{},\"reconnects\":{},\"incomplete_streams\":{}}}",
            self.concurrency,
            self.stream,
            self.requests,
            self.errors,
            fmt3(self.rps()),
            ms(percentile(&self.total, 50.0)),
            ms(percentile(&self.total, 90.0)),
            ms(percentile(&self.total, 99.0)),
            ms(self.total.last().copied()),
            ms(percentile(&self.ttfb, 50.0)),
            ms(percentile(&self.ttfb, 99.0)),
            fmt3(self.duration.as_secs_f64()),
            self.mean_ms().map_or("null".to_owned(), fmt3),
            ms(percentile(&self.headers, 50.0)),
            ms(percentile(&self.headers, 99.0)),
            self.all_requests,
            self.reconnects,
            self.incomplete_streams,
        );
        out
    }
}

fn fmt3(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
    }

    #[test]
    fn report_is_one_json_object() {
        let mut s = WorkerStats::default();
        let now = Instant::now();
        for us in [1000, 2000, 3000] {
            let r = Record {
                ok: true,
                headers_us: us / 2,
                ttfb_us: us / 2,
                total_us: us,
                incomplete_stream: false,
            };
            s.record(&r, now);
        }
        let bad = Record {
            ok: false,
            headers_us: 1,
            ttfb_us: 1,
            total_us: 1,
            incomplete_stream: false,
        };
        s.record(&bad, now);
        let rep = Report::new("a \"b\"".into(), 4, false, s, Duration::from_secs(2));
        let v: serde_json::Value = serde_json::from_str(&rep.to_json_line()).unwrap();
        assert_eq!(v["label"], "a \"b\"");
        assert_eq!(v["requests"], 4);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["rps"], 1.5);
        assert_eq!(v["p50_ms"], 2.0);
        assert_eq!(v["max_ms"], 3.0);
    }
}
