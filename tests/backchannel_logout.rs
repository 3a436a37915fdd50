//! OpenID Connect Back-Channel Logout 1.0 (issue 22): when a session ends, each
//! client that received tokens from it gets a logout token at its registered
//! endpoint — a real listener on its own port — through the job queue.

mod common;

use chrono::Utc;
use common::logout_listener::LogoutListener;
use common::oauth::{TestClient, code_with_scope, exchange, new_client, pkce, register};
use common::{Browser, PASSWORD, TestApp};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tessera::oauth::clients::GrantType;
use tessera::store::entities::job;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A first-party client; with `logout_uri`, registered for back-channel logout.
async fn client(app: &TestApp, logout_uri: Option<String>) -> TestClient {
    let mut new = new_client();
    new.first_party = true;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    new.backchannel_logout_uri = logout_uri;
    new.backchannel_logout_session_required = true;
    register(app, new).await
}

/// Signs `browser`'s person in to `client` (code + exchange): the tokens.
async fn tokens_for(app: &TestApp, browser: &Browser, client: &TestClient) -> Value {
    let (verifier, challenge) = pkce();
    let code = code_with_scope(browser, &client.id, &challenge, "openid offline_access").await;
    exchange(app, client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap()
}

/// Checks a logout token as the client must (§2.6), with software nobody here
/// wrote: the signature from the JWKS, `iss`, `aud`, `exp` (jsonwebtoken), then
/// the logout-specific claims.
async fn verified(app: &TestApp, token: &str, client: &TestClient) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = common::verify_for_audience(app, token, &client.id)
        .await
        .expect("a logout token verifies from the JWKS");
    assert_eq!(claims["events"], serde_json::json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "§2.4: never a nonce");
    assert!(claims["jti"].is_string() && claims["iat"].is_number());
    claims
}

#[tokio::test]
async fn signing_out_sends_each_client_of_the_session_a_verified_logout_token() {
    let app = common::spawn_app().await;
    let listener = LogoutListener::start().await;
    let with_logout = client(&app, Some(listener.url())).await;
    let without = client(&app, None).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let tokens = tokens_for(&app, &browser, &with_logout).await;
    tokens_for(&app, &browser, &without).await;
    let id_token = common::jwt_claims(tokens["id_token"].as_str().unwrap());

    let csrf = browser.get("/account").await.csrf();
    browser.post("/logout", &[("csrf", &csrf)]).await;
    let received = listener.wait_for(1).await;
    let claims = verified(&app, &received[0], &with_logout).await;
    assert_eq!(claims["sub"], id_token["sub"]);
    assert_eq!(
        claims["sid"], id_token["sid"],
        "the session the id_token named"
    );
    // One session, one client with a logout URI: one token.
    app.state.jobs.wake();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(listener.tokens().len(), 1);
}

#[tokio::test]
async fn sign_out_everywhere_and_rp_initiated_logout_reach_every_session() {
    let app = common::spawn_app().await;
    let listener = LogoutListener::start().await;
    let app_client = client(&app, Some(listener.url())).await;
    let (laptop, phone) = (Browser::new(&app), Browser::new(&app));
    laptop.sign_up("ada@example.com", PASSWORD).await;
    phone.sign_in("ada@example.com", PASSWORD).await;
    let on_laptop = tokens_for(&app, &laptop, &app_client).await;
    let on_phone = tokens_for(&app, &phone, &app_client).await;
    let sid = |t: &Value| common::jwt_claims(t["id_token"].as_str().unwrap())["sid"].clone();

    // RP-initiated logout on the phone, vouched for by the id_token: that session only.
    let hint = on_phone["id_token"].as_str().unwrap();
    phone
        .get(&format!("/end_session?id_token_hint={hint}"))
        .await;
    assert!(!phone.is_signed_in().await);
    assert!(laptop.is_signed_in().await);
    let first = listener.wait_for(1).await;
    assert_eq!(
        verified(&app, &first[0], &app_client).await["sid"],
        sid(&on_phone)
    );

    // Sign out everywhere from the laptop: the remaining session.
    laptop
        .submit("/account", "/account/sessions/end-all", &[])
        .await;
    let both = listener.wait_for(2).await;
    assert_eq!(
        verified(&app, &both[1], &app_client).await["sid"],
        sid(&on_laptop)
    );
}

#[tokio::test]
async fn a_logout_endpoint_that_is_down_gets_the_token_when_it_is_back() {
    let app = common::spawn_app().await;
    let mut listener = LogoutListener::start().await;
    let app_client = client(&app, Some(listener.url())).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    tokens_for(&app, &browser, &app_client).await;
    listener.stop();

    let csrf = browser.get("/account").await.csrf();
    browser.post("/logout", &[("csrf", &csrf)]).await;
    let logout_job = || async {
        job::Entity::find()
            .filter(job::Column::Kind.eq("backchannel_logout"))
            .one(&app.state.db)
            .await
            .unwrap()
    };
    for _ in 0..400 {
        if logout_job().await.is_some_and(|j| j.last_error.is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let waiting = logout_job().await.unwrap();
    assert_eq!(waiting.state, "pending", "{waiting:?}");
    assert!(listener.tokens().is_empty());

    listener.resume().await;
    job::Entity::update_many()
        .col_expr(job::Column::RunAt, Expr::value(Utc::now()))
        .exec(&app.state.db)
        .await
        .unwrap();
    app.state.jobs.wake();
    let received = listener.wait_for(1).await;
    // Signed at delivery: valid now, however long the endpoint was down.
    verified(&app, &received[0], &app_client).await;
}

#[tokio::test]
async fn a_refusing_endpoint_is_recorded_as_a_failure_and_not_retried() {
    let app = common::spawn_app().await;
    let listener = LogoutListener::start().await;
    listener.answer_with(400);
    let app_client = client(&app, Some(listener.url())).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    tokens_for(&app, &browser, &app_client).await;
    let csrf = browser.get("/account").await.csrf();
    browser.post("/logout", &[("csrf", &csrf)]).await;
    listener.wait_for(1).await;
    let failed = loop {
        let row = job::Entity::find()
            .filter(job::Column::Kind.eq("backchannel_logout"))
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        if row.state != "pending" {
            break row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(failed.state, "failed");
    assert!(failed.last_error.unwrap().contains("400"));
}

#[tokio::test]
async fn clients_register_a_logout_uri_and_discovery_says_it_is_supported() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "open".into());
    })
    .await;
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);

    let register = |uri: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/register"))
                .json(&serde_json::json!({
                    "redirect_uris": ["https://app.example/cb"],
                    "backchannel_logout_uri": uri,
                    "backchannel_logout_session_required": true,
                }))
                .send()
                .await
                .unwrap()
        }
    };
    let made = register("https://app.example/logout").await;
    assert_eq!(made.status(), 201);
    let body: Value = made.json().await.unwrap();
    assert_eq!(body["backchannel_logout_uri"], "https://app.example/logout");
    assert_eq!(body["backchannel_logout_session_required"], true);
    for bad in [
        "http://app.example/logout",
        "https://app.example/logout#x",
        "not a url",
    ] {
        let refused = register(bad).await;
        assert_eq!(refused.status(), 400, "{bad}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client_metadata", "{bad}");
    }

    let created = common::cli_json(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Shop",
            "--redirect-uri",
            "https://shop.example/cb",
            "--backchannel-logout-uri",
            "https://shop.example/logout",
            "--backchannel-logout-session-required",
            "--json",
        ],
    );
    assert_eq!(
        created["backchannel_logout_uri"],
        "https://shop.example/logout"
    );
    assert_eq!(created["backchannel_logout_session_required"], true);
}

#[tokio::test]
async fn a_password_change_and_disabling_the_account_reach_the_clients_too() {
    let app = common::spawn_app().await;
    let listener = LogoutListener::start().await;
    let app_client = client(&app, Some(listener.url())).await;
    let (laptop, phone) = (Browser::new(&app), Browser::new(&app));
    laptop.sign_up("ada@example.com", PASSWORD).await;
    phone.sign_in("ada@example.com", PASSWORD).await;
    tokens_for(&app, &laptop, &app_client).await;
    let on_phone = tokens_for(&app, &phone, &app_client).await;
    let phone_sid = common::jwt_claims(on_phone["id_token"].as_str().unwrap())["sid"].clone();

    // The laptop changes the password: the phone's session ends, and is told.
    laptop
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "violet giraffes sing loudly"),
            ],
        )
        .await;
    let first = listener.wait_for(1).await;
    assert_eq!(
        verified(&app, &first[0], &app_client).await["sid"],
        phone_sid
    );

    // An operator disables the account from the command line (no worker of its
    // own): the running server delivers.
    let (ok, _, err) = common::cli(&app, &["user", "disable", "--email", "ada@example.com"]);
    assert!(ok, "{err}");
    app.state.jobs.wake();
    let both = listener.wait_for(2).await;
    verified(&app, &both[1], &app_client).await;
}

#[tokio::test]
async fn a_session_that_times_out_is_not_announced_and_forgets_its_clients() {
    use tessera::store::entities::session_client;
    let app = common::spawn_app().await;
    let listener = LogoutListener::start().await;
    let app_client = client(&app, Some(listener.url())).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    tokens_for(&app, &browser, &app_client).await;
    assert_eq!(
        session_client::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .len(),
        1
    );
    // Two hours idle (the default idle timeout is one).
    common::edit_sessions(&app, None, |s| {
        s.last_seen_at = sea_orm::Set(Utc::now() - chrono::Duration::hours(2));
    })
    .await;
    assert!(!browser.is_signed_in().await);
    assert!(
        session_client::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .is_empty()
    );
    app.state.jobs.wake();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(listener.tokens().is_empty(), "a timeout is not a sign-out");
    let queued = job::Entity::find()
        .filter(job::Column::Kind.eq("backchannel_logout"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(queued.is_empty());
}
