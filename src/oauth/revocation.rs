//! Token revocation (RFC 7009) and introspection (RFC 7662).

use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::clients::Client;
use super::codes::revoked_jti_key;
use super::refresh::{self, Presented};
use super::tokens::{BearerError, IssuerConfig, verify_access_token};
use crate::identity::pats;
use crate::orgs::apis;
use crate::store::cache::CacheError;

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("the token was issued to another client")]
    NotOwner,
    #[error("storage: {0}")]
    Storage(String),
}

impl From<refresh::RefreshError> for RevocationError {
    fn from(e: refresh::RefreshError) -> Self {
        RevocationError::Storage(e.to_string())
    }
}

impl From<CacheError> for RevocationError {
    fn from(e: CacheError) -> Self {
        RevocationError::Storage(e.to_string())
    }
}

/// Which kind to look for first (RFC 7009 §2.1 `token_type_hint`; only a hint).
fn refresh_first(hint: Option<&str>) -> bool {
    hint != Some("access_token")
}

/// Revokes `token` for `client_id`. Unknown, expired and malformed tokens are not
/// an error (RFC 7009 §2.2: the client's goal is met either way).
pub async fn revoke(
    config: &IssuerConfig,
    client_id: &str,
    token: &str,
    hint: Option<&str>,
) -> Result<(), RevocationError> {
    let order: [bool; 2] = if refresh_first(hint) {
        [true, false]
    } else {
        [false, true]
    };
    for as_refresh in order {
        let done = if as_refresh {
            revoke_refresh(config, client_id, token).await?
        } else {
            revoke_access(config, client_id, token).await?
        };
        if done {
            return Ok(());
        }
    }
    Ok(())
}

async fn revoke_refresh(
    config: &IssuerConfig,
    client_id: &str,
    token: &str,
) -> Result<bool, RevocationError> {
    let record = match refresh::find(&config.db, token).await? {
        Presented::Live(r) | Presented::Spent(r) => r,
        Presented::Dead => return Ok(false),
    };
    if record.client_id != client_id {
        return Err(RevocationError::NotOwner);
    }
    // RFC 7009 §2.1: revoking a refresh token invalidates the grant behind it.
    refresh::revoke_family(&config.db, record.family_id).await?;
    Ok(true)
}

async fn revoke_access(
    config: &IssuerConfig,
    client_id: &str,
    token: &str,
) -> Result<bool, RevocationError> {
    let claims =
        match verify_access_token(&config.keys, &config.cache, config.issuer(), token).await {
            Ok(c) => c,
            Err(BearerError::Unavailable(e)) => return Err(RevocationError::Storage(e)),
            Err(_) => return Ok(false),
        };
    if claims.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(RevocationError::NotOwner);
    }
    let (Some(jti), Some(exp)) = (
        claims.get("jti").and_then(Value::as_str),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Ok(false);
    };
    // Kept exactly as long as the token could still be presented.
    let ttl = Duration::from_secs(
        u64::try_from(exp - Utc::now().timestamp())
            .unwrap_or(0)
            .max(1),
    );
    config.cache.put(&revoked_jti_key(jti), b"1", ttl).await?;
    Ok(true)
}

/// RFC 7662 §2.2: `{"active": false}` for anything not currently valid, or not
/// this client's to inspect; otherwise the token's metadata. A token is described
/// to the client it was issued to, and an access token also to the server of the
/// API it is for (a client registered `--introspect-for` its audience) — not to
/// every confidential client. Personal access tokens are described to API
/// servers only, for their own API.
pub async fn introspect(
    config: &IssuerConfig,
    client: &Client,
    token: &str,
    hint: Option<&str>,
) -> Result<Value, RevocationError> {
    let inactive = json!({ "active": false });
    if token.starts_with(pats::PREFIX) {
        return Ok(personal_token(config, client, token)
            .await?
            .unwrap_or(inactive));
    }
    let order: [bool; 2] = if hint == Some("refresh_token") {
        [true, false]
    } else {
        [false, true]
    };
    for as_refresh in order {
        if as_refresh {
            if let Presented::Live(record) = refresh::find(&config.db, token).await?
                && record.client_id == client.client_id
                && account_active(config, record.user_id).await?
            {
                return Ok(describe_refresh(config, &record));
            }
        } else {
            match verify_access_token(&config.keys, &config.cache, config.issuer(), token).await {
                Ok(claims) => {
                    let issued_to = claims.get("client_id").and_then(Value::as_str);
                    let audience = claims.get("aud").and_then(Value::as_str);
                    let its_own = issued_to == Some(client.client_id.as_str());
                    let its_api =
                        audience.is_some() && client.introspect_for.as_deref() == audience;
                    if !(its_own || its_api)
                        || !account_active(config, user_subject(&claims)).await?
                    {
                        return Ok(inactive);
                    }
                    let mut claims = std::sync::Arc::unwrap_or_clone(claims);
                    claims.insert("active".into(), Value::Bool(true));
                    claims.insert("token_type".into(), Value::from("Bearer"));
                    return Ok(Value::Object(claims));
                }
                Err(BearerError::Unavailable(e)) => return Err(RevocationError::Storage(e)),
                Err(_) => {}
            }
        }
    }
    Ok(inactive)
}

fn describe_refresh(config: &IssuerConfig, record: &refresh::RefreshRecord) -> Value {
    let mut out = Map::new();
    out.insert("active".into(), Value::Bool(true));
    out.insert("token_type".into(), Value::from("refresh_token"));
    out.insert("client_id".into(), Value::from(record.client_id.clone()));
    out.insert("scope".into(), Value::from(record.scope.clone()));
    out.insert("iss".into(), Value::from(config.issuer()));
    out.insert("iat".into(), Value::from(record.created_at.timestamp()));
    out.insert(
        "exp".into(),
        Value::from(refresh::expires(record).timestamp()),
    );
    if let Some(user) = record.user_id {
        out.insert("sub".into(), Value::from(user.to_string()));
    }
    Value::Object(out)
}

/// A personal access token, described to the server of an API: `aud` is that
/// API, `scope` the token's scopes the person still holds that the API defines
/// (all of them for an API without scopes of its own). No `client_id`: a person
/// made it, not a client.
async fn personal_token(
    config: &IssuerConfig,
    client: &Client,
    token: &str,
) -> Result<Option<Value>, RevocationError> {
    let Some(audience) = &client.introspect_for else {
        return Ok(None);
    };
    let active = pats::authenticate(&config.db, token)
        .await
        .map_err(|e| RevocationError::Storage(e.to_string()))?;
    let Some(active) = active else {
        return Ok(None);
    };
    let api = apis::resolve(&config.db, &config.settings.resources, audience)
        .await
        .map_err(|e| RevocationError::Storage(e.to_string()))?;
    let scopes: Vec<&str> = active
        .scopes
        .iter()
        .filter(|s| {
            api.as_ref()
                .is_none_or(|a| a.scopes.is_empty() || a.scopes.contains(s))
        })
        .map(String::as_str)
        .collect();
    let mut out = Map::new();
    out.insert("active".into(), Value::Bool(true));
    out.insert("token_type".into(), Value::from(PAT_TOKEN_TYPE));
    out.insert("iss".into(), Value::from(config.issuer()));
    out.insert("sub".into(), Value::from(active.pat.user_id.to_string()));
    out.insert("aud".into(), Value::from(audience.clone()));
    out.insert("scope".into(), Value::from(scopes.join(" ")));
    out.insert("iat".into(), Value::from(active.pat.created_at.timestamp()));
    if let Some(exp) = active.pat.expires_at {
        out.insert("exp".into(), Value::from(exp.timestamp()));
    }
    match active.pat.org_id {
        Some(org) => {
            out.insert("org_id".into(), Value::from(org.to_string()));
            if let Some(role) = active.role {
                out.insert("org_role".into(), Value::from(role.as_str()));
            }
        }
        // Any of the person's organizations: every membership, as a JWT with
        // the `orgs` scope lists them, each with the scope the token carries
        // there (what the person's role in it holds) — the top-level `scope` is
        // their union.
        None => {
            let memberships = crate::orgs::memberships_of(&config.db, active.pat.user_id)
                .await
                .map_err(|e| RevocationError::Storage(e.to_string()))?;
            let list: Vec<Value> = memberships
                .iter()
                .map(|m| {
                    let held: Vec<&str> = scopes
                        .iter()
                        .filter(|s| {
                            api.as_ref().is_none_or(|a| {
                                a.scopes.is_empty() || a.held_by(m.role).iter().any(|h| h == *s)
                            })
                        })
                        .copied()
                        .collect();
                    json!({ "id": m.id, "slug": m.slug, "role": m.role, "scope": held.join(" ") })
                })
                .collect();
            out.insert("orgs".into(), Value::Array(list));
        }
    }
    Ok(Some(Value::Object(out)))
}

/// `token_type` of a personal access token in introspection answers.
pub const PAT_TOKEN_TYPE: &str = "personal_access_token";

/// The user an access token speaks for; `None` for a client acting for itself
/// (client_credentials: `sub` is the client's own id).
fn user_subject(claims: &Map<String, Value>) -> Option<uuid::Uuid> {
    let sub = claims.get("sub").and_then(Value::as_str)?;
    if claims.get("client_id").and_then(Value::as_str) == Some(sub) {
        return None;
    }
    uuid::Uuid::parse_str(sub).ok()
}

/// Whether the account behind a token still exists and is enabled: a disabled
/// account's tokens introspect as inactive even before they expire.
async fn account_active(
    config: &IssuerConfig,
    user: Option<uuid::Uuid>,
) -> Result<bool, RevocationError> {
    let Some(user) = user else {
        return Ok(true);
    };
    let found = crate::identity::users::find(&config.db, user)
        .await
        .map_err(|e| RevocationError::Storage(e.to_string()))?;
    Ok(found.is_some_and(|u| !u.disabled))
}
