//! OpenID Connect: id_tokens and userinfo.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::oauth::{
    authorize_path, code_for, decide, exchange, new_client, param, pkce, redirect_params, register,
};
use common::{Browser, PASSWORD, TestApp};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use tessera::tokens::Algorithm;

struct Tokens {
    access_token: String,
    id_token: Option<String>,
    scope: String,
}

/// Signs Ada up and runs the code flow for a first-party client with `scope`.
async fn tokens(
    app: &TestApp,
    alg: Algorithm,
    scope: &str,
    nonce: Option<&str>,
) -> (Tokens, common::oauth::TestClient) {
    let browser = Browser::new(app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let mut new = new_client();
    new.first_party = true;
    new.id_token_alg = alg;
    let client = register(app, new).await;
    let (verifier, challenge) = pkce();
    let nonce_change = ("nonce", nonce.unwrap_or(""));
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", scope), nonce_change],
        ))
        .await;
    let page = if page.status == 200 {
        decide(&browser, &page, "allow").await
    } else {
        page
    };
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let body: Value = exchange(app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let tokens = Tokens {
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        id_token: body["id_token"].as_str().map(str::to_owned),
        scope: body["scope"].as_str().unwrap().to_owned(),
    };
    (tokens, client)
}

async fn verify_id_token(
    app: &TestApp,
    token: &str,
    client_id: &str,
) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[app.base.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims;
    (header, claims)
}

#[tokio::test]
async fn the_id_token_is_rs256_by_default_with_every_required_claim() {
    let app = common::spawn_app().await;
    let (tokens, client) = tokens(&app, Algorithm::Rs256, "openid", Some("n-0S6_WzA2Mj")).await;
    let id_token = tokens.id_token.expect("an id_token for the openid scope");
    let (header, claims) = verify_id_token(&app, &id_token, &client.id).await;
    assert_eq!(format!("{:?}", header.alg), "RS256");
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["aud"], client.id);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj", "echoed exactly");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert!(claims["auth_time"].is_i64() && claims["sid"].is_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    // OIDC Core §3.1.3.6: at_hash binds the id_token to the access token.
    let digest = <sha2::Sha256 as sha2::Digest>::digest(tokens.access_token.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    let access = jsonwebtoken::dangerous::insecure_decode::<Value>(&tokens.access_token)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], access["sub"]);
}

#[tokio::test]
async fn a_client_that_asks_for_es256_gets_es256_id_tokens() {
    let app = common::spawn_app().await;
    let (tokens, client) = tokens(&app, Algorithm::Es256, "openid", None).await;
    let (header, claims) = verify_id_token(&app, &tokens.id_token.unwrap(), &client.id).await;
    assert_eq!(format!("{:?}", header.alg), "ES256");
    assert!(
        claims.get("nonce").is_none(),
        "no nonce was sent, none comes back"
    );
}

#[tokio::test]
async fn without_the_openid_scope_there_is_no_id_token() {
    let app = common::spawn_app().await;
    let (tokens, _) = tokens(&app, Algorithm::Rs256, "profile", None).await;
    assert!(tokens.id_token.is_none());
    assert_eq!(tokens.scope, "profile");
}

#[tokio::test]
async fn userinfo_answers_by_get_by_post_header_and_by_post_body() {
    let app = common::spawn_app().await;
    let (tokens, _) = tokens(&app, Algorithm::Rs256, "openid email profile", None).await;
    let url = app.url("/userinfo");
    let by_get = app
        .client
        .get(&url)
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    let by_post = app
        .client
        .post(&url)
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    let by_body = app
        .client
        .post(&url)
        .form(&[("access_token", tokens.access_token.as_str())])
        .send()
        .await
        .unwrap();
    let mut bodies = Vec::new();
    for response in [by_get, by_post, by_body] {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        bodies.push(response.json::<Value>().await.unwrap());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(bodies[0]["email"], "ada@example.com");
    assert_eq!(bodies[0]["email_verified"], false);
    assert!(bodies[0]["sub"].is_string() && bodies[0]["updated_at"].is_i64());
}

#[tokio::test]
async fn userinfo_releases_only_the_claims_of_the_granted_scopes() {
    let app = common::spawn_app().await;
    let (tokens, _) = tokens(&app, Algorithm::Rs256, "openid", None).await;
    let body: Value = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("email").is_none(), "{body}");
    assert!(body["sub"].is_string());
}

fn forge(payload: &Value, header: &Value, signature: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", enc(header), enc(payload))
}

#[tokio::test]
async fn userinfo_refuses_every_bad_token_with_a_bearer_challenge() {
    let app = common::spawn_app().await;
    let (tokens, _) = tokens(&app, Algorithm::Rs256, "openid", None).await;
    let real_claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&tokens.access_token)
        .unwrap()
        .claims;
    let real_header = jsonwebtoken::decode_header(&tokens.access_token).unwrap();
    let kid = real_header.kid.unwrap();
    let now = chrono::Utc::now();
    let sign = |claims: &Value| {
        app.state
            .keys
            .keys()
            .sign(
                Algorithm::Es256,
                "at+jwt",
                &serde_json::to_vec(claims).unwrap(),
                now,
            )
            .unwrap()
    };
    let mut expired = real_claims.clone();
    expired["exp"] = json!(now.timestamp() - 1);
    let mut foreign = real_claims.clone();
    foreign["iss"] = json!("https://other.example");
    let id_token_typed = app
        .state
        .keys
        .keys()
        .sign(
            Algorithm::Es256,
            "JWT",
            &serde_json::to_vec(&real_claims).unwrap(),
            now,
        )
        .unwrap();
    let mut tampered = tokens.access_token.clone();
    tampered.insert(tampered.len() - 2, 'A');
    let cases = [
        ("garbage", "not.a.jwt".to_owned()),
        ("expired by a second", sign(&expired)),
        ("another issuer", sign(&foreign)),
        ("an id_token, not an access token", id_token_typed),
        ("tampered signature", tampered),
        (
            "alg none",
            forge(
                &real_claims,
                &json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
                "",
            ),
        ),
        (
            "HS256 keyed with the public key",
            forge(
                &real_claims,
                &json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}),
                "c2lnbmF0dXJl",
            ),
        ),
        (
            "unknown kid",
            forge(
                &real_claims,
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}),
                "c2ln",
            ),
        ),
    ];
    for (what, token) in cases {
        let response = app
            .client
            .get(app.url("/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{what}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }

    let none = app.client.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer") && !challenge.contains("error="),
        "{challenge}"
    );

    let twice = app
        .client
        .post(app.url("/userinfo"))
        .bearer_auth(&tokens.access_token)
        .form(&[("access_token", tokens.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
}

#[tokio::test]
async fn userinfo_needs_the_openid_scope() {
    let app = common::spawn_app().await;
    let (tokens, _) = tokens(&app, Algorithm::Rs256, "profile", None).await;
    let response = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}

#[tokio::test]
async fn a_token_revoked_by_code_replay_stops_working_at_userinfo() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let mut new = new_client();
    new.first_party = true;
    let client = register(&app, new).await;
    let (verifier, challenge) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    let body: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let ok = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    exchange(&app, &client, &code, &verifier).await;
    let revoked = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
}

#[tokio::test]
async fn id_token_hint_with_prompt_none_succeeds_silently_for_the_same_user_only() {
    let app = common::spawn_app().await;
    let (tokens, client) = tokens(&app, Algorithm::Rs256, "openid", None).await;
    let hint = tokens.id_token.unwrap();
    // Ada's browser still has her session from `tokens`; make a fresh one to drive.
    let ada = Browser::new(&app);
    ada.sign_in("ada@example.com", PASSWORD).await;
    let (_, challenge) = pkce();
    let silent = ada
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("prompt", "none"), ("id_token_hint", &hint)],
        ))
        .await;
    assert!(param(&redirect_params(&silent), "code").is_some());

    let bob = Browser::new(&app);
    bob.sign_up("bob@example.com", PASSWORD).await;
    let other = bob
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("prompt", "none"), ("id_token_hint", &hint)],
        ))
        .await;
    assert_eq!(
        param(&redirect_params(&other), "error"),
        Some("login_required")
    );

    let forged = ada
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("id_token_hint", "eyJhbGciOiJub25lIn0.e30.")],
        ))
        .await;
    assert_eq!(
        param(&redirect_params(&forged), "error"),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn locale_display_and_acr_parameters_are_accepted_without_error() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let mut new = new_client();
    new.first_party = true;
    let client = register(&app, new).await;
    let (_, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[
                ("display", "popup"),
                ("ui_locales", "fr-CA fr en"),
                ("claims_locales", "de"),
                ("acr_values", "urn:mace:incommon:iap:silver"),
                ("nonce", ""),
            ],
        ))
        .await;
    assert!(param(&redirect_params(&page), "code").is_some());
}

#[tokio::test]
async fn max_age_forces_a_new_sign_in_with_a_later_auth_time() {
    let app = common::spawn_app().await;
    let (first, client) = tokens(&app, Algorithm::Rs256, "openid", None).await;
    let first_auth = jsonwebtoken::dangerous::insecure_decode::<Value>(first.id_token.unwrap())
        .unwrap()
        .claims["auth_time"]
        .as_i64()
        .unwrap();
    let browser = Browser::new(&app);
    browser.sign_in("ada@example.com", PASSWORD).await;
    // Every session of Ada's, this one included, signed in ten seconds ago.
    let aged = chrono::Utc::now() - chrono::Duration::seconds(10);
    common::edit_sessions(&app, None, |s| s.auth_time = sea_orm::Set(aged)).await;

    let (verifier, challenge) = pkce();
    let to_login = browser
        .get(&authorize_path(&client.id, &challenge, &[("max_age", "1")]))
        .await;
    let login = browser
        .get(to_login.location().expect("sent to sign in again"))
        .await;
    let signed = browser
        .sign_in_on(&login, "ada@example.com", PASSWORD)
        .await;
    let back = browser.get(signed.location().unwrap()).await;
    let code = param(&redirect_params(&back), "code").unwrap().to_owned();
    let body: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let second_auth =
        jsonwebtoken::dangerous::insecure_decode::<Value>(body["id_token"].as_str().unwrap())
            .unwrap()
            .claims["auth_time"]
            .as_i64()
            .unwrap();
    assert!(second_auth >= first_auth, "{second_auth} >= {first_auth}");
    assert!(
        second_auth > aged.timestamp(),
        "a new sign-in, not the aged one: {second_auth}"
    );
}

/// Issue 18 §5: `max_age=0` is older than any sign-in by the time it is checked;
/// one fresh sign-in satisfies it — and the consent form after it — instead of
/// sending the person round between /login and /authorize forever.
#[tokio::test]
async fn max_age_zero_is_satisfied_by_one_fresh_sign_in_and_its_consent() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let client = register(&app, new_client()).await;
    let (verifier, challenge) = pkce();
    let to_login = browser
        .get(&authorize_path(&client.id, &challenge, &[("max_age", "0")]))
        .await;
    let login = browser
        .get(to_login.location().expect("sent to sign in again"))
        .await;
    assert_eq!(login.status, 200, "the sign-in form, not a bounce");
    let signed = browser
        .sign_in_on(&login, "ada@example.com", PASSWORD)
        .await;
    let consent = browser.get(signed.location().unwrap()).await;
    assert_eq!(consent.status, 200, "{:?}", consent.location());
    let back = common::oauth::decide(&browser, &consent, "allow").await;
    let code = param(&redirect_params(&back), "code").unwrap().to_owned();
    let response = exchange(&app, &client, &code, &verifier).await;
    assert_eq!(response.status(), 200);
}
