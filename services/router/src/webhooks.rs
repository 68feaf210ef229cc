//! Webhooks for app backends: a new message for a user with no device
//! online is POSTed to the deployment's URL, so its app can wake the user
//! through FCM, APNs or mail itself. Who is told, and why, is decided in
//! `offline.rs`, as for Web Push.
//!
//! The requests follow Standard Webhooks (standardwebhooks.com), so an app
//! can verify them with that project's libraries: headers `webhook-id` (the
//! same on every attempt: a receiver drops the repeats), `webhook-timestamp`
//! (Unix seconds, of this attempt) and `webhook-signature`: `v1,` and the
//! base64 HMAC-SHA256 of `id.timestamp.body` under the secret
//! (`whsec_` + base64 of its bytes). A receiver refuses a timestamp more than
//! a few minutes away from its clock, which is what makes a replay fail.
//!
//! Delivery is at least once within a bounded effort, through the
//! router's outbound queue (`outbound.rs`: retries with backoff, a bound past
//! which new webhooks are dropped and counted, never slowing a send).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::Sha256;
use switchboard_proto::pb;
use switchboard_shared::ids::UserId;
use switchboard_shared::metrics::channel;
use switchboard_shared::settings::millis;
use switchboard_shared::shutdown::Shutdown;

use crate::offline::Reason;
use crate::outbound::{Job, Outbound, Policy};
use crate::web_client::{WebClient, check_url};

/// The event type every payload carries.
pub const MESSAGE_OFFLINE: &str = "message.offline";

#[derive(Debug, Clone, clap::Args)]
pub struct WebhookSettings {
    /// Where new messages for users with no device online are POSTed (https://, or http:// to a loopback address). Unset: no webhooks.
    #[arg(id = "webhook_url", long = "webhook-url", env = "SB_WEBHOOK_URL")]
    pub url: Option<String>,
    /// The webhooks' signing secret: `whsec_` and the base64 of 24 to 64 random bytes (Standard Webhooks).
    #[arg(
        id = "webhook_secret",
        long = "webhook-secret",
        env = "SB_WEBHOOK_SECRET",
        hide_env_values = true,
        value_parser = WebhookSecret::parse
    )]
    pub secret: Option<WebhookSecret>,
    /// A PEM file of CA certificates trusted for the webhook URL besides the bundled web roots.
    #[arg(id = "webhook_ca", long = "webhook-ca", env = "SB_WEBHOOK_CA")]
    pub ca: Option<PathBuf>,
    /// Webhooks waiting or being retried at most; past it a new one is dropped (and counted).
    #[arg(
        id = "webhook_queue",
        long = "webhook-queue",
        env = "SB_WEBHOOK_QUEUE",
        default_value_t = 10_000
    )]
    pub queue: usize,
    /// POSTs in flight at once.
    #[arg(
        id = "webhook_concurrency",
        long = "webhook-concurrency",
        env = "SB_WEBHOOK_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,
    /// Attempts per webhook before it is given up.
    #[arg(
        id = "webhook_attempts",
        long = "webhook-attempts",
        env = "SB_WEBHOOK_ATTEMPTS",
        default_value_t = 8
    )]
    pub attempts: u32,
    /// The wait before the first retry, in milliseconds; doubled for each further one (at most 5 minutes), with jitter.
    #[arg(
        id = "webhook_retry_ms",
        long = "webhook-retry-ms",
        env = "SB_WEBHOOK_RETRY_MS",
        default_value = "1000",
        value_parser = millis
    )]
    pub first_retry: Duration,
    /// How long one POST may take, in milliseconds, before it counts as failed.
    #[arg(
        id = "webhook_timeout_ms",
        long = "webhook-timeout-ms",
        env = "SB_WEBHOOK_TIMEOUT_MS",
        default_value = "5000",
        value_parser = millis
    )]
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
    }
}

/// The key that signs webhooks; never printed.
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8]>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let encoded = raw
            .strip_prefix("whsec_")
            .ok_or("a webhook secret starts with whsec_ (then base64)")?;
        let key = BASE64
            .decode(encoded)
            .map_err(|e| format!("a webhook secret is whsec_ and base64: {e}"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "a webhook secret holds 24 to 64 bytes, this one {}",
                key.len()
            ));
        }
        Ok(Self(key.into()))
    }

    /// `webhook-signature` for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key size");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// What one webhook says: Standard Webhooks' `type` and `data`.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub data: OfflineMessage<'a>,
}

#[derive(Debug, Serialize)]
pub struct OfflineMessage<'a> {
    /// Who should be woken.
    pub user_id: &'a str,
    pub reason: Reason,
    pub conversation_id: &'a str,
    pub seq: u64,
    pub message_id: &'a str,
    pub sender: &'a str,
    pub sent_at_ms: i64,
    pub text: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub topic_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub topic_name: &'a str,
}

/// One webhook ready to post: its id and body.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: String,
    pub body: Bytes,
}

impl Webhook {
    pub fn offline_message(message: &pb::Message, user: &UserId, reason: Reason) -> Self {
        let tag = message.topic.as_ref();
        let payload = Payload {
            kind: MESSAGE_OFFLINE,
            data: OfflineMessage {
                user_id: user.as_str(),
                reason,
                conversation_id: &message.conversation_id,
                seq: message.seq,
                message_id: &message.message_id,
                sender: &message.sender,
                sent_at_ms: message.sent_at_ms,
                text: &message.text,
                topic_id: tag.map_or("", |t| t.topic_id.as_str()),
                topic_name: tag.map_or("", |t| t.topic_name.as_str()),
            },
        };
        Self {
            // The same on every attempt and every redelivery of the message.
            id: format!("{}:{user}", message.message_id),
            body: serde_json::to_vec(&payload)
                .expect("a payload of strings and numbers serializes")
                .into(),
        }
    }
}

/// The sender: webhooks on a bounded, retrying queue of their own.
#[derive(Clone, Debug)]
pub struct Webhooks {
    url: String,
    secret: WebhookSecret,
    outbound: Outbound,
}

impl Webhooks {
    /// `None` when no URL is set; an error for settings that cannot work.
    pub fn start(settings: &WebhookSettings, shutdown: &Shutdown) -> Result<Option<Self>, String> {
        let Some(url) = settings.url.clone() else {
            return Ok(None);
        };
        check_url(&url, "webhooks are posted")?;
        let secret = settings
            .secret
            .clone()
            .ok_or("a webhook URL needs a webhook secret (SB_WEBHOOK_SECRET)")?;
        let policy = Policy {
            queue: settings.queue,
            concurrency: settings.concurrency,
            attempts: settings.attempts,
            first_retry: settings.first_retry,
            timeout: settings.timeout,
        };
        let outbound = Outbound::start(
            WebClient::with_ca_file(settings.ca.as_deref())?,
            policy,
            channel::WEBHOOK,
            shutdown,
        )?;
        Ok(Some(Self {
            url,
            secret,
            outbound,
        }))
    }

    /// Queues a webhook; never waits.
    pub fn offer(&self, webhook: Webhook) {
        let secret = self.secret.clone();
        let (id, body) = (webhook.id.clone(), webhook.body.clone());
        // Signed anew for each attempt: its timestamp is the attempt's.
        let headers = move || {
            let timestamp = switchboard_shared::clock::now_ms() / 1000;
            vec![
                ("content-type", "application/json".to_owned()),
                ("webhook-id", id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", secret.sign(&id, timestamp, &body)),
            ]
        };
        self.outbound.offer(Job {
            id: webhook.id,
            url: self.url.clone(),
            body: webhook.body,
            headers: Box::new(headers),
            on_refused: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::tests::{message, user};

    #[test]
    fn the_signature_is_standard_webhooks() {
        // The specification's own example (github.com/standard-webhooks),
        // also what its Python library signs for these values.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        let short = format!("whsec_{}", BASE64.encode([1u8; 16]));
        assert!(WebhookSecret::parse(&short).unwrap_err().contains("16"));
        let long = format!("whsec_{}", BASE64.encode([1u8; 65]));
        assert!(WebhookSecret::parse(&long).is_err());
        assert!(
            format!(
                "{:?}",
                WebhookSecret::parse(&format!("whsec_{}", BASE64.encode([7u8; 32]))).unwrap()
            )
            .contains('…')
        );
    }

    #[test]
    fn the_payload_names_the_user_and_carries_the_message() {
        let mut copy = message("t:tlaunch1:bob", "ann");
        copy.topic = Some(pb::TopicTag {
            topic_id: "tlaunch1".into(),
            topic_name: "Launch".into(),
            owner_id: "ann".into(),
            contact_id: "bob".into(),
            ..Default::default()
        });
        let webhook = Webhook::offline_message(&copy, &user("bob"), Reason::Topic);
        assert_eq!(webhook.id, "m1:bob");
        let body: serde_json::Value = serde_json::from_slice(&webhook.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "message.offline",
                "data": {
                    "user_id": "bob", "reason": "topic", "conversation_id": "t:tlaunch1:bob",
                    "seq": 7, "message_id": "m1", "sender": "ann", "sent_at_ms": 1000,
                    "text": "hello @cyd", "topic_id": "tlaunch1", "topic_name": "Launch"
                }
            })
        );
        let direct =
            Webhook::offline_message(&message("dm:ann:bob", "ann"), &user("bob"), Reason::Direct);
        let body: serde_json::Value = serde_json::from_slice(&direct.body).unwrap();
        assert!(body["data"].get("topic_id").is_none());
    }
}
