//! An API (resource server) tokens may be issued for, with its scopes and which
//! of them each organization role holds (owners hold all).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The RFC 8707 resource URI; the `aud` of its tokens.
    #[sea_orm(unique)]
    pub audience: String,
    pub name: String,
    /// Space-separated, sorted.
    pub scopes: String,
    pub member_scopes: String,
    pub admin_scopes: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
