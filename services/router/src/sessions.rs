//! Is this session still logged in, and is it the caller's? Tokens prove who
//! the caller is until they expire; logging out deletes the session record
//! and broadcasts the revocation. A session belongs to one user and device:
//! a token naming another user (or device) with someone's live session id
//! is refused. A positive check is trusted for a short while so a send does
//! not cost a store round trip; a revocation evicts it at once, and a
//! store that lost its data (a new epoch) voids every one.

use std::time::Duration;

use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{DeviceId, SessionId, UserId};

use crate::error::{RouterError, RouterResult};
use crate::remembered::Remembered;
use crate::store::Store;

const ENDED: &str = "this session has ended; log in again";

pub struct SessionCache {
    /// Live sessions and whose they are.
    live: Remembered<SessionId, (UserId, DeviceId)>,
}

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            live: Remembered::new(ttl),
        }
    }

    pub async fn check(
        &self,
        store: &dyn Store,
        session: &SessionId,
        user: &UserId,
        device: &DeviceId,
    ) -> RouterResult<()> {
        let owner = match self.live.get(session) {
            Some(owner) => owner,
            None => {
                let record = store
                    .session(session, now_ms())
                    .await?
                    .ok_or_else(|| RouterError::Unauthenticated(ENDED.into()))?;
                let owner = (record.user, record.device);
                self.live.remember_with(session.clone(), owner.clone());
                owner
            }
        };
        if &owner.0 != user || &owner.1 != device {
            tracing::warn!(%session, claimed_user = %user, "a token names a session that is not its user's");
            return Err(RouterError::Unauthenticated(ENDED.into()));
        }
        Ok(())
    }

    pub fn revoke(&self, session: &SessionId) {
        self.live.forget(session);
    }

    /// Forgets every session (the store's epoch changed).
    pub fn clear(&self) {
        self.live.clear();
    }
}
