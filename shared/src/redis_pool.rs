//! Connecting to Redis: a few multiplexed connections per process, used in
//! turn. Each one pipelines every concurrent request on its own (no
//! checkout, no per-use PING: a deadpool checkout pinged every time, which
//! doubled the round trips of every operation) and reconnects on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion};

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// Multiplexed connections to keep.
    pub pool_size: usize,
    /// Bound on connecting and on each command round trip.
    pub timeout: Duration,
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 4,
            timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Clone)]
pub struct Pool {
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
    /// `redis at host:port`, for errors and logs (never the password).
    name: Arc<str>,
}

impl Pool {
    /// A connection handle (cheap: a clone of a shared multiplexed connection).
    pub fn get(&self) -> ConnectionManager {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[at].clone()
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
    // RESP3: the server's disconnect reaches the manager as a push, so it
    // reconnects before the next command instead of failing it.
    let info = config.url.as_str().into_connection_info()?;
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
        connections: connections.into(),
        next: Arc::new(AtomicUsize::new(0)),
        name: describe(&config.url).into(),
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
    fn descriptions_name_the_address_not_the_password() {
        assert_eq!(
            describe("redis://user:secret@redis.example:6380/2"),
            "redis at redis.example:6380"
        );
        assert_eq!(describe("rediss://10.0.0.1:6379"), "redis at 10.0.0.1:6379");
    }
}
