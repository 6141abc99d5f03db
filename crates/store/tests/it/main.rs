//! Store tests, run on every engine available: embedded SQLite always, PostgreSQL when
//! `FREELLMAPI_TEST_POSTGRES_URL` names a server (each test gets its own fresh database there).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use store::{
    AdminBootstrap, Cipher, NewProviderKey, ProviderKeyPatch, RequestLog, Store, StoreError,
};

struct TestDb {
    url: String,
    label: &'static str,
    _dir: Option<tempfile::TempDir>,
}

async fn engines() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut out = vec![TestDb {
        url,
        label: "sqlite",
        _dir: Some(dir),
    }];
    match std::env::var("FREELLMAPI_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => out.push(TestDb { url: fresh_postgres_db(&base).await, label: "postgres", _dir: None }),
        _ => eprintln!(
            "\n!!!! NOTICE: FREELLMAPI_TEST_POSTGRES_URL is not set; store tests ran on SQLite ONLY, PostgreSQL was NOT tested !!!!\n"
        ),
    }
    out
}

async fn fresh_postgres_db(base: &str) -> String {
    store::testing::fresh_postgres_database(base)
        .await
        .expect("a fresh database on FREELLMAPI_TEST_POSTGRES_URL")
}

fn cipher() -> Cipher {
    Cipher::new(&[9u8; 32])
}

fn new_key(user_id: &str, secret: &str) -> NewProviderKey {
    NewProviderKey {
        user_id: user_id.into(),
        platform: "groq".into(),
        label: "main".into(),
        secret: Some(secret.into()),
        base_url: None,
        models: vec!["llama-3.3-70b-versatile".into()],
        enabled: true,
        config_name: None,
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_wrong_key_is_refused() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let latest = store::MIGRATIONS.last().unwrap().version;
        assert_eq!(
            store.schema_version().await.unwrap(),
            latest,
            "{}",
            db.label
        );
        store.close().await;
        let again = Store::open(&db.url, cipher()).await.unwrap();
        assert_eq!(again.schema_version().await.unwrap(), latest);
        again.close().await;
        let err = Store::open(&db.url, Cipher::new(&[1u8; 32]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::WrongEncryptionKey),
            "{}: {err}",
            db.label
        );
        // Refusal changed nothing: the right key still opens it.
        Store::open(&db.url, cipher()).await.unwrap().close().await;
    }
}

#[tokio::test]
async fn admin_bootstrap_login_and_sessions() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let generated = store.bootstrap_admin(None, None).await.unwrap();
        let AdminBootstrap::Generated { username, password } = generated else {
            panic!("expected generated admin")
        };
        assert_eq!(username, "admin");
        assert_eq!(
            store
                .bootstrap_admin(Some("other"), Some("password123"))
                .await
                .unwrap(),
            AdminBootstrap::Existing
        );
        let user = store
            .verify_login("admin", &password)
            .await
            .unwrap()
            .expect("login");
        assert!(user.is_admin());
        assert!(store
            .verify_login("admin", "wrong password")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .verify_login("nobody", &password)
            .await
            .unwrap()
            .is_none());
        let token = store
            .create_session(&user.id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.session_user(&token).await.unwrap().unwrap().id,
            user.id
        );
        store.delete_session(&token).await.unwrap();
        assert!(store.session_user(&token).await.unwrap().is_none());
        let expired = store
            .create_session(&user.id, Duration::ZERO)
            .await
            .unwrap();
        assert!(
            store.session_user(&expired).await.unwrap().is_none(),
            "{}",
            db.label
        );
        assert!(matches!(
            store.create_user("admin", "password123", "user").await,
            Err(StoreError::Conflict(_))
        ));
    }
}

#[tokio::test]
async fn provider_keys_are_encrypted_scoped_and_patchable() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let a = store
            .create_user("alice", "password-a", "user")
            .await
            .unwrap();
        let b = store
            .create_user("bob", "password-b", "user")
            .await
            .unwrap();
        let row = store
            .insert_provider_key(&new_key(&a.id, "gsk_supersecret"))
            .await
            .unwrap();
        let stored = row.encrypted_secret.clone().unwrap();
        assert!(!stored.contains("supersecret"));
        assert_eq!(
            store.reveal(&row).unwrap().as_deref(),
            Some("gsk_supersecret")
        );
        assert!(
            store.provider_key(&b.id, &row.id).await.unwrap().is_none(),
            "{}: other user sees key",
            db.label
        );
        assert!(store
            .update_provider_key(&b.id, &row.id, &ProviderKeyPatch::default())
            .await
            .unwrap()
            .is_none());
        assert!(!store.delete_provider_key(&b.id, &row.id).await.unwrap());
        store
            .set_provider_key_status(&row.id, "invalid", Some("401"))
            .await
            .unwrap();
        let patch = ProviderKeyPatch {
            label: Some("renamed".into()),
            models: Some(vec!["m2".into()]),
            ..Default::default()
        };
        let updated = store
            .update_provider_key(&a.id, &row.id, &patch)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.label, "renamed");
        assert_eq!(updated.status, "unknown");
        let listed = store.provider_keys_of(&a.id).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].models, vec!["m2"]);
        assert_eq!(
            store.reveal(&listed[0]).unwrap().as_deref(),
            Some("gsk_supersecret")
        );
        assert!(store.provider_keys_of(&b.id).await.unwrap().is_empty());
        assert!(store.delete_provider_key(&a.id, &row.id).await.unwrap());
    }
}

#[tokio::test]
async fn config_upserts_are_idempotent() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let a = store
            .create_user("alice", "password-a", "admin")
            .await
            .unwrap();
        let mut k = new_key(&a.id, "s1");
        k.config_name = Some("groq-main".into());
        let (first, changed) = store.upsert_config_provider_key(&k).await.unwrap();
        assert!(changed);
        let (second, changed) = store.upsert_config_provider_key(&k).await.unwrap();
        assert!(!changed, "{}", db.label);
        assert_eq!(first.id, second.id);
        k.secret = Some("s2".into());
        let (third, changed) = store.upsert_config_provider_key(&k).await.unwrap();
        assert!(changed);
        assert_eq!(third.id, first.id);
        assert_eq!(store.reveal(&third).unwrap().as_deref(), Some("s2"));
        assert_eq!(store.provider_keys_of(&a.id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn gateway_keys_store_only_hashes() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let a = store
            .create_user("alice", "password-a", "user")
            .await
            .unwrap();
        let (row, raw) = store
            .create_gateway_key(&a.id, "app", None, None)
            .await
            .unwrap();
        assert!(raw.starts_with("freellmapi-") && raw.len() == 11 + 48);
        assert_ne!(row.key_hash, raw);
        assert!(!row.key_hash.contains(&raw[11..]));
        assert!(row.prefix.starts_with("freellmapi-"));
        let dup = store
            .create_gateway_key(&a.id, "dup", Some(&raw), None)
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{}", db.label);
        let disabled = store
            .update_gateway_key(&a.id, &row.id, None, Some(false))
            .await
            .unwrap()
            .unwrap();
        assert!(!disabled.enabled);
        assert_eq!(store.all_gateway_keys().await.unwrap().len(), 1);
        assert!(store.delete_gateway_key(&a.id, &row.id).await.unwrap());
    }
}

#[tokio::test]
async fn request_logs_batch_and_retention() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let logs: Vec<RequestLog> = (0..120)
            .map(|i| RequestLog {
                id: format!("r{i}").into(),
                user_id: "u".into(),
                gateway_key_id: None,
                endpoint: "chat",
                requested_model: "m".into(),
                platform: Some("custom"),
                model: Some("m".into()),
                provider_key_id: Some("k".into()),
                status: "success",
                http_status: 200,
                error_class: None,
                error_message: None,
                stream: i % 2 == 0,
                attempts: 1,
                input_tokens: Some(3),
                output_tokens: Some(4),
                latency_ms: 12,
                ttfb_ms: Some(5),
                created_at: 1_000 + i,
                failed_attempts: if i % 10 == 0 {
                    vec![failed("k", i, 1_000 + i)]
                } else {
                    Vec::new()
                },
            })
            .collect();
        store.insert_request_logs(&logs).await.unwrap();
        let failures = store
            .attempt_failures_since("u", "k", 0, 100)
            .await
            .unwrap();
        assert_eq!(failures.len(), 12, "{}", db.label);
        assert_eq!(failures[0].request_id, "r110");
        assert_eq!(failures[0].error_class, "server_error");
        assert_eq!(failures[0].http_status, Some(503));
        assert_eq!(
            failures[0].error_message.as_deref(),
            Some("503 overloaded 110")
        );
        assert_eq!(failures[0].latency_ms, 110);
        assert!(store
            .attempt_failures_since("other", "k", 0, 100)
            .await
            .unwrap()
            .is_empty());
        let recent = store.recent_requests("u", 10).await.unwrap();
        assert_eq!(recent.len(), 10);
        assert_eq!(recent[0]["id"], "r119");
        assert_eq!(recent[0]["output_tokens"], 4);
        assert_eq!(
            store.prune_requests(None, Some(2)).await.unwrap(),
            118,
            "{}",
            db.label
        );
        assert_eq!(store.recent_requests("u", 10).await.unwrap().len(), 2);
        assert_eq!(
            store
                .prune_requests(Some(Duration::from_secs(1)), None)
                .await
                .unwrap(),
            2
        );
        assert!(store
            .attempt_failures_since("u", "k", 0, 100)
            .await
            .unwrap()
            .is_empty());
    }
}

fn failed(key: &str, i: i64, at: i64) -> store::FailedAttempt {
    store::FailedAttempt {
        provider_key_id: key.into(),
        platform: "groq",
        model: "m".into(),
        error_class: "server_error",
        http_status: Some(503),
        error_message: format!("503 overloaded {i}"),
        latency_ms: i as u64,
        created_at: at,
    }
}

#[tokio::test]
async fn retention_deletes_a_large_backlog_in_chunks() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let log = |i: i64| RequestLog {
            id: format!("r{i}").into(),
            user_id: "u".into(),
            gateway_key_id: None,
            endpoint: "chat",
            requested_model: "m".into(),
            platform: None,
            model: None,
            provider_key_id: None,
            status: "success",
            http_status: 200,
            error_class: None,
            error_message: None,
            stream: false,
            attempts: 1,
            input_tokens: None,
            output_tokens: None,
            latency_ms: 1,
            ttfb_ms: None,
            created_at: 10_000 + i,
            failed_attempts: Vec::new(),
        };
        for start in (0..12_000).step_by(1_000) {
            let batch: Vec<RequestLog> = (start..start + 1_000).map(log).collect();
            store.insert_request_logs(&batch).await.unwrap();
        }
        assert_eq!(
            store.prune_requests(None, Some(1_000)).await.unwrap(),
            11_000,
            "{}",
            db.label
        );
        let newest = store.recent_requests("u", 1).await.unwrap();
        assert_eq!(newest[0]["id"], "r11999");
        assert_eq!(store.prune_requests(None, Some(1_000)).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn proxies_are_scoped_encrypted_and_bulk_edited() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let alice = store
            .create_user("alice", "password-1", "admin")
            .await
            .unwrap();
        let bob = store
            .create_user("bob", "password-2", "user")
            .await
            .unwrap();
        let new = |user: &str, url: &str, creds: Option<&str>| store::NewProxy {
            user_id: user.into(),
            label: url.into(),
            url: url.into(),
            credentials: creds.map(str::to_owned),
            country: Some("FR".into()),
            enabled: true,
        };
        let a = store
            .insert_proxy(&new(
                &alice.id,
                "http://127.0.0.1:1",
                Some("user:s3cret-pass"),
            ))
            .await
            .unwrap();
        let b = store
            .insert_proxy(&new(&alice.id, "socks5h://127.0.0.1:2", None))
            .await
            .unwrap();
        store
            .insert_proxy(&new(&bob.id, "http://127.0.0.1:3", None))
            .await
            .unwrap();
        let rows = store.proxies_of(&alice.id).await.unwrap();
        assert_eq!(rows.len(), 2, "{}", db.label);
        assert_eq!(rows[0].id, a.id, "creation order");
        let stored = rows[0].encrypted_credentials.as_deref().unwrap();
        assert!(
            !stored.contains("s3cret"),
            "{}: credentials stored in clear",
            db.label
        );
        assert_eq!(
            store.reveal_proxy_credentials(&rows[0]).unwrap().as_deref(),
            Some("user:s3cret-pass")
        );
        assert!(
            store.proxy(&bob.id, &a.id).await.unwrap().is_none(),
            "scoped"
        );
        let patched = store
            .update_proxy(
                &alice.id,
                &a.id,
                &store::ProxyPatch {
                    label: Some("fr-1".into()),
                    credentials: Some(None),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(patched.label, "fr-1");
        assert!(patched.encrypted_credentials.is_none());
        assert!(patched.updated_at > a.updated_at);
        let ids = vec![a.id.clone(), b.id.clone(), "nope".to_owned()];
        assert_eq!(
            store
                .set_proxies_enabled(&alice.id, &ids, false)
                .await
                .unwrap(),
            2
        );
        assert!(store
            .proxies_of(&alice.id)
            .await
            .unwrap()
            .iter()
            .all(|p| !p.enabled));
        // Bob cannot delete Alice's proxies.
        assert_eq!(store.delete_proxies(&bob.id, &ids).await.unwrap(), 0);
        assert_eq!(store.delete_proxies(&alice.id, &ids).await.unwrap(), 2);
        assert_eq!(store.all_proxies().await.unwrap().len(), 1);
        // Settings survive a reopen.
        assert_eq!(store.setting("proxy_pool_strategy").await.unwrap(), None);
        store
            .set_setting("proxy_pool_strategy", "random")
            .await
            .unwrap();
        store
            .set_setting("proxy_pool_strategy", "round-robin")
            .await
            .unwrap();
        store.close().await;
        let store = Store::open(&db.url, cipher()).await.unwrap();
        assert_eq!(
            store
                .setting("proxy_pool_strategy")
                .await
                .unwrap()
                .as_deref(),
            Some("round-robin"),
            "{}",
            db.label
        );
        store.close().await;
    }
}

#[tokio::test]
async fn users_passwords_sessions_and_deletion() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let a = store
            .create_user("alice", "password-a", "user")
            .await
            .unwrap();
        let other = store
            .create_user("bob", "password-b", "user")
            .await
            .unwrap();
        assert!(store.check_password(&a.id, "password-a").await.unwrap());
        assert!(!store.check_password(&a.id, "password-x").await.unwrap());
        assert!(!store.check_password("nobody", "password-a").await.unwrap());
        let keep = store
            .create_session(&a.id, Duration::from_secs(60))
            .await
            .unwrap();
        let drop_me = store
            .create_session(&a.id, Duration::from_secs(60))
            .await
            .unwrap();
        let bobs = store
            .create_session(&other.id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.delete_sessions_of(&a.id, Some(&keep)).await.unwrap(),
            1
        );
        assert!(store.session_user(&keep).await.unwrap().is_some());
        assert!(store.session_user(&drop_me).await.unwrap().is_none());
        assert!(store.session_user(&bobs).await.unwrap().is_some());
        assert!(store.set_password(&a.id, "password-new").await.unwrap());
        assert!(store
            .verify_login("alice", "password-new")
            .await
            .unwrap()
            .is_some());
        assert!(store.set_password(&a.id, "short").await.is_err());
        assert!(store.set_user_role(&a.id, "admin").await.unwrap());
        assert!(store.user_by_id(&a.id).await.unwrap().unwrap().is_admin());
        assert!(store.set_user_enabled(&a.id, false).await.unwrap());
        assert!(store
            .verify_login("alice", "password-new")
            .await
            .unwrap()
            .is_none());
        assert!(store.session_user(&keep).await.unwrap().is_none());
        // Deleting a user deletes what they own, and nobody else's.
        store
            .insert_provider_key(&new_key(&a.id, "gsk_alice"))
            .await
            .unwrap();
        store
            .insert_provider_key(&new_key(&other.id, "gsk_bob"))
            .await
            .unwrap();
        store
            .create_gateway_key(&a.id, "app", None, None)
            .await
            .unwrap();
        assert!(store.delete_user(&a.id).await.unwrap(), "{}", db.label);
        assert!(!store.delete_user(&a.id).await.unwrap());
        assert!(store.user_by_id(&a.id).await.unwrap().is_none());
        let keys = store.all_provider_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].user_id, other.id);
        assert!(store.all_gateway_keys().await.unwrap().is_empty());
        assert!(store.session_user(&bobs).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn gateway_key_policy_and_usage_flush() {
    for db in engines().await {
        let store = Store::open(&db.url, cipher()).await.unwrap();
        let a = store
            .create_user("alice", "password-a", "user")
            .await
            .unwrap();
        let b = store
            .create_user("bob", "password-b", "user")
            .await
            .unwrap();
        let (row, _) = store
            .create_gateway_key(&a.id, "app", None, None)
            .await
            .unwrap();
        assert_eq!(
            (row.rpm_limit, row.tpd_limit, row.request_count),
            (None, None, 0)
        );
        let policy = store::GatewayKeyPolicy {
            rpm_limit: Some(10),
            tpd_limit: Some(5_000_000_000),
            allowed_models: Some(vec!["m1".into(), "m2".into()]),
        };
        assert!(store
            .set_gateway_key_policy(&b.id, &row.id, &policy)
            .await
            .unwrap()
            .is_none());
        let updated = store
            .set_gateway_key_policy(&a.id, &row.id, &policy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.rpm_limit, Some(10));
        assert_eq!(updated.tpd_limit, Some(5_000_000_000));
        assert_eq!(updated.allowed_models, policy.allowed_models);
        let delta = |at: i64, requests: i64, tokens: i64| store::GatewayKeyUsageDelta {
            id: row.id.clone(),
            last_used_at: at,
            requests,
            tokens,
        };
        store
            .flush_gateway_key_usage(&[delta(2_000, 3, 40)])
            .await
            .unwrap();
        store
            .flush_gateway_key_usage(&[delta(1_000, 2, 10)])
            .await
            .unwrap();
        let stored = store.gateway_key(&a.id, &row.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.request_count, stored.token_count),
            (5, 50),
            "{}",
            db.label
        );
        assert_eq!(stored.last_used_at, Some(2_000));
        let cleared = store
            .set_gateway_key_policy(&a.id, &row.id, &store::GatewayKeyPolicy::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cleared.allowed_models, None);
        // Tokens since a time, per key, from the request history.
        let log = RequestLog {
            id: "r1".into(),
            user_id: a.id.as_str().into(),
            gateway_key_id: Some(row.id.as_str().into()),
            endpoint: "chat.completions",
            requested_model: "m1".into(),
            platform: None,
            model: None,
            provider_key_id: None,
            status: "success",
            http_status: 200,
            error_class: None,
            error_message: None,
            stream: false,
            attempts: 1,
            input_tokens: Some(7),
            output_tokens: Some(5),
            latency_ms: 1,
            ttfb_ms: None,
            created_at: 10_000,
            failed_attempts: Vec::new(),
        };
        store.insert_request_logs(&[log]).await.unwrap();
        assert_eq!(
            store.gateway_key_tokens_since(9_000).await.unwrap(),
            vec![(row.id.clone(), 12)]
        );
        assert!(store
            .gateway_key_tokens_since(11_000)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn history_connection_writes_rows_the_pool_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Store::open(&format!("sqlite://{}", path.display()), cipher())
        .await
        .unwrap();
    assert_eq!(store.sqlite_file(), Some(path.as_path()));
    let mut history = store::HistoryConnection::open(&path).unwrap();
    let logs: Vec<RequestLog> = (0..300)
        .map(|i| RequestLog {
            id: format!("h{i}").into(),
            user_id: "u".into(),
            gateway_key_id: Some("g".into()),
            endpoint: "chat",
            requested_model: format!("q{i}"),
            platform: Some("groq"),
            model: Some(format!("m{i}").into()),
            provider_key_id: Some("k".into()),
            status: if i % 3 == 0 { "error" } else { "success" },
            http_status: if i % 3 == 0 { 502 } else { 200 },
            error_class: (i % 3 == 0).then_some("upstream_5xx"),
            error_message: (i % 3 == 0).then(|| "bad gateway".to_owned()),
            stream: i % 2 == 0,
            attempts: 1 + (i % 5) as u32,
            input_tokens: Some(7),
            output_tokens: None,
            latency_ms: 40,
            ttfb_ms: Some(i as u64),
            created_at: 10_000 + i,
            failed_attempts: (0..(i % 3 == 0) as i64 * 2)
                .map(|n| failed("k2", n, 10_000 + i))
                .collect(),
        })
        .collect();
    for chunk in logs.chunks(128) {
        assert_eq!(history.write(chunk, None).unwrap(), 0);
    }
    history.checkpoint().unwrap();
    // Every row came back with its own values: sixteen rows share an INSERT, the rest go one by one.
    let all = store.recent_requests("u", 500).await.unwrap();
    assert_eq!(all.len(), 300);
    for (row, log) in all.iter().zip(logs.iter().rev()) {
        assert_eq!(row["id"], *log.id);
        assert_eq!(row["requested_model"], log.requested_model);
        assert_eq!(row["model"], log.model.as_deref().unwrap());
        assert_eq!(row["platform"], "groq");
        assert_eq!(row["provider_key_id"], "k");
        assert_eq!(row["status"], log.status);
        assert_eq!(row["http_status"], log.http_status);
        assert_eq!(row["error_class"], serde_json::json!(log.error_class));
        assert_eq!(row["error_message"], serde_json::json!(log.error_message));
        assert_eq!(row["stream"], log.stream);
        assert_eq!(row["attempts"], log.attempts);
        assert_eq!(row["latency_ms"], 40);
        assert_eq!(row["ttfb_ms"], log.ttfb_ms.unwrap());
    }
    // Two failed attempts for every third request, through the same writer and transaction.
    let failures = store
        .attempt_failures_since("u", "k2", 0, 1_000)
        .await
        .unwrap();
    assert_eq!(failures.len(), 200);
    assert_eq!(failures[0].request_id, "h297");
    assert_eq!(failures[0].created_at, 10_297);
    assert_eq!(failures[0].http_status, Some(503));
    let recent = store.recent_requests("u", 3).await.unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0]["id"], "h299");
    assert_eq!(recent[0]["status"], "success");
    assert_eq!(recent[0]["input_tokens"], 7);
    assert!(recent[0]["output_tokens"].is_null());
    assert!(recent[0]["error_message"].is_null());
    assert_eq!(recent[2]["id"], "h297");
    assert_eq!(recent[2]["status"], "error");
    assert_eq!(recent[2]["http_status"], 502);
    assert_eq!(recent[2]["error_message"], "bad gateway");

    // Retention: rows beyond the newest 100 are rowids 1..=200; rows older than the cutoff 10_050 are h0..h49.
    let age = Duration::from_secs(60);
    let now = 10_050 + 60_000;
    assert_eq!(
        history.retention_bound(None, Some(100), now).unwrap(),
        Some(200)
    );
    assert_eq!(
        history.retention_bound(Some(age), None, now).unwrap(),
        Some(50)
    );
    assert_eq!(
        history.retention_bound(Some(age), Some(100), now).unwrap(),
        Some(200)
    );
    assert_eq!(
        history.retention_bound(Some(age), Some(1000), 0).unwrap(),
        None
    );
    // Deleted a chunk at a time, oldest first, in the same transaction as new rows.
    assert_eq!(history.write(&[], Some((200, 128))).unwrap(), 128);
    assert_eq!(history.write(&logs[..0], Some((200, 128))).unwrap(), 72);
    assert_eq!(history.write(&[], Some((200, 128))).unwrap(), 0);
    assert_eq!(store.recent_requests("u", 500).await.unwrap().len(), 100);
    // Failed attempts older than the oldest request kept (h200) went with their history.
    let kept = store
        .attempt_failures_since("u", "k2", 0, 1_000)
        .await
        .unwrap();
    assert!(kept.iter().all(|f| f.created_at >= 10_200), "{kept:?}");
    assert_eq!(kept.len(), 2 * 33);
    assert_eq!(recent[0]["id"], "h299");
    // The pool's retention sees the same rows.
    assert_eq!(store.prune_requests(None, Some(0)).await.unwrap(), 100);

    // It never creates a database: a wrong path is an error, not an empty file.
    let missing = dir.path().join("missing.db");
    assert!(store::HistoryConnection::open(&missing).is_err());
    assert!(!missing.exists());
}
