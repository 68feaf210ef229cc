//! The router's settings. Built by the binary from flags; tests build it directly.

use std::time::Duration;

use switchboard_shared::token::TokenKey;

#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub token_key: TokenKey,
    /// The app issuer whose JWTs open sessions (`LoginWithToken`), if any.
    pub app_tokens: Option<std::sync::Arc<crate::app_tokens::AppTokens>>,
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// Largest message text, in bytes.
    pub max_message_bytes: usize,
    /// Longest group or topic name, in characters.
    pub max_name_chars: usize,
    /// Most contacts bound into one topic at once.
    pub max_topic_contacts: usize,
    /// How long a topic send's retry record is kept: a retried broadcast
    /// is answered from it (its timeline entry is in Redis only).
    pub idempotency_ttl: Duration,
    /// How long a direct or group send's retry record is kept. A retry to
    /// the same conversation is answered by the history store for ever;
    /// the record is what catches one client message id reused for
    /// another conversation, for this long.
    pub send_record_ttl: Duration,
    /// Messages replayed per conversation at subscribe before a Gap(TRUNCATED).
    pub max_replay: usize,
    /// Outbox entries older than this are redelivered by any router.
    pub outbox_redeliver_after: Duration,
    /// How often each router sweeps the outbox.
    pub outbox_sweep_every: Duration,
    /// How long a positive session check is trusted without asking the store.
    pub session_cache_ttl: Duration,
    /// How often the store's epoch is read, so a store that lost its data
    /// voids what was cached from it even while nothing is written.
    pub epoch_check_every: Duration,
    pub password_hashing: PasswordHashing,
    /// Threads hashing passwords (at nice 10), and hashes waiting.
    pub hashing_threads: usize,
    pub hashing_queue: usize,
    /// A login that would wait longer than this for a hashing thread is
    /// refused at once with a retry hint (half the gateway's deadline: a
    /// queued login must not time out).
    pub hashing_max_wait: std::time::Duration,
    /// Failed logins allowed per account and per address in a window.
    pub login_limits: LoginLimits,
    /// Requests handled at once by one router.
    pub max_in_flight: usize,
}

/// Failed logins allowed before further attempts are refused (with a retry
/// hint) until the window that counted them ends.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_account: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account: 10,
            per_address: 50,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Argon2id cost. The defaults are OWASP's; tests lower them to save time.
#[derive(Debug, Clone, Copy)]
pub struct PasswordHashing {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl PasswordHashing {
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
    };
    /// Cheap hashing for tests and benchmarks only.
    pub const FAST_INSECURE: Self = Self {
        memory_kib: 1024,
        iterations: 1,
    };
}

impl RouterConfig {
    pub fn new(token_key: TokenKey) -> Self {
        Self {
            token_key,
            app_tokens: None,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            max_message_bytes: 16 * 1024,
            max_name_chars: 80,
            max_topic_contacts: 256,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            send_record_ttl: Duration::from_secs(600),
            max_replay: 5_000,
            outbox_redeliver_after: Duration::from_secs(3),
            outbox_sweep_every: Duration::from_secs(1),
            session_cache_ttl: Duration::from_secs(10),
            epoch_check_every: Duration::from_secs(1),
            password_hashing: PasswordHashing::OWASP,
            hashing_threads: 1,
            hashing_queue: 64,
            hashing_max_wait: std::time::Duration::from_secs(1),
            login_limits: LoginLimits::default(),
            max_in_flight: 1_024,
        }
    }
}
