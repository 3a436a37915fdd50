//! Browsers an account signs in from. Each browser carries a long-lived random
//! device cookie (stored here only as a digest, per account); a sign-in from a
//! browser the account has not used before sends a notice to its address — but
//! not the account's very first one (sign-up, or the first sign-in after this
//! feature arrived), which would tell the person nothing.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::IdentityError;
use super::sessions::random_token;
use super::users::User;
use crate::mail::{Mailer, Notice};
use crate::oauth::digest;
use crate::store::entities::known_device;

/// Where a sign-in came from, as the notice describes it.
pub struct SignInFrom {
    pub device: String,
    pub ip: String,
}

/// Records a sign-in of `user` from the browser that presented `cookie` (its
/// device cookie, if any), queueing a notice when the browser is new to an
/// account that has signed in before and `notify` is set. The device value the
/// browser should keep (the presented one, or a new one).
pub async fn signed_in(
    db: &DatabaseConnection,
    mailer: &Mailer,
    user: &User,
    cookie: Option<&str>,
    from: SignInFrom,
    notify: bool,
) -> Result<String, IdentityError> {
    let token = match cookie.filter(|c| c.len() == 43) {
        Some(c) => c.to_owned(),
        None => random_token()?,
    };
    let hash = digest(&token);
    let now = Utc::now();
    let seen = known_device::Entity::update_many()
        .col_expr(known_device::Column::LastSeenAt, Expr::value(now))
        .filter(known_device::Column::UserId.eq(user.id))
        .filter(known_device::Column::DeviceHash.eq(hash.clone()))
        .exec(db)
        .await?;
    if seen.rows_affected > 0 {
        return Ok(token);
    }
    // Written first, then read: on SQLite a transaction that reads before it
    // writes cannot take the write lock while the job worker holds it.
    let txn = db.begin().await?;
    let inserted = known_device::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        device_hash: Set(hash),
        created_at: Set(now),
        last_seen_at: Set(now),
    }
    .insert(&txn)
    .await;
    match inserted {
        Ok(_) => {}
        // The same browser signing in twice at once: the other request recorded it.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Ok(token);
        }
        Err(e) => return Err(e.into()),
    }
    let known_before = known_device::Entity::find()
        .filter(known_device::Column::UserId.eq(user.id))
        .count(&txn)
        .await?
        > 1;
    let tell = notify && known_before;
    if tell {
        let notice = Notice::NewSignIn {
            device: from.device,
            ip: from.ip,
            when: now.format("%Y-%m-%d %H:%M UTC").to_string(),
        };
        mailer
            .notice(&txn, &user.email, notice)
            .await
            .map_err(|e| IdentityError::Mail(e.to_string()))?;
    }
    txn.commit().await?;
    if tell {
        mailer.wake();
    }
    Ok(token)
}
