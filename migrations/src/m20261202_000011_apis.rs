//! APIs (resource servers) as data: each has an audience (its RFC 8707 resource
//! URI), the scopes it defines, and which of them each organization role holds.
//! Owners hold every scope of every API, so only members' and admins' are stored.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    pk_uuid, string_len, string_len_uniq, text, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Api {
    Table,
    Id,
    Audience,
    Name,
    /// Space-separated, sorted.
    Scopes,
    MemberScopes,
    AdminScopes,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Api::Table)
                    .col(pk_uuid(Api::Id))
                    .col(string_len_uniq(Api::Audience, 512))
                    .col(string_len(Api::Name, 200))
                    .col(text(Api::Scopes).default(""))
                    .col(text(Api::MemberScopes).default(""))
                    .col(text(Api::AdminScopes).default(""))
                    .col(timestamp_with_time_zone(Api::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Api::Table).to_owned())
            .await
    }
}
