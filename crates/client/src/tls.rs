//! TLS for the client: what was negotiated, the server's certificate chain,
//! and whether that chain verifies for the host name.
//!
//! A diagnostic must see a server with a self-signed or expired certificate
//! and say so, rather than fail to connect. So the verifier here runs the
//! real WebPKI verification (rustls's `WebPkiServerVerifier`), records its
//! verdict, and then lets the handshake go on; the handshake signatures are
//! still checked, so the peer does hold the key of the certificate it shows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::certificate::CertificateSummary;

/// Where trust anchors come from when none are given: the system bundle of
/// Debian/Ubuntu, Fedora/RHEL, Alpine/macOS-style layouts, or `SSL_CERT_FILE`.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Trust anchors for verification.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    /// Also read the system bundle (`SSL_CERT_FILE`, else the first of
    /// [`SYSTEM_BUNDLES`] that exists).
    pub system: bool,
    /// Extra PEM files (a private CA, a self-signed server's own certificate).
    pub files: Vec<PathBuf>,
}

impl TrustAnchors {
    /// The system bundle only.
    pub fn system() -> Self {
        TrustAnchors {
            system: true,
            files: Vec::new(),
        }
    }

    /// The store, and a note of where it came from (or why it is empty).
    fn load(&self) -> (RootCertStore, String) {
        let mut store = RootCertStore::empty();
        let mut sources = Vec::new();
        let mut paths: Vec<PathBuf> = Vec::new();
        if self.system {
            match std::env::var_os("SSL_CERT_FILE") {
                Some(p) => paths.push(PathBuf::from(p)),
                None => {
                    if let Some(p) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
                        paths.push(p.to_path_buf());
                    }
                }
            }
        }
        paths.extend(self.files.iter().cloned());
        for path in paths {
            let Ok(iter) = CertificateDer::pem_file_iter(&path) else {
                sources.push(format!("{} (unreadable)", path.display()));
                continue;
            };
            let (added, _ignored) = store.add_parsable_certificates(iter.flatten());
            sources.push(format!("{} ({added} anchors)", path.display()));
        }
        let note = if sources.is_empty() {
            "no trust anchors: no system bundle found".to_string()
        } else {
            sources.join(", ")
        };
        (store, note)
    }
}

/// Whether the server's chain verifies for the host name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Verification {
    /// Chains to a trust anchor and names the host.
    Verified,
    /// Does not verify; the reason as rustls gives it (unknown issuer,
    /// expired, not valid for the name ...). The connection was made anyway.
    Failed(String),
    /// Not checked (no trust anchors).
    NotChecked(String),
}

impl Verification {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verification::Verified)
    }
}

/// What a TLS session negotiated and showed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The name verified against (SNI sent when it is a DNS name).
    pub server_name: String,
    /// The chain as the server sent it, end entity first. A certificate
    /// this reader cannot parse appears with its error as the subject.
    pub certificates: Vec<CertificateSummary>,
    pub verification: Verification,
    /// Where the trust anchors came from.
    pub trust_anchors: String,
}

/// Records the real verifier's verdict, then accepts.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    no_anchors: String,
    verdict: Arc<Mutex<Option<Verification>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.inner {
            Some(v) => {
                match v.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(_) => Verification::Verified,
                    Err(e) => Verification::Failed(e.to_string()),
                }
            }
            None => Verification::NotChecked(self.no_anchors.clone()),
        };
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The verifier's verdict, filled in during the handshake.
pub(crate) type VerdictSlot = Arc<Mutex<Option<Verification>>>;

/// A client config whose verifier records into the returned slot, and a
/// note of where the trust anchors came from.
pub(crate) fn client_config(
    anchors: &TrustAnchors,
) -> Result<(Arc<rustls::ClientConfig>, VerdictSlot, String), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (store, note) = anchors.load();
    let inner = if store.is_empty() {
        None
    } else {
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .ok()
    };
    let verdict = Arc::new(Mutex::new(None));
    let verifier = RecordingVerifier {
        inner,
        provider: provider.clone(),
        no_anchors: note.clone(),
        verdict: verdict.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), verdict, note))
}

/// A client config for a server whose certificate is not to be checked (a
/// loopback benchmark, a self-signed test server): no trust anchors, so the
/// chain is recorded as not checked and accepted; the handshake's signatures
/// are still verified.
pub fn unverified_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    client_config(&TrustAnchors::default()).map(|(config, _, _)| config)
}

/// The facts of an established connection.
pub(crate) fn describe(
    conn: &rustls::ClientConnection,
    server_name: &str,
    verdict: &Mutex<Option<Verification>>,
    anchors: String,
) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "unknown".to_string());
    let certificates = conn
        .peer_certificates()
        .unwrap_or(&[])
        .iter()
        .map(|der| {
            CertificateSummary::from_der(der).unwrap_or_else(|e| CertificateSummary {
                subject: e.to_string(),
                issuer: String::new(),
                not_before: String::new(),
                not_after: String::new(),
                not_after_unix: 0,
                dns_names: Vec::new(),
            })
        })
        .collect();
    let verification = verdict
        .lock()
        .ok()
        .and_then(|v| v.clone())
        .unwrap_or_else(|| Verification::NotChecked("no certificate was presented".into()));
    TlsInfo {
        version,
        cipher_suite,
        server_name: server_name.to_string(),
        certificates,
        verification,
        trust_anchors: anchors,
    }
}
