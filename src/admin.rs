//! Administration (issue 24): who may administer, and the operations behind
//! the admin API that are not already another module's (listing with
//! cursors, deleting an account with everything it holds, reading the audit
//! log). Every change goes through the same domain functions the pages and
//! the CLI use, so it is checked and recorded the same way.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use crate::audit::{self, Actor, Event, Kind};
use crate::identity::sessions::Sessions;
use crate::identity::users::User;
use crate::store::entities::{
    audit_event, consent, known_device, membership, personal_access_token, refresh_token,
    session_client, user, user_token,
};

/// The scope an access token needs for the admin API.
pub const SCOPE: &str = "tessera:admin";

/// The most items one page of a listing holds.
pub const MAX_PAGE: u64 = 200;

/// Who calls the admin API.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An administrator's own token (code flow with a first-party client).
    Person(User),
    /// A client made with `tessera client create --admin-api`.
    Service(String),
}

impl Caller {
    /// How the audit log names whoever acts through this caller.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Person(u) => Actor::Admin(Some(u.id)),
            Caller::Service(client) => Actor::Service(client.clone()),
        }
    }
}

/// Why a verified token may not use the admin API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("the token was not granted the tessera:admin scope")]
    NoScope,
    #[error("the account behind the token is not an administrator")]
    NotAdmin,
    #[error("the client behind the token may not use the admin API")]
    NotAdminClient,
    #[error("the token is for another audience; admin API tokens are for this server itself")]
    Audience,
}

/// Who a verified access token (its claims) stands for at the admin API. The
/// account's administrator flag (or the client's registration) is read now,
/// so taking it away takes effect at once, whatever tokens exist. The token
/// must be for this server (`issuer` as its audience): one an API received
/// (RFC 8707) cannot be replayed here by that API.
pub async fn caller(
    db: &DatabaseConnection,
    issuer: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Result<Caller, Refusal>, DbErr> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    if !text("scope").split_whitespace().any(|s| s == SCOPE) {
        return Ok(Err(Refusal::NoScope));
    }
    let for_us = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => aud == issuer,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(issuer)),
        _ => false,
    };
    if !for_us {
        return Ok(Err(Refusal::Audience));
    }
    let sub = text("sub");
    // A client acting for itself is its own subject (client_credentials).
    if sub == text("client_id") {
        let client = crate::store::clients::find(db, sub).await?;
        return Ok(match client {
            Some(c) if c.scope.iter().any(|s| s == SCOPE) => Ok(Caller::Service(c.client_id)),
            _ => Err(Refusal::NotAdminClient),
        });
    }
    let Ok(id) = Uuid::parse_str(sub) else {
        return Ok(Err(Refusal::NotAdmin));
    };
    Ok(match user::Entity::find_by_id(id).one(db).await? {
        Some(u) if u.is_admin && !u.disabled => Ok(Caller::Person(u)),
        _ => Err(Refusal::NotAdmin),
    })
}

/// One page of a listing, and the cursor of the next (none: the last page).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Uuid>,
}

/// `%` and `_` in a search are literal.
fn contains(text: &str) -> LikeExpr {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// Accounts in creation order (ids are UUIDv7), whose address contains
/// `search` (case-insensitive: addresses are stored lower-case), after the
/// cursor `after`.
pub async fn users(
    db: &DatabaseConnection,
    search: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Page<User>, DbErr> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut query = user::Entity::find().order_by_asc(user::Column::Id);
    if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
        query = query.filter(Expr::col(user::Column::Email).like(contains(&search.to_lowercase())));
    }
    if let Some(after) = after {
        query = query.filter(user::Column::Id.gt(after));
    }
    let mut items = query.limit(limit + 1).all(db).await?;
    let next = (items.len() as u64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|u| u.id)
    });
    Ok(Page {
        items,
        next: next.flatten(),
    })
}

/// Creates an account for someone: with the password given, or without one
/// — then a link to set it is mailed (the reset link, which works for an
/// account without a password). `verified`: the administrator vouches for
/// the address; otherwise the usual verification message is queued.
pub async fn create_user(
    db: &DatabaseConnection,
    hasher: &crate::identity::password::PasswordHasher,
    mailer: &crate::mail::Mailer,
    email: &str,
    password: Option<&str>,
    verified: bool,
) -> Result<User, crate::identity::IdentityError> {
    use crate::identity::users::{self, NewAddress};
    let address = if verified {
        NewAddress::Verified
    } else {
        NewAddress::SendVerification(mailer)
    };
    if let Some(password) = password {
        return users::create(db, hasher, email, password, address).await;
    }
    let email = crate::identity::normalize_email(email)?;
    if users::find_by_email(db, &email).await?.is_some() {
        return Err(crate::identity::IdentityError::EmailTaken);
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    let account = sea_orm::ActiveModelTrait::insert(
        user::ActiveModel {
            id: sea_orm::Set(Uuid::now_v7()),
            email: sea_orm::Set(email),
            password_hash: sea_orm::Set(None),
            disabled: sea_orm::Set(false),
            email_verified_at: sea_orm::Set(verified.then_some(now)),
            created_at: sea_orm::Set(now),
            updated_at: sea_orm::Set(now),
            is_admin: sea_orm::Set(false),
        },
        &txn,
    )
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            crate::identity::IdentityError::EmailTaken
        }
        _ => crate::identity::IdentityError::Storage(e),
    })?;
    audit::record(
        &txn,
        Event::by_person(Kind::AccountCreated, account.id).detail("method", "invitation"),
    )
    .await?;
    if !verified {
        crate::identity::email::queue_verification(&txn, mailer, account.id, &account.email)
            .await?;
    }
    txn.commit().await?;
    crate::identity::email::request_reset(db, mailer, &account.email).await?;
    Ok(account)
}

/// Why an account could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no such account")]
    NotFound,
    #[error("the account is the last owner of an organization; make someone else an owner first")]
    LastOwner,
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Storage(#[from] DbErr),
}

/// Deletes an account with everything it holds: its sessions end (with
/// back-channel logout), its refresh tokens, API tokens, consents, links,
/// passkeys and memberships go. Never the last owner of an organization.
pub async fn delete_user(
    db: &DatabaseConnection,
    sessions: &Sessions,
    id: Uuid,
) -> Result<User, DeleteError> {
    let account = user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(DeleteError::NotFound)?;
    for owned in membership::Entity::find()
        .filter(membership::Column::UserId.eq(id))
        .filter(membership::Column::Role.eq(crate::orgs::Role::Owner.as_str()))
        .all(db)
        .await?
    {
        let owners = membership::Entity::find()
            .filter(membership::Column::OrganizationId.eq(owned.organization_id))
            .filter(membership::Column::Role.eq(crate::orgs::Role::Owner.as_str()))
            .count(db)
            .await?;
        if owners <= 1 {
            return Err(DeleteError::LastOwner);
        }
    }
    // Sessions first: their cached copies go, and the apps they reached are told.
    sessions.end_all(id).await?;
    let txn = db.begin().await?;
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    personal_access_token::Entity::delete_many()
        .filter(personal_access_token::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    consent::Entity::delete_many()
        .filter(consent::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    user_token::Entity::delete_many()
        .filter(user_token::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    known_device::Entity::delete_many()
        .filter(known_device::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    session_client::Entity::delete_many()
        .filter(session_client::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    // Sessions, passkeys, memberships and links go with the row (cascade).
    user::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Event::new(Kind::AccountDeleted)
            .subject(id)
            .detail("email", account.email.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(account)
}

/// The addresses of the accounts `ids` that still exist (one query).
pub async fn emails_of(
    db: &DatabaseConnection,
    ids: Vec<Uuid>,
) -> Result<std::collections::HashMap<Uuid, String>, DbErr> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect())
}

/// What the audit log is filtered by.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub user: Option<Uuid>,
    pub client: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Audit events, newest first, older than the cursor `before`.
pub async fn events(
    db: &DatabaseConnection,
    filter: &EventFilter,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Page<audit_event::Model>, DbErr> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut condition = Condition::all();
    if let Some(user) = filter.user {
        condition = condition.add(audit_event::Column::SubjectUserId.eq(user));
    }
    if let Some(client) = &filter.client {
        condition = condition.add(audit_event::Column::ClientId.eq(client.as_str()));
    }
    if let Some(kind) = &filter.kind {
        condition = condition.add(audit_event::Column::Kind.eq(kind.as_str()));
    }
    if let Some(since) = filter.since {
        condition = condition.add(audit_event::Column::At.gte(since));
    }
    if let Some(until) = filter.until {
        condition = condition.add(audit_event::Column::At.lt(until));
    }
    if let Some(before) = before {
        condition = condition.add(audit_event::Column::Id.lt(before));
    }
    // Ids are UUIDv7: their order is the order events were written.
    let mut items = audit_event::Entity::find()
        .filter(condition)
        .order_by_desc(audit_event::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let next = (items.len() as u64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|e| e.id)
    });
    Ok(Page {
        items,
        next: next.flatten(),
    })
}

/// A strong validator of an account's state for `ETag`/`If-Match`: any
/// change (including disabling, an address change, a new password) moves
/// `updated_at`.
pub fn etag(user: &User) -> String {
    format!(
        "\"{}-{}\"",
        user.id.simple(),
        user.updated_at.timestamp_nanos_opt().unwrap_or_default()
    )
}
