//! TLS: the outbound client configuration (IPA `utils.create_ssl_context`), the
//! API server's configuration (manual TLS and auto-TLS, IPA `Application.start`,
//! `IronicPythonAgent._start_auto_tls`) and a TLS listener
//! for `axum::serve`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::Error;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `tls_min_version`: `1.2` → TLS 1.2 and 1.3; `1.3` → only 1.3.
pub fn protocol_versions(min: &str) -> &'static [&'static SupportedProtocolVersion] {
    static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    if min.trim() == "1.3" {
        TLS13_ONLY
    } else {
        rustls::ALL_VERSIONS
    }
}

/// Outbound TLS settings (Ironic API and inspection callbacks).
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Skip all verification (`insecure`).
    pub insecure: bool,
    /// CA bundle (`cafile`); system roots otherwise.
    pub cafile: Option<String>,
    /// Client certificate (`certfile`), used only with `keyfile`.
    pub certfile: Option<String>,
    /// Client key (`keyfile`).
    pub keyfile: Option<String>,
    /// `tls_min_version`.
    pub min_version: String,
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Tls(format!("reading certificates from {path}: {e}")))?
        .collect();
    let certs = certs.map_err(|e| Error::Tls(format!("parsing certificates in {path}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("no certificate found in {path}")));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::Tls(format!("reading private key from {path}: {e}")))
}

/// Accepts any server certificate (`insecure = true`), as IPA's
/// `verify=False`. Signatures are still checked for well-formedness.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Builds the rustls client configuration for outbound HTTPS.
pub fn client_config(opts: &ClientTls) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(protocol_versions(&opts.min_version))
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &opts.cafile {
            Some(path) => {
                for c in read_certs(path)? {
                    roots
                        .add(c)
                        .map_err(|e| Error::Tls(format!("CA certificate in {path}: {e}")))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    tracing::debug!("loading system CA certificates: {e}");
                }
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                tracing::debug!(added, "system CA certificates loaded");
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&opts.certfile, &opts.keyfile) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| Error::Tls(format!("client certificate {cert}: {e}"))),
        (Some(_), None) | (None, Some(_)) => {
            tracing::warn!(
                "certfile and keyfile must both be set; no client certificate is presented"
            );
            Ok(builder.with_no_client_auth())
        }
        (None, None) => Ok(builder.with_no_client_auth()),
    }
}

/// Curves allowed for the auto-TLS key (`tls_certificate_curve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384 (IPA's default).
    P384,
    /// NIST P-521.
    P521,
}

impl Curve {
    /// Parses `p256`/`p384`/`p521`.
    pub fn parse(s: &str) -> Option<Curve> {
        match s {
            "p256" => Some(Curve::P256),
            "p384" => Some(Curve::P384),
            "p521" => Some(Curve::P521),
            _ => None,
        }
    }
}

/// A self-signed certificate made by auto-TLS.
#[derive(Debug, Clone)]
pub struct AutoCert {
    /// Certificate, PEM (sent to Ironic as `agent_verify_ca`).
    pub cert_pem: String,
    /// PKCS#8 private key, PEM.
    pub key_pem: String,
}

/// DER of a critical-less-aware SubjectAlternativeName value holding one
/// iPAddress: `SEQUENCE { [7] IMPLICIT OCTET STRING }`.
fn san_ip_der(ip: IpAddr) -> Vec<u8> {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut inner = vec![0x87, bytes.len() as u8];
    inner.extend_from_slice(&bytes);
    let mut out = vec![0x30, inner.len() as u8];
    out.extend(inner);
    out
}

/// Generates the auto-TLS certificate (IPA
/// `tls_utils.generate_tls_certificate`): EC key on `curve`, subject = issuer =
/// `CN=<hostname>`, random 159-bit serial, notBefore = now − `clock_skew`,
/// notAfter = now + 30 days, one **critical** SubjectAlternativeName with the
/// advertised IP, no other extensions. The signature hash follows the curve
/// (SHA-256/384): the `ring` backend has no ECDSA-SHA512 and no P-521 signing,
/// so `p521` falls back to P-384 with a warning.
pub fn generate_auto_cert(
    hostname: &str,
    ip: IpAddr,
    curve: Curve,
    clock_skew: Duration,
) -> Result<AutoCert, Error> {
    let alg = match curve {
        Curve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Curve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Curve::P521 => {
            tracing::warn!("tls_certificate_curve p521 is not supported by this build; using p384");
            &rcgen::PKCS_ECDSA_P384_SHA384
        }
    };
    let key = rcgen::KeyPair::generate_for(alg)
        .map_err(|e| Error::Tls(format!("generating the TLS key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, hostname);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - clock_skew;
    params.not_after = now + Duration::from_secs(30 * 24 * 3600);
    // 159 random bits: 20 bytes with the top bit clear (positive INTEGER).
    let mut serial: Vec<u8> = (0..20).map(|_| fastrand::u8(..)).collect();
    serial[0] &= 0x7f;
    serial[0] |= 0x40;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.use_authority_key_identifier_extension = false;
    params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(Vec::new());
    let mut san = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 17], san_ip_der(ip));
    san.set_criticality(true);
    params.custom_extensions.push(san);
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Tls(format!("signing the TLS certificate: {e}")))?;
    Ok(AutoCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A rustls server configuration for the agent's API from PEM texts.
/// HTTP/1.1 only (what Ironic speaks); no client certificates.
pub fn server_config_from_pem(
    cert_pem: &str,
    key_pem: &str,
    min_version: &str,
) -> Result<Arc<ServerConfig>, Error> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect();
    let certs = certs.map_err(|e| Error::Tls(format!("server certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("server certificate: no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::Tls(format!("server key: {e}")))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(protocol_versions(min_version))
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("server certificate/key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Manual TLS: `tls_cert_file` + `tls_key_file`.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
    min_version: &str,
) -> Result<Arc<ServerConfig>, Error> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| Error::Tls(format!("reading {}: {e}", p.display())))
    };
    server_config_from_pem(&read(cert)?, &read(key)?, min_version)
}

/// A TLS listener for `axum::serve`: accepts TCP connections and performs
/// handshakes concurrently (a slow or failing client never blocks others;
/// failures are logged and dropped).
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Wraps a bound listener. Must be called inside a tokio runtime.
    pub fn new(
        listener: tokio::net::TcpListener,
        config: Arc<ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task only ends when aborted on drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
