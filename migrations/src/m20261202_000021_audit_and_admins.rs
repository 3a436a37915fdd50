//! The audit log (issue 24): an append-only table of security events, and
//! which accounts are administrators.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, text, timestamp_with_time_zone, uuid};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    Id,
    At,
    /// `sign_in.failed`, `password.changed`, … (`audit::Kind`).
    Kind,
    /// `person`, `admin`, `service` or `system`.
    ActorType,
    /// The acting account's id or client's id; none for the system.
    ActorId,
    /// The account the event is about.
    SubjectUserId,
    ClientId,
    OrgId,
    Ip,
    UserAgent,
    /// JSON object: what else is known (a reason, a name, a count).
    Details,
}

#[derive(DeriveIden)]
enum User {
    Table,
    IsAdmin,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvent::Table)
                    .col(uuid(AuditEvent::Id).primary_key())
                    .col(timestamp_with_time_zone(AuditEvent::At))
                    .col(string_len(AuditEvent::Kind, 64))
                    .col(string_len(AuditEvent::ActorType, 16))
                    .col(ColumnDef::new(AuditEvent::ActorId).string_len(64).null())
                    .col(ColumnDef::new(AuditEvent::SubjectUserId).uuid().null())
                    .col(ColumnDef::new(AuditEvent::ClientId).string_len(64).null())
                    .col(ColumnDef::new(AuditEvent::OrgId).uuid().null())
                    .col(ColumnDef::new(AuditEvent::Ip).string_len(64).null())
                    .col(ColumnDef::new(AuditEvent::UserAgent).string_len(256).null())
                    .col(text(AuditEvent::Details))
                    .to_owned(),
            )
            .await?;
        // A person's recent activity, the log by time, the log by kind.
        for (name, cols) in [
            (
                "audit_event_subject_at",
                vec![AuditEvent::SubjectUserId, AuditEvent::At],
            ),
            ("audit_event_at", vec![AuditEvent::At]),
            (
                "audit_event_kind_at",
                vec![AuditEvent::Kind, AuditEvent::At],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(AuditEvent::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(User::Table)
                    .add_column(
                        ColumnDef::new(User::IsAdmin)
                            .boolean()
                            .not_null()
                            .default(false),
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
                    .drop_column(User::IsAdmin)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(AuditEvent::Table).to_owned())
            .await
    }
}
