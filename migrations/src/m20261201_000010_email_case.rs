//! Email addresses compared without case: every stored address becomes its
//! lower-cased form, so the unique index on `user.email` holds for the canonical
//! form. Two accounts whose addresses differ only by case cannot be merged
//! silently: the step refuses, naming them, and an operator decides.
//!
//! Lower-casing happens here, in Rust (`str::to_lowercase`, as the server
//! normalizes), not with SQL `lower()`, which SQLite applies to ASCII only.

use std::collections::BTreeMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, TransactionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum User {
    Table,
    Email,
}

#[derive(DeriveIden, Clone, Copy)]
enum Invitation {
    Table,
    Email,
}

/// The addresses that would clash once lower-cased, as one message.
pub fn clashes(emails: &[String]) -> Option<String> {
    let mut by_canonical: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for email in emails {
        by_canonical
            .entry(email.to_lowercase())
            .or_default()
            .push(email);
    }
    let clashing: Vec<String> = by_canonical
        .values()
        .filter(|group| group.len() > 1)
        .map(|group| group.join(" = "))
        .collect();
    (!clashing.is_empty()).then(|| {
        format!(
            "accounts whose emails differ only by case must be merged or renamed before \
             this version starts (emails are now compared without case): {}",
            clashing.join("; ")
        )
    })
}

async fn lower_case_column<T: Iden + Copy + 'static, C: Iden + Copy + 'static>(
    db: &impl ConnectionTrait,
    table: T,
    column: C,
    refuse_clashes: bool,
) -> Result<(), DbErr> {
    let select = Query::select().column(column).from(table).to_owned();
    let rows = db.query_all(&select).await?;
    let emails: Vec<String> = rows
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    if refuse_clashes && let Some(message) = clashes(&emails) {
        return Err(DbErr::Migration(message));
    }
    for email in emails {
        let lower = email.to_lowercase();
        if lower != email {
            let update = Query::update()
                .table(table)
                .value(column, lower)
                .and_where(Expr::col(column).eq(email))
                .to_owned();
            db.execute(&update).await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let txn = manager.get_connection().begin().await?;
        lower_case_column(&txn, User::Table, User::Email, true).await?;
        lower_case_column(&txn, Invitation::Table, Invitation::Email, false).await?;
        txn.commit().await
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        // The original case is not kept; lower-cased addresses stay valid.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_that_differ_only_by_case_are_named() {
        let emails = [
            "Alice@example.com".to_owned(),
            "alice@example.com".to_owned(),
            "bob@example.com".to_owned(),
        ];
        let message = clashes(&emails).expect("a clash");
        assert!(message.contains("Alice@example.com = alice@example.com"));
        assert!(!message.contains("bob"));
        assert_eq!(clashes(&emails[1..]), None);
    }
}
