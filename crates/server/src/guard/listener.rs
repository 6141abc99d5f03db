//! The accept loop: HTTP/1.1 connections with the limits a public listener needs, and the drain on shutdown.
//!
//! - **Header read timeout** (`HEADER_READ_TIMEOUT_MS`): a client must finish sending a request head within it
//!   (slowloris), and an idle keep-alive connection is closed after it (hyper starts the same timer when it waits for
//!   the next request).
//! - **Connection caps** (`MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_IP`): past either, a new connection gets an immediate
//!   `503` (or `429` per address) in the documented error shape and is closed, and a warning is logged (at most one
//!   per 10 s, with the count refused meanwhile). Established connections are never cut to make room.
//! - **Accept errors** (out of file descriptors): logged the same way; the loop pauses briefly instead of spinning.
//! - **Drain** (`SHUTDOWN_DRAIN_TIMEOUT_MS`): on shutdown the listener closes, every connection is asked to finish
//!   its current request; after the deadline the remaining ones are dropped (their requests are recorded as
//!   canceled) so the process exits before a supervisor's SIGKILL.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;

/// The listener's limits (validated settings).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    /// Open connections at most, over all clients; 0 means no cap.
    pub max_connections: usize,
    /// Open connections at most from one client address; 0 means no cap.
    pub max_per_address: usize,
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(15),
            max_connections: 8192,
            max_per_address: 2048,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Open connections, in total and per client address.
#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; leaving it (drop) frees its place.
struct Place {
    open: Arc<Mutex<OpenConnections>>,
    address: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

fn lock(m: &Mutex<OpenConnections>) -> std::sync::MutexGuard<'_, OpenConnections> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    PerAddress,
}

fn admit(
    open: &Arc<Mutex<OpenConnections>>,
    limits: &ConnectionLimits,
    address: IpAddr,
) -> Result<Place, Refusal> {
    let mut guard = lock(open);
    if limits.max_connections > 0 && guard.total >= limits.max_connections {
        return Err(Refusal::Total);
    }
    let from_address = guard.by_address.entry(address).or_insert(0);
    if limits.max_per_address > 0 && *from_address >= limits.max_per_address {
        return Err(Refusal::PerAddress);
    }
    *from_address += 1;
    guard.total += 1;
    Ok(Place {
        open: Arc::clone(open),
        address,
    })
}

/// A warning at most every 10 s, saying how many times the condition happened meanwhile.
struct Throttled {
    last: Mutex<Option<Instant>>,
    count: AtomicU64,
}

impl Throttled {
    const fn new() -> Self {
        Self {
            last: Mutex::new(None),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; returns the count to report when a warning is due.
    fn due(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(10)) {
            return None;
        }
        *last = Some(now);
        Some(self.count.swap(0, Ordering::Relaxed))
    }
}

static REFUSED: Throttled = Throttled::new();
static ACCEPT_FAILED: Throttled = Throttled::new();

/// Answers a refused connection with a short error response and closes it, without reading the request.
async fn refuse(mut tcp: TcpStream, refusal: Refusal, limits: ConnectionLimits) {
    let (status, code, message) = match refusal {
        Refusal::Total => (
            "503 Service Unavailable",
            "too_many_connections",
            format!(
                "the gateway holds its maximum of {} open connections (MAX_CONNECTIONS); retry shortly",
                limits.max_connections
            ),
        ),
        Refusal::PerAddress => (
            "429 Too Many Requests",
            "too_many_connections_from_address",
            format!(
                "this address holds the maximum of {} open connections (MAX_CONNECTIONS_PER_IP); reuse connections or retry shortly",
                limits.max_per_address
            ),
        ),
    };
    let kind = if refusal == Refusal::Total {
        wire::ErrorType::ServiceUnavailable
    } else {
        wire::ErrorType::RateLimitError
    };
    let body = wire::ApiError::new(0, kind, code, message).to_json();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(&body).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module doc).
pub async fn run(
    listener: TcpListener,
    app: Router,
    lane: Option<Lane>,
    limits: ConnectionLimits,
    trusted: Arc<super::forwarded::TrustedProxies>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if let Some(n) = ACCEPT_FAILED.due() {
                        tracing::warn!(error = %e, failures = n, "cannot accept connections (out of file descriptors?)");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections as they end, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let place = match admit(&open, &limits, peer.ip()) {
            Ok(place) => place,
            Err(refusal) => {
                if let Some(n) = REFUSED.due() {
                    let total = lock(&open).total;
                    tracing::warn!(peer = %peer.ip(), open = total, refused = n, reason = ?refusal, "connection refused at its cap");
                }
                tokio::spawn(refuse(tcp, refusal, limits));
                continue;
            }
        };
        // Without TCP_NODELAY small SSE frames wait for delayed ACKs (tens of ms per stream).
        let _ = tcp.set_nodelay(true);
        let service = ConnectionService {
            app: app.clone(),
            lane: lane.clone(),
            peer,
            // Decided once per connection: only a trusted peer's forwarding headers are read.
            forwarder: trusted.contains(peer.ip()).then(|| trusted.clone()),
        };
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _place = place;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|s| *s) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            deadline_ms = limits.drain_timeout.as_millis() as u64,
            "drain deadline passed; closing the remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// A route served without the router and its layers: given a request and its client address, it either takes the
/// request (and answers it) or hands it back for the router. The hot inference endpoints go this way, where the
/// router's per-request service clones, boxed layers and extractors would cost more than the routing decision.
pub type Lane = Arc<
    dyn Fn(
            axum::extract::Request,
            SocketAddr,
        ) -> Result<BoxFuture<axum::response::Response>, axum::extract::Request>
        + Send
        + Sync,
>;

/// A lane's answer in the making.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The application for one connection, with the client address as `ConnectInfo`: the peer's, or, when the peer is
/// a trusted proxy, the one its forwarding headers name.
#[derive(Clone)]
struct ConnectionService {
    app: Router,
    lane: Option<Lane>,
    peer: SocketAddr,
    forwarder: Option<Arc<super::forwarded::TrustedProxies>>,
}

/// The router's future, or a lane's (which cannot fail either).
type Answer = futures_util::future::Either<
    axum::routing::future::RouteFuture<std::convert::Infallible>,
    futures_util::future::Map<
        BoxFuture<axum::response::Response>,
        fn(axum::response::Response) -> Result<axum::response::Response, std::convert::Infallible>,
    >,
>;

impl hyper::service::Service<http::Request<Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        use futures_util::FutureExt;
        let mut request = request.map(axum::body::Body::new);
        let client = match &self.forwarder {
            Some(trusted) => trusted.client(self.peer, request.headers()),
            None => self.peer,
        };
        if let Some(lane) = &self.lane {
            match lane(request, client) {
                Ok(answer) => {
                    return futures_util::future::Either::Right(answer.map(Ok as fn(_) -> _))
                }
                Err(back) => request = back,
            }
        }
        request.extensions_mut().insert(ConnectInfo(client));
        futures_util::future::Either::Left(self.app.clone().call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_total_and_per_address_and_free_on_drop() {
        let open = Arc::new(Mutex::new(OpenConnections::default()));
        let limits = ConnectionLimits {
            max_connections: 3,
            max_per_address: 2,
            ..ConnectionLimits::default()
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admit(&open, &limits, a).unwrap();
        let _second = admit(&open, &limits, a).unwrap();
        assert_eq!(admit(&open, &limits, a).err(), Some(Refusal::PerAddress));
        let _third = admit(&open, &limits, b).unwrap();
        assert_eq!(admit(&open, &limits, b).err(), Some(Refusal::Total));
        drop(first);
        let _again = admit(&open, &limits, a).unwrap();
        assert_eq!(lock(&open).total, 3);
        assert_eq!(lock(&open).by_address.get(&a), Some(&2));
    }
}
