//! OAuth clients and remembered consents.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, pk_uuid, string_len, string_len_null, string_len_uniq, text, timestamp_with_time_zone,
    uuid,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

// The column is `client_id`, as RFC 6749 names it.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Client {
    Table,
    Id,
    ClientId,
    SecretHash,
    Name,
    RedirectUris,
    GrantTypes,
    Scope,
    ApplicationType,
    FirstParty,
    IdTokenAlg,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Consent {
    Table,
    Id,
    UserId,
    ClientId,
    Scope,
    CreatedAt,
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
                    .table(Client::Table)
                    .col(pk_uuid(Client::Id))
                    .col(string_len_uniq(Client::ClientId, 64))
                    // SHA-256 of a 256-bit random secret; NULL for public clients.
                    .col(string_len_null(Client::SecretHash, 64))
                    .col(string_len(Client::Name, 200))
                    // JSON array of exact redirect URIs.
                    .col(text(Client::RedirectUris))
                    // Space-separated, as in RFC 7591 metadata.
                    .col(string_len(Client::GrantTypes, 200))
                    .col(text(Client::Scope))
                    .col(string_len(Client::ApplicationType, 16))
                    .col(boolean(Client::FirstParty).default(false))
                    .col(string_len(Client::IdTokenAlg, 16))
                    .col(timestamp_with_time_zone(Client::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Consent::Table)
                    .col(pk_uuid(Consent::Id))
                    .col(uuid(Consent::UserId))
                    .col(string_len(Consent::ClientId, 64))
                    // The granted scope set, sorted, space-separated.
                    .col(text(Consent::Scope))
                    .col(timestamp_with_time_zone(Consent::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consent::Table, Consent::UserId)
                            .to(User::Table, User::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consent::Table, Consent::ClientId)
                            .to(Client::Table, Client::ClientId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("consent_user_client")
                    .table(Consent::Table)
                    .col(Consent::UserId)
                    .col(Consent::ClientId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Consent::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Client::Table).to_owned())
            .await
    }
}
