//! TLS: the configured certificate, or a self-signed one generated into
//! `<data_dir>/tls/` on first start so STARTTLS works at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS problem. Each names the file and what it is: the config key
/// (`tls.cert`, `tls.key`) for a configured pair, or the generated pair.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS: {what} {path}: cannot read: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {what} {path}: {message}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("TLS: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS: {what} {path} does not fit the certificate in {cert}: {message}")]
    Mismatch {
        what: &'static str,
        path: PathBuf,
        cert: PathBuf,
        message: String,
    },
    #[error("TLS: {0}")]
    Config(String),
}

/// The configured certificate chain, `[tls] cert`.
pub const CERT_KEY: &str = "key `tls.cert`";
/// The configured private key, `[tls] key`.
pub const KEY_KEY: &str = "key `tls.key`";
const GENERATED_CERT: &str = "the generated certificate";
const GENERATED_KEY: &str = "the generated key";

/// Where the certificate came from, for the start-up message.
#[derive(Debug, Clone)]
pub struct TlsSource {
    pub cert: PathBuf,
    pub generated: bool,
}

/// Builds the acceptor from `cert`/`key`, or from a self-signed pair in
/// `<data_dir>/tls/` (generated if missing) for `hostname`.
pub fn acceptor(
    configured: Option<(&Path, &Path)>,
    data_dir: &Path,
    hostname: &str,
) -> Result<(TlsAcceptor, TlsSource), TlsError> {
    let (cert_path, key_path, generated, names) = match configured {
        Some((c, k)) => (c.to_path_buf(), k.to_path_buf(), false, (CERT_KEY, KEY_KEY)),
        None => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let fresh = !c.exists() || !k.exists();
            if fresh {
                generate(&dir, &c, &k, hostname)?;
            }
            (c, k, fresh, (GENERATED_CERT, GENERATED_KEY))
        }
    };
    let config = server_config(&cert_path, &key_path, names)?;
    Ok((
        TlsAcceptor::from(config),
        TlsSource {
            cert: cert_path,
            generated,
        },
    ))
}

/// Reads and checks a configured pair (`[tls] cert` and `[tls] key`): both
/// readable, a PEM certificate chain and a PEM private key that fit together.
pub fn load_configured(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config(cert, key, (CERT_KEY, KEY_KEY))
}

/// Every problem of a configured pair: the certificate file and the key file
/// each on their own, then whether they fit together. Empty when the pair loads.
pub fn check_configured(cert: &Path, key: &Path) -> Vec<TlsError> {
    let mut problems = Vec::new();
    if let Err(e) = read_certs(cert, CERT_KEY) {
        problems.push(e);
    }
    if let Err(e) = read_key(key, KEY_KEY) {
        problems.push(e);
    }
    if problems.is_empty() {
        if let Err(e) = load_configured(cert, key) {
            problems.push(e);
        }
    }
    problems
}

fn server_config(
    cert_path: &Path,
    key_path: &Path,
    (cert_what, key_what): (&'static str, &'static str),
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certs(cert_path, cert_what)?;
    let key = read_key(key_path, key_what)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Mismatch {
            what: key_what,
            path: key_path.to_path_buf(),
            cert: cert_path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// The acceptor every new TLS handshake uses; replaced on a reload, so a
/// renewed certificate reaches the next client while sessions already in
/// TLS keep theirs.
pub struct SwappableAcceptor(RwLock<TlsAcceptor>);

impl SwappableAcceptor {
    /// Starts with `acceptor`.
    pub fn new(acceptor: TlsAcceptor) -> Self {
        Self(RwLock::new(acceptor))
    }

    /// The acceptor for a handshake starting now.
    pub fn current(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serves `acceptor` to every handshake from now on.
    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
    }

    /// Reads the pair again, as [`acceptor`] does, and serves it to every
    /// handshake from now on; on an error the pair in service stays.
    pub fn reread(
        &self,
        configured: Option<(&Path, &Path)>,
        data_dir: &Path,
        hostname: &str,
    ) -> Result<TlsSource, TlsError> {
        let (acceptor, source) = acceptor(configured, data_dir, hostname)?;
        self.replace(acceptor);
        Ok(source)
    }
}

fn generate(dir: &Path, cert: &Path, key: &Path, hostname: &str) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names = vec![hostname.to_string(), "localhost".to_string()];
    names.dedup();
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(
        "127.0.0.1"
            .parse()
            .map_err(|_| TlsError::Generate("ip".into()))?,
    ));
    params.subject_alt_names.push(rcgen::SanType::IpAddress(
        "::1".parse().map_err(|_| TlsError::Generate("ip".into()))?,
    ));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let key_pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_file(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert, certificate.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: "no PRIVATE KEY block found".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = acceptor(None, dir.path(), "mx.test").unwrap();
        assert!(first.generated);
        let pem = std::fs::read(&first.cert).unwrap();
        let (_, second) = acceptor(None, dir.path(), "mx.test").unwrap();
        assert!(!second.generated);
        assert_eq!(std::fs::read(&second.cert).unwrap(), pem);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn missing_configured_cert_names_the_path() {
        let e = acceptor(
            Some((
                Path::new("/nonexistent/c.pem"),
                Path::new("/nonexistent/k.pem"),
            )),
            Path::new("/tmp"),
            "x",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("/nonexistent/c.pem"), "{e}");
        assert!(e.contains("tls.cert"), "{e}");
    }

    #[test]
    fn a_key_that_is_not_pem_names_tls_key_and_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let (_, generated) = acceptor(None, dir.path(), "mx.test").unwrap();
        let bad = dir.path().join("bad-key.pem");
        std::fs::write(&bad, "not a key\n").unwrap();
        let e = load_configured(&generated.cert, &bad)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("tls.key") && e.contains("bad-key.pem"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let (_, first) = acceptor(None, one.path(), "mx.test").unwrap();
        acceptor(None, two.path(), "mx.test").unwrap();
        let other_key = two.path().join("tls/key.pem");
        let e = load_configured(&first.cert, &other_key)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("tls.key") && e.contains(&other_key.display().to_string()),
            "{e}"
        );
    }
}
