//! The binary's small tools that packaging relies on: `--version` (version, commit, build date) and
//! `healthcheck` (the container image's HEALTHCHECK and the installer's readiness probe).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_freellmapi");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn version_names_the_release_the_commit_and_the_build_date() {
    for flag in ["--version", "-V"] {
        let out = Command::new(BIN).arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.trim_end();
        // freellmapi 0.1.0 (commit 1a2b3c4, built 2026-11-05)
        let rest = line
            .strip_prefix(&format!(
                "freellmapi {} (commit ",
                env!("CARGO_PKG_VERSION")
            ))
            .unwrap_or_else(|| panic!("{flag}: unexpected {line:?}"));
        let (commit, rest) = rest.split_once(", built ").unwrap();
        let date = rest.strip_suffix(')').unwrap();
        assert!(
            commit == "unknown"
                || ((7..=12).contains(&commit.len())
                    && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "commit {commit:?}"
        );
        let parts: Vec<&str> = date.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [4, 2, 2],
            "date {date:?}"
        );
        assert!(parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())));
        let (month, day): (u32, u32) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        assert!(
            (1..=12).contains(&month) && (1..=31).contains(&day),
            "{date}"
        );
        assert!(parts[0] >= "2024", "{date}");

        // Built from a git checkout without an override, the commit is the checkout's HEAD.
        let head = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output();
        if let Some(head) = head.ok().filter(|h| h.status.success()) {
            if std::env::var_os("FREELLMAPI_GIT_COMMIT").is_none() {
                let head = String::from_utf8(head.stdout).unwrap();
                assert!(
                    head.starts_with(commit),
                    "commit {commit} is not HEAD {head}"
                );
            }
        }
    }
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn healthcheck(port: u16, host: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["healthcheck", "--timeout-ms", "2000"])
        .env_clear()
        .env("PORT", port.to_string())
        .env("HOST_BIND", host)
        .output()
        .unwrap()
}

#[test]
fn healthcheck_succeeds_only_while_the_gateway_answers() {
    // Nothing listening: a quick failure that says why.
    let port = free_port();
    let started = Instant::now();
    let out = healthcheck(port, "127.0.0.1");
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unhealthy: cannot connect"), "{err}");

    // Something that is not the gateway: refused too.
    let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
    let impostor_port = impostor.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = impostor.accept().unwrap();
        let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    });
    let out = healthcheck(impostor_port, "127.0.0.1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("503"), "{err}");
    server.join().unwrap();

    // The real gateway, listening on every interface: asked on loopback, healthy.
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway(
        Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("PORT", port.to_string())
            .env("HOST_BIND", "0.0.0.0")
            .env("DATA_DIR", dir.path())
            .env("ADMIN_PASSWORD", "healthcheck-test")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(gateway.0.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "gateway exited");
    }
    let out = healthcheck(port, "0.0.0.0");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: http://127.0.0.1:"));

    // Stopped: unhealthy again.
    drop(gateway);
    assert!(!healthcheck(port, "127.0.0.1").status.success());

    // A HOST_BIND that is no address is a usage error, not a hang.
    let out = healthcheck(port, "localhost");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an IP address"));
}
