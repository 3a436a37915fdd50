//! Everything a request handler may reach, built once at start and cheap to clone.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Settings;
use crate::http::well_known::Discovery;
use crate::identity::passkeys::Passkeys;
use crate::identity::password::PasswordHasher;
use crate::identity::sessions::Sessions;
use crate::identity::throttle::Throttle;
use crate::metrics::Metrics;
use crate::store::cache::Cache;
use crate::tokens::KeyRing;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    pub cache: Cache,
    pub keys: Arc<KeyRing>,
    pub discovery: Arc<Discovery>,
    pub metrics: Arc<Metrics>,
    pub passwords: PasswordHasher,
    pub sessions: Sessions,
    pub throttle: Throttle,
    /// `None` when the issuer cannot be a WebAuthn relying party (an IP address).
    pub passkeys: Option<Passkeys>,
    pub clients: Arc<crate::store::clients::ClientCache>,
    /// Wakes this instance's job worker.
    pub jobs: crate::jobs::Queue,
    /// Composes and queues mail.
    pub mail: crate::mail::Mailer,
    /// What delivers each kind of job (mail, back-channel logout).
    pub deliveries: Arc<crate::Deliveries>,
    /// Upstream identity providers: their servers, flows and links.
    pub federation: crate::federation::Federation,
}

impl AppState {
    /// What the grants and revocation need; Arc clones only.
    pub fn issuer_config(&self) -> crate::oauth::tokens::IssuerConfig {
        crate::oauth::tokens::IssuerConfig {
            keys: self.keys.clone(),
            cache: self.cache.clone(),
            db: self.db.clone(),
            settings: self.settings.clone(),
        }
    }
}
