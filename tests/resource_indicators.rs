//! RFC 8707 resource indicators: the access token's `aud`.

mod common;

use common::oauth::{
    TestClient, authorize_path, exchange, new_client, param, pkce, redirect_params, register,
};
use common::{Browser, PASSWORD, TestApp};
use serde_json::Value;
use tessera::oauth::clients::GrantType;

const ORDERS: &str = "https://orders.example/api";
const BILLING: &str = "https://billing.example/api";

async fn app_with_resources() -> TestApp {
    common::spawn_app_with(|env| {
        env.insert("TESSERA_RESOURCES".into(), format!("{ORDERS} {BILLING}"));
    })
    .await
}

async fn client(app: &TestApp) -> TestClient {
    let mut new = new_client();
    new.first_party = true;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::ClientCredentials];
    register(app, new).await
}

fn aud(body: &Value) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(body["access_token"].as_str().unwrap())
        .unwrap()
        .claims["aud"]
        .clone()
}

#[tokio::test]
async fn an_allowed_resource_becomes_the_audience_and_others_are_invalid_targets() {
    let app = app_with_resources().await;
    let client = client(&app).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;

    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("resource", ORDERS)],
        ))
        .await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let body: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(aud(&body), ORDERS);

    let refused = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("resource", "https://unknown.example/")],
        ))
        .await;
    assert_eq!(
        param(&redirect_params(&refused), "error"),
        Some("invalid_target")
    );

    // Without a resource, the default audience (the issuer) applies.
    let page = browser
        .get(&authorize_path(&client.id, &challenge, &[]))
        .await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let body: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(aud(&body), app.base.as_str());
}

#[tokio::test]
async fn the_token_request_cannot_switch_to_another_resource() {
    let app = app_with_resources().await;
    let client = client(&app).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("resource", ORDERS)],
        ))
        .await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", common::oauth::REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("resource", BILLING),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_target"
    );
}

#[tokio::test]
async fn client_credentials_may_name_an_allowed_resource() {
    let app = app_with_resources().await;
    let client = client(&app).await;
    let request = |resource: &'static str| {
        app.client
            .post(app.url("/token"))
            .basic_auth(&client.id, client.secret.as_ref())
            .form(&[("grant_type", "client_credentials"), ("resource", resource)])
            .send()
    };
    let body: Value = request(BILLING).await.unwrap().json().await.unwrap();
    assert_eq!(aud(&body), BILLING);
    let refused: Value = request("https://elsewhere.example/")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["error"], "invalid_target");
}
