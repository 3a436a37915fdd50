//! The client repository: the one place that maps a `client` row to a
//! [`Client`] and back. A stored value no release writes (an unknown grant type,
//! algorithm or auth method, a list that is not JSON) is refused loudly, never
//! read as a default: a silent default could widen what the client may do.

use std::sync::Arc;

use crate::audit::{self, Actor, Event, Kind};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::identity::sessions::random_token;
use url::Url;

use crate::oauth::clients::{
    AuthMethod, Client, ClientError, GrantType, NewClient, RedirectRules, validate,
};
use crate::oauth::{digest, scope_list};
use crate::store::entities::{client, consent, refresh_token};

/// The client a row stores.
fn to_client(row: client::Model) -> Result<Client, DbErr> {
    let id = row.client_id.clone();
    let malformed = |field: &str, value: &str| {
        DbErr::Custom(format!(
            "client {id}: stored {field} `{value}` is malformed"
        ))
    };
    let list = |field: &str, json: &str| -> Result<Vec<String>, DbErr> {
        serde_json::from_str(json).map_err(|_| malformed(field, json))
    };
    let grant_types = row
        .grant_types
        .split_whitespace()
        .map(|g| GrantType::parse(g).ok_or_else(|| malformed("grant type", g)))
        .collect::<Result<_, _>>()?;
    let auth_method = AuthMethod::parse(&row.token_endpoint_auth_method).ok_or_else(|| {
        malformed(
            "token_endpoint_auth_method",
            &row.token_endpoint_auth_method,
        )
    })?;
    Ok(Client {
        redirect_uris: list("redirect_uris", &row.redirect_uris)?,
        grant_types,
        scope: scope_list(&row.scope),
        native: row.application_type == "native",
        first_party: row.first_party,
        id_token_alg: row
            .id_token_alg
            .parse()
            .map_err(|_| malformed("id_token_alg", &row.id_token_alg))?,
        post_logout_redirect_uris: list(
            "post_logout_redirect_uris",
            &row.post_logout_redirect_uris,
        )?,
        org_optional: row.org_optional,
        contacts: list("contacts", &row.contacts)?,
        auth_method,
        self_registered: row.self_registered,
        registration_token_hash: row.registration_token_hash,
        created_at: row.created_at,
        client_id: row.client_id,
        name: row.name,
        secret_hash: row.secret_hash,
        client_uri: row.client_uri,
        logo_uri: row.logo_uri,
        default_resource: row.default_resource,
        introspect_for: row.introspect_for,
        service: match (row.service_org_id, row.service_role.as_deref()) {
            (Some(org), Some(role)) => Some((
                org,
                role.parse().map_err(|_| malformed("service_role", role))?,
            )),
            (None, None) => None,
            _ => return Err(malformed("service account", "half set")),
        },
        previous_secret: row.previous_secret_hash.zip(row.previous_secret_until),
        backchannel_logout_uri: row.backchannel_logout_uri,
        backchannel_logout_session_required: row.backchannel_logout_session_required,
    })
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Writes the metadata of `new` into `row`: the columns registration sets and
/// RFC 7592 updates replace alike.
fn fill(row: &mut client::ActiveModel, new: &NewClient) {
    let grant_types: Vec<&str> = new.grant_types.iter().map(|g| g.as_str()).collect();
    row.name = Set(new.name.trim().to_owned());
    row.redirect_uris = Set(json_list(&new.redirect_uris));
    row.grant_types = Set(grant_types.join(" "));
    row.scope = Set(scope_list(&new.scope).join(" "));
    row.application_type = Set(if new.native { "native" } else { "web" }.to_owned());
    row.id_token_alg = Set(new.id_token_alg.as_str().to_owned());
    row.post_logout_redirect_uris = Set(json_list(&new.post_logout_redirect_uris));
    row.client_uri = Set(new.client_uri.clone());
    row.logo_uri = Set(new.logo_uri.clone());
    row.contacts = Set(json_list(&new.contacts));
    row.token_endpoint_auth_method = Set(new.auth_method.as_str().to_owned());
    row.default_resource = Set(new.default_resource.clone());
    row.introspect_for = Set(new.introspect_for.clone());
    row.service_org_id = Set(new.service.map(|(org, _)| org));
    row.service_role = Set(new.service.map(|(_, role)| role.as_str().to_owned()));
    row.backchannel_logout_uri = Set(new.backchannel_logout_uri.clone());
    row.backchannel_logout_session_required = Set(new.backchannel_logout_session_required);
}

/// A fresh client secret (256 random bits); `None` for a public client.
fn new_secret(auth_method: AuthMethod) -> Result<Option<String>, ClientError> {
    if auth_method == AuthMethod::None {
        return Ok(None);
    }
    random_token()
        .map(Some)
        .map_err(|e| ClientError::Random(e.to_string()))
}

/// Stores a validated client; `registration_token` is the RFC 7592 token of a
/// client that registered itself. Returns the client and its secret, which
/// exists only in this return value: the database keeps its SHA-256 (a slow hash
/// buys nothing for 256 random bits and would cost every token request).
pub async fn insert(
    db: &DatabaseConnection,
    new: NewClient,
    registration_token: Option<&str>,
) -> Result<(Client, Option<String>), ClientError> {
    let secret = new_secret(new.auth_method)?;
    let mut row = client::ActiveModel {
        id: Set(Uuid::now_v7()),
        client_id: Set(Uuid::now_v7().to_string()),
        secret_hash: Set(secret.as_deref().map(digest)),
        first_party: Set(new.first_party),
        org_optional: Set(new.org_optional),
        created_at: Set(Utc::now()),
        registration_token_hash: Set(registration_token.map(digest)),
        self_registered: Set(registration_token.is_some()),
        ..Default::default()
    };
    fill(&mut row, &new);
    let row = row.insert(db).await?;
    let mut event =
        client_event(Kind::ClientCreated, &row.client_id).detail("name", row.name.clone());
    if registration_token.is_some() {
        event = event.detail("via", "dynamic_registration");
    }
    audit::record(db, event).await?;
    Ok((to_client(row)?, secret))
}

/// An event about client `client_id`: by the client itself when it manages
/// its own registration (RFC 7592), else by whoever the context names (the
/// command line, an administrator).
fn client_event(kind: Kind, client_id: &str) -> Event {
    Event::new(kind).client(client_id)
}

/// Replaces a client's metadata (RFC 7592 §2.2). A secret is kept unless the
/// client changes to or from public, or asks for a new one; a new one is returned.
pub async fn replace(
    db: &DatabaseConnection,
    client_id: &str,
    new: NewClient,
    rotate_secret: bool,
) -> Result<Option<(Client, Option<String>)>, ClientError> {
    let Some(row) = client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let public = new.auth_method == AuthMethod::None;
    let was_public = row.secret_hash.is_none();
    let secret = if !public && (was_public || rotate_secret) {
        new_secret(new.auth_method)?
    } else {
        None
    };
    let mut active = row.into_active_model();
    if public || secret.is_some() {
        active.secret_hash = Set(secret.as_deref().map(digest));
    }
    fill(&mut active, &new);
    let row = active.update(db).await?;
    let event = client_event(Kind::ClientUpdated, &row.client_id)
        .actor(Actor::Service(row.client_id.clone()))
        .detail("new_secret", secret.is_some());
    audit::record(db, event).await?;
    Ok(Some((to_client(row)?, secret)))
}

/// Gives a confidential client a new secret; the old one keeps working for
/// `grace` (none: it stops at once), so a service can roll the new one out
/// without an outage. `None` when there is no such confidential client.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    client_id: &str,
    grace: chrono::Duration,
) -> Result<Option<String>, ClientError> {
    let Some(row) = client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(old) = row.secret_hash.clone() else {
        return Ok(None);
    };
    let secret = new_secret(AuthMethod::ClientSecretBasic)?;
    let mut active = row.into_active_model();
    active.secret_hash = Set(secret.as_deref().map(digest));
    let keep = grace > chrono::Duration::zero();
    active.previous_secret_hash = Set(keep.then_some(old));
    active.previous_secret_until = Set(keep.then(|| Utc::now() + grace));
    active.update(db).await?;
    let event = client_event(Kind::ClientSecretRotated, client_id)
        .detail("grace_seconds", grace.num_seconds());
    audit::record(db, event).await?;
    Ok(secret)
}

/// Replaces the RFC 7592 registration access token (stored as a digest).
pub async fn set_registration_token(
    db: &DatabaseConnection,
    client_id: &str,
    token: &str,
) -> Result<(), ClientError> {
    client::Entity::update_many()
        .col_expr(
            client::Column::RegistrationTokenHash,
            sea_orm::sea_query::Expr::value(digest(token)),
        )
        .filter(client::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes a client; its refresh tokens are revoked and its consents forgotten.
pub async fn delete(db: &DatabaseConnection, client_id: &str) -> Result<bool, ClientError> {
    use sea_orm::sea_query::Expr;
    let txn = db.begin().await?;
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::ClientId.eq(client_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    consent::Entity::delete_many()
        .filter(consent::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?;
    let deleted = client::Entity::delete_many()
        .filter(client::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?;
    if deleted.rows_affected > 0 {
        audit::record(&txn, client_event(Kind::ClientDeleted, client_id)).await?;
    }
    txn.commit().await?;
    Ok(deleted.rows_affected > 0)
}

/// Every client, oldest first (the admin API lists them).
pub async fn list(db: &DatabaseConnection) -> Result<Vec<Client>, DbErr> {
    use sea_orm::QueryOrder;
    client::Entity::find()
        .order_by_asc(client::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(to_client)
        .collect()
}

/// The service accounts of `org`, oldest first.
pub async fn service_accounts_of(db: &DatabaseConnection, org: Uuid) -> Result<Vec<Client>, DbErr> {
    use sea_orm::QueryOrder;
    client::Entity::find()
        .filter(client::Column::ServiceOrgId.eq(org))
        .order_by_asc(client::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(to_client)
        .collect()
}

pub async fn find(db: &DatabaseConnection, client_id: &str) -> Result<Option<Client>, DbErr> {
    if client_id.is_empty() || client_id.len() > 64 {
        return Ok(None);
    }
    client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await?
        .map(to_client)
        .transpose()
}

/// Registers a client as an operator does (CLI, tests): the rules every client
/// satisfies, then [`insert`].
pub async fn create(
    db: &DatabaseConnection,
    new: NewClient,
) -> Result<(Client, Option<String>), ClientError> {
    validate(&new, RedirectRules::Operator)?;
    insert(db, new, None).await
}

/// Recently read clients, so the token endpoint does not ask the database on
/// every request (a round trip that cost more than signing the token). An entry
/// lives `ttl`: this instance forgets a client at once when it changes it, other
/// instances sharing the database within `ttl`.
pub struct ClientCache {
    ttl: std::time::Duration,
    /// Shared, not copied, with each request that finds one: a `Client` is a
    /// dozen strings and lists.
    entries:
        std::sync::RwLock<std::collections::HashMap<String, (std::time::Instant, Arc<Client>)>>,
}

/// Enough for every client of a large deployment; past it the cache starts over.
const CLIENT_CACHE_CAPACITY: usize = 10_000;

impl ClientCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: std::sync::RwLock::new(std::collections::HashMap::new()),
        }
    }

    pub async fn find(
        &self,
        db: &DatabaseConnection,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, sea_orm::DbErr> {
        if !self.ttl.is_zero() {
            let entries = self
                .entries
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, client)) = entries.get(client_id)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(Arc::clone(client)));
            }
        }
        let found = find(db, client_id).await?.map(Arc::new);
        if let Some(client) = &found
            && !self.ttl.is_zero()
        {
            let mut entries = self
                .entries
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if entries.len() >= CLIENT_CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(
                client_id.to_owned(),
                (std::time::Instant::now(), Arc::clone(client)),
            );
        }
        Ok(found)
    }

    /// The redirect URI `redirect_uri`, when it is one `client_id` registered (the
    /// same check `/authorize` makes before anything may go there); `None`
    /// for an unknown client or a URI it did not register.
    pub async fn verified_redirect(
        &self,
        db: &DatabaseConnection,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Option<Url>, sea_orm::DbErr> {
        let client = self.find(db, client_id).await?;
        Ok(client
            .filter(|c| c.redirect_allowed(redirect_uri))
            .and_then(|_| Url::parse(redirect_uri).ok()))
    }

    /// Drops a client this instance just changed or deleted.
    pub fn forget(&self, client_id: &str) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> client::Model {
        client::Model {
            id: Uuid::now_v7(),
            client_id: "c".into(),
            secret_hash: None,
            name: "App".into(),
            redirect_uris: r#"["https://app.example/cb"]"#.into(),
            grant_types: "authorization_code refresh_token".into(),
            scope: "openid".into(),
            application_type: "web".into(),
            first_party: false,
            id_token_alg: "RS256".into(),
            created_at: Utc::now(),
            post_logout_redirect_uris: "[]".into(),
            org_optional: false,
            client_uri: None,
            logo_uri: None,
            contacts: "[]".into(),
            token_endpoint_auth_method: "none".into(),
            registration_token_hash: None,
            self_registered: false,
            default_resource: None,
            introspect_for: None,
            service_org_id: None,
            service_role: None,
            previous_secret_hash: None,
            previous_secret_until: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
        }
    }

    #[test]
    fn a_stored_client_reads_as_typed_values_and_a_malformed_one_is_refused() {
        let client = to_client(row()).unwrap();
        assert_eq!(
            client.grant_types,
            [GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(client.auth_method, AuthMethod::None);
        let broken: [fn(&mut client::Model); 5] = [
            |r| r.grant_types = "authorization_code password".into(),
            |r| r.token_endpoint_auth_method = "private_key_jwt".into(),
            |r| r.id_token_alg = "HS256".into(),
            |r| r.redirect_uris = "https://app.example/cb".into(),
            |r| r.contacts = "".into(),
        ];
        for (i, breaks) in broken.into_iter().enumerate() {
            let mut r = row();
            breaks(&mut r);
            let refused = to_client(r).expect_err("no silent default");
            assert!(
                refused.to_string().contains("client c: stored"),
                "{i}: {refused}"
            );
        }
    }
}
