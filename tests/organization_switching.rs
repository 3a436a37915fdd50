//! Switching organization on the refresh grant (issue 22): `organization_id`
//! gives this access token another of the person's organizations (with the
//! role held there now); the refresh family keeps its own.

mod common;

use common::oauth::{authorize_path, exchange, new_client, param, pkce, redirect_params, register};
use common::{Browser, PASSWORD, TestApp, jwt_claims};
use serde_json::Value;
use tessera::oauth::clients::GrantType;
use tessera::orgs::{self, Role};
use uuid::Uuid;

async fn org_with(app: &TestApp, slug: &str, user: Uuid, role: Role) -> Uuid {
    let org = orgs::create(&app.state.db, &format!("{slug} Inc"), Some(slug))
        .await
        .unwrap();
    orgs::add_member(&app.state.db, org.id, user, role)
        .await
        .unwrap();
    org.id
}

/// Ada, owner of Acme and member of Globex, has tokens for `scope` in Acme
/// (picked on the organization page): the browser, the client, Acme, Globex
/// and the token response.
async fn ada_in_acme(app: &TestApp, scope: &str) -> (common::oauth::TestClient, Uuid, Uuid, Value) {
    let browser = Browser::new(app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let ada = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let acme = org_with(app, "acme", ada, Role::Owner).await;
    let globex = org_with(app, "globex", ada, Role::Member).await;
    let mut new = new_client();
    new.first_party = true;
    new.scope = "openid offline_access org orgs".into();
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    let client = register(app, new).await;
    let (verifier, challenge) = pkce();
    let picker = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", scope)]))
        .await;
    let mut fields = common::oauth::hidden_fields(&picker.body);
    fields.push(("org_choice".into(), acme.to_string()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = browser.post("/authorize/org", &form).await;
    let code = param(&redirect_params(&page), "code")
        .unwrap_or_else(|| panic!("no code: {}", page.body))
        .to_owned();
    let tokens: Value = exchange(app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwt_claims(tokens["access_token"].as_str().unwrap())["org_id"],
        acme.to_string()
    );
    (client, acme, globex, tokens)
}

async fn refresh(
    app: &TestApp,
    client: &common::oauth::TestClient,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend_from_slice(extra);
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_refresh_switches_this_tokens_organization_and_the_family_keeps_its_own() {
    let app = common::spawn_app().await;
    let (client, acme, globex, tokens) = ada_in_acme(&app, "openid offline_access org").await;
    let (status, switched) = refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        &[("organization_id", &globex.to_string())],
    )
    .await;
    assert_eq!(status, 200, "{switched}");
    let access = jwt_claims(switched["access_token"].as_str().unwrap());
    assert_eq!(access["org_id"], globex.to_string());
    assert_eq!(access["org_slug"], "globex");
    assert_eq!(access["org_role"], "member", "the role held there");
    let id_token = jwt_claims(switched["id_token"].as_str().unwrap());
    assert_eq!(id_token["org_id"], globex.to_string());
    // The family rotated as usual and kept its grant: without organization_id
    // the next token is Acme's again.
    let (status, next) = refresh(
        &app,
        &client,
        switched["refresh_token"].as_str().unwrap(),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        jwt_claims(next["access_token"].as_str().unwrap())["org_id"],
        acme.to_string()
    );
}

#[tokio::test]
async fn switching_needs_the_org_scope_a_membership_and_an_id_and_a_refusal_spends_nothing() {
    let app = common::spawn_app().await;
    let (client, _acme, _globex, tokens) = ada_in_acme(&app, "openid offline_access org").await;
    let token = tokens["refresh_token"].as_str().unwrap();
    let stranger = orgs::create(&app.state.db, "Initech", Some("initech"))
        .await
        .unwrap();
    let (status, body) = refresh(
        &app,
        &client,
        token,
        &[("organization_id", &stranger.id.to_string())],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{body}"
    );
    let (status, body) = refresh(&app, &client, token, &[("organization_id", "acme")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(body["error_description"].as_str().unwrap().contains("UUID"));
    // Refused before anything was spent: the token still works.
    assert_eq!(refresh(&app, &client, token, &[]).await.0, 200);
}

#[tokio::test]
async fn a_grant_without_org_or_orgs_cannot_switch() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let ada = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let acme = org_with(&app, "acme", ada, Role::Owner).await;
    let mut new = new_client();
    new.first_party = true;
    new.org_optional = true;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    let client = register(&app, new).await;
    let (verifier, challenge) = pkce();
    let code =
        common::oauth::code_with_scope(&browser, &client.id, &challenge, "openid offline_access")
            .await;
    let tokens: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let (status, body) = refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().unwrap(),
        &[("organization_id", &acme.to_string())],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("org or orgs scope"),
        "{body}"
    );
}
