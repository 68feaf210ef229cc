//! The router's outbound HTTP: fetching an app's JWKS document
//! (`SB_JWT_KEYS` entries that are URLs), posting webhooks and Web Pushes
//! (`outbound.rs`), one connection per request. HTTP/1.1 over
//! rustls, trusting the bundled web roots and, if given, the deployment's
//! own CA. Plain `http://` is refused except to a loopback address (a
//! sidecar, or a test): both carry what must not be read or changed on the
//! way (keys, message text).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Largest answer body read.
const MAX_BYTES: usize = 1 << 20;
/// A JWKS fetch that takes longer fails (and is tried again later).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct WebClient {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for WebClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebClient")
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
    check_url(source, "app keys are fetched").map(|()| true)
}

/// A URL the router may call: `https://`, or `http://` to a loopback
/// address. `what` starts the error ("webhooks are posted").
pub fn check_url(url: &str, what: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => Ok(()),
        (Some("http"), Some(host)) if is_loopback(host) => Ok(()),
        _ => Err(format!(
            "{url}: {what} over https:// only (http:// to a loopback address)"
        )),
    }
}

/// What a server answered: its status, a `Retry-After` in seconds if it
/// gave one, and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: hyper::StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl WebClient {
    /// Trusting the bundled web roots, and the certificates of `ca` (PEM).
    pub fn new(ca: Option<&[u8]>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = ca {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA file is not PEM: {e}"))?;
                roots.add(cert).map_err(|e| format!("the CA file: {e}"))?;
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

    /// Trusting the bundled web roots and, if given, the PEM file `ca`.
    pub fn with_ca_file(ca: Option<&std::path::Path>) -> Result<Self, String> {
        let pem = ca
            .map(|path| {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            })
            .transpose()?;
        Self::new(pem.as_deref())
    }

    /// The body of a `200` answer to `GET url`.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let request = hyper::Request::get(url)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("{url}: {e}"))?;
        let answer = tokio::time::timeout(FETCH_TIMEOUT, self.call(url, request))
            .await
            .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))??;
        if answer.status != hyper::StatusCode::OK {
            return Err(format!("{url}: answered {}", answer.status));
        }
        Ok(answer.body)
    }

    /// `POST url` with `body` and the headers given (its content type
    /// among them), whatever the answer.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut request =
            hyper::Request::post(url).header(hyper::header::USER_AGENT, "switchboard");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("{url}: {e}"))?;
        tokio::time::timeout(timeout, self.call(url, request))
            .await
            .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
    }

    /// One request on a connection of its own (these calls are rare: a
    /// JWKS refresh, a webhook for an offline user).
    async fn call(
        &self,
        url: &str,
        mut request: hyper::Request<Full<Bytes>>,
    ) -> Result<Answer, String> {
        let failed = |e: &dyn std::fmt::Display| format!("{url}: {e}");
        check_url(url, "calls go")?;
        let uri: hyper::Uri = url.parse().map_err(|e| failed(&e))?;
        let host = uri.host().ok_or_else(|| failed(&"no host"))?;
        let tls = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((bare_host, port))
            .await
            .map_err(|e| failed(&e))?;
        // HTTP/1.1 wants the path in the request line and the authority in Host.
        let authority = uri.authority().map_or(host, |a| a.as_str()).to_owned();
        *request.uri_mut() = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| failed(&e))?;
        request.headers_mut().insert(
            hyper::header::HOST,
            authority.parse().map_err(|e| failed(&e))?,
        );
        let answer = if tls {
            let name = ServerName::try_from(bare_host.to_owned()).map_err(|e| failed(&e))?;
            let stream = self.tls.connect(name, tcp).await.map_err(|e| failed(&e))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        };
        answer.map_err(|e| failed(&e))
    }
}

async fn send<T>(io: T, request: hyper::Request<Full<Bytes>>) -> Result<Answer, String>
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
        let status = response.status();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map(|body| body.to_bytes().to_vec())
            .map_err(|e| format!("the body: {e}"))?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
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
