//! The applications a person has let in: those they consented to, and those
//! holding live refresh tokens for them (first-party apps skip consent). A
//! person can cut one off: its refresh tokens are revoked, its consent
//! forgotten (it must ask again), and it is told through back-channel logout
//! for every session it received tokens from.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use serde::Serialize;
use uuid::Uuid;

use super::scope_list;
use crate::store::entities::{client, consent, refresh_token};

/// One application with access to a person's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppAccess {
    pub client_id: String,
    pub name: String,
    /// What it may do: the scopes consented to and those its live grants hold.
    pub scopes: Vec<String>,
    /// When it last got tokens by refreshing (or was first allowed).
    pub last_used: Option<DateTime<Utc>>,
    /// Live refresh tokens it holds (one per grant family).
    pub refresh_tokens: u64,
}

/// Every application with access to `user_id`'s account, by name.
pub async fn list(db: &DatabaseConnection, user_id: Uuid) -> Result<Vec<AppAccess>, DbErr> {
    let now = Utc::now();
    let consents = consent::Entity::find()
        .filter(consent::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    let live = refresh_token::Entity::find()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::SpentAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .filter(refresh_token::Column::FamilyExpiresAt.gt(now))
        .all(db)
        .await?;
    let mut apps: BTreeMap<String, AppAccess> = BTreeMap::new();
    for c in &consents {
        let app = apps
            .entry(c.client_id.clone())
            .or_insert_with(|| empty(&c.client_id));
        app.scopes.extend(scope_list(&c.scope));
        app.last_used = app.last_used.max(Some(c.created_at));
    }
    for r in &live {
        let app = apps
            .entry(r.client_id.clone())
            .or_insert_with(|| empty(&r.client_id));
        app.scopes.extend(scope_list(&r.scope));
        app.last_used = app.last_used.max(Some(r.created_at));
        app.refresh_tokens += 1;
    }
    let ids: Vec<String> = apps.keys().cloned().collect();
    let clients = client::Entity::find()
        .filter(client::Column::ClientId.is_in(ids))
        .all(db)
        .await?;
    let mut out: Vec<AppAccess> = apps
        .into_values()
        .filter_map(|mut app| {
            // A deleted client has nothing left to cut off.
            let row = clients.iter().find(|c| c.client_id == app.client_id)?;
            app.name = row.name.clone();
            app.scopes.sort();
            app.scopes.dedup();
            Some(app)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.client_id.cmp(&b.client_id)));
    Ok(out)
}

fn empty(client_id: &str) -> AppAccess {
    AppAccess {
        client_id: client_id.to_owned(),
        name: String::new(),
        scopes: Vec::new(),
        last_used: None,
        refresh_tokens: 0,
    }
}

/// What removing an application's access ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub refresh_tokens: u64,
    pub consent: bool,
    /// Back-channel logout tokens queued.
    pub logouts: usize,
}

/// Cuts `client_id` off from `user_id`'s account, in one transaction.
pub async fn remove(
    db: &DatabaseConnection,
    jobs: &crate::jobs::Queue,
    user_id: Uuid,
    client_id: &str,
) -> Result<Removed, DbErr> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let revoked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::ClientId.eq(client_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    let forgotten = consent::Entity::delete_many()
        .filter(consent::Column::UserId.eq(user_id))
        .filter(consent::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?;
    let logouts = crate::oidc::backchannel::client_removed(&txn, user_id, client_id).await?;
    crate::audit::record(
        &txn,
        crate::audit::Event::by_person(crate::audit::Kind::ConsentRemoved, user_id)
            .client(client_id)
            .detail("refresh_tokens", revoked.rows_affected),
    )
    .await?;
    txn.commit().await?;
    if logouts > 0 {
        jobs.wake();
    }
    Ok(Removed {
        refresh_tokens: revoked.rows_affected,
        consent: forgotten.rows_affected > 0,
        logouts,
    })
}
