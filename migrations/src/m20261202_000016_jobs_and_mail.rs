//! Mail (issue 21): the durable job table every outbound delivery goes through,
//! single-use links mailed to a person (`user_token`, digests only), and when an
//! account's address was verified (`user.email_verified_at`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, pk_uuid, string_len, string_len_uniq, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Job {
    Table,
    Id,
    /// What delivers it: `mail` now, back-channel logout later.
    Kind,
    /// JSON the kind's handler reads; emptied once the job ends (it may hold a link).
    Payload,
    /// `pending`, `done` or `failed`.
    State,
    Attempts,
    /// Due time; a claimed job's is pushed one lease ahead, so a worker that dies
    /// mid-delivery leaves it due again rather than lost.
    RunAt,
    CreatedAt,
    FinishedAt,
    LastError,
}

#[derive(DeriveIden)]
enum UserToken {
    Table,
    Id,
    UserId,
    /// `verify_email`, `reset_password` or `change_email`.
    Purpose,
    TokenHash,
    /// The address the link was sent to (for a change: the new one).
    Email,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum User {
    Table,
    EmailVerifiedAt,
}

/// Browsers an account has signed in from (by the digest of a long-lived
/// cookie): a sign-in from one not seen before sends a notice.
#[derive(DeriveIden)]
enum KnownDevice {
    Table,
    Id,
    UserId,
    DeviceHash,
    CreatedAt,
    LastSeenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Job::Table)
                    .col(pk_uuid(Job::Id))
                    .col(string_len(Job::Kind, 32))
                    .col(text(Job::Payload))
                    .col(string_len(Job::State, 16))
                    .col(integer(Job::Attempts))
                    .col(timestamp_with_time_zone(Job::RunAt))
                    .col(timestamp_with_time_zone(Job::CreatedAt))
                    .col(timestamp_with_time_zone_null(Job::FinishedAt))
                    .col(text_null(Job::LastError))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("job_due")
                    .table(Job::Table)
                    .col(Job::State)
                    .col(Job::RunAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserToken::Table)
                    .col(pk_uuid(UserToken::Id))
                    .col(uuid(UserToken::UserId))
                    .col(string_len(UserToken::Purpose, 16))
                    .col(string_len_uniq(UserToken::TokenHash, 64))
                    .col(string_len(UserToken::Email, 254))
                    .col(timestamp_with_time_zone(UserToken::CreatedAt))
                    .col(timestamp_with_time_zone(UserToken::ExpiresAt))
                    .col(timestamp_with_time_zone_null(UserToken::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("user_token_user")
                    .table(UserToken::Table)
                    .col(UserToken::UserId)
                    .col(UserToken::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(KnownDevice::Table)
                    .col(pk_uuid(KnownDevice::Id))
                    .col(uuid(KnownDevice::UserId))
                    .col(string_len(KnownDevice::DeviceHash, 64))
                    .col(timestamp_with_time_zone(KnownDevice::CreatedAt))
                    .col(timestamp_with_time_zone(KnownDevice::LastSeenAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("known_device_user_device")
                    .table(KnownDevice::Table)
                    .col(KnownDevice::UserId)
                    .col(KnownDevice::DeviceHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(User::Table)
                    .add_column(
                        ColumnDef::new(User::EmailVerifiedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(User::Table)
                    .drop_column(User::EmailVerifiedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(KnownDevice::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserToken::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Job::Table).to_owned())
            .await
    }
}
