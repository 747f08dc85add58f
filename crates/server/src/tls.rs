//! TLS: the configured certificate, or a self-signed one generated into
//! `<data_dir>/tls/` on first start so STARTTLS works at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("TLS: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS: certificate and key do not fit together: {0}")]
    Config(String),
}

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
    let (cert_path, key_path, generated) = match configured {
        Some((c, k)) => (c.to_path_buf(), k.to_path_buf(), false),
        None => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let fresh = !c.exists() || !k.exists();
            if fresh {
                generate(&dir, &c, &k, hostname)?;
            }
            (c, k, fresh)
        }
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok((
        TlsAcceptor::from(Arc::new(config)),
        TlsSource {
            cert: cert_path,
            generated,
        },
    ))
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

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            message: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Pem {
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
    }
}
