//! OIDC RP-Initiated Logout.

mod common;

use common::oauth::{
    TestClient, authorize_path, exchange, new_client, param, pkce, redirect_params, register,
};
use common::{Browser, PASSWORD, TestApp};
use serde_json::{Value, json};
use tessera::oauth::clients::GrantType;

const SIGNED_OUT: &str = "https://app.example/signed-out";

async fn client(app: &TestApp) -> TestClient {
    let mut new = new_client();
    new.first_party = true;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    new.post_logout_redirect_uris = vec![SIGNED_OUT.into()];
    register(app, new).await
}

/// A signed-in browser and the tokens its session produced.
async fn session_with_tokens(app: &TestApp, client: &TestClient) -> (Browser, Value) {
    let browser = Browser::new(app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid offline_access")],
        ))
        .await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let tokens = exchange(app, client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    (browser, tokens)
}

fn logout_path(pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/end_session?{query}")
}

async fn refresh_works(app: &TestApp, client: &TestClient, token: &str) -> bool {
    app.client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test]
async fn logout_with_id_token_hint_ends_the_session_revokes_its_refresh_tokens_and_returns() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let (browser, tokens) = session_with_tokens(&app, &client).await;
    let page = browser
        .get(&logout_path(&[
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "bye-1"),
        ]))
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some(&*format!("{SIGNED_OUT}?state=bye-1")));
    assert!(!browser.is_signed_in().await);
    assert!(!refresh_works(&app, &client, tokens["refresh_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn an_unregistered_post_logout_redirect_uri_is_never_followed() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let (browser, tokens) = session_with_tokens(&app, &client).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    for (uri, with_hint) in [("https://evil.example/", true), (SIGNED_OUT, false)] {
        let mut pairs = vec![("post_logout_redirect_uri", uri)];
        if with_hint {
            pairs.push(("id_token_hint", id_token));
        }
        let page = browser.get(&logout_path(&pairs)).await;
        assert_eq!(page.status, 400, "{uri}");
        assert!(page.location().is_none());
    }
    assert!(browser.is_signed_in().await, "nothing happened");
}

#[tokio::test]
async fn without_a_hint_the_person_confirms_first() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let (browser, _) = session_with_tokens(&app, &client).await;
    let path = logout_path(&[
        ("client_id", &client.id),
        ("post_logout_redirect_uri", SIGNED_OUT),
        ("state", "s"),
    ]);
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Sign out?") && page.body.contains("Example App asks to sign you out")
    );
    assert!(
        browser.is_signed_in().await,
        "not before the person confirms"
    );

    let mut fields = common::oauth::hidden_fields(&page.body);
    fields.retain(|(k, _)| k != "csrf");
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        browser.post("/end_session/confirm", &form).await.status,
        403
    );
    assert!(browser.is_signed_in().await);

    let fields = common::oauth::hidden_fields(&page.body);
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = browser.post("/end_session/confirm", &form).await;
    assert_eq!(done.location(), Some(&*format!("{SIGNED_OUT}?state=s")));
    assert!(!browser.is_signed_in().await);
}

#[tokio::test]
async fn a_forged_hint_is_refused_and_an_expired_one_accepted() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let (browser, tokens) = session_with_tokens(&app, &client).await;
    let forged = browser
        .get(&logout_path(&[(
            "id_token_hint",
            "eyJhbGciOiJub25lIn0.e30.",
        )]))
        .await;
    assert_eq!(forged.status, 400);

    let mut claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(tokens["id_token"].as_str().unwrap())
            .unwrap()
            .claims;
    claims["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let expired = app
        .state
        .keys
        .keys()
        .sign(
            tessera::tokens::Algorithm::Rs256,
            "JWT",
            &serde_json::to_vec(&claims).unwrap(),
            chrono::Utc::now(),
        )
        .unwrap();
    let page = browser
        .get(&logout_path(&[
            ("id_token_hint", &expired),
            ("post_logout_redirect_uri", SIGNED_OUT),
        ]))
        .await;
    assert_eq!(page.location(), Some(SIGNED_OUT));
    assert!(!browser.is_signed_in().await);
}

/// Issue 18 §5: without a session, only an id_token_hint ties the request to the
/// client; without one the person gets a page with a link, never an automatic
/// redirect (else any registered client makes this an open redirector).
#[tokio::test]
async fn without_a_session_only_an_id_token_hint_redirects_at_once() {
    let app = common::spawn_app().await;
    let client = client(&app).await;
    let page = Browser::new(&app)
        .get(&logout_path(&[
            ("client_id", &client.id),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "x"),
        ]))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.location().is_none());
    assert!(
        page.body
            .contains(&format!("href=\"{SIGNED_OUT}?state=x\"")),
        "{}",
        page.body
    );

    let (_, tokens) = session_with_tokens(&app, &client).await;
    let hinted = Browser::new(&app)
        .get(&logout_path(&[
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "y"),
        ]))
        .await;
    assert_eq!(hinted.location(), Some(&*format!("{SIGNED_OUT}?state=y")));
    let plain = Browser::new(&app).get("/end_session").await;
    assert_eq!(plain.status, 200);
    assert!(plain.body.contains("You have signed out"));
}

#[tokio::test]
async fn discovery_lists_the_end_session_endpoint() {
    let app = common::spawn_app().await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{}/end_session", app.base)
    );
}
