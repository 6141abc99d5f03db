//! Encryption at rest (AES-256-GCM, fresh 96-bit nonce per value), the encryption-key file, password hashing
//! (argon2id) and token hashing.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::StoreError;

const FORMAT_PREFIX: &str = "v1:";
const KEY_FILE: &str = "encryption.key";

/// The value cipher. `Debug` never prints the key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            aead: Aes256Gcm::new(key.into()),
        }
    }

    /// Parses `ENCRYPTION_KEY`: exactly 64 hex characters.
    pub fn from_hex(hex_key: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| StoreError::BadEncryptionKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| StoreError::BadEncryptionKey)?;
        Ok(Self::new(&key))
    }

    pub fn encrypt(&self, plaintext: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| StoreError::Crypto)?;
        let mut blob = Vec::with_capacity(12 + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{FORMAT_PREFIX}{}", B64.encode(blob)))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, StoreError> {
        let encoded = stored
            .strip_prefix(FORMAT_PREFIX)
            .ok_or(StoreError::Crypto)?;
        let blob = B64.decode(encoded).map_err(|_| StoreError::Crypto)?;
        if blob.len() < 12 + 16 {
            return Err(StoreError::Crypto);
        }
        let (nonce, ciphertext) = blob.split_at(12);
        let plain = self
            .aead
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| StoreError::Crypto)?;
        String::from_utf8(plain).map_err(|_| StoreError::Crypto)
    }
}

/// Where the encryption key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    KeyFile(PathBuf),
    /// Generated now and written to this file (0600).
    Generated(PathBuf),
}

/// Resolves the encryption key: `ENCRYPTION_KEY` if set, else `<data_dir>/encryption.key`, else a new random key
/// written to that file with mode 0600. A key given in the environment is validated (64 hex characters).
pub fn resolve_encryption_key(
    from_env: Option<&str>,
    data_dir: &Path,
) -> Result<(Cipher, KeySource), StoreError> {
    if let Some(hex_key) = from_env.map(str::trim).filter(|k| !k.is_empty()) {
        return Ok((Cipher::from_hex(hex_key)?, KeySource::Environment));
    }
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let cipher =
                Cipher::from_hex(&text).map_err(|_| StoreError::BadKeyFile(path.clone()))?;
            return Ok((cipher, KeySource::KeyFile(path)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StoreError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    write_private_file(&path, hex::encode(key).as_bytes())?;
    Ok((Cipher::new(&key), KeySource::Generated(path)))
}

/// Writes a file readable by the owner only, atomically (temp file + rename), refusing to replace an existing one.
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    // hard_link fails if the target exists, so a key file is never overwritten.
    std::fs::hard_link(&tmp, path).map_err(io)?;
    std::fs::remove_file(&tmp).map_err(io)?;
    Ok(())
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least 8 characters")]
    TooShort,
    #[error("password must be at most 256 characters")]
    TooLong,
    #[error("password hashing failed")]
    Hashing,
}

/// argon2id with one of OWASP's recommended parameter sets (m = 7 MiB, t = 5, p = 1: the same strength as
/// 19 MiB / t = 2 with a third of the memory, which keeps the gateway's peak memory low during logins), a random
/// salt, in PHC string format. Verification reads the parameters from the stored hash.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < 8 {
        return Err(PasswordError::TooShort);
    }
    if password.len() > 256 {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let params = argon2::Params::new(7 * 1024, 5, 1, None).map_err(|_| PasswordError::Hashing)?;
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hashing)
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

const EXPORT_FORMAT: &str = "freellmapi-key-export";
const EXPORT_VERSION: u32 = 1;
const EXPORT_AAD: &[u8] = b"freellmapi-key-export v1";

/// The envelope of an exported key file. Everything but `ciphertext` is public: the KDF parameters and salt, the
/// nonce. The header is authenticated as associated data of the AES-256-GCM ciphertext.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEnvelope {
    format: String,
    version: u32,
    kdf: ExportKdf,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportKdf {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

fn export_key(password: &str, kdf: &ExportKdf) -> Result<[u8; 32], StoreError> {
    // Bounds, so a crafted file cannot make an import burn the server's memory or CPU.
    if kdf.algorithm != "argon2id"
        || !(8 * 1024..=256 * 1024).contains(&kdf.memory_kib)
        || !(1..=10).contains(&kdf.iterations)
        || !(1..=4).contains(&kdf.parallelism)
    {
        return Err(StoreError::Crypto);
    }
    let salt = B64.decode(&kdf.salt).map_err(|_| StoreError::Crypto)?;
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|_| StoreError::Crypto)?;
    let mut key = [0u8; 32];
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &salt, &mut key)
        .map_err(|_| StoreError::Crypto)?;
    Ok(key)
}

/// Encrypts `plaintext` under a key derived from `password` (argon2id, random 16-byte salt; AES-256-GCM, random
/// nonce) into a versioned JSON file. Independent of `ENCRYPTION_KEY`, so it opens on any instance.
pub fn seal_with_password(password: &str, plaintext: &[u8]) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let kdf = ExportKdf {
        algorithm: "argon2id".into(),
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
        salt: B64.encode(salt),
    };
    let key = export_key(password, &kdf)?;
    let ciphertext = Aes256Gcm::new(&key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            aes_gcm::aead::Payload {
                msg: plaintext,
                aad: EXPORT_AAD,
            },
        )
        .map_err(|_| StoreError::Crypto)?;
    serde_json::to_string_pretty(&ExportEnvelope {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        kdf,
        cipher: "aes-256-gcm".into(),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    })
    .map_err(|_| StoreError::Crypto)
}

/// Why an export file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportFileError {
    #[error("this is not a FreeLLMAPI key export file (or it is of a newer version)")]
    Format,
    #[error("wrong password, or the file was altered")]
    Decrypt,
}

/// Opens a file made by [`seal_with_password`].
pub fn open_with_password(password: &str, file: &str) -> Result<Vec<u8>, ExportFileError> {
    let envelope: ExportEnvelope =
        serde_json::from_str(file).map_err(|_| ExportFileError::Format)?;
    if envelope.format != EXPORT_FORMAT
        || envelope.version != EXPORT_VERSION
        || envelope.cipher != "aes-256-gcm"
    {
        return Err(ExportFileError::Format);
    }
    let nonce = B64
        .decode(&envelope.nonce)
        .ok()
        .filter(|n| n.len() == 12)
        .ok_or(ExportFileError::Format)?;
    let ciphertext = B64
        .decode(&envelope.ciphertext)
        .map_err(|_| ExportFileError::Format)?;
    let key = export_key(password, &envelope.kdf).map_err(|_| ExportFileError::Format)?;
    Aes256Gcm::new(&key.into())
        .decrypt(
            Nonce::from_slice(&nonce),
            aes_gcm::aead::Payload {
                msg: &ciphertext,
                aad: EXPORT_AAD,
            },
        )
        .map_err(|_| ExportFileError::Decrypt)
}

/// SHA-256 of a token, hex. Gateway keys and session tokens are stored and looked up this way.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// `abcd…wxyz` for long secrets, `…yz` for short ones, nothing for very short ones.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    match chars.len() {
        0 => String::new(),
        n if n >= 12 => format!(
            "{}…{}",
            chars[..4].iter().collect::<String>(),
            chars[n - 4..].iter().collect::<String>()
        ),
        n if n >= 6 => format!("…{}", chars[n - 2..].iter().collect::<String>()),
        _ => "…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let c = Cipher::new(&[7u8; 32]);
        let a = c.encrypt("gsk_secret").unwrap();
        let b = c.encrypt("gsk_secret").unwrap();
        assert_ne!(a, b);
        assert!(!a.contains("gsk_secret"));
        assert_eq!(c.decrypt(&a).unwrap(), "gsk_secret");
    }

    #[test]
    fn wrong_key_and_tampering_fail() {
        let a = Cipher::new(&[1u8; 32]).encrypt("x").unwrap();
        assert!(Cipher::new(&[2u8; 32]).decrypt(&a).is_err());
        let mut tampered = a.clone();
        tampered.pop();
        tampered.push('A');
        assert!(Cipher::new(&[1u8; 32]).decrypt(&tampered).is_err());
    }

    #[test]
    fn env_key_must_be_64_hex() {
        assert!(Cipher::from_hex(&"ab".repeat(32)).is_ok());
        assert!(Cipher::from_hex("abcd").is_err());
        assert!(Cipher::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn key_file_is_generated_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, src) = resolve_encryption_key(None, dir.path()).unwrap();
        assert!(matches!(src, KeySource::Generated(_)));
        let (c2, src) = resolve_encryption_key(None, dir.path()).unwrap();
        assert!(matches!(src, KeySource::KeyFile(_)));
        assert_eq!(c2.decrypt(&c1.encrypt("v").unwrap()).unwrap(), "v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse!", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn export_files_round_trip_and_refuse_wrong_passwords() {
        let file = seal_with_password("export-pass", b"secret payload").unwrap();
        assert!(!file.contains("secret payload"));
        assert_eq!(
            open_with_password("export-pass", &file).unwrap(),
            b"secret payload"
        );
        assert_eq!(
            open_with_password("other-pass", &file),
            Err(ExportFileError::Decrypt)
        );
        let other = seal_with_password("export-pass", b"secret payload").unwrap();
        assert_ne!(file, other, "fresh salt and nonce");
        let tampered = file.replace("\"version\": 1", "\"version\": 2");
        assert_eq!(
            open_with_password("export-pass", &tampered),
            Err(ExportFileError::Format)
        );
        assert_eq!(
            open_with_password("export-pass", "{}"),
            Err(ExportFileError::Format)
        );
    }

    #[test]
    fn masks() {
        assert_eq!(mask_secret("gsk_abcdefghijkl"), "gsk_…ijkl");
        assert_eq!(mask_secret("abcdefg"), "…fg");
        assert_eq!(mask_secret("abc"), "…");
    }
}
