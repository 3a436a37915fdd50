//! Settings: embedded defaults, then an optional `tessera.toml`, then `TESSERA_*`
//! environment variables (plus `DATABASE_URL` and `REDIS_URL`), then CLI flags.
//! Everything is validated once at start; a bad value is a [`ConfigError`] that
//! names the setting, never a panic.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

/// A setting that could not be accepted, named the way the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// A connection URL whose `Debug`/`Display` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced, for logs and error messages.
    pub fn redacted(&self) -> String {
        match Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(_) => self.0.clone(),
            Err(_) => "<unparseable URL>".to_owned(),
        }
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Every setting Tessera runs with, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer identifier: scheme, host, optional port and path; no query or fragment,
    /// no trailing slash (OIDC Discovery §4.3 compares it as a string).
    pub issuer: Url,
    pub bind: SocketAddr,
    pub database_url: ConnectionUrl,
    /// `None` selects the in-process cache.
    pub redis_url: Option<ConnectionUrl>,
    /// Prepended to every cache key, so several deployments can share one Redis.
    pub cache_prefix: String,
    pub keys_dir: PathBuf,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    /// Absolute lifetime of a refresh-token family.
    pub refresh_token_ttl: Duration,
    /// A refresh token unused this long expires.
    pub refresh_token_idle_ttl: Duration,
    /// A spent refresh token presented again by its client this soon after gets
    /// the same successor (parallel tabs, retries); 0 turns it off.
    pub refresh_reuse_grace: Duration,
    /// How long a rotated-in key is published before it signs anything.
    pub key_rotation_delay: Duration,
    /// How often each instance re-reads key metadata from the database.
    pub key_refresh_interval: Duration,
    /// `max-age` of the JWKS and discovery documents.
    pub jwks_max_age: Duration,
    pub log_format: LogFormat,
    /// Number of HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// A session unused this long ends.
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, however active.
    pub session_lifetime: Duration,
    /// Whether `/signup` creates accounts.
    pub signup: bool,
    pub argon2: Argon2Settings,
    /// Failed sign-ins per account within `login_lockout` before `429`.
    pub login_max_failures: u32,
    /// Failed sign-ins per client IP within `login_lockout` before `429`.
    pub login_max_failures_per_ip: u32,
    pub login_lockout: Duration,
    /// `aud` of access tokens when the request names no resource (RFC 9068 §3).
    pub default_audience: String,
    /// Resource indicators (RFC 8707) clients may ask tokens for; each becomes `aud`.
    pub resources: Vec<String>,
    /// WebAuthn relying party; `None` when the issuer's host cannot be one (an IP
    /// address) and no RP id was set, which turns passkeys off.
    pub webauthn: Option<WebauthnSettings>,
    /// Who may register clients at the registration endpoint (RFC 7591).
    pub registration: RegistrationPolicy,
    /// Development only: self-registered web clients may use http on localhost.
    pub registration_allow_http_localhost: bool,
    /// Registrations per client IP per hour before `429`.
    pub registration_max_per_ip: u32,
    /// Sign-up attempts (password or passkey) per client IP per hour before
    /// `429`: each answer tells whether an email has an account.
    pub signup_max_per_ip: u32,
    /// How long an instance may answer from its copy of a client (0: never).
    pub client_cache_ttl: Duration,
    /// How long audit events are kept before the background sweep prunes them.
    pub audit_retention: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client for per-address
    /// limits. Empty: the TCP peer is the client, whatever a header says.
    pub trusted_proxies: Vec<IpRange>,
    /// The longest a personal access token may live; `None` (`unlimited`) allows
    /// tokens that never expire.
    pub pat_max_lifetime: Option<Duration>,
    pub mail: MailSettings,
    /// When set, `/authorize` issues no code to a person whose address is unverified.
    pub require_verified_email: bool,
}

/// Outbound mail and the job queue that delivers it.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `None`: messages are written as `.eml` files into `dir` (the file outbox).
    pub smtp_url: Option<ConnectionUrl>,
    /// `From:`, already checked to parse as a mailbox.
    pub from: String,
    pub dir: PathBuf,
    /// How often each instance looks for due jobs it was not woken for.
    pub poll_interval: Duration,
    /// How long a job keeps being retried after temporary failures.
    pub retry_for: Duration,
    /// Whether a sign-in from a browser not seen before sends a notice.
    pub new_device_notice: bool,
}

/// An address or a CIDR range (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: std::net::IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: std::net::IpAddr = address
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))?;
        let widest = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => widest,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= widest)
                .ok_or_else(|| format!("`{s}` has a prefix length outside 0..={widest}"))?,
        };
        Ok(Self { network, prefix })
    }
}

/// Dynamic client registration: anyone, holders of an initial access token, or
/// no one (the endpoint is then absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationPolicy {
    Open,
    InitialAccessToken,
    Off,
}

/// Who passkeys are bound to: the RP id (the issuer's host or a registrable suffix
/// of it) and the name authenticators show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnSettings {
    pub rp_id: String,
    pub rp_name: String,
    /// How long a started passkey ceremony may take.
    pub ceremony_ttl: Duration,
}

/// Argon2id cost parameters for new password hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Every setting's name as written in `tessera.toml`; the environment variable is
/// [`env_name`] of it.
const SETTINGS: &[&str] = &[
    "issuer",
    "bind",
    "database_url",
    "redis_url",
    "cache_prefix",
    "keys_dir",
    "access_token_ttl",
    "id_token_ttl",
    "refresh_token_ttl",
    "key_rotation_delay",
    "key_refresh_interval",
    "jwks_max_age",
    "log_format",
    "workers",
    "session_idle_timeout",
    "session_lifetime",
    "signup",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "login_max_failures",
    "login_max_failures_per_ip",
    "login_lockout",
    "default_audience",
    "refresh_token_idle_ttl",
    "refresh_reuse_grace",
    "resources",
    "webauthn_rp_id",
    "webauthn_rp_name",
    "passkey_ceremony_ttl",
    "registration",
    "registration_allow_http_localhost",
    "registration_max_per_ip",
    "signup_max_per_ip",
    "client_cache_ttl",
    "trusted_proxies",
    "pat_max_lifetime",
    "smtp_url",
    "mail_from",
    "mail_dir",
    "job_poll_interval",
    "job_retry_for",
    "new_device_notice",
    "require_verified_email",
    "audit_retention",
];

/// `DATABASE_URL` and `REDIS_URL` keep their conventional names; the rest are
/// `TESSERA_` + the upper-cased setting.
fn env_name(setting: &str) -> String {
    match setting {
        "database_url" | "redis_url" => setting.to_uppercase(),
        other => format!("TESSERA_{}", other.to_uppercase()),
    }
}

/// Environment variables with the `TESSERA_` prefix that are not settings.
const ENV_NOT_SETTINGS: &[&str] = &["TESSERA_CONFIG", "TESSERA_LOG"];

/// Raw values by setting name, before validation.
#[derive(Debug, Default)]
struct Layer(HashMap<&'static str, String>);

impl Layer {
    fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        for name in env.keys() {
            let known = SETTINGS.iter().any(|s| env_name(s) == *name)
                || ENV_NOT_SETTINGS.contains(&name.as_str())
                // Test harnesses pass their own variables through the same environment.
                || name.starts_with("TESSERA_TEST_");
            if name.starts_with("TESSERA_") && !known {
                return Err(ConfigError::new(
                    name,
                    "unknown setting (a typo? see README for the list)",
                ));
            }
        }
        let values = SETTINGS
            .iter()
            .filter_map(|s| {
                let value = env.get(&env_name(s)).filter(|v| !v.is_empty())?;
                Some((*s, value.clone()))
            })
            .collect();
        Ok(Self(values))
    }

    fn from_toml(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&file, format!("cannot read: {e}")))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            // toml's message spans several lines with a source excerpt; keep the first.
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_owned();
            ConfigError::new(&file, message)
        })?;
        let mut values = HashMap::new();
        for (key, value) in table {
            let Some(setting) = SETTINGS.iter().find(|s| **s == key) else {
                return Err(ConfigError::new(&file, format!("unknown setting `{key}`")));
            };
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(ConfigError::new(
                        &file,
                        format!("`{key}` must be a string, a number or a boolean"),
                    ));
                }
            };
            values.insert(*setting, value);
        }
        Ok(Self(values))
    }

    /// Values set in `over` replace those in `self`.
    fn overlay(mut self, over: Layer) -> Layer {
        self.0.extend(over.0);
        self
    }

    fn get(&self, setting: &str) -> Option<&str> {
        self.0.get(setting).map(String::as_str)
    }

    /// A duration setting within `[min, max]` seconds.
    fn duration(
        &self,
        setting: &str,
        default: &str,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        let raw = self.get(setting).unwrap_or(default);
        let var = env_name(setting);
        let d = parse_duration(raw).map_err(|p| ConfigError::new(&var, p))?;
        if d.as_secs() < min || d.as_secs() > max {
            return Err(ConfigError::new(
                var,
                format!("`{raw}` is out of range ({min}s to {max}s)"),
            ));
        }
        Ok(d)
    }

    /// A whole-number setting within `[min, max]`.
    /// One of a few words; `expected` says which, for the error.
    fn choice<T: Copy>(
        &self,
        setting: &str,
        default: T,
        words: &[(&str, T)],
        expected: &str,
    ) -> Result<T, ConfigError> {
        let Some(raw) = self.get(setting) else {
            return Ok(default);
        };
        words
            .iter()
            .find(|(word, _)| *word == raw)
            .map(|(_, value)| *value)
            .ok_or_else(|| ConfigError::new(env_name(setting), format!("`{raw}` is {expected}")))
    }

    fn number(&self, setting: &str, default: u32, min: u32, max: u32) -> Result<u32, ConfigError> {
        let Some(raw) = self.get(setting) else {
            return Ok(default);
        };
        raw.parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    env_name(setting),
                    format!("`{raw}` is not a whole number from {min} to {max}"),
                )
            })
    }
}

/// Overrides given on the command line; they win over every other source.
#[derive(Debug, Default, Clone)]
pub struct CliOverrides {
    pub bind: Option<String>,
    pub issuer: Option<String>,
}

/// Where the settings come from, made explicit so tests can supply their own.
pub struct Sources<'a> {
    pub config_file: Option<&'a Path>,
    pub env: HashMap<String, String>,
    pub cli: CliOverrides,
}

impl Settings {
    /// Reads settings from the process environment, `--config`/`TESSERA_CONFIG`
    /// or `./tessera.toml` when present, and the given CLI overrides.
    pub fn load(config_file: Option<&Path>, cli: CliOverrides) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let env_file = env.get("TESSERA_CONFIG").map(PathBuf::from);
        let default_file = Path::new("tessera.toml");
        let file = config_file
            .map(Path::to_path_buf)
            .or(env_file)
            .or_else(|| default_file.exists().then(|| default_file.to_path_buf()));
        Self::from_sources(Sources {
            config_file: file.as_deref(),
            env,
            cli,
        })
    }

    pub fn from_sources(sources: Sources<'_>) -> Result<Self, ConfigError> {
        let mut layer = Layer::default();
        if let Some(path) = sources.config_file {
            layer = layer.overlay(Layer::from_toml(path)?);
        }
        layer = layer.overlay(Layer::from_env(&sources.env)?);
        let cli = [("bind", sources.cli.bind), ("issuer", sources.cli.issuer)];
        layer = layer.overlay(Layer(
            cli.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        ));
        Self::validate(&layer)
    }

    fn validate(layer: &Layer) -> Result<Self, ConfigError> {
        let issuer = parse_issuer(layer.get("issuer").unwrap_or("http://localhost:8080"))?;
        let raw_bind = layer.get("bind").unwrap_or("127.0.0.1:8080");
        let bind: SocketAddr = raw_bind.parse().map_err(|_| {
            ConfigError::new(
                "TESSERA_BIND",
                format!("`{raw_bind}` is not an address:port such as 127.0.0.1:8080"),
            )
        })?;
        let database_url = parse_database_url(
            layer
                .get("database_url")
                .unwrap_or("sqlite://tessera.db?mode=rwc"),
        )?;
        let redis_url = layer.get("redis_url").map(parse_redis_url).transpose()?;
        let cache_prefix = cache_prefix(layer)?;
        let keys_dir = PathBuf::from(layer.get("keys_dir").unwrap_or("keys"));
        if keys_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("TESSERA_KEYS_DIR", "must not be empty"));
        }

        let day = 24 * 3600;
        let access_token_ttl = layer.duration("access_token_ttl", "5m", 1, day)?;
        let id_token_ttl = layer.duration("id_token_ttl", "1h", 1, day)?;
        let refresh_token_ttl = layer.duration("refresh_token_ttl", "30d", 60, 365 * day)?;
        let refresh_token_idle_ttl =
            layer.duration("refresh_token_idle_ttl", "14d", 60, 365 * day)?;
        at_most(
            refresh_token_idle_ttl,
            refresh_token_ttl,
            "TESSERA_REFRESH_TOKEN_IDLE_TTL",
            "TESSERA_REFRESH_TOKEN_TTL",
        )?;
        let refresh_reuse_grace = layer.duration("refresh_reuse_grace", "10s", 0, 300)?;
        let key_rotation_delay = layer.duration("key_rotation_delay", "1h", 0, 30 * day)?;
        let key_refresh_interval = layer.duration("key_refresh_interval", "30s", 0, day)?;
        let jwks_max_age = layer.duration("jwks_max_age", "5m", 0, day)?;
        let session_idle_timeout = layer.duration("session_idle_timeout", "1h", 1, 30 * day)?;
        let session_lifetime = layer.duration("session_lifetime", "12h", 1, 365 * day)?;
        at_most(
            session_idle_timeout,
            session_lifetime,
            "TESSERA_SESSION_IDLE_TIMEOUT",
            "TESSERA_SESSION_LIFETIME",
        )?;
        let login_lockout = layer.duration("login_lockout", "15m", 1, day)?;

        let log_format = layer.choice(
            "log_format",
            LogFormat::Human,
            &[("human", LogFormat::Human), ("json", LogFormat::Json)],
            "neither `human` nor `json`",
        )?;
        let signup = layer.choice(
            "signup",
            true,
            &[
                ("open", true),
                ("true", true),
                ("closed", false),
                ("false", false),
            ],
            "neither `open` nor `closed`",
        )?;
        let registration = layer.choice(
            "registration",
            RegistrationPolicy::InitialAccessToken,
            &[
                ("open", RegistrationPolicy::Open),
                ("token", RegistrationPolicy::InitialAccessToken),
                ("off", RegistrationPolicy::Off),
            ],
            "not `open`, `token` or `off`",
        )?;
        let registration_allow_http_localhost = layer.choice(
            "registration_allow_http_localhost",
            false,
            &[("true", true), ("false", false)],
            "neither `true` nor `false`",
        )?;
        let registration_max_per_ip = layer.number("registration_max_per_ip", 20, 1, 100_000)?;
        let signup_max_per_ip = layer.number("signup_max_per_ip", 20, 1, 100_000)?;
        let client_cache_ttl = layer.duration("client_cache_ttl", "5s", 0, 300)?;
        let audit_retention = layer.duration("audit_retention", "90d", day, 10 * 365 * day)?;
        let trusted_proxies = trusted_proxies(layer)?;
        let pat_max_lifetime = match layer.get("pat_max_lifetime") {
            Some("unlimited") => None,
            _ => Some(layer.duration("pat_max_lifetime", "365d", 3600, 10 * 365 * day)?),
        };
        let mail = mail_settings(layer, &issuer)?;
        let require_verified_email = layer.choice(
            "require_verified_email",
            false,
            &[("true", true), ("false", false)],
            "neither `true` nor `false`",
        )?;
        let workers = layer.number("workers", 0, 0, 1024)? as usize;
        // OWASP: argon2id with m = 19 MiB, t = 2, p = 1 at minimum for new deployments.
        let argon2 = Argon2Settings {
            memory_kib: layer.number("argon2_memory_kib", 19 * 1024, 8, 4 * 1024 * 1024)?,
            iterations: layer.number("argon2_iterations", 2, 1, 64)?,
            parallelism: layer.number("argon2_parallelism", 1, 1, 64)?,
        };
        let default_audience = default_audience(layer, &issuer)?;
        let resources = resources(layer)?;
        let webauthn = webauthn(layer, &issuer)?;
        let login_max_failures = layer.number("login_max_failures", 5, 1, 1000)?;
        let login_max_failures_per_ip =
            layer.number("login_max_failures_per_ip", 50, 1, 100_000)?;

        Ok(Self {
            issuer,
            bind,
            database_url,
            redis_url,
            cache_prefix,
            keys_dir,
            access_token_ttl,
            id_token_ttl,
            refresh_token_ttl,
            refresh_token_idle_ttl,
            refresh_reuse_grace,
            key_rotation_delay,
            key_refresh_interval,
            jwks_max_age,
            log_format,
            workers,
            session_idle_timeout,
            session_lifetime,
            signup,
            argon2,
            login_max_failures,
            login_max_failures_per_ip,
            login_lockout,
            default_audience,
            resources,
            webauthn,
            registration,
            registration_allow_http_localhost,
            registration_max_per_ip,
            signup_max_per_ip,
            client_cache_ttl,
            audit_retention,
            trusted_proxies,
            pat_max_lifetime,
            mail,
            require_verified_email,
        })
    }

    /// The issuer as the exact string clients compare against (no trailing slash).
    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// An absolute URL under the issuer, e.g. `endpoint("/jwks")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer_str(), path)
    }

    pub fn issuer_is_https(&self) -> bool {
        self.issuer.scheme() == "https"
    }

    /// The longest a token signed by one of our keys can stay valid; a retired key is
    /// published at least this long after it stops signing.
    /// `pat_max_lifetime` for `identity::pats`.
    pub fn pat_max_lifetime(&self) -> Option<chrono::Duration> {
        self.pat_max_lifetime
            .map(|d| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
    }

    pub fn longest_signed_token_ttl(&self) -> Duration {
        self.access_token_ttl.max(self.id_token_ttl)
    }
}

/// WebAuthn binds credentials to a domain: the RP id must be the issuer's host or a
/// registrable suffix of it (WebAuthn §5.1.3), and IP addresses cannot be one.
fn webauthn_settings(
    issuer: &Url,
    rp_id: Option<&str>,
    rp_name: Option<&str>,
) -> Result<Option<WebauthnSettings>, ConfigError> {
    let rp_name = rp_name.unwrap_or("Tessera");
    if rp_name.trim().is_empty() || rp_name.chars().count() > 64 {
        return Err(ConfigError::new(
            "TESSERA_WEBAUTHN_RP_NAME",
            "must be 1 to 64 characters",
        ));
    }
    let host = match issuer.host() {
        Some(url::Host::Domain(domain)) => domain.to_ascii_lowercase(),
        _ if rp_id.is_none() => return Ok(None),
        _ => {
            return Err(ConfigError::new(
                "TESSERA_WEBAUTHN_RP_ID",
                "passkeys need an issuer on a domain name, not an IP address",
            ));
        }
    };
    let rp_id = match rp_id {
        None => host,
        Some(id) => {
            let id = id.to_ascii_lowercase();
            let suffix = host == id || host.ends_with(&format!(".{id}"));
            if !suffix || id.starts_with('.') || !id.contains(|c: char| c.is_ascii_alphanumeric()) {
                return Err(ConfigError::new(
                    "TESSERA_WEBAUTHN_RP_ID",
                    format!("`{id}` is neither the issuer's host `{host}` nor a suffix of it"),
                ));
            }
            id
        }
    };
    Ok(Some(WebauthnSettings {
        rp_id,
        rp_name: rp_name.trim().to_owned(),
        ceremony_ttl: Duration::from_secs(300),
    }))
}

/// An idle timeout longer than the lifetime it sits in would never apply.
fn at_most(
    idle: Duration,
    lifetime: Duration,
    idle_name: &'static str,
    lifetime_name: &str,
) -> Result<(), ConfigError> {
    if idle > lifetime {
        return Err(ConfigError::new(
            idle_name,
            format!("must not exceed {lifetime_name}"),
        ));
    }
    Ok(())
}

fn cache_prefix(layer: &Layer) -> Result<String, ConfigError> {
    let prefix = layer.get("cache_prefix").unwrap_or("tessera:");
    if prefix.len() > 64 || prefix.chars().any(char::is_whitespace) {
        return Err(ConfigError::new(
            "TESSERA_CACHE_PREFIX",
            "must be at most 64 characters without spaces",
        ));
    }
    Ok(prefix.to_owned())
}

/// The proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
fn trusted_proxies(layer: &Layer) -> Result<Vec<IpRange>, ConfigError> {
    layer
        .get("trusted_proxies")
        .unwrap_or_default()
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::parse::<IpRange>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| ConfigError::new("TESSERA_TRUSTED_PROXIES", why))
}

/// Passkeys, unless the issuer cannot be a WebAuthn relying party.
fn webauthn(layer: &Layer, issuer: &Url) -> Result<Option<WebauthnSettings>, ConfigError> {
    let ceremony_ttl = layer.duration("passkey_ceremony_ttl", "5m", 1, 3600)?;
    Ok(webauthn_settings(
        issuer,
        layer.get("webauthn_rp_id"),
        layer.get("webauthn_rp_name"),
    )?
    .map(|rp| WebauthnSettings { ceremony_ttl, ..rp }))
}

/// The `aud` of access tokens for no particular API: the issuer unless set.
fn default_audience(layer: &Layer, issuer: &Url) -> Result<String, ConfigError> {
    match layer.get("default_audience") {
        None => Ok(issuer.as_str().trim_end_matches('/').to_owned()),
        Some(aud) if !aud.is_empty() && aud.len() <= 512 && !aud.contains(char::is_whitespace) => {
            Ok(aud.to_owned())
        }
        Some(_) => Err(ConfigError::new(
            "TESSERA_DEFAULT_AUDIENCE",
            "must be a single URI or identifier without spaces",
        )),
    }
}

/// The APIs tokens may be issued for (RFC 8707 §2: absolute URIs without a
/// fragment).
fn resources(layer: &Layer) -> Result<Vec<String>, ConfigError> {
    layer
        .get("resources")
        .unwrap_or_default()
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|item| match Url::parse(item) {
            Ok(url) if url.fragment().is_none() => Ok(item.to_owned()),
            _ => Err(ConfigError::new(
                "TESSERA_RESOURCES",
                format!("`{item}` is not an absolute URI without a fragment"),
            )),
        })
        .collect()
}

fn parse_issuer(raw: &str) -> Result<Url, ConfigError> {
    let bad = |problem: &str| ConfigError::new("TESSERA_ISSUER", format!("`{raw}` {problem}"));
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment (RFC 8414 §2)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => {
            return Err(bad(
                "must use https unless the host is localhost or a loopback address",
            ));
        }
        _ => return Err(bad("must be an https URL")),
    }
    Ok(url)
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_database_url(raw: &str) -> Result<ConnectionUrl, ConfigError> {
    let redacted = ConnectionUrl(raw.to_owned()).redacted();
    let bad = |problem: String| ConfigError::new("DATABASE_URL", problem);
    let url = Url::parse(raw).map_err(|e| bad(format!("`{redacted}` is not a URL ({e})")))?;
    match url.scheme() {
        "sqlite" => {}
        "postgres" | "postgresql" => {
            if url.host_str().is_none_or(str::is_empty) && !raw.contains("host=") {
                return Err(bad(format!("`{redacted}` names no host")));
            }
        }
        other => {
            return Err(bad(format!(
                "unsupported scheme `{other}`: use sqlite://FILE or postgres://…"
            )));
        }
    }
    Ok(ConnectionUrl(raw.to_owned()))
}

fn parse_redis_url(raw: &str) -> Result<ConnectionUrl, ConfigError> {
    let redacted = ConnectionUrl(raw.to_owned()).redacted();
    let url = Url::parse(raw)
        .map_err(|e| ConfigError::new("REDIS_URL", format!("`{redacted}` is not a URL ({e})")))?;
    match url.scheme() {
        "redis" | "rediss" | "redis+unix" | "unix" => Ok(ConnectionUrl(raw.to_owned())),
        other => Err(ConfigError::new(
            "REDIS_URL",
            format!("unsupported scheme `{other}`: use redis://HOST:PORT"),
        )),
    }
}

fn mail_settings(layer: &Layer, issuer: &Url) -> Result<MailSettings, ConfigError> {
    let smtp_url = layer.get("smtp_url").map(parse_smtp_url).transpose()?;
    let from = match layer.get("mail_from") {
        Some(raw) => {
            raw.parse::<lettre::message::Mailbox>().map_err(|e| {
                ConfigError::new(
                    "TESSERA_MAIL_FROM",
                    format!("`{raw}` is not a mailbox such as \"Tessera <id@example.com>\" ({e})"),
                )
            })?;
            raw.to_owned()
        }
        // A domain issuer mails from itself; an IP-address issuer from localhost.
        None => {
            let host = issuer.host_str().unwrap_or("localhost");
            let candidate = format!("Tessera <noreply@{host}>");
            if candidate.parse::<lettre::message::Mailbox>().is_ok() {
                candidate
            } else {
                "Tessera <noreply@localhost>".to_owned()
            }
        }
    };
    let dir = PathBuf::from(layer.get("mail_dir").unwrap_or("mail"));
    if dir.as_os_str().is_empty() {
        return Err(ConfigError::new("TESSERA_MAIL_DIR", "must not be empty"));
    }
    Ok(MailSettings {
        smtp_url,
        from,
        dir,
        poll_interval: layer.duration("job_poll_interval", "5s", 1, 3600)?,
        retry_for: layer.duration("job_retry_for", "24h", 60, 30 * 24 * 3600)?,
        new_device_notice: layer.choice(
            "new_device_notice",
            true,
            &[("true", true), ("false", false)],
            "neither `true` nor `false`",
        )?,
    })
}

/// `smtp://host[:port]` (STARTTLS when offered) or `smtps://user:pass@host[:465]`.
fn parse_smtp_url(raw: &str) -> Result<ConnectionUrl, ConfigError> {
    let redacted = ConnectionUrl(raw.to_owned()).redacted();
    let url = Url::parse(raw).map_err(|e| {
        ConfigError::new(
            "TESSERA_SMTP_URL",
            format!("`{redacted}` is not a URL ({e})"),
        )
    })?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(ConfigError::new(
            "TESSERA_SMTP_URL",
            format!(
                "unsupported scheme `{}`: use smtp://HOST:PORT or smtps://USER:PASS@HOST:465",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(
            "TESSERA_SMTP_URL",
            format!("`{redacted}` names no host"),
        ));
    }
    Ok(ConnectionUrl(raw.to_owned()))
}

/// Parses `90`, `90s`, `15m`, `2h`, `30d`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration such as 90s, 15m, 2h or 30d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{raw}` has an unknown unit (use s, m, h or d)")),
    };
    value
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{raw}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_sources(Sources {
            config_file: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cli: CliOverrides::default(),
        })
    }

    #[test]
    fn defaults_are_the_embedded_development_setup() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.issuer_str(), "http://localhost:8080");
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert!(s.database_url.expose().starts_with("sqlite://tessera.db"));
        assert!(s.redis_url.is_none());
        assert_eq!(s.keys_dir, PathBuf::from("keys"));
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(2_592_000)
        );
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn every_bad_value_names_its_setting() {
        let cases: &[(&str, &str)] = &[
            ("TESSERA_ISSUER", "not a url"),
            ("TESSERA_ISSUER", "http://example.com"),
            ("TESSERA_ISSUER", "https://example.com/?q=1"),
            ("TESSERA_BIND", "localhost"),
            ("DATABASE_URL", "mysql://x/y"),
            ("DATABASE_URL", "::::"),
            ("REDIS_URL", "http://x"),
            ("TESSERA_ACCESS_TOKEN_TTL", "0"),
            ("TESSERA_LOG_FORMAT", "xml"),
            ("TESSERA_WORKERS", "many"),
            ("TESSERA_ISSUR", "https://typo.example"),
        ];
        for (var, value) in cases {
            let err = settings(&[(var, value)]).expect_err(var);
            assert_eq!(&err.setting, var, "{err}");
        }
    }

    #[test]
    fn the_webauthn_rp_id_is_the_issuer_host_or_a_suffix_of_it() {
        let issuer = Url::parse("https://id.example.com").unwrap();
        let rp = |id| webauthn_settings(&issuer, id, None);
        assert_eq!(rp(None).unwrap().unwrap().rp_id, "id.example.com");
        assert_eq!(
            rp(Some("example.com")).unwrap().unwrap().rp_id,
            "example.com"
        );
        assert!(rp(Some("ample.com")).is_err());
        assert!(rp(Some("other.example")).is_err());
        let ip = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(webauthn_settings(&ip, None, None).unwrap(), None);
        assert!(webauthn_settings(&ip, Some("127.0.0.1"), None).is_err());
    }

    #[test]
    fn https_issuer_keeps_its_path_without_trailing_slash() {
        let s = settings(&[("TESSERA_ISSUER", "https://id.example.com/tenant/")]).unwrap();
        assert_eq!(s.issuer_str(), "https://id.example.com/tenant");
        assert_eq!(s.endpoint("/jwks"), "https://id.example.com/tenant/jwks");
        assert!(s.issuer_is_https());
    }

    #[test]
    fn passwords_never_appear_in_debug_output() {
        let s =
            settings(&[("DATABASE_URL", "postgres://app:hunter2@db.internal/tessera")]).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal"));
    }

    #[test]
    fn toml_file_is_overridden_by_env_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\nissuer = \"http://127.0.0.1:9000\"\n",
        )
        .unwrap();
        let s = Settings::from_sources(Sources {
            config_file: Some(&path),
            env: [("TESSERA_BIND".to_owned(), "127.0.0.1:9100".to_owned())].into(),
            cli: CliOverrides::default(),
        })
        .unwrap();
        assert_eq!(s.bind.port(), 9100);
        assert_eq!(s.issuer_str(), "http://127.0.0.1:9000");

        std::fs::write(&path, "bnd = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::from_sources(Sources {
            config_file: Some(&path),
            env: HashMap::new(),
            cli: CliOverrides::default(),
        })
        .unwrap_err();
        assert!(err.problem.contains("bnd"), "{err}");
        assert!(err.setting.ends_with("tessera.toml"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidr_ranges() {
        let range: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(range.contains("10.1.2.3".parse().unwrap()));
        assert!(!range.contains("11.0.0.1".parse().unwrap()));
        assert!(range.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one: IpRange = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.7".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mail_defaults_to_the_file_outbox_and_smtp_urls_are_checked() {
        let s = settings(&[]).unwrap();
        assert!(s.mail.smtp_url.is_none());
        assert_eq!(s.mail.dir, PathBuf::from("mail"));
        assert_eq!(s.mail.from, "Tessera <noreply@localhost>");
        assert!(!s.require_verified_email && s.mail.new_device_notice);

        let s =
            settings(&[("TESSERA_SMTP_URL", "smtps://id:s3cret@mail.example.com:465")]).unwrap();
        let url = s.mail.smtp_url.unwrap();
        assert_eq!(url.expose(), "smtps://id:s3cret@mail.example.com:465");
        assert!(
            !format!("{url:?}").contains("s3cret"),
            "the password never shows"
        );
        for bad in ["http://mail.example.com", "smtp://", "not a url"] {
            let err = settings(&[("TESSERA_SMTP_URL", bad)]).unwrap_err();
            assert_eq!(err.setting, "TESSERA_SMTP_URL", "{bad}: {err}");
        }
        let err = settings(&[
            ("TESSERA_SMTP_URL", "smtp://u:hunter2@x:25/?bad=%zz"),
            ("TESSERA_MAIL_FROM", "<<"),
        ])
        .unwrap_err();
        assert_eq!(err.setting, "TESSERA_MAIL_FROM");
        assert!(!err.to_string().contains("hunter2"));
        let s = settings(&[("TESSERA_MAIL_FROM", "Tessera <id@example.com>")]).unwrap();
        assert_eq!(s.mail.from, "Tessera <id@example.com>");
        assert!(settings(&[("TESSERA_JOB_POLL_INTERVAL", "0")]).is_err());
        assert!(settings(&[("TESSERA_REQUIRE_VERIFIED_EMAIL", "yes")]).is_err());
    }
}
