//! Small real proxies for the tests, on 127.0.0.1:0: an HTTP proxy (CONNECT tunnels and absolute-form forwarding,
//! optional Basic auth) and a SOCKS5 proxy (RFC 1928, optional RFC 1929 username/password). Both record every
//! connection's target and every byte they relayed from the client to the upstream, and can be told to fail.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a proxy relayed.
#[derive(Default)]
pub struct Record {
    pub targets: Vec<String>,
    pub relayed: Vec<u8>,
}

struct Shared {
    record: Mutex<Record>,
    failing: AtomicBool,
    auth: Option<(String, String)>,
}

type Served = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

pub struct TestProxy {
    pub addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    /// An HTTP proxy; with `auth`, requests without the right `Proxy-Authorization` get 407.
    pub async fn http(auth: Option<(&str, &str)>) -> Self {
        Self::start("http", auth, |stream, shared| {
            Box::pin(serve_http(stream, shared))
        })
        .await
    }

    /// A SOCKS5 proxy; with `auth`, only username/password authentication is offered.
    pub async fn socks5(auth: Option<(&str, &str)>) -> Self {
        Self::start("socks5h", auth, |stream, shared| {
            Box::pin(serve_socks5(stream, shared))
        })
        .await
    }

    async fn start(
        scheme: &'static str,
        auth: Option<(&str, &str)>,
        serve: fn(TcpStream, Arc<Shared>) -> Served,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            record: Mutex::new(Record::default()),
            failing: AtomicBool::new(false),
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if accept_shared.failing.load(Ordering::Relaxed) {
                    drop(stream);
                    continue;
                }
                tokio::spawn(serve(stream, accept_shared.clone()));
            }
        });
        Self {
            addr,
            scheme,
            shared,
            task,
        }
    }

    /// `scheme://127.0.0.1:port`, without credentials.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `scheme://user:password@127.0.0.1:port`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("{}://{user}:{password}@{}", self.scheme, self.addr)
    }

    /// While set, connections are accepted and closed at once.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::Relaxed);
    }

    pub fn targets(&self) -> Vec<String> {
        self.shared.record.lock().unwrap().targets.clone()
    }

    pub fn relayed_text(&self) -> String {
        String::from_utf8_lossy(&self.shared.record.lock().unwrap().relayed).into_owned()
    }

    /// How many requests for `path` went through this proxy.
    pub fn requests_for(&self, path: &str) -> usize {
        self.relayed_text().matches(path).count()
    }
}

/// A port nothing listens on.
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// Copies both ways; what goes from the client to the upstream is recorded.
async fn relay(client: TcpStream, upstream: TcpStream, first: Vec<u8>, shared: Arc<Shared>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let to_client = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut buf = first;
    loop {
        if !buf.is_empty() {
            shared
                .record
                .lock()
                .unwrap()
                .relayed
                .extend_from_slice(&buf);
            if up_write.write_all(&buf).await.is_err() {
                break;
            }
        }
        buf = vec![0u8; 16 * 1024];
        match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.truncate(n),
        }
    }
    let _ = up_write.shutdown().await;
    let _ = to_client.await;
}

async fn serve_http(mut client: TcpStream, shared: Arc<Shared>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let Ok(n) = client.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(pos) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if head.len() > 64 * 1024 {
            return;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut words = text.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if let Some((user, password)) = &shared.auth {
        let expected = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
        .to_ascii_lowercase();
        let ok = text.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("proxy-authorization:")
                .is_some_and(|v| v.trim() == expected)
        });
        if !ok {
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            return;
        }
    }
    let (authority, first) = if method.eq_ignore_ascii_case("CONNECT") {
        (target.to_owned(), head[end..].to_vec())
    } else {
        // Absolute form: forward the request as is (the mock accepts absolute-form targets).
        let Some(rest) = target.strip_prefix("http://") else {
            return;
        };
        (
            rest.split('/').next().unwrap_or("").to_owned(),
            head.clone(),
        )
    };
    shared
        .record
        .lock()
        .unwrap()
        .targets
        .push(authority.clone());
    let Ok(upstream) = TcpStream::connect(&authority).await else {
        let _ = client
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    };
    if method.eq_ignore_ascii_case("CONNECT")
        && client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
    {
        return;
    }
    relay(client, upstream, first, shared).await;
}

async fn serve_socks5(mut client: TcpStream, shared: Arc<Shared>) {
    let mut greeting = [0u8; 2];
    if client.read_exact(&mut greeting).await.is_err() || greeting[0] != 5 {
        return;
    }
    let mut methods = vec![0u8; greeting[1] as usize];
    if client.read_exact(&mut methods).await.is_err() {
        return;
    }
    match &shared.auth {
        None => {
            if !methods.contains(&0) || client.write_all(&[5, 0]).await.is_err() {
                let _ = client.write_all(&[5, 0xff]).await;
                return;
            }
        }
        Some((user, password)) => {
            if !methods.contains(&2) {
                let _ = client.write_all(&[5, 0xff]).await;
                return;
            }
            if client.write_all(&[5, 2]).await.is_err() {
                return;
            }
            let mut ver_len = [0u8; 2];
            if client.read_exact(&mut ver_len).await.is_err() {
                return;
            }
            let mut u = vec![0u8; ver_len[1] as usize];
            let mut plen = [0u8; 1];
            if client.read_exact(&mut u).await.is_err()
                || client.read_exact(&mut plen).await.is_err()
            {
                return;
            }
            let mut p = vec![0u8; plen[0] as usize];
            if client.read_exact(&mut p).await.is_err() {
                return;
            }
            if u != user.as_bytes() || p != password.as_bytes() {
                let _ = client.write_all(&[1, 1]).await;
                return;
            }
            if client.write_all(&[1, 0]).await.is_err() {
                return;
            }
        }
    }
    let mut request = [0u8; 4];
    if client.read_exact(&mut request).await.is_err() || request[1] != 1 {
        return;
    }
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            if client.read_exact(&mut ip).await.is_err() {
                return;
            }
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            if client.read_exact(&mut len).await.is_err() {
                return;
            }
            let mut name = vec![0u8; len[0] as usize];
            if client.read_exact(&mut name).await.is_err() {
                return;
            }
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut ip = [0u8; 16];
            if client.read_exact(&mut ip).await.is_err() {
                return;
            }
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => return,
    };
    let mut port = [0u8; 2];
    if client.read_exact(&mut port).await.is_err() {
        return;
    }
    let authority = format!("{host}:{}", u16::from_be_bytes(port));
    shared
        .record
        .lock()
        .unwrap()
        .targets
        .push(authority.clone());
    let Ok(upstream) = TcpStream::connect(&authority).await else {
        let _ = client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        return;
    };
    if client
        .write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .is_err()
    {
        return;
    }
    relay(client, upstream, Vec::new(), shared).await;
}

/// A one-answer HTTP server: every request gets `body` as JSON (a stand-in geo-IP service).
pub async fn json_server(body: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}/json"), task)
}
