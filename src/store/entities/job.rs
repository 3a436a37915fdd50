//! A durable outbound job (mail now; back-channel logout later).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    /// JSON for the kind's handler; emptied when the job ends.
    pub payload: String,
    /// `pending`, `done` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub run_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
