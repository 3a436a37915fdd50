//! Apps with access (issue 22): the account page (and the CLI) list each
//! application a person consented to or that holds their refresh tokens, and
//! removing one revokes its tokens, forgets its consent and tells it through
//! back-channel logout.

mod common;

use common::logout_listener::LogoutListener;
use common::oauth::{TestClient, exchange, new_client, pkce, refresh, register};
use common::{Browser, PASSWORD, TestApp};
use serde_json::Value;
use tessera::oauth::clients::GrantType;

async fn client(
    app: &TestApp,
    name: &str,
    first_party: bool,
    logout: Option<String>,
) -> TestClient {
    let mut new = new_client();
    new.name = name.into();
    new.first_party = first_party;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    new.backchannel_logout_uri = logout;
    register(app, new).await
}

async fn tokens(app: &TestApp, browser: &Browser, client: &TestClient) -> Value {
    let (verifier, challenge) = pkce();
    let path = common::oauth::authorize_path(
        &client.id,
        &challenge,
        &[("scope", "openid email offline_access")],
    );
    let page = browser.get(&path).await;
    let page = if page.status == 200 {
        common::oauth::decide(browser, &page, "allow").await
    } else {
        page
    };
    let code = common::oauth::param(&common::oauth::redirect_params(&page), "code")
        .expect("a code")
        .to_owned();
    exchange(app, client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_account_page_lists_apps_and_removing_one_cuts_it_off() {
    let app = common::spawn_app().await;
    let listener = LogoutListener::start().await;
    let shop = client(&app, "Corner Shop", false, Some(listener.url())).await;
    let notes = client(&app, "Team Notes", true, None).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let shop_tokens = tokens(&app, &browser, &shop).await;
    let notes_tokens = tokens(&app, &browser, &notes).await;

    let account = browser.get("/account").await;
    assert!(account.body.contains("Apps with access"));
    assert!(account.body.contains("Corner Shop") && account.body.contains("Team Notes"));
    assert!(account.body.contains("See your email address"));
    assert!(
        account
            .body
            .contains("Keep access while you are not using it")
    );

    let removed = browser
        .submit(
            "/account",
            &format!("/account/apps/{}/remove", shop.id),
            &[],
        )
        .await;
    assert_eq!(removed.status, 200);
    assert!(
        removed
            .body
            .contains("Corner Shop no longer has access to your account.")
    );
    assert!(!removed.body.contains("Corner Shop</strong>"));
    // Its refresh token is dead, its consent forgotten, and it was told.
    let (status, body) = refresh(&app, &shop, shop_tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (_, challenge) = pkce();
    let again = browser
        .get(&common::oauth::authorize_path(
            &shop.id,
            &challenge,
            &[("scope", "openid email")],
        ))
        .await;
    assert!(
        again.body.contains("Allow Corner Shop?"),
        "consent is asked again"
    );
    let logout = listener.wait_for(1).await;
    let claims = common::verify_for_audience(&app, &logout[0], &shop.id)
        .await
        .unwrap();
    assert!(claims["sid"].is_string());
    // The other app keeps working.
    let (status, _) = refresh(
        &app,
        &notes,
        notes_tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    // Nobody else's app can be removed through this form.
    let foreign = browser
        .submit("/account", "/account/apps/no-such-client/remove", &[])
        .await;
    assert_eq!(foreign.status, 404);
}

#[tokio::test]
async fn the_cli_lists_an_accounts_apps_and_revokes_one() {
    let app = common::spawn_app().await;
    let notes = client(&app, "Team Notes", true, None).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let notes_tokens = tokens(&app, &browser, &notes).await;
    let listed = common::cli_json(
        &app,
        &["user", "apps", "--email", "ada@example.com", "--json"],
    );
    let apps = listed.as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["client_id"], notes.id);
    assert_eq!(apps[0]["name"], "Team Notes");
    assert_eq!(apps[0]["refresh_tokens"], 1);
    let (ok, out, err) = common::cli(
        &app,
        &[
            "user",
            "revoke-app",
            "--email",
            "ada@example.com",
            "--client",
            &notes.id,
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 refresh token(s)"), "{out}");
    let (status, _) = refresh(
        &app,
        &notes,
        notes_tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    let listed = common::cli_json(
        &app,
        &["user", "apps", "--email", "ada@example.com", "--json"],
    );
    assert_eq!(listed, serde_json::json!([]));
}
