//! Account lifecycle and password sign-in.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::password::{PasswordHasher, Verified, check_policy};
use super::{IdentityError, normalize_email};
use crate::audit::{self, Event, Kind};
use crate::mail::{Mailer, Notice};
use crate::store::entities::user;

pub use user::Model as User;

/// How a new account's address starts out.
pub enum NewAddress<'a> {
    /// Vouched for by whoever made the account (an operator at the CLI).
    Verified,
    /// Unverified: a verification link is queued with the account.
    SendVerification(&'a Mailer),
}

/// Creates an account with a password.
pub async fn create(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
    address: NewAddress<'_>,
) -> Result<User, IdentityError> {
    let email = normalize_email(email)?;
    check_policy(password)?;
    if find_by_email(db, &email).await?.is_some() {
        return Err(IdentityError::EmailTaken);
    }
    let hash = hasher.hash(password).await?;
    let now = Utc::now();
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        password_hash: Set(Some(hash)),
        disabled: Set(false),
        email_verified_at: Set(matches!(address, NewAddress::Verified).then_some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        is_admin: Set(false),
    };
    let txn = db.begin().await?;
    // Two sign-ups racing past the check above meet the unique index here.
    let account = model.insert(&txn).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => IdentityError::EmailTaken,
        _ => IdentityError::Storage(e),
    })?;
    audit::record(
        &txn,
        Event::by_person(Kind::AccountCreated, account.id).detail("method", "password"),
    )
    .await?;
    if let NewAddress::SendVerification(mailer) = address {
        super::email::queue_verification(&txn, mailer, account.id, &account.email).await?;
        txn.commit().await?;
        mailer.wake();
    } else {
        txn.commit().await?;
    }
    Ok(account)
}

/// Looks an account up by an email as typed (it is normalized first).
pub async fn find_by_email(
    db: &DatabaseConnection,
    email: &str,
) -> Result<Option<User>, IdentityError> {
    let Ok(email) = normalize_email(email) else {
        return Ok(None);
    };
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?)
}

pub async fn find(db: &DatabaseConnection, id: Uuid) -> Result<Option<User>, IdentityError> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

/// What a bearer of an access token may read about its (enabled) account: the
/// userinfo claims that come from the account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimable {
    pub email: String,
    pub email_verified: bool,
    pub updated_at: chrono::DateTime<Utc>,
}

/// The account `id` as userinfo releases it; `None` when it is gone or disabled.
///
/// One plain statement rather than the entity query: userinfo runs this on every
/// call (so a disabled account's tokens stop at once), and building the
/// entity's full SELECT and decoding all of its columns took about as many
/// instructions as the rest of the request (callgrind, docs/PERFORMANCE.md).
pub async fn find_claimable(
    db: &DatabaseConnection,
    id: Uuid,
) -> Result<Option<Claimable>, IdentityError> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            r#"SELECT email, email_verified_at, updated_at FROM "user" WHERE id = $1 AND NOT disabled"#
        }
        _ => {
            r#"SELECT email, email_verified_at, updated_at FROM "user" WHERE id = ? AND NOT disabled"#
        }
    };
    let Some(row) = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Claimable {
        email: row.try_get("", "email")?,
        email_verified: row
            .try_get::<Option<chrono::DateTime<Utc>>>("", "email_verified_at")?
            .is_some(),
        updated_at: row.try_get("", "updated_at")?,
    }))
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<User>, IdentityError> {
    Ok(user::Entity::find()
        .order_by_asc(user::Column::Email)
        .all(db)
        .await?)
}

/// Checks an email and password. Unknown accounts cost a dummy verification, so the
/// answer takes the same time and reads the same as a wrong password.
pub async fn authenticate(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> Result<User, IdentityError> {
    let account = find_by_email(db, email).await?;
    let stored = account.as_ref().and_then(|u| u.password_hash.as_deref());
    // Over-long input is refused after the same work as any other failure.
    let candidate = if password.chars().count() > super::password::MAX_LENGTH {
        ""
    } else {
        password
    };
    let verified = hasher.verify(candidate, stored).await?;
    // Why it failed, for the audit log only: the person hears the same answer
    // for an unknown account and a wrong password.
    let failed = |reason: &str, subject: Option<Uuid>| {
        let mut event = Event::new(Kind::SignInFailed)
            .detail("method", "password")
            .detail("reason", reason);
        if let Some(id) = subject {
            event = event.subject(id);
        }
        event
    };
    match (&verified, &account) {
        (Verified::Valid { .. }, Some(user)) if user.disabled => {
            audit::record_alone(db, failed("disabled", Some(user.id))).await;
        }
        (Verified::Valid { .. }, Some(_)) => {}
        (_, Some(user)) => audit::record_alone(db, failed("wrong_password", Some(user.id))).await,
        (_, None) => audit::record_alone(db, failed("unknown_account", None)).await,
    }
    match (verified, account) {
        (Verified::Valid { .. }, Some(user)) if user.disabled => Err(IdentityError::Disabled),
        (Verified::Valid { rehashed }, Some(user)) => {
            if let Some(new_hash) = rehashed {
                // Same password, stronger parameters: nothing to tell anyone.
                let mut active = user.into_active_model();
                active.password_hash = Set(Some(new_hash));
                return Ok(active.update(db).await?);
            }
            Ok(user)
        }
        _ => Err(IdentityError::BadCredentials),
    }
}

/// Replaces the password after checking the current one.
pub async fn change_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    mailer: &Mailer,
    user: User,
    current: &str,
    new: &str,
) -> Result<User, IdentityError> {
    match hasher
        .verify(current, user.password_hash.as_deref())
        .await?
    {
        Verified::Valid { .. } => {}
        Verified::Invalid => return Err(IdentityError::WrongCurrentPassword),
    }
    check_policy(new)?;
    let hash = hasher.hash(new).await?;
    store_hash(db, mailer, user, hash, Notice::PasswordChanged, "changed").await
}

/// Gives a passkey-only account its first password. The caller has checked that
/// the session's sign-in is recent: no current password vouches for the person.
pub async fn set_first_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    mailer: &Mailer,
    user: User,
    new: &str,
) -> Result<User, IdentityError> {
    if user.password_hash.is_some() {
        return Err(IdentityError::WrongCurrentPassword);
    }
    check_policy(new)?;
    let hash = hasher.hash(new).await?;
    store_hash(db, mailer, user, hash, Notice::PasswordAdded, "added").await
}

/// Stores the new hash and queues the notice about it in one transaction.
async fn store_hash(
    db: &DatabaseConnection,
    mailer: &Mailer,
    user: User,
    hash: String,
    notice: Notice,
    how: &str,
) -> Result<User, IdentityError> {
    let txn = db.begin().await?;
    let mut active = user.into_active_model();
    active.password_hash = Set(Some(hash));
    active.updated_at = Set(Utc::now());
    let user = active.update(&txn).await?;
    audit::record(
        &txn,
        Event::by_person(Kind::PasswordChanged, user.id).detail("how", how),
    )
    .await?;
    mailer
        .notice(&txn, &user.email, notice)
        .await
        .map_err(|e| IdentityError::Mail(e.to_string()))?;
    txn.commit().await?;
    mailer.wake();
    Ok(user)
}

/// Disables or re-enables an account by email.
pub async fn set_disabled(
    db: &DatabaseConnection,
    email: &str,
    disabled: bool,
) -> Result<User, IdentityError> {
    let user = find_by_email(db, email)
        .await?
        .ok_or(IdentityError::NoSuchUser)?;
    let mut active = user.into_active_model();
    active.disabled = Set(disabled);
    active.updated_at = Set(Utc::now());
    let user = active.update(db).await?;
    // Disabling is recorded with what it ended (`account::disable`).
    if !disabled {
        audit::record(db, Event::new(Kind::AccountEnabled).subject(user.id)).await?;
    }
    Ok(user)
}

/// Makes an account an administrator, or no longer one.
pub async fn set_admin(
    db: &DatabaseConnection,
    email: &str,
    admin: bool,
) -> Result<User, IdentityError> {
    let user = find_by_email(db, email)
        .await?
        .ok_or(IdentityError::NoSuchUser)?;
    let txn = db.begin().await?;
    let mut active = user.into_active_model();
    active.is_admin = Set(admin);
    active.updated_at = Set(Utc::now());
    let user = active.update(&txn).await?;
    let kind = if admin {
        Kind::AdminGranted
    } else {
        Kind::AdminRevoked
    };
    audit::record(&txn, Event::new(kind).subject(user.id)).await?;
    txn.commit().await?;
    Ok(user)
}
