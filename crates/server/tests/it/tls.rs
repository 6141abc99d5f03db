//! Outbound TLS to an upstream signed by a private CA (an internal endpoint, a TLS-inspecting proxy): refused with
//! the bundled and system roots alone, served once the CA is trusted through `EXTRA_CA_CERTS`. The certificates
//! are made by the `openssl` command for each run; the HTTPS upstream is a TLS terminator in front of the mock.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

use crate::harness::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a leaf for 127.0.0.1 signed by it (`leaf.pem`, `leaf.key`).
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=FreeLLMAPI test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

/// Terminates TLS on a loopback port and relays the bytes to `backend`.
async fn tls_front(dir: &Path, backend: std::net::SocketAddr) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// A gateway whose one key is the mock behind HTTPS with the certificates in `dir`.
async fn https_gateway(dir: &Path, trust: server::trust::TrustStore) -> Gateway {
    let mut config = fast_config();
    config.trust = trust;
    let gw = start_with(config, &[]).await;
    let port = tls_front(dir, gw.mock.addr()).await;
    add_key(
        &gw.state.store,
        &gw.user_id,
        &format!("https://127.0.0.1:{port}/ok/v1"),
        &["m"],
    )
    .await;
    gw.state.reload().await.unwrap();
    gw
}

#[tokio::test]
async fn an_upstream_signed_by_a_private_ca_is_refused_until_the_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());

    // Without the CA: the handshake fails (UnknownIssuer), which is a failed attempt, never a hang.
    let gw = https_gateway(dir.path(), server::trust::TrustStore::platform()).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_ne!(status, 200, "{body}");
    assert_eq!(gw.mock.hits("ok"), 0);
    gw.stop().await;

    // With it (as `EXTRA_CA_CERTS=ca.pem` loads it): served over HTTPS.
    let trust = server::trust::TrustStore::load(&[dir.path().join("ca.pem")]).unwrap();
    assert_eq!(trust.extra, 1);
    let gw = https_gateway(dir.path(), trust).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.mock.hits("ok"), 1);
    gw.stop().await;
}
