//! What every client of the API needs: where it connects and what it
//! trusts ([`endpoint`]: `https://` is TLS, always), and the session token
//! on its calls as `authorization: Bearer <token>` metadata (the gateway's
//! `auth` module reads it back).

use std::fmt;

use tonic::metadata::errors::InvalidMetadataValue;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

/// A server address a client cannot use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAddress(String);

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadAddress {}

/// The CA certificate (PEM) in `path`, if one is named; the error says
/// which file could not be read and why.
pub fn read_ca(path: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, String> {
    path.map(|path| {
        std::fs::read(path)
            .map_err(|err| format!("cannot read the CA file {}: {err}", path.display()))
    })
    .transpose()
}

/// TLS that trusts the system's certificate authorities (and the bundled
/// web roots where the system has none), plus `ca` (PEM) if given: a
/// private CA or a self-signed gateway.
pub fn client_tls(ca: Option<&[u8]>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().with_enabled_roots();
    match ca {
        Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
        None => tls,
    }
}

/// The endpoint for `url`: `https://` over TLS (never in plaintext),
/// `http://` in plaintext. A `ca` with an `http://` URL is refused: it
/// says the caller meant TLS.
pub fn endpoint(url: &str, ca: Option<&[u8]>) -> Result<Endpoint, BadAddress> {
    let bad = |why: &str| Err(BadAddress(format!("{url:?} {why}")));
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    let tls = match scheme {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return bad(
                "is not a server address: give http://host:port, or https://host:port for TLS",
            );
        }
    };
    if !tls && ca.is_some() {
        return bad("is plaintext (http://), but a CA was given: use https:// for TLS");
    }
    let Ok(endpoint) = Endpoint::from_shared(url.to_owned()) else {
        return bad("is not a server address: give http://host:port, or https://host:port for TLS");
    };
    if !tls {
        return Ok(endpoint);
    }
    endpoint
        .tls_config(client_tls(ca))
        .or_else(|err| bad(&format!("cannot be reached over TLS: {err}")))
}

#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// Fails only for a token that cannot be sent as metadata (not ASCII).
    pub fn new(token: &str) -> Result<Self, InvalidMetadataValue> {
        Ok(Self(format!("Bearer {token}").parse()?))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel whose every call carries the token.
pub type Authed = InterceptedService<Channel, Bearer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_means_tls_and_anything_else_is_refused_in_words() {
        let plain = endpoint("http://127.0.0.1:7300", None).unwrap();
        assert_eq!(plain.uri().scheme_str(), Some("http"));
        let tls = endpoint("https://chat.example.com", None).unwrap();
        assert_eq!(tls.uri().scheme_str(), Some("https"));
        for (url, ca, says) in [
            ("127.0.0.1:7300", None, "is not a server address"),
            ("ftp://example.com", None, "is not a server address"),
            ("http://127.0.0.1:7300", Some(&b"pem"[..]), "use https://"),
        ] {
            let err = endpoint(url, ca).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
