//! Every change of an account's state reaches every credential it backs: the
//! refresh path itself checks the account, "sign out everywhere" and a password
//! change revoke every refresh token, and a plain sign-out ends the tokens its
//! session granted except `offline_access` ones.

mod common;

use common::oauth::{self, TestClient};
use common::{Browser, PASSWORD, TestApp};
use serde_json::Value;

/// A second grant in the same browser session, without `offline_access` (no
/// `openid`: a plain OAuth grant still gets a refresh token).
async fn api_grant(app: &TestApp, browser: &Browser, client: &TestClient) -> Value {
    let (verifier, challenge) = oauth::pkce();
    let code = oauth::code_with_scope(browser, &client.id, &challenge, "api:read").await;
    let tokens: Value = oauth::exchange(app, client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    tokens
}

async fn refresh_status(app: &TestApp, client: &TestClient, tokens: &Value) -> (u16, Value) {
    oauth::refresh(app, client, tokens["refresh_token"].as_str().unwrap()).await
}

async fn set_disabled_flag_only(app: &TestApp, disabled: bool) {
    // The flag alone, without the revocation `user disable` does: proves the
    // refresh path reads the account state itself.
    tessera::identity::users::set_disabled(&app.state.db, "ada@example.com", disabled)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refresh_for_a_disabled_account_is_refused_on_both_refresh_paths() {
    let app = common::spawn_app().await;
    let (_browser, client, tokens) = oauth::signed_in_with_refresh_token(&app).await;
    set_disabled_flag_only(&app, true).await;
    // Without `scope`: the one-step rotation.
    let (status, body) = refresh_status(&app, &client, &tokens).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{body}"
    );
    // With `scope`: the two-step path.
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // A refused refresh spent nothing: enabled again, the same token works.
    set_disabled_flag_only(&app, false).await;
    let (status, _) = refresh_status(&app, &client, &tokens).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_code_issued_before_the_account_was_disabled_is_refused() {
    let app = common::spawn_app().await;
    let (browser, client, _) = oauth::signed_in_with_refresh_token(&app).await;
    let (verifier, challenge) = oauth::pkce();
    let code = oauth::code_with_scope(&browser, &client.id, &challenge, "openid").await;
    set_disabled_flag_only(&app, true).await;
    let response = oauth::exchange(&app, &client, &code, &verifier).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn sign_out_everywhere_revokes_every_refresh_token_offline_ones_included() {
    let app = common::spawn_app().await;
    let (browser, client, offline) = oauth::signed_in_with_refresh_token(&app).await;
    let plain = api_grant(&app, &browser, &client).await;
    let other = Browser::new(&app);
    other.sign_in("ada@example.com", PASSWORD).await;
    let ended = browser
        .submit("/account", "/account/sessions/end-all", &[])
        .await;
    assert_eq!(ended.status, 303);
    for tokens in [&offline, &plain] {
        let (status, body) = refresh_status(&app, &client, tokens).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    assert!(!other.is_signed_in().await);
}

#[tokio::test]
async fn changing_the_password_revokes_every_refresh_token() {
    let app = common::spawn_app().await;
    let (browser, client, offline) = oauth::signed_in_with_refresh_token(&app).await;
    let plain = api_grant(&app, &browser, &client).await;
    let changed = browser
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "an entirely new passphrase"),
            ],
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    for tokens in [&offline, &plain] {
        let (status, body) = refresh_status(&app, &client, tokens).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    // The session that changed it stays signed in.
    assert!(browser.is_signed_in().await);
}

#[tokio::test]
async fn signing_out_of_one_browser_ends_its_tokens_except_offline_access() {
    let app = common::spawn_app().await;
    let (browser, client, offline) = oauth::signed_in_with_refresh_token(&app).await;
    let plain = api_grant(&app, &browser, &client).await;
    // A grant from another browser of the same person is not this session's.
    let other = Browser::new(&app);
    other.sign_in("ada@example.com", PASSWORD).await;
    let elsewhere = api_grant(&app, &other, &client).await;

    let out = browser.submit("/account", "/logout", &[]).await;
    assert_eq!(out.status, 303);
    let (status, body) = refresh_status(&app, &client, &plain).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(refresh_status(&app, &client, &offline).await.0, 200);
    assert_eq!(refresh_status(&app, &client, &elsewhere).await.0, 200);
}
