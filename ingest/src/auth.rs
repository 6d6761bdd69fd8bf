//! Who is calling: a bearer JWT (HS256, `sub` = user id), or, behind a gateway that already
//! authenticated, a trusted header. Dev tokens are minted only for the loopback demo.
//!
//! One request names one caller, one way (issue 13): a user id has one spelling (canonical
//! decimal), and a token is taken only when every claim it makes about time holds — `exp`, `nbf`,
//! an `iat` not in the future, a lifetime within the cap — and it asks for no extension (`crit`)
//! this service would have to understand. Two credential headers are refused in the filters.

use crate::error::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use likes_shared::UserId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

/// What a received token must carry; `nbf` is checked by the validation when present.
#[derive(Debug, Deserialize)]
struct ReceivedClaims {
    sub: String,
    exp: u64,
    iat: Option<u64>,
}

/// Seconds of clock skew allowed between the issuer and this process.
const LEEWAY_SECS: u64 = 5;

/// [`crate::config::AuthConfig::max_token_lifetime_secs`]'s default.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    trusted_header: Option<String>,
    max_lifetime_secs: u64,
}

impl Authenticator {
    pub fn new(secret: &[u8], trusted_header: Option<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Authenticator {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            trusted_header: trusted_header.map(|h| h.to_ascii_lowercase()),
            max_lifetime_secs: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
        }
    }

    /// Refuses tokens valid for longer than `secs` (from their `iat`, or from now without one).
    pub fn with_max_lifetime_secs(mut self, secs: u64) -> Self {
        self.max_lifetime_secs = secs;
        self
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
        let token = token.trim();
        refuse_critical_extensions(token)?;
        let data = decode::<ReceivedClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        self.check_times(&data.claims)?;
        UserId::parse(&data.claims.sub)
            .map(Some)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token subject: {e}")))
    }

    /// `iat` not ahead of this clock, and a lifetime within the cap: a token minted with a wrong
    /// clock or for years is a leak waiting to happen.
    fn check_times(&self, claims: &ReceivedClaims) -> Result<(), ApiError> {
        let now = likes_shared::hlc::now_ms() / 1000;
        if let Some(iat) = claims.iat {
            if iat > now + LEEWAY_SECS {
                return Err(ApiError::Unauthorized(
                    "invalid token: issued in the future (iat)".into(),
                ));
            }
        }
        let from = claims.iat.unwrap_or(now).min(now);
        if claims.exp.saturating_sub(from) > self.max_lifetime_secs + LEEWAY_SECS {
            return Err(ApiError::Unauthorized(format!(
                "invalid token: valid for longer than {} s (exp)",
                self.max_lifetime_secs
            )));
        }
        Ok(())
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

/// RFC 7515 section 4.1.11: a recipient must refuse a token whose `crit` lists an extension it
/// does not implement, and this service implements none. (jsonwebtoken ignores the header
/// parameter, so the header is read here; the signature is checked after, by `decode`.)
fn refuse_critical_extensions(token: &str) -> Result<(), ApiError> {
    let refused = |why: &str| ApiError::Unauthorized(format!("invalid token: {why}"));
    let header = token.split('.').next().unwrap_or_default();
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| refused("the header is not base64url"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|_| refused("the header is not a JSON object"))?;
    if header.contains_key("crit") {
        return Err(refused(
            "it lists critical extensions (crit) this service does not implement",
        ));
    }
    Ok(())
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
