//! Settings: embedded defaults, then an optional `tessera.toml`, then `TESSERA_*`
//! environment variables (plus `DATABASE_URL` and `REDIS_URL`), then CLI flags.
//! Everything is validated once at start; a bad value is a [`ConfigError`] that
//! names the setting, never a panic.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
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
    pub refresh_token_ttl: Duration,
    /// How long a rotated-in key is published before it signs anything.
    pub key_rotation_delay: Duration,
    /// How often each instance re-reads key metadata from the database.
    pub key_refresh_interval: Duration,
    /// `max-age` of the JWKS and discovery documents.
    pub jwks_max_age: Duration,
    pub log_format: LogFormat,
    /// Number of HTTP worker threads; 0 means one per core.
    pub workers: usize,
}

/// The raw, all-optional shape shared by the TOML file and the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    issuer: Option<String>,
    bind: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    cache_prefix: Option<String>,
    keys_dir: Option<String>,
    access_token_ttl: Option<String>,
    id_token_ttl: Option<String>,
    refresh_token_ttl: Option<String>,
    key_rotation_delay: Option<String>,
    key_refresh_interval: Option<String>,
    jwks_max_age: Option<String>,
    log_format: Option<String>,
    workers: Option<String>,
}

/// (setting in TOML, environment variable) for every field of [`Layer`].
const ENV_NAMES: &[(&str, &str)] = &[
    ("issuer", "TESSERA_ISSUER"),
    ("bind", "TESSERA_BIND"),
    ("database_url", "DATABASE_URL"),
    ("redis_url", "REDIS_URL"),
    ("cache_prefix", "TESSERA_CACHE_PREFIX"),
    ("keys_dir", "TESSERA_KEYS_DIR"),
    ("access_token_ttl", "TESSERA_ACCESS_TOKEN_TTL"),
    ("id_token_ttl", "TESSERA_ID_TOKEN_TTL"),
    ("refresh_token_ttl", "TESSERA_REFRESH_TOKEN_TTL"),
    ("key_rotation_delay", "TESSERA_KEY_ROTATION_DELAY"),
    ("key_refresh_interval", "TESSERA_KEY_REFRESH_INTERVAL"),
    ("jwks_max_age", "TESSERA_JWKS_MAX_AGE"),
    ("log_format", "TESSERA_LOG_FORMAT"),
    ("workers", "TESSERA_WORKERS"),
];

/// Environment variables with the `TESSERA_` prefix that are not settings.
const ENV_NOT_SETTINGS: &[&str] = &["TESSERA_CONFIG", "TESSERA_LOG"];

impl Layer {
    fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        for name in env.keys() {
            let known = ENV_NAMES.iter().any(|(_, var)| var == name)
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
        let pick = |var: &str| env.get(var).filter(|v| !v.is_empty()).cloned();
        Ok(Self {
            issuer: pick("TESSERA_ISSUER"),
            bind: pick("TESSERA_BIND"),
            database_url: pick("DATABASE_URL"),
            redis_url: pick("REDIS_URL"),
            cache_prefix: pick("TESSERA_CACHE_PREFIX"),
            keys_dir: pick("TESSERA_KEYS_DIR"),
            access_token_ttl: pick("TESSERA_ACCESS_TOKEN_TTL"),
            id_token_ttl: pick("TESSERA_ID_TOKEN_TTL"),
            refresh_token_ttl: pick("TESSERA_REFRESH_TOKEN_TTL"),
            key_rotation_delay: pick("TESSERA_KEY_ROTATION_DELAY"),
            key_refresh_interval: pick("TESSERA_KEY_REFRESH_INTERVAL"),
            jwks_max_age: pick("TESSERA_JWKS_MAX_AGE"),
            log_format: pick("TESSERA_LOG_FORMAT"),
            workers: pick("TESSERA_WORKERS"),
        })
    }

    fn from_toml(path: &Path) -> Result<Self, ConfigError> {
        let setting = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&setting, format!("cannot read: {e}")))?;
        toml::from_str(&text).map_err(|e| {
            // toml's message spans several lines with a source excerpt; keep the first.
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_owned();
            ConfigError::new(setting, message)
        })
    }

    /// Fields set in `over` replace those in `self`.
    fn overlay(self, over: Layer) -> Layer {
        Layer {
            issuer: over.issuer.or(self.issuer),
            bind: over.bind.or(self.bind),
            database_url: over.database_url.or(self.database_url),
            redis_url: over.redis_url.or(self.redis_url),
            cache_prefix: over.cache_prefix.or(self.cache_prefix),
            keys_dir: over.keys_dir.or(self.keys_dir),
            access_token_ttl: over.access_token_ttl.or(self.access_token_ttl),
            id_token_ttl: over.id_token_ttl.or(self.id_token_ttl),
            refresh_token_ttl: over.refresh_token_ttl.or(self.refresh_token_ttl),
            key_rotation_delay: over.key_rotation_delay.or(self.key_rotation_delay),
            key_refresh_interval: over.key_refresh_interval.or(self.key_refresh_interval),
            jwks_max_age: over.jwks_max_age.or(self.jwks_max_age),
            log_format: over.log_format.or(self.log_format),
            workers: over.workers.or(self.workers),
        }
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
        layer = layer.overlay(Layer {
            bind: sources.cli.bind,
            issuer: sources.cli.issuer,
            ..Layer::default()
        });
        Self::validate(layer)
    }

    fn validate(layer: Layer) -> Result<Self, ConfigError> {
        let issuer = parse_issuer(layer.issuer.as_deref().unwrap_or("http://localhost:8080"))?;
        let bind = layer.bind.as_deref().unwrap_or("127.0.0.1:8080");
        let bind: SocketAddr = bind.parse().map_err(|_| {
            ConfigError::new(
                "TESSERA_BIND",
                format!("`{bind}` is not an address:port such as 127.0.0.1:8080"),
            )
        })?;
        let database_url = parse_database_url(
            layer
                .database_url
                .as_deref()
                .unwrap_or("sqlite://tessera.db?mode=rwc"),
        )?;
        let redis_url = layer
            .redis_url
            .as_deref()
            .map(parse_redis_url)
            .transpose()?;
        let cache_prefix = layer.cache_prefix.unwrap_or_else(|| "tessera:".to_owned());
        if cache_prefix.len() > 64 || cache_prefix.chars().any(|c| c.is_whitespace()) {
            return Err(ConfigError::new(
                "TESSERA_CACHE_PREFIX",
                "must be at most 64 characters without spaces",
            ));
        }
        let keys_dir = PathBuf::from(layer.keys_dir.unwrap_or_else(|| "keys".to_owned()));
        if keys_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("TESSERA_KEYS_DIR", "must not be empty"));
        }

        let ttl = |value: Option<String>, var: &str, default: &str, min: u64, max: u64| {
            let raw = value.unwrap_or_else(|| default.to_owned());
            let d = parse_duration(&raw).map_err(|p| ConfigError::new(var, p))?;
            if d.as_secs() < min || d.as_secs() > max {
                return Err(ConfigError::new(
                    var,
                    format!("`{raw}` is out of range ({min}s to {max}s)"),
                ));
            }
            Ok(d)
        };
        let day = 24 * 3600;
        let access_token_ttl = ttl(
            layer.access_token_ttl,
            "TESSERA_ACCESS_TOKEN_TTL",
            "10m",
            1,
            day,
        )?;
        let id_token_ttl = ttl(layer.id_token_ttl, "TESSERA_ID_TOKEN_TTL", "1h", 1, day)?;
        let refresh_token_ttl = ttl(
            layer.refresh_token_ttl,
            "TESSERA_REFRESH_TOKEN_TTL",
            "30d",
            60,
            365 * day,
        )?;
        let key_rotation_delay = ttl(
            layer.key_rotation_delay,
            "TESSERA_KEY_ROTATION_DELAY",
            "1h",
            0,
            30 * day,
        )?;
        let key_refresh_interval = ttl(
            layer.key_refresh_interval,
            "TESSERA_KEY_REFRESH_INTERVAL",
            "30s",
            0,
            day,
        )?;
        let jwks_max_age = ttl(layer.jwks_max_age, "TESSERA_JWKS_MAX_AGE", "5m", 0, day)?;

        let log_format = match layer.log_format.as_deref().unwrap_or("human") {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "TESSERA_LOG_FORMAT",
                    format!("`{other}` is neither `human` nor `json`"),
                ));
            }
        };
        let workers = match layer.workers.as_deref() {
            None => 0,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 1024)
                .ok_or_else(|| {
                    ConfigError::new(
                        "TESSERA_WORKERS",
                        format!("`{raw}` is not a number from 0 (one per core) to 1024"),
                    )
                })?,
        };

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
            key_rotation_delay,
            key_refresh_interval,
            jwks_max_age,
            log_format,
            workers,
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
    pub fn longest_signed_token_ttl(&self) -> Duration {
        self.access_token_ttl.max(self.id_token_ttl)
    }
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
    }
}
