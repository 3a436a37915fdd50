//! RFC 7009 revocation and RFC 7662 introspection.

mod common;

use common::oauth::{
    TestClient, authorize_path, exchange, new_client, param, pkce, redirect_params, register,
};
use common::{Browser, PASSWORD, TestApp};
use serde_json::Value;
use tessera::oauth::clients::{AuthMethod, GrantType};

async fn client(app: &TestApp) -> TestClient {
    let mut new = new_client();
    new.first_party = true;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    register(app, new).await
}

async fn tokens(app: &TestApp, client: &TestClient) -> Value {
    let browser = Browser::new(app);
    browser
        .sign_up(
            &format!("{}@example.com", uuid::Uuid::now_v7().simple()),
            PASSWORD,
        )
        .await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid offline_access")],
        ))
        .await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    exchange(app, client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap()
}

async fn call(
    app: &TestApp,
    path: &str,
    client: &TestClient,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> Value {
    let response = call(app, "/introspect", client, &[("token", token)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_the_grant() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let t = tokens(&app, &client).await;
    let refresh = t["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &client, refresh).await["active"], true);
    let response = call(
        &app,
        "/revoke",
        &client,
        &[("token", refresh), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    let after = call(
        &app,
        "/token",
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(
        after.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        introspect(&app, &client, refresh).await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn revoking_an_access_token_makes_it_inactive_everywhere() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let t = tokens(&app, &client).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &client, access).await["active"], true);
    // No hint: the server finds the kind itself.
    assert_eq!(
        call(&app, "/revoke", &client, &[("token", access)])
            .await
            .status(),
        200
    );
    assert_eq!(introspect(&app, &client, access).await["active"], false);
    let userinfo = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);
}

#[tokio::test]
async fn unknown_tokens_are_revoked_successfully_as_rfc7009_says() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    for token in ["not-a-token", "a.b.c", ""] {
        let response = call(&app, "/revoke", &client, &[("token", token)]).await;
        let expected = if token.is_empty() { 400 } else { 200 };
        assert_eq!(response.status(), expected, "{token:?}");
    }
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token() {
    let app = common::spawn_app().await;
    let owner = client(&app).await;
    let other = client(&app).await;
    let t = tokens(&app, &owner).await;
    for token in [
        t["refresh_token"].as_str().unwrap(),
        t["access_token"].as_str().unwrap(),
    ] {
        let response = call(&app, "/revoke", &other, &[("token", token)]).await;
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "unauthorized_client"
        );
        assert_eq!(
            introspect(&app, &owner, token).await["active"],
            true,
            "still valid"
        );
    }
}

#[tokio::test]
async fn introspection_describes_an_active_access_token_to_a_resource_server() {
    let app = common::spawn_app().await;
    let stranger = client(&app).await;
    let client = client(&app).await;
    let resource_server = client_for_api(&app).await;
    let t = tokens(&app, &client).await;
    let info = introspect(&app, &resource_server, t["access_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["client_id"], client.id);
    assert_eq!(info["scope"], "offline_access openid");
    assert_eq!(info["iss"], app.base.as_str());
    assert!(info["sub"].is_string() && info["exp"].is_i64() && info["iat"].is_i64());
    // A refresh token is described only to the client holding it.
    let refresh = introspect(&app, &resource_server, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refresh["active"], false);
    // Any other confidential client learns nothing about the token.
    let info = introspect(&app, &stranger, t["access_token"].as_str().unwrap()).await;
    assert_eq!(info, serde_json::json!({ "active": false }));
}

async fn client_for_api(app: &TestApp) -> TestClient {
    let mut new = new_client();
    new.name = "Orders API".into();
    new.redirect_uris = vec![];
    new.introspect_for = Some(app.base.clone());
    new.grant_types = vec![GrantType::ClientCredentials];
    register(app, new).await
}

#[tokio::test]
async fn introspection_says_inactive_for_anything_not_currently_valid() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let t = tokens(&app, &client).await;
    let mut claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(t["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    claims["exp"] = serde_json::json!(chrono::Utc::now().timestamp() - 1);
    let expired = app
        .state
        .keys
        .keys()
        .sign(
            tessera::tokens::Algorithm::Es256,
            "at+jwt",
            &serde_json::to_vec(&claims).unwrap(),
            chrono::Utc::now(),
        )
        .unwrap();
    for token in [expired.as_str(), "malformed", "eyJhbGciOiJub25lIn0.e30."] {
        assert_eq!(
            introspect(&app, &client, token).await,
            serde_json::json!({"active": false}),
            "{token}"
        );
    }
}

#[tokio::test]
async fn revocation_and_introspection_need_client_authentication() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    for path in ["/revoke", "/introspect"] {
        let anonymous = app
            .client
            .post(app.url(path))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        let wrong = app
            .client
            .post(app.url(path))
            .basic_auth(&client.id, Some("wrong"))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        assert_eq!(
            wrong.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }
}

#[tokio::test]
async fn public_clients_cannot_introspect() {
    let app = common::spawn_app().await;
    let mut new = new_client();
    new.auth_method = AuthMethod::None;
    let public = register(&app, new).await;
    let response = app
        .client
        .post(app.url("/introspect"))
        .form(&[("token", "x"), ("client_id", public.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn discovery_lists_revocation_and_introspection() {
    let app = common::spawn_app().await;
    let doc = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(doc["revocation_endpoint"], format!("{}/revoke", app.base));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{}/introspect", app.base)
    );
}

/// Issue 25: introspection and userinfo recognise a token this server verified
/// before without checking its signature again. Only the exact string is
/// recognised, and what can change about a token is still checked on every
/// use: here, its account being disabled.
#[tokio::test]
async fn a_token_recognised_again_still_follows_its_account() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let t = tokens(&app, &client).await;
    let access = t["access_token"].as_str().unwrap();
    let userinfo = |token: String| {
        let request = app.client.get(app.url("/userinfo")).bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    for _ in 0..2 {
        assert_eq!(introspect(&app, &client, access).await["active"], true);
        assert_eq!(userinfo(access.to_owned()).await, 200);
    }
    // The same token with its signature altered is not the token recorded.
    let at = access.len() - 10;
    let flipped = if &access[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &access[..at], &access[at + 1..]);
    assert_eq!(introspect(&app, &client, &forged).await["active"], false);
    assert_eq!(userinfo(forged).await, 401);

    let sub = introspect(&app, &client, access).await["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let user = tessera::identity::users::find(&app.state.db, sub)
        .await
        .unwrap()
        .unwrap();
    tessera::identity::users::set_disabled(&app.state.db, &user.email, true)
        .await
        .unwrap();
    assert_eq!(introspect(&app, &client, access).await["active"], false);
    assert_eq!(userinfo(access.to_owned()).await, 401);
}
