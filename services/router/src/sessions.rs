//! Is this session still logged in? Tokens prove who the caller is until they
//! expire; logging out deletes the session record and broadcasts the
//! revocation. A positive check is trusted for a short while so a send does
//! not cost a store round trip; a revocation evicts it at once.

use std::time::Duration;

use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::SessionId;

use crate::error::{RouterError, RouterResult};
use crate::remembered::Remembered;
use crate::store::Store;

pub struct SessionCache {
    live: Remembered<SessionId>,
}

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            live: Remembered::new(ttl),
        }
    }

    pub async fn check(&self, store: &dyn Store, session: &SessionId) -> RouterResult<()> {
        if self.live.holds(session) {
            return Ok(());
        }
        if !store.session_exists(session, now_ms()).await? {
            return Err(RouterError::Unauthenticated(
                "this session has ended; log in again".into(),
            ));
        }
        self.live.remember(session.clone());
        Ok(())
    }

    pub fn revoke(&self, session: &SessionId) {
        self.live.forget(session);
    }
}
