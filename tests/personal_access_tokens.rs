//! Personal access tokens (issue 20, parts 2 and 3a): created with the CLI,
//! shown once, described by introspection to the API's own server only, with
//! scopes re-checked against the person's current role at every use, and
//! ended by revocation, expiry, leaving the pinned organization, disabling the
//! account, or "sign out everywhere" with its box ticked.

mod common;

use common::oauth::{TestClient, introspect, new_client, register};
use common::{Browser, PASSWORD, TestApp, cli, cli_json};
use serde_json::Value;
use tessera::oauth::clients::GrantType;
use tessera::orgs::{self, Role};
use uuid::Uuid;

const AUDIENCE: &str = "https://projects.example.com";

struct World {
    app: TestApp,
    /// The Projects API's own server: may introspect its tokens.
    api_server: TestClient,
    org: Uuid,
    user: Uuid,
    browser: Browser,
}

/// The Projects API (members read, admins also write); Ada, an admin of Acme.
async fn world() -> World {
    let app = common::spawn_app().await;
    cli_json(
        &app,
        &[
            "api",
            "create",
            "--name",
            "Projects API",
            "--audience",
            AUDIENCE,
            "--scope",
            "projects:read",
            "--scope",
            "projects:write",
            "--json",
        ],
    );
    for (role, scopes) in [
        ("member", &["projects:read"][..]),
        ("admin", &["projects:read", "projects:write"][..]),
    ] {
        let mut args = vec!["api", "grant", "--api", AUDIENCE, "--role", role];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        let (ok, _, err) = cli(&app, &args);
        assert!(ok, "{err}");
    }
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let user = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let org = orgs::create(&app.state.db, "Acme", Some("acme"))
        .await
        .unwrap()
        .id;
    orgs::add_member(&app.state.db, org, user, Role::Admin)
        .await
        .unwrap();
    let mut new = new_client();
    new.name = "Projects API server".into();
    new.redirect_uris = vec![];
    new.grant_types = vec![GrantType::ClientCredentials];
    new.introspect_for = Some(AUDIENCE.into());
    let api_server = register(&app, new).await;
    World {
        app,
        api_server,
        org,
        user,
        browser,
    }
}

/// Creates a token for Ada with `scopes`, pinned to Acme when `pinned`.
fn create(world: &World, scopes: &[&str], pinned: bool) -> (String, Uuid) {
    let mut args = vec![
        "token",
        "create",
        "--email",
        "ada@example.com",
        "--name",
        "deploy",
        "--json",
    ];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    if pinned {
        args.extend(["--org", "acme"]);
    }
    let created = cli_json(&world.app, &args);
    let token = created["token"].as_str().expect("the token").to_owned();
    let id = created["id"].as_str().unwrap().parse().unwrap();
    (token, id)
}

async fn active(world: &World, token: &str) -> Value {
    introspect(&world.app, &world.api_server, token).await
}

#[tokio::test]
async fn a_token_is_shown_once_and_described_to_its_apis_server_only() {
    let world = world().await;
    let (token, id) = create(&world, &["projects:read", "projects:write"], true);
    assert!(token.starts_with("tsr_pat_"), "{token}");
    // 256 bits after the prefix, base64url.
    assert_eq!(token.len(), "tsr_pat_".len() + 43);

    let info = active(&world, &token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["token_type"], "personal_access_token");
    assert_eq!(info["sub"], world.user.to_string());
    assert_eq!(info["aud"], AUDIENCE);
    assert_eq!(info["scope"], "projects:read projects:write");
    assert_eq!(info["org_id"], world.org.to_string());
    assert!(info["exp"].is_i64());
    assert!(info.get("client_id").is_none(), "a person made it: {info}");

    // Listed without its secret.
    let listed = cli_json(
        &world.app,
        &["token", "list", "--email", "ada@example.com", "--json"],
    );
    assert_eq!(listed[0]["id"], id.to_string());
    assert!(!listed.to_string().contains(&token[8..]), "{listed}");
    let stored: Vec<String> = {
        use sea_orm::EntityTrait;
        tessera::store::entities::personal_access_token::Entity::find()
            .all(&world.app.state.db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.token_hash)
            .collect()
    };
    assert!(
        !stored.iter().any(|h| h.contains(&token[8..])),
        "only a digest is stored"
    );

    // A confidential client that is not the API's server learns nothing.
    let mut other = new_client();
    other.redirect_uris = vec![];
    other.grant_types = vec![GrantType::ClientCredentials];
    let other = register(&world.app, other).await;
    let info = introspect(&world.app, &other, &token).await;
    assert_eq!(info, serde_json::json!({ "active": false }));
}

#[tokio::test]
async fn only_scopes_the_person_holds_can_be_put_in_a_token_and_a_demotion_takes_them_away() {
    let world = world().await;
    let (ok, _, err) = cli(
        &world.app,
        &[
            "token",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "x",
            "--scope",
            "projects:admin",
        ],
    );
    assert!(!ok && err.contains("projects:admin"), "{err}");
    let (token, _) = create(&world, &["projects:read", "projects:write"], true);
    orgs::set_role(&world.app.state.db, world.org, world.user, Role::Member)
        .await
        .unwrap();
    assert_eq!(active(&world, &token).await["scope"], "projects:read");
    orgs::set_role(&world.app.state.db, world.org, world.user, Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        active(&world, &token).await["scope"],
        "projects:read projects:write"
    );
}

#[tokio::test]
async fn leaving_the_pinned_organization_ends_the_token_for_good() {
    let world = world().await;
    let (pinned, _) = create(&world, &["projects:read"], true);
    let (unpinned, _) = create(&world, &["projects:read"], false);
    // An owner, so Ada (an admin) may be removed.
    Browser::new(&world.app)
        .sign_up("bo@example.com", PASSWORD)
        .await;
    let bo = tessera::identity::users::find_by_email(&world.app.state.db, "bo@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    orgs::add_member(&world.app.state.db, world.org, bo, Role::Owner)
        .await
        .unwrap();
    orgs::remove_member(&world.app.state.db, world.org, world.user)
        .await
        .unwrap();
    assert_eq!(active(&world, &pinned).await["active"], false);
    orgs::add_member(&world.app.state.db, world.org, world.user, Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        active(&world, &pinned).await["active"],
        false,
        "joining again brings nothing back"
    );
    assert_eq!(active(&world, &unpinned).await["active"], true);
}

#[tokio::test]
async fn revocation_expiry_and_disabling_end_a_token() {
    let world = world().await;
    let (revoked, id) = create(&world, &["projects:read"], true);
    let (ok, _, err) = cli(&world.app, &["token", "revoke", &id.to_string()]);
    assert!(ok, "{err}");
    assert_eq!(active(&world, &revoked).await["active"], false);

    let (expired, id) = create(&world, &["projects:read"], true);
    {
        use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
        use tessera::store::entities::personal_access_token as pat;
        let mut row = pat::Entity::find_by_id(id)
            .one(&world.app.state.db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        row.expires_at = Set(Some(chrono::Utc::now() - chrono::Duration::seconds(1)));
        row.update(&world.app.state.db).await.unwrap();
    }
    assert_eq!(active(&world, &expired).await["active"], false);

    let (live, _) = create(&world, &["projects:read"], true);
    assert_eq!(active(&world, &live).await["active"], true);
    let (ok, _, err) = cli(
        &world.app,
        &["user", "disable", "--email", "ada@example.com"],
    );
    assert!(ok, "{err}");
    assert_eq!(active(&world, &live).await["active"], false);
    let (ok, _, err) = cli(
        &world.app,
        &["user", "enable", "--email", "ada@example.com"],
    );
    assert!(ok, "{err}");
    assert_eq!(
        active(&world, &live).await["active"],
        false,
        "re-enabling brings no token back"
    );
}

#[tokio::test]
async fn sign_out_everywhere_revokes_api_tokens_only_when_asked() {
    let world = world().await;
    let (token, _) = create(&world, &["projects:read"], false);
    world
        .browser
        .submit("/account", "/account/sessions/end-all", &[])
        .await;
    assert_eq!(
        active(&world, &token).await["active"],
        true,
        "scripts keep working"
    );

    let browser = Browser::new(&world.app);
    browser.sign_in("ada@example.com", PASSWORD).await;
    let page = browser.get("/account").await;
    assert!(page.body.contains("Also revoke API tokens"));
    browser
        .submit(
            "/account",
            "/account/sessions/end-all",
            &[("revoke_api_tokens", "yes")],
        )
        .await;
    assert_eq!(active(&world, &token).await["active"], false);
}

/// An RFC 8693 exchange of `token` at the token endpoint, without client
/// authentication: the status and the JSON body.
async fn exchange(world: &World, token: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", token),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    form.extend_from_slice(extra);
    let response = world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

use common::jwt_claims as claims;

#[tokio::test]
async fn a_token_exchanged_for_a_jwt_carries_the_persons_claims_for_the_api() {
    let world = world().await;
    let (token, id) = create(&world, &["projects:read", "projects:write"], true);
    let (status, body) = exchange(&world, &token, &[("resource", AUDIENCE)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let jwt = body["access_token"].as_str().unwrap();
    // Verified like any access token: the published keys, at+jwt, iss, aud.
    let verified = common::verify_for_audience(&world.app, jwt, AUDIENCE).await;
    assert!(verified.is_ok(), "{verified:?}");
    let access = claims(jwt);
    assert_eq!(access["aud"], AUDIENCE);
    assert_eq!(access["sub"], world.user.to_string());
    assert_eq!(access["scope"], "projects:read projects:write");
    assert_eq!(access["org_id"], world.org.to_string());
    assert_eq!(access["org_role"], "admin");
    assert_eq!(access["credential"], "personal_access_token");
    assert_eq!(access["pat_id"], id.to_string());
    assert!(access.get("client_id").is_none(), "{access}");

    // A narrower scope, and the pin holds.
    let (_, narrow) = exchange(
        &world,
        &token,
        &[("resource", AUDIENCE), ("scope", "projects:read")],
    )
    .await;
    assert_eq!(
        claims(narrow["access_token"].as_str().unwrap())["scope"],
        "projects:read"
    );
    let elsewhere = Uuid::now_v7().to_string();
    let (status, refused) = exchange(&world, &token, &[("organization_id", &elsewhere)]).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn a_bad_subject_token_is_invalid_request_and_repeated_guesses_are_throttled() {
    let world = world().await;
    let (status, body) = exchange(&world, "tsr_pat_not-a-token", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", "x"),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:saml2",
            ),
        ])
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        body.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    // An upstream provider's id_token is exchanged by a registered client
    // only (issue 23): without one the client is what is missing.
    let anonymous = world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", "x"),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // The address's sign-in limit (50 failures by default) holds for guesses.
    let mut last = 0;
    for _ in 0..60 {
        last = exchange(&world, "tsr_pat_guess", &[]).await.0;
        if last == 503 {
            break;
        }
    }
    assert_eq!(last, 503, "guessing is throttled");
    let (token, _) = create(&world, &["projects:read"], true);
    let (status, response) = exchange(&world, &token, &[]).await;
    assert_eq!(status, 503, "even a good token waits: {response}");
}

#[tokio::test]
async fn the_account_page_creates_shows_once_lists_and_revokes_a_token() {
    let world = world().await;
    let page = world.browser.get("/account").await;
    assert!(page.body.contains("API tokens"), "{}", page.body);
    assert!(
        page.body.contains("value=\"projects:write\""),
        "admin scopes offered"
    );
    let org = world.org.to_string();
    let created = world
        .browser
        .submit(
            "/account",
            "/account/api-tokens",
            &[
                ("name", "ci deploy"),
                ("org", &org),
                ("scope", "projects:read"),
                ("scope", "projects:write"),
                ("expires", "7d"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let start = created
        .body
        .find("tsr_pat_")
        .expect("the new token is shown");
    let token: String = created.body[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let info = active(&world, &token).await;
    assert_eq!(info["scope"], "projects:read projects:write");
    assert_eq!(info["org_id"], org);
    assert!(info["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp() <= 7 * 86_400);

    // Listed, never shown again.
    let listed = world.browser.get("/account").await;
    assert!(listed.body.contains("ci deploy"));
    assert!(!listed.body.contains(&token), "shown once only");

    // A scope Ada does not hold is refused with a message, and nothing is made.
    let refused = world
        .browser
        .submit(
            "/account",
            "/account/api-tokens",
            &[("name", "x"), ("org", "any"), ("scope", "projects:admin")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("projects:admin"), "{}", refused.body);

    let id = cli_json(
        &world.app,
        &["token", "list", "--email", "ada@example.com", "--json"],
    )[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .browser
        .submit("/account", &format!("/account/api-tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(active(&world, &token).await["active"], false);
    assert!(
        !world
            .browser
            .get("/account")
            .await
            .body
            .contains("ci deploy")
    );
}

#[tokio::test]
async fn the_token_form_refuses_a_past_date_and_never_when_the_lifetime_is_bounded() {
    let world = world().await;
    for (fields, says) in [
        (
            vec![("expires", "date"), ("expires_on", "2000-01-01")],
            "in the past",
        ),
        (vec![("expires", "date")], "Choose the date"),
        (vec![("expires", "never")], "at most 365 days"),
    ] {
        let mut form = vec![("name", "x"), ("org", "any"), ("scope", "projects:read")];
        form.extend(fields);
        let page = world
            .browser
            .submit("/account", "/account/api-tokens", &form)
            .await;
        assert_eq!(page.status, 400, "{form:?}");
        assert!(page.body.contains(says), "{form:?}: {}", page.body);
    }
    let listed = cli_json(
        &world.app,
        &["token", "list", "--email", "ada@example.com", "--json"],
    );
    assert_eq!(listed, serde_json::json!([]), "nothing was made");
}
