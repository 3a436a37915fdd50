//! Which account a provider's `(provider, sub)` signs in as, and the rules for
//! making that link: an account is linked only by someone who holds it (signed
//! in, or signing in once to confirm) — never because an address matches.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::id_token::UpstreamIdentity;
use crate::identity::{IdentityError, normalize_email, users::User};
use crate::store::entities::{federated_identity as link, passkey, user};

pub use link::Model as Link;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("This {0} account is already connected to another account here.")]
    LinkedElsewhere(String),
    #[error("This is your only way to sign in. Add a password or a passkey first.")]
    LastWayIn,
    #[error("No such connected account.")]
    NotFound,
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
}

/// The link of `(provider, subject)`, if any.
pub async fn find(
    db: &impl ConnectionTrait,
    provider: &str,
    subject: &str,
) -> Result<Option<Link>, LinkError> {
    Ok(link::Entity::find()
        .filter(link::Column::ProviderId.eq(provider))
        .filter(link::Column::Subject.eq(subject))
        .one(db)
        .await?)
}

/// An account's links, oldest first.
pub async fn of_user(db: &DatabaseConnection, user: Uuid) -> Result<Vec<Link>, LinkError> {
    Ok(link::Entity::find()
        .filter(link::Column::UserId.eq(user))
        .order_by_asc(link::Column::CreatedAt)
        .all(db)
        .await?)
}

fn email_of(identity: &UpstreamIdentity) -> Option<String> {
    identity
        .email
        .as_deref()
        .and_then(|e| normalize_email(e).ok())
}

/// Links `(provider, identity.sub)` to `user`. Already linked to `user` is
/// fine (a second tab, a double click); linked to someone else is refused.
pub async fn connect(
    db: &impl ConnectionTrait,
    provider: &str,
    provider_name: &str,
    user: Uuid,
    identity: &UpstreamIdentity,
) -> Result<Link, LinkError> {
    let now = Utc::now();
    let row = link::ActiveModel {
        id: Set(Uuid::now_v7()),
        provider_id: Set(provider.to_owned()),
        subject: Set(identity.subject.clone()),
        user_id: Set(user),
        email: Set(email_of(identity)),
        created_at: Set(now),
        last_used_at: Set(now),
    };
    match row.insert(db).await {
        Ok(link) => {
            crate::audit::record(
                db,
                crate::audit::Event::by_person(crate::audit::Kind::ProviderConnected, user)
                    .detail("provider", provider),
            )
            .await?;
            Ok(link)
        }
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            match find(db, provider, &identity.subject).await? {
                Some(existing) if existing.user_id == user => Ok(existing),
                _ => Err(LinkError::LinkedElsewhere(provider_name.to_owned())),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Records a sign-in through `link` (and the address the provider reports now).
pub async fn used(
    db: &DatabaseConnection,
    link: &Link,
    identity: &UpstreamIdentity,
) -> Result<(), LinkError> {
    link::Entity::update_many()
        .col_expr(link::Column::LastUsedAt, Expr::value(Utc::now()))
        .col_expr(link::Column::Email, Expr::value(email_of(identity)))
        .filter(link::Column::Id.eq(link.id))
        .exec(db)
        .await?;
    Ok(())
}

/// A new account for someone the provider vouches for, linked in the same
/// transaction. The address counts as verified only when the provider says it
/// is and the operator trusts it to (`--trust-email`); otherwise the usual
/// verification message is queued.
pub async fn create_account(
    db: &DatabaseConnection,
    mailer: &crate::mail::Mailer,
    provider: &str,
    provider_name: &str,
    identity: &UpstreamIdentity,
    email: &str,
    verified: bool,
) -> Result<(User, Link), LinkError> {
    let email = normalize_email(email)?;
    let now = Utc::now();
    let txn = db.begin().await?;
    let account = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        password_hash: Set(None),
        disabled: Set(false),
        email_verified_at: Set(verified.then_some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        is_admin: Set(false),
    }
    .insert(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            LinkError::Identity(IdentityError::EmailTaken)
        }
        _ => LinkError::Storage(e),
    })?;
    crate::audit::record(
        &txn,
        crate::audit::Event::by_person(crate::audit::Kind::AccountCreated, account.id)
            .detail("method", "federation")
            .detail("provider", provider),
    )
    .await?;
    let link = connect(&txn, provider, provider_name, account.id, identity).await?;
    if !verified {
        crate::identity::email::queue_verification(&txn, mailer, account.id, &account.email)
            .await?;
    }
    txn.commit().await?;
    if !verified {
        mailer.wake();
    }
    Ok((account, link))
}

/// Removes `user`'s link `id`, unless it is their last way in (no password,
/// no passkey, no other link).
pub async fn disconnect(db: &DatabaseConnection, user: Uuid, id: Uuid) -> Result<Link, LinkError> {
    let txn = db.begin().await?;
    // Serializes removals of one account's ways in (see passkeys::remove).
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::col(user::Column::UpdatedAt))
        .filter(user::Column::Id.eq(user))
        .exec(&txn)
        .await?;
    let row = link::Entity::find_by_id(id)
        .filter(link::Column::UserId.eq(user))
        .one(&txn)
        .await?
        .ok_or(LinkError::NotFound)?;
    if ways_in(&txn, user).await? <= 1 {
        return Err(LinkError::LastWayIn);
    }
    link::Entity::delete_by_id(row.id).exec(&txn).await?;
    crate::audit::record(
        &txn,
        crate::audit::Event::by_person(crate::audit::Kind::ProviderDisconnected, user)
            .detail("provider", row.provider_id.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

/// How many ways into `user` there are: a password, each passkey, each link.
pub async fn ways_in(db: &impl ConnectionTrait, user: Uuid) -> Result<u64, LinkError> {
    let account = user::Entity::find_by_id(user)
        .one(db)
        .await?
        .ok_or(LinkError::NotFound)?;
    let passkeys = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user))
        .count(db)
        .await?;
    let links = link::Entity::find()
        .filter(link::Column::UserId.eq(user))
        .count(db)
        .await?;
    Ok(u64::from(account.password_hash.is_some()) + passkeys + links)
}

/// A link as the account page shows it.
#[derive(Debug, Clone)]
pub struct Connected {
    pub id: Uuid,
    pub provider_id: String,
    pub email: Option<String>,
    pub since: DateTime<Utc>,
    pub last_used: DateTime<Utc>,
}

impl From<Link> for Connected {
    fn from(l: Link) -> Self {
        Self {
            id: l.id,
            provider_id: l.provider_id,
            email: l.email,
            since: l.created_at,
            last_used: l.last_used_at,
        }
    }
}
