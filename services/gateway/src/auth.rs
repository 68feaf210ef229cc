//! Who is calling: the bearer token in the `authorization` header, checked
//! against the deployment's key (once per call, by [`crate::admission`]).
//! The payload of a request never names its sender.

use http::HeaderMap;
use switchboard_proto::bus;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::GatewayId;
use switchboard_shared::token::{Claims, TokenKey};

use crate::error::{GatewayError, GatewayResult};

pub fn authenticate(key: &TokenKey, headers: &HeaderMap) -> GatewayResult<Claims> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            GatewayError::Unauthenticated("log in first: no authorization token".into())
        })?
        .to_str()
        .map_err(|_| {
            GatewayError::Unauthenticated("the authorization header is not text".into())
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            GatewayError::Unauthenticated(
                "the authorization header must be \"Bearer <token>\"".into(),
            )
        })?;
    key.verify(token.trim(), now_ms())
        .map_err(|err| GatewayError::Unauthenticated(err.to_string()))
}

/// The caller as routers see it.
pub fn caller(claims: &Claims, gateway: &GatewayId) -> bus::Caller {
    bus::Caller {
        user_id: claims.user.to_string(),
        session_id: claims.session.to_string(),
        device_id: claims.device.to_string(),
        gateway_id: gateway.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_shared::ids::{DeviceId, SessionId, UserId};

    fn metadata(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        map
    }

    #[test]
    fn bearer_tokens_authenticate() {
        let key = TokenKey::random();
        let claims = Claims {
            user: UserId::parse("alice").unwrap(),
            session: SessionId::generate(),
            device: DeviceId::parse("laptop").unwrap(),
            // A whole second: JWT `exp` has no finer grain.
            expires_at_ms: (now_ms() / 1000 + 60) * 1000,
        };
        let token = key.sign(&claims);
        assert_eq!(
            authenticate(&key, &metadata(&format!("Bearer {token}"))).unwrap(),
            claims
        );
        for bad in ["", "Basic abc", "Bearer nonsense"] {
            let err = authenticate(&key, &metadata(bad)).unwrap_err();
            assert!(matches!(err, GatewayError::Unauthenticated(_)), "{bad}");
        }
        assert!(authenticate(&key, &HeaderMap::new()).is_err());
    }
}
