//! Interop with a relying party nobody here wrote: the `openidconnect` crate runs
//! discovery, the code + PKCE flow through the real sign-in and consent pages,
//! validates the id_token (signature, nonce, at_hash), reads userinfo and refreshes;
//! `jsonwebtoken` verifies the access token from the published JWKS alone.

mod common;

use common::oauth::{REDIRECT, decide, param, redirect_params};
use common::{Browser, PASSWORD};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};
use tessera::tokens::Algorithm;

use common::rp::send;

#[tokio::test]
async fn the_openidconnect_crate_completes_the_flow_validates_tokens_reads_userinfo_and_refreshes()
{
    let app = common::spawn_app().await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let http = move |request: HttpRequest| send(raw.clone(), request);

    let (registered, secret) = tessera::store::clients::create(
        &app.state.db,
        NewClient {
            name: "Interop RP".into(),
            redirect_uris: vec![REDIRECT.into()],
            auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scope: "openid profile email offline_access".into(),
            first_party: false,
            native: false,
            id_token_alg: Algorithm::Rs256,
            post_logout_redirect_uris: vec![],
            org_optional: false,
            ..NewClient::default()
        },
    )
    .await
    .unwrap();

    // Discovery.
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.client_id.clone()),
        Some(ClientSecret::new(secret.unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // A person: signs up elsewhere, then follows the link through sign-in and consent.
    Browser::new(&app)
        .sign_up("grace@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    let path = &auth_url.as_str()[app.base.len()..];
    let to_login = browser.get(path).await;
    let login_page = browser
        .get(to_login.location().expect("sent to sign in"))
        .await;
    let signed_in = browser
        .sign_in_on(&login_page, "grace@example.com", PASSWORD)
        .await;
    let consent = browser.get(signed_in.location().unwrap()).await;
    assert!(consent.body.contains("Allow Interop RP?"));
    let back = redirect_params(&decide(&browser, &consent, "allow").await);
    assert_eq!(param(&back, "state"), Some(csrf_state.secret().as_str()));
    let code = param(&back, "code").unwrap().to_owned();

    // The token exchange and id_token validation, by the library's own rules.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("an id_token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("a valid id_token");
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    assert!(claims.auth_time().is_some());

    // Userinfo.
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some("grace@example.com"));

    // The access token, verified as a resource server would: JWKS only.
    let access = tokens.access_token().secret();
    let header = jsonwebtoken::decode_header(access).unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[app.base.as_str()]);
    validation.set_issuer(&[app.base.as_str()]);
    let access_claims = jsonwebtoken::decode::<serde_json::Value>(access, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(access_claims["sub"], claims.subject().as_str());

    // Refresh, rotating.
    let refresh = tokens
        .refresh_token()
        .expect("a refresh token for offline_access");
    let refreshed = client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret()
    );
    // A retry with the spent token (a second tab) within the grace window gets
    // the same successor, not a revoked family.
    let again = client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("a retry within the grace window");
    assert_eq!(
        again.refresh_token().unwrap().secret(),
        refreshed.refresh_token().unwrap().secret()
    );
    // Once the successor is used, the spent token is reuse.
    client
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .expect("the successor rotates");
    let replayed = client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(replayed.is_err(), "the spent refresh token is refused");
}
