//! Organization service accounts: a confidential client that acts for one
//! organization with one role (`service_org_id`, `service_role`), and the
//! previous secret kept valid for a grace period after a rotation.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Client {
    Table,
    ServiceOrgId,
    ServiceRole,
    PreviousSecretHash,
    PreviousSecretUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            ColumnDef::new(Client::ServiceOrgId)
                .uuid()
                .null()
                .to_owned(),
            ColumnDef::new(Client::ServiceRole)
                .string_len(16)
                .null()
                .to_owned(),
            ColumnDef::new(Client::PreviousSecretHash)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(Client::PreviousSecretUntil)
                .timestamp_with_time_zone()
                .null()
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Client::ServiceOrgId,
            Client::ServiceRole,
            Client::PreviousSecretHash,
            Client::PreviousSecretUntil,
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
