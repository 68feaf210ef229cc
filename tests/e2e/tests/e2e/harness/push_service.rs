//! A Web Push service as the tests run it (the part of FCM or Mozilla's
//! autopush that takes an application server's POST), and the browser end
//! of a subscription: a P-256 key pair and an auth secret, as
//! `pushManager.subscribe` makes them. Each push is checked as a push
//! service and a browser would: the VAPID token (RFC 8292: ES256 under the
//! key the deployment publishes, for this service's origin, not expired)
//! and the `aes128gcm` body, decrypted with the subscription's private key
//! (RFC 8291), with this file's own code.

use std::sync::Arc;

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier as _;
use p256::{PublicKey, SecretKey};
use parking_lot::Mutex;
use sha2::Sha256;
use switchboard_shared::clock::now_ms;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

use super::raw::read_http_request;

/// One push as the service took it, decrypted.
#[derive(Debug, Clone)]
pub struct Push {
    /// Which subscription (the endpoint's last path segment).
    pub device: String,
    pub status: u16,
    pub notice: serde_json::Value,
    pub ttl: String,
}

#[derive(Default)]
struct State {
    /// Devices whose subscription the service has forgotten (410).
    gone: Vec<String>,
    /// device → (browser private key, auth secret)
    browsers: Vec<(String, SecretKey, [u8; 16])>,
    pushes: Vec<Push>,
    vapid_key: String,
}

pub struct PushService {
    pub address: String,
    state: Arc<Mutex<State>>,
}

/// What a page sends `SetPushSubscription`.
pub struct Subscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

impl PushService {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let serving = state.clone();
        let origin = format!("http://{address}");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, serving.clone(), origin.clone()));
            }
        });
        Self { address, state }
    }

    /// The key pushes must be signed with.
    pub fn expect_vapid_key(&self, key: &str) {
        self.state.lock().vapid_key = key.to_owned();
    }

    /// A browser's new subscription on this service.
    pub fn subscribe(&self, device: &str) -> Subscription {
        let key = random_key();
        let mut auth = [0u8; 16];
        rand_bytes(&mut auth);
        let p256dh = BASE64URL.encode(key.public_key().to_sec1_bytes());
        self.state
            .lock()
            .browsers
            .push((device.to_owned(), key, auth));
        Subscription {
            endpoint: format!("http://{}/push/{device}", self.address),
            p256dh,
            auth: BASE64URL.encode(auth),
        }
    }

    /// From now on a push to `device` is answered 410 Gone.
    pub fn forget(&self, device: &str) {
        self.state.lock().gone.push(device.to_owned());
    }

    pub fn pushes(&self) -> Vec<Push> {
        self.state.lock().pushes.clone()
    }

    pub fn pushes_to(&self, device: &str) -> Vec<Push> {
        self.pushes()
            .into_iter()
            .filter(|p| p.device == device)
            .collect()
    }
}

fn rand_bytes(out: &mut [u8]) {
    rand::RngCore::fill_bytes(&mut rand::rng(), out);
}

/// A fresh P-256 key (a browser's, or the deployment's VAPID key).
fn random_key() -> SecretKey {
    let mut bytes = [0u8; 32];
    loop {
        rand_bytes(&mut bytes);
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

/// A fresh VAPID key for a deployment under test, as PEM.
pub fn vapid_key_pem() -> String {
    random_key()
        .to_sec1_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, origin: String) {
    let Some((raw, headers, body)) = read_http_request(&mut stream).await else {
        return;
    };
    let head = String::from_utf8_lossy(&raw);
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let body = body.as_slice();
    let device = path.rsplit('/').next().unwrap_or_default().to_owned();
    let status = {
        let mut state = state.lock();
        let status = if state.gone.contains(&device) {
            410
        } else if header("content-encoding") != "aes128gcm"
            || !vapid_holds(&header("authorization"), &state.vapid_key, &origin)
        {
            401
        } else {
            201
        };
        let notice = state
            .browsers
            .iter()
            .find(|(d, _, _)| *d == device)
            .and_then(|(_, key, auth)| decrypt(body, key, auth))
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .unwrap_or(serde_json::Value::Null);
        state.pushes.push(Push {
            device,
            status,
            notice,
            ttl: header("ttl"),
        });
        status
    };
    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// `vapid t=<jwt>, k=<key>`: the key is the deployment's, the JWT an ES256
/// one under it, for this origin, not expired.
fn vapid_holds(authorization: &str, expected_key: &str, origin: &str) -> bool {
    let Some((token, key)) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
    else {
        return false;
    };
    if key != expected_key {
        return false;
    }
    let parts: Vec<&str> = token.split('.').collect();
    let (Ok(public), [header, claims, signature]) = (
        BASE64URL
            .decode(key)
            .map_err(|_| ())
            .and_then(|k| PublicKey::from_sec1_bytes(&k).map_err(|_| ())),
        parts.as_slice(),
    ) else {
        return false;
    };
    let Ok(signature) = BASE64URL
        .decode(signature)
        .map_err(|_| ())
        .and_then(|s| p256::ecdsa::Signature::from_slice(&s).map_err(|_| ()))
    else {
        return false;
    };
    let signed = p256::ecdsa::VerifyingKey::from(public)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .is_ok();
    let claims: serde_json::Value = BASE64URL
        .decode(claims)
        .ok()
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or_default();
    let now = now_ms() / 1000;
    signed && claims["aud"] == origin && claims["exp"].as_i64().is_some_and(|exp| exp > now)
}

/// RFC 8291 from the browser's side: the plaintext, or `None`.
fn decrypt(body: &[u8], key: &SecretKey, auth: &[u8; 16]) -> Option<Vec<u8>> {
    let salt = body.get(..16)?;
    let id_len = usize::from(*body.get(20)?);
    let as_public_bytes = body.get(21..21 + id_len)?;
    let sealed = body.get(21 + id_len..)?;
    let as_public = PublicKey::from_sec1_bytes(as_public_bytes).ok()?;
    let shared = p256::ecdh::diffie_hellman(key.to_nonzero_scalar(), as_public.as_affine());
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(&key.public_key().to_sec1_bytes());
    info.extend_from_slice(as_public_bytes);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .ok()?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .ok()?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).ok()?;
    let mut plain = Aes128Gcm::new_from_slice(&cek)
        .ok()?
        .decrypt(Nonce::from_slice(&nonce), sealed)
        .ok()?;
    // The last record ends with 2, then any padding zeros.
    while plain.last() == Some(&0) {
        plain.pop();
    }
    (plain.pop() == Some(2)).then_some(plain)
}
