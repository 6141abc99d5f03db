//! `freellmapi healthcheck`: one `GET /api/ping` to the local gateway, success when it answers 200 with
//! `"status":"ok"`. It lets a container image without curl or a shell declare a `HEALTHCHECK`, and scripts wait
//! for a start without curl. Plain blocking I/O, no runtime: it runs before anything else is set up.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::HealthcheckArgs;

/// The address to ask: the gateway's own bind address, with the "every interface" ones taken on loopback.
fn target(args: &HealthcheckArgs) -> anyhow::Result<SocketAddr> {
    let host = args
        .host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: IpAddr = host
        .parse()
        .with_context(|| format!("HOST_BIND `{}` is not an IP address", args.host))?;
    let ip = match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    Ok(SocketAddr::new(ip, args.port))
}

pub fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let addr = target(args)?;
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms);
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut stream = TcpStream::connect_timeout(&addr, left())
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_write_timeout(Some(left()))?;
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
    };
    // One write: `write!` would send the pieces of the format one by one.
    let request = format!("GET /api/ping HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("cannot send to {addr}"))?;
    // The answer is a few hundred bytes; read until the server closes, bounded in size and time.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while answer.len() < 64 * 1024 {
        stream.set_read_timeout(Some(left()))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e).with_context(|| format!("no answer from {addr}")),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        bail!("{addr} answered `{status}` to /api/ping");
    }
    if !text.contains(r#""status":"ok""#) {
        bail!("{addr} answered 200 to /api/ping without \"status\":\"ok\"");
    }
    println!("ok: http://{host}/api/ping");
    Ok(())
}
