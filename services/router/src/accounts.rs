//! Register, log in, log out.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bytes::Bytes;
use prost::Message as _;
use switchboard_proto::bus::SessionRevoked;
use switchboard_proto::pb;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{DeviceId, SessionId, UserId};
use switchboard_shared::subjects;
use switchboard_shared::token::Claims;

use crate::config::PasswordHashing;
use crate::error::{RouterError, RouterResult};
use crate::store::{SessionRecord, UserRecord};
use crate::{Caller, Router};

const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 128;
const WRONG_LOGIN: &str = "wrong user id or password";

fn argon2(cost: PasswordHashing) -> RouterResult<Argon2<'static>> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| RouterError::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on a blocking thread: argon2id is deliberately slow (and large:
/// 19 MiB each), so callers hold a [`Router::hashing`] permit.
async fn hash_password(password: String, cost: PasswordHashing) -> RouterResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2(cost)?
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| RouterError::Internal(format!("hashing: {e}")))
    })
    .await
    .map_err(|e| RouterError::Internal(e.to_string()))?
}

/// Verifies on a blocking thread. The cost parameters are read from the hash.
async fn verify_password(password: String, hash: String) -> RouterResult<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| RouterError::Internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| RouterError::Internal(e.to_string()))?
}

fn check_password(password: &str) -> RouterResult<()> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        return Err(RouterError::InvalidArgument(format!(
            "a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )));
    }
    Ok(())
}

/// A display name: trimmed, no control characters, at most `max` characters.
pub fn display_name(raw: &str, fallback: &UserId, max: usize) -> RouterResult<String> {
    let name = raw.trim();
    if name.chars().any(char::is_control) {
        return Err(RouterError::InvalidArgument(
            "a name cannot contain control characters".into(),
        ));
    }
    if name.chars().count() > max {
        return Err(RouterError::InvalidArgument(format!(
            "a name has at most {max} characters"
        )));
    }
    Ok(if name.is_empty() {
        fallback.to_string()
    } else {
        name.to_owned()
    })
}

impl Router {
    pub async fn register(&self, req: pb::RegisterRequest) -> RouterResult<pb::RegisterResponse> {
        let user_id = UserId::parse(&req.user_id)?;
        check_password(&req.password)?;
        let display_name = display_name(&req.display_name, &user_id, self.config.max_name_chars)?;
        let _permit = self.hashing_permit().await?;
        let password_hash = hash_password(req.password, self.config.password_hashing).await?;
        let record = UserRecord {
            id: user_id.clone(),
            display_name: display_name.clone(),
            password_hash,
            created_at_ms: now_ms(),
        };
        if !self.store.create_user(&record).await? {
            return Err(RouterError::AlreadyExists(format!(
                "the user id {user_id} is taken"
            )));
        }
        tracing::info!(user = %user_id, "registered");
        Ok(pb::RegisterResponse {
            user: Some(pb::User {
                user_id: user_id.to_string(),
                display_name,
            }),
        })
    }

    pub async fn login(&self, req: pb::LoginRequest) -> RouterResult<pb::LoginResponse> {
        let user_id = UserId::parse(&req.user_id)
            .map_err(|_| RouterError::Unauthenticated(WRONG_LOGIN.into()))?;
        let device = if req.device_id.trim().is_empty() {
            DeviceId::generate()
        } else {
            DeviceId::parse(&req.device_id)?
        };
        let user = self
            .store
            .users(std::slice::from_ref(&user_id))
            .await?
            .pop()
            .flatten();
        let Some(user) = user else {
            // Spend the same time as a real check, so timing does not tell
            // which user ids exist.
            let _ = hash_password(req.password, self.config.password_hashing).await;
            return Err(RouterError::Unauthenticated(WRONG_LOGIN.into()));
        };
        if !verify_password(req.password, user.password_hash).await? {
            return Err(RouterError::Unauthenticated(WRONG_LOGIN.into()));
        }
        let ttl_ms = i64::try_from(self.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
        let session = SessionRecord {
            id: SessionId::generate(),
            user: user_id.clone(),
            device: device.clone(),
            expires_at_ms: now_ms().saturating_add(ttl_ms),
        };
        self.store.put_session(&session).await?;
        let token = self.config.token_key.sign(&Claims {
            user: user_id.clone(),
            session: session.id.clone(),
            device: device.clone(),
            expires_at_ms: session.expires_at_ms,
        });
        tracing::info!(user = %user_id, device = %device, "logged in");
        Ok(pb::LoginResponse {
            token,
            expires_at_ms: session.expires_at_ms,
            session_id: session.id.to_string(),
            device_id: device.to_string(),
            user: Some(pb::User {
                user_id: user_id.to_string(),
                display_name: user.display_name,
            }),
        })
    }

    pub async fn logout(&self, caller: &Caller) -> RouterResult<pb::LogoutResponse> {
        self.store.delete_session(&caller.session).await?;
        self.sessions.revoke(&caller.session);
        let notice = SessionRevoked {
            session_id: caller.session.to_string(),
            user_id: caller.user.to_string(),
        };
        // Gateways close the session's streams; other routers forget it.
        if let Err(err) = self
            .bus
            .publish(
                &subjects::session_revoked(),
                Vec::new(),
                Bytes::from(notice.encode_to_vec()),
            )
            .await
        {
            tracing::warn!(%err, "cannot broadcast a logout; other routers trust the session until their cache expires");
        }
        Ok(pb::LogoutResponse {})
    }

    /// At most one hash per core at once: a burst of logins queues here
    /// instead of filling memory with 19 MiB argon2 blocks.
    async fn hashing_permit(&self) -> RouterResult<tokio::sync::SemaphorePermit<'_>> {
        self.hashing
            .acquire()
            .await
            .map_err(|_| RouterError::Unavailable("the router is stopping".into()))
    }

    /// A session ended elsewhere.
    pub fn forget_session(&self, session: &SessionId) {
        self.sessions.revoke(session);
    }

    /// The store lost its data: nothing learnt from it before holds.
    pub fn store_reset(&self) {
        tracing::warn!("the store's epoch changed; forgetting cached sessions and users");
        self.sessions.clear();
        self.known_users.clear();
    }

    pub async fn check_session(&self, caller: &Caller) -> RouterResult<()> {
        self.sessions
            .check(
                self.store.as_ref(),
                &caller.session,
                &caller.user,
                &caller.device,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse".into(), PasswordHashing::FAST_INSECURE)
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse".into(), hash).await.unwrap());
    }

    #[test]
    fn password_length_is_bounded() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(display_name("  Alice A. ", &alice, 80).unwrap(), "Alice A.");
        assert_eq!(display_name("", &alice, 80).unwrap(), "alice");
        assert!(display_name("a\u{7}b", &alice, 80).is_err());
        assert!(display_name(&"x".repeat(81), &alice, 80).is_err());
    }
}
