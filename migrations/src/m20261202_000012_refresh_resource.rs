//! A refresh token remembers the API (RFC 8707 resource) its grant was made for,
//! so the access tokens it mints carry that audience and that API's scope rules.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshToken {
    Table,
    Resource,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshToken::Table)
                    .add_column(ColumnDef::new(RefreshToken::Resource).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshToken::Table)
                    .drop_column(RefreshToken::Resource)
                    .to_owned(),
            )
            .await
    }
}
