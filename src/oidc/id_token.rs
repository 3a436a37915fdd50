//! id_tokens (OIDC Core §2, §3.1.3.6).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::oauth::SessionContext;
use crate::tokens::keys::KeyError;
use crate::tokens::{Algorithm, KeySet};

#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    /// Echoed exactly as the client sent it (§3.1.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    /// The upstream identity provider the person signed in through (its id,
    /// e.g. `google`); absent for a password or passkey sign-in. The name is
    /// the one Microsoft Entra ID and Okta use for the same fact.
    #[serde(skip_serializing_if = "Option::is_none")]
    idp: Option<&'a str>,
    azp: &'a str,
    #[serde(flatten)]
    org: &'a serde_json::Map<String, serde_json::Value>,
}

/// What an id_token says and who signs it.
pub struct IdTokenRequest<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub nonce: Option<&'a str>,
    pub session: Option<&'a SessionContext>,
    pub access_token: &'a str,
    pub alg: Algorithm,
    pub ttl: std::time::Duration,
    /// Organization claims, the same as the access token's.
    pub org: &'a serde_json::Map<String, serde_json::Value>,
}

/// §3.1.3.6: the base64url left half of the hash of the access token's ASCII; both
/// RS256 and ES256 use SHA-256.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

pub fn sign(
    keys: &KeySet,
    request: &IdTokenRequest<'_>,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let ttl = i64::try_from(request.ttl.as_secs()).unwrap_or(3600);
    let claims = IdTokenClaims {
        iss: request.issuer,
        sub: request.subject,
        aud: request.client_id,
        exp: now.timestamp() + ttl,
        iat: now.timestamp(),
        auth_time: request.session.map(|s| s.auth_time.timestamp()),
        nonce: request.nonce,
        at_hash: at_hash(request.access_token),
        // An upstream sign-in may report no method: then no `amr` at all
        // rather than an empty list.
        amr: request
            .session
            .map(|s| s.amr.as_slice())
            .filter(|amr| !amr.is_empty()),
        sid: request.session.map(|s| s.session_id.to_string()),
        idp: request.session.and_then(|s| s.idp.as_deref()),
        azp: request.client_id,
        org: request.org,
    };
    let payload = serde_json::to_vec(&claims).map_err(|e| KeyError::Sign(e.to_string()))?;
    keys.sign(request.alg, "JWT", &payload, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_core_example() {
        // OIDC Core Appendix A.3 (RS256, SHA-256).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
