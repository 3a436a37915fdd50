//! An upstream OpenID provider people may sign in with.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identity_provider")]
pub struct Model {
    /// The slug in URLs and the CLI (`google`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    #[sea_orm(unique)]
    pub issuer: String,
    pub client_id: String,
    /// Sealed under `secrets.key` (`tokens::sealing`).
    pub client_secret_sealed: String,
    pub scope: String,
    pub trust_email: bool,
    pub token_auth: String,
    /// JSON array of audiences accepted on id_tokens from native apps.
    pub accepted_audiences: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
