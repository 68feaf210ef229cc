//! JWTs signed by an app's own backend, for apps that bring their own users
//! (`AccountService.LoginWithToken`). The deployment names the issuer and
//! audience it trusts and the app's public keys; a token that verifies names
//! its user in `sub`, and is exchanged for a Switchboard session.
//!
//! - Keys: PEM public keys (RSA → RS256, EC P-256 → ES256) or JWKS documents
//!   (`{"keys": [...]}`), from files. A key with a `kid` only checks tokens
//!   whose header names it; a token without a `kid` is tried on every key of
//!   its algorithm.
//! - Only RS256 and ES256: a token saying `none` or an HMAC algorithm is
//!   refused whatever it claims (no key confusion).
//! - `iss`, `aud` and `exp` are required and checked (60 s of clock leeway);
//!   `nbf` when present.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::{RouterError, RouterResult};

/// What the deployment trusts: unset issuer, no app tokens.
#[derive(Debug, Clone, clap::Args)]
pub struct AppTokenSettings {
    /// An app whose backend signs JWTs for its users (LoginWithToken): the `iss` its tokens carry. With --jwt-audience and --jwt-keys; unset: no app tokens.
    #[arg(
        id = "jwt_issuer",
        long = "jwt-issuer",
        env = "SB_JWT_ISSUER",
        requires_all = ["jwt_audience", "jwt_keys"]
    )]
    pub issuer: Option<String>,
    /// The `aud` an app token must carry to be accepted here.
    #[arg(
        id = "jwt_audience",
        long = "jwt-audience",
        env = "SB_JWT_AUDIENCE",
        requires = "jwt_issuer"
    )]
    pub audience: Option<String>,
    /// The app's public keys, comma-separated: files (PEM: RSA for RS256, EC P-256 for ES256; or JWKS documents), read at start, and JWKS URLs (https://), fetched at start, every --jwt-keys-refresh-secs and when a token names a key not yet seen.
    #[arg(
        id = "jwt_keys",
        long = "jwt-keys",
        env = "SB_JWT_KEYS",
        value_delimiter = ',',
        requires = "jwt_issuer"
    )]
    pub key_files: Vec<String>,
    /// How often JWKS URLs among --jwt-keys are fetched again, in seconds.
    #[arg(
        id = "jwt_keys_refresh_secs",
        long = "jwt-keys-refresh-secs",
        env = "SB_JWT_KEYS_REFRESH_SECS",
        default_value = "300",
        value_parser = switchboard_shared::settings::secs
    )]
    pub refresh_every: std::time::Duration,
    /// A PEM file of certificate authorities to trust for JWKS URLs, besides the bundled web roots (a private CA).
    #[arg(id = "jwt_keys_ca", long = "jwt-keys-ca", env = "SB_JWT_KEYS_CA")]
    pub ca: Option<PathBuf>,
}

impl Default for AppTokenSettings {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
    }
}

impl AppTokenSettings {
    /// The keys, if an issuer is set.
    pub fn load(&self) -> Result<Option<AppTokens>, String> {
        match &self.issuer {
            None if self.audience.is_none() && self.key_files.is_empty() => Ok(None),
            None => Err(
                "app tokens need an issuer (jwt-issuer) to go with their audience and keys".into(),
            ),
            Some(_) => AppTokens::load(self).map(Some),
        }
    }
}

struct AppKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// A token naming an unknown key asks for a fetch at most this often.
const REFETCH_AT_MOST_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The app issuer's keys, ready to verify: those read from files, and
/// those last fetched from its JWKS URLs.
pub struct AppTokens {
    issuer: String,
    audience: String,
    files: Vec<AppKey>,
    urls: Vec<String>,
    fetched: parking_lot::RwLock<Vec<AppKey>>,
    fetcher: Option<crate::web_client::WebClient>,
    refresh_every: std::time::Duration,
    /// A token named a key no source has given yet.
    unknown_key: tokio::sync::Notify,
}

impl std::fmt::Debug for AppTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppTokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("file_keys", &self.files.len())
            .field("urls", &self.urls)
            .field("fetched_keys", &self.fetched.read().len())
            .finish()
    }
}

/// What a verified app token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppClaims {
    pub sub: String,
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    match (jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256), _) => Some(Algorithm::RS256),
        (Some(KeyAlgorithm::ES256), _) => Some(Algorithm::ES256),
        (Some(_), _) => None,
        (None, AlgorithmParameters::RSA(_)) => Some(Algorithm::RS256),
        (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        (None, _) => None,
    }
}

fn load_file(path: &Path) -> Result<Vec<AppKey>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the app key file {}: {e}", path.display()))?;
    parse_keys(&bytes, &path.display())
}

/// The keys of a PEM public key or a JWKS document; `shown` names where it
/// came from in errors.
fn parse_keys(bytes: &[u8], shown: &dyn std::fmt::Display) -> Result<Vec<AppKey>, String> {
    if bytes.trim_ascii_start().starts_with(b"{") {
        let set: JwkSet = serde_json::from_slice(bytes)
            .map_err(|e| format!("{shown} is not a JWKS document: {e}"))?;
        let keys: Vec<AppKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let algorithm = jwk_algorithm(jwk)?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(AppKey {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(format!("{shown} holds no RS256 or ES256 (P-256) key"));
        }
        return Ok(keys);
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        return Ok(vec![AppKey {
            kid: None,
            algorithm: Algorithm::RS256,
            key,
        }]);
    }
    if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        return Ok(vec![AppKey {
            kid: None,
            algorithm: Algorithm::ES256,
            key,
        }]);
    }
    Err(format!(
        "{shown} is neither a PEM public key (RSA or EC P-256) nor a JWKS document"
    ))
}

impl AppTokens {
    /// Loads the keys; an error names the file and what is wrong with it.
    pub fn load(settings: &AppTokenSettings) -> Result<Self, String> {
        let named = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (Some(issuer), Some(audience)) = (named(&settings.issuer), named(&settings.audience))
        else {
            return Err("app tokens need both an issuer and an audience".into());
        };
        if settings.key_files.is_empty() {
            return Err(
                "app tokens need at least one key source (a PEM or JWKS file, or a JWKS URL)"
                    .into(),
            );
        }
        let mut files = Vec::new();
        let mut urls = Vec::new();
        for source in &settings.key_files {
            if crate::web_client::is_url(source)? {
                urls.push(source.clone());
            } else {
                files.extend(load_file(Path::new(source))?);
            }
        }
        let fetcher = if urls.is_empty() {
            None
        } else {
            Some(crate::web_client::WebClient::with_ca_file(
                settings.ca.as_deref(),
            )?)
        };
        Ok(Self {
            issuer,
            audience,
            files,
            urls,
            fetched: parking_lot::RwLock::new(Vec::new()),
            fetcher,
            refresh_every: settings.refresh_every,
            unknown_key: tokio::sync::Notify::new(),
        })
    }

    /// Whether some keys come from URLs (and [`Self::keep_fresh`] should run).
    pub fn fetches(&self) -> bool {
        self.fetcher.is_some()
    }

    /// Fetches every JWKS URL; the keys of those that answer replace what
    /// they gave before (one that fails keeps its old keys out: all are
    /// replaced together, so an error keeps the last good set). Returns how
    /// many keys the URLs give now.
    pub async fn refresh(&self) -> Result<usize, String> {
        let Some(fetcher) = &self.fetcher else {
            return Ok(0);
        };
        let mut keys = Vec::new();
        for url in &self.urls {
            let body = fetcher.get(url).await?;
            keys.extend(parse_keys(&body, url)?);
        }
        let count = keys.len();
        *self.fetched.write() = keys;
        Ok(count)
    }

    /// Fetches the URLs every `refresh_every`, and soon after a token names
    /// a key not seen yet (at most every [`REFETCH_AT_MOST_EVERY`]), until
    /// `stop`.
    pub async fn keep_fresh(
        self: std::sync::Arc<Self>,
        stop: switchboard_shared::shutdown::CancellationToken,
    ) {
        loop {
            let waited = tokio::time::Instant::now();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.refresh_every) => {}
                () = self.unknown_key.notified() => {
                    let since = waited.elapsed();
                    if since < REFETCH_AT_MOST_EVERY {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(REFETCH_AT_MOST_EVERY - since) => {}
                        }
                    }
                }
            }
            match self.refresh().await {
                Ok(keys) => tracing::debug!(keys, "app keys fetched"),
                Err(err) => {
                    tracing::warn!(%err, "cannot fetch the app's keys; keeping the last ones")
                }
            }
        }
    }

    /// The token's claims if one of the keys signed it and it is for this
    /// deployment, now; UNAUTHENTICATED (one message, whatever the reason,
    /// so it teaches a forger nothing) otherwise.
    pub fn verify(&self, token: &str) -> RouterResult<AppClaims> {
        let refused = || RouterError::Unauthenticated("the app token is not valid here".into());
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused())?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(refused());
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        let fetched = self.fetched.read();
        let mut named_key_seen = false;
        let candidates = self.files.iter().chain(fetched.iter()).filter(|k| {
            let fits = k.algorithm == header.alg
                && match (&header.kid, &k.kid) {
                    (Some(wanted), Some(kid)) => wanted == kid,
                    (Some(_), None) | (None, _) => true,
                };
            named_key_seen |= fits && header.kid.is_some() && k.kid.is_some();
            fits
        });
        for candidate in candidates {
            if let Ok(data) = jsonwebtoken::decode::<Wire>(token, &candidate.key, &validation) {
                return Ok(AppClaims {
                    sub: data.claims.sub,
                    name: data.claims.name,
                });
            }
        }
        // A key id no source has given: the app may have rotated; look again.
        if header.kid.is_some() && !named_key_seen && self.fetches() {
            self.unknown_key.notify_one();
        }
        Err(refused())
    }
}

/// What an app token to sign says (`switchboard gentoken`: the app's
/// backend does this in production).
#[derive(Debug, Clone)]
pub struct AppTokenRequest<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub sub: &'a str,
    pub name: Option<&'a str>,
    pub expires_at_secs: i64,
}

#[derive(serde::Serialize)]
struct Outgoing<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// Signs an app token with the app's private key (PEM): RS256 with an RSA
/// key, ES256 with an EC P-256 one.
pub fn sign(private_pem: &[u8], request: &AppTokenRequest<'_>) -> Result<String, String> {
    let (algorithm, key) = if let Ok(key) = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem) {
        (Algorithm::RS256, key)
    } else if let Ok(key) = jsonwebtoken::EncodingKey::from_ec_pem(private_pem) {
        (Algorithm::ES256, key)
    } else {
        return Err("the key is neither an RSA nor an EC P-256 private key in PEM".into());
    };
    let claims = Outgoing {
        sub: request.sub,
        iss: request.issuer,
        aud: request.audience,
        exp: request.expires_at_secs,
        iat: switchboard_shared::clock::now_ms() / 1000,
        name: request.name,
    };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key)
        .map_err(|e| format!("cannot sign: {e}"))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use futures::FutureExt as _;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const RSA_PRIVATE: &str = include_str!("testdata/app-rsa-test-only.key");
    const RSA_PUBLIC: &str = include_str!("testdata/app-rsa-test-only.pub");

    fn now() -> i64 {
        switchboard_shared::clock::now_ms() / 1000
    }

    fn claims() -> serde_json::Value {
        json!({"sub": "app-user-1", "name": "Ada", "iss": "https://app.example.com",
               "aud": "switchboard", "exp": now() + 300})
    }

    fn settings(dir: &tempfile::TempDir, files: &[(&str, &str)]) -> AppTokenSettings {
        AppTokenSettings {
            issuer: Some("https://app.example.com".into()),
            audience: Some("switchboard".into()),
            key_files: files
                .iter()
                .map(|(name, text)| {
                    let path = dir.path().join(name);
                    std::fs::write(&path, text).unwrap();
                    path.display().to_string()
                })
                .collect(),
            ..AppTokenSettings::default()
        }
    }

    struct Ec {
        private_pem: String,
        public_pem: String,
        jwk: serde_json::Value,
    }

    fn ec(kid: &str) -> Ec {
        let key = rcgen::KeyPair::generate().unwrap();
        let raw = key.public_key_raw();
        Ec {
            private_pem: key.serialize_pem(),
            public_pem: key.public_key_pem(),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
                        "y": URL_SAFE_NO_PAD.encode(&raw[33..65])}),
        }
    }

    fn sign_es(key: &Ec, kid: Option<&str>, body: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        let encoding = EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, body, &encoding).unwrap()
    }

    #[test]
    fn rs256_from_a_pem_key() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = AppTokens::load(&settings(&dir, &[("app.pub", RSA_PUBLIC)])).unwrap();
        let encoding = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims(), &encoding).unwrap();
        assert_eq!(
            tokens.verify(&token).unwrap(),
            AppClaims {
                sub: "app-user-1".into(),
                name: Some("Ada".into())
            }
        );
    }

    #[test]
    fn es256_from_a_jwks_by_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (ec("one"), ec("two"));
        let jwks = json!({"keys": [one.jwk, two.jwk]}).to_string();
        let tokens = AppTokens::load(&settings(&dir, &[("jwks.json", &jwks)])).unwrap();
        assert!(
            tokens
                .verify(&sign_es(&two, Some("two"), &claims()))
                .is_ok()
        );
        assert!(tokens.verify(&sign_es(&one, None, &claims())).is_ok());
        // Signed by one, claiming to be two: refused.
        assert!(
            tokens
                .verify(&sign_es(&one, Some("two"), &claims()))
                .is_err()
        );
        // A PEM EC key works too.
        let pem = AppTokens::load(&settings(&dir, &[("one.pem", &one.public_pem)])).unwrap();
        assert!(pem.verify(&sign_es(&one, None, &claims())).is_ok());
    }

    #[test]
    fn tokens_for_someone_else_or_out_of_time_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = ec("k");
        let jwks = json!({"keys": [key.jwk]}).to_string();
        let tokens = AppTokens::load(&settings(&dir, &[("jwks.json", &jwks)])).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut body = claims();
            body[field] = value;
            sign_es(&key, Some("k"), &body)
        };
        for (why, token) in [
            (
                "another issuer",
                with("iss", json!("https://evil.example.com")),
            ),
            ("another audience", with("aud", json!("someone-else"))),
            ("expired", with("exp", json!(now() - 3_600))),
            ("not yet valid", with("nbf", json!(now() + 3_600))),
            ("another key", sign_es(&ec("k"), Some("k"), &claims())),
        ] {
            let err = tokens.verify(&token).unwrap_err();
            assert!(
                matches!(err, RouterError::Unauthenticated(_)),
                "{why}: {err:?}"
            );
        }
        let mut body = claims();
        body.as_object_mut().unwrap().remove("exp");
        assert!(
            tokens.verify(&sign_es(&key, Some("k"), &body)).is_err(),
            "no exp"
        );
    }

    #[test]
    fn none_and_hmac_are_refused_whatever_they_claim() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = AppTokens::load(&settings(&dir, &[("app.pub", RSA_PUBLIC)])).unwrap();
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(tokens.verify(&format!("{none}.{body}.")).is_err());
        // HS256 keyed with the public key's bytes (the classic confusion).
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(tokens.verify(&hs).is_err());
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = AppTokens::load(&settings(&dir, &[("junk.pem", "not a key")])).unwrap_err();
        assert!(err.contains("junk.pem") && err.contains("neither"), "{err}");
        let mut no_audience = settings(&dir, &[("app.pub", RSA_PUBLIC)]);
        no_audience.audience = None;
        assert!(
            AppTokens::load(&no_audience)
                .unwrap_err()
                .contains("audience")
        );
    }

    #[test]
    fn a_token_signed_with_the_private_key_verifies_with_the_public_one() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = AppTokens::load(&settings(&dir, &[("app.pub", RSA_PUBLIC)])).unwrap();
        let request = AppTokenRequest {
            issuer: "https://app.example.com",
            audience: "switchboard",
            sub: "app-user-9",
            name: Some("Nine"),
            expires_at_secs: now() + 60,
        };
        let token = sign(RSA_PRIVATE.as_bytes(), &request).unwrap();
        assert_eq!(
            tokens.verify(&token).unwrap(),
            AppClaims {
                sub: "app-user-9".into(),
                name: Some("Nine".into())
            }
        );
        let other_audience = AppTokenRequest {
            audience: "elsewhere",
            ..request.clone()
        };
        let token = sign(RSA_PRIVATE.as_bytes(), &other_audience).unwrap();
        assert!(tokens.verify(&token).is_err());
        let es = ec("k1");
        let token = sign(es.private_pem.as_bytes(), &request).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::ES256
        );
        assert!(sign(RSA_PUBLIC.as_bytes(), &request).is_err());
    }

    /// A JWKS server of the test's own, over TLS with a self-signed
    /// certificate for localhost: serves whatever `jwks` holds now.
    async fn jwks_server(jwks: std::sync::Arc<parking_lot::Mutex<String>>) -> (String, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca_pem = cert.cert.pem();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, jwks) = (acceptor.clone(), jwks.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = jwks.lock().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (
            format!("https://localhost:{port}/.well-known/jwks.json"),
            ca_pem,
        )
    }

    #[tokio::test]
    async fn keys_come_from_a_jwks_url_and_a_rotation_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (ec("k1"), ec("k2"));
        let jwks = std::sync::Arc::new(parking_lot::Mutex::new(
            json!({"keys": [first.jwk]}).to_string(),
        ));
        let (url, ca) = jwks_server(jwks.clone()).await;
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca).unwrap();
        let settings = AppTokenSettings {
            key_files: vec![url.clone()],
            ca: Some(ca_path),
            ..settings(&dir, &[])
        };
        let tokens = std::sync::Arc::new(AppTokens::load(&settings).unwrap());
        assert!(tokens.fetches());
        // Nothing is trusted before the first fetch.
        let token = sign_es(&first, Some("k1"), &claims());
        assert!(tokens.verify(&token).is_err());
        assert_eq!(tokens.refresh().await.unwrap(), 1);
        assert_eq!(tokens.verify(&token).unwrap().sub, "app-user-1");

        // The app rotates to k2: a token naming k2 is refused until the keys
        // are fetched again, which that token asks for.
        *jwks.lock() = json!({"keys": [second.jwk]}).to_string();
        let rotated = sign_es(&second, Some("k2"), &claims());
        let asked = || tokens.unknown_key.notified().now_or_never().is_some();
        let _ = asked(); // the request the token before the first fetch made
        assert!(tokens.verify(&token).is_ok());
        assert!(!asked(), "a known key id asks for nothing");
        assert!(tokens.verify(&rotated).is_err());
        assert!(asked(), "an unknown key id asks for a fetch");
        tokens.refresh().await.unwrap();
        assert_eq!(tokens.verify(&rotated).unwrap().sub, "app-user-1");
        assert!(tokens.verify(&token).is_err(), "k1 is gone from the set");

        // Without the CA the server is not trusted; a failed fetch keeps
        // the last good keys.
        let untrusted = AppTokens::load(&AppTokenSettings {
            ca: None,
            ..settings.clone()
        })
        .unwrap();
        let err = untrusted.refresh().await.unwrap_err();
        assert!(err.contains(&url), "{err}");
        *jwks.lock() = "not json".into();
        assert!(tokens.refresh().await.is_err());
        assert_eq!(tokens.verify(&rotated).unwrap().sub, "app-user-1");
    }

    #[test]
    fn key_urls_must_be_https() {
        let dir = tempfile::tempdir().unwrap();
        let err = AppTokens::load(&AppTokenSettings {
            key_files: vec!["http://app.example.com/jwks.json".into()],
            ..settings(&dir, &[])
        })
        .unwrap_err();
        assert!(err.contains("https://"), "{err}");
    }
}
