//! TLS termination with rustls: the certificate and key from PEM files,
//! ALPN offering HTTP/2 and HTTP/1.1, and the handshake's facts for
//! `conn.tls.*` (the client certificate included); and the configurations
//! `terminate-tls` asks for (versions, ALPN, mutual TLS), built once per
//! distinct termination and kept.

use std::path::Path;
use std::sync::Arc;

use portcullis_actions::Tls;
use portcullis_actions::certificate::Certificate;
use portcullis_actions::terminate_tls::{self, ClientAuth, TlsTermination, TlsVersion};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;

/// An endpoint's certificate chain and key (`--tls-cert`, `--tls-key`).
#[derive(Debug)]
pub(crate) struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The leaf, parsed once, for `conn.tls.server.*`.
    leaf: Option<Arc<Certificate>>,
}

impl Identity {
    /// The certificate served, parsed.
    pub(crate) fn leaf(&self) -> Option<Arc<Certificate>> {
        self.leaf.clone()
    }
}

/// The leaf of a chain, parsed.
fn leaf(certs: &[CertificateDer<'_>]) -> Option<Arc<Certificate>> {
    certs
        .first()
        .and_then(|der| Certificate::from_der(der))
        .map(Arc::new)
}

/// Builds the acceptor for an endpoint, and keeps its identity for the
/// `terminate-tls` actions that bring none.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<(TlsAcceptor, Arc<Identity>), String> {
    let identity = identity(files)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), Arc::new(identity)))
}

fn identity(files: &TlsFiles) -> Result<Identity, String> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| read_error(&files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(&files.cert, e))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate in the file",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read_error(&files.key, e))?;
    let leaf = leaf(&certs);
    Ok(Identity { certs, key, leaf })
}

/// The acceptors `terminate-tls` asked for, by termination: a handshake
/// costs a lookup, not a configuration. At most [`MAX_TERMINATIONS`] are
/// kept (a policy whose certificate changes per connection would
/// otherwise grow it without end).
#[derive(Default)]
pub(crate) struct Terminations(std::sync::Mutex<Vec<(Arc<TlsTermination>, Served)>>);

/// How a termination serves: its acceptor and its certificate, parsed.
#[derive(Clone)]
pub(crate) struct Served {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) certificate: Option<Arc<Certificate>>,
}

const MAX_TERMINATIONS: usize = 64;

impl Terminations {
    /// The acceptor for `t`, with `default` as the certificate when `t`
    /// brings none.
    pub(crate) fn acceptor(
        &self,
        t: &Arc<TlsTermination>,
        default: Option<&Identity>,
    ) -> Result<Served, String> {
        let mut kept = match self.0.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        if let Some((_, a)) = kept.iter().find(|(k, _)| Arc::ptr_eq(k, t) || **k == **t) {
            return Ok(a.clone());
        }
        let (config, certificate) = server_config(t, default)?;
        let served = Served {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        };
        if kept.len() >= MAX_TERMINATIONS {
            kept.remove(0);
        }
        kept.push((t.clone(), served.clone()));
        Ok(served)
    }
}

/// The rustls configuration of a termination, and the certificate it
/// serves.
fn server_config(
    t: &TlsTermination,
    default: Option<&Identity>,
) -> Result<(ServerConfig, Option<Arc<Certificate>>), String> {
    use rustls::server::WebPkiClientVerifier;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = match (&t.certificate, &t.private_key) {
        (Some(cert), Some(key)) => {
            let certs = terminate_tls::certificates(cert);
            if certs.is_empty() {
                return Err("`server_certificate` holds no PEM certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|e| format!("`server_private_key`: {e}"))?;
            (certs, key)
        }
        _ => match default {
            Some(id) => (id.certs.clone(), id.key.clone_key()),
            None => {
                return Err(
                    "`terminate-tls` brings no certificate and the endpoint has none (`--tls-cert`)"
                        .into(),
                );
            }
        },
    };
    let served = leaf(&certs);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::V1_2, &rustls::version::TLS12),
        (TlsVersion::V1_3, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = if t.client_auth == ClientAuth::None {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for pem in &t.client_cas {
            for cert in terminate_tls::certificates(pem) {
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate authority: {e}"))?;
            }
        }
        if roots.is_empty() {
            return Err("`mutual_tls_certificate_authorities` holds no certificate".into());
        }
        let roots = Arc::new(roots);
        let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = match t.client_auth {
            ClientAuth::RequireAny => Arc::new(AnyClientCert {
                provider: provider.clone(),
                hints: roots.subjects(),
            }),
            ClientAuth::Request => {
                WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| e.to_string())?
            }
            ClientAuth::RequireAndVerify | ClientAuth::None => {
                WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?
            }
        };
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key: {e}"))?;
    config.alpn_protocols = t.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok((config, served))
}

/// `require-any`: a client certificate is required, and the handshake's
/// signature must verify with its key (so the client holds it), but its
/// chain is not checked: the policy decides on `conn.tls.client.*`.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
    hints: Vec<rustls::DistinguishedName>,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// What the handshake agreed, for `conn.tls.*`: `server` is the
/// certificate served, `by_policy` whether `terminate-tls` chose it.
pub(crate) fn facts<IO>(
    stream: &TlsStream<IO>,
    server: Option<Arc<Certificate>>,
    by_policy: bool,
) -> Tls {
    let (_, conn) = stream.get_ref();
    Tls {
        server,
        by_policy,
        version: conn
            .protocol_version()
            .map(|v| match v {
                // As ngrok writes it (`conn.tls.version < '1.3'` in its
                // enforce-TLS example compares these strings).
                rustls::ProtocolVersion::TLSv1_3 => "1.3".to_owned(),
                rustls::ProtocolVersion::TLSv1_2 => "1.2".to_owned(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default(),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("")
            .to_owned(),
        sni: conn.server_name().map(str::to_owned),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| Certificate::from_der(der))
            .map(std::sync::Arc::new),
    }
}

/// Whether the handshake chose HTTP/2.
pub(crate) fn is_h2<IO>(stream: &TlsStream<IO>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// How upstreams reached over `https://` are verified.
#[derive(Clone, Debug, Default)]
pub struct UpstreamTls {
    /// Certificates (PEM) trusted besides the Mozilla roots: a private CA,
    /// or a development server's self-signed certificate.
    pub ca: Option<std::path::PathBuf>,
    /// Accept any certificate. For development only: the connection is
    /// encrypted but the upstream is not authenticated.
    pub insecure_skip_verify: bool,
}

/// The TLS client configuration for `https://` upstreams: certificates
/// verified against the Mozilla roots and `ca`, unless verification is
/// turned off. (hyper-rustls sets ALPN, `http/1.1`, from the versions the
/// connector enables.)
pub(crate) fn upstream_client(tls: &UpstreamTls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &tls.ca {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| read_error(path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| read_error(path, e))?;
            if certs.is_empty() {
                return Err(format!("{}: no certificate in the file", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// Accepts any server certificate, checking only that the handshake's
/// signatures are made by the key it presents.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
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
