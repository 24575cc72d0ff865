//! The node's own HTTP(S) client: cluster peer fan-out (`cluster`),
//! read-your-writes waits on peers (`read_after`) and inter-region requests
//! (`regions`).
//!
//! It is reqwest 0.13 with rustls (aws-lc-rs), the build object_store already
//! compiles, with its features only (`rustls`, `http2`, `stream`): no `json`
//! or `gzip`, so bodies are (de)serialized here with serde_json and answers
//! are not compressed. `https://` peers and region endpoints are verified
//! against the platform's trust store (rustls-platform-verifier) plus, when
//! `[http] client_ca_cert` is set, the CA certificates of that PEM file
//! (e.g. the private CA that signed every node's `tls_cert`). The file is
//! read and checked when the configuration is loaded: one that cannot be read
//! or holds no PEM `CERTIFICATE` stops startup with an error naming it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

/// The client type of every outgoing request of the node.
pub type Client = reqwest_tls::Client;

/// The CA certificates of a PEM bundle, or an error naming `setting` and the file.
pub fn load_ca(setting: &str, path: &Path) -> anyhow::Result<Vec<reqwest_tls::Certificate>> {
    let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("{setting} {}: {e}", path.display()))?;
    let certs = reqwest_tls::Certificate::from_pem_bundle(&pem)
        .map_err(|e| anyhow::anyhow!("{setting} {}: not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{setting} {}: no PEM CERTIFICATE block in the file", path.display());
    }
    Ok(certs)
}

/// A client for peers and other regions: `timeout` per request,
/// `connect_timeout` per connection, trusting `[http] client_ca_cert` (see
/// the module doc) besides the platform's roots.
pub fn client(
    http: &crate::config::HttpConfig,
    timeout: Duration,
    connect_timeout: Duration,
) -> anyhow::Result<Client> {
    let mut builder = reqwest_tls::Client::builder()
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(connect_timeout);
    if let Some(path) = &http.client_ca_cert {
        builder = builder.tls_certs_merge(load_ca("http.client_ca_cert", path)?);
    }
    Ok(builder.build()?)
}

/// [`client`], for constructors that cannot fail: the configuration was
/// checked at load, so an error here means the CA file changed since; it is
/// logged and the client trusts the platform's roots only (a peer signed by
/// the missing CA is then refused, never trusted by mistake).
pub fn client_or_log(http: &crate::config::HttpConfig, timeout: Duration, connect_timeout: Duration) -> Client {
    client(http, timeout, connect_timeout).unwrap_or_else(|e| {
        tracing::error!(error = %format!("{e:#}"), "outgoing HTTP client without http.client_ca_cert");
        reqwest_tls::Client::builder().timeout(timeout).connect_timeout(connect_timeout).build().unwrap_or_default()
    })
}

/// `req` with `body` as its JSON body.
pub fn json_body<B: Serialize + ?Sized>(req: reqwest_tls::RequestBuilder, body: &B) -> reqwest_tls::RequestBuilder {
    // The wire types serialize infallibly (no maps with non-string keys).
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    req.header(reqwest_tls::header::CONTENT_TYPE, "application/json").body(bytes)
}

/// Why a call of [`answer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connecting, TLS, the request or a non-success status.
    #[error(transparent)]
    Http(#[from] reqwest_tls::Error),
    /// A success status with a body that is not the expected JSON.
    #[error("invalid JSON answer: {0}")]
    Json(serde_json::Error),
}

/// Sends `req` and decodes a success answer's JSON body.
pub async fn answer<T: DeserializeOwned>(req: reqwest_tls::RequestBuilder) -> Result<T, CallError> {
    let bytes = req.send().await?.error_for_status()?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(CallError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway self-signed CA certificate (P-256, `openssl req -x509`), PEM.
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBpDCCAUmgAwIBAgIUeATaKespiIuHVebpNExYIA2C2l0wCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTU3RyYXRhIHVuaXQtdGVzdCBDQTAgFw0yNjEyMDMxMTU5MTFa
GA8yMTI2MTEwOTExNTkxMVowHjEcMBoGA1UEAwwTU3RyYXRhIHVuaXQtdGVzdCBD
QTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABK3IhGI0FA0iCieeEo74bpe9fxEs
OXvs1oBucXS9gLXEW0Mqw3JkaEjaPIMc6528j2YfZ+cAE5kUKSlVPuubx3CjYzBh
MB0GA1UdDgQWBBSkslxy6EyC49WlUSliwJN83r7EsDAfBgNVHSMEGDAWgBSkslxy
6EyC49WlUSliwJN83r7EsDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIC
BDAKBggqhkjOPQQDAgNJADBGAiEArv5Y6fUQCAVYEgSzj9f/2lfzkSN1t/U2S3wr
NJrFW5wCIQDGSwVxqcSx+gJmgra4kSA8ieFC3wv/BYYceXR/komWeg==
-----END CERTIFICATE-----
";

    #[test]
    fn load_ca_names_the_file_when_it_is_missing_or_holds_no_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load_ca("http.client_ca_cert", &missing).unwrap_err().to_string();
        assert!(e.starts_with("http.client_ca_cert") && e.contains("missing.pem"), "{e}");
        let empty = dir.path().join("not-pem.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_ca("http.client_ca_cert", &empty).unwrap_err().to_string();
        assert!(e.contains("not-pem.pem") && e.contains("no PEM CERTIFICATE"), "{e}");
    }

    #[test]
    fn the_client_is_built_with_the_configured_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, CA_PEM).unwrap();
        assert_eq!(load_ca("http.client_ca_cert", &ca).unwrap().len(), 1);
        let http = crate::config::HttpConfig { client_ca_cert: Some(ca.clone()), ..Default::default() };
        client(&http, Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        std::fs::remove_file(&ca).unwrap();
        let e = format!("{:#}", client(&http, Duration::from_secs(1), Duration::from_secs(1)).unwrap_err());
        assert!(e.contains("http.client_ca_cert") && e.contains("ca.pem"), "{e}");
    }
}
