//! Signing-key metadata. The private keys themselves live as PEM files in the keys
//! directory; the database says, for every instance at once, which keys exist and
//! when each one starts signing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{pk_uuid, string_len, string_len_uniq, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKey {
    Table,
    Id,
    Kid,
    Alg,
    CreatedAt,
    ActivatesAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKey::Table)
                    .col(pk_uuid(SigningKey::Id))
                    // RFC 7638 thumbprint: 43 base64url characters for SHA-256.
                    .col(string_len_uniq(SigningKey::Kid, 64))
                    .col(string_len(SigningKey::Alg, 16))
                    .col(timestamp_with_time_zone(SigningKey::CreatedAt))
                    .col(timestamp_with_time_zone(SigningKey::ActivatesAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SigningKey::Table).to_owned())
            .await
    }
}
