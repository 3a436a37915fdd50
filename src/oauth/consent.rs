//! Remembered consent: per user and client, the scope set the user has allowed.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::scope_list;
use crate::store::entities::consent;

/// Whether the user already allowed every scope in `scope` for this client.
pub async fn covers(
    db: &DatabaseConnection,
    user_id: Uuid,
    client_id: &str,
    scope: &str,
) -> Result<bool, sea_orm::DbErr> {
    let Some(row) = consent::Entity::find()
        .filter(consent::Column::UserId.eq(user_id))
        .filter(consent::Column::ClientId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let granted = scope_list(&row.scope);
    Ok(scope_list(scope).iter().all(|s| granted.contains(s)))
}

/// Records consent to `scope`, adding to what was allowed before.
pub async fn remember(
    db: &DatabaseConnection,
    user_id: Uuid,
    client_id: &str,
    scope: &str,
) -> Result<(), sea_orm::DbErr> {
    let existing = consent::Entity::find()
        .filter(consent::Column::UserId.eq(user_id))
        .filter(consent::Column::ClientId.eq(client_id))
        .one(db)
        .await?;
    let mut all = existing.map(|r| scope_list(&r.scope)).unwrap_or_default();
    all.extend(scope_list(scope));
    all.sort();
    all.dedup();
    let row = consent::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        client_id: Set(client_id.to_owned()),
        scope: Set(all.join(" ")),
        created_at: Set(Utc::now()),
    };
    consent::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([consent::Column::UserId, consent::Column::ClientId])
                .update_columns([consent::Column::Scope, consent::Column::CreatedAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    crate::audit::record(
        db,
        crate::audit::Event::by_person(crate::audit::Kind::ConsentGiven, user_id)
            .client(client_id)
            .detail("scope", scope),
    )
    .await?;
    Ok(())
}

/// Forgets every consent given to a client: what people allowed was shown under
/// its name, logo and home page, and answered at its redirect URIs; when those
/// change, the person must be asked again.
pub async fn forget_client(
    db: &DatabaseConnection,
    client_id: &str,
) -> Result<u64, sea_orm::DbErr> {
    Ok(consent::Entity::delete_many()
        .filter(consent::Column::ClientId.eq(client_id))
        .exec(db)
        .await?
        .rows_affected)
}
