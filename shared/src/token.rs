//! Session tokens: standard JWTs (RFC 7519), HS256 with the deployment's
//! shared secret, a key id in the header. Routers issue them at login;
//! gateways verify them on every call without a store round trip.
//! Revocation (logout) is the router's session record plus a broadcast, see
//! docs/ARCHITECTURE.md.
//!
//! Claims: `sub` (user), `sid` (session), `did` (device), `exp` (seconds),
//! `iss` = `switchboard`. The key id is derived from the secret (the first
//! 12 hex digits of its SHA-256), so a secret needs no separate name.
//!
//! Rotation without logging anyone out: tokens are signed with one key and
//! verified with any of several (the signing one and the previous ones, by
//! key id). Deploy the new secret as the signing one with the old one among
//! the previous ones; once the longest session has run out, drop the old.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ids::{DeviceId, SessionId, UserId};

/// Who issues session tokens (`iss`).
pub const ISSUER: &str = "switchboard";

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: UserId,
    pub session: SessionId,
    pub device: DeviceId,
    /// When it stops being valid; a whole second (JWT `exp` is in seconds).
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the session token is malformed or its signature is wrong")]
    Invalid,
    #[error("the session token expired; log in again")]
    Expired,
}

/// The claims as they travel.
#[derive(Serialize, Deserialize)]
struct Wire {
    sub: String,
    sid: String,
    did: String,
    exp: i64,
    iss: String,
}

/// One secret: its id and what signs and verifies with it.
#[derive(Clone)]
struct Key {
    kid: String,
    secret: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn new(secret: Vec<u8>) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("a token secret must be at least 32 bytes".into());
        }
        let digest = Sha256::digest(&secret);
        let kid = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            kid,
            encoding: EncodingKey::from_secret(&secret).map_err(|e| e.to_string())?,
            decoding: DecodingKey::from_secret(&secret).map_err(|e| e.to_string())?,
            secret,
        })
    }
}

/// The deployment's token keys: one that signs, and those that still verify
/// (it, and the previous ones during a rotation).
#[derive(Clone)]
pub struct TokenKey {
    signing: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("TokenKey")
            .field("kid", &self.signing.kid)
            .field("previous", &previous)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// The signing secret; at least 32 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, String> {
        Ok(Self {
            signing: Key::new(secret.into())?,
            previous: Vec::new(),
        })
    }

    /// Also accepts tokens signed with these (older) secrets.
    pub fn with_previous(
        mut self,
        secrets: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Self, String> {
        for secret in secrets {
            let key = Key::new(secret).map_err(|e| format!("a previous {}", &e[2..]))?;
            if key.kid != self.signing.kid && !self.previous.iter().any(|k| k.kid == key.kid) {
                self.previous.push(key);
            }
        }
        Ok(self)
    }

    pub fn random() -> Self {
        Self {
            signing: Key::new(crate::ids::random_token(48).into_bytes())
                .unwrap_or_else(|_| unreachable!("48 bytes")),
            previous: Vec::new(),
        }
    }

    /// The signing secret.
    pub fn as_bytes(&self) -> &[u8] {
        &self.signing.secret
    }

    /// The signing key's id (the `kid` of the tokens it signs).
    pub fn kid(&self) -> &str {
        &self.signing.kid
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing.kid.clone());
        let wire = Wire {
            sub: claims.user.to_string(),
            sid: claims.session.to_string(),
            did: claims.device.to_string(),
            exp: claims.expires_at_ms.div_euclid(1000),
            iss: ISSUER.to_owned(),
        };
        jsonwebtoken::encode(&header, &wire, &self.signing.encoding)
            .unwrap_or_else(|_| unreachable!("HS256 over plain claims cannot fail"))
    }

    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = std::iter::once(&self.signing)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
            .ok_or(TokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock, to tell
        // "expired" from "forged".
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[ISSUER]);
        let wire = jsonwebtoken::decode::<Wire>(token, &key.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        let claims = Claims {
            user: UserId::parse(&wire.sub).map_err(|_| TokenError::Invalid)?,
            session: SessionId::parse(&wire.sid).map_err(|_| TokenError::Invalid)?,
            device: DeviceId::parse(&wire.did).map_err(|_| TokenError::Invalid)?,
            expires_at_ms: wire.exp.saturating_mul(1000),
        };
        if claims.expires_at_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
    fn a_signed_token_is_a_standard_jwt_that_verifies() {
        let key = TokenKey::random();
        let c = claims(2_000_000);
        let token = key.sign(&c);
        assert_eq!(key.verify(&token, 1_000), Ok(c));
        // Three base64url parts; the header names the algorithm and key.
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], key.kid());
        let body: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["sub"], "alice");
        assert_eq!(body["exp"], 2_000);
        assert_eq!(body["iss"], ISSUER);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let key = TokenKey::random();
        let token = key.sign(&claims(1_000));
        assert_eq!(key.verify(&token, 1_000), Err(TokenError::Expired));
        assert!(key.verify(&token, 999).is_ok());
    }

    #[test]
    fn forged_tokens_are_refused() {
        let key = TokenKey::random();
        let other = TokenKey::random();
        let token = other.sign(&claims(2_000));
        assert_eq!(key.verify(&token, 0), Err(TokenError::Invalid));

        // Claims rewritten to another user, header and signature kept.
        let genuine = key.sign(&claims(2_000_000));
        let parts: Vec<&str> = genuine.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            r#"{"sub":"mallory","sid":"sabcdefgh","did":"laptop","exp":2000,"iss":"switchboard"}"#,
        );
        assert_eq!(
            key.verify(&format!("{}.{forged}.{}", parts[0], parts[2]), 0),
            Err(TokenError::Invalid)
        );
        // "alg": "none", with the right key id.
        let none = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid()));
        assert_eq!(
            key.verify(&format!("{none}.{}.", parts[1]), 0),
            Err(TokenError::Invalid)
        );
        for junk in ["", "v1", "a.b.c", "v1.a.b", "Bearer x"] {
            assert_eq!(key.verify(junk, 0), Err(TokenError::Invalid), "{junk}");
        }
    }

    #[test]
    fn a_rotation_keeps_old_tokens_until_their_key_is_dropped() {
        let old = TokenKey::new(vec![1u8; 32]).unwrap();
        let issued_before = old.sign(&claims(2_000_000));
        let rotated = TokenKey::new(vec![2u8; 32])
            .unwrap()
            .with_previous([vec![1u8; 32]])
            .unwrap();
        assert!(rotated.verify(&issued_before, 0).is_ok(), "still valid");
        let issued_after = rotated.sign(&claims(2_000_000));
        assert!(issued_after.contains('.'));
        assert_ne!(rotated.kid(), old.kid());
        assert!(
            old.verify(&issued_after, 0).is_err(),
            "new tokens need the new key"
        );
        let done = TokenKey::new(vec![2u8; 32]).unwrap();
        assert_eq!(done.verify(&issued_before, 0), Err(TokenError::Invalid));
        assert!(done.verify(&issued_after, 0).is_ok());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKey::new("short").is_err());
        assert!(TokenKey::new(vec![7u8; 32]).is_ok());
        let err = TokenKey::random()
            .with_previous([b"short".to_vec()])
            .unwrap_err();
        assert!(err.contains("previous"), "{err}");
    }
}
