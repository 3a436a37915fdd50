//! Authorization codes: 256 random bits, kept only in the cache under their SHA-256
//! for 60 seconds, and taken atomically so a code is redeemed at most once even
//! across instances. A second use finds the code spent and revokes every token
//! issued from it (RFC 6749 §4.1.2, RFC 9700 §4.2.4).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oxide_auth::primitives::grant::{Extensions, Grant, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::digest;
use crate::identity::sessions::random_token;
use crate::store::cache::Cache;

/// OAuth 2.1 §4.1.2: a short lifetime; 60 s covers any honest client.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a redeemed code is remembered, with what it issued, so that a second
/// presentation revokes those tokens. The code itself dies `CODE_TTL` after it was
/// issued, so a client that saw it (honest or not) presents it within that time of
/// its redemption; the second `CODE_TTL` is slack for slow retries. Keeping markers
/// longer (a day, once) held ~600 B per code flow in the in-process cache for no
/// case a client meets; node-oidc-provider and Keycloak also forget a consumed
/// code when it would have expired.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(2 * CODE_TTL.as_secs());

/// Private grant extensions Tessera adds (identifiers of oxide-auth `Extensions`).
pub const EXT_SESSION: &str = "tessera.session";
pub const EXT_NONCE: &str = "tessera.nonce";
pub const EXT_CODE: &str = "tessera.code";
pub const EXT_RESOURCE: &str = "tessera.resource";
pub const EXT_ORG: &str = "tessera.org";

/// The browser session behind a grant: what `auth_time`, `amr` and `sid` report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionContext {
    pub session_id: Uuid,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredGrant {
    owner_id: String,
    client_id: String,
    scope: String,
    redirect_uri: String,
    until: DateTime<Utc>,
    public: Vec<(String, Option<String>)>,
    private: Vec<(String, Option<String>)>,
}

impl StoredGrant {
    fn from_grant(grant: &Grant) -> Self {
        let own = |(k, v): (&str, Option<&str>)| (k.to_owned(), v.map(str::to_owned));
        Self {
            owner_id: grant.owner_id.clone(),
            client_id: grant.client_id.clone(),
            scope: grant.scope.to_string(),
            redirect_uri: grant.redirect_uri.to_string(),
            until: grant.until,
            public: grant.extensions.public().map(own).collect(),
            private: grant.extensions.private().map(own).collect(),
        }
    }

    fn into_grant(self) -> Option<Grant> {
        let mut extensions = Extensions::new();
        for (k, v) in self.public {
            extensions.set_raw(k, Value::public(v));
        }
        for (k, v) in self.private {
            extensions.set_raw(k, Value::private(v));
        }
        Some(Grant {
            owner_id: self.owner_id,
            client_id: self.client_id,
            scope: self.scope.parse().ok()?,
            redirect_uri: self.redirect_uri.parse().ok()?,
            until: self.until,
            extensions,
        })
    }
}

/// What a code produced, remembered so a replay can revoke it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedFromCode {
    pub jti: String,
    pub exp: i64,
    pub family: Option<Uuid>,
}

/// Why a code could not be redeemed, for a precise error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFailure {
    /// Unknown or expired.
    Invalid,
    /// Already redeemed: what it issued has been revoked.
    Replayed,
}

/// The oxide-auth authorizer over the cache.
pub struct CodeStore {
    cache: Cache,
    db: Option<sea_orm::DatabaseConnection>,
    /// The session on whose behalf the next code is issued.
    pub session: Option<SessionContext>,
    /// The organization chosen for the next code.
    pub org: Option<Uuid>,
    pub failure: Option<CodeFailure>,
}

fn code_key(hash: &str) -> String {
    format!("oauth-code:{hash}")
}

fn spent_key(hash: &str) -> String {
    format!("oauth-code-spent:{hash}")
}

/// Where the tokens issued from a code are listed, for revocation on replay.
pub fn issued_key(code_hash: &str) -> String {
    format!("oauth-code-issued:{code_hash}")
}

/// A revoked access token's `jti`, kept until the token would have expired.
pub fn revoked_jti_key(jti: &str) -> String {
    format!("revoked-jti:{jti}")
}

impl CodeStore {
    /// `db` is needed only where codes are redeemed, to revoke refresh tokens.
    pub fn new(cache: Cache, db: Option<sea_orm::DatabaseConnection>) -> Self {
        Self {
            cache,
            db,
            session: None,
            org: None,
            failure: None,
        }
    }

    async fn revoke_issued(&self, hash: &str) {
        let issued = match self.cache.get(&issued_key(hash)).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("cannot read tokens issued from a replayed code: {e}");
                return;
            }
        };
        let Ok(issued) = serde_json::from_slice::<IssuedFromCode>(&issued) else {
            return;
        };
        let now = Utc::now().timestamp();
        let ttl = Duration::from_secs(u64::try_from(issued.exp - now).unwrap_or(0).max(1));
        if let Err(e) = self
            .cache
            .put(&revoked_jti_key(&issued.jti), b"1", ttl)
            .await
        {
            tracing::error!("cannot revoke token {} of a replayed code: {e}", issued.jti);
        }
        if let (Some(family), Some(db)) = (issued.family, &self.db)
            && let Err(e) = super::refresh::revoke_family(db, family).await
        {
            tracing::error!("cannot revoke refresh family {family} of a replayed code: {e}");
        }
        tracing::warn!(code = %hash, "authorization code replayed: tokens issued from it revoked");
    }
}

#[async_trait]
impl oxide_auth_async::primitives::Authorizer for CodeStore {
    async fn authorize(&mut self, mut grant: Grant) -> Result<String, ()> {
        if let Some(session) = &self.session {
            let json = serde_json::to_string(session).map_err(|_| ())?;
            grant
                .extensions
                .set_raw(EXT_SESSION.to_owned(), Value::private(Some(json)));
        }
        if let Some(org) = self.org {
            grant
                .extensions
                .set_raw(EXT_ORG.to_owned(), Value::private(Some(org.to_string())));
        }
        grant.until = Utc::now() + chrono::Duration::from_std(CODE_TTL).map_err(|_| ())?;
        let code = random_token().map_err(|_| ())?;
        let stored = serde_json::to_vec(&StoredGrant::from_grant(&grant)).map_err(|_| ())?;
        self.cache
            .put(&code_key(&digest(&code)), &stored, CODE_TTL)
            .await
            .map_err(|e| tracing::error!("cannot store authorization code: {e}"))?;
        Ok(code)
    }

    async fn extract(&mut self, code: &str) -> Result<Option<Grant>, ()> {
        if code.len() > 128 {
            self.failure = Some(CodeFailure::Invalid);
            return Ok(None);
        }
        let hash = digest(code);
        let taken = self
            .cache
            .take(&code_key(&hash))
            .await
            .map_err(|e| tracing::error!("cannot read authorization code: {e}"))?;
        let Some(bytes) = taken else {
            let spent = self.cache.get(&spent_key(&hash)).await.map_err(|_| ())?;
            if spent.is_some() {
                self.failure = Some(CodeFailure::Replayed);
                self.revoke_issued(&hash).await;
            } else {
                self.failure = Some(CodeFailure::Invalid);
            }
            return Ok(None);
        };
        self.cache
            .put(&spent_key(&hash), b"1", REPLAY_WINDOW)
            .await
            .map_err(|_| ())?;
        let stored: StoredGrant = serde_json::from_slice(&bytes).map_err(|_| ())?;
        let mut grant = stored.into_grant().ok_or(())?;
        grant
            .extensions
            .set_raw(EXT_CODE.to_owned(), Value::private(Some(hash)));
        Ok(Some(grant))
    }
}

#[cfg(test)]
mod tests {
    use oxide_auth_async::primitives::Authorizer;

    use super::*;

    fn grant() -> Grant {
        Grant {
            owner_id: Uuid::new_v4().to_string(),
            client_id: "client".into(),
            scope: "openid".parse().expect("scope"),
            redirect_uri: "https://app.example/cb".parse().expect("uri"),
            until: Utc::now(),
            extensions: Extensions::new(),
        }
    }

    #[tokio::test]
    async fn a_redeemed_code_is_remembered_for_the_replay_window_only() {
        let cache = Cache::memory("t:");
        let mut store = CodeStore::new(cache.clone(), None);
        let code = Authorizer::authorize(&mut store, grant())
            .await
            .expect("code");
        assert!(
            Authorizer::extract(&mut store, &code)
                .await
                .expect("ok")
                .is_some()
        );
        let hash = digest(&code);
        let marker = cache
            .memory_expires_in(&spent_key(&hash))
            .expect("a spent marker");
        assert!(marker <= REPLAY_WINDOW, "marker kept for {marker:?}");
        assert!(marker > REPLAY_WINDOW - Duration::from_secs(5));

        assert!(
            Authorizer::extract(&mut store, &code)
                .await
                .expect("ok")
                .is_none()
        );
        assert_eq!(store.failure, Some(CodeFailure::Replayed));
    }
}
