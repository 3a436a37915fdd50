//! "Forgot password?" (issue 21): a mailed single-use link sets a new password,
//! ends every session and refresh token of the account, verifies the address
//! and signs the person in; the request page tells nobody whether an account
//! exists.

mod common;

use chrono::Utc;
use common::oauth::{refresh, signed_in_with_refresh_token};
use common::{Browser, PASSWORD, smtp};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use tessera::store::entities::{user, user_token};

const SUBJECT: &str = "Reset your password";
const NEW_PASSWORD: &str = "violet giraffes sing loudly";

/// Asks for a reset link for `email` in `browser`, from the sign-in page's link.
async fn forgot(browser: &Browser, email: &str) -> common::Page {
    let login = browser.get("/login").await;
    assert!(login.body.contains("href=\"/password/forgot\""));
    assert!(login.body.contains("Forgot password?"));
    browser
        .submit("/password/forgot", "/password/forgot", &[("email", email)])
        .await
}

fn reset_path(link: &str, app: &common::TestApp) -> String {
    link.strip_prefix(&app.base).unwrap().to_owned()
}

async fn set_password(browser: &Browser, path: &str, password: &str) -> common::Page {
    let form = browser.get(path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    browser
        .post(path, &[("csrf", &form.csrf()), ("new_password", password)])
        .await
}

#[tokio::test]
async fn a_mailed_link_sets_a_new_password_ends_everything_else_and_signs_in() {
    let Some(smtp) = smtp::start().await else {
        return;
    };
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SMTP_URL".into(), smtp.url());
    })
    .await;
    // Ada is signed in on one browser, and an app holds her refresh token.
    let (elsewhere, client, tokens) = signed_in_with_refresh_token(&app).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    let browser = Browser::new(&app);
    let asked = forgot(&browser, "Ada@Example.com").await;
    assert_eq!(asked.status, 200);
    assert!(
        asked
            .body
            .contains("If an account exists for that address, we sent a link")
    );
    let message = smtp.message_to("ada@example.com", SUBJECT).await;
    let link = message.link(&app.url("/password/reset/"));

    let form = browser.get(&reset_path(&link, &app)).await;
    assert!(form.body.contains("New password"));
    assert!(form.body.contains("Set new password"));
    let done = set_password(&browser, &reset_path(&link, &app), NEW_PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/account"));
    let account = browser.get("/account").await;
    assert_eq!(account.status, 200, "this browser is signed in");
    assert!(
        !account.body.contains("Email not verified"),
        "the link proved the address"
    );

    assert!(!elsewhere.is_signed_in().await, "every other session ended");
    let (status, body) = refresh(&app, &client, refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let fresh = Browser::new(&app);
    assert_eq!(fresh.sign_in("ada@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        fresh.sign_in("ada@example.com", NEW_PASSWORD).await.status,
        303
    );
    // Used once: the link is spent.
    assert_eq!(browser.get(&reset_path(&link, &app)).await.status, 400);
    let notice = smtp
        .message_to("ada@example.com", "Your password was reset")
        .await;
    assert!(notice.text().contains("every other session was signed out"));
}

#[tokio::test]
async fn the_answer_is_the_same_whether_or_not_an_account_exists() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    let known = forgot(&browser, "ada@example.com").await;
    let unknown = forgot(&browser, "nobody@example.com").await;
    assert_eq!(known.status, unknown.status);
    let strip = |body: &str| {
        body.replace("ada@example.com", "")
            .replace("nobody@example.com", "")
    };
    assert_eq!(strip(&known.body), strip(&unknown.body));
    smtp::outbox_message(&app, "ada@example.com", SUBJECT).await;
    assert_eq!(smtp::outbox_count(&app, "nobody@example.com"), 0);
}

#[tokio::test]
async fn a_reset_link_works_once_for_thirty_minutes_and_a_newer_one_voids_it() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    forgot(&browser, "ada@example.com").await;
    let first = smtp::outbox_message(&app, "ada@example.com", SUBJECT)
        .await
        .link(&app.url("/password/reset/"));
    forgot(&browser, "ada@example.com").await;
    let second = loop {
        let links: Vec<String> = smtp::outbox(std::path::Path::new(&app.env["TESSERA_MAIL_DIR"]))
            .iter()
            .filter(|m| m.subject() == SUBJECT)
            .map(|m| m.link(&app.url("/password/reset/")))
            .filter(|l| *l != first)
            .collect();
        if let Some(link) = links.into_iter().next() {
            break link;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let voided = browser.get(&reset_path(&first, &app)).await;
    assert_eq!(voided.status, 400);
    assert!(voided.body.contains("This link cannot be used"));
    assert_eq!(browser.get(&reset_path(&second, &app)).await.status, 200);
    // Thirty minutes and a second later.
    user_token::Entity::update_many()
        .col_expr(
            user_token::Column::ExpiresAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(browser.get(&reset_path(&second, &app)).await.status, 400);
    let late = browser
        .post(
            &reset_path(&second, &app),
            &[
                ("csrf", &browser.get("/password/forgot").await.csrf()),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(late.status, 400);
    assert_eq!(
        Browser::new(&app)
            .sign_in("ada@example.com", PASSWORD)
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn a_refused_new_password_leaves_the_link_usable() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    forgot(&browser, "ada@example.com").await;
    let link = smtp::outbox_message(&app, "ada@example.com", SUBJECT)
        .await
        .link(&app.url("/password/reset/"));
    let weak = set_password(&browser, &reset_path(&link, &app), "short").await;
    assert_eq!(weak.status, 400);
    assert!(weak.body.contains("Use at least 12 characters."));
    assert!(weak.body.contains("Set new password"));
    let done = set_password(&browser, &reset_path(&link, &app), NEW_PASSWORD).await;
    assert_eq!(done.status, 303);
}

#[tokio::test]
async fn a_passkey_only_account_is_told_so_and_may_set_a_password() {
    let app = common::spawn_app().await;
    let now = Utc::now();
    user::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        email: Set("keys@example.com".into()),
        password_hash: Set(None),
        disabled: Set(false),
        email_verified_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        is_admin: Set(false),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let browser = Browser::new(&app);
    forgot(&browser, "keys@example.com").await;
    let message = smtp::outbox_message(&app, "keys@example.com", SUBJECT).await;
    assert!(
        message.text().contains("It has no password"),
        "{}",
        message.text()
    );
    assert!(message.text().contains("Set a password"));
    let link = message.link(&app.url("/password/reset/"));
    assert_eq!(
        set_password(&browser, &reset_path(&link, &app), NEW_PASSWORD)
            .await
            .status,
        303
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("keys@example.com", NEW_PASSWORD)
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn reset_requests_are_limited_per_address() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(forgot(&browser, "ada@example.com").await.status, 200);
    }
    let refused = forgot(&browser, "ADA@example.com").await;
    assert_eq!(refused.status, 429);
    assert!(refused.headers.contains_key("retry-after"));
    // Another address is not held back by this one's limit.
    assert_eq!(forgot(&browser, "grace@example.com").await.status, 200);
    assert_eq!(forgot(&browser, "not an address").await.status, 400);
}
