//! The gateway binary's log output when standard output is a pipe that nobody reads: requests must go on being
//! answered (they only append to a buffer; a background thread does the writing), lines beyond the buffer's bound
//! are dropped and counted, and every line that does come out is whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.1 request on its own connection; returns the status code.
fn request(addr: SocketAddr, head: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(head.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    Ok(status)
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn requests_never_wait_for_a_stuck_log_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_freellmapi"))
            .arg("serve")
            .env_clear()
            .env("PORT", port.to_string())
            .env("HOST_BIND", "127.0.0.1")
            .env("DATA_DIR", dir.path())
            .env("ADMIN_PASSWORD", "log-test-password")
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ready once it logs that it listens (the flusher writes within 100 ms); after that the pipe is left unread.
    let mut stdout = BufReader::new(gateway.0.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the gateway exited before listening"
        );
    }
    assert_eq!(
        request(
            addr,
            "GET /api/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap(),
        200
    );

    // Each refused cross-site request logs a warning that repeats its 3 KB origin: 3,000 of them are about 10 MB,
    // past the pipe's 64 KiB and the gateway's 8 MiB of pending lines.
    let origin = format!("http://{}.example", "a".repeat(3000));
    let head = format!(
        "POST /api/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let started = Instant::now();
    for i in 0..3000 {
        let sent = Instant::now();
        let status = request(addr, &head).unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_eq!(status, 403, "request {i}");
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "request {i} took {:?}: it waited for the log",
            sent.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(120));

    // Now read: what was written comes out as whole JSON lines, and the flusher reports what it dropped.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut lines, mut refused, mut dropped) = (0, 0, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped.is_none() && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a whole JSON line ({e}): {:.200}", line));
        lines += 1;
        if value["message"] == "cross-site request refused" {
            refused += 1;
        }
        if value["message"] == "log lines dropped: standard output did not take them" {
            dropped = value["dropped"].as_u64();
        }
    }
    let dropped =
        dropped.unwrap_or_else(|| panic!("no report of dropped lines after {lines} lines"));
    assert!(
        refused > 2000 && refused < 3000,
        "{refused} refusals logged"
    );
    assert_eq!(
        refused + dropped,
        3000,
        "every refusal was logged or counted as dropped"
    );
}

/// `LOG_DIR`: the same lines also land in the day's file (`freellmapi-YYYY-MM-DD.log`), with no secret in them.
#[test]
fn log_lines_also_go_to_the_days_file_in_log_dir() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let _gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_freellmapi"))
            .arg("serve")
            .env_clear()
            .env("PORT", port.to_string())
            .env("HOST_BIND", "127.0.0.1")
            .env("DATA_DIR", dir.path())
            .env("ADMIN_PASSWORD", "log-file-test-password")
            .env("LOG_FORMAT", "json")
            .env("LOG_DIR", &logs)
            .env("LOG_RETENTION_DAYS", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while request(
        addr,
        "GET /api/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .is_err()
    {
        assert!(Instant::now() < deadline, "the gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = request(
        addr,
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer freellmapi-not-a-real-key-0123456789\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status, 401);
    let today = freellmapi::log_files::date_of(freellmapi::log_files::today());
    let file = logs.join(format!("freellmapi-{today}.log"));
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("listening") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(text.contains("listening"), "{text}");
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
        assert!(v["message"].is_string(), "{line}");
    }
    assert!(
        !text.contains("log-file-test-password") && !text.contains("freellmapi-not-a-real-key")
    );
}
