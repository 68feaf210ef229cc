//! Register, log in, log out.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bytes::Bytes;
use prost::Message as _;
use switchboard_proto::bus::SessionRevoked;
use switchboard_proto::pb;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{DeviceId, SessionId, UserId, quote};
use switchboard_shared::subjects;
use switchboard_shared::token::Claims;

use crate::config::{LoginLimits, PasswordHashing};
use crate::error::{RouterError, RouterResult};
use crate::store::{LoginFailures, SessionRecord, UserRecord};
use crate::{Caller, Router};

const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 128;
const WRONG_LOGIN: &str = "wrong user id or password";
const BANNED: &str = "this account is banned; ask the operator of this service";
const DELETED: &str = "this account was deleted";

fn argon2(cost: PasswordHashing) -> RouterResult<Argon2<'static>> {
    let params = Params::new(cost.memory_kib(), cost.iterations(), 1, None)
        .map_err(|e| RouterError::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password (argon2id, deliberately slow: run it on the
/// [`crate::hashing::Hasher`]).
pub(crate) fn hash_password(password: &str, cost: PasswordHashing) -> RouterResult<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| RouterError::Internal(format!("hashing: {e}")))
}

/// Checks a password against its stored hash (the cost parameters are read
/// from the hash); as slow as hashing.
fn verify_password(password: &str, hash: &str) -> RouterResult<bool> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| RouterError::Internal(format!("stored hash: {e}")))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Too many failed logins for the account, or from the address, in the
/// current window: refused before any hash is computed, with a retry hint
/// (when the window ends). Pure.
pub fn login_refusal(failures: &LoginFailures, limits: &LoginLimits) -> Option<RouterError> {
    let refuse = |whom: &str, left_ms: u64| RouterError::ResourceExhausted {
        message: format!(
            "too many failed logins {whom}; try again in {} s",
            left_ms.div_ceil(1000).max(1)
        ),
        retry_after_ms: left_ms.max(1),
    };
    if failures.account >= limits.per_account {
        return Some(refuse("for this account", failures.account_window_left_ms));
    }
    if failures.address >= limits.per_address {
        return Some(refuse("from your address", failures.address_window_left_ms));
    }
    None
}

/// The device a login names, or a new one when it names none.
fn device_or_new(raw: &str) -> RouterResult<DeviceId> {
    if raw.trim().is_empty() {
        Ok(DeviceId::generate())
    } else {
        Ok(DeviceId::parse(raw)?)
    }
}

pub(crate) fn check_password(password: &str) -> RouterResult<()> {
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
        let cost = self.config.password_hashing;
        let password_hash = self
            .hasher
            .run(move || hash_password(&req.password, cost))
            .await??;
        let record = UserRecord {
            id: user_id.clone(),
            display_name: display_name.clone(),
            password_hash,
            created_at_ms: now_ms(),
            banned: false,
            deleted: false,
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

    /// Logs in from `address` (the client's, as its gateway saw it).
    pub async fn login(
        &self,
        req: pb::LoginRequest,
        address: &str,
    ) -> RouterResult<pb::LoginResponse> {
        let user_id = UserId::parse(&req.user_id)
            .map_err(|_| RouterError::Unauthenticated(WRONG_LOGIN.into()))?;
        let device = device_or_new(&req.device_id)?;
        let address = if address.is_empty() {
            "unknown"
        } else {
            address
        };
        let (user, failures) = futures::try_join!(
            self.store.users(std::slice::from_ref(&user_id)),
            self.store.login_failures(&user_id, address),
        )?;
        if let Some(refusal) = login_refusal(&failures, &self.config.login_limits) {
            tracing::info!(user = %user_id, address, "login refused: too many failures");
            return Err(refusal);
        }
        let user = user.into_iter().next().flatten();
        // An unknown user costs the same hash as a real check, so timing does
        // not tell which user ids exist.
        let cost = self.config.password_hashing;
        // A user created from an app token has no password: nothing matches.
        let stored = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .filter(|hash| !hash.is_empty());
        let password = req.password;
        let verified = self
            .hasher
            .run(move || match stored {
                Some(hash) => verify_password(&password, &hash),
                None => hash_password(&password, cost).map(|_| false),
            })
            .await??;
        let user = match user {
            Some(user) if verified => user,
            _ => {
                self.store
                    .record_login_failure(&user_id, address, self.config.login_limits.window)
                    .await?;
                return Err(RouterError::Unauthenticated(WRONG_LOGIN.into()));
            }
        };
        if failures.account > 0 {
            self.store.clear_login_failures(&user_id).await?;
        }
        self.open_session(user_id, device, user.display_name).await
    }

    /// Opens a session for a user whose app vouches for them with a JWT its
    /// backend signed; creates the user on first sight (with no password).
    pub async fn login_with_token(
        &self,
        req: pb::LoginWithTokenRequest,
    ) -> RouterResult<pb::LoginResponse> {
        let Some(app) = &self.keys.app else {
            return Err(RouterError::FailedPrecondition(
                "this deployment does not accept app tokens (no SB_JWT_ISSUER is configured)"
                    .into(),
            ));
        };
        let claims = app.verify(&req.token)?;
        let user_id = UserId::parse(&claims.sub).map_err(|e| {
            RouterError::InvalidArgument(format!(
                "the app token's sub {} is not a user id here: {e}",
                quote(&claims.sub)
            ))
        })?;
        let device = device_or_new(&req.device_id)?;
        let name = claims.name.unwrap_or_default();
        let name = display_name(&name, &user_id, self.config.max_name_chars)
            .unwrap_or_else(|_| user_id.to_string());
        let record = UserRecord {
            id: user_id.clone(),
            display_name: name,
            password_hash: String::new(),
            created_at_ms: now_ms(),
            banned: false,
            deleted: false,
        };
        let display_name = if self.store.create_user(&record).await? {
            tracing::info!(user = %user_id, "created from an app token");
            record.display_name
        } else {
            self.store
                .users(std::slice::from_ref(&user_id))
                .await?
                .into_iter()
                .next()
                .flatten()
                .map_or(record.display_name, |user| user.display_name)
        };
        self.open_session(user_id, device, display_name).await
    }

    /// A new session for `user_id` on `device`, and its token.
    async fn open_session(
        &self,
        user_id: UserId,
        device: DeviceId,
        display_name: String,
    ) -> RouterResult<pb::LoginResponse> {
        let ttl_ms = i64::try_from(self.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
        let session = SessionRecord {
            id: SessionId::generate(),
            user: user_id.clone(),
            device: device.clone(),
            // A whole second, as the token's `exp` says it.
            expires_at_ms: now_ms().saturating_add(ttl_ms) / 1000 * 1000,
        };
        self.store.put_session(&session).await?;
        // Read after the session exists: a ban that came first is seen here,
        // one that comes after ends the session with the others.
        let account = self
            .store
            .users(std::slice::from_ref(&user_id))
            .await?
            .into_iter()
            .next()
            .flatten();
        if let Some(account) = account.filter(|user| user.banned) {
            self.store.delete_session(&session.id).await?;
            tracing::info!(user = %user_id, deleted = account.deleted, "login refused: banned");
            return Err(RouterError::PermissionDenied(
                if account.deleted { DELETED } else { BANNED }.into(),
            ));
        }
        let token = self.keys.session.sign(&Claims {
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
                display_name,
            }),
        })
    }

    pub async fn logout(&self, caller: &Caller) -> RouterResult<pb::LogoutResponse> {
        self.end_session(&caller.session, &caller.user).await?;
        Ok(pb::LogoutResponse {})
    }

    /// Ends a session: its record goes, this router forgets it, and the
    /// others hear of it (gateways close its streams, routers forget it).
    pub(crate) async fn end_session(&self, session: &SessionId, user: &UserId) -> RouterResult<()> {
        self.store.delete_session(session).await?;
        self.sessions.revoke(session);
        let notice = SessionRevoked {
            session_id: session.to_string(),
            user_id: user.to_string(),
        };
        if let Err(err) = self
            .bus
            .publish(
                &subjects::session_revoked(),
                Vec::new(),
                Bytes::from(notice.encode_to_vec()),
            )
            .await
        {
            tracing::warn!(%err, "cannot broadcast a revocation; other routers trust the session until their cache expires");
        }
        Ok(())
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

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse", PasswordHashing::FastInsecure).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash).unwrap());
        assert!(!verify_password("wrong horse", &hash).unwrap());
    }

    #[test]
    fn failed_logins_are_limited_per_account_and_per_address() {
        let limits = LoginLimits {
            per_account: 3,
            per_address: 10,
            window: std::time::Duration::from_secs(60),
        };
        let under = LoginFailures {
            account: 2,
            account_window_left_ms: 40_000,
            address: 9,
            address_window_left_ms: 30_000,
        };
        assert!(login_refusal(&under, &limits).is_none());
        let account = LoginFailures {
            account: 3,
            ..under
        };
        match login_refusal(&account, &limits) {
            Some(RouterError::ResourceExhausted {
                message,
                retry_after_ms,
            }) => {
                assert_eq!(retry_after_ms, 40_000, "until the window ends");
                assert!(
                    message.contains("this account") && message.contains("40 s"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let address = LoginFailures {
            address: 10,
            ..under
        };
        assert!(matches!(
            login_refusal(&address, &limits),
            Some(RouterError::ResourceExhausted {
                retry_after_ms: 30_000,
                ..
            })
        ));
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
