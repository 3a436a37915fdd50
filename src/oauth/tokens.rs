//! Access tokens: RFC 9068 JWTs signed ES256 by the key ring, so resource servers
//! verify them from the JWKS alone.

use std::sync::Arc;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use uuid::Uuid;

use super::SessionContext;
use super::codes::revoked_jti_key;
use super::error::TokenError;
use super::refresh::Lifetimes;
use crate::config::Settings;
use crate::oidc::id_token::{self, IdTokenRequest};
use crate::orgs::Role;
use crate::orgs::apis;
use crate::store::cache::Cache;
use crate::tokens::keys::{ACCESS_TOKEN_TYP, TokenRejection};
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
) -> Result<Arc<serde_json::Map<String, serde_json::Value>>, BearerError> {
    let claims = keys.verify_access_token(token, issuer, Utc::now())?;
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
    /// Absent for a token exchanged for a personal access token: no client
    /// acts (see `credential`).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<&'a [String]>,
    /// `"personal_access_token"` when exchanged for one (RFC 8693), with the
    /// token's id in `pat_id`, so an API can tell a script from a person at a
    /// browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pat_id: Option<String>,
    /// Organization claims (`org_id`, `org_slug`, `org_role`, `orgs`).
    #[serde(flatten)]
    org: &'a serde_json::Map<String, serde_json::Value>,
}

/// Settings shared by every grant; cheap to clone.
#[derive(Clone)]
pub struct IssuerConfig {
    pub keys: Arc<KeyRing>,
    pub cache: Cache,
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
}

/// Whom a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A person (authorization code and the refresh tokens it led to).
    User(Uuid),
    /// The client itself (client_credentials): `sub` is its client_id.
    Client,
}

/// A grant about to become tokens.
#[derive(Debug, Clone)]
pub struct Grant {
    pub subject: Subject,
    pub client_id: String,
    /// Sorted, space-separated: clients and logs read it better that way.
    pub scope: String,
    pub session: Option<SessionContext>,
    /// The organization chosen for the grant.
    pub org: Option<Uuid>,
    /// RFC 8707: the API the access token is for; `None` is the default audience.
    pub resource: Option<String>,
    pub nonce: Option<String>,
    /// The personal access token this grant was exchanged for (RFC 8693).
    pub pat: Option<Uuid>,
}

impl Grant {
    fn sub(&self) -> String {
        match self.subject {
            Subject::User(id) => id.to_string(),
            Subject::Client => self.client_id.clone(),
        }
    }
}

/// An access token just signed.
pub struct Signed {
    pub token: String,
    pub jti: String,
    pub exp: i64,
}

impl IssuerConfig {
    pub fn issuer(&self) -> &str {
        self.settings.issuer_str()
    }

    pub fn refresh_lifetimes(&self) -> Lifetimes {
        Lifetimes {
            idle: self.settings.refresh_token_idle_ttl,
            absolute: self.settings.refresh_token_ttl,
        }
    }

    /// RFC 8707 §2: a `resource` must be an API this server issues tokens for
    /// (stored, or listed in `TESSERA_RESOURCES`).
    pub async fn allowed_resource(
        &self,
        requested: Option<&str>,
    ) -> Result<Option<String>, TokenError> {
        let Some(audience) = requested else {
            return Ok(None);
        };
        match apis::resolve(&self.db, &self.settings.resources, audience).await {
            Ok(Some(api)) => Ok(Some(api.audience)),
            Ok(None) => Err(TokenError::UnknownResource),
            Err(e) => Err(TokenError::unavailable("cannot read an API", e)),
        }
    }

    /// The scope an access token for a person carries: the API scopes of the
    /// grant's API are kept only if the person's role in the token's organization
    /// holds them (`org` is the token's organization claims). The grant itself —
    /// and the refresh family it feeds — keeps what was consented, so a promotion
    /// brings the scopes back at the next refresh.
    pub async fn scope_for_token(
        &self,
        grant: &Grant,
        org: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TokenError> {
        let (Subject::User(_), Some(audience)) = (grant.subject, &grant.resource) else {
            return Ok(grant.scope.clone());
        };
        let api = apis::resolve(&self.db, &self.settings.resources, audience)
            .await
            .map_err(|e| TokenError::unavailable("cannot read an API", e))?;
        let role = org
            .get("org_role")
            .and_then(|r| r.as_str())
            .and_then(|r| r.parse::<Role>().ok());
        Ok(match api {
            Some(api) => api.narrow(&grant.scope, role),
            None => grant.scope.clone(),
        })
    }

    /// Refuses a grant whose account can no longer hold tokens: disabled or
    /// deleted. A disabled account's families are revoked when it is disabled;
    /// this check is what holds for a code or a token presented in the moment in
    /// between.
    pub async fn check_account(&self, user: Uuid) -> Result<(), TokenError> {
        let found = crate::identity::users::find(&self.db, user)
            .await
            .map_err(|e| TokenError::unavailable("cannot read an account", e))?;
        match found {
            Some(u) if !u.disabled => Ok(()),
            _ => Err(TokenError::AccountDisabled),
        }
    }

    /// Organization claims for a person's grant, fresh from the database; a grant
    /// whose organization no longer has the person fails.
    pub async fn org_claims(
        &self,
        grant: &Grant,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
        // A client acting for itself is no member of anything.
        let Subject::User(user) = grant.subject else {
            return Ok(serde_json::Map::new());
        };
        let with_all = grant.scope.split(' ').any(|s| s == "orgs");
        if grant.org.is_none() && !with_all {
            return Ok(serde_json::Map::new());
        }
        match crate::orgs::claims(&self.db, user, grant.org, with_all).await {
            Ok(claims) => Ok(claims),
            Err(crate::orgs::OrgError::NotMember) => Err(TokenError::MembershipGone),
            Err(e) => Err(TokenError::unavailable(
                "cannot read organization claims",
                e,
            )),
        }
    }

    /// Signs the RFC 9068 access token for `grant`.
    pub fn sign_access(
        &self,
        grant: &Grant,
        org: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Signed, TokenError> {
        let now = Utc::now();
        let ttl = i64::try_from(self.settings.access_token_ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now.timestamp().saturating_add(ttl);
        let jti = Uuid::now_v7().to_string();
        let sub = grant.sub();
        let claims = AccessClaims {
            iss: self.issuer(),
            sub: &sub,
            // RFC 9068 §3: the API asked for, else the configured default.
            aud: grant
                .resource
                .as_deref()
                .unwrap_or(&self.settings.default_audience),
            client_id: (!grant.client_id.is_empty()).then_some(grant.client_id.as_str()),
            scope: &grant.scope,
            iat: now.timestamp(),
            exp,
            jti: &jti,
            auth_time: grant.session.as_ref().map(|s| s.auth_time.timestamp()),
            amr: grant.session.as_ref().map(|s| s.amr.as_slice()),
            credential: grant.pat.map(|_| "personal_access_token"),
            pat_id: grant.pat.map(|id| id.to_string()),
            org,
        };
        // Room for the usual claims at once (serde_json starts at 128 bytes and doubles).
        let mut payload = Vec::with_capacity(512);
        serde_json::to_writer(&mut payload, &claims)
            .map_err(|e| TokenError::unavailable("access token", e))?;
        let token = self
            .keys
            .keys()
            .sign(Algorithm::Es256, ACCESS_TOKEN_TYP, &payload, now)
            .map_err(|e| TokenError::unavailable("cannot sign an access token", e))?;
        Ok(Signed { token, jti, exp })
    }

    /// The OIDC Core §3.1.3.3 id_token that goes with `access_token`, when the
    /// grant includes `openid`.
    pub fn sign_id_token(
        &self,
        grant: &Grant,
        access_token: &str,
        alg: Algorithm,
        org: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<String>, TokenError> {
        if !grant.scope.split(' ').any(|s| s == "openid") {
            return Ok(None);
        }
        let sub = grant.sub();
        let request = IdTokenRequest {
            issuer: self.issuer(),
            subject: &sub,
            client_id: &grant.client_id,
            nonce: grant.nonce.as_deref(),
            session: grant.session.as_ref(),
            access_token,
            alg,
            ttl: self.settings.id_token_ttl,
            org,
        };
        id_token::sign(&self.keys.keys(), &request, Utc::now())
            .map(Some)
            .map_err(|e| TokenError::unavailable("cannot sign an id_token", e))
    }
}
