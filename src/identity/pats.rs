//! Personal access tokens: long-lived credentials a person creates for scripts
//! and CI. `tsr_pat_` + 256 random bits (the prefix lets secret scanners find a
//! leaked one), shown once and stored only as a digest. A token may be pinned to
//! one organization; its scopes are API scopes the person holds, and they are
//! checked against the person's current role every time the token is used — a
//! demoted admin's token loses the admin scopes. A token dies with its owner's
//! account, when revoked, and (when pinned) when its owner leaves the
//! organization (`orgs::remove_member` revokes it in the same transaction).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;
use uuid::Uuid;

use super::sessions::random_token;
use crate::oauth::{digest, scope_list};
use crate::orgs::{self, Role, apis};
use crate::store::entities::personal_access_token as pat;

/// What every personal access token starts with.
pub const PREFIX: &str = "tsr_pat_";

#[derive(Debug, thiserror::Error)]
pub enum PatError {
    #[error("a token needs a name of 1 to 100 characters")]
    InvalidName,
    #[error("a token needs at least one scope")]
    NoScope,
    #[error("you do not hold the scope `{0}` in {1}")]
    ScopeNotHeld(String, &'static str),
    #[error("you are not a member of that organization")]
    NotMember,
    #[error("a token may live at most {0} days here")]
    TooLong(i64),
    #[error("no such token")]
    NotFound,
    #[error("storage: {0}")]
    Storage(String),
}

impl From<sea_orm::DbErr> for PatError {
    fn from(e: sea_orm::DbErr) -> Self {
        PatError::Storage(e.to_string())
    }
}

impl From<apis::ApiRegistryError> for PatError {
    fn from(e: apis::ApiRegistryError) -> Self {
        PatError::Storage(e.to_string())
    }
}

impl From<orgs::OrgError> for PatError {
    fn from(e: orgs::OrgError) -> Self {
        PatError::Storage(e.to_string())
    }
}

/// A token as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pat {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub org_id: Option<Uuid>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Pat {
    fn from_row(row: pat::Model) -> Self {
        Pat {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            org_id: row.org_id,
            scopes: scope_list(&row.scopes),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

/// A token asked for.
pub struct NewPat<'a> {
    pub user_id: Uuid,
    pub name: &'a str,
    pub org_id: Option<Uuid>,
    pub scopes: &'a [String],
    /// `None`: never expires.
    pub lifetime: Option<chrono::Duration>,
}

/// A token presented and in order: whose it is, and the scopes it carries now.
#[derive(Debug, Clone)]
pub struct Active {
    pub pat: Pat,
    /// The token's scopes the person still holds.
    pub scopes: Vec<String>,
    /// The person's role in the pinned organization.
    pub role: Option<Role>,
}

/// The API scopes `user` holds: in `org` when pinned, else in any organization.
async fn held(
    db: &DatabaseConnection,
    user: Uuid,
    org: Option<Uuid>,
) -> Result<Option<(Vec<String>, Option<Role>)>, PatError> {
    let memberships = orgs::memberships_of(db, user).await?;
    let roles: Vec<Role> = match org {
        Some(id) => match memberships.iter().find(|m| m.id == id) {
            Some(m) => vec![m.role],
            None => return Ok(None),
        },
        None => memberships.iter().map(|m| m.role).collect(),
    };
    let role = org.and(roles.first().copied());
    Ok(Some((apis::held_scopes(db, &roles).await?, role)))
}

/// Creates a token; returns it and its secret, which exists only in this value.
/// `max_lifetime` `None` allows tokens that never expire.
pub async fn create(
    db: &DatabaseConnection,
    max_lifetime: Option<chrono::Duration>,
    new: NewPat<'_>,
) -> Result<(Pat, String), PatError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(PatError::InvalidName);
    }
    let scopes = scope_list(&new.scopes.join(" "));
    if scopes.is_empty() {
        return Err(PatError::NoScope);
    }
    let (held, _) = held(db, new.user_id, new.org_id)
        .await?
        .ok_or(PatError::NotMember)?;
    let place = if new.org_id.is_some() {
        "that organization"
    } else {
        "any of your organizations"
    };
    if let Some(missing) = scopes.iter().find(|s| !held.contains(s)) {
        return Err(PatError::ScopeNotHeld(missing.clone(), place));
    }
    let lifetime = match (new.lifetime, max_lifetime) {
        (Some(asked), Some(max)) if asked > max => return Err(PatError::TooLong(max.num_days())),
        (None, Some(max)) => return Err(PatError::TooLong(max.num_days())),
        (asked, _) => asked,
    };
    let secret = random_token().map_err(|e| PatError::Storage(e.to_string()))?;
    let token = format!("{PREFIX}{secret}");
    let now = Utc::now();
    let row = pat::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        name: Set(name.to_owned()),
        token_hash: Set(digest(&token)),
        org_id: Set(new.org_id),
        scopes: Set(scopes.join(" ")),
        created_at: Set(now),
        last_used_at: Set(None),
        expires_at: Set(lifetime.map(|l| now + l)),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    crate::audit::record(
        db,
        crate::audit::Event::by_person(crate::audit::Kind::PatCreated, row.user_id)
            .detail("name", row.name.clone())
            .detail("token", row.id.to_string()),
    )
    .await?;
    Ok((Pat::from_row(row), token))
}

/// The person's live tokens (not revoked, not expired), newest first.
pub async fn list(db: &DatabaseConnection, user: Uuid) -> Result<Vec<Pat>, PatError> {
    let now = Utc::now();
    let rows = pat::Entity::find()
        .filter(pat::Column::UserId.eq(user))
        .filter(pat::Column::RevokedAt.is_null())
        .order_by_desc(pat::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.expires_at.is_none_or(|e| e > now))
        .map(Pat::from_row)
        .collect())
}

/// Revokes token `id` — of `owner` only, when given (the account page); any
/// token for the operator's CLI.
pub async fn revoke(
    db: &DatabaseConnection,
    owner: Option<Uuid>,
    id: Uuid,
) -> Result<(), PatError> {
    let mut update = pat::Entity::update_many()
        .col_expr(pat::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(pat::Column::Id.eq(id))
        .filter(pat::Column::RevokedAt.is_null());
    if let Some(owner) = owner {
        update = update.filter(pat::Column::UserId.eq(owner));
    }
    if update.exec(db).await?.rows_affected == 0 {
        return Err(PatError::NotFound);
    }
    if let Some(row) = pat::Entity::find_by_id(id).one(db).await? {
        // The owner revoking their own, or an operator (the context says).
        let event = match owner {
            Some(owner) => crate::audit::Event::by_person(crate::audit::Kind::PatRevoked, owner),
            None => crate::audit::Event::new(crate::audit::Kind::PatRevoked).subject(row.user_id),
        };
        let event = event
            .detail("name", row.name)
            .detail("token", row.id.to_string());
        crate::audit::record(db, event).await?;
    }
    Ok(())
}

/// Revokes every token of `user` (account disabled, or the person asked to).
pub async fn revoke_for_user(db: &DatabaseConnection, user: Uuid) -> Result<u64, PatError> {
    let result = pat::Entity::update_many()
        .col_expr(pat::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(pat::Column::UserId.eq(user))
        .filter(pat::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The token `presented`, if it is live and its owner's account is enabled, with
/// the scopes it carries now; records its use.
pub async fn authenticate(
    db: &DatabaseConnection,
    presented: &str,
) -> Result<Option<Active>, PatError> {
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let now = Utc::now();
    let Some(row) = pat::Entity::find()
        .filter(pat::Column::TokenHash.eq(digest(presented)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    let enabled = super::users::find(db, row.user_id)
        .await
        .map_err(|e| PatError::Storage(e.to_string()))?
        .is_some_and(|u| !u.disabled);
    if !enabled {
        return Ok(None);
    }
    let Some((held, role)) = held(db, row.user_id, row.org_id).await? else {
        return Ok(None);
    };
    pat::Entity::update_many()
        .col_expr(pat::Column::LastUsedAt, Expr::value(now))
        .filter(pat::Column::Id.eq(row.id))
        .exec(db)
        .await?;
    let pat = Pat::from_row(row);
    let scopes = pat
        .scopes
        .iter()
        .filter(|s| held.contains(s))
        .cloned()
        .collect();
    Ok(Some(Active { pat, scopes, role }))
}
