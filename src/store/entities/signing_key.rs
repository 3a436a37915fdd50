//! Metadata of a signing key whose private half is `{keys_dir}/{kid}.pem`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// RFC 7638 JWK thumbprint of the public key.
    #[sea_orm(unique)]
    pub kid: String,
    /// JWS `alg`: `ES256` or `RS256`.
    pub alg: String,
    pub created_at: DateTimeUtc,
    /// When this key starts signing; it is published from `created_at` on.
    pub activates_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
