//! RFC 6749 §4.4: a client acting for itself.

mod common;

use common::TestApp;
use common::oauth::{TestClient, new_client, register};
use serde_json::Value;
use tessera::oauth::clients::{AuthMethod, GrantType};

async fn service(app: &TestApp) -> TestClient {
    let mut new = new_client();
    new.name = "Billing job".into();
    new.redirect_uris = vec![];
    new.grant_types = vec![GrantType::ClientCredentials];
    register(app, new).await
}

async fn request(
    app: &TestApp,
    client: &TestClient,
    secret: Option<&str>,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    app.client
        .post(app.url("/token"))
        .basic_auth(&client.id, secret.or(client.secret.as_deref()))
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_service_gets_an_access_token_for_itself() {
    let app = common::spawn_app().await;
    let client = service(&app).await;
    let response = request(&app, &client, None, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(
        body.get("refresh_token").is_none() && body.get("id_token").is_none(),
        "{body}"
    );
    // User-only scopes are never granted to a client acting for itself.
    assert_eq!(body["scope"], "api:read email profile");
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(body["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(claims["sub"], client.id);
    assert_eq!(claims["client_id"], client.id);
    assert!(claims.get("auth_time").is_none() && claims.get("amr").is_none());

    let introspected: Value = app
        .client
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
}

#[tokio::test]
async fn the_requested_scope_is_narrowed_and_unknown_scopes_refused() {
    let app = common::spawn_app().await;
    let client = service(&app).await;
    let narrow: Value = request(&app, &client, None, Some("api:read"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(narrow["scope"], "api:read");
    let only_openid = request(&app, &client, None, Some("openid")).await;
    assert_eq!(
        only_openid.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let unknown = request(&app, &client, None, Some("admin")).await;
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

#[tokio::test]
async fn only_registered_confidential_clients_may_use_it() {
    let app = common::spawn_app().await;
    let client = service(&app).await;
    let wrong = request(&app, &client, Some("not-the-secret"), None).await;
    assert_eq!(wrong.status(), 401);

    let mut code_client = new_client();
    code_client.first_party = true;
    let code_only = register(&app, code_client).await;
    let refused = request(&app, &code_only, None, None).await;
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );

    let mut public = new_client();
    public.auth_method = AuthMethod::None;
    public.grant_types = vec![GrantType::ClientCredentials];
    let created = tessera::store::clients::create(&app.state.db, public).await;
    assert!(
        created.is_err(),
        "a public client cannot be registered for client_credentials"
    );
}

/// Issue 18 §5: a client acting for itself is no member of any organization: no
/// `org`, `org:{id}` or `orgs` scope, no organization claims.
#[tokio::test]
async fn a_service_token_carries_no_organization_scope_or_claims() {
    let app = common::spawn_app().await;
    let mut new = new_client();
    new.redirect_uris = vec![];
    new.grant_types = vec![GrantType::ClientCredentials];
    new.scope = "api:read org orgs".into();
    let client = register(&app, new).await;
    for asked in [
        None,
        Some("api:read org orgs"),
        Some("api:read org:0190d3c4-0000-7000-8000-000000000000"),
    ] {
        let response = request(&app, &client, None, asked).await;
        assert_eq!(response.status(), 200, "{asked:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["scope"], "api:read", "{asked:?}");
        let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(
            body["access_token"].as_str().unwrap(),
        )
        .unwrap()
        .claims;
        for claim in ["orgs", "org_id", "org_role", "org_slug"] {
            assert!(claims.get(claim).is_none(), "{claim} in {claims}");
        }
    }
    // Nothing but organization scopes: nothing to grant.
    let response = request(&app, &client, None, Some("org orgs")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
}
