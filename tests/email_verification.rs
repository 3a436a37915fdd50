//! Verified addresses (issue 21): sign-up mails a single-use link through the
//! job queue, following it verifies the address, and `email_verified` says so.

mod common;

use chrono::Utc;
use common::oauth::{code_with_scope, exchange, new_client, pkce, register};
use common::{Browser, PASSWORD, smtp};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tessera::store::entities::{job, user, user_token};

const SUBJECT: &str = "Verify your email address";

async fn userinfo(app: &common::TestApp, token: &str) -> serde_json::Value {
    app.client
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A first-party client's access token for `openid email`, for the browser's person.
async fn email_token(app: &common::TestApp, browser: &Browser) -> String {
    let mut new = new_client();
    new.first_party = true;
    let client = register(app, new).await;
    let (verifier, challenge) = pkce();
    let code = code_with_scope(browser, &client.id, &challenge, "openid email").await;
    let tokens: serde_json::Value = exchange(app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_up_mails_a_link_through_smtp_that_verifies_the_address() {
    let Some(smtp) = smtp::start().await else {
        return;
    };
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SMTP_URL".into(), smtp.url());
        env.insert(
            "TESSERA_MAIL_FROM".into(),
            "Tessera <id@example.com>".into(),
        );
    })
    .await;
    let browser = Browser::new(&app);
    assert_eq!(
        browser.sign_up("ada@example.com", PASSWORD).await.status,
        303
    );
    let account = browser.get("/account").await;
    assert!(
        account.body.contains("Email not verified"),
        "{}",
        account.body
    );
    assert!(account.body.contains("Resend verification email"));
    let token = email_token(&app, &browser).await;
    assert_eq!(userinfo(&app, &token).await["email_verified"], false);

    let message = smtp.message_to("ada@example.com", SUBJECT).await;
    assert_eq!(message.header("From"), "Tessera <id@example.com>");
    assert!(
        message
            .header("Content-Type")
            .starts_with("multipart/alternative")
    );
    let html = message.part("text/html").expect("an HTML part");
    let link = message.link(&app.url("/email/verify/"));
    assert!(html.contains(&link), "the HTML part links the same URL");

    // Mail is often read on another device: the link needs no session.
    let elsewhere = reqwest::Client::new();
    let page = elsewhere.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Email verified"));
    let account = browser.get("/account").await;
    assert!(!account.body.contains("Email not verified"));
    // userinfo reads the account afresh: the same token now says verified.
    assert_eq!(userinfo(&app, &token).await["email_verified"], true);
    // A second visit (a mail scanner may have opened it first) still reads as success.
    let again = elsewhere.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn the_file_outbox_is_the_default_and_keeps_no_link_in_the_database() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let message = smtp::outbox_message(&app, "ada@example.com", SUBJECT).await;
    assert!(message.part("text/html").is_some());
    let link = message.link(&app.url("/email/verify/"));
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);
    let row = user::Entity::find()
        .filter(user::Column::Email.eq("ada@example.com"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(row.email_verified_at.is_some());
    // The delivered job keeps who and what, not the message with its link; the
    // link's token is stored only as a digest. (The file is written just before
    // the job is recorded as done.)
    let jobs = loop {
        let jobs = job::Entity::find().all(&app.state.db).await.unwrap();
        if jobs.iter().all(|j| j.state == "done") {
            break jobs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].payload.contains("ada@example.com"));
    let token = link.rsplit('/').next().unwrap();
    assert!(!jobs[0].payload.contains(token));
    let stored = user_token::Entity::find().all(&app.state.db).await.unwrap();
    assert!(stored.iter().all(|t| t.token_hash != token));
}

#[tokio::test]
async fn a_verification_link_expires_after_24_hours_and_a_new_one_can_be_asked_for() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let first = smtp::outbox_message(&app, "ada@example.com", SUBJECT)
        .await
        .link(&app.url("/email/verify/"));
    // 24 hours and a second later.
    user_token::Entity::update_many()
        .col_expr(
            user_token::Column::ExpiresAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.state.db)
        .await
        .unwrap();
    let page = app.client.get(&first).send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("This link cannot be used")
    );
    assert!(
        browser
            .get("/account")
            .await
            .body
            .contains("Email not verified")
    );

    let resent = browser
        .submit("/account", "/account/email/verify", &[])
        .await;
    assert_eq!(resent.status, 200);
    assert!(resent.body.contains("We sent a new verification link"));
    let messages = loop {
        let all = smtp::outbox(std::path::Path::new(&app.env["TESSERA_MAIL_DIR"]));
        if all.len() == 2 {
            break all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let second = messages
        .iter()
        .map(|m| m.link(&app.url("/email/verify/")))
        .find(|l| *l != first)
        .expect("a new link");
    assert_eq!(app.client.get(&second).send().await.unwrap().status(), 200);
    assert!(
        !browser
            .get("/account")
            .await
            .body
            .contains("Email not verified")
    );
}

#[tokio::test]
async fn a_link_for_an_address_the_account_no_longer_has_verifies_nothing() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let link = smtp::outbox_message(&app, "ada@example.com", SUBJECT)
        .await
        .link(&app.url("/email/verify/"));
    user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value("ada@example.org"))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 400);
    let row = user::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(row.email_verified_at.is_none());
}

#[tokio::test]
async fn asking_for_verification_mail_is_limited_per_account() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    for _ in 0..5 {
        let page = browser
            .submit("/account", "/account/email/verify", &[])
            .await;
        assert_eq!(page.status, 200);
    }
    let refused = browser
        .submit("/account", "/account/email/verify", &[])
        .await;
    assert_eq!(refused.status, 429);
    assert!(refused.headers.contains_key("retry-after"));
    assert!(refused.body.contains("Too many verification messages"));
}

#[tokio::test]
async fn unknown_or_garbled_links_get_a_page_not_an_error() {
    let app = common::spawn_app().await;
    for token in ["nope", "%00%ff", &"a".repeat(5000)] {
        let page = app
            .client
            .get(app.url(&format!("/email/verify/{token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400, "{token}");
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("This link cannot be used")
        );
    }
}

#[tokio::test]
async fn a_required_verified_address_holds_back_the_code_until_the_link_is_followed() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REQUIRE_VERIFIED_EMAIL".into(), "true".into());
    })
    .await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let mut new = new_client();
    new.first_party = true;
    let client = register(&app, new).await;
    let (verifier, challenge) = pkce();
    let path = common::oauth::authorize_path(&client.id, &challenge, &[("scope", "openid")]);
    let page = browser.get(&path).await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("Verify your email to continue"),
        "{}",
        page.body
    );
    assert!(page.location().is_none(), "no code, no redirect");
    // prompt=none cannot show that page: RFC-style error at the client.
    let silent = browser
        .get(&common::oauth::authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid"), ("prompt", "none")],
        ))
        .await;
    let params = common::oauth::redirect_params(&silent);
    assert_eq!(
        common::oauth::param(&params, "error"),
        Some("interaction_required")
    );
    // Resending from that page shows it again, with a notice.
    let fields = common::oauth::hidden_fields(&page.body);
    let return_to = &fields.iter().find(|(k, _)| k == "return_to").unwrap().1;
    let resent = browser
        .post(
            "/account/email/verify",
            &[("csrf", &page.csrf()), ("return_to", return_to)],
        )
        .await;
    assert!(resent.body.contains("We sent a new verification link"));
    assert!(resent.body.contains("Verify your email to continue"));

    let link = smtp::outbox_message(&app, "ada@example.com", SUBJECT)
        .await
        .link(&app.url("/email/verify/"));
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);
    let code = code_with_scope(&browser, &client.id, &challenge, "openid").await;
    assert_eq!(
        exchange(&app, &client, &code, &verifier).await.status(),
        200
    );
}

#[tokio::test]
async fn accounts_made_at_the_cli_are_verified_unless_asked_otherwise() {
    let app = common::spawn_app().await;
    let create = |email: &str, extra: &[&str]| {
        let mut args = vec!["user", "create", "--email", email, "--password-stdin"];
        args.extend_from_slice(extra);
        let cheap = [
            ("TESSERA_ARGON2_MEMORY_KIB", "1024"),
            ("TESSERA_ARGON2_ITERATIONS", "1"),
        ];
        let (ok, _, err) = common::cli_input(&app, &cheap, &args, &format!("{PASSWORD}\n"));
        assert!(ok, "{err}");
    };
    create("ops@example.com", &[]);
    create("new@example.com", &["--unverified"]);
    let listed = common::cli_json(&app, &["user", "list", "--json"]);
    let verified = |email: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["email_verified"]
            .clone()
    };
    assert_eq!(verified("ops@example.com"), true);
    assert_eq!(verified("new@example.com"), false);
    // The CLI queued the message; the running server's worker sends it.
    app.state.jobs.wake();
    smtp::outbox_message(&app, "new@example.com", SUBJECT).await;
    assert_eq!(smtp::outbox_count(&app, "ops@example.com"), 0);
}
