//! TLS for the endpoint: a rustls server configuration (the *ring* provider, given explicitly so
//! that a graph where aws-lc-rs is also enabled changes nothing) from `tls_server_config` and
//! the bytes of the files it names.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::web_config::{ClientAuth, TlsSettings, TlsVersion};

/// The contents of the files `tls_server_config` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
    pub(crate) ca: Option<Vec<u8>>,
}

/// The *ring* provider. rustls 0.23.48 deprecates it because *ring* has no post-quantum key
/// exchange; its classical ones (X25519, P-256, P-384) are what every Prometheus release speaks
/// today, and choosing it keeps aws-lc (a C and assembly build) out of the graph.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration; `Err` says which file is wrong and how.
pub(crate) fn server_config(
    s: &TlsSettings,
    files: &TlsFiles,
) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file {}: {e}", s.cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "cert_file {}: no PEM certificate in it",
            s.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|e| {
        format!(
            "key_file {}: no usable PEM private key: {e}",
            s.key_file.display()
        )
    })?;
    let versions: Vec<&'static SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (s.min_version..=s.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match (s.client_auth, &files.ca, &s.client_ca_file) {
        (ClientAuth::None, _, _) => builder.with_no_client_auth(),
        (auth, Some(ca), Some(path)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| format!("client_ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("client_ca_file {}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("client_ca_file {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (_, _, _) => {
            // web_config::parse requires client_ca_file with these modes, and the loader reads it.
            debug_assert!(false, "client verification without a CA");
            return Err("tls_server_config: client_auth_type needs client_ca_file".into());
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "cert_file {} and key_file {}: {e}",
            s.cert_file.display(),
            s.key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
