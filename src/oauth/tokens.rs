//! Access tokens: RFC 9068 JWTs signed ES256 by the key ring, so resource servers
//! verify them from the JWKS alone.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use oxide_auth::primitives::grant::Grant;
use oxide_auth::primitives::issuer::{IssuedToken, RefreshedToken, TokenType};
use serde::Serialize;
use uuid::Uuid;

use super::codes::{EXT_CODE, EXT_NONCE, EXT_SESSION, SessionContext, issued_key, revoked_jti_key};
use crate::store::cache::Cache;
use crate::tokens::keys::TokenRejection;
use crate::tokens::{Algorithm, KeyRing};

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error(transparent)]
    Rejected(#[from] TokenRejection),
    #[error("the token has been revoked")]
    Revoked,
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

/// Verifies one of our access tokens: signature, type, issuer, expiry, and that its
/// `jti` has not been revoked.
pub async fn verify_access_token(
    keys: &KeyRing,
    cache: &Cache,
    issuer: &str,
    token: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, BearerError> {
    let claims = keys.keys().verify(token, "at+jwt", issuer, Utc::now())?;
    let jti = claims
        .get("jti")
        .and_then(|v| v.as_str())
        .ok_or(TokenRejection::Malformed)?;
    match cache.get(&revoked_jti_key(jti)).await {
        Ok(Some(_)) => Err(BearerError::Revoked),
        Ok(None) => Ok(claims),
        Err(e) => Err(BearerError::Unavailable(e.to_string())),
    }
}

/// RFC 9068 §2.2 claims (plus `auth_time`/`amr` for tokens issued to a user).
#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<&'a [String]>,
}

/// What was issued, for the token response and the id_token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub scope: String,
    pub subject: String,
    pub client_id: String,
    pub session: Option<SessionContext>,
    pub nonce: Option<String>,
}

/// The oxide-auth issuer.
pub struct TokenIssuer {
    keys: Arc<KeyRing>,
    cache: Cache,
    issuer: String,
    audience: String,
    ttl: Duration,
    pub issued: Option<Issued>,
}

impl TokenIssuer {
    pub fn new(
        keys: Arc<KeyRing>,
        cache: Cache,
        issuer: String,
        audience: String,
        ttl: Duration,
    ) -> Self {
        Self {
            keys,
            cache,
            issuer,
            audience,
            ttl,
            issued: None,
        }
    }

    /// Signs an access token for `grant`, returning the token and its `jti`.
    fn sign(
        &self,
        grant: &Grant,
        session: Option<&SessionContext>,
    ) -> Result<(String, String, i64), ()> {
        let now = Utc::now();
        let exp = now.timestamp() + i64::try_from(self.ttl.as_secs()).map_err(|_| ())?;
        let jti = Uuid::now_v7().to_string();
        let scope = sorted_scope(grant);
        let claims = AccessClaims {
            iss: &self.issuer,
            sub: &grant.owner_id,
            aud: &self.audience,
            client_id: &grant.client_id,
            scope: &scope,
            iat: now.timestamp(),
            exp,
            jti: &jti,
            auth_time: session.map(|s| s.auth_time.timestamp()),
            amr: session.map(|s| s.amr.as_slice()),
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| ())?;
        let token = self
            .keys
            .keys()
            .sign(Algorithm::Es256, "at+jwt", &payload, now)
            .map_err(|e| tracing::error!("cannot sign an access token: {e}"))?;
        Ok((token, jti, exp))
    }

    /// Records that the code `code_hash` produced the token `jti`, for revocation if
    /// the code is ever replayed.
    async fn link_to_code(&self, code_hash: &str, jti: &str, exp: i64) -> Result<(), ()> {
        let list = serde_json::to_vec(&[(jti, exp)]).map_err(|_| ())?;
        self.cache
            .put(
                &issued_key(code_hash),
                &list,
                self.ttl + Duration::from_secs(60),
            )
            .await
            .map_err(|e| tracing::error!("cannot link token to its code: {e}"))
    }
}

/// oxide-auth keeps scopes as a set; clients and logs read them better sorted.
fn sorted_scope(grant: &Grant) -> String {
    super::scope_list(&grant.scope.to_string()).join(" ")
}

fn private_ext(grant: &Grant, key: &str) -> Option<String> {
    grant
        .extensions
        .private()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.map(str::to_owned))
}

#[async_trait]
impl oxide_auth_async::primitives::Issuer for TokenIssuer {
    async fn issue(&mut self, grant: Grant) -> Result<IssuedToken, ()> {
        let session: Option<SessionContext> =
            private_ext(&grant, EXT_SESSION).and_then(|json| serde_json::from_str(&json).ok());
        let (token, jti, exp) = self.sign(&grant, session.as_ref())?;
        if let Some(code_hash) = private_ext(&grant, EXT_CODE) {
            self.link_to_code(&code_hash, &jti, exp).await?;
        }
        let until = chrono::DateTime::from_timestamp(exp, 0).ok_or(())?;
        self.issued = Some(Issued {
            access_token: token.clone(),
            expires_in: self.ttl.as_secs(),
            scope: sorted_scope(&grant),
            subject: grant.owner_id.clone(),
            client_id: grant.client_id.clone(),
            session,
            nonce: private_ext(&grant, EXT_NONCE),
        });
        Ok(IssuedToken {
            token,
            refresh: None,
            until,
            token_type: TokenType::Bearer,
        })
    }

    async fn refresh(&mut self, _: &str, _: Grant) -> Result<RefreshedToken, ()> {
        // Refresh tokens rotate through their own family store, not this issuer.
        Err(())
    }

    async fn recover_token(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }

    async fn recover_refresh(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }
}
