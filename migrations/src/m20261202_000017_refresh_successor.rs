//! Graceful rotation: a spent refresh token keeps its successor sealed with a
//! key derived from the spent token itself (which is never stored), so the same
//! client presenting it again within the grace window gets the same successor.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshToken {
    Table,
    SuccessorSealed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshToken::Table)
                    .add_column(ColumnDef::new(RefreshToken::SuccessorSealed).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshToken::Table)
                    .drop_column(RefreshToken::SuccessorSealed)
                    .to_owned(),
            )
            .await
    }
}
