//! APIs as data (issue 20, part 1): `tessera api create|list|show|grant|delete`,
//! tokens for an API carry its audience and only the API scopes the person's
//! role in the token's organization holds; an unknown API is `invalid_target`.

mod common;

use common::oauth::{
    TestClient, authorize_path, exchange, new_client, param, pkce, redirect_params, refresh,
    register,
};
use common::{Browser, PASSWORD, TestApp};

/// The CLI as the tests here run it: TESSERA_RESOURCES lists a legacy API.
fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    common::cli_with(
        app,
        &[("TESSERA_RESOURCES", "https://legacy.example.com")],
        args,
    )
}

fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let (ok, out, err) = cli(app, args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}
use serde_json::Value;
use tessera::oauth::clients::GrantType;
use tessera::orgs::{self, Role};

const AUDIENCE: &str = "https://projects.example.com";

/// The Projects API: three scopes; members hold read, admins read and write.
fn projects_api(app: &TestApp) {
    let created = cli_json(
        app,
        &[
            "api",
            "create",
            "--name",
            "Projects API",
            "--audience",
            AUDIENCE,
            "--scope",
            "projects:write",
            "--scope",
            "projects:read",
            "--scope",
            "projects:admin",
            "--json",
        ],
    );
    assert_eq!(
        created["scopes"],
        serde_json::json!(["projects:admin", "projects:read", "projects:write"])
    );
    let args = |role, scopes: &'static [&'static str]| {
        let mut a = vec!["api", "grant", "--api", AUDIENCE, "--role", role, "--json"];
        for s in scopes {
            a.extend(["--scope", s]);
        }
        a
    };
    cli_json(app, &args("member", &["projects:read"]));
    let shown = cli_json(app, &args("admin", &["projects:read", "projects:write"]));
    assert_eq!(shown["member_scopes"], serde_json::json!(["projects:read"]));
    assert_eq!(
        shown["admin_scopes"],
        serde_json::json!(["projects:read", "projects:write"])
    );
}

async fn api_client(app: &TestApp) -> TestClient {
    let mut new = new_client();
    new.first_party = true;
    new.scope = "openid org offline_access projects:read projects:write projects:admin".into();
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    register(app, new).await
}

use common::jwt_claims as claims;

/// Signs `email` up with `role` in a fresh organization.
async fn person(app: &TestApp, email: &str, role: Role) -> (Browser, uuid::Uuid) {
    let browser = Browser::new(app);
    browser.sign_up(email, PASSWORD).await;
    let user = tessera::identity::users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap();
    let slug = email.split('@').next().unwrap();
    let org = orgs::create(&app.state.db, &format!("{slug} Inc"), Some(slug))
        .await
        .unwrap();
    orgs::add_member(&app.state.db, org.id, user.id, role)
        .await
        .unwrap();
    (browser, org.id)
}

/// A code flow asking for every Projects scope, for `resource`.
async fn tokens(
    app: &TestApp,
    browser: &Browser,
    client: &TestClient,
    resource: &str,
) -> (u16, Value) {
    let (verifier, challenge) = pkce();
    let scope = "openid org offline_access projects:read projects:write projects:admin";
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", scope), ("resource", resource)],
        ))
        .await;
    let params = redirect_params(&page);
    let Some(code) = param(&params, "code") else {
        return (400, serde_json::json!({ "error": param(&params, "error") }));
    };
    let response = exchange(app, client, code, &verifier).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_token_for_an_api_carries_its_audience_and_the_scopes_of_the_persons_role() {
    let app = common::spawn_app().await;
    projects_api(&app);
    let client = api_client(&app).await;
    let api_scopes = |body: &Value| -> Vec<String> {
        claims(body["access_token"].as_str().expect("access token"))["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .filter(|s| s.starts_with("projects:"))
            .map(str::to_owned)
            .collect()
    };
    for (email, role, expected) in [
        (
            "olga@example.com",
            Role::Owner,
            &["projects:admin", "projects:read", "projects:write"][..],
        ),
        (
            "adam@example.com",
            Role::Admin,
            &["projects:read", "projects:write"][..],
        ),
        ("mia@example.com", Role::Member, &["projects:read"][..]),
    ] {
        let (browser, org) = person(&app, email, role).await;
        let (status, body) = tokens(&app, &browser, &client, AUDIENCE).await;
        assert_eq!(status, 200, "{email}: {body}");
        let access = claims(body["access_token"].as_str().unwrap());
        assert_eq!(access["aud"], AUDIENCE, "{email}");
        assert_eq!(access["org_id"], org.to_string(), "{email}");
        assert_eq!(api_scopes(&body), expected, "{email}");
        // The response's scope says what the token carries (RFC 6749 §5.1).
        assert_eq!(body["scope"], access["scope"], "{email}");
    }
}

#[tokio::test]
async fn a_demoted_person_loses_the_scopes_at_the_next_refresh_and_a_promotion_brings_them_back() {
    let app = common::spawn_app().await;
    projects_api(&app);
    let client = api_client(&app).await;
    let (browser, org) = person(&app, "adam@example.com", Role::Admin).await;
    let (status, body) = tokens(&app, &browser, &client, AUDIENCE).await;
    assert_eq!(status, 200, "{body}");
    let user = tessera::identity::users::find_by_email(&app.state.db, "adam@example.com")
        .await
        .unwrap()
        .unwrap();
    let scope_of = |body: &Value| claims(body["access_token"].as_str().unwrap())["scope"].clone();
    assert!(scope_of(&body).as_str().unwrap().contains("projects:write"));

    orgs::set_role(&app.state.db, org, user.id, Role::Member)
        .await
        .unwrap();
    let (status, demoted) = refresh(&app, &client, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{demoted}");
    assert_eq!(
        scope_of(&demoted),
        "offline_access openid org projects:read"
    );

    orgs::set_role(&app.state.db, org, user.id, Role::Admin)
        .await
        .unwrap();
    let (status, promoted) =
        refresh(&app, &client, demoted["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(
        scope_of(&promoted),
        "offline_access openid org projects:read projects:write"
    );
}

#[tokio::test]
async fn unknown_apis_are_invalid_target_and_configured_ones_keep_working_without_scopes() {
    let app = common::spawn_app_with(|env| {
        env.insert(
            "TESSERA_RESOURCES".into(),
            "https://legacy.example.com".into(),
        );
    })
    .await;
    projects_api(&app);
    let client = api_client(&app).await;
    let (browser, _) = person(&app, "mia@example.com", Role::Member).await;
    let (status, body) = tokens(&app, &browser, &client, "https://nowhere.example.com").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );

    // TESSERA_RESOURCES lists an API without scopes: the client's scopes pass.
    let (status, body) = tokens(&app, &browser, &client, "https://legacy.example.com").await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "https://legacy.example.com");

    // Deleted, the API is unknown from then on.
    let (ok, _, err) = cli(&app, &["api", "delete", "--api", AUDIENCE]);
    assert!(ok, "{err}");
    let (status, body) = tokens(&app, &browser, &client, AUDIENCE).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
}

#[tokio::test]
async fn the_api_cli_lists_shows_and_refuses_what_it_cannot_do() {
    let app = common::spawn_app().await;
    projects_api(&app);
    let listed = cli_json(&app, &["api", "list", "--json"]);
    let audiences: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["audience"].as_str().unwrap())
        .collect();
    assert_eq!(audiences, [AUDIENCE, "https://legacy.example.com"]);
    let shown = cli_json(&app, &["api", "show", "--api", AUDIENCE, "--json"]);
    assert_eq!(shown["name"], "Projects API");
    let refusals: [&[&str]; 5] = [
        &["api", "create", "--name", "Again", "--audience", AUDIENCE],
        &["api", "create", "--name", "Bad", "--audience", "not a uri"],
        &[
            "api",
            "create",
            "--name",
            "Bad",
            "--audience",
            "https://x.example",
            "--scope",
            "openid",
        ],
        &[
            "api",
            "grant",
            "--api",
            AUDIENCE,
            "--role",
            "member",
            "--scope",
            "projects:unknown",
        ],
        &[
            "api",
            "grant",
            "--api",
            AUDIENCE,
            "--role",
            "owner",
            "--scope",
            "projects:read",
        ],
    ];
    for args in refusals {
        let (ok, _, err) = cli(&app, args);
        assert!(!ok, "{args:?} was accepted");
        assert!(!err.trim().is_empty(), "{args:?} said nothing");
    }
    // Discovery lists this server's own scopes, not an API's.
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    let supported = discovery["scopes_supported"].as_array().unwrap();
    assert!(
        !supported
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("projects:"))
    );
}

#[tokio::test]
async fn a_refresh_token_remembers_its_api_and_refuses_another_without_spending_itself() {
    let app = common::spawn_app_with(|env| {
        env.insert(
            "TESSERA_RESOURCES".into(),
            "https://legacy.example.com".into(),
        );
    })
    .await;
    projects_api(&app);
    let client = api_client(&app).await;
    let (browser, _) = person(&app, "mia@example.com", Role::Member).await;
    let (status, body) = tokens(&app, &browser, &client, AUDIENCE).await;
    assert_eq!(status, 200, "{body}");
    let token = body["refresh_token"].as_str().unwrap();

    let other = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("resource", "https://legacy.example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
    let refused: Value = other.json().await.unwrap();
    assert_eq!(refused["error"], "invalid_target");

    // Nothing was spent: the same token still refreshes, for its own API.
    let (status, refreshed) = refresh(&app, &client, token).await;
    assert_eq!(status, 200, "{refreshed}");
    let access = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], AUDIENCE);
    assert_eq!(access["scope"], "offline_access openid org projects:read");
}

#[tokio::test]
async fn a_client_with_a_default_api_gets_tokens_for_it_when_no_resource_is_named() {
    let app = common::spawn_app().await;
    projects_api(&app);
    let mut new = new_client();
    new.first_party = true;
    new.scope = "openid org projects:read projects:write".into();
    new.default_resource = Some(AUDIENCE.into());
    let client = register(&app, new).await;
    let (browser, _) = person(&app, "mia@example.com", Role::Member).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid org projects:read projects:write")],
        ))
        .await;
    let params = redirect_params(&page);
    let code = param(&params, "code").expect("a code");
    let response = exchange(&app, &client, code, &verifier).await;
    let body: Value = response.json().await.unwrap();
    let access = claims(body["access_token"].as_str().expect("a token"));
    assert_eq!(access["aud"], AUDIENCE);
    assert_eq!(access["scope"], "openid org projects:read");

    // The CLI refuses a default API nobody registered.
    let (ok, _, err) = cli(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Elsewhere",
            "--redirect-uri",
            "https://app.example/cb",
            "--default-api",
            "https://nowhere.example.com",
        ],
    );
    assert!(!ok && err.contains("no API"), "{err}");
}
