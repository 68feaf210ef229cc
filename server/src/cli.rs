//! The command line. Each service's settings are declared once, on its
//! config struct (flag, environment twin, default, help); this file only
//! says which role takes which. Values come from flags, then the
//! environment, then the config file (`--config`), then the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use switchboard_gateway::GatewayConfig;
use switchboard_presence::PresenceConfig;
use switchboard_router::RouterConfig;
use switchboard_shared::bus::nats::NatsConfig;
use switchboard_shared::redis_pool::RedisConfig;
use switchboard_shared::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard instant-messaging server.\n\nWithout a role it runs everything in one process on an embedded store: no NATS, no Redis."
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub log: LogArgs,
    /// Config file (TOML): `setting = value` with the flags' names, e.g. `nats-url = "nats://nats:4222"`; a `[gateway]`, `[router]`, `[presence]` or `[standalone]` table applies to that role alone. Flags and the environment override it. `switchboard genconfig` writes one with every setting.
    #[arg(long, env = "SB_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Standalone settings (used when no role is given).
    #[command(flatten)]
    pub standalone: StandaloneArgs,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Hold client connections (gRPC, gRPC-Web) and forward to routers over NATS.
    Gateway(GatewayRole),
    /// Authorize, sequence, store and route messages (NATS + Redis + PostgreSQL).
    Router(RouterRole),
    /// Track which gateway holds each connection (NATS + Redis).
    Presence(PresenceRole),
    /// Everything in one process on an embedded store (the default).
    Standalone(StandaloneArgs),
    /// Print a config file with every setting of a role, its help and its default (commented out).
    Genconfig(GenconfigArgs),
    /// Print a JWT for a user, signed with an app's private key, for LoginWithToken (to try app tokens before the app's backend issues them).
    Gentoken(GentokenArgs),
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log lines as JSON (one object per line), text, or auto (text on a terminal).
    #[arg(long, env = "SB_LOG_FORMAT", default_value = "auto", global = true)]
    pub log_format: LogFormat,
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

/// Where a router keeps history.
#[derive(Debug, Args, Clone)]
pub struct HistoryArgs {
    /// History store (PostgreSQL), where messages are kept: postgres://user:password@host:port/db. Required by a router.
    #[arg(long, env = "SB_HISTORY_URL", hide_env_values = true)]
    pub history_url: Option<String>,
    /// Connections to the history store.
    #[arg(long, env = "SB_HISTORY_POOL_SIZE", default_value_t = 8)]
    pub history_pool_size: usize,
    /// How long the history writer waits for more messages to share a transaction with, in microseconds (0 = none).
    #[arg(
        id = "history_gather_us",
        long = "history-gather-us",
        env = "SB_HISTORY_GATHER_US",
        default_value = "500",
        value_parser = switchboard_shared::settings::micros
    )]
    pub history_gather: std::time::Duration,
}

#[derive(Debug, Args, Clone)]
pub struct HealthArgs {
    /// Where gRPC health and reflection are served (and on a router the admin API, when SB_ADMIN_TOKENS is set).
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
    pub nats: NatsConfig,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub gateway: GatewayConfig,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct RouterRole {
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub router: RouterConfig,
    #[command(flatten)]
    pub history: HistoryArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct PresenceRole {
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub presence: PresenceConfig,
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
    pub gateway: GatewayConfig,
    #[command(flatten)]
    pub router: RouterConfig,
    #[command(flatten)]
    pub presence: PresenceConfig,
}

/// The roles a config file can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleName {
    Standalone,
    Gateway,
    Router,
    Presence,
}

impl RoleName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Gateway => "gateway",
            Self::Router => "router",
            Self::Presence => "presence",
        }
    }
}

#[derive(Debug, Args)]
pub struct GenconfigArgs {
    /// The role whose settings to write.
    #[arg(value_enum, default_value = "standalone")]
    pub role: RoleName,
}

#[derive(Debug, Args)]
pub struct GentokenArgs {
    /// The user the token names (`sub`): the app's own id for them.
    pub user: String,
    /// The app's private key (PEM): RSA signs RS256, EC P-256 signs ES256.
    #[arg(long)]
    pub jwt_private_key: PathBuf,
    /// The `iss` to put in the token (what the routers' --jwt-issuer names).
    #[arg(long, env = "SB_JWT_ISSUER")]
    pub jwt_issuer: String,
    /// The `aud` to put in the token (what the routers' --jwt-audience names).
    #[arg(long, env = "SB_JWT_AUDIENCE")]
    pub jwt_audience: String,
    /// A display name for a user seen for the first time (`name`).
    #[arg(long)]
    pub name: Option<String>,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u64,
}

/// Names a setting's value in `--help` after its flag (`--router-timeout-ms
/// <ROUTER_TIMEOUT_MS>`), whatever its field is called.
fn value_named_after_flag(arg: clap::Arg) -> clap::Arg {
    match arg
        .get_long()
        .map(|long| long.replace('-', "_").to_uppercase())
    {
        Some(name) if arg.get_action().takes_values() => arg.value_name(name),
        _ => arg,
    }
}

/// The command line: [`Cli`]'s, as `--help` shows it.
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    Cli::command()
        .mut_args(value_named_after_flag)
        .mut_subcommands(|sub| sub.mut_args(value_named_after_flag))
}
