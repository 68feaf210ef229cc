//! Presence: who is connected where.
//!
//! Gateways report each connection (user, device) and which groups they host
//! members of; presence keeps that in a [`registry::Registry`], reaps the
//! state of gateways that stop heartbeating, and announces when a user's
//! first connection opens or last one closes. Routers read the same state
//! through a [`directory::Directory`] to send each delivery only to the
//! gateways that hold its recipients.

pub mod directory;
pub mod memory;
pub mod reaper;
pub mod redis;
pub mod registry;
pub mod service;

pub use directory::Directory;
pub use registry::Registry;

/// The presence service's settings (flag, environment twin, default, help).
#[derive(Debug, Clone, clap::Args)]
pub struct PresenceConfig {
    /// How often dead gateways are looked for, in milliseconds.
    #[arg(
        id = "reap_every_ms",
        long = "reap-every-ms",
        env = "SB_REAP_EVERY_MS",
        default_value = "1000",
        value_parser = switchboard_shared::settings::millis
    )]
    pub reap_every: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("presence state is unavailable: {0}")]
    Unavailable(String),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("corrupt presence record: {0}")]
    Corrupt(String),
}

impl PresenceError {
    pub fn to_rpc(&self) -> switchboard_proto::bus::RpcError {
        use switchboard_proto::bus::ErrorCode;
        let code = match self {
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Self::Corrupt(_) => ErrorCode::Internal,
        };
        switchboard_proto::bus::RpcError {
            code: code as i32,
            message: self.to_string(),
            retry_after_ms: 0,
        }
    }
}

pub type PresenceResult<T> = Result<T, PresenceError>;
