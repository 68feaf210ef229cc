//! The router: stateless, any number run side by side in one queue group.
//!
//! For every client action a gateway forwards, the router checks who may do
//! it, and for a message assigns the conversation's next seq and stores it
//! durably before answering. It then routes one delivery to each gateway
//! that holds a recipient (found through presence), never to every gateway.
//!
//! Layout: [`service`] is the bus adapter; the actions live in [`accounts`],
//! [`contacts`], [`groups`], [`messaging`] (reading) and [`topics`];
//! [`posting`] is the one path every stored message takes (sends are built
//! there); [`membership`] looks up what a user is to a conversation, and
//! [`access`] and [`routing`] are the pure rules; [`delivery`] and
//! [`outbox`] move events to gateways; [`store`] is the durable state.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod amendments;
pub mod app_tokens;
pub mod config;
pub mod contacts;
pub mod delivery;
pub mod error;
pub mod groups;
pub mod hashing;
pub mod membership;
pub mod mentions;
pub mod messaging;
pub mod offline;
pub mod outbound;
pub mod outbox;
pub mod people;
pub mod posting;
pub mod push;
pub mod quotes;
pub mod reactions;
pub mod remembered;
pub mod routing;
pub mod search;
pub mod service;
pub mod sessions;
pub mod store;
pub mod topics;
pub mod typing;
pub mod web_client;
pub mod webhooks;

use std::sync::{Arc, Weak};

use switchboard_presence::Directory;
use switchboard_shared::bus::SharedBus;
use switchboard_shared::ids::{DeviceId, GatewayId, SessionId, UserId};
use switchboard_shared::shutdown::Shutdown;

pub use config::RouterConfig;
pub use error::{RouterError, RouterResult};

use delivery::Deliverer;
use sessions::SessionCache;
use store::Store;

/// How long a user seen to exist is trusted to (see [`Router::known_users`]).
const KNOWN_USER_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Who is calling, as the gateway authenticated them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    pub session: SessionId,
    pub device: DeviceId,
    pub gateway: GatewayId,
}

/// Everything one router instance needs; cheap to share.
pub struct Router {
    config: RouterConfig,
    keys: config::RouterKeys,
    store: Arc<dyn Store>,
    directory: Arc<dyn Directory>,
    bus: SharedBus,
    sessions: SessionCache,
    deliverer: Deliverer,
    /// Posts offline users' new messages to the app's backend, if set up.
    webhooks: Option<webhooks::Webhooks>,
    /// Pushes them to their browsers (Web Push), if set up.
    push: Option<push::Pusher>,
    shutdown: Shutdown,
    me: Weak<Router>,
    /// Where passwords are hashed (idle-priority threads, a short queue).
    hasher: hashing::Hasher,
    /// Users seen to exist (and not deleted). An account deleted meanwhile,
    /// or a store that lost its data, is noticed within the TTL.
    known_users: remembered::Remembered<UserId>,
}

impl Router {
    /// `store` is wrapped so every operation is timed and traced. An error
    /// for settings that cannot work (webhooks).
    pub fn new(
        config: RouterConfig,
        keys: config::RouterKeys,
        store: impl Store,
        directory: Arc<dyn Directory>,
        bus: SharedBus,
        shutdown: Shutdown,
    ) -> Result<Arc<Self>, String> {
        let webhooks = webhooks::Webhooks::start(&config.webhooks, &shutdown)?;
        let push = push::Pusher::start(&config.push, &shutdown)?;
        let store: Arc<dyn Store> = Arc::new(store::timed::Timed(store));
        let deliverer = Deliverer::start(bus.clone(), directory.clone(), store.clone(), &shutdown);
        let hasher = hashing::Hasher::start(
            config.hashing_threads,
            config.hashing_queue,
            config.hashing_max_wait,
        );
        Ok(Arc::new_cyclic(|me| Self {
            sessions: SessionCache::new(config.session_cache_ttl),
            config,
            keys,
            store,
            directory,
            bus,
            deliverer,
            webhooks,
            push,
            shutdown,
            me: me.clone(),
            hasher,
            known_users: remembered::Remembered::new(KNOWN_USER_TTL),
        }))
    }

    /// A handle for work that outlives the request (deliveries after the reply).
    fn me(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
