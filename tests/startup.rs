//! The binary as operators run it: bad settings stop start-up with one clear line
//! and a non-zero exit; the CLI commands work; SIGTERM shuts down cleanly.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera args…` in `dir` with exactly `env` (plus PATH, and a free port
/// unless `env` names one), nothing inherited.
fn tessera(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA_BIND", "127.0.0.1:0")
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera");
    wait_with_timeout(child, Duration::from_secs(30))
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("tessera did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `tessera serve` in `dir` on its embedded defaults (plus `env`) on a free
/// loopback port, with stdout and stderr captured; the child and its address.
fn serve_in(dir: &Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .env("TESSERA_BIND", &bind)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, bind)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Start-up failed with exactly one line on stderr, starting with the setting's name.
fn assert_fails_naming(out: &Output, setting: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success: {err}"
    );
    assert!(!err.contains("panicked"), "panicked: {err}");
    let lines: Vec<_> = err.lines().filter(|l| l.starts_with("tessera: ")).collect();
    assert_eq!(lines.len(), 1, "expected one error line in: {err}");
    assert!(
        lines[0].starts_with(&format!("tessera: {setting}: ")),
        "expected the line to name {setting}: {err}"
    );
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("t.db").display())
}

#[test]
fn an_unparseable_database_url_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path(), &[("DATABASE_URL", "postgres//no-colon")], &[]);
    assert_fails_naming(&out, "DATABASE_URL");
}

#[test]
fn a_database_that_cannot_be_opened_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/missing/dir/t.db", dir.path().display());
    let out = tessera(dir.path(), &[("DATABASE_URL", &url)], &[]);
    assert_fails_naming(&out, "DATABASE_URL");
}

#[test]
fn an_unreachable_redis_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let out = tessera(
        dir.path(),
        &[("DATABASE_URL", &db), ("REDIS_URL", "redis://127.0.0.1:1")],
        &[],
    );
    assert_fails_naming(&out, "REDIS_URL");
}

#[test]
fn a_redis_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let out = tessera(
        dir.path(),
        &[
            ("DATABASE_URL", &db),
            ("REDIS_URL", "redis://:hunter2@127.0.0.1:1"),
        ],
        &[],
    );
    assert_fails_naming(&out, "REDIS_URL");
    assert!(!stderr(&out).contains("hunter2"));
}

#[test]
fn an_unreadable_key_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let env = [("DATABASE_URL", db.as_str())];
    let out = tessera(dir.path(), &env, &["keys", "rotate", "--delay", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
    let out = tessera(dir.path(), &env, &[]);
    assert_fails_naming(&out, "TESSERA_KEYS_DIR");
    assert!(stderr(&out).contains(key.file_name().unwrap().to_str().unwrap()));

    std::fs::remove_file(&key).unwrap();
    let out = tessera(dir.path(), &env, &[]);
    assert_fails_naming(&out, "TESSERA_KEYS_DIR");
}

#[test]
fn a_keys_dir_that_is_a_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    std::fs::write(dir.path().join("not-a-dir"), "x").unwrap();
    let out = tessera(
        dir.path(),
        &[("DATABASE_URL", &db), ("TESSERA_KEYS_DIR", "not-a-dir")],
        &[],
    );
    assert_fails_naming(&out, "TESSERA_KEYS_DIR");
}

#[test]
fn bad_settings_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("TESSERA_ISSUER", "http://public.example.com"),
        ("TESSERA_BIND", "everywhere"),
        ("TESSERA_ACCESS_TOKEN_TTL", "ten minutes"),
        ("TESSERA_LOG_FORMAT", "yaml"),
        ("TESSERA_ISSUEER", "https://typo.example.com"),
    ] {
        let out = tessera(dir.path(), &[(var, value)], &[]);
        assert_fails_naming(&out, var);
    }
}

#[test]
fn an_unknown_key_in_the_settings_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tessera.toml"), "isuer = \"https://x\"\n").unwrap();
    let out = tessera(dir.path(), &[], &[]);
    assert_fails_naming(&out, "tessera.toml");
    assert!(stderr(&out).contains("isuer"));
}

#[test]
fn a_port_in_use_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tessera(dir.path(), &[("TESSERA_BIND", &addr)], &[]);
    assert_fails_naming(&out, "TESSERA_BIND");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["keys", "--help"],
        &["keys", "list", "--help"],
        &["keys", "rotate", "--help"],
    ] {
        let out = tessera(dir.path(), &[], args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}

#[test]
fn migrate_is_idempotent_and_keys_rotate_shows_in_keys_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let env = [("DATABASE_URL", db.as_str())];
    for _ in 0..2 {
        let out = tessera(dir.path(), &env, &["migrate"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = tessera(
        dir.path(),
        &env,
        &["keys", "rotate", "--alg", "ES256", "--delay", "1h"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tessera(dir.path(), &env, &["keys", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["status"], "pending");
    let kid = keys[0]["kid"].as_str().unwrap();
    assert!(dir.path().join("keys").join(format!("{kid}.pem")).exists());

    let bad = tessera(dir.path(), &env, &["keys", "rotate", "--alg", "HS256"]);
    assert!(!bad.status.success());
}

#[test]
fn the_server_starts_on_embedded_defaults_logs_json_lines_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A keys directory someone made open to all (issue 18 §6): tightened at start.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::set_permissions(
            dir.path().join("keys"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let (child, bind) = serve_in(dir.path(), &[("TESSERA_LOG_FORMAT", "json")]);
    let pid = child.id().to_string();

    let started = Instant::now();
    let ready = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&bind) {
            use std::io::{Read, Write};
            s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").unwrap();
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            break reply;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    // The embedded defaults: a SQLite file and generated keys in the working directory.
    assert!(dir.path().join("tessera.db").exists());
    // Two signing keys (ES256, RS256) and the secrets key.
    assert_eq!(
        std::fs::read_dir(dir.path().join("keys")).unwrap().count(),
        3
    );
    // Password hashes and token digests: the owner's alone (issue 18 §6).
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        assert_eq!(mode("tessera.db"), Some(0o600));
        for companion in ["tessera.db-wal", "tessera.db-shm"] {
            assert!(
                mode(companion).is_none_or(|m| m & 0o077 == 0),
                "{companion}: {:o}",
                mode(companion).unwrap_or_default()
            );
        }
        assert_eq!(mode("keys"), Some(0o700));
    }

    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let out = wait_with_timeout(child, Duration::from_secs(15));
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );

    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "Tessera is listening"));
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "keys directory was open to others: tightened to 700")
    );
    assert!(lines.iter().any(|l| l["message"] == "Tessera stopped"));
}

/// Issue 18 §4 and §6: the log names the route pattern, never a path that carries
/// a secret (an invitation token here), and has no colour codes when stderr is
/// not a terminal.
#[test]
fn logs_name_route_patterns_not_secret_paths_and_are_plain_text_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (child, bind) = serve_in(dir.path(), &[]);
    let pid = child.id().to_string();
    let secret = "s3cretInvitationToken0123456789abcdefghijk";
    let get = |path: &str| -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&bind).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .ok()?;
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        Some(reply)
    };
    let started = Instant::now();
    while get("/readyz").is_none_or(|r| !r.starts_with("HTTP/1.0 200")) {
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = get(&format!("/invitations/{secret}")).unwrap();
    assert!(reply.starts_with("HTTP/1.0 303"), "{reply}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = wait_with_timeout(child, Duration::from_secs(15));
    let log = stderr(&out);
    assert!(log.contains("/invitations/{token}"), "{log}");
    assert!(!log.contains(secret), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log}"
    );
}

/// Issue 18 §4: emails are compared without case. A database an older release
/// left with two accounts that differ only by case does not start: the
/// migration names them instead of merging them silently.
#[tokio::test]
async fn accounts_that_differ_only_by_case_stop_the_migration_naming_them() {
    use sea_orm::{EntityTrait, Set};
    use tessera_migrations::MigratorTrait;
    let backing = common::Backing::new().await;
    let db = sea_orm::Database::connect(&backing.database_url)
        .await
        .unwrap();
    // The schema as the release before this step left it.
    tessera_migrations::Migrator::up(&db, Some(9))
        .await
        .unwrap();
    for email in ["Alice@example.com", "alice@example.com", "Bob@Example.com"] {
        let now = chrono::Utc::now();
        let row = tessera::store::entities::user::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            email: Set(email.to_owned()),
            password_hash: Set(None),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            // Columns of later schema versions stay unset (and unread: no RETURNING).
            ..Default::default()
        };
        tessera::store::entities::user::Entity::insert(row)
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    let env = [("DATABASE_URL", backing.database_url.as_str())];
    let out = tessera(backing.path(), &env, &["migrate"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Alice@example.com = alice@example.com"),
        "{err}"
    );
    assert!(!err.contains("Bob"), "{err}");

    // Renamed by the operator, the same database migrates and Bob's address
    // is now in its canonical form.
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("DELETE FROM \"user\" WHERE email = 'Alice@example.com'")
        .await
        .unwrap();
    let out = tessera(backing.path(), &env, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bob = tessera::identity::users::find_by_email(&db, "BOB@example.com")
        .await
        .unwrap()
        .expect("found without case");
    assert_eq!(bob.email, "bob@example.com");
}
