//! Security notices (issue 21): each change of how an account is reached is
//! told to its address — password changed, a browser it has not used before
//! (passkeys and reset are told in tests/passkeys.rs and tests/password_reset.rs).

mod common;

use common::{Browser, PASSWORD, smtp};

const NEW_SIGN_IN: &str = "New sign-in to your account";

fn subjects_to(app: &common::TestApp, to: &str) -> Vec<String> {
    smtp::outbox(std::path::Path::new(&app.env["TESSERA_MAIL_DIR"]))
        .into_iter()
        .filter(|m| m.to() == to)
        .map(|m| m.subject())
        .collect()
}

/// Lets the worker write what is queued: the verification message of sign-up
/// is always there, so waiting for it and then for `n` more of `subject` is exact.
async fn settle(app: &common::TestApp) {
    smtp::outbox_message(app, "ada@example.com", "Verify your email address").await;
    app.state.jobs.wake();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

#[tokio::test]
async fn changing_the_password_is_told_to_the_account_address() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let changed = browser
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "violet giraffes sing loudly"),
            ],
        )
        .await;
    assert_eq!(changed.status, 200);
    let notice = smtp::outbox_message(&app, "ada@example.com", "Your password was changed").await;
    assert!(
        notice
            .text()
            .contains("The password of your account was changed.")
    );
    assert!(notice.text().contains(&app.url("/account")));
    assert!(
        notice
            .part("text/html")
            .unwrap()
            .contains("Review your account")
    );
}

#[tokio::test]
async fn a_sign_in_from_a_browser_the_account_has_not_used_is_told_once() {
    let app = common::spawn_app().await;
    let first = Browser::new(&app);
    first.sign_up("ada@example.com", PASSWORD).await;
    // The sign-up browser signing in again is nothing new.
    first
        .post("/logout", &[("csrf", &first.get("/account").await.csrf())])
        .await;
    assert_eq!(first.sign_in("ada@example.com", PASSWORD).await.status, 303);
    settle(&app).await;
    assert!(!subjects_to(&app, "ada@example.com").contains(&NEW_SIGN_IN.to_owned()));

    let second = Browser::new(&app);
    let signed_in = second.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 303);
    let device = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("tessera_device="))
        .expect("a device cookie");
    assert!(
        device.contains("HttpOnly") && device.contains("Max-Age=34560000"),
        "{device}"
    );
    let notice = smtp::outbox_message(&app, "ada@example.com", NEW_SIGN_IN).await;
    assert!(notice.text().contains("127.0.0.1"), "{}", notice.text());

    // The same browser again: known now.
    second
        .post("/logout", &[("csrf", &second.get("/account").await.csrf())])
        .await;
    second.sign_in("ada@example.com", PASSWORD).await;
    settle(&app).await;
    let told = subjects_to(&app, "ada@example.com")
        .into_iter()
        .filter(|s| s == NEW_SIGN_IN)
        .count();
    assert_eq!(told, 1);
}

#[tokio::test]
async fn the_new_browser_notice_can_be_turned_off() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_NEW_DEVICE_NOTICE".into(), "false".into());
    })
    .await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let other = Browser::new(&app);
    assert_eq!(other.sign_in("ada@example.com", PASSWORD).await.status, 303);
    settle(&app).await;
    assert!(!subjects_to(&app, "ada@example.com").contains(&NEW_SIGN_IN.to_owned()));
}
