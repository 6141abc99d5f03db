//! The certificates outbound TLS trusts: the bundled web roots (so a bare container still reaches the public
//! providers), the platform's roots (the system store, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, as OpenSSL
//! reads them), and the PEM files named in `EXTRA_CA_CERTS` (an internal CA, a TLS-inspecting corporate proxy).
//! Loaded once at start-up into one TLS configuration that every outbound client shares: direct and proxied
//! upstream calls, key checks, model discovery and proxy health probes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The loaded trust store, and what it was made of (for the start-up log line).
#[derive(Clone)]
pub struct TrustStore {
    config: Arc<ClientConfig>,
    pub bundled: usize,
    pub platform: usize,
    pub extra: usize,
    /// Problems reading the platform store (a missing `SSL_CERT_FILE`, an unreadable file in `SSL_CERT_DIR`):
    /// reported, not fatal, since the bundled roots still apply.
    pub platform_errors: Vec<String>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TrustStore {{ bundled: {}, platform: {}, extra: {} }}",
            self.bundled, self.platform, self.extra
        )
    }
}

impl TrustStore {
    /// Loads every source. A file of `extra` that cannot be read or holds no certificate is an error: it was asked
    /// for by name, and silently trusting less than configured would fail later, far from the cause.
    pub fn load(extra: &[PathBuf]) -> Result<Self, String> {
        let mut base = Base::read();
        let mut added = 0;
        for path in extra {
            for cert in read_pem_certs(path)? {
                base.roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
                added += 1;
            }
        }
        Ok(base.into_store(added))
    }

    /// The bundled and platform roots without extra files, loaded once per process (the default of
    /// [`crate::config::ServerConfig`], and what tools use).
    pub fn platform() -> Self {
        static PLATFORM: std::sync::OnceLock<TrustStore> = std::sync::OnceLock::new();
        PLATFORM.get_or_init(|| Base::read().into_store(0)).clone()
    }

    /// A copy of the TLS configuration (ALPN is set by whoever uses it).
    pub fn client_config(&self) -> ClientConfig {
        (*self.config).clone()
    }
}

/// The bundled and platform roots.
struct Base {
    roots: RootCertStore,
    bundled: usize,
    platform: usize,
    errors: Vec<String>,
}

impl Base {
    fn read() -> Self {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let bundled = roots.len();
        let native = rustls_native_certs::load_native_certs();
        let (platform, _) = roots.add_parsable_certificates(native.certs);
        let errors = native.errors.iter().map(|e| e.to_string()).collect();
        Self {
            roots,
            bundled,
            platform,
            errors,
        }
    }

    fn into_store(self, extra: usize) -> TrustStore {
        // ring is the one crypto provider compiled in; making it the process default lets the builder pick it
        // (an `Err` only says a default was installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig::builder()
            .with_root_certificates(self.roots)
            .with_no_client_auth();
        TrustStore {
            config: Arc::new(config),
            bundled: self.bundled,
            platform: self.platform,
            extra,
            platform_errors: self.errors,
        }
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read CA certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no `BEGIN CERTIFICATE` block found",
            path.display()
        ));
    }
    Ok(certs)
}

/// `EXTRA_CA_CERTS`: file paths separated by `,` or the platform's path separator (`:`).
pub fn parse_path_list(value: &str) -> Vec<PathBuf> {
    value
        .split([',', ':'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_roots_are_always_there_and_bad_extra_files_are_errors() {
        let store = TrustStore::load(&[]).unwrap();
        assert!(store.bundled > 100, "{store:?}");
        assert_eq!(store.extra, 0);
        let dir = std::env::temp_dir().join(format!("freellmapi-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = TrustStore::load(std::slice::from_ref(&empty)).unwrap_err();
        assert!(err.contains("no `BEGIN CERTIFICATE`"), "{err}");
        let missing = dir.join("missing.pem");
        let err = TrustStore::load(&[missing]).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn path_lists() {
        assert_eq!(
            parse_path_list(" /a.pem, /b.pem:/c.pem ,"),
            vec![
                PathBuf::from("/a.pem"),
                PathBuf::from("/b.pem"),
                PathBuf::from("/c.pem")
            ]
        );
        assert!(parse_path_list("").is_empty());
    }
}
