//! Dynamic client registration (RFC 7591) and client management (RFC 7592): each
//! policy, every validation refusal, the registration access token, secret
//! rotation, deletion revoking tokens, the rate limit, and clients registered by
//! the `openidconnect` crate running the code flow.

mod common;

use std::time::Duration;

use common::oauth::{REDIRECT, decide, param, redirect_params};
use common::{Browser, PASSWORD, TestApp};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use tessera::oauth::registration::create_initial_token;

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn register(app: &TestApp, token: Option<&str>, metadata: Value) -> Answer {
    let mut request = app.client.post(app.url("/register")).json(&metadata);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

async fn open_app() -> TestApp {
    common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "open".into());
        // The refusal table alone sends more than the default hourly allowance.
        env.insert("TESSERA_REGISTRATION_MAX_PER_IP".into(), "1000".into());
    })
    .await
}

fn web_client() -> Value {
    json!({
        "client_name": "Shop",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": "openid email offline_access",
    })
}

#[tokio::test]
async fn by_default_registration_needs_an_initial_access_token() {
    let app = common::spawn_app().await;
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["registration_endpoint"], app.url("/register"));

    let anonymous = register(&app, None, web_client()).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.body["error"], "invalid_token");
    let challenge = anonymous.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let forged = register(&app, Some("not-a-token"), web_client()).await;
    assert_eq!(forged.status, 401);

    let (once, _) = create_initial_token(&app.state.db, None, Some(1))
        .await
        .unwrap();
    // A refused registration spends nothing.
    let bad = register(
        &app,
        Some(&once),
        json!({ "redirect_uris": ["http://shop.example/cb"] }),
    )
    .await;
    assert_eq!(bad.status, 400);
    let created = register(&app, Some(&once), web_client()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let spent = register(&app, Some(&once), web_client()).await;
    assert_eq!(spent.status, 401, "a one-use token works once");

    let (expired, _) = create_initial_token(&app.state.db, Some(Duration::ZERO), None)
        .await
        .unwrap();
    assert_eq!(
        register(&app, Some(&expired), web_client()).await.status,
        401
    );
    let (many, _) = create_initial_token(&app.state.db, Some(Duration::from_secs(600)), None)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(register(&app, Some(&many), web_client()).await.status, 201);
    }
}

#[tokio::test]
async fn open_registration_answers_with_the_registered_metadata_and_credentials() {
    let app = open_app().await;
    let created = register(&app, None, web_client()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["cache-control"], "no-store");
    let b = &created.body;
    let client_id = b["client_id"].as_str().unwrap();
    assert!(b["client_secret"].as_str().unwrap().len() >= 43);
    assert_eq!(b["client_secret_expires_at"], 0);
    assert!(b["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(b["registration_access_token"].as_str().unwrap().len() >= 43);
    assert_eq!(
        b["registration_client_uri"],
        app.url(&format!("/register/{client_id}"))
    );
    assert_eq!(b["client_name"], "Shop");
    assert_eq!(b["redirect_uris"], json!([REDIRECT]));
    assert_eq!(b["response_types"], json!(["code"]));
    assert_eq!(b["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(b["application_type"], "web");
    assert_eq!(b["scope"], "email offline_access openid");

    // The secret works at once.
    let token = send(
        app.client
            .post(app.url("/token"))
            .basic_auth(client_id, b["client_secret"].as_str())
            .form(&[("grant_type", "client_credentials"), ("scope", "email")]),
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.body);
}

#[tokio::test]
async fn with_registration_off_there_is_no_endpoint() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "off".into());
    })
    .await;
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert!(discovery.get("registration_endpoint").is_none());
    let (token, _) = create_initial_token(&app.state.db, None, None)
        .await
        .unwrap();
    assert_eq!(register(&app, Some(&token), web_client()).await.status, 404);
}

#[tokio::test]
async fn every_invalid_registration_is_refused_with_a_precise_error() {
    let app = open_app().await;
    let uri = "invalid_redirect_uri";
    let meta = "invalid_client_metadata";
    let long_name = "n".repeat(201);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), uri, "at least one redirect URI"),
        (
            json!({ "redirect_uris": ["http://shop.example/cb"] }),
            uri,
            "https",
        ),
        (
            json!({ "redirect_uris": ["http://localhost:3000/cb"] }),
            uri,
            "https",
        ),
        (
            json!({ "redirect_uris": ["https://shop.example/cb#frag"] }),
            uri,
            "fragment",
        ),
        (
            json!({ "redirect_uris": ["https://*.shop.example/cb"] }),
            uri,
            "wildcard",
        ),
        (
            json!({ "redirect_uris": ["https://u:p@shop.example/cb"] }),
            uri,
            "user information",
        ),
        (json!({ "redirect_uris": ["/relative"] }), uri, "absolute"),
        (
            json!({ "redirect_uris": ["http://localhost/cb"], "application_type": "native" }),
            uri,
            "127.0.0.1",
        ),
        (
            json!({ "redirect_uris": ["myapp:/cb"], "application_type": "native" }),
            uri,
            "private-use scheme",
        ),
        (
            json!({ "redirect_uris": (0..21).map(|i| format!("https://shop.example/{i}")).collect::<Vec<_>>() }),
            uri,
            "at most 20",
        ),
        (
            json!({ "redirect_uris": "https://shop.example/cb" }),
            meta,
            "invalid type",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "application_type": "desktop" }),
            meta,
            "application_type",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt" }),
            meta,
            "token_endpoint_auth_method",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "grant_types": ["password"] }),
            meta,
            "password",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "grant_types": ["implicit"] }),
            meta,
            "implicit",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "response_types": ["token"] }),
            meta,
            "token",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "response_types": ["code id_token"] }),
            meta,
            "code id_token",
        ),
        (
            json!({ "grant_types": ["client_credentials"], "response_types": ["code"] }),
            meta,
            "disagree",
        ),
        (
            json!({ "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none" }),
            meta,
            "none",
        ),
        (
            json!({ "grant_types": ["client_credentials", "refresh_token"] }),
            meta,
            "refresh_token",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "scope": "openid admin:all" }),
            meta,
            "admin:all",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "client_name": long_name }),
            meta,
            "client_name",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "client_uri": "http://shop.example" }),
            meta,
            "client_uri",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "logo_uri": "javascript:alert(1)" }),
            meta,
            "logo_uri",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "contacts": ["not an email"] }),
            meta,
            "contact",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "id_token_signed_response_alg": "none" }),
            meta,
            "id_token_signed_response_alg",
        ),
        (
            json!({ "redirect_uris": [REDIRECT], "post_logout_redirect_uris": ["http://shop.example/"] }),
            meta,
            "post_logout_redirect_uris",
        ),
    ];
    for (body, error, words) in cases {
        let answer = register(&app, None, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.body["error"], error, "{body}: {}", answer.body);
        let description = answer.body["error_description"]
            .as_str()
            .unwrap_or_default();
        assert!(description.contains(words), "{body}: {description}");
    }

    // Not JSON, the wrong type, too large.
    let raw = |body: Vec<u8>, content_type: &str| {
        app.client
            .post(app.url("/register"))
            .header("content-type", content_type)
            .body(body)
    };
    for (request, words) in [
        (
            raw(b"{not json".to_vec(), "application/json"),
            "not client metadata JSON",
        ),
        (
            raw(
                b"redirect_uris=x".to_vec(),
                "application/x-www-form-urlencoded",
            ),
            "application/json",
        ),
        (
            raw(
                format!("{{\"client_name\":\"{}\"}}", "x".repeat(20_000)).into_bytes(),
                "application/json",
            ),
            "larger than",
        ),
        (
            raw(vec![0xff, 0xfe, b'{'], "application/json"),
            "not client metadata JSON",
        ),
    ] {
        let answer = send(request).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.body["error"], meta);
        assert!(
            answer.body["error_description"]
                .as_str()
                .unwrap()
                .contains(words),
            "{}",
            answer.body
        );
    }

    // Unknown fields are ignored (RFC 7591 §2); nothing above was stored.
    let fine = register(
        &app,
        None,
        json!({ "redirect_uris": [REDIRECT], "software_statement_extra": { "x": 1 }, "tos_uri": "https://x" }),
    )
    .await;
    assert_eq!(fine.status, 201, "{}", fine.body);
    let stored = tessera::store::entities::client::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn local_http_redirects_only_with_the_development_setting_and_native_loopback_always() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "open".into());
        env.insert(
            "TESSERA_REGISTRATION_ALLOW_HTTP_LOCALHOST".into(),
            "true".into(),
        );
    })
    .await;
    let dev = register(
        &app,
        None,
        json!({ "redirect_uris": ["http://localhost:3000/cb"] }),
    )
    .await;
    assert_eq!(dev.status, 201, "{}", dev.body);
    let still_https = register(
        &app,
        None,
        json!({ "redirect_uris": ["http://shop.example/cb"] }),
    )
    .await;
    assert_eq!(still_https.status, 400);
    let native = register(
        &app,
        None,
        json!({
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["http://127.0.0.1/cb", "http://[::1]/cb", "com.example.shop:/oauth"],
        }),
    )
    .await;
    assert_eq!(native.status, 201, "{}", native.body);
    assert!(
        native.body.get("client_secret").is_none(),
        "public: no secret"
    );
    assert!(native.body.get("client_secret_expires_at").is_none());
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "open".into());
        env.insert("TESSERA_REGISTRATION_MAX_PER_IP".into(), "2".into());
    })
    .await;
    for _ in 0..2 {
        assert_eq!(register(&app, None, web_client()).await.status, 201);
    }
    let limited = register(&app, None, web_client()).await;
    assert_eq!(limited.status, 429);
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));
}

/// Registers `web_client()` as if through a proxy that says the client is `from`.
async fn register_forwarded(app: &TestApp, from: &str) -> u16 {
    app.client
        .post(app.url("/register"))
        .header("x-forwarded-for", from)
        .json(&web_client())
        .send()
        .await
        .expect("registration")
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_counts_the_forwarded_address() {
    let limited_per = |trusted: Option<&'static str>| {
        common::spawn_app_with(move |env| {
            env.insert("TESSERA_REGISTRATION".into(), "open".into());
            env.insert("TESSERA_REGISTRATION_MAX_PER_IP".into(), "2".into());
            if let Some(trusted) = trusted {
                env.insert("TESSERA_TRUSTED_PROXIES".into(), trusted.into());
            }
        })
    };
    // The test client connects from 127.0.0.1, here a trusted proxy: each
    // forwarded address has its own budget.
    let app = limited_per(Some("127.0.0.0/8, ::1")).await;
    for _ in 0..2 {
        assert_eq!(register_forwarded(&app, "203.0.113.5").await, 201);
    }
    assert_eq!(register_forwarded(&app, "203.0.113.5").await, 429);
    assert_eq!(register_forwarded(&app, "203.0.113.6").await, 201);
    // A client cannot escape by prepending addresses: the rightmost untrusted
    // hop is the one counted.
    assert_eq!(
        register_forwarded(&app, "198.51.100.1, 203.0.113.5").await,
        429
    );

    // Without trusted proxies the header is ignored: everyone here is 127.0.0.1.
    let app = limited_per(None).await;
    assert_eq!(register_forwarded(&app, "203.0.113.5").await, 201);
    assert_eq!(register_forwarded(&app, "203.0.113.6").await, 201);
    assert_eq!(register_forwarded(&app, "203.0.113.7").await, 429);
}

async fn configuration(
    app: &TestApp,
    method: reqwest::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = app.client.request(method, uri);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

async fn refresh_token_for(app: &TestApp, client_id: &str, secret: &str) -> String {
    let browser = Browser::new(app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let (verifier, challenge) = common::oauth::pkce();
    let page = browser
        .get(&common::oauth::authorize_path(
            client_id,
            &challenge,
            &[("scope", "openid offline_access")],
        ))
        .await;
    // Signed in already: the consent page comes straight away.
    let back = redirect_params(&decide(&browser, &page, "allow").await);
    let code = param(&back, "code").unwrap().to_owned();
    let tokens = send(
        app.client
            .post(app.url("/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier.as_str()),
            ]),
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    tokens.body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_client_reads_updates_rotates_and_deletes_its_registration() {
    use reqwest::Method;
    let app = open_app().await;
    let created = register(&app, None, web_client()).await.body;
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let token = created["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = created["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();

    // Read: the right token only.
    for wrong in [None, Some("wrong"), Some(secret.as_str())] {
        let refused = configuration(&app, Method::GET, &uri, wrong, None).await;
        assert_eq!(refused.status, 401, "{wrong:?}");
    }
    // Another client's token does not open this one.
    let other = register(&app, None, web_client()).await.body;
    let other_token = other["registration_access_token"].as_str().unwrap();
    let foreign = configuration(&app, Method::GET, &uri, Some(other_token), None).await;
    assert_eq!(foreign.status, 401);
    assert_eq!(foreign.body["error"], "invalid_token");
    let unknown = app.url("/register/00000000-0000-0000-0000-000000000000");
    let nobody = configuration(&app, Method::GET, &unknown, Some(&token), None).await;
    assert_eq!(nobody.status, 401);
    let read = configuration(&app, Method::GET, &uri, Some(&token), None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["client_name"], "Shop");
    assert_eq!(read.body["client_id"], client_id.as_str());
    assert!(
        read.body.get("client_secret").is_none(),
        "only shown when issued"
    );
    // RFC 7592 §3: the answer carries the registration access token — a new one,
    // since only digests are stored; the one read with stops working.
    let old_token = token;
    let token = read.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(token, old_token);
    let stale = configuration(&app, Method::GET, &uri, Some(&old_token), None).await;
    assert_eq!(stale.status, 401);
    let refresh = refresh_token_for(&app, &client_id, &secret).await;

    // Update: full replacement; client_id must match; a wrong secret is refused.
    let mut update = web_client();
    update["client_name"] = json!("Shop (renamed)");
    update["backchannel_logout_uri"] = json!("https://shop.example/logout");
    let no_id = configuration(&app, Method::PUT, &uri, Some(&token), Some(update.clone())).await;
    assert_eq!(no_id.status, 400);
    assert_eq!(no_id.body["error"], "invalid_client_metadata");
    update["client_id"] = json!(client_id);
    update["client_secret"] = json!("not-the-secret");
    let wrong_secret =
        configuration(&app, Method::PUT, &uri, Some(&token), Some(update.clone())).await;
    assert_eq!(wrong_secret.status, 400);
    update["client_secret"] = json!(secret);
    let updated = configuration(&app, Method::PUT, &uri, Some(&token), Some(update.clone())).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["client_name"], "Shop (renamed)");
    assert_eq!(
        updated.body["backchannel_logout_uri"], "https://shop.example/logout",
        "OIDC Back-Channel Logout metadata is updated like the rest"
    );
    assert_eq!(updated.body["backchannel_logout_session_required"], false);
    assert!(
        updated.body.get("client_secret").is_none(),
        "the secret is kept"
    );
    let token2 = updated.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        token2, token,
        "the registration access token rotates on update"
    );
    assert_eq!(
        configuration(&app, Method::GET, &uri, Some(&token), None)
            .await
            .status,
        401
    );

    // Secret rotation on request: the new secret works, the old one no longer.
    update["rotate_client_secret"] = json!(true);
    let rotated = configuration(&app, Method::PUT, &uri, Some(&token2), Some(update)).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let token3 = rotated.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let grant = |s: String| {
        app.client
            .post(app.url("/token"))
            .basic_auth(&client_id, Some(s))
            .form(&[("grant_type", "client_credentials")])
    };
    assert_eq!(send(grant(new_secret.clone())).await.status, 200);
    assert_eq!(send(grant(secret.clone())).await.status, 401);

    // Delete: wrong token refused; then the client and its refresh tokens are gone.
    let wrong = configuration(&app, Method::DELETE, &uri, Some(&token2), None).await;
    assert_eq!(wrong.status, 401);
    let deleted = app
        .client
        .delete(&uri)
        .bearer_auth(&token3)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        configuration(&app, Method::GET, &uri, Some(&token3), None)
            .await
            .status,
        401
    );
    let revoked = tessera::store::entities::refresh_token::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(!revoked.is_empty() && revoked.iter().all(|r| r.revoked_at.is_some()));
    let after = send(
        app.client
            .post(app.url("/token"))
            .basic_auth(&client_id, Some(new_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ]),
    )
    .await;
    assert_eq!(after.status, 401, "{}", after.body);
    assert_eq!(after.body["error"], "invalid_client");
}

#[tokio::test]
async fn the_consent_page_marks_a_client_that_registered_itself() {
    let app = open_app().await;
    let mut meta = web_client();
    meta["client_name"] = json!("Totally Official Bank");
    meta["client_uri"] = json!("https://bank.example");
    let created = register(&app, None, meta).await.body;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let (_, challenge) = common::oauth::pkce();
    let consent = browser
        .get(&common::oauth::authorize_path(
            created["client_id"].as_str().unwrap(),
            &challenge,
            &[],
        ))
        .await;
    assert_eq!(consent.status, 200);
    assert!(consent.body.contains("Allow Totally Official Bank?"));
    assert!(
        consent.body.contains("registered itself"),
        "{}",
        consent.body
    );
    assert!(consent.body.contains("bank.example"));
}

#[tokio::test]
async fn clients_the_openidconnect_crate_registers_run_the_code_flow() {
    use openidconnect::core::{
        CoreApplicationType, CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod,
        CoreClientRegistrationRequest, CoreGrantType, CoreProviderMetadata,
    };
    use openidconnect::registration::EmptyAdditionalClientMetadata;
    use openidconnect::{
        AccessToken, AuthType, AuthorizationCode, ClientName, CsrfToken, IssuerUrl, LocalizedClaim,
        Nonce, PkceCodeChallenge, RedirectUrl, TokenResponse,
    };

    // The default policy: an operator hands out an initial access token.
    let app = common::spawn_app().await;
    let (initial, _) = create_initial_token(&app.state.db, None, Some(2))
        .await
        .unwrap();
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let http = move |request| common::rp::send(raw.clone(), request);
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let endpoint = metadata
        .registration_endpoint()
        .expect("registration_endpoint")
        .clone();
    let name = |n: &str| Some(LocalizedClaim::from(ClientName::new(n.to_owned())));

    // A public native app with a loopback redirect (RFC 8252), PKCE only.
    let native = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new("http://127.0.0.1/callback".into()).unwrap()],
        EmptyAdditionalClientMetadata::default(),
    )
    .set_client_name(name("Desktop Notes"))
    .set_application_type(Some(CoreApplicationType::Native))
    .set_token_endpoint_auth_method(Some(CoreClientAuthMethod::None))
    .set_grant_types(Some(vec![CoreGrantType::AuthorizationCode]))
    .set_initial_access_token(Some(AccessToken::new(initial.clone())))
    .register_async(&endpoint, &http)
    .await
    .expect("the native app registers");
    assert!(native.client_secret().is_none());

    // A confidential web app sending its secret in the body.
    let web = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(REDIRECT.into()).unwrap()],
        EmptyAdditionalClientMetadata::default(),
    )
    .set_client_name(name("Web Shop"))
    .set_token_endpoint_auth_method(Some(CoreClientAuthMethod::ClientSecretPost))
    .set_initial_access_token(Some(AccessToken::new(initial.clone())))
    .register_async(&endpoint, &http)
    .await
    .expect("the web app registers");
    assert!(web.client_secret().is_some());
    assert!(web.registration_access_token().is_some());

    Browser::new(&app)
        .sign_up("grace@example.com", PASSWORD)
        .await;
    let flows = [
        (
            native.client_id().clone(),
            None,
            // Any port on the loopback interface (RFC 8252 §7.3).
            "http://127.0.0.1:49152/callback",
            "Desktop Notes",
        ),
        (
            web.client_id().clone(),
            web.client_secret().cloned(),
            REDIRECT,
            "Web Shop",
        ),
    ];
    for (client_id, secret, redirect, name) in flows {
        let client = CoreClient::from_provider_metadata(metadata.clone(), client_id, secret)
            .set_auth_type(AuthType::RequestBody)
            .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        let browser = Browser::new(&app);
        let to_login = browser.get(&url.as_str()[app.base.len()..]).await;
        let login = browser
            .get(to_login.location().expect("sign in first"))
            .await;
        let signed_in = browser
            .sign_in_on(&login, "grace@example.com", PASSWORD)
            .await;
        let consent = browser.get(signed_in.location().unwrap()).await;
        assert!(consent.body.contains(&format!("Allow {name}?")));
        assert!(consent.body.contains("registered itself"));
        let decided = decide(&browser, &consent, "allow").await;
        let back = url::Url::parse(decided.location().expect("back to the app")).unwrap();
        assert!(back.as_str().starts_with(redirect), "{back}");
        let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
        assert_eq!(param(&query, "state"), Some(state.secret().as_str()));
        let code = param(&query, "code").expect("a code").to_owned();
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .expect("token exchange");
        let claims = tokens
            .id_token()
            .expect("an id_token")
            .claims(&client.id_token_verifier(), &nonce)
            .expect("a valid id_token");
        assert!(claims.auth_time().is_some());
    }
}

/// Issue 18 §5: consent was given to a client as it presented itself and at the
/// URIs it answered; an RFC 7592 update of those asks the person again, while an
/// update of anything else keeps it.
#[tokio::test]
async fn an_update_of_name_logo_home_page_or_redirect_uris_forgets_consent() {
    use reqwest::Method;
    let app = open_app().await;
    let created = register(&app, None, web_client()).await.body;
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let mut token = created["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = created["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let (_, challenge) = common::oauth::pkce();
    let silent = |redirect: &str| {
        common::oauth::authorize_path(
            &client_id,
            &challenge,
            &[
                ("scope", "openid email"),
                ("prompt", "none"),
                ("redirect_uri", redirect),
            ],
        )
    };
    // The person allows the application on its consent page.
    let allow = || async {
        let page = browser
            .get(&common::oauth::authorize_path(
                &client_id,
                &challenge,
                &[("scope", "openid email")],
            ))
            .await;
        let allowed = redirect_params(&decide(&browser, &page, "allow").await);
        assert!(param(&allowed, "code").is_some());
    };
    allow().await;

    // Each update changes one field of the one before; only what the person
    // saw or where the answer goes forgets the consent.
    let mut body = web_client();
    body["client_id"] = json!(client_id);
    let changes: [(&str, Value, bool); 5] = [
        ("contacts", json!(["ops@app.example"]), false),
        ("client_name", json!("Shop (new owner)"), true),
        ("logo_uri", json!("https://app.example/logo.png"), true),
        ("client_uri", json!("https://app.example/"), true),
        (
            "redirect_uris",
            json!([REDIRECT, "https://app.example/other"]),
            true,
        ),
    ];
    for (field, value, forgets) in changes {
        body[field] = value;
        let updated =
            configuration(&app, Method::PUT, &uri, Some(&token), Some(body.clone())).await;
        assert_eq!(updated.status, 200, "{field}: {}", updated.body);
        token = updated.body["registration_access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let answer = redirect_params(&browser.get(&silent(REDIRECT)).await);
        if !forgets {
            assert!(param(&answer, "code").is_some(), "{field}: {answer:?}");
            continue;
        }
        assert_eq!(param(&answer, "error"), Some("consent_required"), "{field}");
        // Allowed again for the next round.
        allow().await;
    }
}

/// Issue 18 §5 (RFC 9700 §4.11.2): anyone may register a client with any redirect
/// URI, so before anyone signed in, an error for a self-registered client is a
/// page with a link — never an automatic redirect that would make this server an
/// open redirector. A client made by an operator still gets the redirect.
#[tokio::test]
async fn a_self_registered_client_gets_errors_before_sign_in_as_a_link() {
    let app = open_app().await;
    let created = register(&app, None, web_client()).await.body;
    let self_registered = created["client_id"].as_str().unwrap().to_owned();
    let operators = common::oauth::register(&app, common::oauth::new_client()).await;
    let (_, challenge) = common::oauth::pkce();
    for (changes, error) in [
        (vec![("prompt", "none")], "login_required"),
        (vec![("response_mode", "fragment")], "invalid_request"),
    ] {
        let path = common::oauth::authorize_path(&self_registered, &challenge, &changes);
        let page = Browser::new(&app).get(&path).await;
        assert_eq!(page.status, 400, "{error}");
        assert!(page.location().is_none(), "{error}");
        assert!(
            page.body
                .contains(&format!("href=\"{REDIRECT}?error={error}")),
            "{error}: {}",
            page.body
        );
        let path = common::oauth::authorize_path(&operators.id, &challenge, &changes);
        let redirected = Browser::new(&app).get(&path).await;
        assert_eq!(param(&redirect_params(&redirected), "error"), Some(error));
    }
}
