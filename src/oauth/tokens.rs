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

use sea_orm::DatabaseConnection;

use super::codes::{
    EXT_CODE, EXT_NONCE, EXT_ORG, EXT_RESOURCE, EXT_SESSION, IssuedFromCode, REPLAY_WINDOW,
    SessionContext, issued_key, revoked_jti_key,
};
use super::refresh::{self, Lifetimes, Presented, RefreshRecord};
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
    /// Organization claims (`org_id`, `org_slug`, `org_role`, `orgs`).
    #[serde(flatten)]
    org: &'a serde_json::Map<String, serde_json::Value>,
}

/// What was issued, for the token response and the id_token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub scope: String,
    pub subject: String,
    pub client_id: String,
    pub session: Option<SessionContext>,
    pub nonce: Option<String>,
    /// Organization claims, repeated in the id_token.
    pub org_claims: serde_json::Map<String, serde_json::Value>,
}

/// Why a refresh token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFailure {
    /// Unknown, expired or revoked.
    Invalid,
    /// Issued to another client.
    WrongClient,
    /// Already spent (or spent concurrently): its family is now revoked.
    Reused,
    /// The user is no longer a member of the grant's organization.
    MembershipGone,
    /// The account the grant was made for is disabled (or gone).
    AccountDisabled,
}

/// Settings shared by every issuer.
#[derive(Clone)]
pub struct IssuerConfig {
    pub keys: Arc<KeyRing>,
    pub cache: Cache,
    pub db: DatabaseConnection,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh: Lifetimes,
}

/// The oxide-auth issuer, for one token request by one authenticated client.
pub struct TokenIssuer {
    config: IssuerConfig,
    client_id: String,
    /// Whether this client is registered for the refresh_token grant.
    client_refreshes: bool,
    presented: Option<RefreshRecord>,
    /// Whether a presented refresh token may be spent and succeeded as soon as it is
    /// found ([`refresh::rotate_live`]): true when the request keeps the scope.
    pub rotate_on_recovery: bool,
    /// The successor issued by that one-step rotation.
    successor: Option<String>,
    /// The RFC 8707 resource named at the token endpoint (already allowed).
    pub resource: Option<String>,
    pub issued: Option<Issued>,
    pub refresh_failure: Option<RefreshFailure>,
}

impl TokenIssuer {
    pub fn new(config: IssuerConfig, client_id: &str, client_refreshes: bool) -> Self {
        Self {
            config,
            client_id: client_id.to_owned(),
            client_refreshes,
            presented: None,
            rotate_on_recovery: false,
            successor: None,
            resource: None,
            issued: None,
            refresh_failure: None,
        }
    }

    /// The oxide-auth grant a refresh token stands for.
    fn grant_of(&self, record: &RefreshRecord) -> Result<Grant, ()> {
        let mut extensions = oxide_auth::primitives::grant::Extensions::new();
        if let Some(org) = record.org_id {
            extensions.set_raw(
                EXT_ORG.to_owned(),
                oxide_auth::primitives::grant::Value::private(Some(org.to_string())),
            );
        }
        if let Some(session) = refresh::session_of(record) {
            let json = serde_json::to_string(&session).map_err(|_| ())?;
            extensions.set_raw(
                EXT_SESSION.to_owned(),
                oxide_auth::primitives::grant::Value::private(Some(json)),
            );
        }
        Ok(Grant {
            owner_id: record
                .user_id
                .map_or_else(|| record.client_id.clone(), |u| u.to_string()),
            client_id: record.client_id.clone(),
            scope: record.scope.parse().map_err(|_| ())?,
            // Refresh grants carry no redirect; oxide-auth's type wants one.
            redirect_uri: self.config.issuer.parse().map_err(|_| ())?,
            until: refresh::expires(record),
            extensions,
        })
    }

    /// Signs an access token for `grant`, returning the token and its `jti`.
    fn sign(
        &self,
        grant: &Grant,
        session: Option<&SessionContext>,
        org: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(String, String, i64), ()> {
        let now = Utc::now();
        let exp =
            now.timestamp() + i64::try_from(self.config.access_ttl.as_secs()).map_err(|_| ())?;
        let jti = Uuid::now_v7().to_string();
        let scope = sorted_scope(grant);
        // RFC 9068 §3: the resource asked for now, else the one authorized, else
        // the configured default.
        let audience = self
            .resource
            .clone()
            .or_else(|| private_ext(grant, EXT_RESOURCE))
            .unwrap_or_else(|| self.config.audience.clone());
        let claims = AccessClaims {
            iss: &self.config.issuer,
            sub: &grant.owner_id,
            aud: &audience,
            client_id: &grant.client_id,
            scope: &scope,
            iat: now.timestamp(),
            exp,
            jti: &jti,
            auth_time: session.map(|s| s.auth_time.timestamp()),
            amr: session.map(|s| s.amr.as_slice()),
            org,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| ())?;
        let token = self
            .config
            .keys
            .keys()
            .sign(Algorithm::Es256, "at+jwt", &payload, now)
            .map_err(|e| tracing::error!("cannot sign an access token: {e}"))?;
        Ok((token, jti, exp))
    }

    /// Records what the code `code_hash` produced, for revocation if the code is
    /// ever replayed.
    async fn link_to_code(&self, code_hash: &str, issued: &IssuedFromCode) -> Result<(), ()> {
        let json = serde_json::to_vec(issued).map_err(|_| ())?;
        self.config
            .cache
            .put(&issued_key(code_hash), &json, REPLAY_WINDOW)
            .await
            .map_err(|e| tracing::error!("cannot link tokens to their code: {e}"))
    }

    /// Whether `user` can no longer hold tokens: disabled or deleted. A disabled
    /// account's families are revoked when it is disabled; this check is what
    /// holds for a code or a token presented in the moment in between.
    async fn account_disabled(&mut self, user: Uuid) -> Result<bool, ()> {
        let found = crate::identity::users::find(&self.config.db, user)
            .await
            .map_err(|e| tracing::error!("cannot read an account: {e}"))?;
        let disabled = found.is_none_or(|u| u.disabled);
        if disabled {
            self.refresh_failure = Some(RefreshFailure::AccountDisabled);
        }
        Ok(disabled)
    }

    /// Organization claims for a user's grant, fresh from the database. Fails with
    /// `MembershipGone` when the grant's organization no longer has the user.
    async fn org_claims(
        &mut self,
        grant: &Grant,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ()> {
        // A client acting for itself (client_credentials) is no member of
        // anything: its id is a UUID too, so it must not be read as a user's.
        if grant.owner_id == grant.client_id {
            return Ok(serde_json::Map::new());
        }
        let Ok(user) = Uuid::parse_str(&grant.owner_id) else {
            return Ok(serde_json::Map::new());
        };
        let chosen = private_ext(grant, EXT_ORG).and_then(|id| Uuid::parse_str(&id).ok());
        let with_all = sorted_scope(grant).split(' ').any(|s| s == "orgs");
        if chosen.is_none() && !with_all {
            return Ok(serde_json::Map::new());
        }
        match crate::orgs::claims(&self.config.db, user, chosen, with_all).await {
            Ok(claims) => Ok(claims),
            Err(crate::orgs::OrgError::NotMember) => {
                self.refresh_failure = Some(RefreshFailure::MembershipGone);
                Err(())
            }
            Err(e) => {
                tracing::error!("cannot read organization claims: {e}");
                Err(())
            }
        }
    }

    fn record(
        &mut self,
        access_token: String,
        refresh_token: Option<String>,
        grant: &Grant,
        session: Option<SessionContext>,
        nonce: Option<String>,
        org_claims: serde_json::Map<String, serde_json::Value>,
    ) {
        self.issued = Some(Issued {
            access_token,
            refresh_token,
            expires_in: self.config.access_ttl.as_secs(),
            scope: sorted_scope(grant),
            subject: grant.owner_id.clone(),
            client_id: grant.client_id.clone(),
            session,
            nonce,
            org_claims,
        });
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
        // A code outlives the sessions ended when its account was disabled.
        if session.is_some()
            && let Ok(user) = Uuid::parse_str(&grant.owner_id)
            && self.account_disabled(user).await?
        {
            return Err(());
        }
        let org = self.org_claims(&grant).await?;
        let (token, jti, exp) = self.sign(&grant, session.as_ref(), &org)?;
        let scope = sorted_scope(&grant);
        let (refresh_token, family) = if refresh::wanted(self.client_refreshes, &scope) {
            let new = refresh::NewFamily {
                client_id: &grant.client_id,
                user_id: uuid::Uuid::parse_str(&grant.owner_id).ok(),
                session: session.as_ref(),
                scope: &scope,
                org_id: private_ext(&grant, EXT_ORG).and_then(|id| Uuid::parse_str(&id).ok()),
            };
            let (token, family) = refresh::issue_family(&self.config.db, new, self.config.refresh)
                .await
                .map_err(|e| tracing::error!("cannot issue a refresh token: {e}"))?;
            (Some(token), Some(family))
        } else {
            (None, None)
        };
        if let Some(code_hash) = private_ext(&grant, EXT_CODE) {
            self.link_to_code(
                &code_hash,
                &IssuedFromCode {
                    jti: jti.clone(),
                    exp,
                    family,
                },
            )
            .await?;
        }
        let until = chrono::DateTime::from_timestamp(exp, 0).ok_or(())?;
        let nonce = private_ext(&grant, EXT_NONCE);
        self.record(
            token.clone(),
            refresh_token.clone(),
            &grant,
            session,
            nonce,
            org,
        );
        Ok(IssuedToken {
            token,
            refresh: refresh_token,
            until,
            token_type: TokenType::Bearer,
        })
    }

    async fn refresh(&mut self, _: &str, grant: Grant) -> Result<RefreshedToken, ()> {
        let presented = self.presented.take().ok_or(())?;
        // RFC 6749 §6: a narrower `scope` narrows this access token only; the
        // successor keeps the original grant.
        let rotated = match self.successor.take() {
            Some(successor) => Some(successor),
            None => refresh::rotate(&self.config.db, &presented, self.config.refresh)
                .await
                .map_err(|e| tracing::error!("cannot rotate a refresh token: {e}"))?,
        };
        let Some(new_refresh) = rotated else {
            // Another request spent this token first: treat it as reuse.
            self.refresh_failure = Some(RefreshFailure::Reused);
            let _ = refresh::revoke_family(&self.config.db, presented.family_id).await;
            tracing::warn!(family = %presented.family_id, "refresh token used twice at once: family revoked");
            return Err(());
        };
        let session = refresh::session_of(&presented);
        let org = self.org_claims(&grant).await?;
        let (token, _, exp) = self.sign(&grant, session.as_ref(), &org)?;
        let until = chrono::DateTime::from_timestamp(exp, 0).ok_or(())?;
        self.record(
            token.clone(),
            Some(new_refresh.clone()),
            &grant,
            session,
            None,
            org,
        );
        Ok(RefreshedToken {
            token,
            refresh: Some(new_refresh),
            until,
            token_type: TokenType::Bearer,
        })
    }

    async fn recover_token(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }

    async fn recover_refresh(&mut self, token: &str) -> Result<Option<Grant>, ()> {
        if self.rotate_on_recovery {
            let rotated =
                refresh::rotate_live(&self.config.db, token, &self.client_id, self.config.refresh)
                    .await
                    .map_err(|e| tracing::error!("cannot rotate a refresh token: {e}"))?;
            if let Some((record, successor)) = rotated {
                let mut grant = self.grant_of(&record)?;
                // The statement checked expiry when it spent the token; oxide-auth's
                // own check a moment later must not strand the successor.
                grant.until = grant.until.max(Utc::now() + chrono::Duration::minutes(1));
                self.successor = Some(successor);
                self.presented = Some(record);
                return Ok(Some(grant));
            }
        }
        let presented = refresh::find(&self.config.db, token)
            .await
            .map_err(|e| tracing::error!("cannot look up a refresh token: {e}"))?;
        let record = match presented {
            Presented::Live(record) => record,
            Presented::Spent(record) => {
                // RFC 9700 §4.14.2: reuse means the token leaked; end the family.
                self.refresh_failure = Some(RefreshFailure::Reused);
                refresh::revoke_family(&self.config.db, record.family_id)
                    .await
                    .map_err(|e| tracing::error!("cannot revoke a refresh family: {e}"))?;
                tracing::warn!(family = %record.family_id, client = %record.client_id, "spent refresh token presented again: family revoked");
                return Ok(None);
            }
            Presented::Dead => {
                self.refresh_failure = Some(RefreshFailure::Invalid);
                return Ok(None);
            }
        };
        // The requesting client was authenticated before this flow began; a token
        // of any other client is not its to use.
        if record.client_id != self.client_id {
            self.refresh_failure = Some(RefreshFailure::WrongClient);
            return Ok(None);
        }
        if let Some(user) = record.user_id
            && self.account_disabled(user).await?
        {
            return Ok(None);
        }
        // A refresh never changes organization; without the membership it fails,
        // before anything is rotated.
        if let (Some(org), Some(user)) = (record.org_id, record.user_id) {
            let memberships = crate::orgs::memberships_of(&self.config.db, user)
                .await
                .map_err(|e| tracing::error!("cannot read memberships: {e}"))?;
            if !memberships.iter().any(|m| m.id == org) {
                self.refresh_failure = Some(RefreshFailure::MembershipGone);
                return Ok(None);
            }
        }
        let grant = self.grant_of(&record)?;
        self.presented = Some(record);
        Ok(Some(grant))
    }
}
