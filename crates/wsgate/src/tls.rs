//! TLS: the certificate of `[gateway.tls]`, and for local development a CA made on the spot, a server certificate for the loopback names
//! it signs, and the CA handed to the function processes — so a handler that builds its
//! callback URL from the event (`https://{requestContext.domainName}/{stage}`) reaches the
//! gateway, over TLS, unchanged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The system's CA bundle on Debian-like systems, merged into the bundle handlers trust so their
/// calls to real services keep working.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// A TLS acceptor that can be logged.
#[derive(Clone)]
pub struct Acceptor(pub TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

/// Reads a PEM certificate chain and key: TLS 1.2 and 1.3 only (all rustls speaks), HTTP/1.1.
pub fn load(cert: &Path, key: &Path) -> Result<Acceptor, String> {
    use rustls::pki_types::pem::PemObject;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("the certificate and key do not work together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Acceptor(TlsAcceptor::from(Arc::new(config))))
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating or signing a certificate failed.
    #[error("cannot make the development certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificate.
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA bundle could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A development CA and the acceptor for its server certificate.
#[derive(Clone)]
pub struct DevTls {
    /// Accepts TLS connections with the server certificate.
    pub acceptor: TlsAcceptor,
    /// The CA certificate (PEM).
    pub ca_file: PathBuf,
    /// The system CAs plus ours (PEM), for handlers.
    pub bundle_file: PathBuf,
}

impl std::fmt::Debug for DevTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevTls")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl DevTls {
    /// Makes a CA and a certificate for `names` (plus localhost, 127.0.0.1 and ::1), and writes
    /// the CA and the bundle into `dir`.
    pub fn generate(dir: &Path, names: &[String]) -> Result<Self, TlsError> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "wsgate local development CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;

        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        for name in names {
            if !sans.contains(name) {
                sans.push(name.clone());
            }
        }
        let mut leaf = CertificateParams::new(sans)?;
        leaf.distinguished_name.push(DnType::CommonName, "wsgate");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let leaf_key = KeyPair::generate()?;
        let issuer = Issuer::new(ca, &ca_key);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    leaf_cert.der().clone(),
                    CertificateDer::from(ca_cert.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )?;
        // WebSocket upgrades are HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];

        let write = |path: &Path, text: &str| {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(path, text))
                .map_err(|source| TlsError::Write {
                    path: path.to_path_buf(),
                    source,
                })
        };
        let ca_file = dir.join("wsgate-dev-ca.pem");
        write(&ca_file, &ca_cert.pem())?;
        let mut bundle = SYSTEM_BUNDLES
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        bundle.push('\n');
        bundle.push_str(&ca_cert.pem());
        let bundle_file = dir.join("wsgate-dev-ca-bundle.pem");
        write(&bundle_file, &bundle)?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_file,
            bundle_file,
        })
    }

    /// The environment that makes handler processes trust the development CA: botocore
    /// (`AWS_CA_BUNDLE`), requests (`REQUESTS_CA_BUNDLE`), OpenSSL users (`SSL_CERT_FILE`) and
    /// Node (`NODE_EXTRA_CA_CERTS`, which adds to its own store).
    pub fn handler_env(&self) -> Vec<(String, String)> {
        let bundle = self.bundle_file.display().to_string();
        vec![
            ("AWS_CA_BUNDLE".into(), bundle.clone()),
            ("REQUESTS_CA_BUNDLE".into(), bundle.clone()),
            ("SSL_CERT_FILE".into(), bundle),
            (
                "NODE_EXTRA_CA_CERTS".into(),
                self.ca_file.display().to_string(),
            ),
        ]
    }
}
