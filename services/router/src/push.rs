//! Web Push to the browsers of users with no device online: the message
//! (RFC 8030) encrypted for the subscription (RFC 8291, `aes128gcm` of RFC
//! 8188) and signed for the push service by the deployment's VAPID key (RFC
//! 8292). Who is pushed what is decided as for webhooks (`offline.rs`); the
//! POSTs go through the same bounded, retrying queue (`outbound.rs`).
//!
//! A subscription names an endpoint on a push service; the router POSTs to
//! it, so an endpoint is accepted only on a host the deployment trusts
//! (`SB_PUSH_SERVICES`: the browsers' push services by default), never an
//! arbitrary URL a user typed (which would let anyone make routers call
//! into the deployment's own network).

use std::path::PathBuf;
use std::time::Duration;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use bytes::Bytes;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer as _;
use p256::{PublicKey, SecretKey};
use rand::RngCore as _;
use serde::Serialize;
use sha2::Sha256;
use switchboard_proto::pb;

use crate::offline::Reason;
use crate::outbound::{Job, Outbound, Policy};
use crate::store::PushSubscription;
use crate::web_client::WebClient;

/// How long a VAPID token is good for (RFC 8292 allows up to 24 h).
const VAPID_LIFETIME_SECS: i64 = 12 * 3600;
/// The record size written in the header; one record holds any payload here.
const RECORD_SIZE: u32 = 4096;
/// Longest text put in a preview.
const PREVIEW_CHARS: usize = 200;
/// Longest endpoint URL accepted.
const MAX_ENDPOINT_BYTES: usize = 2048;
/// Subscriptions kept per user; a new one past it replaces the oldest.
pub const MAX_SUBSCRIPTIONS: usize = 10;
/// How hard pushes are tried: push services answer fast and keep the push
/// for the browser themselves, so fewer, shorter attempts than webhooks.
const POLICY: Policy = Policy {
    queue: 10_000,
    concurrency: 16,
    attempts: 5,
    first_retry: Duration::from_secs(1),
    timeout: Duration::from_secs(10),
};

#[derive(Debug, Clone, clap::Args)]
pub struct PushSettings {
    /// PEM file of the P-256 private key that signs Web Push requests (VAPID); its public key is what pages subscribe with. Unset: no Web Push.
    #[arg(
        id = "vapid_private_key",
        long = "vapid-private-key",
        env = "SB_VAPID_PRIVATE_KEY"
    )]
    pub private_key: Option<PathBuf>,
    /// Who push services may contact about this deployment's pushes: a mailto: or https: URL (VAPID `sub`).
    #[arg(
        id = "vapid_subject",
        long = "vapid-subject",
        env = "SB_VAPID_SUBJECT",
        default_value = "mailto:operator@example.invalid"
    )]
    pub subject: String,
    /// Push service hosts a subscription's endpoint may be on, comma-separated (`*.` matches subdomains; host:port for a port other than 443).
    #[arg(
        id = "push_services",
        long = "push-services",
        env = "SB_PUSH_SERVICES",
        value_delimiter = ',',
        default_value = "fcm.googleapis.com,updates.push.services.mozilla.com,web.push.apple.com,*.notify.windows.com"
    )]
    pub services: Vec<String>,
    /// How long a push service keeps a push for a browser that is not connected, in seconds (the TTL header).
    #[arg(
        id = "push_ttl_secs",
        long = "push-ttl-secs",
        env = "SB_PUSH_TTL_SECS",
        default_value_t = 86_400
    )]
    pub ttl_secs: u32,
}

impl Default for PushSettings {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
    }
}

/// The deployment's application server identity.
pub struct Vapid {
    key: SecretKey,
    /// base64url of the uncompressed public key.
    public: String,
    subject: String,
    services: Vec<String>,
    ttl_secs: u32,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// `None` when no key is configured.
    pub fn load(settings: &PushSettings) -> Result<Option<Self>, String> {
        let Some(path) = &settings.private_key else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let key = SecretKey::from_pem(&pem)
            .or_else(|_| SecretKey::from_sec1_pem(&pem))
            .map_err(|e| format!("{}: not a P-256 private key in PEM: {e}", path.display()))?;
        Self::new(key, settings).map(Some)
    }

    pub fn new(key: SecretKey, settings: &PushSettings) -> Result<Self, String> {
        if !(settings.subject.starts_with("mailto:") || settings.subject.starts_with("https://")) {
            return Err(format!(
                "the VAPID subject is a mailto: or https: URL, not {:?}",
                settings.subject
            ));
        }
        let public = BASE64URL.encode(key.public_key().to_sec1_bytes());
        Ok(Self {
            key,
            public,
            subject: settings.subject.clone(),
            services: settings.services.clone(),
            ttl_secs: settings.ttl_secs,
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// Checks a subscription a page sent: an https:// endpoint on a trusted
    /// push service, a P-256 key and a 16-byte auth secret.
    pub fn check(&self, endpoint: &str, p256dh: &str, auth: &str) -> Result<(), String> {
        if endpoint.len() > MAX_ENDPOINT_BYTES {
            return Err(format!("the endpoint is over {MAX_ENDPOINT_BYTES} bytes"));
        }
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|_| "the endpoint is not a URL".to_owned())?;
        let host = uri.host().unwrap_or_default();
        let address = match uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let listed_with_port = uri.port_u16().is_some() && self.services.contains(&address);
        if uri.scheme_str() != Some("https") && !listed_with_port {
            return Err("the endpoint must be an https:// URL".into());
        }
        if !self.trusts(&address) {
            return Err(format!(
                "{address} is not a push service this deployment trusts"
            ));
        }
        let key = BASE64URL
            .decode(p256dh.trim_end_matches('='))
            .map_err(|_| "p256dh is not base64url".to_owned())?;
        PublicKey::from_sec1_bytes(&key).map_err(|_| "p256dh is not a P-256 public key")?;
        let auth = BASE64URL
            .decode(auth.trim_end_matches('='))
            .map_err(|_| "auth is not base64url".to_owned())?;
        if auth.len() != 16 {
            return Err(format!("auth is 16 bytes, not {}", auth.len()));
        }
        Ok(())
    }

    /// Whether `address` (host, or host:port) is a trusted push service. A
    /// plain-http endpoint passes only by being listed with its port (a
    /// test's push service on a loopback address).
    fn trusts(&self, address: &str) -> bool {
        self.services.iter().any(|service| {
            service == address
                || service
                    .strip_prefix("*.")
                    .is_some_and(|domain| address.ends_with(&format!(".{domain}")))
        })
    }

    /// The `Authorization` header for a push to `endpoint` at `now_secs`.
    pub fn authorization(&self, endpoint: &str, now_secs: i64) -> Result<String, String> {
        let uri: hyper::Uri = endpoint.parse().map_err(|e| format!("{e}"))?;
        let audience = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let header = BASE64URL.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = BASE64URL.encode(
            serde_json::json!({
                "aud": audience,
                "exp": now_secs + VAPID_LIFETIME_SECS,
                "sub": self.subject,
            })
            .to_string(),
        );
        let signing_input = format!("{header}.{claims}");
        let signature: p256::ecdsa::Signature =
            p256::ecdsa::SigningKey::from(&self.key).sign(signing_input.as_bytes());
        let token = format!("{signing_input}.{}", BASE64URL.encode(signature.to_bytes()));
        Ok(format!("vapid t={token}, k={}", self.public))
    }

    pub fn ttl_secs(&self) -> u32 {
        self.ttl_secs
    }
}

/// The sender: the VAPID identity and a bounded, retrying queue of pushes.
#[derive(Clone, Debug)]
pub struct Pusher {
    pub vapid: std::sync::Arc<Vapid>,
    outbound: Outbound,
}

impl Pusher {
    /// `None` when no VAPID key is configured.
    pub fn start(
        settings: &PushSettings,
        shutdown: &switchboard_shared::shutdown::Shutdown,
    ) -> Result<Option<Self>, String> {
        let Some(vapid) = Vapid::load(settings)? else {
            return Ok(None);
        };
        let outbound = Outbound::start(
            WebClient::new(None)?,
            POLICY,
            switchboard_shared::metrics::channel::WEB_PUSH,
            shutdown,
        )?;
        Ok(Some(Self {
            vapid: std::sync::Arc::new(vapid),
            outbound,
        }))
    }

    /// Queues `message` for one subscription; never waits. `gone` runs if
    /// the push service says the subscription no longer exists.
    pub fn offer(
        &self,
        message: &pb::Message,
        reason: Reason,
        subscription: &PushSubscription,
        gone: crate::outbound::OnRefused,
    ) -> Result<(), String> {
        let plaintext = notice(message, reason, subscription);
        let (ephemeral, salt) = fresh_keys();
        let body = encrypt(
            &plaintext,
            &subscription.p256dh,
            &subscription.auth,
            &ephemeral,
            salt,
        )?;
        let now_secs = switchboard_shared::clock::now_ms() / 1000;
        let authorization = self.vapid.authorization(&subscription.endpoint, now_secs)?;
        let ttl = self.vapid.ttl_secs().to_string();
        self.outbound.offer(Job {
            id: format!("{} for {}", message.message_id, subscription.endpoint),
            url: subscription.endpoint.clone(),
            body,
            headers: Box::new(move || {
                vec![
                    ("content-type", "application/octet-stream".to_owned()),
                    ("content-encoding", "aes128gcm".to_owned()),
                    ("ttl", ttl.clone()),
                    ("urgency", "high".to_owned()),
                    ("authorization", authorization.clone()),
                ]
            }),
            on_refused: Some(gone),
        });
        Ok(())
    }
}

/// What a push carries (before encryption): enough for the service worker
/// to show a notification and open the conversation.
#[derive(Debug, Serialize)]
pub struct Notice<'a> {
    pub conversation_id: &'a str,
    pub message_id: &'a str,
    pub seq: u64,
    pub sender: &'a str,
    pub reason: Reason,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub topic_name: &'a str,
    /// The text (cut), only where the subscription allows previews.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The JSON a subscription receives for `message`.
pub fn notice(message: &pb::Message, reason: Reason, subscription: &PushSubscription) -> Vec<u8> {
    let notice = Notice {
        conversation_id: &message.conversation_id,
        message_id: &message.message_id,
        seq: message.seq,
        sender: &message.sender,
        reason,
        topic_name: message.topic.as_ref().map_or("", |t| t.topic_name.as_str()),
        text: subscription
            .previews
            .then(|| message.text.chars().take(PREVIEW_CHARS).collect()),
    };
    serde_json::to_vec(&notice).expect("strings and numbers serialize")
}

/// `plaintext` encrypted for a subscription (RFC 8291): the `aes128gcm`
/// body, one record. `ephemeral` and `salt` are fresh per message (taken as
/// arguments so the RFC's example can be checked).
pub fn encrypt(
    plaintext: &[u8],
    p256dh: &str,
    auth: &str,
    ephemeral: &SecretKey,
    salt: [u8; 16],
) -> Result<Bytes, String> {
    let ua_public_bytes = BASE64URL
        .decode(p256dh.trim_end_matches('='))
        .map_err(|e| format!("p256dh: {e}"))?;
    let ua_public =
        PublicKey::from_sec1_bytes(&ua_public_bytes).map_err(|e| format!("p256dh: {e}"))?;
    let auth = BASE64URL
        .decode(auth.trim_end_matches('='))
        .map_err(|e| format!("auth: {e}"))?;
    let as_public = ephemeral.public_key().to_sec1_bytes();
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), ua_public.as_affine());

    // IKM = HKDF(auth, ecdh, "WebPush: info" 0 ua_public as_public, 32)
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&ua_public_bytes);
    key_info.extend_from_slice(&as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|e| e.to_string())?;
    let content = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    content
        .expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|e| e.to_string())?;
    content
        .expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|e| e.to_string())?;

    // One record: the plaintext, then the last-record delimiter.
    let mut record = plaintext.to_vec();
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &record,
                aad: b"",
            },
        )
        .map_err(|e| e.to_string())?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + as_public.len() + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(u8::try_from(as_public.len()).expect("65 bytes"));
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    Ok(body.into())
}

/// A fresh ephemeral key and salt for one message.
pub fn fresh_keys() -> (SecretKey, [u8; 16]) {
    let mut rng = rand::rng();
    let key = loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            break key;
        }
    };
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    (key, salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(services: &[&str]) -> PushSettings {
        PushSettings {
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            ..PushSettings::default()
        }
    }

    fn key(hex_or_b64: &str) -> SecretKey {
        SecretKey::from_slice(&BASE64URL.decode(hex_or_b64).unwrap()).unwrap()
    }

    #[test]
    fn the_rfc_8291_example_encrypts_to_its_published_body() {
        // RFC 8291 section 5 (and appendix A): the user agent's keys, the
        // application server's ephemeral key and salt, and the result.
        let plaintext = b"When I grow up, I want to be a watermelon";
        let ua_public = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        let auth = "BTBZMqHH6r4Tts7J_aSIgg";
        let as_private = key("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let salt: [u8; 16] = BASE64URL
            .decode("DGv6ra1nlYgDCS1FRnbzlw")
            .unwrap()
            .try_into()
            .unwrap();
        let body = encrypt(plaintext, ua_public, auth, &as_private, salt).unwrap();
        assert_eq!(
            BASE64URL.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn subscriptions_are_checked() {
        let vapid = Vapid::new(
            fresh_keys().0,
            &settings(&[
                "fcm.googleapis.com",
                "*.notify.windows.com",
                "127.0.0.1:8443",
            ]),
        )
        .unwrap();
        let p256dh = BASE64URL.encode(fresh_keys().0.public_key().to_sec1_bytes());
        let auth = BASE64URL.encode([7u8; 16]);
        assert!(
            vapid
                .check("https://fcm.googleapis.com/fcm/send/abc", &p256dh, &auth)
                .is_ok()
        );
        assert!(
            vapid
                .check("https://db5p.notify.windows.com/w/?token=x", &p256dh, &auth)
                .is_ok()
        );
        assert!(
            vapid
                .check("http://127.0.0.1:8443/push/1", &p256dh, &auth)
                .is_ok(),
            "listed with its port"
        );
        for (endpoint, why) in [
            ("https://internal.example/admin", "not a push service"),
            (
                "https://notify.windows.com.evil.example/x",
                "not a push service",
            ),
            ("http://fcm.googleapis.com/fcm/send/abc", "https://"),
            ("not a url at all", "not a URL"),
        ] {
            let err = vapid.check(endpoint, &p256dh, &auth).unwrap_err();
            assert!(err.contains(why), "{endpoint}: {err}");
        }
        let fcm = "https://fcm.googleapis.com/fcm/send/abc";
        assert!(
            vapid
                .check(fcm, "AAAA", &auth)
                .unwrap_err()
                .contains("p256dh")
        );
        assert!(
            vapid
                .check(fcm, &p256dh, &BASE64URL.encode([1u8; 8]))
                .unwrap_err()
                .contains("16 bytes")
        );
    }

    #[test]
    fn the_vapid_token_is_an_es256_jwt_for_the_push_service() {
        let (secret, _) = fresh_keys();
        let vapid = Vapid::new(secret.clone(), &settings(&[])).unwrap();
        let header = vapid
            .authorization("https://fcm.googleapis.com/fcm/send/abc", 1_000)
            .unwrap();
        let (token, k) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, vapid.public_key());
        let parts: Vec<&str> = token.split('.').collect();
        let claims: serde_json::Value =
            serde_json::from_slice(&BASE64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://fcm.googleapis.com");
        assert_eq!(claims["exp"], 1_000 + VAPID_LIFETIME_SECS);
        use p256::ecdsa::signature::Verifier as _;
        let signature =
            p256::ecdsa::Signature::from_slice(&BASE64URL.decode(parts[2]).unwrap()).unwrap();
        p256::ecdsa::VerifyingKey::from(secret.public_key())
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        assert!(
            Vapid::new(
                secret,
                &PushSettings {
                    subject: "ops@example.com".into(),
                    ..settings(&[])
                }
            )
            .is_err()
        );
    }
}
