//! Proving an address reaches its person: single-use links mailed to it
//! (`/email/verify/{token}`), stored only as a digest, each queued in the same
//! transaction as the change that asked for it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, TransactionTrait,
};
use uuid::Uuid;

use super::password::{PasswordHasher, check_policy};
use super::sessions::random_token;
use super::{IdentityError, users};
use crate::mail::{Letter, Mailer, Notice};
use crate::oauth::digest;
use crate::store::entities::{user, user_token};

/// A verification link works this long (issue 21: 24 h).
pub const VERIFY_TTL: chrono::Duration = chrono::Duration::hours(24);

/// A password-reset link works this long: it is a way into the account.
pub const RESET_TTL: chrono::Duration = chrono::Duration::minutes(30);

/// What a mailed link is for; its row says so, so one kind of link can never
/// be used as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    /// Confirms a new address; the account's address changes when it is followed.
    ChangeEmail,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ChangeEmail => "change_email",
        }
    }
}

/// Why a link was not honoured. One answer for unknown, used and expired: the
/// page says the same thing (ask for a new link) in each case.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("This link is not valid any more. Links work once and for a limited time.")]
    Invalid,
    #[error("That address now belongs to another account, so yours was not changed.")]
    Taken,
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl From<sea_orm::DbErr> for LinkError {
    fn from(e: sea_orm::DbErr) -> Self {
        LinkError::Identity(IdentityError::Storage(e))
    }
}

/// Creates a link token for `email` and stores its digest; the token itself
/// exists only in the message.
async fn issue<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    email: &str,
    purpose: Purpose,
    ttl: chrono::Duration,
) -> Result<String, IdentityError> {
    let token = random_token()?;
    let now = Utc::now();
    // Links are short-lived: a new one clears this account's long-dead ones,
    // so the table holds what may still matter (and a week of history).
    user_token::Entity::delete_many()
        .filter(user_token::Column::UserId.eq(user_id))
        .filter(user_token::Column::ExpiresAt.lt(now - chrono::Duration::days(7)))
        .exec(db)
        .await?;
    user_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(digest(&token)),
        email: Set(email.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// Queues a verification message to `email` in `db` (the caller's
/// transaction); the caller wakes the mailer after committing.
pub async fn queue_verification<C: ConnectionTrait>(
    db: &C,
    mailer: &Mailer,
    user_id: Uuid,
    email: &str,
) -> Result<(), IdentityError> {
    let token = issue(db, user_id, email, Purpose::VerifyEmail, VERIFY_TTL).await?;
    let link = mailer.link(&format!("/email/verify/{token}"));
    mailer
        .enqueue(db, email, &Letter::VerifyEmail { link })
        .await
        .map_err(|e| IdentityError::Mail(e.to_string()))
}

/// What asking for a verification message came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resent {
    Queued,
    /// Nothing to do: the address is verified already.
    AlreadyVerified,
}

/// Sends a fresh verification link to the account's current address.
pub async fn resend_verification(
    db: &DatabaseConnection,
    mailer: &Mailer,
    user_id: Uuid,
) -> Result<Resent, IdentityError> {
    let Some(account) = user::Entity::find_by_id(user_id).one(db).await? else {
        return Err(IdentityError::NoSuchUser);
    };
    if account.email_verified_at.is_some() {
        return Ok(Resent::AlreadyVerified);
    }
    let txn = db.begin().await?;
    queue_verification(&txn, mailer, account.id, &account.email).await?;
    txn.commit().await?;
    mailer.wake();
    Ok(Resent::Queued)
}

/// What following a verification link did.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The address is verified from now on.
    Now(String),
    /// The link was used before (a mail scanner may have opened it first) and
    /// the address is verified: the person sees success, not an error.
    Already(String),
    /// A change confirmed: the account's address is now the new one, verified.
    Changed { user_id: Uuid, to: String },
}

/// Follows a link to `/email/verify/{token}`: a verification (single use,
/// unexpired, and only while the account still has the address it was sent
/// to) or the confirmation of a new address.
pub async fn verify(
    db: &DatabaseConnection,
    mailer: &Mailer,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Verified, LinkError> {
    let Some(link) = user_token::Entity::find()
        .filter(user_token::Column::TokenHash.eq(digest(token)))
        .filter(
            user_token::Column::Purpose
                .is_in([Purpose::VerifyEmail.as_str(), Purpose::ChangeEmail.as_str()]),
        )
        .one(db)
        .await?
    else {
        return Err(LinkError::Invalid);
    };
    let Some(account) = user::Entity::find_by_id(link.user_id)
        .one(db)
        .await?
        .filter(|a| !a.disabled)
    else {
        return Err(LinkError::Invalid);
    };
    if link.purpose == Purpose::ChangeEmail.as_str() {
        return change_address(db, mailer, link, account, now).await;
    }
    if account.email != link.email {
        return Err(LinkError::Invalid);
    }
    if link.used_at.is_some() {
        return match account.email_verified_at {
            Some(_) => Ok(Verified::Already(account.email)),
            None => Err(LinkError::Invalid),
        };
    }
    if link.expires_at <= now {
        return Err(LinkError::Invalid);
    }
    let txn = db.begin().await?;
    if !spend(&txn, &link, now).await? {
        return Ok(Verified::Already(account.email));
    }
    crate::audit::record(
        &txn,
        crate::audit::Event::by_person(crate::audit::Kind::EmailVerified, account.id),
    )
    .await?;
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(Some(now)))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(account.id))
        .filter(user::Column::Email.eq(link.email.clone()))
        .filter(user::Column::EmailVerifiedAt.is_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Verified::Now(account.email))
}

/// Single use under races: only the request that flips `used_at` goes on.
async fn spend<C: ConnectionTrait>(
    db: &C,
    link: &user_token::Model,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let used = user_token::Entity::update_many()
        .col_expr(user_token::Column::UsedAt, Expr::value(Some(now)))
        .filter(user_token::Column::Id.eq(link.id))
        .filter(user_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(used.rows_affected == 1)
}

/// The confirmation of a new address: the account takes it (still unique on
/// its canonical form), verified; the old address is told.
async fn change_address(
    db: &DatabaseConnection,
    mailer: &Mailer,
    link: user_token::Model,
    account: users::User,
    now: DateTime<Utc>,
) -> Result<Verified, LinkError> {
    if link.used_at.is_some() && account.email == link.email {
        return Ok(Verified::Already(account.email));
    }
    if link.used_at.is_some() || link.expires_at <= now {
        return Err(LinkError::Invalid);
    }
    let txn = db.begin().await?;
    if !spend(&txn, &link, now).await? {
        return Err(LinkError::Invalid);
    }
    let changed = user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(link.email.clone()))
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(Some(now)))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(account.id))
        .exec(&txn)
        .await;
    match changed {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            return Err(LinkError::Taken);
        }
        Err(e) => return Err(e.into()),
    }
    crate::audit::record(
        &txn,
        crate::audit::Event::by_person(crate::audit::Kind::EmailChanged, account.id)
            .detail("from", account.email.clone())
            .detail("to", link.email.clone()),
    )
    .await?;
    let notice = Notice::EmailChanged {
        new_address: link.email.clone(),
    };
    mailer
        .notice(&txn, &account.email, notice)
        .await
        .map_err(|e| IdentityError::Mail(e.to_string()))?;
    txn.commit().await?;
    mailer.wake();
    Ok(Verified::Changed {
        user_id: account.id,
        to: link.email,
    })
}

/// Asks to change the account's address to `new_email`: a confirmation link
/// goes to the new address; nothing changes until it is followed. Needs the
/// current password, or a sign-in within the last few minutes (`recent`).
pub async fn request_change(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    mailer: &Mailer,
    account: &users::User,
    new_email: &str,
    password: &str,
    recent: bool,
) -> Result<String, IdentityError> {
    let new_email = super::normalize_email(new_email)?;
    if new_email == account.email {
        return Err(IdentityError::SameEmail);
    }
    if !recent {
        if password.is_empty() || account.password_hash.is_none() {
            return Err(IdentityError::NeedsFreshSignIn);
        }
        match hasher
            .verify(password, account.password_hash.as_deref())
            .await?
        {
            super::password::Verified::Valid { .. } => {}
            super::password::Verified::Invalid => return Err(IdentityError::WrongCurrentPassword),
        }
    }
    if users::find_by_email(db, &new_email).await?.is_some() {
        return Err(IdentityError::EmailTaken);
    }
    let txn = db.begin().await?;
    let token = issue(
        &txn,
        account.id,
        &new_email,
        Purpose::ChangeEmail,
        VERIFY_TTL,
    )
    .await?;
    let letter = Letter::ConfirmNewEmail {
        link: mailer.link(&format!("/email/verify/{token}")),
    };
    mailer
        .enqueue(&txn, &new_email, &letter)
        .await
        .map_err(|e| IdentityError::Mail(e.to_string()))?;
    txn.commit().await?;
    mailer.wake();
    Ok(new_email)
}

/// Queues a reset link for the account with `email`, if there is an enabled
/// one; says nothing either way (the caller answers the same page whatever
/// happened). A newer link voids the older ones.
pub async fn request_reset(
    db: &DatabaseConnection,
    mailer: &Mailer,
    email: &str,
) -> Result<(), IdentityError> {
    let Some(account) = users::find_by_email(db, email)
        .await?
        .filter(|a| !a.disabled)
    else {
        return Ok(());
    };
    let now = Utc::now();
    let txn = db.begin().await?;
    user_token::Entity::update_many()
        .col_expr(user_token::Column::UsedAt, Expr::value(Some(now)))
        .filter(user_token::Column::UserId.eq(account.id))
        .filter(user_token::Column::Purpose.eq(Purpose::ResetPassword.as_str()))
        .filter(user_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let token = issue(
        &txn,
        account.id,
        &account.email,
        Purpose::ResetPassword,
        RESET_TTL,
    )
    .await?;
    // Asked from the sign-in page (nobody known acts) or by an administrator
    // (the context names them).
    crate::audit::record(
        &txn,
        crate::audit::Event::new(crate::audit::Kind::PasswordResetSent).subject(account.id),
    )
    .await?;
    let letter = Letter::ResetPassword {
        link: mailer.link(&format!("/password/reset/{token}")),
        has_password: account.password_hash.is_some(),
    };
    mailer
        .enqueue(&txn, &account.email, &letter)
        .await
        .map_err(|e| IdentityError::Mail(e.to_string()))?;
    txn.commit().await?;
    mailer.wake();
    Ok(())
}

/// A link of `purpose` that may still be used, and its account.
async fn usable(
    db: &DatabaseConnection,
    token: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<(user_token::Model, users::User), LinkError> {
    let link = user_token::Entity::find()
        .filter(user_token::Column::TokenHash.eq(digest(token)))
        .filter(user_token::Column::Purpose.eq(purpose.as_str()))
        .one(db)
        .await?
        .filter(|l| l.used_at.is_none() && l.expires_at > now)
        .ok_or(LinkError::Invalid)?;
    let account = user::Entity::find_by_id(link.user_id)
        .one(db)
        .await?
        .filter(|a| !a.disabled && a.email == link.email)
        .ok_or(LinkError::Invalid)?;
    Ok((link, account))
}

/// Whether a reset link may still be used (the form is shown only then); the
/// account's address. Looking does not use it up: mail scanners open links.
pub async fn check_reset(
    db: &DatabaseConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<String, LinkError> {
    usable(db, token, Purpose::ResetPassword, now)
        .await
        .map(|(_, account)| account.email)
}

/// Sets a new password through a reset link: the link is used up (once, under
/// races), the address counts as verified (the link reached it). The caller
/// ends every session and refresh token of the account.
pub async fn reset_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    mailer: &Mailer,
    token: &str,
    new_password: &str,
    now: DateTime<Utc>,
) -> Result<users::User, LinkError> {
    let (link, account) = usable(db, token, Purpose::ResetPassword, now).await?;
    // A refused password leaves the link usable for a better one.
    check_policy(new_password)?;
    let hash = hasher.hash(new_password).await?;
    let txn = db.begin().await?;
    let used = user_token::Entity::update_many()
        .col_expr(user_token::Column::UsedAt, Expr::value(Some(now)))
        .filter(user_token::Column::Id.eq(link.id))
        .filter(user_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if used.rows_affected != 1 {
        return Err(LinkError::Invalid);
    }
    let mut active: user::ActiveModel = account.clone().into();
    active.password_hash = Set(Some(hash));
    active.email_verified_at = Set(Some(account.email_verified_at.unwrap_or(now)));
    active.updated_at = Set(now);
    let account = active.update(&txn).await?;
    crate::audit::record(
        &txn,
        crate::audit::Event::by_person(crate::audit::Kind::PasswordReset, account.id),
    )
    .await?;
    mailer
        .notice(&txn, &account.email, Notice::PasswordReset)
        .await
        .map_err(|e| IdentityError::Mail(e.to_string()))?;
    txn.commit().await?;
    mailer.wake();
    Ok(account)
}
