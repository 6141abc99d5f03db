//! `freellmapi proxies find`: reads candidate proxies from files or list URLs, tests them concurrently through
//! `server::proxy::find_working` (bounded pool, per-candidate timeout, optional exit-country check) and writes the
//! working set in the import format of `POST /api/proxies/import`.

use std::time::Duration;

use anyhow::Context;
use server::proxy::{find_working, import_format, parse_candidates, FindOptions};

use crate::cli::FindArgs;

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindReport {
    pub candidates: usize,
    pub working: usize,
    /// Lines of the sources that were not proxy URLs.
    pub rejected: usize,
}

/// Reads one source: a file, or a list fetched directly (never through a proxy) from an http(s) URL.
async fn read_source(
    source: &str,
    timeout: Duration,
    trust: &server::trust::TrustStore,
) -> anyhow::Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let shown = providers::redact_url_userinfo(source);
        let client = server::upstream::upstream_client_builder(timeout, trust)
            .timeout(timeout.max(Duration::from_secs(30)))
            .build()
            .context("cannot build an HTTP client")?;
        let response = client
            .get(source)
            .send()
            .await
            .with_context(|| format!("cannot fetch {shown}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "{shown} answered {}",
            response.status()
        );
        return response
            .text()
            .await
            .with_context(|| format!("cannot read {shown}"));
    }
    tokio::fs::read_to_string(source)
        .await
        .with_context(|| format!("cannot read {source}"))
}

/// Runs the search and writes the result.
pub async fn run(args: &FindArgs) -> anyhow::Result<FindReport> {
    anyhow::ensure!(
        args.countries.is_empty() || args.geo_url.is_some(),
        "--country needs --geo-url (the service that tells each proxy's exit country)"
    );
    let timeout = Duration::from_millis(args.timeout_ms);
    let extra = std::env::var("EXTRA_CA_CERTS").unwrap_or_default();
    let trust = server::trust::TrustStore::load(&server::trust::parse_path_list(&extra))
        .map_err(|e| anyhow::anyhow!("EXTRA_CA_CERTS: {e}"))?;
    let trust = &trust;
    let mut text = String::new();
    for source in &args.sources {
        text.push_str(&read_source(source, timeout, trust).await?);
        text.push('\n');
    }
    let (candidates, rejected) = parse_candidates(&text);
    let total = candidates.len();
    eprintln!(
        "testing {total} candidate proxies ({} at a time, {} ms each)…",
        args.concurrency, args.timeout_ms
    );
    let options = FindOptions {
        target: args.target.clone(),
        timeout,
        concurrency: usize::from(args.concurrency),
        geo_url: args.geo_url.clone(),
        countries: args
            .countries
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect(),
        connect_timeout: timeout,
        trust: trust.clone(),
    };
    let found = find_working(candidates, &options).await;
    let output = import_format(&found);
    if args.output.as_os_str() == "-" {
        print!("{output}");
    } else {
        tokio::fs::write(&args.output, output)
            .await
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        eprintln!(
            "{} of {total} proxies work; written to {} (import it with POST /api/proxies/import)",
            found.len(),
            args.output.display()
        );
    }
    Ok(FindReport {
        candidates: total,
        working: found.len(),
        rejected: rejected.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn dead_candidates_from_a_file_and_a_list_url_yield_an_empty_set() {
        let dead = |l: std::net::TcpListener| l.local_addr().unwrap();
        let a = dead(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let b = dead(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("candidates.txt");
        std::fs::write(&file, format!("http://{a}\nnot-a-proxy\n")).unwrap();
        // The list URL: a one-shot server answering with one more dead candidate.
        let list = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let list_url = format!("http://{}/list.txt", list.local_addr().unwrap());
        let body = format!("socks5://{b}\n");
        tokio::spawn(async move {
            let (mut s, _) = list.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        let output = dir.path().join("working.txt");
        let args = FindArgs {
            sources: vec![file.display().to_string(), list_url],
            output: output.clone(),
            concurrency: 4,
            timeout_ms: 2000,
            target: "http://127.0.0.1:9/".into(),
            geo_url: None,
            countries: vec![],
        };
        let report = run(&args).await.unwrap();
        assert_eq!(
            report,
            FindReport {
                candidates: 2,
                working: 0,
                rejected: 1
            }
        );
        let written = std::fs::read_to_string(&output).unwrap();
        assert!(written.lines().all(|l| l.starts_with('#')), "{written}");
        let bad = FindArgs {
            countries: vec!["FR".into()],
            ..args
        };
        assert!(run(&bad).await.is_err());
    }
}
