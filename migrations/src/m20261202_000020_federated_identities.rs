//! Accounts linked to upstream identity providers (issue 23): which
//! `(provider, sub)` signs in as which person, and which provider a browser
//! session (and the refresh tokens it backs) came through, for the `idp` claim.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, timestamp_with_time_zone, uuid};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FederatedIdentity {
    Table,
    Id,
    ProviderId,
    /// The provider's `sub`: stable per account at that provider.
    Subject,
    UserId,
    /// The address the provider reported when linked or last used (shown on
    /// the account page; never used to sign in).
    Email,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum IdentityProvider {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Session {
    Table,
    Idp,
}

#[derive(DeriveIden)]
enum RefreshToken {
    Table,
    Idp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FederatedIdentity::Table)
                    .col(uuid(FederatedIdentity::Id).primary_key())
                    .col(string_len(FederatedIdentity::ProviderId, 32))
                    .col(string_len(FederatedIdentity::Subject, 255))
                    .col(uuid(FederatedIdentity::UserId))
                    .col(
                        ColumnDef::new(FederatedIdentity::Email)
                            .string_len(254)
                            .null(),
                    )
                    .col(timestamp_with_time_zone(FederatedIdentity::CreatedAt))
                    .col(timestamp_with_time_zone(FederatedIdentity::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(FederatedIdentity::Table, FederatedIdentity::ProviderId)
                            .to(IdentityProvider::Table, IdentityProvider::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FederatedIdentity::Table, FederatedIdentity::UserId)
                            .to(User::Table, User::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("federated_identity_provider_subject")
                    .table(FederatedIdentity::Table)
                    .col(FederatedIdentity::ProviderId)
                    .col(FederatedIdentity::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("federated_identity_user")
                    .table(FederatedIdentity::Table)
                    .col(FederatedIdentity::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Session::Table)
                    .add_column(ColumnDef::new(Session::Idp).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshToken::Table)
                    .add_column(ColumnDef::new(RefreshToken::Idp).string_len(32).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshToken::Table)
                    .drop_column(RefreshToken::Idp)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Session::Table)
                    .drop_column(Session::Idp)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(FederatedIdentity::Table).to_owned())
            .await
    }
}
