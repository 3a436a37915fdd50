//! Personal access tokens: long-lived credentials a person creates for scripts,
//! stored only as a digest, optionally pinned to one organization; and the API a
//! confidential client introspects tokens for (`client.introspect_for`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    pk_uuid, string_len, string_len_uniq, text, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PersonalAccessToken {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    OrgId,
    /// Space-separated, sorted.
    Scopes,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Client {
    Table,
    IntrospectFor,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PersonalAccessToken::Table)
                    .col(pk_uuid(PersonalAccessToken::Id))
                    .col(uuid(PersonalAccessToken::UserId))
                    .col(string_len(PersonalAccessToken::Name, 100))
                    .col(string_len_uniq(PersonalAccessToken::TokenHash, 64))
                    .col(uuid_null(PersonalAccessToken::OrgId))
                    .col(text(PersonalAccessToken::Scopes))
                    .col(timestamp_with_time_zone(PersonalAccessToken::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        PersonalAccessToken::LastUsedAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        PersonalAccessToken::ExpiresAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        PersonalAccessToken::RevokedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("personal_access_token_user")
                    .table(PersonalAccessToken::Table)
                    .col(PersonalAccessToken::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Client::Table)
                    .add_column(ColumnDef::new(Client::IntrospectFor).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Client::Table)
                    .drop_column(Client::IntrospectFor)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(PersonalAccessToken::Table).to_owned())
            .await
    }
}
