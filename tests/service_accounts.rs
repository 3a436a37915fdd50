//! Organization service accounts (issue 20, part 4, without the account page):
//! created with the CLI, their client_credentials tokens carry the
//! organization, the role and the API scopes of that role; a rotated secret
//! keeps working for its grace period; a deleted account stops at once.

mod common;

use common::{TestApp, cli, cli_json};
use serde_json::Value;

const AUDIENCE: &str = "https://projects.example.com";

/// The Projects API (members read, admins also write), Acme, and a member
/// service account of Acme: its client_id and secret.
async fn service_account() -> (TestApp, String, String) {
    // The CLI changes clients behind the server's back: no client cache.
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_CLIENT_CACHE_TTL".into(), "0".into());
    })
    .await;
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
    let (ok, _, err) = cli(
        &app,
        &[
            "api",
            "grant",
            "--api",
            AUDIENCE,
            "--role",
            "member",
            "--scope",
            "projects:read",
        ],
    );
    assert!(ok, "{err}");
    cli_json(&app, &["org", "create", "--name", "Acme", "--json"]);
    let created = cli_json(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Nightly sync",
            "--org",
            "acme",
            "--role",
            "member",
            "--grant-type",
            "client_credentials",
            "--json",
        ],
    );
    assert_eq!(created["role"], "member");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    (app, id, secret)
}

async fn token(app: &TestApp, id: &str, secret: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

use common::jwt_claims as claims;

#[tokio::test]
async fn a_service_accounts_token_carries_its_organization_role_and_the_roles_scopes() {
    let (app, id, secret) = service_account().await;
    let (status, body) = token(&app, &id, &secret, &[("resource", AUDIENCE)]).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["access_token"].as_str().unwrap();
    let verified = common::verify_for_audience(&app, jwt, AUDIENCE).await;
    assert!(verified.is_ok(), "{verified:?}");
    let access = claims(jwt);
    assert_eq!(access["sub"], id.as_str());
    assert_eq!(access["aud"], AUDIENCE);
    assert_eq!(access["scope"], "projects:read");
    assert_eq!(access["org_slug"], "acme");
    assert_eq!(access["org_role"], "member");
    assert!(access["org_id"].is_string());
    assert_eq!(access["credential"], "service_account");

    // A scope its role does not hold is not granted.
    let (status, body) = token(
        &app,
        &id,
        &secret,
        &[("resource", AUDIENCE), ("scope", "projects:write")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // Only a confidential client_credentials client can be a service account.
    let (ok, _, err) = cli(
        &app,
        &[
            "client",
            "create",
            "--name",
            "x",
            "--org",
            "acme",
            "--role",
            "member",
            "--redirect-uri",
            "https://app.example/cb",
        ],
    );
    assert!(!ok && err.contains("service account"), "{err}");
}

#[tokio::test]
async fn a_rotated_secret_keeps_working_for_its_grace_period_and_deletion_ends_the_account() {
    let (app, id, old) = service_account().await;
    let rotated = cli_json(
        &app,
        &[
            "client",
            "rotate-secret",
            "--client-id",
            &id,
            "--grace",
            "1h",
            "--json",
        ],
    );
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(token(&app, &id, &new, &[]).await.0, 200);
    assert_eq!(
        token(&app, &id, &old, &[]).await.0,
        200,
        "within the grace period"
    );

    let rotated = cli_json(
        &app,
        &[
            "client",
            "rotate-secret",
            "--client-id",
            &id,
            "--grace",
            "0",
            "--json",
        ],
    );
    let newest = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(token(&app, &id, &newest, &[]).await.0, 200);
    assert_eq!(
        token(&app, &id, &new, &[]).await.0,
        401,
        "no grace asked for"
    );
    assert_eq!(token(&app, &id, &old, &[]).await.0, 401);

    let (ok, _, err) = cli(&app, &["client", "delete", "--client-id", &id]);
    assert!(ok, "{err}");
    let (status, body) = token(&app, &id, &newest, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

/// The secret shown once on the page after a create or a rotation.
fn shown_secret(body: &str) -> (String, String) {
    let code = body
        .split("service account <code>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .expect("the client_id is shown")
        .to_owned();
    let secret = body
        .split("id=\"new-service-secret\"")
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the secret is shown")
        .to_owned();
    (code, secret)
}

#[tokio::test]
async fn owners_and_admins_manage_service_accounts_on_the_account_page() {
    use common::{Browser, PASSWORD};
    use tessera::orgs::{self, Role};
    let (app, _, _) = service_account().await;
    let acme = orgs::find(&app.state.db, "acme").await.unwrap().unwrap().id;
    let join = |email: &'static str, role: Role| {
        let app = &app;
        async move {
            let browser = Browser::new(app);
            browser.sign_up(email, PASSWORD).await;
            let id = tessera::identity::users::find_by_email(&app.state.db, email)
                .await
                .unwrap()
                .unwrap()
                .id;
            orgs::add_member(&app.state.db, acme, id, role)
                .await
                .unwrap();
            browser
        }
    };
    let admin = join("ada@example.com", Role::Admin).await;
    let member = join("mo@example.com", Role::Member).await;

    let page = admin.get("/account").await;
    assert!(page.body.contains("Service accounts of Acme"));
    assert!(
        page.body.contains("Nightly sync"),
        "the CLI-made account is listed"
    );
    let created = admin
        .submit(
            "/account",
            &format!("/account/orgs/{acme}/service-accounts"),
            &[("name", "Exporter"), ("role", "member")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let (id, secret) = shown_secret(&created.body);
    let (status, body) = token(&app, &id, &secret, &[("resource", AUDIENCE)]).await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["org_role"], "member");
    assert_eq!(access["scope"], "projects:read");
    assert!(
        !admin.get("/account").await.body.contains(&secret),
        "shown once"
    );

    // An admin may not make an owner account; a member may not make any.
    let refused = admin
        .submit(
            "/account",
            &format!("/account/orgs/{acme}/service-accounts"),
            &[("name", "Boss"), ("role", "owner")],
        )
        .await;
    assert_eq!(refused.status, 400);
    let forbidden = member
        .submit(
            "/account",
            &format!("/account/orgs/{acme}/service-accounts"),
            &[("name", "Sneaky"), ("role", "member")],
        )
        .await;
    assert_eq!(forbidden.status, 403);

    let rotated = admin
        .submit(
            "/account",
            &format!("/account/orgs/{acme}/service-accounts/{id}/rotate"),
            &[],
        )
        .await;
    let (_, new) = shown_secret(&rotated.body);
    assert_eq!(token(&app, &id, &new, &[]).await.0, 200);
    assert_eq!(
        token(&app, &id, &secret, &[]).await.0,
        200,
        "24 hours of grace"
    );

    admin
        .submit(
            "/account",
            &format!("/account/orgs/{acme}/service-accounts/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(token(&app, &id, &new, &[]).await.0, 401);
}
