//! An organization's service accounts, as its owners and admins manage them:
//! confidential clients that act for the organization with one role
//! (`client_credentials`). The same rule as for members holds: owners and admins
//! manage, and only owners touch owner accounts.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::members::{Change, may_manage};
use super::{Role, memberships_of};
use crate::oauth::clients::{AuthMethod, Client, ClientError, GrantType, NewClient};
use crate::store::clients;

/// How long a rotated secret keeps working: a day to roll the new one out.
pub const ROTATION_GRACE: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    #[error("you may not manage this organization's service accounts")]
    NotAllowed,
    #[error("only owners manage owner service accounts")]
    OwnersOnly,
    #[error("no such service account")]
    NotFound,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("storage: {0}")]
    Storage(String),
}

/// The viewer's role in `org`, if they may manage its service accounts with
/// `role` at stake.
async fn manager(
    db: &DatabaseConnection,
    viewer: Uuid,
    org: Uuid,
    role: Role,
) -> Result<(), ServiceAccountError> {
    let memberships = memberships_of(db, viewer)
        .await
        .map_err(|e| ServiceAccountError::Storage(e.to_string()))?;
    let actor = memberships
        .iter()
        .find(|m| m.id == org)
        .map(|m| m.role)
        .ok_or(ServiceAccountError::NotAllowed)?;
    may_manage(actor, role, Change::SetRole(role)).map_err(|e| match e {
        super::members::ManageError::OwnersOnly => ServiceAccountError::OwnersOnly,
        _ => ServiceAccountError::NotAllowed,
    })
}

/// The organization's service accounts, for a viewer who may manage them.
pub async fn list(db: &DatabaseConnection, org: Uuid) -> Result<Vec<Client>, ServiceAccountError> {
    clients::service_accounts_of(db, org)
        .await
        .map_err(|e| ServiceAccountError::Storage(e.to_string()))
}

/// Creates one; returns it with its secret, shown once.
pub async fn create(
    db: &DatabaseConnection,
    viewer: Uuid,
    org: Uuid,
    name: &str,
    role: Role,
) -> Result<(Client, String), ServiceAccountError> {
    manager(db, viewer, org, role).await?;
    let new = NewClient {
        name: name.to_owned(),
        grant_types: vec![GrantType::ClientCredentials],
        scope: String::new(),
        auth_method: AuthMethod::ClientSecretBasic,
        service: Some((org, role)),
        ..NewClient::default()
    };
    let (client, secret) = clients::create(db, new).await?;
    let secret = secret.ok_or(ServiceAccountError::Storage("no secret".into()))?;
    Ok((client, secret))
}

/// The account `client_id` of `org`, for a viewer who may manage it.
async fn of_org(
    db: &DatabaseConnection,
    viewer: Uuid,
    org: Uuid,
    client_id: &str,
) -> Result<Client, ServiceAccountError> {
    let client = clients::find(db, client_id)
        .await
        .map_err(|e| ServiceAccountError::Storage(e.to_string()))?
        .filter(|c| c.service.is_some_and(|(o, _)| o == org))
        .ok_or(ServiceAccountError::NotFound)?;
    let role = client.service.map_or(Role::Member, |(_, r)| r);
    manager(db, viewer, org, role).await?;
    Ok(client)
}

/// A new secret; the old one keeps working for [`ROTATION_GRACE`].
pub async fn rotate(
    db: &DatabaseConnection,
    viewer: Uuid,
    org: Uuid,
    client_id: &str,
) -> Result<(Client, String), ServiceAccountError> {
    let client = of_org(db, viewer, org, client_id).await?;
    let secret = clients::rotate_secret(db, client_id, ROTATION_GRACE)
        .await?
        .ok_or(ServiceAccountError::NotFound)?;
    Ok((client, secret))
}

/// Deletes one: its tokens stop working at once.
pub async fn delete(
    db: &DatabaseConnection,
    viewer: Uuid,
    org: Uuid,
    client_id: &str,
) -> Result<(), ServiceAccountError> {
    of_org(db, viewer, org, client_id).await?;
    clients::delete(db, client_id).await?;
    Ok(())
}
