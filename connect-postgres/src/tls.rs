//! TLS for both connections (queries and replication), with libpq's `sslmode` meanings:
//! `disable`, `prefer` (Debezium's default; TLS when the server offers it, unverified),
//! `require` (TLS, unverified), `verify-ca` (the chain must lead to `database.sslrootcert`)
//! and `verify-full` (and the certificate must name the host). `database.sslcert` and
//! `database.sslkey` add a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use connect_core::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// `database.sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS if the server offers it, without verification (also `allow`).
    #[default]
    Prefer,
    /// TLS, without verification.
    Require,
    /// TLS; the server's chain must lead to the root certificate.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's / Debezium's name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// TLS settings of the connections to PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `database.sslmode`.
    pub mode: SslMode,
    /// `database.sslrootcert`: PEM file of trusted CA certificates (needed to verify).
    pub root_cert: Option<PathBuf>,
    /// `database.sslcert`: PEM client certificate chain.
    pub client_cert: Option<PathBuf>,
    /// `database.sslkey`: PEM client private key.
    pub client_key: Option<PathBuf>,
}

impl TlsOptions {
    /// Checks the combination; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.mode.verifies() && self.root_cert.is_none() {
            return Err(Error::config(
                "database.sslrootcert",
                "verify-ca and verify-full need the CA certificate(s) to trust",
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(Error::config(
                "database.sslkey",
                "database.sslcert and database.sslkey go together",
            ));
        }
        Ok(())
    }

    /// The replication client's TLS settings for `host`.
    pub(crate) fn replication(&self, host: &str) -> pgwire_replication::TlsConfig {
        use pgwire_replication::SslMode as M;
        pgwire_replication::TlsConfig {
            mode: match self.mode {
                SslMode::Disable => M::Disable,
                SslMode::Prefer => M::Prefer,
                SslMode::Require => M::Require,
                SslMode::VerifyCa => M::VerifyCa,
                SslMode::VerifyFull => M::VerifyFull,
            },
            ca_pem_path: self.root_cert.clone(),
            // The client refuses verify-full to an IP address unless the name is given
            // explicitly; rustls then checks the certificate's IP addresses.
            sni_hostname: host
                .parse::<std::net::IpAddr>()
                .is_ok()
                .then(|| host.to_owned()),
            client_cert_pem_path: self.client_cert.clone(),
            client_key_pem_path: self.client_key.clone(),
        }
    }

    /// tokio-postgres's `sslmode` (verification is the connector's job).
    pub(crate) fn postgres_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }

    /// The rustls connector for query connections.
    pub(crate) fn postgres_connector(
        &self,
    ) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (&self.root_cert, self.mode) {
            (Some(path), SslMode::VerifyCa | SslMode::VerifyFull) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs("database.sslrootcert", path)? {
                    roots.add(cert).map_err(|e| {
                        Error::config("database.sslrootcert", format!("{}: {e}", path.display()))
                    })?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| Error::config("database.sslrootcert", e.to_string()))?;
                Arc::new(Verifier {
                    webpki: Some(webpki),
                    check_name: self.mode == SslMode::VerifyFull,
                    provider: provider.clone(),
                })
            }
            _ => Arc::new(Verifier {
                webpki: None,
                check_name: false,
                provider: provider.clone(),
            }),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config("database.sslmode", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("database.sslcert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    Error::config("database.sslkey", format!("{}: {e}", key.display()))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::config("database.sslcert", e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::config(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(
            key,
            format!("{}: no certificate in the file", path.display()),
        ));
    }
    Ok(certs)
}

/// `verify-full` (the WebPKI verifier as is), `verify-ca` (a name mismatch is accepted)
/// or no verification (`prefer`, `require`); handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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
