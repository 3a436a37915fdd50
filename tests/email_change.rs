//! Changing the account's address (issue 21): a link goes to the new address
//! and the change happens only when it is followed; the old address is told;
//! the address stays unique on its canonical form at both steps.

mod common;

use chrono::Utc;
use common::{Browser, PASSWORD, smtp};
use sea_orm::Set;

const CONFIRM: &str = "Confirm your new email address";

async fn change(browser: &Browser, new_email: &str, password: &str) -> common::Page {
    browser
        .submit(
            "/account",
            "/account/email",
            &[("new_email", new_email), ("current_password", password)],
        )
        .await
}

/// Makes every session's sign-in an hour old.
async fn age_sign_ins(app: &common::TestApp) {
    common::edit_sessions(app, None, |s| {
        s.auth_time = Set(Utc::now() - chrono::Duration::hours(1));
    })
    .await;
}

#[tokio::test]
async fn the_address_changes_only_when_the_new_one_confirms_and_the_old_one_is_told() {
    let Some(smtp) = smtp::start().await else {
        return;
    };
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SMTP_URL".into(), smtp.url());
    })
    .await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let account = browser.get("/account").await;
    assert!(account.body.contains("Change email") && account.body.contains("New email"));

    // Signed in a moment ago: no password needed.
    let asked = change(&browser, "Ada@New.Example", "").await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("We sent a link to ada@new.example"));
    // Nothing changed yet.
    assert!(
        browser
            .get("/account")
            .await
            .body
            .contains("ada@example.com")
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("ada@example.com", PASSWORD)
            .await
            .status,
        303
    );

    let message = smtp.message_to("ada@new.example", CONFIRM).await;
    let link = message.link(&app.url("/email/verify/"));
    let followed = reqwest::Client::new().get(&link).send().await.unwrap();
    assert_eq!(followed.status(), 200);
    assert!(followed.text().await.unwrap().contains("ada@new.example"));

    let account = browser.get("/account").await;
    assert!(account.body.contains("ada@new.example"));
    assert!(
        !account.body.contains("Email not verified"),
        "the link proved it"
    );
    let notice = smtp
        .message_to("ada@example.com", "Your email address was changed")
        .await;
    assert!(notice.text().contains("ada@new.example"));
    assert_eq!(
        Browser::new(&app)
            .sign_in("ada@example.com", PASSWORD)
            .await
            .status,
        401
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("ada@new.example", PASSWORD)
            .await
            .status,
        303
    );
    // Once: following it again changes nothing and says it is done.
    assert_eq!(
        reqwest::Client::new()
            .get(&link)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn an_older_sign_in_needs_the_current_password() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    age_sign_ins(&app).await;
    let bare = change(&browser, "ada@new.example", "").await;
    assert_eq!(bare.status, 403);
    assert!(
        bare.body
            .contains("Enter your current password, or sign in again first.")
    );
    let wrong = change(&browser, "ada@new.example", "not the password").await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("The current password is incorrect."));
    let right = change(&browser, "ada@new.example", PASSWORD).await;
    assert_eq!(right.status, 200);
    smtp::outbox_message(&app, "ada@new.example", CONFIRM).await;
}

#[tokio::test]
async fn the_new_address_must_be_free_when_asked_and_when_confirmed() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("grace@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let taken = change(&browser, "GRACE@example.com", "").await;
    assert_eq!(taken.status, 409);
    assert!(
        taken
            .body
            .contains("An account with this email already exists.")
    );
    let same = change(&browser, "ada@example.com", "").await;
    assert_eq!(same.status, 400);
    assert_eq!(change(&browser, "not an address", "").await.status, 400);

    // Someone takes the address between the request and the confirmation.
    assert_eq!(change(&browser, "new@example.com", "").await.status, 200);
    let link = smtp::outbox_message(&app, "new@example.com", CONFIRM)
        .await
        .link(&app.url("/email/verify/"));
    Browser::new(&app)
        .sign_up("New@Example.com", PASSWORD)
        .await;
    let refused = app.client.get(&link).send().await.unwrap();
    assert_eq!(refused.status(), 409);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("belongs to another account")
    );
    assert!(
        browser
            .get("/account")
            .await
            .body
            .contains("ada@example.com")
    );
}

#[tokio::test]
async fn asking_for_address_changes_is_limited_per_account() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    for i in 0..5 {
        let page = change(&browser, &format!("ada{i}@new.example"), "").await;
        assert_eq!(page.status, 200);
    }
    let refused = change(&browser, "ada9@new.example", "").await;
    assert_eq!(refused.status, 429);
    assert!(refused.headers.contains_key("retry-after"));
}
