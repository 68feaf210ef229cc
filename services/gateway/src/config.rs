//! The gateway's settings. Built by the binary from flags; tests build it directly.

use std::time::Duration;

use switchboard_shared::token::TokenKey;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// This gateway's name (the pod name in Kubernetes); a boot nonce is added.
    pub name: String,
    pub token_key: TokenKey,
    /// Deadline of one request to a router.
    pub router_timeout: Duration,
    /// Attempts for calls that are safe to repeat.
    pub router_attempts: u32,
    /// How often a client stream gets a heartbeat event.
    pub client_heartbeat: Duration,
    /// How often the gateway tells presence it is alive.
    pub presence_heartbeat: Duration,
    /// How long presence keeps this gateway's connections without a heartbeat.
    pub presence_ttl: Duration,
    /// Deliveries queued per connection before it counts as a slow consumer.
    pub connection_queue: usize,
    /// Largest gRPC message accepted from a client, in bytes.
    pub max_request_bytes: usize,
    /// Messages replayed per conversation before a Gap(TRUNCATED) is sent instead.
    pub max_replay: u64,
}

impl GatewayConfig {
    pub fn new(name: impl Into<String>, token_key: TokenKey) -> Self {
        Self {
            name: name.into(),
            token_key,
            router_timeout: Duration::from_secs(2),
            router_attempts: 3,
            client_heartbeat: Duration::from_secs(15),
            presence_heartbeat: Duration::from_secs(2),
            presence_ttl: Duration::from_secs(8),
            connection_queue: 1024,
            max_request_bytes: 64 * 1024,
            max_replay: 5_000,
        }
    }
}
