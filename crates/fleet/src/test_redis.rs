//! A private `redis-server` for tests: its own port and directory, no persistence, stopped on drop. Tests that use
//! it need the `redis-server` binary (`.ci/run` installs it).
#![allow(clippy::expect_used, clippy::panic)] // test support: a failure to start the server is the test failing

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TestRedis {
    child: Option<Child>,
    port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TestRedis {
    /// Starts a server, or says loudly that the tests using it are skipped when `redis-server` is not installed
    /// (unless `FREELLMAPI_REQUIRE_REDIS` is set: then a missing binary fails the test).
    pub fn try_start() -> Option<TestRedis> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !installed && std::env::var_os("FREELLMAPI_REQUIRE_REDIS").is_none() {
            eprintln!(
                "\n!!!! NOTICE: redis-server is not installed; this fleet test did NOT run !!!!\n"
            );
            return None;
        }
        Some(TestRedis::start())
    }

    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> TestRedis {
        let mut redis = TestRedis {
            child: None,
            port: free_port(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: its data is gone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed for the fleet tests (apt-get install redis-server)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
