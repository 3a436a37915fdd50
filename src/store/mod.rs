//! Durable storage (sea-orm, SQLite or PostgreSQL) and the short-lived cache.

pub mod cache;
pub mod clients;
pub mod entities;

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use tessera_migrations::{Migrator, MigratorTrait};

use crate::config::ConnectionUrl;

/// Bounds how long a request may wait for a pooled connection, so an unreachable
/// database turns into an error instead of a hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: DbErr },
    #[error("migration failed: {0}")]
    Migrate(DbErr),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("cannot create the database file {path}: {reason}")]
    File { path: String, reason: String },
}

/// How long a pooled connection may sit unused before it is pinged on checkout.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Opens the connection pool; SQLite files are created when missing.
pub async fn connect(url: &ConnectionUrl) -> Result<DatabaseConnection, StoreError> {
    let raw = url.expose();
    let is_sqlite = raw.starts_with("sqlite:");
    let raw = if is_sqlite && !raw.contains("mode=") {
        // Create the file on first start, as the embedded default promises.
        let sep = if raw.contains('?') { '&' } else { '?' };
        format!("{raw}{sep}mode=rwc")
    } else {
        without_tls_on_loopback(raw)
    };
    if is_sqlite {
        create_private_file(&raw)?;
    }
    let mut options = ConnectOptions::new(raw);
    options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_timeout(ACQUIRE_TIMEOUT)
        // sqlx pings every connection it hands out by default: one more round trip
        // per query outside a transaction (a refresh made seven instead of five).
        // A connection in steady use has just proven itself; only one that sat idle
        // long enough for the server or a middlebox to drop it is pinged first.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        .sqlx_logging(false);
    if is_sqlite {
        // SQLite allows one writer; a small pool avoids lock convoys.
        options.max_connections(4).min_connections(1);
        // WAL lets readers run beside the writer; with WAL, `synchronous = NORMAL`
        // cannot corrupt the file (a power cut may lose the last commits, never
        // mix them) and spares an fsync per commit — the cost of every refresh.
        // Waiting on the write lock stays inside the acquire timeout.
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(ACQUIRE_TIMEOUT)
        });
    } else {
        options.max_connections(16).min_connections(1);
    }
    Database::connect(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: url.redacted(),
            source,
        })
}

/// The file a SQLite URL names (`sqlite://tessera.db?…`, `sqlite:///abs/path`);
/// `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

/// Creates a missing SQLite file readable by its owner only: it holds password
/// hashes and token digests. SQLite gives its `-wal` and `-shm` files the
/// database file's permissions, so they follow.
fn create_private_file(url: &str) -> Result<(), StoreError> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// A PostgreSQL URL for this host (`127.0.0.0/8`, `::1`, `localhost`) that names
/// no `sslmode` gets `sslmode=disable`. The driver's default, `prefer`, negotiates
/// TLS on loopback too, where it protects nothing a local attacker could not read
/// from either process anyway, and costs ≈ 1.7 MiB per pooled connection (each
/// loads the system CA bundle: 27 MiB of a full pool) and ≈ 15 % of the server's
/// CPU on database-bound requests (docs/PERFORMANCE.md). An explicit `sslmode`
/// is always kept.
fn without_tls_on_loopback(raw: &str) -> String {
    let Ok(url) = url::Url::parse(raw) else {
        return raw.to_owned();
    };
    let postgres = matches!(url.scheme(), "postgres" | "postgresql");
    let loopback = match url.host() {
        // `postgres:` is not a special scheme to the url crate: an IPv4 host
        // arrives as an opaque name.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !postgres || !loopback || url.query_pairs().any(|(k, _)| k == "sslmode") {
        return raw.to_owned();
    }
    let sep = if url.query().is_some() { '&' } else { '?' };
    format!("{raw}{sep}sslmode=disable")
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    Migrator::up(db, None).await.map_err(StoreError::Migrate)
}

#[cfg(test)]
mod tests {
    use super::without_tls_on_loopback;

    #[test]
    fn sqlite_urls_name_their_file() {
        use super::sqlite_file;
        assert_eq!(
            sqlite_file("sqlite://tessera.db?mode=rwc"),
            Some("tessera.db".into())
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/t.db"),
            Some("/var/lib/t.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://db/x"), None);
    }

    #[test]
    fn loopback_postgres_connects_without_tls_unless_told_otherwise() {
        let disabled = [
            (
                "postgres://u@127.0.0.1:5432/db",
                "postgres://u@127.0.0.1:5432/db?sslmode=disable",
            ),
            (
                "postgresql://u@localhost/db?application_name=t",
                "postgresql://u@localhost/db?application_name=t&sslmode=disable",
            ),
            (
                "postgres://u@[::1]/db",
                "postgres://u@[::1]/db?sslmode=disable",
            ),
        ];
        for (given, used) in disabled {
            assert_eq!(without_tls_on_loopback(given), used);
        }
        for kept in [
            "postgres://u@db.example.com/db",
            "postgres://u@10.0.0.5/db",
            "postgres://u@127.0.0.1/db?sslmode=require",
            "postgres://u@localhost/db?sslmode=prefer",
            "sqlite://tessera.db?mode=rwc",
            "not a url",
        ] {
            assert_eq!(without_tls_on_loopback(kept), kept);
        }
    }
}
