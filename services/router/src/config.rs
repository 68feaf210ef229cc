//! The router's settings, each declared once here: its flag, environment
//! twin, default and help. The binary reads them (flags > environment >
//! config file > these defaults); tests start from [`RouterConfig::default`].
//! Keys (the session token key, an app's JWT keys) are not settings but
//! what settings point to: see [`RouterKeys`].

use std::sync::Arc;
use std::time::Duration;

use switchboard_shared::settings::{hours, millis, secs};
use switchboard_shared::token::TokenKey;

#[derive(Debug, Clone, clap::Args)]
pub struct RouterConfig {
    /// Largest message text, in bytes.
    #[arg(long = "max-message-bytes", env = "SB_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024)]
    pub max_message_bytes: usize,
    /// How long after sending a message its sender may edit it, in seconds (0: messages cannot be edited).
    #[arg(
        id = "edit_window_secs",
        long = "edit-window-secs",
        env = "SB_EDIT_WINDOW_SECS",
        default_value = "172800",
        value_parser = secs
    )]
    pub edit_window: Duration,
    /// Longest display, group or topic name, in characters.
    #[arg(
        long = "max-name-chars",
        env = "SB_MAX_NAME_CHARS",
        default_value_t = 80
    )]
    pub max_name_chars: usize,
    /// Most contacts bound into one topic at once.
    #[arg(
        long = "max-topic-contacts",
        env = "SB_MAX_TOPIC_CONTACTS",
        default_value_t = 256
    )]
    pub max_topic_contacts: usize,
    /// Session lifetime, in hours.
    #[arg(
        id = "session_ttl_hours",
        long = "session-ttl-hours",
        env = "SB_SESSION_TTL_HOURS",
        default_value = "720",
        value_parser = hours
    )]
    pub session_ttl: Duration,
    /// How long a live session is trusted without asking the store, in milliseconds (a logout evicts it at once everywhere).
    #[arg(
        id = "session_cache_ms",
        long = "session-cache-ms",
        env = "SB_SESSION_CACHE_MS",
        default_value = "10000",
        value_parser = millis
    )]
    pub session_cache_ttl: Duration,
    /// How long a topic send's retry record is kept, in seconds: a broadcast retried within it is answered, not sent again.
    #[arg(
        id = "topic_retry_record_secs",
        long = "topic-retry-record-secs",
        env = "SB_TOPIC_RETRY_RECORD_SECS",
        default_value = "86400",
        value_parser = secs
    )]
    pub idempotency_ttl: Duration,
    /// How long a direct or group send's retry record is kept, in seconds: it catches one client message id reused for another conversation (a retry to the same one is answered from history for ever).
    #[arg(
        id = "send_retry_record_secs",
        long = "send-retry-record-secs",
        env = "SB_SEND_RETRY_RECORD_SECS",
        default_value = "600",
        value_parser = secs
    )]
    pub send_record_ttl: Duration,
    /// Redeliver outbox entries older than this, in milliseconds.
    #[arg(
        id = "outbox_redeliver_ms",
        long = "outbox-redeliver-ms",
        env = "SB_OUTBOX_REDELIVER_MS",
        default_value = "3000",
        value_parser = millis
    )]
    pub outbox_redeliver_after: Duration,
    /// How often each router sweeps the outbox for entries to redeliver, in milliseconds.
    #[arg(
        id = "outbox_sweep_ms",
        long = "outbox-sweep-ms",
        env = "SB_OUTBOX_SWEEP_MS",
        default_value = "1000",
        value_parser = millis
    )]
    pub outbox_sweep_every: Duration,
    /// How often the store's epoch is read, in milliseconds: a store that lost its data voids what routers cached from it within this, even while nothing is written.
    #[arg(
        id = "epoch_check_ms",
        long = "epoch-check-ms",
        env = "SB_EPOCH_CHECK_MS",
        default_value = "1000",
        value_parser = millis
    )]
    pub epoch_check_every: Duration,
    /// Password hashing cost: owasp (argon2id m=19MiB t=2), or fast-insecure for tests only.
    #[arg(
        long = "password-hashing",
        env = "SB_PASSWORD_HASHING",
        default_value = "owasp"
    )]
    pub password_hashing: PasswordHashing,
    /// Threads hashing passwords, at idle priority so they never take CPU from messages.
    #[arg(
        long = "hashing-threads",
        env = "SB_HASHING_THREADS",
        default_value_t = 1
    )]
    pub hashing_threads: usize,
    /// Passwords waiting for a hashing thread at most; past it a login is refused with a retry hint.
    #[arg(long = "hashing-queue", env = "SB_HASHING_QUEUE", default_value_t = 64)]
    pub hashing_queue: usize,
    /// Longest a login may wait for a hashing thread, in milliseconds, before it is refused with a retry hint (keep it under half the gateway's router deadline).
    #[arg(
        id = "hashing_max_wait_ms",
        long = "hashing-max-wait-ms",
        env = "SB_HASHING_MAX_WAIT_MS",
        default_value = "1000",
        value_parser = millis
    )]
    pub hashing_max_wait: Duration,
    #[command(flatten)]
    pub login_limits: LoginLimits,
    /// Requests one router works on at once; past it the router stops reading and further requests wait in its NATS subscription.
    #[arg(
        long = "max-in-flight",
        env = "SB_MAX_IN_FLIGHT",
        default_value_t = 1_024
    )]
    pub max_in_flight: usize,
    #[command(flatten)]
    pub app_tokens: crate::app_tokens::AppTokenSettings,
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookSettings,
    #[command(flatten)]
    pub push: crate::push::PushSettings,
    /// Admin credentials, comma-separated `name:secret` pairs (secrets of at least 32 bytes; the name goes in the audit log). Unset: the admin API is off.
    #[arg(
        long = "admin-tokens",
        env = "SB_ADMIN_TOKENS",
        hide_env_values = true,
        value_delimiter = ',',
        value_parser = crate::admin::AdminToken::parse
    )]
    pub admin_tokens: Vec<crate::admin::AdminToken>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
    }
}

/// What signs and verifies the tokens a router deals in.
#[derive(Debug, Clone)]
pub struct RouterKeys {
    /// Signs the session tokens it issues (and verifies them).
    pub session: TokenKey,
    /// The app issuer whose JWTs open sessions (`LoginWithToken`), if any.
    pub app: Option<Arc<crate::app_tokens::AppTokens>>,
}

/// Failed logins allowed before further attempts are refused (with a retry
/// hint) until the window that counted them ends.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LoginLimits {
    /// Failed logins for one account before further attempts are refused until the window ends.
    #[arg(
        id = "login_failures_per_account",
        long = "login-failures-per-account",
        env = "SB_LOGIN_FAILURES_PER_ACCOUNT",
        default_value_t = 10
    )]
    pub per_account: u32,
    /// Failed logins from one client address (any account) before further attempts are refused.
    #[arg(
        id = "login_failures_per_address",
        long = "login-failures-per-address",
        env = "SB_LOGIN_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    pub per_address: u32,
    /// How long failed logins are counted, in seconds (from the first one).
    #[arg(
        id = "login_failure_window_secs",
        long = "login-failure-window-secs",
        env = "SB_LOGIN_FAILURE_WINDOW_SECS",
        default_value = "900",
        value_parser = secs
    )]
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
    }
}

/// Argon2id cost. The default is OWASP's; tests lower it to save time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PasswordHashing {
    /// argon2id, 19 MiB, 2 passes (OWASP's recommendation).
    Owasp,
    /// 1 MiB, 1 pass: for tests and benchmarks only.
    FastInsecure,
}

impl PasswordHashing {
    pub fn memory_kib(self) -> u32 {
        match self {
            Self::Owasp => 19 * 1024,
            Self::FastInsecure => 1024,
        }
    }

    pub fn iterations(self) -> u32 {
        match self {
            Self::Owasp => 2,
            Self::FastInsecure => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_declared_ones() {
        let config = RouterConfig::default();
        assert_eq!(config.session_ttl, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(config.password_hashing, PasswordHashing::Owasp);
        assert_eq!(config.login_limits.window, Duration::from_secs(900));
        assert_eq!(config.idempotency_ttl, Duration::from_secs(24 * 3600));
        assert!(config.app_tokens.issuer.is_none());
    }
}
