//! The gateway's settings. Built by the binary from flags; tests build it directly.

use std::time::Duration;

use switchboard_shared::token::TokenKey;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// This gateway's name (the pod name in Kubernetes); a boot nonce is added.
    pub name: String,
    pub token_key: TokenKey,
    /// Deadline of a call to a router, every attempt included: a client hears
    /// back within it (UNAVAILABLE if no router answered) whatever the bus does.
    pub router_timeout: Duration,
    /// How often a client stream gets a heartbeat event.
    pub client_heartbeat: Duration,
    /// How often the gateway tells presence it is alive.
    pub presence_heartbeat: Duration,
    /// How long presence keeps this gateway's connections without a heartbeat.
    pub presence_ttl: Duration,
    /// Deliveries queued per connection before it counts as a slow consumer.
    pub connection_queue: usize,
    /// How long a message that arrives ahead of an earlier one of its
    /// conversation waits for it (see [`crate::sequencer`]); zero for none.
    pub reorder_hold: Duration,
    /// Largest request a client may make, in bytes; a larger one is refused
    /// with RESOURCE_EXHAUSTED (on a SendStream, that send alone).
    pub max_request_bytes: usize,
    /// Messages replayed per conversation before a Gap(TRUNCATED) is sent instead.
    pub max_replay: u64,
    /// Origins whose pages may call this gateway (CORS); its own page always may.
    pub allowed_origins: crate::cors::AllowedOrigins,
    /// Certificate and key when the client port speaks TLS; plaintext without.
    pub tls: Option<crate::tls::TlsFiles>,
    pub limits: Limits,
}

/// Explicit server limits (tonic leaves several unlimited by default).
#[derive(Debug, Clone)]
pub struct Limits {
    /// HTTP/2 streams one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// HTTP/2 PING interval; a peer that does not answer within the timeout is dropped.
    pub keepalive_interval: std::time::Duration,
    pub keepalive_timeout: std::time::Duration,
    /// Largest header block a client may send, in bytes.
    pub max_header_list_bytes: u32,
    /// Streams a client may open and reset before they are accepted ("rapid reset").
    pub max_pending_reset_streams: usize,
    /// Streams the server may reset for protocol errors before it drops the connection.
    pub max_local_error_reset_streams: usize,
    /// Client connections (TCP), per gateway and per source address, and how
    /// long one may go without an authenticated call.
    pub connections: crate::listener::ConnectionLimits,
    /// How long a request's body may take to arrive (a SendStream's excepted).
    pub request_body_timeout: std::time::Duration,
    /// SendStream calls one user may have open on this gateway.
    pub max_send_streams_per_user: usize,
    /// Client streams (subscriptions) this gateway holds at most.
    pub max_connections: usize,
    /// Client streams one user may have on this gateway.
    pub max_connections_per_user: usize,
    /// Sends per second one user may make through this gateway, on average...
    pub send_rate_per_second: f64,
    /// ...and in a burst.
    pub send_burst: u32,
    /// Call units per second one user may spend on this gateway, on average
    /// (a call costs 1, a read by its size: see `limits::call_cost`)...
    pub call_rate_per_second: f64,
    /// ...and in a burst.
    pub call_burst: u32,
    /// Registrations and logins per second from one client address...
    pub anonymous_rate_per_second: f64,
    /// ...and in a burst.
    pub anonymous_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            keepalive_interval: std::time::Duration::from_secs(20),
            keepalive_timeout: std::time::Duration::from_secs(20),
            max_header_list_bytes: 16 * 1024,
            max_pending_reset_streams: 64,
            max_local_error_reset_streams: 256,
            connections: crate::listener::ConnectionLimits::default(),
            request_body_timeout: std::time::Duration::from_secs(10),
            max_send_streams_per_user: 4,
            max_connections: 18_000,
            max_connections_per_user: 16,
            send_rate_per_second: 20.0,
            send_burst: 60,
            call_rate_per_second: 50.0,
            call_burst: 300,
            anonymous_rate_per_second: 5.0,
            anonymous_burst: 30,
        }
    }
}

/// How far past `max_request_bytes` a message frame is still read (to be
/// refused on its own) rather than ending its call.
const FRAME_FACTOR: usize = 4;

impl GatewayConfig {
    /// The largest gRPC message frame read at all: past it the transport
    /// cannot take the message and ends the call with RESOURCE_EXHAUSTED.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_request_bytes.saturating_mul(FRAME_FACTOR)
    }

    pub fn new(name: impl Into<String>, token_key: TokenKey) -> Self {
        Self {
            name: name.into(),
            token_key,
            router_timeout: Duration::from_secs(2),
            client_heartbeat: Duration::from_secs(15),
            presence_heartbeat: Duration::from_secs(2),
            presence_ttl: Duration::from_secs(8),
            connection_queue: 1024,
            reorder_hold: Duration::from_millis(20),
            max_request_bytes: 64 * 1024,
            max_replay: 5_000,
            allowed_origins: crate::cors::AllowedOrigins::None,
            tls: None,
            limits: Limits::default(),
        }
    }
}
