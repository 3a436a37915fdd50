//! sea-orm entities, one module per table; the schema itself is owned by `migrations/`.

pub mod api;
pub mod audit_event;
pub mod client;
pub mod consent;
pub mod federated_identity;
pub mod identity_provider;
pub mod initial_access_token;
pub mod invitation;
pub mod job;
pub mod known_device;
pub mod membership;
pub mod organization;
pub mod passkey;
pub mod personal_access_token;
pub mod refresh_token;
pub mod session;
pub mod session_client;
pub mod signing_key;
pub mod user;
pub mod user_token;
