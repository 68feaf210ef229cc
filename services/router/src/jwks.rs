//! Fetching an app's JWKS document from its URL (`SB_JWT_KEYS` entries that
//! are `https://` URLs): HTTP/1.1 over rustls, trusting the bundled web
//! roots and, if given, the deployment's own CA. Plain `http://` is refused
//! except to a loopback address (a sidecar, or a test).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Largest JWKS document read.
const MAX_BYTES: usize = 1 << 20;
/// A fetch that takes longer fails (and is tried again later).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Fetcher {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fetcher")
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `source` (an `SB_JWT_KEYS` entry) is a URL rather than a file;
/// an error for a URL that may not be used.
pub fn is_url(source: &str) -> Result<bool, String> {
    if !source.contains("://") {
        return Ok(false);
    }
    let uri: hyper::Uri = source
        .parse()
        .map_err(|e| format!("{source} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => Ok(true),
        (Some("http"), Some(host)) if is_loopback(host) => Ok(true),
        _ => Err(format!(
            "{source}: app keys are fetched over https:// only (http:// to a loopback address)"
        )),
    }
}

impl Fetcher {
    /// Trusting the bundled web roots, and the certificates of `ca` (PEM).
    pub fn new(ca: Option<&[u8]>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = ca {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the JWKS CA is not PEM: {e}"))?;
                roots.add(cert).map_err(|e| format!("the JWKS CA: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The body of a `200` answer to `GET url`.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        tokio::time::timeout(FETCH_TIMEOUT, self.get_now(url))
            .await
            .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))?
    }

    async fn get_now(&self, url: &str) -> Result<Vec<u8>, String> {
        let failed = |e: &dyn std::fmt::Display| format!("{url}: {e}");
        is_url(url)?;
        let uri: hyper::Uri = url.parse().map_err(|e| failed(&e))?;
        let host = uri.host().ok_or_else(|| failed(&"no host"))?;
        let tls = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((bare_host, port))
            .await
            .map_err(|e| failed(&e))?;
        let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(
                hyper::header::HOST,
                uri.authority().map_or(host, |a| a.as_str()),
            )
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(&e))?;
        let body = if tls {
            let name = ServerName::try_from(bare_host.to_owned()).map_err(|e| failed(&e))?;
            let stream = self.tls.connect(name, tcp).await.map_err(|e| failed(&e))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        };
        body.map_err(|e| failed(&e))
    }
}

async fn send<T>(io: T, request: hyper::Request<Empty<Bytes>>) -> Result<Vec<u8>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driving = tokio::spawn(connection);
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != hyper::StatusCode::OK {
            return Err(format!("answered {}", response.status()));
        }
        Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map(|body| body.to_bytes().to_vec())
            .map_err(|e| format!("the body: {e}"))
    }
    .await;
    driving.abort();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert_eq!(is_url("/etc/app/jwks.json"), Ok(false));
        assert_eq!(
            is_url("https://app.example.com/.well-known/jwks.json"),
            Ok(true)
        );
        assert_eq!(is_url("http://127.0.0.1:8080/jwks"), Ok(true));
        assert_eq!(is_url("http://localhost/jwks"), Ok(true));
        assert_eq!(is_url("http://[::1]:9000/jwks"), Ok(true));
        assert!(is_url("http://app.example.com/jwks").is_err());
        assert!(is_url("ftp://app.example.com/jwks").is_err());
    }
}
