//! Hand-rolled command-line parsing and loopback-only URL validation.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Uri;
use serde_json::Value;

pub const USAGE: &str = "\
usage: bench-load --url http://127.0.0.1:PORT/PATH --concurrency N --duration-secs S
                  [--warmup-secs W] [--stream [--stream-end MARKER]] [--header 'Name: value']...
                  [--body-file PATH | --body JSON] [--label TEXT] [--threads N]
       bench-load --rate R (--url URL | --upstream URL... | --upstreams-file PATH)
                  --duration-secs S [--max-in-flight M] [--tries N] [--timeout-secs T]
                  [--grace-secs G] [--stream] [--header ...] [--body ...] [--label TEXT]

Closed-loop HTTP/1.1 load: N keep-alive connections, each sending POST requests
back to back for S seconds (after W seconds of discarded warm-up), then prints
one JSON line with throughput and latency percentiles. Loopback targets only.

Open-loop (--rate): R requests per second, evenly spaced, for S seconds, whatever
the answers; at most M in flight (a request due while M are in flight is shed and
counted). With several upstreams (--upstream, repeatable, or one URL per line in
--upstreams-file) it is a naive round-robin balancer: every attempt goes to the
next upstream in turn, and a 429, a 5xx, a transport error or a timeout (T s per
attempt) moves the request to the next one, up to N attempts (default 3; with a single
upstream the default is 1, so an error is what the client sees).
Requests still in flight G s (default 10) after the end are counted unfinished.";

/// Default request body: the mock upstream's chat completion workload.
const DEFAULT_BODY: &str =
    r#"{"model":"mock-model","messages":[{"role":"user","content":"Say hello"}]}"#;

/// Upper bounds keeping a typo from turning into a runaway process.
const MAX_CONCURRENCY: usize = 10_000;
const MAX_RATE: f64 = 100_000.0;
const MAX_TRIES: usize = 100;
const MAX_UPSTREAMS: usize = 10_000;
const MAX_SECS: f64 = 3_600.0;
const MAX_THREADS: usize = 256;

/// A parsed `http://` URL whose host is a loopback address.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Value for the `Host` header (`host:port` as written in the URL).
    pub authority: String,
    /// Origin-form request target (`/path?query`).
    pub path: Uri,
}

#[derive(Debug)]
pub enum Command {
    Help,
    Run(Box<Args>),
}

/// The open-loop settings (`--rate`).
#[derive(Debug)]
pub struct OpenLoop {
    /// Requests per second.
    pub rate: f64,
    pub max_in_flight: usize,
    /// Where requests go: one target, or several taken in turn (round-robin).
    pub upstreams: Vec<Target>,
    /// Most attempts per request (default 1 with one upstream, 3 with several).
    pub tries: usize,
    /// Deadline of one attempt (`None`: only the end of the run bounds it).
    pub attempt_timeout: Option<Duration>,
    /// How long after the end requests in flight may still finish.
    pub grace: Duration,
}

#[derive(Debug)]
pub struct Args {
    pub target: Target,
    /// Set with `--rate`: open loop instead of closed loop.
    pub open_loop: Option<OpenLoop>,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub stream: bool,
    /// What marks a complete stream (`--stream-end`, default `[DONE]`).
    pub stream_end: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub label: String,
    pub threads: usize,
}

pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Command, String> {
    let mut url = None;
    let mut concurrency = None;
    let mut duration = None;
    let mut warmup = Duration::ZERO;
    let mut stream = false;
    let mut stream_end = None;
    let mut headers = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    let mut label = String::new();
    let mut threads = 1usize;
    let mut rate = None;
    let mut max_in_flight = 1024usize;
    let mut upstreams = Vec::new();
    let mut tries = None;
    let mut attempt_timeout = None;
    let mut grace = Duration::from_secs(10);

    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--url" => url = Some(parse_url(&value("--url")?)?),
            "--concurrency" | "-c" => {
                let v = value("--concurrency")?;
                let n: usize = v.parse().map_err(|e| format!("--concurrency {v}: {e}"))?;
                if n == 0 || n > MAX_CONCURRENCY {
                    return Err(format!("--concurrency must be in 1..={MAX_CONCURRENCY}"));
                }
                concurrency = Some(n);
            }
            "--duration-secs" => {
                duration = Some(parse_secs("--duration-secs", &value("--duration-secs")?)?)
            }
            "--warmup-secs" => warmup = parse_secs("--warmup-secs", &value("--warmup-secs")?)?,
            "--stream" => {
                if inline.is_some() {
                    return Err("--stream takes no value".to_owned());
                }
                stream = true;
            }
            "--stream-end" => {
                let marker = value("--stream-end")?;
                if marker.is_empty() || marker.len() > 64 {
                    return Err("--stream-end needs 1 to 64 bytes".to_owned());
                }
                stream_end = Some(marker);
            }
            "--header" | "-H" => headers.push(parse_header(&value("--header")?)?),
            "--body" => {
                if body.is_some() {
                    return Err("give only one of --body / --body-file".to_owned());
                }
                body = Some(value("--body")?.into_bytes());
            }
            "--body-file" => {
                if body.is_some() {
                    return Err("give only one of --body / --body-file".to_owned());
                }
                let path = value("--body-file")?;
                body = Some(std::fs::read(&path).map_err(|e| format!("--body-file {path}: {e}"))?);
            }
            "--label" => label = value("--label")?,
            "--rate" => {
                let v = value("--rate")?;
                let r: f64 = v.parse().map_err(|e| format!("--rate {v}: {e}"))?;
                if !r.is_finite() || r <= 0.0 || r > MAX_RATE {
                    return Err(format!("--rate must be in (0, {MAX_RATE}]"));
                }
                rate = Some(r);
            }
            "--max-in-flight" => {
                let v = value("--max-in-flight")?;
                max_in_flight = v.parse().map_err(|e| format!("--max-in-flight {v}: {e}"))?;
                if max_in_flight == 0 || max_in_flight > MAX_CONCURRENCY {
                    return Err(format!("--max-in-flight must be in 1..={MAX_CONCURRENCY}"));
                }
            }
            "--upstream" => upstreams.push(parse_url(&value("--upstream")?)?),
            "--upstreams-file" => {
                let path = value("--upstreams-file")?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("--upstreams-file {path}: {e}"))?;
                for line in text.lines().map(str::trim) {
                    if !line.is_empty() && !line.starts_with('#') {
                        upstreams.push(parse_url(line)?);
                    }
                }
            }
            "--tries" => {
                let v = value("--tries")?;
                let n: usize = v.parse().map_err(|e| format!("--tries {v}: {e}"))?;
                if n == 0 || n > MAX_TRIES {
                    return Err(format!("--tries must be in 1..={MAX_TRIES}"));
                }
                tries = Some(n);
            }
            "--timeout-secs" => {
                let t = parse_secs("--timeout-secs", &value("--timeout-secs")?)?;
                attempt_timeout = (!t.is_zero()).then_some(t);
            }
            "--grace-secs" => grace = parse_secs("--grace-secs", &value("--grace-secs")?)?,
            "--threads" => {
                let v = value("--threads")?;
                threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                if threads == 0 || threads > MAX_THREADS {
                    return Err(format!("--threads must be in 1..={MAX_THREADS}"));
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }

    let duration = duration.ok_or("--duration-secs is required")?;
    if duration.is_zero() {
        return Err("--duration-secs must be positive".to_owned());
    }
    if upstreams.len() > MAX_UPSTREAMS {
        return Err(format!("at most {MAX_UPSTREAMS} upstreams"));
    }
    let (target, concurrency, open_loop) = match rate {
        None => {
            if !upstreams.is_empty() {
                return Err("--upstream / --upstreams-file need --rate".to_owned());
            }
            let target = url.ok_or("--url is required")?;
            let concurrency = concurrency.ok_or("--concurrency is required")?;
            (target, concurrency, None)
        }
        Some(rate) => {
            if concurrency.is_some() {
                return Err(
                    "--concurrency is for the closed loop; with --rate use --max-in-flight"
                        .to_owned(),
                );
            }
            if let Some(url) = url {
                if !upstreams.is_empty() {
                    return Err("give either --url or upstreams, not both".to_owned());
                }
                upstreams.push(url);
            }
            let target = upstreams
                .first()
                .cloned()
                .ok_or("--rate needs --url or at least one upstream")?;
            let tries = tries.unwrap_or(if upstreams.len() > 1 { 3 } else { 1 });
            let open_loop = OpenLoop {
                rate,
                max_in_flight,
                upstreams,
                tries,
                attempt_timeout,
                grace,
            };
            (target, max_in_flight, Some(open_loop))
        }
    };
    let body = prepare_body(
        body.unwrap_or_else(|| DEFAULT_BODY.as_bytes().to_vec()),
        stream,
    )?;
    Ok(Command::Run(Box::new(Args {
        target,
        open_loop,
        concurrency,
        duration,
        warmup,
        stream,
        stream_end,
        headers,
        body,
        label,
        threads,
    })))
}

fn parse_secs(name: &str, v: &str) -> Result<Duration, String> {
    let secs: f64 = v.parse().map_err(|e| format!("{name} {v}: {e}"))?;
    if !secs.is_finite() || !(0.0..=MAX_SECS).contains(&secs) {
        return Err(format!("{name} must be between 0 and {MAX_SECS}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_header(v: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = v
        .split_once(':')
        .ok_or_else(|| format!("--header {v:?}: expected 'Name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("--header {v:?}: bad name: {e}"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|e| format!("--header {v:?}: bad value: {e}"))?;
    Ok((name, value))
}

/// Checks the body is JSON; with `--stream`, adds `"stream": true` when the
/// object does not say anything about streaming yet.
fn prepare_body(raw: Vec<u8>, stream: bool) -> Result<Bytes, String> {
    let mut value: Value =
        serde_json::from_slice(&raw).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    if stream {
        if let Value::Object(map) = &mut value {
            if !map.contains_key("stream") {
                map.insert("stream".to_owned(), Value::Bool(true));
                let out = serde_json::to_vec(&value)
                    .map_err(|e| format!("re-encoding request body: {e}"))?;
                return Ok(Bytes::from(out));
            }
        }
    }
    Ok(Bytes::from(raw))
}

/// Parses `http://host[:port][/path]`, refusing anything that is not loopback.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only plain http:// URLs are supported"))?;
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(format!("{url}: credentials in the URL are not supported"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{url}: unterminated IPv6 literal"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("{url}: bad authority")),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        Some(p) => p
            .parse()
            .map_err(|e| format!("{url}: bad port {p:?}: {e}"))?,
        None => 80,
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("{url}: host must be a loopback IP literal or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(format!("{url}: refusing non-loopback target {ip}"));
    }
    let path = if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let path: Uri = path.parse().map_err(|e| format!("{url}: bad path: {e}"))?;
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        authority: authority.to_owned(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_loopback_urls() {
        let t = parse_url("http://127.0.0.1:8080/v1/chat/completions").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path, "/v1/chat/completions");
        let t = parse_url("http://localhost:1").unwrap();
        assert_eq!(t.path, "/");
        let t = parse_url("http://[::1]:9/x?y=1").unwrap();
        assert_eq!(t.addr, "[::1]:9".parse().unwrap());
        assert_eq!(t.path, "/x?y=1");
        assert_eq!(parse_url("http://127.0.0.2").unwrap().addr.port(), 80);
    }

    #[test]
    fn refuses_non_loopback() {
        assert!(parse_url("http://10.0.0.1:80/").is_err());
        assert!(parse_url("http://example.com/").is_err());
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http://user@127.0.0.1/").is_err());
        assert!(parse_url("http://0.0.0.0:80/").is_err());
    }

    #[test]
    fn stream_flag_sets_body_field() {
        let cmd = parse(args(&[
            "--url=http://127.0.0.1:1/",
            "--concurrency",
            "2",
            "--duration-secs",
            "0.5",
            "--stream",
            "--header",
            "Authorization: Bearer x",
        ]))
        .unwrap();
        let Command::Run(a) = cmd else {
            panic!("expected run")
        };
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["stream"], Value::Bool(true));
        assert_eq!(a.headers.len(), 1);
        assert_eq!(a.duration, Duration::from_millis(500));
    }

    #[test]
    fn open_loop_round_robin_arguments() {
        let dir = std::env::temp_dir().join(format!("bench-load-args-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# fleet\nhttp://127.0.0.1:9/a/v1/chat/completions\n\nhttp://127.0.0.1:9/b/v1/chat/completions\n",
        )
        .unwrap();
        let cmd = parse(args(&[
            "--rate",
            "6.5",
            "--upstreams-file",
            dir.to_str().unwrap(),
            "--upstream",
            "http://127.0.0.1:9/c/v1/chat/completions",
            "--duration-secs",
            "30",
            "--tries",
            "4",
            "--timeout-secs",
            "10",
            "--max-in-flight",
            "500",
        ]))
        .unwrap();
        let _ = std::fs::remove_file(&dir);
        let Command::Run(a) = cmd else {
            panic!("expected run")
        };
        let open = a.open_loop.unwrap();
        assert_eq!(open.rate, 6.5);
        assert_eq!(open.upstreams.len(), 3);
        assert_eq!(open.upstreams[1].path, "/b/v1/chat/completions");
        assert_eq!(open.tries, 4);
        assert_eq!(open.attempt_timeout, Some(Duration::from_secs(10)));
        assert_eq!(open.max_in_flight, 500);
        assert_eq!(open.grace, Duration::from_secs(10));

        // One --url is a single upstream.
        let Command::Run(a) = parse(args(&[
            "--rate=2",
            "--url=http://127.0.0.1:1/",
            "--duration-secs=1",
        ]))
        .unwrap() else {
            panic!("expected run")
        };
        assert_eq!(a.open_loop.unwrap().upstreams.len(), 1);

        for bad in [
            &[
                "--rate",
                "0",
                "--url",
                "http://127.0.0.1:1/",
                "--duration-secs",
                "1",
            ][..],
            &["--rate", "1", "--duration-secs", "1"],
            &[
                "--rate",
                "1",
                "--url",
                "http://127.0.0.1:1/",
                "--concurrency",
                "2",
                "--duration-secs",
                "1",
            ],
            &[
                "--upstream",
                "http://127.0.0.1:1/",
                "--concurrency",
                "2",
                "--duration-secs",
                "1",
            ],
            &[
                "--rate",
                "1",
                "--upstream",
                "http://10.0.0.1:1/",
                "--duration-secs",
                "1",
            ],
            &[
                "--rate",
                "1",
                "--url",
                "http://127.0.0.1:1/",
                "--tries",
                "0",
                "--duration-secs",
                "1",
            ],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(args(&[
            "--url",
            "http://127.0.0.1:1/",
            "--duration-secs",
            "1"
        ]))
        .is_err());
        assert!(parse(args(&[
            "--url",
            "http://127.0.0.1:1/",
            "--concurrency",
            "0",
            "--duration-secs",
            "1"
        ]))
        .is_err());
        assert!(parse(args(&[
            "--url",
            "http://127.0.0.1:1/",
            "--concurrency",
            "1",
            "--duration-secs",
            "1",
            "--body",
            "{not json"
        ]))
        .is_err());
    }
}
