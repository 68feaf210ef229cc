//! Connecting to Redis: one deadpool of multiplexed connections per process.

pub use deadpool_redis::Pool;
use deadpool_redis::{Config, PoolConfig, Runtime, Timeouts};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    pub pool_size: usize,
    /// Bound on getting a connection and on each command round trip.
    pub timeout: Duration,
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            timeout: Duration::from_secs(3),
        }
    }
}

pub fn connect(config: &RedisConfig) -> anyhow::Result<Pool> {
    let mut cfg = Config::from_url(config.url.clone());
    cfg.pool = Some(PoolConfig {
        max_size: config.pool_size,
        timeouts: Timeouts {
            wait: Some(config.timeout),
            create: Some(config.timeout),
            recycle: Some(config.timeout),
        },
        ..PoolConfig::default()
    });
    Ok(cfg.create_pool(Some(Runtime::Tokio1))?)
}

/// Whether Redis answers (for readiness).
pub async fn ping(pool: &Pool) -> bool {
    let Ok(mut conn) = pool.get().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}
