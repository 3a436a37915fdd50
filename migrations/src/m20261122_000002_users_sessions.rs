//! Accounts and browser sessions.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, pk_uuid, string_len, string_len_null, string_len_uniq, text_null,
    timestamp_with_time_zone, uuid,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
    Email,
    PasswordHash,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Session {
    Table,
    Id,
    TokenHash,
    UserId,
    CreatedAt,
    LastSeenAt,
    AuthTime,
    Amr,
    Ip,
    UserAgent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(User::Table)
                    .col(pk_uuid(User::Id))
                    // RFC 5321 §4.5.3.1: at most 254 characters in a usable address.
                    .col(string_len_uniq(User::Email, 254))
                    // PHC string; NULL for accounts that sign in with passkeys only.
                    .col(text_null(User::PasswordHash))
                    .col(boolean(User::Disabled).default(false))
                    .col(timestamp_with_time_zone(User::CreatedAt))
                    .col(timestamp_with_time_zone(User::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Session::Table)
                    .col(pk_uuid(Session::Id))
                    // SHA-256 of the cookie value, base64url: the value itself is never stored.
                    .col(string_len_uniq(Session::TokenHash, 64))
                    .col(uuid(Session::UserId))
                    .col(timestamp_with_time_zone(Session::CreatedAt))
                    .col(timestamp_with_time_zone(Session::LastSeenAt))
                    .col(timestamp_with_time_zone(Session::AuthTime))
                    // RFC 8176 method values, space-separated.
                    .col(string_len(Session::Amr, 64))
                    .col(string_len_null(Session::Ip, 64))
                    .col(string_len_null(Session::UserAgent, 256))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Session::Table, Session::UserId)
                            .to(User::Table, User::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("session_user_id")
                    .table(Session::Table)
                    .col(Session::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Session::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(User::Table).to_owned())
            .await
    }
}
