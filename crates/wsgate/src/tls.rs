//! TLS: the certificate of `[gateway.tls]`, and for local development a CA made on the spot, a server certificate for the loopback names
//! it signs, and the CA handed to the function processes — so a handler that builds its
//! callback URL from the event (`https://{requestContext.domainName}/{stage}`) reaches the
//! gateway, over TLS, unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tempfile::TempDir;
use tokio_rustls::TlsAcceptor;

use crate::scratch;

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
    /// [`DevTls::generate`] into a new private folder `wsgate-dev-XXXXXXXXXX` under the temporary
    /// directory (see [`scratch`]: made atomically, mode 0700, never one that was there before);
    /// the folder and the CA files go when the returned [`TempDir`] is dropped.
    pub fn in_private_dir(names: &[String]) -> Result<(Self, TempDir), TlsError> {
        let dir = scratch::private_dir("wsgate-dev-").map_err(|source| TlsError::Write {
            path: std::env::temp_dir(),
            source,
        })?;
        Ok((Self::generate(dir.path(), names)?, dir))
    }

    /// Makes a CA and a certificate for `names` (plus localhost, 127.0.0.1 and ::1), and writes
    /// the CA and the bundle into `dir`, which must exist and hold neither file yet.
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
        let issuer = Issuer::new(ca, ca_key);
        let ca_der = CertificateDer::from(ca_cert.der().to_vec());
        let default = leaf(sans, &issuer, &ca_der)?;
        let certs = DevCerts {
            default,
            issuer,
            ca_der,
            zones: std::sync::Mutex::new(HashMap::new()),
        };

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(certs));
        // WebSocket upgrades are HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];

        // Never through a symlink nor over a file already there.
        let write = |path: &Path, text: &str| {
            scratch::write_new(path, text.as_bytes()).map_err(|source| TlsError::Write {
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

/// How many `execute-api` zones get a certificate of their own; a name past that gets the
/// default certificate (and fails verification), so odd names cannot grow the cache.
const MAX_ZONES: usize = 64;

/// The development server certificates: one for the listening names, and one per
/// `execute-api.{region}.amazonaws.com` zone asked for, made on first use. A handler that
/// builds its callback URL as `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`
/// (redirected here by the bootstraps) is then served a certificate for that name, signed by
/// the CA it trusts.
struct DevCerts {
    default: Arc<CertifiedKey>,
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    zones: std::sync::Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for DevCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCerts").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for DevCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(zone) = hello.server_name().and_then(execute_api_zone) else {
            return Some(self.default.clone());
        };
        let mut zones = self
            .zones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = zones.get(&zone) {
            return Some(key.clone());
        }
        if zones.len() >= MAX_ZONES {
            return Some(self.default.clone());
        }
        match leaf(vec![format!("*.{zone}")], &self.issuer, &self.ca_der) {
            Ok(key) => {
                zones.insert(zone, key.clone());
                Some(key)
            }
            Err(error) => {
                tracing::warn!(%error, zone, "cannot make a development certificate");
                Some(self.default.clone())
            }
        }
    }
}

/// The zone `execute-api.{region}.amazonaws.com` (or `.amazonaws.com.cn`) of an API's default
/// host name `{apiId}.execute-api.{region}.amazonaws.com`, lowercased; `None` for other names.
pub fn execute_api_zone(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let (api, zone) = name.split_once('.')?;
    let rest = zone.strip_prefix("execute-api.")?;
    let (region, domain) = rest.split_once('.')?;
    let label = |s: &str| {
        !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let known = matches!(domain, "amazonaws.com" | "amazonaws.com.cn");
    (known && label(api) && label(region)).then(|| zone.to_owned())
}

/// A server certificate for `sans`, signed by the development CA, with the CA in its chain.
fn leaf(
    sans: Vec<String>,
    issuer: &Issuer<'static, KeyPair>,
    ca_der: &CertificateDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name.push(DnType::CommonName, "wsgate");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone(), ca_der.clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The attack on the folder `wsgate dev` used before: `{temp}/wsgate-dev-{pid}`, reused when
    /// it existed, symlinks followed. Another local user plants it (here: a symlink to a folder
    /// of theirs) before the gateway starts; nothing may be written through it.
    #[test]
    fn the_development_ca_goes_to_a_new_private_folder_never_a_planted_one() {
        let attacker = scratch::private_dir("wsgate-tls-test-attacker-").expect("attacker");
        let planted = std::env::temp_dir().join(format!("wsgate-dev-{}", std::process::id()));
        let _ = std::fs::remove_file(&planted);
        std::os::unix::fs::symlink(attacker.path(), &planted).expect("plant the symlink");

        let (first, first_dir) = DevTls::in_private_dir(&[]).expect("first");
        let (second, second_dir) = DevTls::in_private_dir(&[]).expect("second");
        let _ = std::fs::remove_file(&planted);

        assert_eq!(
            std::fs::read_dir(attacker.path()).expect("read").count(),
            0,
            "nothing written through the planted path"
        );
        assert_ne!(
            first_dir.path(),
            second_dir.path(),
            "a new folder every run"
        );
        for (tls, dir) in [(&first, &first_dir), (&second, &second_dir)] {
            assert_ne!(dir.path(), planted);
            let meta = std::fs::symlink_metadata(dir.path()).expect("metadata");
            assert!(meta.is_dir(), "a real folder, not a symlink");
            assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
            assert_eq!(tls.ca_file.parent(), Some(dir.path()));
            assert_eq!(tls.bundle_file.parent(), Some(dir.path()));
            let ca = std::fs::read_to_string(&tls.ca_file).expect("the CA");
            let bundle = std::fs::read_to_string(&tls.bundle_file).expect("the bundle");
            assert!(bundle.ends_with(&ca), "the bundle trusts this run's CA");
        }
        let gone = first_dir.path().to_path_buf();
        drop(first_dir);
        assert!(!gone.exists(), "removed when dropped");
    }

    #[test]
    fn generate_never_writes_over_a_file_already_there() {
        let dir = scratch::private_dir("wsgate-tls-test-").expect("dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("victim");
        std::os::unix::fs::symlink(&victim, dir.path().join("wsgate-dev-ca-bundle.pem"))
            .expect("symlink");
        assert!(matches!(
            DevTls::generate(dir.path(), &[]),
            Err(TlsError::Write { .. })
        ));
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    }

    #[test]
    fn only_default_execute_api_names_have_a_zone() {
        assert_eq!(
            execute_api_zone("Abc123.execute-api.eu-west-1.amazonaws.com").as_deref(),
            Some("execute-api.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            execute_api_zone("x.execute-api.cn-north-1.amazonaws.com.cn.").as_deref(),
            Some("execute-api.cn-north-1.amazonaws.com.cn")
        );
        for other in [
            "execute-api.us-east-1.amazonaws.com",
            "a.b.execute-api.us-east-1.amazonaws.com",
            "a.execute-api.us-east-1.amazonaws.com.evil.example",
            "a.execute-api.us_east.amazonaws.com",
            "dynamodb.us-east-1.amazonaws.com",
            "localhost",
        ] {
            assert_eq!(execute_api_zone(other), None, "{other}");
        }
    }
}
