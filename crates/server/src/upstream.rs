//! Sending a provider request the adapter built. Direct requests go over one pooled hyper client (HTTP/1.1, and
//! HTTP/2 when a TLS server offers it), whose resolver is the URL guard; a request through an outbound proxy goes
//! over that proxy's reqwest client. Either way the answer is an `http::Response<UpstreamBody>`.
//!
//! The direct client is the request path's: it takes the adapter's `http::Request<Bytes>` as it is (no URL
//! re-parsing, no header copies, no redirect or retry layers). Redirects are not followed: an LLM API answering a
//! POST with a redirect is a misconfigured base URL, and the 3xx is reported with its `Location`.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::guard::url_guard::GuardedResolver;

/// A transport error of an upstream call, with its chain of causes.
pub type TransportError = Box<dyn StdError + Send + Sync>;

/// The bytes of an upstream answer's body, as they arrive.
pub type UpstreamStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// The direct upstream client: one connection pool for every provider.
#[derive(Clone)]
pub struct DirectClient {
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for DirectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectClient")
    }
}

impl DirectClient {
    /// TCP_NODELAY, `connect_timeout` per connection attempt, idle connections kept 90 s. Names resolve through the
    /// URL guard (`allow_private`: whether loopback and private addresses may be called).
    /// TLS trusts `trust`.
    pub fn new(
        connect_timeout: Duration,
        allow_private: bool,
        trust: &crate::trust::TrustStore,
    ) -> Self {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(trust.client_config())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Self { client }
    }
}

/// Who carries a request: the direct client, or an outbound proxy's client.
#[derive(Clone, Copy)]
pub enum Transport<'a> {
    Direct(&'a DirectClient),
    Proxied(&'a reqwest::Client),
}

/// A request that got no HTTP answer.
#[derive(Debug)]
pub struct SendError {
    pub error: TransportError,
    /// The connection could not be made (for a proxied request: to or through the proxy).
    pub connect: bool,
    /// The transport itself gave up waiting.
    pub timeout: bool,
}

impl SendError {
    fn other(error: impl Into<TransportError>) -> Self {
        Self {
            error: error.into(),
            connect: false,
            timeout: false,
        }
    }
}

impl Transport<'_> {
    /// Sends `request` and waits for the answer's head.
    pub async fn send(
        self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        match self {
            Transport::Direct(direct) => {
                let request = request.map(Full::new);
                match direct.client.request(request).await {
                    Ok(response) => Ok(response.map(UpstreamBody::Direct)),
                    Err(e) => Err(SendError {
                        connect: e.is_connect(),
                        timeout: false,
                        error: Box::new(e),
                    }),
                }
            }
            Transport::Proxied(client) => {
                let request = reqwest::Request::try_from(request).map_err(SendError::other)?;
                match client.execute(request).await {
                    Ok(response) => Ok(http::Response::from(response).map(UpstreamBody::Proxied)),
                    Err(e) => Err(SendError {
                        connect: e.is_connect(),
                        timeout: e.is_timeout(),
                        error: Box::new(e),
                    }),
                }
            }
        }
    }
}

/// An upstream answer's body, from either transport.
#[derive(Debug)]
pub enum UpstreamBody {
    Direct(hyper::body::Incoming),
    Proxied(reqwest::Body),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        match self.get_mut() {
            UpstreamBody::Direct(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as TransportError),
            UpstreamBody::Proxied(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as TransportError),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Direct(body) => body.is_end_stream(),
            UpstreamBody::Proxied(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Direct(body) => body.size_hint(),
            UpstreamBody::Proxied(body) => body.size_hint(),
        }
    }
}

impl UpstreamBody {
    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, TransportError> {
        Ok(self.collect().await?.to_bytes())
    }

    /// The body's data as a stream of chunks (trailers are dropped).
    pub fn into_stream(self) -> UpstreamStream {
        Box::pin(http_body_util::BodyDataStream::new(self))
    }
}

/// An adapter's request for a reqwest client (key checks and model discovery), bounded to `timeout` in total.
pub fn for_reqwest(
    request: http::Request<Bytes>,
    timeout: Duration,
) -> Result<reqwest::Request, reqwest::Error> {
    let mut request = reqwest::Request::try_from(request)?;
    *request.timeout_mut() = Some(timeout);
    Ok(request)
}

/// Classifies an error that broke an answer's body after its head arrived.
pub fn classify_body_error(error: &TransportError) -> providers::UpstreamFailure {
    providers::classify_transport(&**error, is_timeout(&**error))
}

/// Whether a transport error (or one of its causes) says the transport timed out.
fn is_timeout(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The settings every upstream client shares (the direct one and each proxy's).
pub fn upstream_client_builder(
    connect_timeout: std::time::Duration,
    trust: &crate::trust::TrustStore,
) -> reqwest::ClientBuilder {
    let mut tls = trust.client_config();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("freellmapi/", env!("CARGO_PKG_VERSION")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TLS set-up (crypto provider, bundled roots) happens at construction; an unreachable https upstream is a
    /// connect error, which the relay turns into a failover.
    #[tokio::test]
    async fn https_client_builds_and_reports_connect_errors() {
        let client = DirectClient::new(
            Duration::from_secs(2),
            true,
            &crate::trust::TrustStore::platform(),
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let request = http::Request::post(format!("https://{addr}/v1/chat/completions"))
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let error = Transport::Direct(&client).send(request).await.unwrap_err();
        assert!(error.connect, "{:?}", error.error);
        let failure = providers::classify_transport(&*error.error, error.timeout);
        assert_eq!(failure.class, providers::ErrorClass::Network);
    }

    /// A server that is not TLS at all fails the handshake: also a connect error, never a hang.
    #[tokio::test]
    async fn https_to_a_plain_server_is_a_connect_error() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let client = DirectClient::new(
            Duration::from_secs(2),
            true,
            &crate::trust::TrustStore::platform(),
        );
        let request = http::Request::get(format!("https://{addr}/v1/models"))
            .body(Bytes::new())
            .unwrap();
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            Transport::Direct(&client).send(request),
        )
        .await
        .expect("the handshake failure must be reported promptly");
        assert!(sent.unwrap_err().connect);
    }
}
