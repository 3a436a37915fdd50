//! Passkeys (WebAuthn credentials): the whole serialized credential, its id
//! indexed for sign-in, and what the account page shows about it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, pk_uuid, string_len, string_len_uniq, text, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Passkey {
    Table,
    Id,
    UserId,
    CredentialId,
    Name,
    Credential,
    BackupEligible,
    BackedUp,
    CreatedAt,
    LastUsedAt,
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
                    .table(Passkey::Table)
                    .col(pk_uuid(Passkey::Id))
                    .col(uuid(Passkey::UserId))
                    // base64url of the credential id (at most 1023 bytes, WebAuthn §5.8.3).
                    .col(string_len_uniq(Passkey::CredentialId, 1400))
                    .col(string_len(Passkey::Name, 64))
                    .col(text(Passkey::Credential))
                    .col(boolean(Passkey::BackupEligible))
                    .col(boolean(Passkey::BackedUp))
                    .col(timestamp_with_time_zone(Passkey::CreatedAt))
                    .col(timestamp_with_time_zone_null(Passkey::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Passkey::Table, Passkey::UserId)
                            .to(User::Table, User::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("passkey_user")
                    .table(Passkey::Table)
                    .col(Passkey::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Passkey::Table).to_owned())
            .await
    }
}
