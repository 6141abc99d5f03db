//! Probing proxies: the background health checker, on-demand tests, and the candidate search behind
//! `freellmapi proxies find`. A probe fetches a target URL through the proxy; any HTTP answer means the proxy
//! relayed the request (the target's own status is not the proxy's business).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::pool::{ProxyEntry, ProxyPool};
use super::url::ProxyUrl;

/// Probes at most this many proxies at once.
const PROBE_CONCURRENCY: usize = 16;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    pub latency: Duration,
    /// Why it failed (sanitised: no credentials).
    pub error: Option<String>,
}

/// Fetches `target` through `client`, within `timeout`.
pub async fn probe(client: &reqwest::Client, target: &str, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, async {
        let response = client.get(target).send().await?;
        // Read (a bounded amount of) the body too, so a proxy that answers headers and then dies is caught.
        let mut body = response.bytes_stream();
        let mut read = 0usize;
        while let Some(chunk) = body.next().await {
            read += chunk?.len();
            if read > 64 * 1024 {
                break;
            }
        }
        Ok::<_, reqwest::Error>(())
    })
    .await;
    let latency = started.elapsed();
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(providers::classify_transport(&e, e.is_timeout()).message),
        Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
    };
    ProbeResult {
        ok: error.is_none(),
        latency,
        error,
    }
}

impl ProxyPool {
    /// Probes one proxy and records the result in its health.
    pub async fn check(&self, entry: &ProxyEntry) -> ProbeResult {
        let result = probe(
            &entry.client,
            &self.config.health_target,
            self.config.health_timeout,
        )
        .await;
        entry.health.checked();
        if result.ok {
            entry
                .health
                .success(result.latency, self.config.healthy_after);
        } else {
            let was_healthy = entry.health.is_healthy();
            entry.health.probe_failure(self.config.unhealthy_after);
            if let Some(e) = &result.error {
                entry.stats.set_last_error(e);
            }
            if was_healthy && !entry.health.is_healthy() {
                tracing::warn!(proxy = %entry.label, address = %entry.url, "proxy marked unhealthy by the health checker");
            }
        }
        result
    }

    /// One round of the health checker: every enabled proxy (and `PROXY_URL`), a bounded number at a time.
    pub async fn check_all(&self) {
        let entries = self.view().probed();
        futures_util::stream::iter(entries)
            .for_each_concurrent(PROBE_CONCURRENCY, |entry| async move {
                self.check(&entry).await;
            })
            .await;
    }

    /// Probes the given proxies (on demand), returning each one's result.
    pub async fn check_many(
        &self,
        entries: Vec<Arc<ProxyEntry>>,
    ) -> Vec<(Arc<ProxyEntry>, ProbeResult)> {
        futures_util::stream::iter(entries)
            .map(|entry| async move {
                let r = self.check(&entry).await;
                (entry, r)
            })
            .buffered(PROBE_CONCURRENCY)
            .collect()
            .await
    }
}

/// Options of a candidate search.
#[derive(Debug, Clone)]
pub struct FindOptions {
    pub target: String,
    pub timeout: Duration,
    pub concurrency: usize,
    /// A geo-IP service answering, for the caller's address, JSON with `country_code`, `countryCode` or `country`.
    pub geo_url: Option<String>,
    /// Keep only proxies exiting in these countries (ISO alpha-2, upper case); needs `geo_url`.
    pub countries: Vec<String>,
    pub connect_timeout: Duration,
    /// What TLS through the candidates trusts.
    pub trust: crate::trust::TrustStore,
}

/// A working candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundProxy {
    pub url: ProxyUrl,
    pub latency: Duration,
    pub country: Option<String>,
}

/// Reads candidate lines: one proxy URL (or `host:port`) per line; blank lines and `#` comments skipped, anything
/// after the URL on a line ignored. Returns the candidates and the lines that were not proxy URLs.
pub fn parse_candidates(text: &str) -> (Vec<ProxyUrl>, Vec<String>) {
    let mut out: Vec<ProxyUrl> = Vec::new();
    let mut rejected = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or(line);
        match ProxyUrl::parse(first) {
            Ok(url) => {
                if !out.contains(&url) {
                    out.push(url);
                }
            }
            Err(_) => rejected.push(providers::redact_url_userinfo(first)),
        }
    }
    (out, rejected)
}

fn country_from_json(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["country_code", "countryCode", "country"]
        .iter()
        .filter_map(|k| v.get(*k)?.as_str())
        .map(|s| s.trim().to_ascii_uppercase())
        .find(|s| s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic()))
}

async fn try_candidate(url: ProxyUrl, options: &FindOptions) -> Option<FoundProxy> {
    // Candidates are public proxies; metadata and link-local addresses stay refused.
    let client =
        super::pool::proxied_client(options.connect_timeout, &url, &options.trust, true).ok()?;
    let result = probe(&client, &options.target, options.timeout).await;
    if !result.ok {
        tracing::debug!(proxy = %url, error = ?result.error, "candidate proxy failed");
        return None;
    }
    let country = match &options.geo_url {
        Some(geo) => {
            let answer = tokio::time::timeout(options.timeout, async {
                client.get(geo).send().await?.bytes().await
            })
            .await;
            match answer {
                Ok(Ok(body)) => country_from_json(&body),
                _ => None,
            }
        }
        None => None,
    };
    if !options.countries.is_empty()
        && !country
            .as_ref()
            .is_some_and(|c| options.countries.iter().any(|w| w.eq_ignore_ascii_case(c)))
    {
        return None;
    }
    Some(FoundProxy {
        url,
        latency: result.latency,
        country,
    })
}

/// Tests every candidate concurrently (at most `concurrency` at once, each within `timeout`) and returns the working
/// ones, fastest first.
pub async fn find_working(candidates: Vec<ProxyUrl>, options: &FindOptions) -> Vec<FoundProxy> {
    let mut found: Vec<FoundProxy> = futures_util::stream::iter(candidates)
        .map(|url| try_candidate(url, options))
        .buffer_unordered(options.concurrency.max(1))
        .filter_map(|f| async move { f })
        .collect()
        .await;
    found.sort_by_key(|f| f.latency);
    found
}

/// The import format (`POST /api/proxies/import`): one `url [country]` per line, after a comment header.
pub fn import_format(found: &[FoundProxy]) -> String {
    let mut out = String::from("# working proxies found by `freellmapi proxies find`: URL, then the exit country when known\n");
    for f in found {
        let url = match f.url.credentials() {
            Some(c) => format!("{}://{c}@{}", f.url.scheme.as_str(), f.url.host_port()),
            None => f.url.address(),
        };
        match &f.country {
            Some(c) => out.push_str(&format!("{url} {c}\n")),
            None => out.push_str(&format!("{url}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_and_countries() {
        let (ok, bad) = parse_candidates(
            "# list\nsocks5://1.2.3.4:1080 FR\n\n1.2.3.4:3128\nnot a url\nsocks5://1.2.3.4:1080\n",
        );
        assert_eq!(ok.len(), 2);
        assert_eq!(bad, vec!["not".to_owned()]);
        assert_eq!(
            country_from_json(br#"{"country_code":"fr"}"#).as_deref(),
            Some("FR")
        );
        assert_eq!(
            country_from_json(br#"{"countryCode":"DE","country":"Germany"}"#).as_deref(),
            Some("DE")
        );
        assert_eq!(country_from_json(br#"{"country":"France"}"#), None);
    }
}
