//! Schema migrations, embedded in the `tessera` binary and applied at `serve` and by
//! `tessera migrate`. Each file is one step that runs on SQLite and PostgreSQL alike;
//! a step, once released, is never edited — a change is a new step.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_signing_keys;
mod m20261122_000002_users_sessions;
mod m20261122_000003_clients_consents;
mod m20261122_000004_refresh_tokens;
mod m20261122_000005_post_logout_redirects;
mod m20261122_000006_organizations;
mod m20261122_000007_client_org_optional;
mod m20261122_000008_passkeys;
mod m20261122_000009_client_registration;
pub mod m20261201_000010_email_case;
mod m20261202_000011_apis;
mod m20261202_000012_refresh_resource;
mod m20261202_000013_client_default_api;
mod m20261202_000014_personal_access_tokens;
mod m20261202_000015_service_accounts;
mod m20261202_000016_jobs_and_mail;
mod m20261202_000017_refresh_successor;
mod m20261202_000018_backchannel_logout;
mod m20261202_000019_identity_providers;
mod m20261202_000020_federated_identities;
mod m20261202_000021_audit_and_admins;

/// All migrations, in the order they apply.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_signing_keys::Migration),
            Box::new(m20261122_000002_users_sessions::Migration),
            Box::new(m20261122_000003_clients_consents::Migration),
            Box::new(m20261122_000004_refresh_tokens::Migration),
            Box::new(m20261122_000005_post_logout_redirects::Migration),
            Box::new(m20261122_000006_organizations::Migration),
            Box::new(m20261122_000007_client_org_optional::Migration),
            Box::new(m20261122_000008_passkeys::Migration),
            Box::new(m20261122_000009_client_registration::Migration),
            Box::new(m20261201_000010_email_case::Migration),
            Box::new(m20261202_000011_apis::Migration),
            Box::new(m20261202_000012_refresh_resource::Migration),
            Box::new(m20261202_000013_client_default_api::Migration),
            Box::new(m20261202_000014_personal_access_tokens::Migration),
            Box::new(m20261202_000015_service_accounts::Migration),
            Box::new(m20261202_000016_jobs_and_mail::Migration),
            Box::new(m20261202_000017_refresh_successor::Migration),
            Box::new(m20261202_000018_backchannel_logout::Migration),
            Box::new(m20261202_000019_identity_providers::Migration),
            Box::new(m20261202_000020_federated_identities::Migration),
            Box::new(m20261202_000021_audit_and_admins::Migration),
        ]
    }
}
