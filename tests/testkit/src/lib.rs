//! Real servers for tests. Each test starts its own `nats-server`,
//! `redis-server` (alone or as a Redis Cluster) and `postgres` on free
//! ports (so it can kill and restart them) and they die with the test. [`eventually`] waits on a condition, never a sleep.

pub mod postgres;
pub mod process;
pub mod redis_cluster;
pub mod servers;
pub mod tls;
pub mod wait;

pub use postgres::PostgresServer;
pub use process::{ChildProcess, free_port};
pub use redis_cluster::RedisCluster;
pub use servers::{NatsServer, RedisServer};
pub use wait::eventually;
