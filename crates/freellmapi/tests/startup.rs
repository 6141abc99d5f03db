//! Start-up end to end (without serving): data directory, encryption key file, admin bootstrap, wrong-key refusal,
//! and the declarative file applied idempotently.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser;
use freellmapi::cli::{Cli, ServeArgs};
use freellmapi::startup::prepare;

fn args(dir: &std::path::Path, extra: &[&str]) -> ServeArgs {
    let data = dir.join("data");
    let mut argv = vec![
        "freellmapi".to_owned(),
        "--port".into(),
        "0".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    Cli::try_parse_from(argv).unwrap().serve_args()
}

#[tokio::test]
async fn first_start_generates_key_file_and_refuses_wrong_keys_later() {
    let dir = tempfile::tempdir().unwrap();
    let a = args(dir.path(), &["--admin-password", "first-password"]);
    let prepared = prepare(&a).await.unwrap();
    let key_file = dir.path().join("data/encryption.key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert!(prepared
        .state
        .store
        .verify_login("admin", "first-password")
        .await
        .unwrap()
        .is_some());
    prepared.state.store.close().await;
    drop(prepared);

    // A different explicit key is refused, and nothing changes.
    let wrong = "ab".repeat(32);
    let err = prepare(&args(dir.path(), &["--encryption-key", &wrong]))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("different ENCRYPTION_KEY"), "{err}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);

    // Losing the key file: refused, and no new key file is left behind.
    std::fs::remove_file(&key_file).unwrap();
    let err = prepare(&args(dir.path(), &[]))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("set ENCRYPTION_KEY or restore"), "{err}");
    assert!(!key_file.exists());

    // The original key, given explicitly, still opens everything.
    let prepared = prepare(&args(dir.path(), &["--encryption-key", key.trim()]))
        .await
        .unwrap();
    assert!(prepared
        .state
        .store
        .verify_login("admin", "first-password")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn bad_settings_stop_start_up_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let err = prepare(&args(dir.path(), &["--encryption-key", "not-hex"]))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("64 hexadecimal"), "{err}");
    let err = prepare(&args(dir.path(), &["--admin-password", "short"]))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("ADMIN_PASSWORD"), "{err}");
    let fresh = tempfile::tempdir().unwrap();
    let cfg = fresh.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[provider_keys]]\nname = \"x\"\nplatform = \"custom\"\nmodels = [\"m\"]\n",
    )
    .unwrap();
    let err = prepare(&args(fresh.path(), &["--config", cfg.to_str().unwrap()]))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("provider_keys[0].base_url"), "{err}");
    assert!(
        !fresh.path().join("data").exists(),
        "a bad config must stop start-up before anything is created"
    );
    let err = Cli::try_parse_from(["freellmapi", "--log-level", "loud"])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("loud"), "{err}");
}

#[tokio::test]
async fn config_file_is_applied_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        r#"
[[provider_keys]]
name = "local"
platform = "custom"
base_url = "http://127.0.0.1:9/v1"
models = ["m1"]

[[gateway_keys]]
name = "ci"
key = "freellmapi-ci-0123456789abcdef0123"
"#,
    )
    .unwrap();
    let a = args(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--admin-password",
            "first-password",
        ],
    );
    for _ in 0..3 {
        let prepared = prepare(&a).await.unwrap();
        let store = prepared.state.store.clone();
        let admin = store.first_admin().await.unwrap().unwrap();
        assert_eq!(store.provider_keys_of(&admin.id).await.unwrap().len(), 1);
        assert_eq!(store.gateway_keys_of(&admin.id).await.unwrap().len(), 1);
        let snapshot = prepared.state.snapshot.load();
        assert_eq!(snapshot.gateway_keys.len(), 1);
        store.close().await;
    }
}

/// The file can declare what the admin API can set: a provider key's limits, a gateway key's limits and
/// allow-list. Declared fields are authoritative; fields it leaves out keep what an admin set.
#[tokio::test]
async fn config_file_declares_key_limits_and_gateway_key_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    let write = |extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"
[[provider_keys]]
name = "paid"
platform = "google"
key = "AIza-test-key-value"
models = ["gemini-2.5-flash"]
limits = {{ rpm = 1000, rpd = 100000, no_catalog_limits = true }}

[[gateway_keys]]
name = "app"
key = "freellmapi-app-0123456789abcdef0123"
{extra}
"#
            ),
        )
        .unwrap()
    };
    write("rpm_limit = 30\nallowed_models = [\"gemini-2.5-flash\"]");
    let a = args(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--admin-password",
            "first-password",
        ],
    );
    let prepared = prepare(&a).await.unwrap();
    let store = prepared.state.store.clone();
    let admin = store.first_admin().await.unwrap().unwrap();
    let key = &store.provider_keys_of(&admin.id).await.unwrap()[0];
    assert_eq!(key.limits.rpm, Some(1000));
    assert_eq!(key.limits.rpd, Some(100_000));
    assert!(key.limits.no_catalog_limits);
    let gk = &store.gateway_keys_of(&admin.id).await.unwrap()[0];
    assert_eq!(gk.rpm_limit, Some(30));
    assert_eq!(
        gk.allowed_models.as_deref(),
        Some(&["gemini-2.5-flash".to_owned()][..])
    );
    // An admin sets a daily token cap the file does not mention: the next start keeps it.
    store
        .set_gateway_key_policy(
            &admin.id,
            &gk.id,
            &store::GatewayKeyPolicy {
                rpm_limit: Some(30),
                tpd_limit: Some(5_000),
                allowed_models: gk.allowed_models.clone(),
            },
        )
        .await
        .unwrap();
    store.close().await;
    write("rpm_limit = 60");
    let prepared = prepare(&a).await.unwrap();
    let store = prepared.state.store.clone();
    let gk = &store.gateway_keys_of(&admin.id).await.unwrap()[0];
    assert_eq!((gk.rpm_limit, gk.tpd_limit), (Some(60), Some(5_000)));
    assert_eq!(
        gk.allowed_models.as_deref(),
        Some(&["gemini-2.5-flash".to_owned()][..])
    );
    store.close().await;
    // A zero or a typo is refused, naming the field.
    write("tpd_limit = 0");
    let err = prepare(&a).await.err().unwrap().to_string();
    assert!(err.contains("gateway_keys[0].tpd_limit"), "{err}");
}

#[tokio::test]
async fn proxy_settings_from_flags_and_file_are_saved_and_survive_restarts() {
    use server::proxy::Strategy;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        "[proxy]\nstrategy = \"random\"\nbypass = [\"groq\"]\nhealth_interval_seconds = 0\n",
    )
    .unwrap();
    let config = file.display().to_string();
    let flags = [
        "--admin-password",
        "first-password",
        "--config",
        &config,
        "--proxy-pool-strategy",
        "round-robin",
    ];
    let prepared = prepare(&args(dir.path(), &flags)).await.unwrap();
    let settings = prepared.state.proxies.view().settings.clone();
    assert_eq!(
        settings.strategy,
        Strategy::RoundRobin,
        "the flag wins over the file"
    );
    assert_eq!(settings.bypass, vec!["groq".to_owned()]);
    assert!(prepared.state.proxies.config.health_interval.is_zero());
    prepared.state.store.close().await;
    drop(prepared);
    // Neither flag nor file now: the saved settings apply.
    let prepared = prepare(&args(dir.path(), &["--proxy-health-interval-seconds", "0"]))
        .await
        .unwrap();
    assert_eq!(
        prepared.state.proxies.view().settings.strategy,
        Strategy::RoundRobin
    );
    prepared.state.store.close().await;
    drop(prepared);
    let err = prepare(&args(
        dir.path(),
        &["--proxy-url", "ftp://user:hunter22@10.0.0.1:21"],
    ))
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("PROXY_URL") && !err.contains("hunter22"),
        "{err}"
    );
    let err = prepare(&args(dir.path(), &["--proxy-bypass", "groq,nope"]))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("PROXY_BYPASS") && err.contains("nope"),
        "{err}"
    );
}
