//! An account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Canonical: trimmed and lower-cased (`identity::normalize_email`).
    #[sea_orm(unique)]
    pub email: String,
    /// Argon2id PHC string; `None` for passkey-only accounts.
    pub password_hash: Option<String>,
    pub disabled: bool,
    /// When a mailed link proved the address reaches this person; `None`: not yet.
    pub email_verified_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// May use the admin console and API (made only from the command line
    /// at first).
    pub is_admin: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
