//! Dynamic client registration (RFC 7591/7592): the metadata a client registers,
//! its registration access token, and the initial access tokens that permit
//! registering.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer_null, pk_uuid, string_len_uniq, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

// The variants are the column names (`client_uri` is RFC 7591's own name).
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Client {
    Table,
    ClientUri,
    LogoUri,
    Contacts,
    TokenEndpointAuthMethod,
    RegistrationTokenHash,
    SelfRegistered,
    SecretHash,
}

#[derive(DeriveIden)]
enum InitialAccessToken {
    Table,
    Id,
    TokenHash,
    ExpiresAt,
    UsesLeft,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            ColumnDef::new(Client::ClientUri).text().null().to_owned(),
            ColumnDef::new(Client::LogoUri).text().null().to_owned(),
            ColumnDef::new(Client::Contacts)
                .text()
                .not_null()
                .default("[]")
                .to_owned(),
            ColumnDef::new(Client::TokenEndpointAuthMethod)
                .string_len(32)
                .not_null()
                .default("client_secret_basic")
                .to_owned(),
            ColumnDef::new(Client::RegistrationTokenHash)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(Client::SelfRegistered)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Client::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Clients registered before this step: those without a secret are public.
        manager
            .exec_stmt(
                Query::update()
                    .table(Client::Table)
                    .value(Client::TokenEndpointAuthMethod, "none")
                    .and_where(Expr::col(Client::SecretHash).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InitialAccessToken::Table)
                    .col(pk_uuid(InitialAccessToken::Id))
                    .col(string_len_uniq(InitialAccessToken::TokenHash, 64))
                    .col(timestamp_with_time_zone_null(InitialAccessToken::ExpiresAt))
                    // NULL: unlimited.
                    .col(integer_null(InitialAccessToken::UsesLeft))
                    .col(timestamp_with_time_zone(InitialAccessToken::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InitialAccessToken::Table).to_owned())
            .await?;
        for column in [
            Client::ClientUri,
            Client::LogoUri,
            Client::Contacts,
            Client::TokenEndpointAuthMethod,
            Client::RegistrationTokenHash,
            Client::SelfRegistered,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Client::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
