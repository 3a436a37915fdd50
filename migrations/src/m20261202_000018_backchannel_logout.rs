//! OpenID Connect Back-Channel Logout 1.0: a client's `backchannel_logout_uri`
//! and `backchannel_logout_session_required`, and which clients received tokens
//! from which browser session (`session_client`), so ending a session can tell
//! each of them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, timestamp_with_time_zone, uuid};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Client {
    Table,
    BackchannelLogoutUri,
    BackchannelLogoutSessionRequired,
}

#[derive(DeriveIden)]
enum SessionClient {
    Table,
    SessionId,
    ClientId,
    UserId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            ColumnDef::new(Client::BackchannelLogoutUri)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Client::BackchannelLogoutSessionRequired)
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
        manager
            .create_table(
                Table::create()
                    .table(SessionClient::Table)
                    .col(uuid(SessionClient::SessionId))
                    .col(string_len(SessionClient::ClientId, 64))
                    .col(uuid(SessionClient::UserId))
                    .col(timestamp_with_time_zone(SessionClient::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(SessionClient::SessionId)
                            .col(SessionClient::ClientId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("session_client_user_client")
                    .table(SessionClient::Table)
                    .col(SessionClient::UserId)
                    .col(SessionClient::ClientId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SessionClient::Table).to_owned())
            .await?;
        for column in [
            Client::BackchannelLogoutUri,
            Client::BackchannelLogoutSessionRequired,
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
