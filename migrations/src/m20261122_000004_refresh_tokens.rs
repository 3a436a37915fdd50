//! Refresh tokens: stored only as SHA-256 digests, grouped into families so reuse of
//! a spent token can revoke every descendant.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    pk_uuid, string_len, string_len_uniq, text, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshToken {
    Table,
    Id,
    TokenHash,
    FamilyId,
    ClientId,
    UserId,
    SessionId,
    Scope,
    AuthTime,
    Amr,
    CreatedAt,
    ExpiresAt,
    FamilyExpiresAt,
    SpentAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RefreshToken::Table)
                    .col(pk_uuid(RefreshToken::Id))
                    .col(string_len_uniq(RefreshToken::TokenHash, 64))
                    .col(uuid(RefreshToken::FamilyId))
                    .col(string_len(RefreshToken::ClientId, 64))
                    .col(uuid_null(RefreshToken::UserId))
                    .col(uuid_null(RefreshToken::SessionId))
                    .col(text(RefreshToken::Scope))
                    .col(timestamp_with_time_zone_null(RefreshToken::AuthTime))
                    .col(string_len(RefreshToken::Amr, 64))
                    .col(timestamp_with_time_zone(RefreshToken::CreatedAt))
                    .col(timestamp_with_time_zone(RefreshToken::ExpiresAt))
                    .col(timestamp_with_time_zone(RefreshToken::FamilyExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshToken::SpentAt))
                    .col(timestamp_with_time_zone_null(RefreshToken::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshToken::Table, RefreshToken::UserId)
                            .to(User::Table, User::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("refresh_token_family", RefreshToken::FamilyId),
            ("refresh_token_session", RefreshToken::SessionId),
            ("refresh_token_client", RefreshToken::ClientId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(RefreshToken::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshToken::Table).to_owned())
            .await
    }
}
