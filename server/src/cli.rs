//! Command-line flags. Every flag has an environment twin, shown in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switchboard_shared::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard instant-messaging server.\n\nWithout a role it runs everything in one process on an embedded store: no NATS, no Redis."
)]
pub struct Cli {
    #[command(subcommand)]
    pub role: Option<Role>,
    #[command(flatten)]
    pub log: LogArgs,
    /// Standalone settings (used when no role is given).
    #[command(flatten)]
    pub standalone: StandaloneArgs,
}

#[derive(Debug, Subcommand)]
pub enum Role {
    /// Hold client connections (gRPC, gRPC-Web) and forward to routers over NATS.
    Gateway(GatewayRole),
    /// Authorize, sequence, store and route messages (NATS + Redis).
    Router(RouterRole),
    /// Track which gateway holds each connection (NATS + Redis).
    Presence(PresenceRole),
    /// Everything in one process on an embedded store (the default).
    Standalone(StandaloneArgs),
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log lines as JSON (one object per line), text, or auto (text on a terminal).
    #[arg(long, env = "SB_LOG_FORMAT", default_value = "auto", global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args, Clone)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated; tls:// for TLS.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// NATS user (with --nats-password).
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS credentials file (JWT + nkey).
    #[arg(long, env = "NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct RedisArgs {
    /// Redis URL: redis://[user:password@]host:port[/db], rediss:// for TLS.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Multiplexed Redis connections (each pipelines concurrent requests).
    #[arg(long, env = "SB_REDIS_POOL_SIZE", default_value_t = 4)]
    pub redis_pool_size: usize,
    /// Bound on connecting to Redis and on each command, in milliseconds: past it the call fails UNAVAILABLE.
    #[arg(long, env = "SB_REDIS_TIMEOUT_MS", default_value_t = 1_000)]
    pub redis_timeout_ms: u64,
}

#[derive(Debug, Args, Clone)]
pub struct SecretArgs {
    /// Key that signs session tokens; the same on every gateway and router (at least 32 bytes).
    #[arg(long, env = "SB_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: String,
    /// Earlier token secrets, comma-separated: tokens they signed are still accepted (a rotation logs no one out). Drop each once the longest session it signed has expired.
    #[arg(
        long,
        env = "SB_TOKEN_SECRETS_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub token_secrets_previous: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct GatewayArgs {
    /// Name of this gateway (the pod name in Kubernetes).
    #[arg(long, env = "SB_GATEWAY_ID", default_value = "gateway")]
    pub gateway_id: String,
    /// Client heartbeat interval on each stream, in milliseconds.
    #[arg(long, env = "SB_CLIENT_HEARTBEAT_MS", default_value_t = 15_000)]
    pub client_heartbeat_ms: u64,
    /// How often the gateway heartbeats to presence, in milliseconds.
    #[arg(long, env = "SB_PRESENCE_HEARTBEAT_MS", default_value_t = 2_000)]
    pub presence_heartbeat_ms: u64,
    /// How long presence keeps a silent gateway's connections, in milliseconds.
    #[arg(long, env = "SB_PRESENCE_TTL_MS", default_value_t = 8_000)]
    pub presence_ttl_ms: u64,
    /// Deliveries queued per connection before it is cut off as a slow consumer.
    #[arg(long, env = "SB_CONNECTION_QUEUE", default_value_t = 1024)]
    pub connection_queue: usize,
    /// How long a delivery that overtook an earlier message of its conversation waits for it, in milliseconds (0: none).
    #[arg(long, env = "SB_REORDER_HOLD_MS", default_value_t = 20)]
    pub reorder_hold_ms: u64,
    /// Largest request a client may send, in bytes.
    #[arg(long, env = "SB_MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,
    /// PEM certificate chain (leaf first): with --tls-key, clients connect over TLS (gRPC, gRPC-Web and the page, on the same port).
    #[arg(long, env = "SB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate (with --tls-cert).
    #[arg(long, env = "SB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How often the certificate and key files are read again; a changed pair serves new connections, open ones keep theirs. In milliseconds.
    #[arg(long, env = "SB_TLS_RELOAD_MS", default_value_t = 10_000)]
    pub tls_reload_ms: u64,
    /// Origins whose web pages may call this gateway over gRPC-Web (CORS), comma-separated, e.g. https://app.example.com; "*" for any; empty: only the page the gateway serves.
    #[arg(long, env = "SB_ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// Deadline of a call to a router, every attempt included, in milliseconds: clients hear back within it.
    #[arg(long, env = "SB_ROUTER_TIMEOUT_MS", default_value_t = 2_000)]
    pub router_timeout_ms: u64,
    /// Longest time SIGTERM waits for streams to end, in milliseconds.
    #[arg(long, env = "SB_DRAIN_GRACE_MS", default_value_t = 10_000)]
    pub drain_grace_ms: u64,
    /// HTTP/2 streams one client connection may have open at once.
    #[arg(long, env = "SB_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive PING interval, in milliseconds.
    #[arg(long, env = "SB_KEEPALIVE_INTERVAL_MS", default_value_t = 20_000)]
    pub keepalive_interval_ms: u64,
    /// How long a PING may go unanswered before the connection is dropped, in milliseconds.
    #[arg(long, env = "SB_KEEPALIVE_TIMEOUT_MS", default_value_t = 20_000)]
    pub keepalive_timeout_ms: u64,
    /// Largest header block a client may send, in bytes.
    #[arg(long, env = "SB_MAX_HEADER_LIST_BYTES", default_value_t = 16 * 1024)]
    pub max_header_list_bytes: u32,
    /// Streams a client may open and reset before they are accepted ("rapid reset" cap).
    #[arg(long, env = "SB_MAX_PENDING_RESET_STREAMS", default_value_t = 64)]
    pub max_pending_reset_streams: usize,
    /// Streams the server may reset for protocol errors before it drops the connection.
    #[arg(long, env = "SB_MAX_LOCAL_ERROR_RESET_STREAMS", default_value_t = 256)]
    pub max_local_error_reset_streams: usize,
    /// Client connections (TCP) this gateway holds at most; lowered to what the file-descriptor limit allows.
    #[arg(long, env = "SB_MAX_CLIENT_CONNECTIONS", default_value_t = 20_000)]
    pub max_client_connections: usize,
    /// Client connections from one source address (0: no cap, e.g. behind a proxy).
    #[arg(long, env = "SB_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 2_048)]
    pub max_connections_per_address: usize,
    /// A connection with no authenticated call for this long is closed, in milliseconds.
    #[arg(long, env = "SB_IDLE_CONNECTION_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_connection_timeout_ms: u64,
    /// How long a request's body may take to arrive (a SendStream's excepted), in milliseconds.
    #[arg(long, env = "SB_REQUEST_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_body_timeout_ms: u64,
    /// SendStream calls one user may have open on this gateway.
    #[arg(long, env = "SB_MAX_SEND_STREAMS_PER_USER", default_value_t = 4)]
    pub max_send_streams_per_user: usize,
    /// Client streams this gateway holds at most.
    #[arg(long, env = "SB_MAX_CONNECTIONS", default_value_t = 18_000)]
    pub max_connections: usize,
    /// Client streams one user may have on this gateway.
    #[arg(long, env = "SB_MAX_CONNECTIONS_PER_USER", default_value_t = 16)]
    pub max_connections_per_user: usize,
    /// Sends per second one user may make through this gateway, on average.
    #[arg(long, env = "SB_SEND_RATE", default_value_t = 20.0)]
    pub send_rate: f64,
    /// Sends one user may make at once before the rate applies.
    #[arg(long, env = "SB_SEND_BURST", default_value_t = 60)]
    pub send_burst: u32,
    /// Call units per second one user may spend on this gateway, on average (a call costs 1; a history page 1 per 50 messages more; listing conversations 5).
    #[arg(long, env = "SB_CALL_RATE", default_value_t = 50.0)]
    pub call_rate: f64,
    /// Call units one user may spend at once before the rate applies.
    #[arg(long, env = "SB_CALL_BURST", default_value_t = 300)]
    pub call_burst: u32,
    /// Registrations and logins per second from one client address, on average.
    #[arg(long, env = "SB_ANONYMOUS_RATE", default_value_t = 5.0)]
    pub anonymous_rate: f64,
    /// Registrations and logins from one client address at once before the rate applies.
    #[arg(long, env = "SB_ANONYMOUS_BURST", default_value_t = 30)]
    pub anonymous_burst: u32,
}

#[derive(Debug, Args, Clone)]
pub struct RouterArgs {
    /// Largest message text, in bytes.
    #[arg(long, env = "SB_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024)]
    pub max_message_bytes: usize,
    /// Session lifetime, in hours.
    #[arg(long, env = "SB_SESSION_TTL_HOURS", default_value_t = 720)]
    pub session_ttl_hours: u64,
    /// Password hashing cost: owasp (argon2id m=19MiB t=2), or fast-insecure for tests only.
    #[arg(long, env = "SB_PASSWORD_HASHING", default_value = "owasp")]
    pub password_hashing: PasswordHashingArg,
    /// Redeliver outbox entries older than this, in milliseconds.
    #[arg(long, env = "SB_OUTBOX_REDELIVER_MS", default_value_t = 3_000)]
    pub outbox_redeliver_ms: u64,
    /// Failed logins for one account before further attempts are refused until the window ends.
    #[arg(long, env = "SB_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    pub login_failures_per_account: u32,
    /// Failed logins from one client address (any account) before further attempts are refused.
    #[arg(long, env = "SB_LOGIN_FAILURES_PER_ADDRESS", default_value_t = 50)]
    pub login_failures_per_address: u32,
    /// How long failed logins are counted, in seconds (from the first one).
    #[arg(long, env = "SB_LOGIN_FAILURE_WINDOW_SECS", default_value_t = 900)]
    pub login_failure_window_secs: u64,
    /// Threads hashing passwords, at idle priority so they never take CPU from messages.
    #[arg(long, env = "SB_HASHING_THREADS", default_value_t = 1)]
    pub hashing_threads: usize,
    /// History store (PostgreSQL), where messages are kept: postgres://user:password@host:port/db. Required by a router.
    #[arg(long, env = "SB_HISTORY_URL", hide_env_values = true)]
    pub history_url: Option<String>,
    /// Connections to the history store.
    #[arg(long, env = "SB_HISTORY_POOL_SIZE", default_value_t = 8)]
    pub history_pool_size: usize,
    /// How long the history writer waits for more messages to share a transaction with, in microseconds (0 = none).
    #[arg(long, env = "SB_HISTORY_GATHER_US", default_value_t = 500)]
    pub history_gather_us: u64,
    /// An app whose backend signs JWTs for its users (LoginWithToken): the `iss` its tokens carry. With --jwt-audience and --jwt-keys; unset: no app tokens.
    #[arg(long, env = "SB_JWT_ISSUER", requires_all = ["jwt_audience", "jwt_keys"])]
    pub jwt_issuer: Option<String>,
    /// The `aud` an app token must carry to be accepted here.
    #[arg(long, env = "SB_JWT_AUDIENCE", requires = "jwt_issuer")]
    pub jwt_audience: Option<String>,
    /// The app's public keys, comma-separated files: PEM (RSA for RS256, EC P-256 for ES256) or JWKS documents.
    #[arg(
        long,
        env = "SB_JWT_KEYS",
        value_delimiter = ',',
        requires = "jwt_issuer"
    )]
    pub jwt_keys: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PasswordHashingArg {
    Owasp,
    FastInsecure,
}

#[derive(Debug, Args, Clone)]
pub struct PresenceArgs {
    /// How often dead gateways are looked for, in milliseconds.
    #[arg(long, env = "SB_REAP_EVERY_MS", default_value_t = 1_000)]
    pub reap_every_ms: u64,
}

#[derive(Debug, Args, Clone)]
pub struct HealthArgs {
    /// Where gRPC health and reflection are served.
    #[arg(long, env = "SB_HEALTH_LISTEN", default_value = "0.0.0.0:7310")]
    pub health_listen: SocketAddr,
}

#[derive(Debug, Args, Clone)]
pub struct MetricsArgs {
    /// Where Prometheus metrics are served (GET /metrics), e.g. 0.0.0.0:9090; "off" for none.
    #[arg(long, env = "SB_METRICS_LISTEN", default_value = "off")]
    pub metrics_listen: String,
}

#[derive(Debug, Args)]
pub struct GatewayRole {
    /// Address for clients (gRPC, gRPC-Web, health).
    #[arg(long, env = "SB_LISTEN", default_value = "0.0.0.0:7300")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct RouterRole {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub router: RouterArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct PresenceRole {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub presence: PresenceArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args, Clone)]
pub struct StandaloneArgs {
    /// Address for clients (gRPC, gRPC-Web, health).
    #[arg(long = "listen", env = "SB_LISTEN", default_value = "127.0.0.1:7300")]
    pub standalone_listen: SocketAddr,
    /// Where the embedded store keeps its file and the token key.
    #[arg(long, env = "SB_DATA_DIR", default_value = "switchboard-data")]
    pub data_dir: PathBuf,
    /// Where Prometheus metrics are served (GET /metrics); "off" to disable.
    #[arg(
        long = "metrics-listen",
        env = "SB_METRICS_LISTEN",
        default_value = "off"
    )]
    pub standalone_metrics_listen: String,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub router: RouterArgs,
    #[command(flatten)]
    pub presence: PresenceArgs,
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
