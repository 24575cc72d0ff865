//! HTTPS on the listeners (`[http] tls_cert`, `tls_key`): the rustls server
//! configuration, loaded once at startup.
//!
//! ```text
//! TCP ──► ConnIo (idle / header deadlines, raw bytes) ──► TLS (rustls) ──► HeadLimit ──► hyper HTTP/1
//! ```
//!
//! The certificate file holds the server certificate first, then any
//! intermediates (PEM `CERTIFICATE` blocks); the key file one PEM private key
//! (PKCS#8, PKCS#1 RSA or SEC1 EC). TLS 1.2 and 1.3 with rustls's safe
//! defaults (aws-lc-rs, the provider object_store already builds); ALPN offers
//! `http/1.1` only, the one protocol the listener speaks. The handshake runs
//! under the listener's deadlines like a request head: it must start within
//! `http.idle_timeout` and finish within `http.header_read_timeout`. A file
//! that cannot be read or parsed stops startup with an error naming it.
//! The files are read at startup only: a renewed certificate needs a restart.

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The TLS side of the listeners.
pub type Acceptor = tokio_rustls::TlsAcceptor;

/// Builds the acceptor from the PEM files, with errors that name the file and setting.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> anyhow::Result<Acceptor> {
    let certs = certificates(cert_path)?;
    let key = private_key(key_path)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "http.tls_cert {} and http.tls_key {} do not make a usable certificate (does the key belong to \
                 the certificate?)",
                cert_path.display(),
                key_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The certificate chain of `http.tls_cert`.
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let read = |e: rustls::pki_types::pem::Error| {
        anyhow::anyhow!("http.tls_cert {}: cannot read a PEM certificate: {}", path.display(), pem_error(&e))
    };
    let certs = CertificateDer::pem_file_iter(path).map_err(read)?.collect::<Result<Vec<_>, _>>().map_err(read)?;
    if certs.is_empty() {
        bail!("http.tls_cert {}: no PEM CERTIFICATE block in the file", path.display());
    }
    Ok(certs)
}

/// The private key of `http.tls_key`.
fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => anyhow::anyhow!(
            "http.tls_key {}: no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in the file",
            path.display()
        ),
        e => anyhow::anyhow!("http.tls_key {}: cannot read a PEM private key: {}", path.display(), pem_error(&e)),
    })
}

/// The PEM error, with the I/O error's own text (not found, permission denied).
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        e => format!("{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(cert: &Path, key: &Path) -> String {
        match acceptor(cert, key) {
            Ok(_) => panic!("{} and {} were accepted", cert.display(), key.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn unreadable_or_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = error_of(&missing, &missing);
        assert!(err.contains("http.tls_cert") && err.contains("missing.pem"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let err = error_of(&garbage, &garbage);
        assert!(err.contains("http.tls_cert") && err.contains("garbage.pem") && err.contains("no PEM"), "{err}");
        let cert = dir.path().join("cert.pem");
        // A syntactically valid PEM block is enough to reach the key.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let err = error_of(&cert, &garbage);
        assert!(err.contains("http.tls_key") && err.contains("garbage.pem"), "{err}");
    }
}
