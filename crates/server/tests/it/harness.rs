//! Test harness: a gateway on 127.0.0.1:0 with its own SQLite file, keys pointing at mock scenarios.

use std::net::SocketAddr;
use std::time::Duration;

use mock_provider::MockProvider;
use server::{AppState, ServerConfig};
use store::{Cipher, NewProviderKey, Store};

pub const PROVIDER_SECRET: &str = "sk-provider-secret-abcdef123456";
/// The account id of Cloudflare keys (`<account>:<token>`), which goes into the URL path.
pub const CLOUDFLARE_ACCOUNT: &str = "acct0123";

pub struct Gateway {
    pub url: String,
    pub key: String,
    pub state: AppState,
    pub store: Store,
    pub user_id: String,
    pub mock: MockProvider,
    pub http: reqwest::Client,
    pub admin_password: String,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub fn fast_config() -> ServerConfig {
    ServerConfig {
        upstream_timeout: Duration::from_millis(2_000),
        first_token_stall: Duration::from_millis(2_000),
        stream_idle_timeout: Duration::from_millis(2_000),
        ip_rate_limit_rpm: 0,
        // Tests of the wait queue set their own timeout; elsewhere an exhausted pool answers at once.
        queue_timeout: Duration::ZERO,
        ..ServerConfig::default()
    }
}

/// Starts a gateway whose admin owns one provider key per `(scenario, models)`, in order.
pub async fn start(keys: &[(&str, &[&str])]) -> Gateway {
    start_with(fast_config(), keys).await
}

pub async fn start_with(config: ServerConfig, keys: &[(&str, &[&str])]) -> Gateway {
    start_with_encryption_key(config, keys, [5u8; 32]).await
}

/// A gateway whose store encrypts with `encryption_key` (to test moving data between instances).
pub async fn start_with_encryption_key(
    config: ServerConfig,
    keys: &[(&str, &[&str])],
    encryption_key: [u8; 32],
) -> Gateway {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let store = Store::open(&url, Cipher::new(&encryption_key))
        .await
        .unwrap();
    let admin_password = "admin-password-1".to_owned();
    let user = store
        .create_user("admin", &admin_password, "admin")
        .await
        .unwrap();
    for (scenario, models) in keys {
        // `google:<scenario>` and `cohere:<scenario>` are keys of those platforms, on the mock's native routes.
        match scenario.split_once(':') {
            Some(("google", sc)) => {
                let base = mock.base_url(sc).replace("/v1", "/v1beta");
                add_platform_key(&store, &user.id, "google", &base, models).await;
            }
            Some(("cohere", sc)) => {
                let base = mock.base_url(sc).replace("/v1", "/v2");
                add_platform_key(&store, &user.id, "cohere", &base, models).await;
            }
            // Any other `<platform>:<scenario>`: that platform's key on the mock's OpenAI routes, with the secret the
            // platform takes (none for keyless ones, `<account>:<token>` for Cloudflare).
            Some((platform, sc)) => {
                let (base, secret) = match platform {
                    "cloudflare" => (
                        format!(
                            "http://{}/{sc}/client/v4/accounts/{{account_id}}/ai/v1",
                            mock.addr()
                        ),
                        Some(format!("{CLOUDFLARE_ACCOUNT}:{PROVIDER_SECRET}")),
                    ),
                    "kilo" | "pollinations" | "llm7" | "ovh" => (mock.base_url(sc), None),
                    _ => (mock.base_url(sc), Some(PROVIDER_SECRET.to_owned())),
                };
                insert_key(&store, &user.id, platform, &base, secret, models).await;
            }
            _ => {
                add_key(&store, &user.id, &mock.base_url(scenario), models).await;
            }
        }
    }
    let (_, key) = store
        .create_gateway_key(&user.id, "test", None, None)
        .await
        .unwrap();
    let state = AppState::new(config, store.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serve_state = state.clone();
    let server = tokio::spawn(async move {
        server::serve(listener, serve_state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Gateway {
        url: format!("http://{addr}"),
        key,
        state,
        store,
        user_id: user.id,
        mock,
        http: reqwest::Client::new(),
        admin_password,
        _dir: dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

pub async fn add_key(store: &Store, user_id: &str, base_url: &str, models: &[&str]) -> String {
    add_platform_key(store, user_id, "custom", base_url, models).await
}

pub async fn add_platform_key(
    store: &Store,
    user_id: &str,
    platform: &str,
    base_url: &str,
    models: &[&str],
) -> String {
    let secret = Some(PROVIDER_SECRET.to_owned());
    insert_key(store, user_id, platform, base_url, secret, models).await
}

pub async fn insert_key(
    store: &Store,
    user_id: &str,
    platform: &str,
    base_url: &str,
    secret: Option<String>,
    models: &[&str],
) -> String {
    store
        .insert_provider_key(&NewProviderKey {
            user_id: user_id.into(),
            platform: platform.into(),
            label: base_url.into(),
            secret,
            base_url: Some(base_url.into()),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            enabled: true,
            config_name: None,
        })
        .await
        .unwrap()
        .id
}

impl Gateway {
    pub fn chat(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(&self.key)
            .json(&body)
    }

    pub async fn chat_json(
        &self,
        body: serde_json::Value,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let r = self.chat(body).send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, headers, json)
    }

    /// Stops the server and flushes request logs.
    pub async fn stop(mut self) -> Store {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        self.store.clone()
    }
}

pub fn simple_chat(model: &str) -> serde_json::Value {
    serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": "Say hello" }] })
}

pub fn stream_chat(model: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "stream": true,
        "stream_options": { "include_usage": true },
        "messages": [{ "role": "user", "content": "Say hello" }]
    })
}

/// Reads a whole SSE body into its `data:` payloads.
pub async fn sse_events(response: reqwest::Response) -> Vec<String> {
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: ").map(str::to_owned))
        .collect()
}

pub fn assert_openai_error(body: &serde_json::Value, code: &str) {
    let err = &body["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(err["type"].as_str().is_some(), "{body}");
    assert_eq!(err["code"], code, "{body}");
}

/// A writer into a shared buffer, to read back everything the gateway logged.
#[derive(Clone, Default)]
pub struct LogBuffer(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged by this test binary from the first call on (a process-wide subscriber: a thread-scoped one
/// misses events whose callsites other tests registered first).
pub fn captured_logs() -> LogBuffer {
    static BUFFER: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            buffer
        })
        .clone()
}
