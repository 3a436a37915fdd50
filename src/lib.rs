//! Tessera, an OAuth 2.1 / OpenID Connect authorization server.
//!
//! [`start`] turns validated [`Settings`] into a ready [`AppState`] (database migrated,
//! cache reachable, keys loaded); [`build_app`] is the one actix `App` used by the
//! binary and by the tests alike.

pub mod admin;
pub mod audit;
pub mod config;
pub mod error;
pub mod federation;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod orgs;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};

use config::ConfigError;
pub use config::Settings;
pub use state::AppState;
use store::cache::Cache;
use tokens::KeyRing;

/// Why start-up failed, always tied to the setting an operator should look at.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("DATABASE_URL: {0}")]
    Database(store::StoreError),
    #[error("REDIS_URL: cannot use {url}: {reason}")]
    Cache { url: String, reason: String },
    #[error("TESSERA_KEYS_DIR: {0}")]
    Keys(tokens::keys::KeyError),
    #[error("TESSERA_ARGON2_MEMORY_KIB: {0}")]
    Argon2(String),
    #[error("TESSERA_WEBAUTHN_RP_ID: {0}")]
    Webauthn(String),
    #[error("{0}")]
    Mail(String),
    /// The secrets key (`keys/secrets.key`) or the providers' HTTP client.
    #[error("TESSERA_KEYS_DIR: {0}")]
    Secrets(String),
    #[error("TESSERA_BIND: cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    /// An operator command was refused (e.g. `user create` with a taken email).
    #[error("{0}")]
    Command(String),
}

/// Connects the database (migrating it), the cache and the key ring.
pub async fn start(settings: Settings) -> Result<AppState, StartupError> {
    let db = store::connect(&settings.database_url)
        .await
        .map_err(StartupError::Database)?;
    store::migrate(&db).await.map_err(StartupError::Database)?;
    let cache = connect_cache(&settings).await?;
    let keys = KeyRing::open(
        db.clone(),
        settings.keys_dir.clone(),
        settings.longest_signed_token_ttl(),
    )
    .await
    .map_err(StartupError::Keys)?;
    let discovery = http::well_known::Discovery::new(&settings);
    let passwords = identity::password::PasswordHasher::new(settings.argon2)
        .map_err(|e| StartupError::Argon2(e.to_string()))?;
    let jobs = jobs::Queue::default();
    let sessions = identity::sessions::Sessions::new(
        db.clone(),
        cache.clone(),
        settings.session_idle_timeout,
        settings.session_lifetime,
        jobs.clone(),
    );
    let throttle = identity::throttle::Throttle::new(
        cache.clone(),
        identity::throttle::Limits {
            failures_per_account: settings.login_max_failures,
            failures_per_ip: settings.login_max_failures_per_ip,
            window: settings.login_lockout,
            signups_per_ip: settings.signup_max_per_ip,
            registrations_per_ip: settings.registration_max_per_ip,
        },
    );
    let mail = mail::Mailer::new(&settings, jobs.clone()).map_err(StartupError::Mail)?;
    let passkeys = match &settings.webauthn {
        Some(rp) => Some(
            identity::passkeys::Passkeys::new(
                rp,
                &settings.issuer,
                db.clone(),
                cache.clone(),
                mail.clone(),
            )
            .map_err(StartupError::Webauthn)?,
        ),
        None => {
            tracing::warn!(
                issuer = %settings.issuer,
                "passkeys are off: WebAuthn needs an issuer on a domain name (e.g. localhost), not an IP address"
            );
            None
        }
    };
    let keys = Arc::new(keys);
    let deliveries = Arc::new(Deliveries {
        mail: mail::Transport::from_settings(&settings.mail).map_err(StartupError::Mail)?,
        logout: oidc::backchannel::Sender::new(keys.clone(), settings.issuer_str())
            .map_err(StartupError::Mail)?,
    });
    let keys_dir = settings.keys_dir.clone();
    let secrets_key = tokio::task::spawn_blocking(move || tokens::sealing::secrets_key(&keys_dir))
        .await
        .map_err(|e| StartupError::Secrets(e.to_string()))?
        .map_err(StartupError::Secrets)?;
    let federation = federation::Federation::new(
        db.clone(),
        cache.clone(),
        secrets_key,
        settings.issuer_str(),
    )
    .map_err(StartupError::Secrets)?;
    Ok(AppState {
        federation,
        passkeys,
        jobs,
        mail,
        deliveries,
        clients: Arc::new(store::clients::ClientCache::new(settings.client_cache_ttl)),
        settings: Arc::new(settings),
        db,
        cache,
        keys,
        discovery: Arc::new(discovery),
        metrics: Arc::new(metrics::Metrics::default()),
        passwords,
        sessions,
        throttle,
    })
}

/// Every kind of job and what delivers it.
pub struct Deliveries {
    pub mail: mail::Transport,
    pub logout: oidc::backchannel::Sender,
}

impl jobs::Deliver for Deliveries {
    fn deliver<'a>(
        &'a self,
        job: &'a jobs::Claimed,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), jobs::Failure>> + Send + 'a>>
    {
        Box::pin(async move {
            match job.kind.as_str() {
                jobs::MAIL => self.mail.send(job).await,
                oidc::backchannel::KIND => self.logout.deliver(job).await,
                other => Err(jobs::Failure::Permanent(format!(
                    "no delivery for jobs of kind `{other}`"
                ))),
            }
        })
    }
}

/// Redis when `REDIS_URL` is set (checked to answer), the in-process cache otherwise.
pub async fn connect_cache(settings: &Settings) -> Result<Cache, StartupError> {
    match &settings.redis_url {
        None => Ok(Cache::memory()),
        Some(url) => Cache::redis(url, &settings.cache_prefix)
            .await
            .map_err(|e| StartupError::Cache {
                url: url.redacted(),
                reason: e.to_string(),
            }),
    }
}

/// The application: every route behind the request middleware.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .wrap(actix_web::middleware::from_fn(
            http::middleware::request_context,
        ))
        .configure(http::routes)
        .default_service(web::to(http::not_found))
}

/// Binds the listener; separate from [`serve`] so tests can bind port 0 first.
pub fn bind(settings: &Settings) -> Result<TcpListener, StartupError> {
    TcpListener::bind(settings.bind).map_err(|e| StartupError::Bind {
        addr: settings.bind.to_string(),
        reason: e.to_string(),
    })
}

/// How often the background loop looks for provider metadata that is due.
const UPSTREAM_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A running server; the key ring refreshes in the background for as long as this
/// value lives.
pub struct Running {
    pub server: actix_web::dev::Server,
    pub refresher: tokens::keys::RefreshTask,
    /// Delivers queued jobs (mail) for as long as it lives.
    pub worker: jobs::Worker,
    /// Keeps upstream providers' metadata and keys fresh.
    pub upstreams: federation::upstream::RefreshTask,
}

/// Starts the HTTP server on `listener`. Awaiting `Running::server` runs it until
/// SIGTERM/SIGINT, after which in-flight requests drain for up to 10 s.
pub fn serve(state: AppState, listener: TcpListener) -> std::io::Result<Running> {
    let workers = match state.settings.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let refresher = state
        .keys
        .spawn_refresher(state.settings.key_refresh_interval);
    let worker = jobs::spawn(
        state.db.clone(),
        state.jobs.clone(),
        state.deliveries.clone(),
        state.settings.mail.poll_interval,
        state.settings.mail.retry_for,
        state.settings.audit_retention,
    );
    tracing::info!(mail = %state.deliveries.mail.describe(), "job worker started");
    let upstreams = state
        .federation
        .upstreams
        .spawn_refresher(UPSTREAM_CHECK_EVERY);
    let server = HttpServer::new(move || build_app(state.clone()))
        .workers(workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
    Ok(Running {
        server,
        refresher,
        worker,
        upstreams,
    })
}
