//! TLS of every connection (queries, snapshot, binlog), with Debezium's
//! `database.ssl.mode` values: `disabled`, `preferred` (the default: TLS when the server
//! offers it, unverified), `required` (TLS, unverified), `verify_ca` (the server's chain
//! must lead to `database.ssl.ca`) and `verify_identity` (and its certificate must name
//! the host). Certificates are PEM files, as the `mariadb`/`mysql` clients' `--ssl-ca`,
//! `--ssl-cert` and `--ssl-key` take them (Debezium's Java keystores have no equivalent
//! here).

use std::path::PathBuf;

use connect_core::Error;
use mysql_async::{ClientIdentity, SslOpts};

/// `database.ssl.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain connections only.
    Disabled,
    /// TLS if the server offers it, without verification.
    #[default]
    Preferred,
    /// TLS, without verification.
    Required,
    /// TLS; the server's chain must lead to `database.ssl.ca`.
    VerifyCa,
    /// As `verify_ca`, and the certificate must name the host.
    VerifyIdentity,
}

impl SslMode {
    /// Debezium's names for the modes.
    pub const NAMES: [&'static str; 5] = [
        "disabled",
        "preferred",
        "required",
        "verify_ca",
        "verify_identity",
    ];

    /// Debezium's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }

    /// Parses Debezium's name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "disabled" => SslMode::Disabled,
            "preferred" => SslMode::Preferred,
            "required" => SslMode::Required,
            "verify_ca" => SslMode::VerifyCa,
            "verify_identity" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }
}

/// TLS settings of the connections to the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `database.ssl.mode`.
    pub mode: SslMode,
    /// `database.ssl.ca`: PEM file of the CA certificate(s) to trust (needed to verify).
    pub ca: Option<PathBuf>,
    /// `database.ssl.cert`: PEM client certificate chain.
    pub cert: Option<PathBuf>,
    /// `database.ssl.key`: PEM client private key.
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// Checks the combination and that the files can be read; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.mode.verifies() && self.ca.is_none() {
            return Err(Error::config(
                "database.ssl.ca",
                "verify_ca and verify_identity need the CA certificate(s) to trust (a PEM file)",
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(Error::config(
                "database.ssl.key",
                "database.ssl.cert and database.ssl.key go together",
            ));
        }
        for (key, path) in [
            ("database.ssl.ca", &self.ca),
            ("database.ssl.cert", &self.cert),
            ("database.ssl.key", &self.key),
        ] {
            if let Some(path) = path {
                std::fs::metadata(path).map_err(|e| {
                    Error::config(key, format!("cannot read {}: {e}", path.display()))
                })?;
            }
        }
        Ok(())
    }

    /// The driver's TLS options (None: plain).
    pub(crate) fn ssl_opts(&self) -> Option<SslOpts> {
        let opts = SslOpts::default().with_client_identity(
            self.cert
                .clone()
                .zip(self.key.clone())
                .map(|(cert, key)| ClientIdentity::new(cert.into(), key.into())),
        );
        Some(match self.mode {
            SslMode::Disabled => return None,
            SslMode::Preferred | SslMode::Required => opts
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
            SslMode::VerifyCa | SslMode::VerifyIdentity => opts
                .with_root_certs(self.ca.clone().into_iter().map(Into::into).collect())
                .with_disable_built_in_roots(true)
                .with_danger_skip_domain_validation(self.mode == SslMode::VerifyCa),
        })
    }

    /// A description for errors: the mode and the CA.
    pub(crate) fn describe(&self) -> String {
        let mode = self.mode.name();
        match &self.ca {
            Some(ca) => format!("database.ssl.mode={mode}, database.ssl.ca={}", ca.display()),
            None => format!("database.ssl.mode={mode}"),
        }
    }
}
