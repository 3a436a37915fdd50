//! The `tessera` command: `serve` (the default), `migrate`, `keys list|rotate`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use tessera::config::{CliOverrides, Settings};
use tessera::identity::{password::PasswordHasher, sessions::Sessions, users};
use tessera::oauth::clients;
use tessera::tokens::Algorithm;
use tessera::tokens::keys;
use tessera::{StartupError, store, telemetry};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "An OAuth 2.1 / OpenID Connect authorization server"
)]
struct Cli {
    /// Settings file (TOML); defaults to ./tessera.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect and rotate signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage organizations and their members.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage the APIs tokens are issued for, their scopes, and which scopes each
    /// organization role holds.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Manage personal access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the upstream identity providers people may sign in with.
    #[command(subcommand)]
    Provider(ProviderCommand),
}

#[derive(Subcommand)]
enum ProviderCommand {
    /// Add an OpenID provider. The client secret is read from standard input and
    /// stored sealed under `secrets.key` in the keys directory.
    Add {
        /// The slug in URLs (`/federation/{id}/callback`), e.g. `google`.
        #[arg(long)]
        id: String,
        /// What the sign-in button says: "Continue with {name}".
        #[arg(long)]
        name: String,
        /// The provider's issuer, e.g. https://accounts.google.com.
        #[arg(long)]
        issuer: String,
        #[arg(long = "client-id")]
        client_id: String,
        /// Read the client secret from standard input (required).
        #[arg(long = "client-secret-stdin", required = true)]
        client_secret_stdin: bool,
        #[arg(long, default_value = "openid email profile")]
        scope: String,
        /// Take the provider's `email_verified: true` as proof of the address.
        #[arg(long = "trust-email")]
        trust_email: bool,
        /// `client_secret_basic` (default) or `client_secret_post`.
        #[arg(long = "token-auth", default_value = "client_secret_basic")]
        token_auth: String,
        /// An audience accepted on id_tokens native apps exchange (repeatable).
        #[arg(long = "accepted-audience", value_name = "CLIENT_ID")]
        accepted_audiences: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List providers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one provider (never its secret).
    Show {
        #[arg(long)]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a provider.
    Remove {
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a personal access token for a person. Prints it this once only.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// An API scope the person holds (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// Pin it to one organization (id or slug).
        #[arg(long)]
        org: Option<String>,
        /// How long it lives (e.g. 30d); `never` where TESSERA_PAT_MAX_LIFETIME
        /// is `unlimited`.
        #[arg(long, default_value = "30d")]
        expires: String,
        #[arg(long)]
        json: bool,
    },
    /// A person's live tokens (never their secrets).
    List {
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke { id: uuid::Uuid },
}

#[derive(Subcommand)]
enum ApiCommand {
    /// Register an API (resource server).
    Create {
        #[arg(long)]
        name: String,
        /// Its RFC 8707 resource URI: the `aud` of its tokens.
        #[arg(long)]
        audience: String,
        /// A scope it defines (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// The APIs, stored and from TESSERA_RESOURCES.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One API: its scopes and what each role holds.
    Show {
        #[arg(long = "api", value_name = "AUDIENCE")]
        audience: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an API; tokens for it are refused from then on.
    Delete {
        #[arg(long = "api", value_name = "AUDIENCE")]
        audience: String,
    },
    /// Let an organization role hold scopes of the API (owners hold all).
    Grant {
        #[arg(long = "api", value_name = "AUDIENCE")]
        audience: String,
        #[arg(long)]
        role: tessera::orgs::Role,
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization.
    Create {
        #[arg(long)]
        name: String,
        /// URL-safe identifier; derived from the name when omitted.
        #[arg(long)]
        slug: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List organizations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a user to an organization.
    AddMember {
        /// Organization id or slug.
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// owner, admin or member.
        #[arg(long, default_value = "member")]
        role: tessera::orgs::Role,
        #[arg(long)]
        json: bool,
    },
    /// Remove a user from an organization (never its last owner).
    RemoveMember {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a member's role (the last owner stays an owner).
    SetRole {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: tessera::orgs::Role,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client. Prints its client_id and, this once only, its secret.
    Create {
        /// Name shown on the consent page.
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeatable).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may return to (repeatable, exact).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (no secret; token_endpoint_auth_method none; PKCE as always).
        #[arg(long)]
        public: bool,
        /// The client sends its secret in the request body (client_secret_post)
        /// instead of HTTP Basic (client_secret_basic, the default).
        #[arg(long, conflicts_with = "public")]
        secret_post: bool,
        /// A native app: loopback redirect URIs match with any port (RFC 8252).
        #[arg(long)]
        native: bool,
        /// A grant type (repeatable); defaults to authorization_code.
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Vec<String>,
        /// Space-separated scopes the client may request.
        #[arg(long, default_value = "openid profile email offline_access")]
        scope: String,
        /// Skip the consent page for this client.
        #[arg(long)]
        first_party: bool,
        /// id_token signing algorithm: RS256 (the OIDC default) or ES256.
        #[arg(long, default_value = "RS256")]
        id_token_alg: Algorithm,
        /// A user in no organization gets a token without org claims instead of
        /// access_denied when this client asks for the `org` scope.
        #[arg(long)]
        org_optional: bool,
        /// The API (audience) its tokens are for when a request names no
        /// `resource`; one registered with `tessera api create` or listed in
        /// TESSERA_RESOURCES.
        #[arg(long = "default-api", value_name = "AUDIENCE")]
        default_api: Option<String>,
        /// This client is the server of that API: it may introspect the API's
        /// tokens (access tokens for it, personal access tokens) besides its own.
        #[arg(long = "introspect-for", value_name = "AUDIENCE")]
        introspect_for: Option<String>,
        /// An organization service account: acts for this organization (id or
        /// slug) with `--role`, through the client_credentials grant.
        #[arg(long, requires = "role")]
        org: Option<String>,
        /// The service account's role in `--org`.
        #[arg(long, requires = "org")]
        role: Option<tessera::orgs::Role>,
        /// OIDC Back-Channel Logout: where logout tokens are POSTed when a
        /// session this client received tokens from ends (https; http on loopback).
        #[arg(long = "backchannel-logout-uri", value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// The client requires `sid` in logout tokens (Tessera always sends it).
        #[arg(
            long = "backchannel-logout-session-required",
            requires = "backchannel_logout_uri"
        )]
        backchannel_logout_session_required: bool,
        /// A service client of the admin API: client_credentials with the
        /// `tessera:admin` scope (only the command line makes one).
        #[arg(long, conflicts_with_all = ["public", "org"])]
        admin_api: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Give a confidential client a new secret, printed once; the old one keeps
    /// working for the grace period.
    RotateSecret {
        #[arg(long = "client-id")]
        client_id: String,
        /// How long the old secret keeps working (0 ends it at once).
        #[arg(long, default_value = "24h", value_parser = tessera::config::parse_duration)]
        grace: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// Delete a client: its tokens stop working (refresh tokens revoked).
    Delete {
        #[arg(long = "client-id")]
        client_id: String,
    },
    /// Initial access tokens for dynamic client registration (RFC 7591 §3).
    InitialToken {
        #[command(subcommand)]
        command: InitialTokenCommand,
    },
}

#[derive(Subcommand)]
enum InitialTokenCommand {
    /// Create a token; it is printed once, only its digest is stored.
    Create {
        /// How long it works, e.g. `1h`, `7d` (default: until used up).
        #[arg(long, value_parser = tessera::config::parse_duration)]
        expires: Option<std::time::Duration>,
        /// How many registrations it allows (default: unlimited).
        #[arg(long)]
        uses: Option<u32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from standard input, never from the
    /// command line (which other users of the machine can see).
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Leave the address unverified and queue a verification message (sent
        /// by the running server); without it the operator vouches for it.
        #[arg(long)]
        unverified: bool,
        /// Make the account an administrator (the first one can only be made
        /// here, at the command line).
        #[arg(long)]
        admin: bool,
    },
    /// Make an account an administrator, or (`--revoke`) no longer one.
    SetAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        revoke: bool,
    },
    /// List accounts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: end its sessions and revoke its refresh tokens.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Re-enable a disabled account.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// The applications with access to an account (consented to, or holding
    /// live refresh tokens).
    Apps {
        #[arg(long)]
        email: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an application's access to an account: its refresh tokens are
    /// revoked, its consent forgotten, and it is sent back-channel logout.
    RevokeApp {
        #[arg(long)]
        email: String,
        #[arg(long = "client", value_name = "CLIENT_ID")]
        client: String,
    },
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Address to listen on, overriding TESSERA_BIND.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
    /// Issuer URL, overriding TESSERA_ISSUER.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys with their status.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key. It is published at once and signs after the delay, so
    /// verifiers that cache the JWKS learn it before they meet a token it signed.
    Rotate {
        /// ES256 (access tokens and id_tokens) or RS256 (id_tokens for clients that ask).
        #[arg(long, default_value = "ES256")]
        alg: Algorithm,
        /// Time before the new key signs, e.g. 90s, 15m, 1h; defaults to
        /// TESSERA_KEY_ROTATION_DELAY. Use 0 only when the current key is compromised.
        #[arg(long, value_parser = parse_delay)]
        delay: Option<std::time::Duration>,
    },
}

fn parse_delay(raw: &str) -> Result<std::time::Duration, String> {
    tessera::config::parse_duration(raw)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Some(Command::Serve(args)) => CliOverrides {
            bind: args.bind.clone(),
            issuer: args.issuer.clone(),
        },
        _ => CliOverrides::default(),
    };
    let settings = match Settings::load(cli.config.as_deref(), overrides) {
        Ok(s) => s,
        Err(e) => return fail(&StartupError::from(e)),
    };
    let _log = telemetry::init(settings.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    // What an operator changes at the command line is recorded as an
    // administrator's doing (no account: whoever holds the host).
    let context = match command {
        Command::Serve(_) => tessera::audit::Context::default(),
        _ => tessera::audit::Context {
            ip: None,
            user_agent: Some("tessera command line".into()),
            actor: Some(tessera::audit::Actor::Admin(None)),
        },
    };
    let outcome = runtime.block_on(tessera::audit::within(context, async move {
        match command {
            Command::Serve(_) => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Keys(KeysCommand::List { json }) => list_keys(settings, json).await,
            Command::Keys(KeysCommand::Rotate { alg, delay }) => {
                rotate_key(settings, alg, delay).await
            }
            Command::User(command) => user_command(settings, command).await,
            Command::Client(command) => client_command(settings, command).await,
            Command::Org(command) => org_command(settings, command).await,
            Command::Api(command) => api_command(settings, command).await,
            Command::Token(command) => token_command(settings, command).await,
            Command::Provider(command) => provider_command(settings, command).await,
        }
    }));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One line on stderr naming the setting at fault; no backtrace.
fn fail(error: &StartupError) -> ExitCode {
    // After the lines logged before it.
    telemetry::flush();
    eprintln!("tessera: {error}");
    ExitCode::FAILURE
}

async fn serve(settings: Settings) -> Result<(), StartupError> {
    if settings.key_rotation_delay < settings.key_refresh_interval + settings.jwks_max_age {
        tracing::warn!(
            "TESSERA_KEY_ROTATION_DELAY is shorter than TESSERA_KEY_REFRESH_INTERVAL + \
             TESSERA_JWKS_MAX_AGE: verifiers may meet a rotated key before they can fetch it"
        );
    }
    let listener = tessera::bind(&settings)?;
    let state = tessera::start(settings).await?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        %addr,
        issuer = state.settings.issuer_str(),
        database = %state.settings.database_url,
        cache = state.cache.kind(),
        "Tessera is listening"
    );
    let running = tessera::serve(state, listener).map_err(|e| StartupError::Bind {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    if let Err(e) = running.server.await {
        tracing::error!("server stopped with an error: {e}");
    }
    tracing::info!("Tessera stopped");
    Ok(())
}

async fn migrate(settings: Settings) -> Result<(), StartupError> {
    open_database(&settings).await?;
    println!("database is up to date");
    Ok(())
}

async fn list_keys(settings: Settings, json: bool) -> Result<(), StartupError> {
    let db = open_database(&settings).await?;
    let rows = keys::list(&db, settings.longest_signed_token_ttl(), Utc::now())
        .await
        .map_err(StartupError::Keys)?;
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(row, status)| {
                serde_json::json!({
                    "kid": row.kid,
                    "alg": row.alg,
                    "status": status.to_string(),
                    "created_at": row.created_at.to_rfc3339(),
                    "activates_at": row.activates_at.to_rfc3339(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
    } else {
        println!("{:<44} {:<6} {:<26} STATUS", "KID", "ALG", "SIGNS FROM");
        for (row, status) in rows {
            println!(
                "{:<44} {:<6} {:<26} {status}",
                row.kid,
                row.alg,
                row.activates_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
    }
    Ok(())
}

async fn rotate_key(
    settings: Settings,
    alg: Algorithm,
    delay: Option<std::time::Duration>,
) -> Result<(), StartupError> {
    let db = open_database(&settings).await?;
    let delay = delay.unwrap_or(settings.key_rotation_delay);
    let activates_at =
        Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    let kid = keys::rotate(&db, &settings.keys_dir, alg, activates_at)
        .await
        .map_err(StartupError::Keys)?;
    println!(
        "added {alg} key {kid}: published now, signs from {}",
        activates_at.format("%Y-%m-%dT%H:%M:%SZ")
    );
    Ok(())
}

/// An operator command failed for a reason that is not a setting.
/// The database a command works on, migrated to this release's schema.
async fn open_database(settings: &Settings) -> Result<sea_orm::DatabaseConnection, StartupError> {
    let db = store::connect(&settings.database_url)
        .await
        .map_err(StartupError::Database)?;
    store::migrate(&db).await.map_err(StartupError::Database)?;
    Ok(db)
}

fn refused(message: impl std::fmt::Display) -> StartupError {
    StartupError::Command(message.to_string())
}

async fn user_command(settings: Settings, command: UserCommand) -> Result<(), StartupError> {
    let db = open_database(&settings).await?;
    match command {
        UserCommand::Create {
            email,
            unverified,
            admin,
            ..
        } => {
            let password = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await
            .map_err(refused)?
            .map_err(|e| refused(format!("cannot read the password from standard input: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            let hasher = PasswordHasher::new(settings.argon2).map_err(refused)?;
            let mailer = tessera::mail::Mailer::new(&settings, tessera::jobs::Queue::default())
                .map_err(refused)?;
            let address = if unverified {
                users::NewAddress::SendVerification(&mailer)
            } else {
                users::NewAddress::Verified
            };
            let user = users::create(&db, &hasher, &email, password, address)
                .await
                .map_err(refused)?;
            if admin {
                users::set_admin(&db, &user.email, true)
                    .await
                    .map_err(refused)?;
            }
            let role = if admin { " as an administrator" } else { "" };
            println!("created {} ({}){role}", user.email, user.id);
        }
        UserCommand::SetAdmin { email, revoke } => {
            let user = users::set_admin(&db, &email, !revoke)
                .await
                .map_err(refused)?;
            let now = if revoke { "no longer" } else { "now" };
            println!("{} is {now} an administrator", user.email);
        }
        UserCommand::List { json } => {
            let all = users::list(&db).await.map_err(refused)?;
            if json {
                let items: Vec<_> = all
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "id": u.id,
                            "email": u.email,
                            "disabled": u.disabled,
                            "has_password": u.password_hash.is_some(),
                            "email_verified": u.email_verified_at.is_some(),
                            "admin": u.is_admin,
                            "created_at": u.created_at.to_rfc3339(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else {
                println!("{:<36}  {:<40} STATUS", "ID", "EMAIL");
                for u in all {
                    let status = if u.disabled { "disabled" } else { "active" };
                    println!("{:<36}  {:<40} {status}", u.id, u.email);
                }
            }
        }
        UserCommand::Apps { email, json } => {
            let user = users::find_by_email(&db, &email)
                .await
                .map_err(refused)?
                .ok_or_else(|| refused(format!("no account has the email `{email}`")))?;
            let apps = tessera::oauth::access::list(&db, user.id)
                .await
                .map_err(refused)?;
            if json {
                println!("{}", serde_json::to_value(&apps).map_err(refused)?);
            } else {
                println!(
                    "{:<36}  {:<30} {:<20} SCOPES",
                    "CLIENT", "NAME", "LAST USED"
                );
                for a in apps {
                    let last = a.last_used.map_or_else(
                        || "never".to_owned(),
                        |t| t.format("%Y-%m-%d %H:%M").to_string(),
                    );
                    println!(
                        "{:<36}  {:<30} {:<20} {}",
                        a.client_id,
                        a.name,
                        last,
                        a.scopes.join(" ")
                    );
                }
            }
        }
        UserCommand::RevokeApp { email, client } => {
            let user = users::find_by_email(&db, &email)
                .await
                .map_err(refused)?
                .ok_or_else(|| refused(format!("no account has the email `{email}`")))?;
            // No worker here: a running server's worker sends the logouts.
            let removed = tessera::oauth::access::remove(
                &db,
                &tessera::jobs::Queue::default(),
                user.id,
                &client,
            )
            .await
            .map_err(refused)?;
            println!(
                "revoked {} refresh token(s){}; {} back-channel logout(s) queued",
                removed.refresh_tokens,
                if removed.consent {
                    " and the consent"
                } else {
                    ""
                },
                removed.logouts
            );
        }
        UserCommand::Disable { email } => {
            // Ending sessions reaches the shared cache when there is one, so the
            // cached copies on running servers go at once.
            let cache = tessera::connect_cache(&settings).await?;
            let sessions = Sessions::new(
                db.clone(),
                cache,
                settings.session_idle_timeout,
                settings.session_lifetime,
                // No worker here: a running server's worker sends the logouts.
                tessera::jobs::Queue::default(),
            );
            let (user, ended) = tessera::identity::account::disable(&db, &sessions, &email)
                .await
                .map_err(refused)?;
            println!(
                "disabled {}, ended {} session(s), revoked {} refresh token(s) and {} API token(s)",
                user.email, ended.sessions, ended.refresh_tokens, ended.api_tokens
            );
        }
        UserCommand::Enable { email } => {
            let user = users::set_disabled(&db, &email, false)
                .await
                .map_err(refused)?;
            println!("enabled {}", user.email);
        }
    }
    Ok(())
}

async fn client_command(settings: Settings, command: ClientCommand) -> Result<(), StartupError> {
    let db = open_database(&settings).await?;
    match command {
        ClientCommand::RotateSecret {
            client_id,
            grace,
            json,
        } => {
            let grace = chrono::Duration::from_std(grace).map_err(refused)?;
            let secret = tessera::store::clients::rotate_secret(&db, &client_id, grace)
                .await
                .map_err(refused)?
                .ok_or_else(|| refused(format!("no confidential client `{client_id}`")))?;
            if json {
                let until = chrono::Utc::now() + grace;
                let out = serde_json::json!({
                    "client_id": client_id,
                    "client_secret": secret,
                    "previous_secret_valid_until": until.to_rfc3339(),
                });
                println!("{out}");
            } else {
                println!(
                    "client_secret: {secret}\n(shown only now; the old secret works for {})",
                    humanize(grace)
                );
            }
        }
        ClientCommand::Delete { client_id } => {
            if !tessera::store::clients::delete(&db, &client_id)
                .await
                .map_err(refused)?
            {
                return Err(refused(format!("no client `{client_id}`")));
            }
            println!("deleted {client_id}");
        }
        ClientCommand::InitialToken {
            command:
                InitialTokenCommand::Create {
                    expires,
                    uses,
                    json,
                },
        } => {
            let (token, expires_at) =
                tessera::oauth::registration::create_initial_token(&db, expires, uses)
                    .await
                    .map_err(refused)?;
            if json {
                let out = serde_json::json!({
                    "initial_access_token": token,
                    "expires_at": expires_at.map(|t| t.to_rfc3339()),
                    "uses": uses,
                });
                println!("{out}");
            } else {
                println!("initial_access_token: {token}");
                println!("(shown only now; send it as `Authorization: Bearer` to /register)");
            }
        }
        ClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            secret_post,
            native,
            grant_types,
            scope,
            first_party,
            id_token_alg,
            org_optional,
            default_api,
            introspect_for,
            org,
            role,
            backchannel_logout_uri,
            backchannel_logout_session_required,
            admin_api,
            json,
        } => {
            let (grant_types, scope) = if admin_api {
                (
                    vec![clients::GrantType::ClientCredentials.as_str().to_owned()],
                    tessera::admin::SCOPE.to_owned(),
                )
            } else {
                (grant_types, scope)
            };
            let service = match (org, role) {
                (Some(key), Some(role)) => Some((
                    tessera::orgs::find(&db, &key)
                        .await
                        .map_err(refused)?
                        .ok_or_else(|| refused(format!("no organization `{key}`")))?
                        .id,
                    role,
                )),
                _ => None,
            };
            for audience in default_api.iter().chain(&introspect_for) {
                let default = *audience == settings.default_audience;
                let api = tessera::orgs::apis::resolve(&db, &settings.resources, audience)
                    .await
                    .map_err(refused)?;
                if api.is_none() && !default {
                    return Err(refused(format!("no API has the audience `{audience}`")));
                }
            }
            let grant_types = if grant_types.is_empty() {
                vec![clients::GrantType::AuthorizationCode]
            } else {
                grant_types
                    .iter()
                    .map(|g| {
                        clients::GrantType::parse(g)
                            .ok_or_else(|| clients::ClientError::UnsupportedGrantType(g.clone()))
                    })
                    .collect::<Result<_, _>>()
                    .map_err(refused)?
            };
            let auth_method = match (public, secret_post) {
                (true, _) => clients::AuthMethod::None,
                (false, true) => clients::AuthMethod::ClientSecretPost,
                (false, false) => clients::AuthMethod::ClientSecretBasic,
            };
            let new = clients::NewClient {
                name,
                redirect_uris,
                auth_method,
                grant_types,
                scope,
                first_party,
                native,
                id_token_alg,
                post_logout_redirect_uris,
                org_optional,
                default_resource: default_api,
                introspect_for,
                service,
                backchannel_logout_uri,
                backchannel_logout_session_required,
                ..clients::NewClient::default()
            };
            let (client, secret) = tessera::store::clients::create(&db, new)
                .await
                .map_err(refused)?;
            if json {
                let out = serde_json::json!({
                    "client_id": client.client_id,
                    "client_secret": secret,
                    "client_name": client.name,
                    "redirect_uris": client.redirect_uris,
                    "grant_types": client.grant_types,
                    "scope": client.scope.join(" "),
                    "token_endpoint_auth_method": client.auth_method,
                    "id_token_signed_response_alg": client.id_token_alg.as_str(),
                    "org_optional": client.org_optional,
                    "default_api": client.default_resource,
                    "introspect_for": client.introspect_for,
                    "organization": client.service.map(|(org, _)| org),
                    "role": client.service.map(|(_, role)| role),
                    "backchannel_logout_uri": client.backchannel_logout_uri,
                    "backchannel_logout_session_required": client.backchannel_logout_session_required,
                });
                println!("{out}");
            } else {
                println!("client_id:     {}", client.client_id);
                if let Some(secret) = secret {
                    println!("client_secret: {secret}");
                    println!("(the secret is shown only now; Tessera keeps only its digest)");
                }
            }
        }
    }
    Ok(())
}

/// A grace period in words.
fn humanize(d: chrono::Duration) -> String {
    match d.num_hours() {
        0 => format!("{} minutes", d.num_minutes()),
        h => format!("{h} hours"),
    }
}

async fn token_command(settings: Settings, command: TokenCommand) -> Result<(), StartupError> {
    use tessera::identity::pats::{self, NewPat};
    let db = open_database(&settings).await?;
    let person = |email: String| {
        let db = db.clone();
        async move {
            users::find_by_email(&db, &email)
                .await
                .map_err(refused)?
                .ok_or_else(|| refused(format!("no account with email `{email}`")))
        }
    };
    match command {
        TokenCommand::Create {
            email,
            name,
            scopes,
            org,
            expires,
            json,
        } => {
            let user = person(email).await?;
            let org_id = match org {
                None => None,
                Some(key) => Some(
                    tessera::orgs::find(&db, &key)
                        .await
                        .map_err(refused)?
                        .ok_or_else(|| refused(format!("no organization `{key}`")))?
                        .id,
                ),
            };
            let lifetime = match expires.as_str() {
                "never" => None,
                raw => Some(
                    chrono::Duration::from_std(parse_delay(raw).map_err(refused)?)
                        .map_err(refused)?,
                ),
            };
            let new = NewPat {
                user_id: user.id,
                name: &name,
                org_id,
                scopes: &scopes,
                lifetime,
            };
            let (pat, token) = pats::create(&db, settings.pat_max_lifetime(), new)
                .await
                .map_err(refused)?;
            if json {
                let mut out = serde_json::to_value(&pat).unwrap_or_default();
                out["token"] = token.into();
                println!("{out}");
            } else {
                println!("{token}\n(shown only now; id {})", pat.id);
            }
        }
        TokenCommand::List { email, json } => {
            let user = person(email).await?;
            let all = pats::list(&db, user.id).await.map_err(refused)?;
            if json {
                println!("{}", serde_json::to_value(&all).unwrap_or_default());
            } else {
                for pat in all {
                    println!("{}  {}  {}", pat.id, pat.name, pat.scopes.join(" "));
                }
            }
        }
        TokenCommand::Revoke { id } => {
            pats::revoke(&db, None, id).await.map_err(refused)?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

async fn provider_command(
    settings: Settings,
    command: ProviderCommand,
) -> Result<(), StartupError> {
    use tessera::federation::providers::{self, NewProvider, Provider, TokenAuth};
    let db = open_database(&settings).await?;
    let print = |p: &Provider, json: bool| {
        if json {
            println!("{}", serde_json::to_value(p).unwrap_or_default());
        } else {
            println!(
                "{}  {}  {}  client {}  scope \"{}\"{}",
                p.id,
                p.name,
                p.issuer,
                p.client_id,
                p.scope,
                if p.trust_email { "  trusts email" } else { "" }
            );
        }
    };
    match command {
        ProviderCommand::Add {
            id,
            name,
            issuer,
            client_id,
            scope,
            trust_email,
            token_auth,
            accepted_audiences,
            json,
            ..
        } => {
            let token_auth = TokenAuth::parse(&token_auth)
                .ok_or_else(|| refused(providers::ProviderError::InvalidTokenAuth))?;
            let secret = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await
            .map_err(refused)?
            .map_err(|e| {
                refused(format!(
                    "cannot read the client secret from standard input: {e}"
                ))
            })?;
            let dir = settings.keys_dir.clone();
            let key =
                tokio::task::spawn_blocking(move || tessera::tokens::sealing::secrets_key(&dir))
                    .await
                    .map_err(refused)?
                    .map_err(refused)?;
            let provider = providers::add(
                &db,
                &key,
                NewProvider {
                    id: &id,
                    name: &name,
                    issuer: &issuer,
                    client_id: &client_id,
                    client_secret: secret.trim_end_matches(['\r', '\n']),
                    scope: &scope,
                    trust_email,
                    token_auth,
                    accepted_audiences: &accepted_audiences,
                },
            )
            .await
            .map_err(refused)?;
            print(&provider, json);
        }
        ProviderCommand::List { json } => {
            let all = providers::list(&db).await.map_err(refused)?;
            if json {
                println!("{}", serde_json::to_value(&all).unwrap_or_default());
            } else {
                for p in &all {
                    print(p, false);
                }
            }
        }
        ProviderCommand::Show { id, json } => {
            let provider = providers::find(&db, &id).await.map_err(refused)?;
            print(&provider, json);
        }
        ProviderCommand::Remove { id } => {
            providers::remove(&db, &id).await.map_err(refused)?;
            println!("removed provider {id}");
        }
    }
    Ok(())
}

async fn api_command(settings: Settings, command: ApiCommand) -> Result<(), StartupError> {
    use tessera::orgs::apis::{self, Api};
    let db = open_database(&settings).await?;
    let describe = |api: &Api| {
        format!(
            "{}  {}\n  scopes: {}\n  owner: all\n  admin: {}\n  member: {}{}",
            api.audience,
            api.name,
            api.scopes.join(" "),
            api.admin_scopes.join(" "),
            api.member_scopes.join(" "),
            if api.configured {
                "\n  (from TESSERA_RESOURCES)"
            } else {
                ""
            }
        )
    };
    let print = |json: bool, api: &Api| {
        if json {
            println!("{}", serde_json::to_value(api).unwrap_or_default());
        } else {
            println!("{}", describe(api));
        }
    };
    match command {
        ApiCommand::Create {
            name,
            audience,
            scopes,
            json,
        } => {
            let api = apis::create(&db, &name, &audience, &scopes)
                .await
                .map_err(refused)?;
            print(json, &api);
        }
        ApiCommand::List { json } => {
            let mut all = apis::list(&db).await.map_err(refused)?;
            for audience in &settings.resources {
                if !all.iter().any(|a| &a.audience == audience) {
                    let api = apis::resolve(&db, &settings.resources, audience)
                        .await
                        .map_err(refused)?;
                    all.extend(api);
                }
            }
            if json {
                println!("{}", serde_json::to_value(&all).unwrap_or_default());
            } else {
                for api in &all {
                    println!("{}", describe(api));
                }
            }
        }
        ApiCommand::Show { audience, json } => {
            let api = apis::resolve(&db, &settings.resources, &audience)
                .await
                .map_err(refused)?
                .ok_or_else(|| refused(format!("no API has the audience `{audience}`")))?;
            print(json, &api);
        }
        ApiCommand::Delete { audience } => {
            apis::delete(&db, &audience).await.map_err(refused)?;
            println!("deleted {audience}");
        }
        ApiCommand::Grant {
            audience,
            role,
            scopes,
            json,
        } => {
            let api = apis::grant(&db, &audience, role, &scopes)
                .await
                .map_err(refused)?;
            print(json, &api);
        }
    }
    Ok(())
}

async fn org_command(settings: Settings, command: OrgCommand) -> Result<(), StartupError> {
    use tessera::orgs;
    let db = open_database(&settings).await?;
    let org_by = |key: String| {
        let db = db.clone();
        async move {
            orgs::find(&db, &key)
                .await
                .map_err(refused)?
                .ok_or_else(|| refused(format!("no organization `{key}`")))
        }
    };
    let user_by = |email: String| {
        let db = db.clone();
        async move {
            users::find_by_email(&db, &email)
                .await
                .map_err(refused)?
                .ok_or_else(|| refused(format!("no account with email `{email}`")))
        }
    };
    let print = |json: bool, value: serde_json::Value, text: String| {
        if json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    };
    match command {
        OrgCommand::Create { name, slug, json } => {
            let org = orgs::create(&db, &name, slug.as_deref())
                .await
                .map_err(refused)?;
            print(
                json,
                serde_json::json!({"id": org.id, "name": org.name, "slug": org.slug}),
                format!("created {} ({}) {}", org.name, org.slug, org.id),
            );
        }
        OrgCommand::List { json } => {
            let all = orgs::list(&db).await.map_err(refused)?;
            if json {
                let items: Vec<_> = all
                    .iter()
                    .map(|o| serde_json::json!({"id": o.id, "name": o.name, "slug": o.slug}))
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else {
                for o in all {
                    println!("{:<36}  {:<24} {}", o.id, o.slug, o.name);
                }
            }
        }
        OrgCommand::AddMember {
            org,
            email,
            role,
            json,
        } => {
            let (org, user) = (org_by(org).await?, user_by(email).await?);
            orgs::add_member(&db, org.id, user.id, role)
                .await
                .map_err(refused)?;
            print(
                json,
                serde_json::json!({"org": org.slug, "email": user.email, "role": role}),
                format!("{} is now {role} of {}", user.email, org.slug),
            );
        }
        OrgCommand::RemoveMember { org, email, json } => {
            let (org, user) = (org_by(org).await?, user_by(email).await?);
            orgs::remove_member(&db, org.id, user.id)
                .await
                .map_err(refused)?;
            print(
                json,
                serde_json::json!({"org": org.slug, "email": user.email, "removed": true}),
                format!("{} removed from {}", user.email, org.slug),
            );
        }
        OrgCommand::SetRole {
            org,
            email,
            role,
            json,
        } => {
            let (org, user) = (org_by(org).await?, user_by(email).await?);
            orgs::set_role(&db, org.id, user.id, role)
                .await
                .map_err(refused)?;
            print(
                json,
                serde_json::json!({"org": org.slug, "email": user.email, "role": role}),
                format!("{} is now {role} of {}", user.email, org.slug),
            );
        }
    }
    Ok(())
}
