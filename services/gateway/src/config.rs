//! The gateway's settings, each declared once here: its flag, environment
//! twin, default and help. The binary reads them (flags > environment >
//! config file > these defaults); tests start from [`GatewayConfig::default`].

use std::time::Duration;

use switchboard_shared::settings::millis;

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayConfig {
    /// Name of this gateway (the pod name in Kubernetes); a boot nonce is added.
    #[arg(
        id = "gateway_id",
        long = "gateway-id",
        env = "SB_GATEWAY_ID",
        default_value = "gateway"
    )]
    pub name: String,
    /// Deadline of a call to a router, every attempt included, in milliseconds: clients hear back within it (UNAVAILABLE if no router answered), whatever the bus does.
    #[arg(
        id = "router_timeout_ms",
        long = "router-timeout-ms",
        env = "SB_ROUTER_TIMEOUT_MS",
        default_value = "2000",
        value_parser = millis
    )]
    pub router_timeout: Duration,
    /// Times a read made for a live stream (a replay, a hole filled from history) is made in all, each with the whole router deadline, when no router answered it.
    #[arg(
        long = "stream-read-calls",
        env = "SB_STREAM_READ_CALLS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub stream_read_calls: u32,
    /// Client heartbeat interval on each stream, in milliseconds.
    #[arg(
        id = "client_heartbeat_ms",
        long = "client-heartbeat-ms",
        env = "SB_CLIENT_HEARTBEAT_MS",
        default_value = "15000",
        value_parser = millis
    )]
    pub client_heartbeat: Duration,
    /// How often the gateway heartbeats to presence, in milliseconds.
    #[arg(
        id = "presence_heartbeat_ms",
        long = "presence-heartbeat-ms",
        env = "SB_PRESENCE_HEARTBEAT_MS",
        default_value = "2000",
        value_parser = millis
    )]
    pub presence_heartbeat: Duration,
    /// How long presence keeps a silent gateway's connections, in milliseconds.
    #[arg(
        id = "presence_ttl_ms",
        long = "presence-ttl-ms",
        env = "SB_PRESENCE_TTL_MS",
        default_value = "8000",
        value_parser = millis
    )]
    pub presence_ttl: Duration,
    /// Deliveries queued per connection before it is cut off as a slow consumer.
    #[arg(
        long = "connection-queue",
        env = "SB_CONNECTION_QUEUE",
        default_value_t = 1024
    )]
    pub connection_queue: usize,
    /// How long a delivery that overtook an earlier message of its conversation waits for it, in milliseconds (0: none).
    #[arg(
        id = "reorder_hold_ms",
        long = "reorder-hold-ms",
        env = "SB_REORDER_HOLD_MS",
        default_value = "20",
        value_parser = millis
    )]
    pub reorder_hold: Duration,
    /// Largest request a client may send, in bytes; a larger one is refused with RESOURCE_EXHAUSTED (on a SendStream, that send alone).
    #[arg(long = "max-request-bytes", env = "SB_MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,
    /// Messages replayed per conversation when a stream resumes; past it the client gets a Gap(TRUNCATED) and pages history instead.
    #[arg(long = "max-replay", env = "SB_MAX_REPLAY", default_value_t = 5_000)]
    pub max_replay: u64,
    /// Origins whose web pages may call this gateway over gRPC-Web (CORS), comma-separated, e.g. https://app.example.com; "*" for any; empty: only the page the gateway serves.
    #[arg(
        long = "allowed-origins",
        env = "SB_ALLOWED_ORIGINS",
        default_value = "",
        value_parser = crate::cors::AllowedOrigins::parse
    )]
    pub allowed_origins: crate::cors::AllowedOrigins,
    /// Longest time SIGTERM waits for streams to end, in milliseconds.
    #[arg(
        id = "drain_grace_ms",
        long = "drain-grace-ms",
        env = "SB_DRAIN_GRACE_MS",
        default_value = "10000",
        value_parser = millis
    )]
    pub drain_grace: Duration,
    #[command(flatten)]
    pub tls: crate::tls::TlsSettings,
    #[command(flatten)]
    pub limits: Limits,
}

/// Explicit server limits (tonic leaves several unlimited by default).
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// HTTP/2 streams one client connection may have open at once.
    #[arg(
        long = "max-concurrent-streams",
        env = "SB_MAX_CONCURRENT_STREAMS",
        default_value_t = 256
    )]
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive PING interval, in milliseconds.
    #[arg(
        id = "keepalive_interval_ms",
        long = "keepalive-interval-ms",
        env = "SB_KEEPALIVE_INTERVAL_MS",
        default_value = "20000",
        value_parser = millis
    )]
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is dropped, in milliseconds.
    #[arg(
        id = "keepalive_timeout_ms",
        long = "keepalive-timeout-ms",
        env = "SB_KEEPALIVE_TIMEOUT_MS",
        default_value = "20000",
        value_parser = millis
    )]
    pub keepalive_timeout: Duration,
    /// Largest header block a client may send, in bytes.
    #[arg(
        id = "max_header_list_bytes",
        long = "max-header-list-bytes",
        env = "SB_MAX_HEADER_LIST_BYTES",
        default_value_t = 16 * 1024
    )]
    pub max_header_list_bytes: u32,
    /// Streams a client may open and reset before they are accepted ("rapid reset" cap).
    #[arg(
        long = "max-pending-reset-streams",
        env = "SB_MAX_PENDING_RESET_STREAMS",
        default_value_t = 64
    )]
    pub max_pending_reset_streams: usize,
    /// Streams the server may reset for protocol errors before it drops the connection.
    #[arg(
        long = "max-local-error-reset-streams",
        env = "SB_MAX_LOCAL_ERROR_RESET_STREAMS",
        default_value_t = 256
    )]
    pub max_local_error_reset_streams: usize,
    #[command(flatten)]
    pub connections: crate::listener::ConnectionLimits,
    /// How long a request's body may take to arrive (a SendStream's excepted), in milliseconds.
    #[arg(
        id = "request_body_timeout_ms",
        long = "request-body-timeout-ms",
        env = "SB_REQUEST_BODY_TIMEOUT_MS",
        default_value = "10000",
        value_parser = millis
    )]
    pub request_body_timeout: Duration,
    /// SendStream calls one user may have open on this gateway.
    #[arg(
        long = "max-send-streams-per-user",
        env = "SB_MAX_SEND_STREAMS_PER_USER",
        default_value_t = 4
    )]
    pub max_send_streams_per_user: usize,
    /// Client streams (subscriptions) this gateway holds at most.
    #[arg(
        long = "max-connections",
        env = "SB_MAX_CONNECTIONS",
        default_value_t = 18_000
    )]
    pub max_connections: usize,
    /// Client streams one user may have on this gateway.
    #[arg(
        long = "max-connections-per-user",
        env = "SB_MAX_CONNECTIONS_PER_USER",
        default_value_t = 16
    )]
    pub max_connections_per_user: usize,
    /// Sends per second one user may make through this gateway, on average.
    #[arg(
        id = "send_rate",
        long = "send-rate",
        env = "SB_SEND_RATE",
        default_value_t = 20.0
    )]
    pub send_rate_per_second: f64,
    /// Sends one user may make at once before the rate applies.
    #[arg(long = "send-burst", env = "SB_SEND_BURST", default_value_t = 60)]
    pub send_burst: u32,
    /// Call units per second one user may spend on this gateway, on average (a call costs 1; a history page 1 per 50 messages more; listing conversations 5).
    #[arg(
        id = "call_rate",
        long = "call-rate",
        env = "SB_CALL_RATE",
        default_value_t = 50.0
    )]
    pub call_rate_per_second: f64,
    /// Call units one user may spend at once before the rate applies.
    #[arg(long = "call-burst", env = "SB_CALL_BURST", default_value_t = 300)]
    pub call_burst: u32,
    /// Registrations and logins per second from one client address, on average.
    #[arg(
        id = "anonymous_rate",
        long = "anonymous-rate",
        env = "SB_ANONYMOUS_RATE",
        default_value_t = 5.0
    )]
    pub anonymous_rate_per_second: f64,
    /// Registrations and logins from one client address at once before the rate applies.
    #[arg(
        long = "anonymous-burst",
        env = "SB_ANONYMOUS_BURST",
        default_value_t = 30
    )]
    pub anonymous_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
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

    /// The defaults, named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_declared_ones() {
        let config = GatewayConfig::default();
        assert_eq!(config.name, "gateway");
        assert_eq!(config.router_timeout, Duration::from_secs(2));
        assert_eq!(config.stream_read_calls, 3);
        assert_eq!(config.limits.connections.max_connections, 20_000);
        assert_eq!(config.limits.max_connections, 18_000);
        assert!(config.tls.files().unwrap().is_none());
        assert_eq!(
            config.allowed_origins,
            crate::cors::AllowedOrigins::default()
        );
    }
}
