//! Connecting to Redis: a few multiplexed connections per process, used in
//! turn. Each one pipelines every concurrent request on its own (no
//! checkout, no per-use PING: a deadpool checkout pinged every time, which
//! doubled the round trips of every operation) and reconnects on its own.
//!
//! The same code runs on one Redis primary and on a Redis Cluster: `connect`
//! asks the first address whether cluster mode is on and, if it is, makes
//! cluster connections (which route each command by its key's slot, follow
//! MOVED/ASK while slots move, and find a promoted replica after a
//! failover). Every script and MULTI touches one slot (the hash tags in
//! `keys`); reads and writes that span slots go through [`Pool::query_all`],
//! one pipeline per slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisFuture, RedisResult, Value};

/// A connection to one Redis, or to a Redis Cluster.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RedisConfig {
    /// Redis URL: redis://[user:password@]host:port[/db], rediss:// for TLS; for a cluster, one or more of its nodes, comma-separated (the rest are discovered).
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,
    /// Multiplexed Redis connections (each pipelines concurrent requests).
    #[arg(
        id = "redis_pool_size",
        long = "redis-pool-size",
        env = "SB_REDIS_POOL_SIZE",
        default_value_t = 4
    )]
    pub pool_size: usize,
    /// Bound on connecting to Redis and on each command, in milliseconds: past it the call fails UNAVAILABLE.
    #[arg(
        id = "redis_timeout_ms",
        long = "redis-timeout-ms",
        env = "SB_REDIS_TIMEOUT_MS",
        default_value = "1000",
        value_parser = crate::settings::millis
    )]
    pub timeout: Duration,
}

impl RedisConfig {
    /// The defaults, at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..crate::settings::defaults()
        }
    }
}

#[derive(Clone)]
pub struct Pool {
    connections: Arc<[Connection]>,
    next: Arc<AtomicUsize>,
    /// `redis at host:port`, for errors and logs (never the password).
    name: Arc<str>,
    cluster: bool,
}

/// The key a command's slot is decided by: the first key of a script call,
/// else its first argument.
fn routing_key(cmd: &Cmd) -> Option<Vec<u8>> {
    let mut args = cmd.args_iter().filter_map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()?.to_ascii_uppercase();
    if matches!(
        name.as_slice(),
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO"
    ) {
        let _script = args.next()?;
        let count: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
        return if count == 0 {
            None
        } else {
            args.next().map(<[u8]>::to_vec)
        };
    }
    args.next().map(<[u8]>::to_vec)
}

impl Pool {
    /// A connection handle (cheap: a clone of a shared multiplexed connection).
    pub fn get(&self) -> Connection {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[at].clone()
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Runs `commands` in as few round trips as the deployment allows and
    /// answers their replies in order: one pipeline on a single Redis; on a
    /// cluster, one pipeline per hash slot, all at once (a cluster refuses
    /// a pipeline that spans slots). Not atomic: for steps that need to be,
    /// use a script on one slot.
    pub async fn query_all(&self, commands: Vec<Cmd>) -> RedisResult<Vec<Value>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if !self.cluster {
            let mut pipe = redis::pipe();
            for cmd in commands {
                pipe.add_command(cmd);
            }
            return pipe.query_async(&mut self.get()).await;
        }
        let mut by_slot: HashMap<Option<Slot>, (Pipeline, Vec<usize>)> = HashMap::new();
        let count = commands.len();
        for (at, cmd) in commands.into_iter().enumerate() {
            let slot = routing_key(&cmd).map(Slot::for_key);
            let (pipe, positions) = by_slot
                .entry(slot)
                .or_insert_with(|| (redis::pipe(), Vec::new()));
            pipe.add_command(cmd);
            positions.push(at);
        }
        let groups = by_slot.into_values().map(|(pipe, positions)| {
            let mut conn = self.get();
            async move {
                let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>((positions, replies))
            }
        });
        let mut replies = vec![Value::Nil; count];
        for (positions, answers) in futures::future::try_join_all(groups).await? {
            for (at, reply) in positions.into_iter().zip(answers) {
                replies[at] = reply;
            }
        }
        Ok(replies)
    }

    /// Runs `commands` as [`Pool::query_all`] does, then `last` once all of
    /// them have run, and answers their replies with `last`'s at the end.
    /// On a single Redis this is still one pipeline (a connection runs its
    /// pipeline in order, so `last` runs after the others);
    /// on a cluster, `last` is a second round trip after the first.
    pub async fn query_all_then(
        &self,
        mut commands: Vec<Cmd>,
        last: Cmd,
    ) -> RedisResult<Vec<Value>> {
        if !self.cluster {
            commands.push(last);
            return self.query_all(commands).await;
        }
        let mut replies = self.query_all(commands).await?;
        replies.extend(self.query_all(vec![last]).await?);
        Ok(replies)
    }

    /// Which Redis this is, for error messages and logs.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `redis at host:port` for a Redis URL, without credentials.
pub fn describe(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split('/').next().unwrap_or(host);
    format!("redis at {host}")
}

/// Connects, trying again with backoff (1 s doubling to 10 s) until Redis
/// answers or `stop` fires; each failure is logged with the address.
pub async fn connect_patiently(
    config: &RedisConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Pool> {
    let mut pause = Duration::from_secs(1);
    loop {
        match connect(config).await {
            Ok(pool) => return Ok(pool),
            Err(err) => {
                tracing::warn!(
                    redis = %describe(&config.url),
                    error = format!("{err:#}"),
                    retry_in_ms = pause.as_millis() as u64,
                    "cannot connect to redis; trying again"
                );
            }
        }
        tokio::select! {
            () = stop.cancelled() => anyhow::bail!("stopped while waiting for {}", describe(&config.url)),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

pub async fn connect(config: &RedisConfig) -> anyhow::Result<Pool> {
    let urls: Vec<&str> = config
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let first = *urls
        .first()
        .ok_or_else(|| anyhow::anyhow!("no Redis address given"))?;
    if cluster_enabled(first, config.timeout).await? {
        return connect_cluster(&urls, config).await;
    }
    anyhow::ensure!(
        urls.len() == 1,
        "{} addresses given, but {} is not in cluster mode",
        urls.len(),
        describe(first)
    );
    // RESP3: the server's disconnect reaches the manager as a push, so it
    // reconnects before the next command instead of failing it.
    let info = first.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(config.timeout))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    let mut connections = Vec::with_capacity(config.pool_size.max(1));
    for _ in 0..config.pool_size.max(1) {
        connections
            .push(ConnectionManager::new_with_config(client.clone(), manager.clone()).await?);
    }
    Ok(Pool {
        connections: connections
            .into_iter()
            .map(Connection::Single)
            .collect::<Vec<_>>()
            .into(),
        next: Arc::new(AtomicUsize::new(0)),
        name: describe(first).into(),
        cluster: false,
    })
}

/// Whether the Redis at `url` runs in cluster mode (`INFO cluster`).
async fn cluster_enabled(url: &str, timeout: Duration) -> anyhow::Result<bool> {
    let client = redis::Client::open(url)?;
    let mut conn = tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| anyhow::anyhow!("{} did not answer within {timeout:?}", describe(url)))??;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
}

async fn connect_cluster(urls: &[&str], config: &RedisConfig) -> anyhow::Result<Pool> {
    // A call fails within the timeout, retries included, so the gateway's
    // own deadline still holds while a failover is under way; the client
    // tries again after it, and the promoted replica answers.
    let client = ClusterClientBuilder::new(urls.to_vec())
        .connection_timeout(config.timeout)
        .response_timeout(config.timeout)
        .overall_response_timeout(Some(config.timeout))
        .retries(4)
        .min_retry_wait(20)
        .max_retry_wait(250)
        .use_protocol(ProtocolVersion::RESP3)
        .build()?;
    let mut connections = Vec::with_capacity(config.pool_size.max(1));
    for _ in 0..config.pool_size.max(1) {
        connections.push(Connection::Cluster(client.get_async_connection().await?));
    }
    Ok(Pool {
        connections: connections.into(),
        next: Arc::new(AtomicUsize::new(0)),
        name: format!(
            "redis cluster at {}",
            describe(urls[0]).trim_start_matches("redis at ")
        )
        .into(),
        cluster: true,
    })
}

/// Whether Redis answers (for readiness).
pub async fn ping(pool: &Pool) -> bool {
    redis::cmd("PING")
        .query_async::<String>(&mut pool.get())
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_routed_by_its_first_key() {
        let mut get = redis::cmd("GET");
        get.arg("sb:user:{u:alice}");
        assert_eq!(
            routing_key(&get).as_deref(),
            Some(&b"sb:user:{u:alice}"[..])
        );
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(2).arg("k1").arg("k2").arg("v");
        assert_eq!(routing_key(&eval).as_deref(), Some(&b"k1"[..]));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0).arg("v");
        assert_eq!(routing_key(&keyless), None);
    }

    #[test]
    fn descriptions_name_the_address_not_the_password() {
        assert_eq!(
            describe("redis://user:secret@redis.example:6380/2"),
            "redis at redis.example:6380"
        );
        assert_eq!(describe("rediss://10.0.0.1:6379"), "redis at 10.0.0.1:6379");
    }
}
