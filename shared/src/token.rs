//! Session tokens: `v1.<claims>.<mac>`, both parts base64url, the MAC an
//! HMAC-SHA256 over the claims with the deployment's shared secret. Routers
//! issue them at login; gateways verify them on every call without a store
//! round trip. Revocation (logout) is the router's session record plus a
//! broadcast, see docs/ARCHITECTURE.md.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::{DeviceId, SessionId, UserId};

type HmacSha256 = Hmac<Sha256>;

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: UserId,
    pub session: SessionId,
    pub device: DeviceId,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the session token is malformed or its signature is wrong")]
    Invalid,
    #[error("the session token expired; log in again")]
    Expired,
}

/// The deployment's token key. At least 32 bytes.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, String> {
        let secret = secret.into();
        if secret.len() < 32 {
            return Err("the token secret must be at least 32 bytes".into());
        }
        Ok(Self(secret))
    }

    pub fn random() -> Self {
        Self(crate::ids::random_token(48).into_bytes())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = format!(
            "{}|{}|{}|{}",
            claims.user, claims.session, claims.device, claims.expires_at_ms
        );
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "v1.{}.{}",
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some("v1"), Some(body), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Invalid)?;
        let mut mac = self.mac();
        mac.update(&body);
        mac.verify_slice(&tag).map_err(|_| TokenError::Invalid)?;

        let body = String::from_utf8(body).map_err(|_| TokenError::Invalid)?;
        let fields: Vec<&str> = body.split('|').collect();
        let [user, session, device, expires] = fields[..] else {
            return Err(TokenError::Invalid);
        };
        let claims = Claims {
            user: UserId::parse(user).map_err(|_| TokenError::Invalid)?,
            session: SessionId::parse(session).map_err(|_| TokenError::Invalid)?,
            device: DeviceId::parse(device).map_err(|_| TokenError::Invalid)?,
            expires_at_ms: expires.parse().map_err(|_| TokenError::Invalid)?,
        };
        if claims.expires_at_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_at_ms: i64) -> Claims {
        Claims {
            user: UserId::parse("alice").unwrap(),
            session: SessionId::generate(),
            device: DeviceId::parse("laptop").unwrap(),
            expires_at_ms,
        }
    }

    #[test]
    fn a_signed_token_verifies() {
        let key = TokenKey::random();
        let c = claims(2_000);
        assert_eq!(key.verify(&key.sign(&c), 1_000), Ok(c));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let key = TokenKey::random();
        let token = key.sign(&claims(1_000));
        assert_eq!(key.verify(&token, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let key = TokenKey::random();
        let other = TokenKey::random();
        let token = other.sign(&claims(2_000));
        assert_eq!(key.verify(&token, 0), Err(TokenError::Invalid));

        // Claims rewritten to another user, signature kept.
        let genuine = key.sign(&claims(2_000));
        let tag = genuine.rsplit('.').next().unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode("mallory|sabcdefgh|laptop|2000");
        assert_eq!(
            key.verify(&format!("v1.{forged_body}.{tag}"), 0),
            Err(TokenError::Invalid)
        );
        for junk in ["", "v1", "v1..", "v2.a.b", "v1.a.b.c", "Bearer x"] {
            assert_eq!(key.verify(junk, 0), Err(TokenError::Invalid), "{junk}");
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKey::new("short").is_err());
        assert!(TokenKey::new(vec![7u8; 32]).is_ok());
    }
}
