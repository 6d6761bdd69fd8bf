//! Who is calling: a bearer JWT (HS256, `sub` = user id), or, behind a gateway that already
//! authenticated, a trusted header. Dev tokens are minted only for the loopback demo.

use crate::error::ApiError;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use likes_shared::UserId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    trusted_header: Option<String>,
}

impl Authenticator {
    pub fn new(secret: &[u8], trusted_header: Option<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Authenticator {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            trusted_header: trusted_header.map(|h| h.to_ascii_lowercase()),
        }
    }

    pub fn trusted_header(&self) -> Option<&str> {
        self.trusted_header.as_deref()
    }

    /// The caller, if any credentials were sent; bad credentials are an error, not anonymity.
    pub fn identify(
        &self,
        authorization: Option<&str>,
        trusted: Option<&str>,
    ) -> Result<Option<UserId>, ApiError> {
        if self.trusted_header.is_some() {
            if let Some(value) = trusted {
                return UserId::parse(value.trim())
                    .map(Some)
                    .map_err(|e| ApiError::Unauthorized(format!("trusted user header: {e}")));
            }
        }
        let Some(header) = authorization else {
            return Ok(None);
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be `Bearer <token>`".into())
            })?;
        let data = decode::<Claims>(token.trim(), &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        UserId::parse(&data.claims.sub)
            .map(Some)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token subject: {e}")))
    }

    pub fn issue(&self, user: UserId, ttl_secs: u64) -> Result<String, ApiError> {
        let now = likes_shared::hlc::now_ms() / 1000;
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + ttl_secs,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "cannot sign a token");
            ApiError::unavailable("cannot issue a token")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u64) -> UserId {
        UserId::new(n).expect("non-zero")
    }

    #[test]
    fn issued_tokens_identify_their_user_and_only_with_the_right_secret() {
        let auth = Authenticator::new(b"secret-a", None);
        let token = auth.issue(user(7), 60).expect("token");
        let header = format!("Bearer {token}");
        assert_eq!(
            auth.identify(Some(&header), None).expect("valid"),
            Some(user(7))
        );
        let other = Authenticator::new(b"secret-b", None);
        assert!(matches!(
            other.identify(Some(&header), None),
            Err(ApiError::Unauthorized(_))
        ));
        assert_eq!(auth.identify(None, None).expect("anonymous"), None);
        assert!(auth.identify(Some("Basic abc"), None).is_err());
        assert!(auth.identify(Some("Bearer not.a.jwt"), None).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let auth = Authenticator::new(b"s", None);
        let now = likes_shared::hlc::now_ms() / 1000;
        let claims = Claims {
            sub: "7".into(),
            iat: now - 100,
            exp: now - 60,
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s"),
        )
        .expect("encode");
        assert!(auth
            .identify(Some(&format!("Bearer {token}")), None)
            .is_err());
    }

    #[test]
    fn trusted_header_only_when_configured() {
        let gateway = Authenticator::new(b"s", Some("X-User-Id".into()));
        assert_eq!(
            gateway.identify(None, Some("9")).expect("trusted"),
            Some(user(9))
        );
        assert!(gateway.identify(None, Some("0")).is_err());
    }
}
