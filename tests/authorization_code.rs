//! The authorization code flow with PKCE: `/authorize`, consent, `/token`.

mod common;

use common::oauth::{
    REDIRECT, authorize_path, code_for, decide, exchange, new_client, param, pkce, redirect_params,
    register,
};
use common::{Browser, PASSWORD};
use serde_json::Value;
use tessera::oauth::clients::AuthMethod;

async fn signed_in_browser(app: &common::TestApp) -> Browser {
    let browser = Browser::new(app);
    assert_eq!(
        browser.sign_up("ada@example.com", PASSWORD).await.status,
        303
    );
    browser
}

async fn first_party(app: &common::TestApp) -> common::oauth::TestClient {
    let mut new = new_client();
    new.first_party = true;
    register(app, new).await
}

fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_first_party_client_gets_a_code_and_an_es256_jwt_access_token() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (verifier, challenge) = pkce();

    let page = browser
        .get(&authorize_path(&client.id, &challenge, &[]))
        .await;
    assert_eq!(page.status, 303, "first-party clients skip consent");
    let params = redirect_params(&page);
    // RFC 9207: the issuer travels with the response; the state comes back unchanged.
    assert_eq!(param(&params, "iss"), Some(app.base.as_str()));
    assert_eq!(param(&params, "state"), Some("st-123"));
    let code = param(&params, "code").unwrap();
    assert!(code.len() >= 43, "at least 256 bits");

    let response = exchange(&app, &client, code, &verifier).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "openid profile");
    let token = body["access_token"].as_str().unwrap();

    // RFC 9068, verified by an independent library from the published JWKS alone.
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(format!("{:?}", header.alg), "ES256");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(&header.kid.unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[app.base.as_str()]);
    validation.set_issuer(&[app.base.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims;
    let user = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["client_id"], client.id);
    assert_eq!(claims["scope"], "openid profile");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert!(claims["auth_time"].is_i64() && claims["jti"].is_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

#[tokio::test]
async fn a_third_party_client_needs_consent_which_is_remembered() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = register(&app, new_client()).await;
    let (_, challenge) = pkce();

    let consent = browser
        .get(&authorize_path(&client.id, &challenge, &[]))
        .await;
    assert_eq!(consent.status, 200);
    assert!(consent.body.contains("Allow Example App?"));
    assert!(consent.body.contains("See your basic profile"));
    assert!(consent.body.contains(">Allow</button>") && consent.body.contains(">Deny</button>"));
    let allowed = decide(&browser, &consent, "allow").await;
    assert!(param(&redirect_params(&allowed), "code").is_some());

    // Remembered for this scope set…
    let again = browser
        .get(&authorize_path(&client.id, &challenge, &[]))
        .await;
    assert_eq!(again.status, 303);
    // …but asked again for more, or when the client insists.
    let wider = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid profile email")],
        ))
        .await;
    assert_eq!(wider.status, 200);
    let forced = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("prompt", "consent")],
        ))
        .await;
    assert_eq!(forced.status, 200);
    assert!(forced.body.contains("Allow Example App?"));
}

#[tokio::test]
async fn denying_consent_returns_access_denied_with_state_and_iss() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = register(&app, new_client()).await;
    let (_, challenge) = pkce();
    let consent = browser
        .get(&authorize_path(&client.id, &challenge, &[]))
        .await;
    let denied = decide(&browser, &consent, "deny").await;
    let params = redirect_params(&denied);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(app.base.as_str()));
    assert!(param(&params, "code").is_none());
}

#[tokio::test]
async fn the_consent_form_is_csrf_protected() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = register(&app, new_client()).await;
    let (_, challenge) = pkce();
    let consent = browser
        .get(&authorize_path(&client.id, &challenge, &[]))
        .await;
    let mut fields = common::oauth::hidden_fields(&consent.body);
    fields.retain(|(k, _)| k != "csrf");
    fields.push(("decision".into(), "allow".into()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let refused = browser.post("/authorize/consent", &form).await;
    assert_eq!(refused.status, 403);
    assert!(refused.location().is_none());
}

#[tokio::test]
async fn without_a_session_the_user_signs_in_and_comes_back_to_the_same_request() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let client = first_party(&app).await;
    let (verifier, challenge) = pkce();
    let browser = Browser::new(&app);
    let path = authorize_path(&client.id, &challenge, &[("login_hint", "ada@example.com")]);
    let to_login = browser.get(&path).await;
    assert_eq!(to_login.status, 303);
    let login_url = to_login.location().unwrap().to_owned();
    assert!(
        login_url.starts_with("/login?return_to=%2Fauthorize%3F"),
        "{login_url}"
    );
    let login_page = browser.get(&login_url).await;
    assert!(
        login_page.body.contains("value=\"ada@example.com\""),
        "login_hint pre-fills Email"
    );
    let signed = browser
        .sign_in_on(&login_page, "ada@example.com", PASSWORD)
        .await;
    let back = signed.location().unwrap().to_owned();
    assert!(back.starts_with("/authorize?"), "{back}");
    let done = browser.get(&back).await;
    assert_eq!(
        done.status,
        303,
        "{back} -> {} {:?}",
        done.body,
        done.location()
    );
    let code = param(&redirect_params(&done), "code").unwrap().to_owned();
    assert_eq!(
        exchange(&app, &client, &code, &verifier).await.status(),
        200
    );
}

#[tokio::test]
async fn prompt_none_without_a_session_answers_login_required() {
    let app = common::spawn_app().await;
    let client = first_party(&app).await;
    let (_, challenge) = pkce();
    let page = Browser::new(&app)
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("prompt", "none")],
        ))
        .await;
    let params = redirect_params(&page);
    assert_eq!(param(&params, "error"), Some("login_required"));
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(app.base.as_str()));
}

#[tokio::test]
async fn prompt_none_without_consent_answers_consent_required() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = register(&app, new_client()).await;
    let (_, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(
        param(&redirect_params(&page), "error"),
        Some("consent_required")
    );
}

#[tokio::test]
async fn prompt_login_and_max_age_force_a_fresh_sign_in() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (_, challenge) = pkce();

    let forced = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("prompt", "login")],
        ))
        .await;
    assert_eq!(forced.status, 303);
    let login = forced.location().unwrap().to_owned();
    assert!(
        login.starts_with("/login?") && login.contains("prompt=login"),
        "{login}"
    );
    let page = browser.get(&login).await;
    assert_eq!(
        page.status, 200,
        "the form is shown although a session exists"
    );
    // The way back no longer asks for a fresh sign-in.
    let return_to = common::oauth::hidden_fields(&page.body)
        .into_iter()
        .find(|(k, _)| k == "return_to")
        .unwrap()
        .1;
    assert!(!return_to.contains("prompt=login"), "{return_to}");

    // The sign-in is made ten seconds old by ageing the stored session.
    common::edit_sessions(&app, None, |s| {
        s.auth_time = sea_orm::Set(chrono::Utc::now() - chrono::Duration::seconds(10));
    })
    .await;
    let stale = browser
        .get(&authorize_path(&client.id, &challenge, &[("max_age", "1")]))
        .await;
    assert!(
        stale.location().unwrap().starts_with("/login?"),
        "max_age=1 after ten seconds"
    );
    let fresh_enough = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("max_age", "3600")],
        ))
        .await;
    assert!(param(&redirect_params(&fresh_enough), "code").is_some());
}

#[tokio::test]
async fn an_unknown_client_or_unregistered_redirect_uri_gets_a_page_never_a_redirect() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (_, challenge) = pkce();
    let cases = [
        authorize_path("no-such-client", &challenge, &[]),
        authorize_path(
            &client.id,
            &challenge,
            &[("redirect_uri", "https://evil.example/callback")],
        ),
        authorize_path(
            &client.id,
            &challenge,
            &[("redirect_uri", "https://app.example/callback/")],
        ),
        authorize_path(&client.id, &challenge, &[("redirect_uri", "")]),
        authorize_path(&client.id, &challenge, &[("client_id", "")]),
        format!(
            "{}&state=again",
            authorize_path(&client.id, &challenge, &[])
        ),
    ];
    for path in cases {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.location().is_none(), "{path} redirected");
        assert!(page.body.contains("<html"), "{path}");
    }
}

#[tokio::test]
async fn pkce_is_required_and_s256_only() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (_, challenge) = pkce();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("code_challenge", ""), ("code_challenge_method", "")],
            "code_challenge is required",
        ),
        (&[("code_challenge_method", "plain")], "must be S256"),
        (&[("code_challenge_method", "")], "must be S256"),
        (&[("code_challenge", "too-short")], "base64url SHA-256"),
    ];
    for (changes, description) in cases {
        let page = browser
            .get(&authorize_path(&client.id, &challenge, changes))
            .await;
        let params = redirect_params(&page);
        assert_eq!(
            param(&params, "error"),
            Some("invalid_request"),
            "{changes:?}"
        );
        assert!(
            param(&params, "error_description")
                .unwrap()
                .contains(description),
            "{changes:?}"
        );
        assert_eq!(param(&params, "state"), Some("st-123"));
        assert_eq!(param(&params, "iss"), Some(app.base.as_str()));
    }
}

#[tokio::test]
async fn other_request_errors_go_back_to_the_client() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (_, challenge) = pkce();
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("response_type", "token")], "unsupported_response_type"),
        (
            &[("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (&[("scope", "admin")], "invalid_scope"),
        (
            &[("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
        (
            &[("request_uri", "https://app.example/r")],
            "request_uri_not_supported",
        ),
        (&[("prompt", "none login")], "invalid_request"),
    ];
    for (changes, error) in cases {
        let page = browser
            .get(&authorize_path(&client.id, &challenge, changes))
            .await;
        let params = redirect_params(&page);
        assert_eq!(param(&params, "error"), Some(error), "{changes:?}");
        assert!(param(&params, "error_description").is_some());
    }
}

#[tokio::test]
async fn the_authorization_request_works_by_post_and_ignores_unknown_parameters() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (verifier, challenge) = pkce();
    let path = authorize_path(
        &client.id,
        &challenge,
        &[
            ("scope", "profile openid"),
            ("display", "page"),
            ("ui_locales", "fr"),
            ("acr_values", "1"),
            ("foo", "bar"),
        ],
    );
    let query = path.trim_start_matches("/authorize?");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let form: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = browser.post("/authorize", &form).await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let body: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "openid profile");
}

#[tokio::test]
async fn form_post_delivers_the_response_in_an_auto_submitting_page() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (_, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("response_mode", "form_post")],
        ))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("action=\"{REDIRECT}\"")));
    let fields = common::oauth::hidden_fields(&page.body);
    assert!(param(&fields, "code").is_some());
    assert_eq!(param(&fields, "state"), Some("st-123"));
    assert_eq!(param(&fields, "iss"), Some(app.base.as_str()));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("form-action https://app.example"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(page.body.contains("<script src=\"/static/form_post.js"));
}

#[tokio::test]
async fn a_code_works_once_and_its_replay_revokes_the_token_it_issued() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (verifier, challenge) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    let first: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let jti = claims_of(first["access_token"].as_str().unwrap())["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked_key = tessera::oauth::codes::revoked_jti_key(&jti);
    assert!(app.state.cache.get(&revoked_key).await.unwrap().is_none());

    let replay = exchange(&app, &client, &code, &verifier).await;
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    assert!(
        app.state.cache.get(&revoked_key).await.unwrap().is_some(),
        "the first token is revoked"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_code_verifier_is_refused() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (_, challenge) = pkce();
    let (other_verifier, _) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    let wrong = exchange(&app, &client, &code, &other_verifier).await;
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );

    let code = code_for(&browser, &client, &challenge).await;
    let missing = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
}

/// A code exchange's form, without client authentication.
fn exchange_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}

/// A token request with `form` as its body and, when given, HTTP Basic credentials.
async fn token_request(
    app: &common::TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let request = app.client.post(app.url("/token")).form(form);
    let request = match basic {
        Some((id, secret)) => request.basic_auth(id, Some(secret)),
        None => request,
    };
    request.send().await.unwrap()
}

/// The precise refusal of a client that authenticated other than it registered.
async fn refused_for_its_method(response: reqwest::Response, registered: &str, used: &str) {
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(
        body["error_description"],
        format!("this client is registered to authenticate with {registered}, not {used}")
    );
}

#[tokio::test]
async fn client_authentication_is_enforced_at_the_token_endpoint() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let (verifier, challenge) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    let form = exchange_form(&code, &verifier);
    let wrong = token_request(&app, &form, Some((&client.id, "not-the-secret"))).await;
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    let mut without = form.clone();
    without.push(("client_id", &client.id));
    let missing = token_request(&app, &without, None).await;
    assert_eq!(
        missing.status(),
        401,
        "a confidential client must authenticate"
    );

    // The right secret in the body is refused too: this client registered
    // client_secret_basic (RFC 7591 §2), so only Basic authenticates it.
    let mut post = without.clone();
    let secret = client.secret.clone().unwrap();
    post.push(("client_secret", &secret));
    let other_method = token_request(&app, &post, None).await;
    refused_for_its_method(other_method, "client_secret_basic", "client_secret_post").await;

    // Basic still works: nothing was spent by the refusals.
    let ok = token_request(&app, &form, Some((&client.id, &secret))).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_client_secret_post_client_authenticates_in_the_body_only() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let mut new = new_client();
    new.first_party = true;
    new.auth_method = AuthMethod::ClientSecretPost;
    let client = register(&app, new).await;
    let secret = client.secret.clone().expect("a confidential client");
    let (verifier, challenge) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    let form = exchange_form(&code, &verifier);

    let basic = token_request(&app, &form, Some((&client.id, &secret))).await;
    refused_for_its_method(basic, "client_secret_post", "client_secret_basic").await;

    let mut post = form.clone();
    post.push(("client_id", &client.id));
    post.push(("client_secret", &secret));
    let ok = token_request(&app, &post, None).await;
    assert_eq!(ok.status(), 200, "the code was not spent by the refusal");
}

#[tokio::test]
async fn a_public_client_redeems_with_pkce_and_no_secret() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let mut new = new_client();
    new.auth_method = AuthMethod::None;
    new.first_party = true;
    let client = register(&app, new).await;
    assert!(client.secret.is_none());
    let (verifier, challenge) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    assert_eq!(
        exchange(&app, &client, &code, &verifier).await.status(),
        200
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_redirect_uri() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = first_party(&app).await;
    let other = first_party(&app).await;
    let (verifier, challenge) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    let stolen = exchange(&app, &other, &code, &verifier).await;
    assert_eq!(
        stolen.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let code = code_for(&browser, &client, &challenge).await;
    let moved = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://app.example/other"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        moved.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn malformed_token_requests_get_rfc6749_errors() {
    let app = common::spawn_app().await;
    let client = first_party(&app).await;
    let secret = client.secret.clone().unwrap();
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/token"))
            .basic_auth(&client.id, Some(&secret))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (post("{}", "application/json").await.unwrap(), "invalid_request"),
        (post("grant_type=password&username=a&password=b", "application/x-www-form-urlencoded").await.unwrap(), "unsupported_grant_type"),
        (post("grant_type=authorization_code&grant_type=authorization_code", "application/x-www-form-urlencoded").await.unwrap(), "invalid_request"),
        (post("code=abc", "application/x-www-form-urlencoded").await.unwrap(), "invalid_request"),
        (post("grant_type=authorization_code&code=nope&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&code_verifier=0123456789012345678901234567890123456789abc", "application/x-www-form-urlencoded").await.unwrap(), "invalid_grant"),
    ];
    for (response, error) in cases {
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{body}");
        assert!(body["error_description"].is_string());
    }
    let get = app.get("/token").await;
    assert_eq!(get.status(), 405);
}

#[tokio::test]
async fn native_clients_may_use_any_loopback_port() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let mut new = new_client();
    new.native = true;
    new.auth_method = AuthMethod::None;
    new.first_party = true;
    new.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    let client = register(&app, new).await;
    let (_, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("redirect_uri", "http://127.0.0.1:49152/cb")],
        ))
        .await;
    let location = page.location().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:49152/cb?code="),
        "{location}"
    );
}

#[tokio::test]
async fn discovery_advertises_the_code_flow_exactly() {
    let app = common::spawn_app().await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/authorize", app.base)
    );
    assert_eq!(doc["token_endpoint"], format!("{}/token", app.base));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(doc["request_parameter_supported"], false);
}

#[tokio::test]
async fn a_public_client_without_pkce_is_refused() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let mut new = new_client();
    new.auth_method = AuthMethod::None;
    new.first_party = true;
    let client = register(&app, new).await;
    let (_, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        ))
        .await;
    let params = redirect_params(&page);
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert!(param(&params, "code").is_none());
}

/// Issue 18 §6: the browser-facing POST endpoints read forms as strictly as
/// `/token`: a value that is not UTF-8 is refused with a page, never turned into
/// a different value (U+FFFD) and echoed to the client.
#[tokio::test]
async fn posted_forms_that_are_not_utf8_are_refused_with_a_page() {
    let app = common::spawn_app().await;
    let browser = signed_in_browser(&app).await;
    let client = register(&app, new_client()).await;
    let (_, challenge) = pkce();
    // With the page's CSRF token, so the forms reach their handlers.
    let csrf = browser.get("/account").await.csrf();
    let query = format!(
        "{}&csrf={csrf}",
        authorize_path(&client.id, &challenge, &[("state", "")]).trim_start_matches("/authorize?")
    );
    for action in [
        "/authorize",
        "/authorize/consent",
        "/authorize/org",
        "/end_session",
        "/end_session/confirm",
    ] {
        let response = browser
            .client
            .post(app.url(action))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{query}&state=%FF%FE"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{action}");
        assert!(response.headers().get("location").is_none(), "{action}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/html"), "{action}");
        let body = response.text().await.unwrap();
        assert!(body.contains("not valid UTF-8"), "{action}: {body}");
    }
}
