//! A passkey (WebAuthn credential) of an account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkey")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// base64url (no padding) of the WebAuthn credential id.
    #[sea_orm(unique)]
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey`, serialized as JSON: public key, counter, flags.
    pub credential: String,
    /// The authenticator may sync it (a multi-device credential).
    pub backup_eligible: bool,
    /// It is synced (backed up) right now.
    pub backed_up: bool,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
