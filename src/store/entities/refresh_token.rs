//! A refresh token, by digest, in its rotation family.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_token")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub token_hash: String,
    /// Every token rotated from the same original grant shares this id.
    pub family_id: Uuid,
    pub client_id: String,
    pub user_id: Option<Uuid>,
    /// The browser session the grant came from (ended by RP-initiated logout).
    pub session_id: Option<Uuid>,
    pub scope: String,
    pub auth_time: Option<DateTimeUtc>,
    pub amr: String,
    pub created_at: DateTimeUtc,
    /// Idle expiry of this token.
    pub expires_at: DateTimeUtc,
    /// Absolute expiry of the whole family.
    pub family_expires_at: DateTimeUtc,
    /// Set when rotated; presenting it again is reuse.
    pub spent_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// The organization the grant was made in; a refresh never changes it.
    pub org_id: Option<Uuid>,
    /// The API (RFC 8707 resource) the grant was made for; `None` is the default
    /// audience.
    pub resource: Option<String>,
    /// Once spent: its successor, sealed (AES-256-GCM) under a key derived from
    /// this token, which is never stored — only its holder can open it
    /// (`oauth::refresh::recover`, within the reuse grace window).
    pub successor_sealed: Option<String>,
    /// The upstream provider of the session the grant came from (`idp`).
    pub idp: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
