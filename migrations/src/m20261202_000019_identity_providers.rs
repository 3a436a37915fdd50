//! Upstream identity providers (issue 23): who Tessera lets people sign in
//! with. The client secret is stored sealed (`tokens::sealing`), never in clear.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, string_len, string_len_uniq, text, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdentityProvider {
    Table,
    /// The slug in URLs and the CLI (`google`).
    Id,
    Name,
    Issuer,
    ClientId,
    ClientSecretSealed,
    Scope,
    TrustEmail,
    /// `client_secret_basic` or `client_secret_post`.
    TokenAuth,
    /// JSON array: audiences accepted on id_tokens sent by native apps.
    AcceptedAudiences,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdentityProvider::Table)
                    .col(
                        ColumnDef::new(IdentityProvider::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(string_len(IdentityProvider::Name, 100))
                    .col(string_len_uniq(IdentityProvider::Issuer, 2000))
                    .col(text(IdentityProvider::ClientId))
                    .col(text(IdentityProvider::ClientSecretSealed))
                    .col(text(IdentityProvider::Scope))
                    .col(boolean(IdentityProvider::TrustEmail))
                    .col(string_len(IdentityProvider::TokenAuth, 32))
                    .col(text(IdentityProvider::AcceptedAudiences))
                    .col(timestamp_with_time_zone(IdentityProvider::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdentityProvider::Table).to_owned())
            .await
    }
}
