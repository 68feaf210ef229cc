//! Wiring of each role: which bus, store and presence backend, and which
//! services run. No logic of its own.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchboard_gateway::Gateway;
use switchboard_presence::memory::MemoryPresence;
use switchboard_presence::reaper::Reaper;
use switchboard_presence::redis::RedisPresence;
use switchboard_presence::service::PresenceService;
use switchboard_presence::{Directory, PresenceConfig, Registry};
use switchboard_proto::pb::admin_service_server::AdminServiceServer;
use switchboard_router::admin::AdminTokens;
use switchboard_router::config::RouterKeys;
use switchboard_router::store::embedded::EmbeddedStore;
use switchboard_router::store::history::{HistoryWriter, PgHistory};
use switchboard_router::store::redis::{RecordTtls, RedisStore};
use switchboard_router::store::{Store, StoreError};
use switchboard_router::{Router, RouterConfig};
use switchboard_shared::bus::SharedBus;
use switchboard_shared::bus::local::LocalBus;
use switchboard_shared::bus::nats::{NatsBus, NatsConfig};
use switchboard_shared::redis_pool::{self, Pool, RedisConfig};
use switchboard_shared::shutdown::{self, Shutdown};
use switchboard_shared::token::TokenKey;
use tokio::net::TcpListener;
use tonic_health::server::HealthReporter;

use crate::admin::{self, AdminApi};
use crate::cli::{GatewayRole, PresenceRole, RouterRole, SecretArgs, StandaloneArgs};
use crate::{health, metrics};

async fn nats(config: &NatsConfig, role: &str) -> anyhow::Result<SharedBus> {
    let config = NatsConfig {
        client_name: format!("switchboard-{role}"),
        ..config.clone()
    };
    Ok(Arc::new(NatsBus::connect(&config).await?))
}

async fn redis(config: &RedisConfig, shutdown: &Shutdown) -> anyhow::Result<Pool> {
    redis_pool::connect_patiently(config, &shutdown.token).await
}

/// The router's keys; an app's JWKS URLs are fetched once (a failure is
/// logged, not fatal: app tokens wait for the keys) and then kept fresh.
async fn router_keys(
    config: &RouterConfig,
    session: TokenKey,
    shutdown: &Shutdown,
) -> anyhow::Result<RouterKeys> {
    let app = config
        .app_tokens
        .load()
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    if let Some(tokens) = &app {
        if tokens.fetches() {
            if let Err(err) = tokens.refresh().await {
                tracing::warn!(%err, "cannot fetch the app's keys yet; app tokens are refused until they are");
            }
            shutdown
                .tracker
                .spawn(tokens.clone().keep_fresh(shutdown.token.clone()));
        }
        tracing::info!(?tokens, "app tokens accepted");
    }
    Ok(RouterKeys { session, app })
}

fn token_key(args: &SecretArgs) -> anyhow::Result<TokenKey> {
    let key = TokenKey::new(args.token_secret.as_bytes().to_vec())
        .and_then(|key| {
            key.with_previous(
                args.token_secrets_previous
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_bytes().to_vec()),
            )
        })
        .map_err(anyhow::Error::msg)?;
    tracing::info!(?key, "session token keys");
    Ok(key)
}

/// Waits for SIGTERM/ctrl-c, marks the process not ready, and drains.
async fn stop_on_signal(
    shutdown: &Shutdown,
    reporter: &tonic_health::server::HealthReporter,
    grace: Duration,
) {
    shutdown::signal().await;
    health::ready(reporter, false).await;
    if !shutdown.drain(grace).await {
        tracing::warn!(?grace, "grace period over; stopping with work in flight");
    }
}

async fn start_presence(
    registry: Arc<dyn Registry>,
    bus: SharedBus,
    config: &PresenceConfig,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let service = PresenceService::new(registry.clone(), bus);
    let reaper = Reaper::new(registry, service.clone(), config.reap_every);
    shutdown.tracker.spawn(reaper.run(shutdown.clone()));
    service.start(shutdown.clone()).await
}

async fn start_router(
    config: RouterConfig,
    keys: RouterKeys,
    store: impl Store,
    directory: Arc<dyn Directory>,
    bus: SharedBus,
    shutdown: &Shutdown,
) -> anyhow::Result<Arc<Router>> {
    let router = Router::new(config, keys, store, directory, bus, shutdown.clone())
        .map_err(anyhow::Error::msg)?;
    switchboard_router::service::start(router.clone(), shutdown.clone()).await?;
    Ok(router)
}

/// The admin API for `config`'s credentials, if it has any.
fn admin_api(config: &RouterConfig) -> Option<(AdminServiceServer<AdminApi>, RouterSlot)> {
    (!config.admin_tokens.is_empty())
        .then(|| admin::service(AdminTokens::new(config.admin_tokens.clone())))
}

type RouterSlot = Arc<std::sync::OnceLock<Arc<Router>>>;

/// Serves health and reflection (and on a router, the admin API) on their
/// own port at once, not ready until the dependencies answer
/// ([`run_backend`] watches them).
async fn start_health(
    listen: SocketAddr,
    admin: Option<AdminServiceServer<AdminApi>>,
    shutdown: &Shutdown,
) -> HealthReporter {
    let serving = health::new().await;
    let reporter = serving.reporter.clone();
    shutdown.tracker.spawn(health::serve_alone(
        serving,
        listen,
        admin,
        shutdown.clone(),
    ));
    reporter
}

/// Keeps readiness in step with the dependencies, then waits for a stop
/// signal.
async fn run_backend(
    reporter: HealthReporter,
    bus: SharedBus,
    redis: Pool,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    shutdown.tracker.spawn(health::watch_readiness(
        reporter.clone(),
        bus,
        Some(redis),
        shutdown.clone(),
    ));
    stop_on_signal(&shutdown, &reporter, Duration::from_secs(10)).await;
    Ok(())
}

/// The store, once Redis answers its first question (the epoch); tried
/// again with backoff, naming Redis, until it does or the process stops.
async fn redis_store(
    pool: &Pool,
    ttls: RecordTtls,
    history: Arc<PgHistory>,
    gather: Duration,
    shutdown: &Shutdown,
) -> anyhow::Result<RedisStore> {
    let writer = HistoryWriter::start(history.clone(), HISTORY_LANES, HISTORY_BATCH, gather);
    let mut pause = Duration::from_secs(1);
    loop {
        match RedisStore::new(pool.clone(), ttls, history.clone(), writer.clone()).await {
            Ok(store) => return Ok(store),
            Err(err) => {
                tracing::warn!(redis = pool.name(), %err, "the store does not answer yet; trying again")
            }
        }
        tokio::select! {
            () = shutdown.token.cancelled() => anyhow::bail!("stopped while waiting for {}", pool.name()),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// One lane, up to 64 messages a transaction: at ordinary rates one lane
/// groups more messages per commit than several (docs/STORAGE.md).
const HISTORY_LANES: usize = 1;
const HISTORY_BATCH: usize = 64;

/// The history store, once PostgreSQL answers (and its schema is one this
/// build knows: an unknown one stops the router at once).
async fn history_store(
    url: &str,
    connections: usize,
    shutdown: &Shutdown,
) -> anyhow::Result<PgHistory> {
    let mut pause = Duration::from_secs(1);
    loop {
        match PgHistory::connect(url, connections).await {
            Ok(history) => return Ok(history),
            Err(err @ StoreError::UnknownSchema(_)) => anyhow::bail!("{err}"),
            Err(err) => tracing::warn!(%err, "the history store does not answer yet; trying again"),
        }
        tokio::select! {
            () = shutdown.token.cancelled() => anyhow::bail!("stopped while waiting for the history store"),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

async fn serve_gateway(
    gateway: Gateway,
    listen: SocketAddr,
    bus: SharedBus,
    grace: Duration,
    shutdown: Shutdown,
    announce: bool,
    admin: Option<AdminServiceServer<AdminApi>>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, gateway = %gateway.id(), "gateway listening");
    if announce {
        let exe = std::env::current_exe().ok();
        #[allow(clippy::print_stdout)]
        {
            println!(
                "{}",
                announcement(addr, gateway.speaks_tls(), exe.as_deref())
            );
        }
    }
    let health = health::new().await;
    let reporter = health.reporter.clone();
    let mut routes = gateway.routes().add_service(health.service);
    let serves_admin = admin.is_some();
    if let Some(admin) = admin {
        routes = routes.add_service(admin);
    }
    let routes = health::with_gateway_reflection(routes, serves_admin)?;
    shutdown.tracker.spawn(health::watch_readiness(
        reporter.clone(),
        bus,
        None,
        shutdown.clone(),
    ));
    let serving = tokio::spawn(gateway.serve_routes(listener, routes));
    stop_on_signal(&shutdown, &reporter, grace).await;
    // Streams have ended; connections close as clients notice. Bounded too.
    match tokio::time::timeout(grace, serving).await {
        Ok(served) => served??,
        Err(_) => tracing::warn!(
            ?grace,
            "connections still open after the grace period; exiting"
        ),
    }
    Ok(())
}

pub async fn gateway(role: GatewayRole) -> anyhow::Result<()> {
    let key = token_key(&role.secret)?;
    let grace = role.gateway.drain_grace;
    let shutdown = Shutdown::new();
    metrics::serve(&role.metrics.metrics_listen, "gateway", shutdown.clone()).await?;
    let bus = nats(&role.nats, "gateway").await?;
    let gateway = Gateway::start(role.gateway, key, bus.clone(), shutdown.clone()).await?;
    serve_gateway(gateway, role.listen, bus, grace, shutdown, false, None).await
}

/// A router waits for its dependencies rather than exit: health answers at
/// once (not ready), NATS and Redis are tried until they answer.
pub async fn router(role: RouterRole) -> anyhow::Result<()> {
    let Some(url) = &role.history.history_url else {
        anyhow::bail!(
            "a router needs its history store: set SB_HISTORY_URL (or --history-url) to a PostgreSQL URL (docs/DEPLOY.md)"
        );
    };
    let shutdown = Shutdown::new();
    metrics::serve(&role.metrics.metrics_listen, "router", shutdown.clone()).await?;
    let config = role.router;
    let (admin, admin_router) = admin_api(&config).unzip();
    let reporter = start_health(role.health.health_listen, admin, &shutdown).await;
    let keys = router_keys(&config, token_key(&role.secret)?, &shutdown).await?;
    let bus = nats(&role.nats, "router").await?;
    let pool = redis(&role.redis, &shutdown).await?;
    let history = Arc::new(history_store(url, role.history.history_pool_size, &shutdown).await?);
    let gather = role.history.history_gather;
    let store = redis_store(
        &pool,
        RecordTtls {
            send_secs: config.send_record_ttl.as_secs(),
            topic_secs: config.idempotency_ttl.as_secs(),
        },
        history,
        gather,
        &shutdown,
    )
    .await?;
    let directory: Arc<dyn Directory> = Arc::new(RedisPresence::new(pool.clone()));
    let router = start_router(config, keys, store, directory, bus.clone(), &shutdown).await?;
    if let Some(slot) = admin_router {
        let _ = slot.set(router);
    }
    run_backend(reporter, bus, pool, shutdown).await
}

/// Like a router, presence waits for its dependencies rather than exit.
pub async fn presence(role: PresenceRole) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    metrics::serve(&role.metrics.metrics_listen, "presence", shutdown.clone()).await?;
    let reporter = start_health(role.health.health_listen, None, &shutdown).await;
    let bus = nats(&role.nats, "presence").await?;
    let pool = redis(&role.redis, &shutdown).await?;
    let registry: Arc<dyn Registry> = Arc::new(RedisPresence::new(pool.clone()));
    start_presence(registry, bus.clone(), &role.presence, &shutdown).await?;
    run_backend(reporter, bus, pool, shutdown).await
}

/// What the standalone mode prints when it is up: where to point a browser,
/// and a CLI command that works where it runs (`sb` from an install or the
/// image, `cargo run` from a source tree), at an address that reaches it.
fn announcement(addr: SocketAddr, tls: bool, exe: Option<&Path>) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let url = format!("{scheme}://{host}");
    let from_source = exe.is_some_and(|exe| exe.components().any(|c| c.as_os_str() == "target"));
    let sb = if from_source {
        "cargo run -p switchboard-cli --"
    } else {
        "sb"
    };
    let ca = if tls { " --ca <your CA file>" } else { "" };
    format!(
        "Switchboard is running on {url} (web page, gRPC and gRPC-Web).\n\
         Open it in a browser, or try the CLI: {sb} --server {url}{ca} register alice"
    )
}

/// The token key of a standalone deployment, kept beside its data so
/// sessions survive restarts.
fn standalone_key(data_dir: &Path) -> anyhow::Result<TokenKey> {
    let path = data_dir.join("token.key");
    if let Ok(secret) = std::fs::read(&path) {
        return TokenKey::new(secret).map_err(anyhow::Error::msg);
    }
    let key = TokenKey::random();
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&path, key.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key)
}

pub async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    metrics::serve(
        &args.standalone_metrics_listen,
        "standalone",
        shutdown.clone(),
    )
    .await?;
    let bus: SharedBus = Arc::new(LocalBus::new());
    let key = standalone_key(&args.data_dir)?;
    let keys = router_keys(&args.router, key.clone(), &shutdown).await?;
    let grace = args.gateway.drain_grace;
    let store = EmbeddedStore::open(&args.data_dir.join("store.redb"))?;
    let presence = Arc::new(MemoryPresence::new());
    start_presence(presence.clone(), bus.clone(), &args.presence, &shutdown).await?;
    let (admin, admin_router) = admin_api(&args.router).unzip();
    let router = start_router(args.router, keys, store, presence, bus.clone(), &shutdown).await?;
    if let Some(slot) = admin_router {
        let _ = slot.set(router);
    }
    let gateway = Gateway::start(args.gateway, key, bus.clone(), shutdown.clone()).await?;
    tracing::info!(data_dir = %args.data_dir.display(), "standalone: embedded bus, store and presence");
    serve_gateway(
        gateway,
        args.standalone_listen,
        bus,
        grace,
        shutdown,
        true,
        admin,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_names_a_reachable_address_and_a_command_that_exists_here() {
        let any: SocketAddr = "0.0.0.0:7300".parse().unwrap();
        let image = announcement(any, false, Some(Path::new("/usr/local/bin/switchboard")));
        assert!(
            image.contains("running on http://127.0.0.1:7300 "),
            "{image}"
        );
        assert!(
            image.ends_with("try the CLI: sb --server http://127.0.0.1:7300 register alice"),
            "{image}"
        );
        let source = announcement(
            "127.0.0.1:7400".parse().unwrap(),
            true,
            Some(Path::new("/home/me/switchboard/target/debug/switchboard")),
        );
        assert!(
            source.ends_with(
                "cargo run -p switchboard-cli -- --server https://127.0.0.1:7400 --ca <your CA file> register alice"
            ),
            "{source}"
        );
        let v6 = announcement("[::]:7300".parse().unwrap(), false, None);
        assert!(v6.contains("http://[::1]:7300"), "{v6}");
    }
}
