//! `migrate-from-old` against a fixture install of the Node original: its schema, hundreds of keys encrypted by
//! Node's own `crypto` (AES-256-GCM, 16-byte IV, as the original does — an implementation independent of ours),
//! request history, and a `.env` holding its key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use clap::Parser;
use freellmapi::cli::{Cli, MigrateArgs};

const OLD_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEYS: usize = 300;
const HISTORY: usize = 500;

/// `(platform, secret)` of the fixture's keys: most served here, a few of a platform that is not.
fn fixture_keys() -> Vec<(String, String)> {
    let platforms = [
        "groq",
        "google",
        "openrouter",
        "mistral",
        "zhipu",
        "custom",
        "cerebras",
    ];
    (0..KEYS)
        .map(|i| {
            let platform = if i % 50 == 49 {
                "agnes"
            } else {
                platforms[i % platforms.len()]
            };
            // Quotes, unicode and spaces survive the round trip.
            (
                platform.to_owned(),
                format!("sk-{platform}-{i:04}-\"é ü\"-secret"),
            )
        })
        .collect()
}

/// Encrypts with Node's crypto, the original's way: `[{ct, iv, tag}]` in hex.
fn node_encrypt(plaintexts: &[String]) -> Vec<(String, String, String)> {
    let script = r#"
const crypto = require('crypto');
const key = Buffer.from(process.argv[1], 'hex');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = input.map((text) => {
  const iv = crypto.randomBytes(16);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(text, 'utf8'), c.final()]);
  return [ct.toString('hex'), iv.toString('hex'), c.getAuthTag().toString('hex')];
});
process.stdout.write(JSON.stringify(out));
"#;
    let mut child = Command::new("node")
        .args(["-e", script, OLD_KEY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("Node.js is needed to make the original's encrypted fixture");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(plaintexts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn make_old_install(root: &Path) {
    let data = root.join("server/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        root.join(".env"),
        format!("PORT=3001\nENCRYPTION_KEY={OLD_KEY}\n"),
    )
    .unwrap();
    let conn = rusqlite::Connection::open(data.join("freeapi.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE api_keys (id INTEGER PRIMARY KEY AUTOINCREMENT, platform TEXT NOT NULL, label TEXT,
             encrypted_key TEXT NOT NULL, iv TEXT NOT NULL, auth_tag TEXT NOT NULL, status TEXT DEFAULT 'unknown',
             enabled INTEGER DEFAULT 1, created_at TEXT, last_checked_at TEXT, base_url TEXT, model_scope_json TEXT);
         CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, platform TEXT, model_id TEXT, key_id INTEGER,
             status TEXT, input_tokens INTEGER, output_tokens INTEGER, latency_ms INTEGER, ttfb_ms INTEGER,
             error TEXT, created_at TEXT, requested_model TEXT, request_type TEXT);
         CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);",
    )
    .unwrap();
    let keys = fixture_keys();
    let secrets: Vec<String> = keys.iter().map(|(_, s)| s.clone()).collect();
    let sealed = node_encrypt(&secrets);
    for (i, ((platform, _), (ct, iv, tag))) in keys.iter().zip(sealed).enumerate() {
        let base_url = (platform == "custom").then(|| format!("http://10.0.0.{}:8080/v1", i % 250));
        let scope = (i % 3 == 0).then(|| format!("[\"model-{i}\",\"model-x\"]"));
        conn.execute(
            "INSERT INTO api_keys (platform, label, encrypted_key, iv, auth_tag, enabled, base_url, model_scope_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![platform, format!("key {i}"), ct, iv, tag, i64::from(i % 10 != 0), base_url, scope],
        )
        .unwrap();
    }
    for i in 0..HISTORY {
        conn.execute(
            "INSERT INTO requests (platform, model_id, key_id, status, input_tokens, output_tokens, latency_ms,
             ttfb_ms, error, created_at, requested_model, request_type)
             VALUES ('groq', 'llama-3.3-70b-versatile', ?1, ?2, 10, 20, 300, 120, ?3, ?4, NULL, 'chat')",
            rusqlite::params![
                (i % KEYS) as i64 + 1,
                if i % 7 == 0 { "error" } else { "success" },
                (i % 7 == 0).then_some("Groq API error 429: rate limited"),
                format!("2026-06-{:02} 10:{:02}:00", 1 + i % 28, i % 60),
            ],
        )
        .unwrap();
    }
}

fn args(old: &Path, new_data: &Path, extra: &[&str]) -> MigrateArgs {
    let mut argv = vec![
        "freellmapi".to_owned(),
        "migrate-from-old".to_owned(),
        old.display().to_string(),
        "--data-dir".to_owned(),
        new_data.display().to_string(),
        "--admin-password".to_owned(),
        "migration-test-password".to_owned(),
    ];
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    match Cli::try_parse_from(argv).unwrap().action() {
        freellmapi::cli::Action::MigrateFromOld(args) => args,
        other => panic!("{other:?}"),
    }
}

async fn open_new(data: &Path) -> store::Store {
    let (cipher, _) = store::resolve_encryption_key(None, data).unwrap();
    store::Store::open(
        &format!("sqlite://{}", store::default_sqlite_path(data).display()),
        cipher,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn keys_and_history_of_the_node_original_are_imported_once_and_decrypt_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    make_old_install(&old);
    let db = old.join("server/data/freeapi.db");
    let before = std::fs::read(&db).unwrap();

    // A wrong key is found before anything is written.
    let wrong_data = dir.path().join("wrong");
    let err =
        freellmapi::migrate_old::run(&args(&old, &wrong_data, &["--old-key", &"ab".repeat(32)]))
            .await
            .unwrap_err();
    assert!(format!("{err:#}").contains("does not decrypt"), "{err:#}");
    assert!(
        !store::default_sqlite_path(&wrong_data).exists(),
        "nothing created on a wrong key"
    );

    let data = dir.path().join("new");
    let report = freellmapi::migrate_old::run(&args(&old, &data, &["--with-history"]))
        .await
        .unwrap();
    let unsupported = fixture_keys().iter().filter(|(p, _)| p == "agnes").count();
    assert_eq!(report.keys_found, KEYS);
    assert_eq!(report.keys_imported, KEYS - unsupported);
    assert_eq!(report.keys_unsupported.len(), unsupported);
    assert_eq!(report.history_imported, HISTORY);
    assert!(
        report
            .to_string()
            .contains(&format!("imported {}", KEYS - unsupported)),
        "{report}"
    );

    let store = open_new(&data).await;
    let admin = store.first_admin().await.unwrap().unwrap();
    let rows = store.provider_keys_of(&admin.id).await.unwrap();
    assert_eq!(rows.len(), KEYS - unsupported);
    let expected: std::collections::HashMap<String, String> = fixture_keys()
        .into_iter()
        .enumerate()
        .map(|(i, (_, secret))| (format!("key {i}"), secret))
        .collect();
    for row in &rows {
        let i: usize = row.label.strip_prefix("key ").unwrap().parse().unwrap();
        assert_eq!(
            store.reveal(row).unwrap().as_deref(),
            Some(expected[&row.label].as_str())
        );
        assert_eq!(row.enabled, !i.is_multiple_of(10), "{}", row.label);
        if i.is_multiple_of(3) {
            assert_eq!(row.models, vec![format!("model-{i}"), "model-x".to_owned()]);
        }
        match row.platform.as_str() {
            "custom" => assert_eq!(
                row.base_url.as_deref(),
                Some(format!("http://10.0.0.{}:8080/v1", i % 250).as_str())
            ),
            "zai" => assert_eq!(
                row.base_url.as_deref(),
                Some("https://open.bigmodel.cn/api/paas/v4")
            ),
            _ => assert_eq!(row.base_url, None),
        }
    }
    let history = store.recent_requests(&admin.id, 1000).await.unwrap();
    assert_eq!(history.len(), HISTORY);
    // Each row points at its key's new id, unless that key was not imported.
    let keys = fixture_keys();
    let linked = (0..HISTORY).filter(|i| keys[i % KEYS].0 != "agnes").count();
    assert_eq!(
        history
            .iter()
            .filter(|r| r["provider_key_id"].is_string())
            .count(),
        linked
    );
    let errors = history.iter().filter(|r| r["status"] == "error").count();
    assert_eq!(errors, (0..HISTORY).filter(|i| i % 7 == 0).count());
    let june_first = history
        .iter()
        .find(|r| r["id"] == "legacy-1")
        .expect("old ids are kept, prefixed");
    assert_eq!(
        june_first["created_at"], 1_780_308_000_000_i64,
        "2026-06-01 10:00:00 UTC"
    );
    store.close().await;

    // Again: nothing twice.
    let report = freellmapi::migrate_old::run(&args(&old, &data, &["--with-history"]))
        .await
        .unwrap();
    assert_eq!(report.keys_imported, 0);
    assert_eq!(report.keys_already_present, KEYS - unsupported);
    assert!(report.history_already_present);
    let store = open_new(&data).await;
    assert_eq!(
        store.provider_keys_of(&admin.id).await.unwrap().len(),
        KEYS - unsupported
    );
    assert_eq!(
        store.recent_requests(&admin.id, 1000).await.unwrap().len(),
        HISTORY
    );
    store.close().await;

    // The old database was never written.
    assert_eq!(std::fs::read(&db).unwrap(), before);
}
