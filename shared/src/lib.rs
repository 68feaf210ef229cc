//! The pieces every Switchboard service shares, and nothing else: id types,
//! bus subjects and Redis keys (each built in exactly one place), session
//! tokens, the bus abstraction, connecting to Redis, metrics, telemetry and
//! shutdown.

pub mod bus;
pub mod clock;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod redis_pool;
pub mod settings;
pub mod shutdown;
pub mod subjects;
pub mod telemetry;
pub mod token;
