//! Is this session still logged in? Tokens prove who the caller is until they
//! expire; logging out deletes the session record and broadcasts the
//! revocation. A positive check is trusted for a short while so a send does
//! not cost a store round trip; a revocation evicts it at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::SessionId;

use crate::error::{RouterError, RouterResult};
use crate::store::Store;

/// Bound on remembered sessions; past it the cache starts over.
const CAPACITY: usize = 100_000;

pub struct SessionCache {
    valid_until: Mutex<HashMap<SessionId, Instant>>,
    ttl: Duration,
}

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            valid_until: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub async fn check(&self, store: &dyn Store, session: &SessionId) -> RouterResult<()> {
        let now = Instant::now();
        if self
            .valid_until
            .lock()
            .get(session)
            .is_some_and(|until| *until > now)
        {
            return Ok(());
        }
        if !store.session_exists(session, now_ms()).await? {
            return Err(RouterError::Unauthenticated(
                "this session has ended; log in again".into(),
            ));
        }
        let mut cache = self.valid_until.lock();
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(session.clone(), now + self.ttl);
        Ok(())
    }

    pub fn revoke(&self, session: &SessionId) {
        self.valid_until.lock().remove(session);
    }
}
