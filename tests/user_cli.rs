//! `tessera user …` against the database a running server uses.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Browser, PASSWORD};
use sea_orm::EntityTrait;
use tessera::store::entities::session;

/// Runs the binary with the server's own storage settings.
fn tessera(app: &common::TestApp, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &app.env {
        if k.starts_with("TESSERA_ARGON2")
            || k == "DATABASE_URL"
            || k == "REDIS_URL"
            || k == "TESSERA_CACHE_PREFIX"
        {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_and_the_account_can_sign_in() {
    let app = common::spawn_app().await;
    let out = tessera(
        &app,
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("created ops@example.com"));
    assert_eq!(
        Browser::new(&app)
            .sign_in("ops@example.com", PASSWORD)
            .await
            .status,
        303
    );

    // The password never goes on the command line.
    let out = tessera(
        &app,
        &[
            "user",
            "create",
            "--email",
            "x@example.com",
            "--password",
            PASSWORD,
        ],
        "",
    );
    assert!(!out.status.success());
}

#[tokio::test]
async fn user_create_refuses_a_taken_email_and_a_weak_password() {
    let app = common::spawn_app().await;
    let ok = tessera(
        &app,
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(ok.status.success());
    for (email, password, message) in [
        ("ops@example.com", PASSWORD, "already exists"),
        ("new@example.com", "short", "at least 12"),
        ("not-an-email", PASSWORD, "email address"),
    ] {
        let out = tessera(
            &app,
            &["user", "create", "--email", email, "--password-stdin"],
            password,
        );
        assert!(!out.status.success(), "{email}");
        let err = text(&out.stderr);
        assert!(err.contains(message), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[tokio::test]
async fn user_list_shows_accounts_as_json() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let out = tessera(&app, &["user", "list", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["email"], "ada@example.com");
    assert_eq!(list[0]["disabled"], false);
    assert!(list[0].get("password_hash").is_none());
}

#[tokio::test]
async fn user_disable_ends_sessions_and_refuses_sign_in_until_enabled() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let out = tessera(&app, &["user", "disable", "--email", "ada@example.com"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ended 1 session"));
    assert!(
        session::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .is_empty()
    );
    if app.state.cache.kind() == "redis" {
        // The shared cache lost its copy too: the session is gone at once.
        assert!(!browser.is_signed_in().await);
    }
    let refused = Browser::new(&app)
        .sign_in("ada@example.com", PASSWORD)
        .await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("disabled"));

    let out = tessera(&app, &["user", "enable", "--email", "ada@example.com"], "");
    assert!(out.status.success());
    assert_eq!(
        Browser::new(&app)
            .sign_in("ada@example.com", PASSWORD)
            .await
            .status,
        303
    );

    let out = tessera(
        &app,
        &["user", "disable", "--email", "nobody@example.com"],
        "",
    );
    assert!(!out.status.success());
}

/// Issue 18 §2: disabling an account reaches every token it backs, and enabling
/// it again brings none back.
#[tokio::test]
async fn user_disable_revokes_refresh_tokens_and_its_access_tokens_stop_working() {
    let app = common::spawn_app().await;
    let (_browser, client, tokens) = common::oauth::signed_in_with_refresh_token(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let out = tessera(&app, &["user", "disable", "--email", "ada@example.com"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("revoked 1 refresh token"),
        "{}",
        text(&out.stdout)
    );

    let (status, body) = common::oauth::refresh(&app, &client, refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        common::oauth::introspect(&app, &client, access).await,
        serde_json::json!({ "active": false })
    );
    assert_eq!(common::oauth::userinfo_status(&app, access).await, 401);

    // Enabled again: the person signs in anew; the old grant stays dead.
    let out = tessera(&app, &["user", "enable", "--email", "ada@example.com"], "");
    assert!(out.status.success());
    let (status, _) = common::oauth::refresh(&app, &client, refresh).await;
    assert_eq!(status, 400);
}
