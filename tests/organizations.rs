//! Organizations: the picker, org claims in every token, refresh after role
//! changes and removal, last-owner protection, the `org` CLI.

mod common;

use common::oauth::{
    TestClient, authorize_path, decide, exchange, hidden_fields, new_client, param, pkce,
    redirect_params, register,
};
use common::{Browser, PASSWORD, Page, TestApp};
use serde_json::Value;
use tessera::oauth::clients::GrantType;
use tessera::orgs::{self, Role};
use uuid::Uuid;

const SCOPE: &str = "openid org offline_access";

async fn org_client(app: &TestApp, first_party: bool) -> TestClient {
    let mut new = new_client();
    new.first_party = first_party;
    new.scope = "openid profile email offline_access org orgs".into();
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    register(app, new).await
}

async fn user_id(app: &TestApp, email: &str) -> Uuid {
    tessera::identity::users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Creates `slug` with the user as `role`.
async fn org_with(app: &TestApp, slug: &str, user: Uuid, role: Role) -> Uuid {
    let org = orgs::create(&app.state.db, &format!("{slug} Inc"), Some(slug))
        .await
        .unwrap();
    orgs::add_member(&app.state.db, org.id, user, role)
        .await
        .unwrap();
    org.id
}

fn claims(jwt: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .unwrap()
        .claims
}

async fn ada(app: &TestApp) -> (Browser, Uuid) {
    let browser = Browser::new(app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let id = user_id(app, "ada@example.com").await;
    (browser, id)
}

/// Finishes a flow whose last page is the redirect, returning the token response.
async fn finish(app: &TestApp, client: &TestClient, page: &Page, verifier: &str) -> Value {
    let code = param(&redirect_params(page), "code")
        .expect("a code")
        .to_owned();
    let response = exchange(app, client, &code, verifier).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn pick(browser: &Browser, picker: &Page, org: Uuid) -> Page {
    let mut fields = hidden_fields(&picker.body);
    fields.push(("org_choice".into(), org.to_string()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post("/authorize/org", &form).await
}

#[tokio::test]
async fn a_single_membership_is_chosen_silently_and_appears_in_every_token_and_userinfo() {
    let app = common::spawn_app().await;
    let (browser, ada) = ada(&app).await;
    let acme = org_with(&app, "acme", ada, Role::Admin).await;
    let client = org_client(&app, true).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", SCOPE)]))
        .await;
    let tokens = finish(&app, &client, &page, &verifier).await;

    for token in [
        tokens["access_token"].as_str().unwrap(),
        tokens["id_token"].as_str().unwrap(),
    ] {
        let c = claims(token);
        assert_eq!(c["org_id"], acme.to_string());
        assert_eq!(c["org_slug"], "acme");
        assert_eq!(c["org_role"], "admin");
        assert!(c.get("orgs").is_none(), "only with the orgs scope");
    }
    let info: Value = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["org_id"], acme.to_string());
    assert_eq!(info["org_role"], "admin");
}

#[tokio::test]
async fn several_memberships_bring_the_picker_and_the_choice_is_recorded() {
    let app = common::spawn_app().await;
    let (browser, ada) = ada(&app).await;
    let acme = org_with(&app, "acme", ada, Role::Owner).await;
    let globex = org_with(&app, "globex", ada, Role::Member).await;
    let client = org_client(&app, false).await;
    let (verifier, challenge) = pkce();

    let picker = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", SCOPE)]))
        .await;
    assert_eq!(picker.status, 200);
    assert!(
        picker
            .body
            .contains("<h1 id=\"heading\">Choose an organization</h1>")
    );
    assert!(picker.body.contains("acme Inc") && picker.body.contains("globex Inc"));
    assert!(picker.body.contains(">owner<") && picker.body.contains(">member<"));
    assert!(picker.body.contains(&acme.to_string()));

    // A client cannot choose for the person by adding the picker's field.
    let injected = browser
        .get(&format!(
            "{}&org_choice={globex}",
            authorize_path(&client.id, &challenge, &[("scope", SCOPE)])
        ))
        .await;
    assert!(injected.body.contains("Choose an organization"));

    // Picking leads to consent (a third-party client), which keeps the choice.
    let consent = pick(&browser, &picker, globex).await;
    assert!(
        consent.body.contains("Allow Example App?"),
        "{}",
        consent.body
    );
    let done = decide(&browser, &consent, "allow").await;
    assert_eq!(done.status, 303, "{}", done.body);
    let tokens = finish(&app, &client, &done, &verifier).await;
    let c = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(c["org_id"], globex.to_string());
    assert_eq!(c["org_role"], "member");
}

#[tokio::test]
async fn the_picker_is_csrf_protected_and_prompt_none_cannot_show_it() {
    let app = common::spawn_app().await;
    let (browser, ada) = ada(&app).await;
    org_with(&app, "acme", ada, Role::Owner).await;
    let globex = org_with(&app, "globex", ada, Role::Member).await;
    let client = org_client(&app, true).await;
    let (_, challenge) = pkce();
    let picker = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", SCOPE)]))
        .await;
    let mut fields = hidden_fields(&picker.body);
    fields.retain(|(k, _)| k != "csrf");
    fields.push(("org_choice".into(), globex.to_string()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(browser.post("/authorize/org", &form).await.status, 403);

    let silent = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", SCOPE), ("prompt", "none")],
        ))
        .await;
    assert_eq!(
        param(&redirect_params(&silent), "error"),
        Some("interaction_required")
    );
}

#[tokio::test]
async fn no_membership_is_access_denied_and_a_foreign_or_second_named_org_is_invalid_scope() {
    let app = common::spawn_app().await;
    let (browser, ada) = ada(&app).await;
    let client = org_client(&app, true).await;
    let (_, challenge) = pkce();
    let none = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", SCOPE)]))
        .await;
    let params = redirect_params(&none);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert!(
        param(&params, "error_description")
            .unwrap()
            .contains("no organization")
    );

    let mine = org_with(&app, "acme", ada, Role::Member).await;
    let other_owner = Browser::new(&app);
    other_owner.sign_up("bob@example.com", PASSWORD).await;
    let foreign = org_with(
        &app,
        "initech",
        user_id(&app, "bob@example.com").await,
        Role::Owner,
    )
    .await;
    let named = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", &format!("openid org:{foreign}"))],
        ))
        .await;
    // Issue 18 §5: refused as a scope the user cannot hold, never granted.
    assert_eq!(
        param(&redirect_params(&named), "error"),
        Some("invalid_scope")
    );

    // Two organizations named, both the user's: one grant, one organization.
    let second = org_with(&app, "globex", ada, Role::Member).await;
    let two = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", &format!("openid org:{mine} org:{second}"))],
        ))
        .await;
    assert_eq!(
        param(&redirect_params(&two), "error"),
        Some("invalid_scope")
    );

    let (verifier, challenge) = pkce();
    let own = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", &format!("openid org:{mine}"))],
        ))
        .await;
    let tokens = finish(&app, &client, &own, &verifier).await;
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["org_id"],
        mine.to_string()
    );
}

#[tokio::test]
async fn the_orgs_scope_lists_every_membership() {
    let app = common::spawn_app().await;
    let (browser, ada) = ada(&app).await;
    let acme = org_with(&app, "acme", ada, Role::Owner).await;
    org_with(&app, "globex", ada, Role::Member).await;
    let client = org_client(&app, true).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", &format!("openid orgs org:{acme}"))],
        ))
        .await;
    let tokens = finish(&app, &client, &page, &verifier).await;
    let c = claims(tokens["access_token"].as_str().unwrap());
    let list = c["orgs"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["slug"], "acme");
    assert_eq!(list[0]["role"], "owner");
    assert_eq!(list[1]["slug"], "globex");
    assert_eq!(c["org_id"], acme.to_string());
}

async fn refresh(app: &TestApp, client: &TestClient, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refresh_keeps_the_organization_shows_a_new_role_and_fails_after_removal() {
    let app = common::spawn_app().await;
    let (browser, ada) = ada(&app).await;
    let acme = org_with(&app, "acme", ada, Role::Admin).await;
    // Someone else stays owner so Ada can be demoted and removed.
    let bob = Browser::new(&app);
    bob.sign_up("bob@example.com", PASSWORD).await;
    orgs::add_member(
        &app.state.db,
        acme,
        user_id(&app, "bob@example.com").await,
        Role::Owner,
    )
    .await
    .unwrap();
    let client = org_client(&app, true).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", SCOPE)]))
        .await;
    let tokens = finish(&app, &client, &page, &verifier).await;

    orgs::set_role(&app.state.db, acme, ada, Role::Member)
        .await
        .unwrap();
    let refreshed: Value = refresh(&app, &client, tokens["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let c = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(c["org_id"], acme.to_string(), "never changes organization");
    assert_eq!(
        c["org_role"], "member",
        "the lowered role shows at the next refresh"
    );

    orgs::remove_member(&app.state.db, acme, ada).await.unwrap();
    let current = refreshed["refresh_token"].as_str().unwrap();
    let after = refresh(&app, &client, current).await;
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("no longer a member")
    );

    // The refused refresh spent nothing: with the membership back, the same token
    // works.
    orgs::add_member(&app.state.db, acme, ada, Role::Member)
        .await
        .unwrap();
    assert_eq!(refresh(&app, &client, current).await.status(), 200);
}

#[tokio::test]
async fn an_organization_always_keeps_an_owner() {
    let app = common::spawn_app().await;
    let (_, ada) = ada(&app).await;
    let acme = org_with(&app, "acme", ada, Role::Owner).await;
    assert!(matches!(
        orgs::remove_member(&app.state.db, acme, ada).await,
        Err(orgs::OrgError::LastOwner)
    ));
    assert!(matches!(
        orgs::set_role(&app.state.db, acme, ada, Role::Admin).await,
        Err(orgs::OrgError::LastOwner)
    ));
    let bob = Browser::new(&app);
    bob.sign_up("bob@example.com", PASSWORD).await;
    let bob = user_id(&app, "bob@example.com").await;
    orgs::add_member(&app.state.db, acme, bob, Role::Owner)
        .await
        .unwrap();
    orgs::set_role(&app.state.db, acme, ada, Role::Admin)
        .await
        .unwrap();
    assert!(matches!(
        orgs::remove_member(&app.state.db, acme, bob).await,
        Err(orgs::OrgError::LastOwner)
    ));
    assert!(matches!(
        orgs::add_member(&app.state.db, acme, bob, Role::Member).await,
        Err(orgs::OrgError::AlreadyMember)
    ));
}

#[tokio::test]
async fn the_org_cli_manages_organizations_and_members() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &app.database_url)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["org", "create", "--name", "Acme Corp", "--json"]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["slug"], "acme-corp");
    let (ok, _, err) = run(&[
        "org",
        "add-member",
        "--org",
        "acme-corp",
        "--email",
        "ada@example.com",
        "--role",
        "owner",
        "--json",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "org",
        "remove-member",
        "--org",
        "acme-corp",
        "--email",
        "ada@example.com",
    ]);
    assert!(!ok && err.contains("at least one owner"), "{err}");
    let (ok, _, err) = run(&[
        "org",
        "set-role",
        "--org",
        created["id"].as_str().unwrap(),
        "--email",
        "ada@example.com",
        "--role",
        "boss",
    ]);
    assert!(!ok && err.contains("boss"), "{err}");
    let (ok, out, _) = run(&["org", "list", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()[0]["slug"],
        "acme-corp"
    );
    let (ok, _, err) = run(&["org", "create", "--name", "Acme Corp"]);
    assert!(!ok && err.contains("taken"), "{err}");
}

#[tokio::test]
async fn an_org_optional_client_gets_a_token_without_org_claims_for_a_user_in_none() {
    let app = common::spawn_app().await;
    let (browser, _) = ada(&app).await;
    let mut new = new_client();
    new.first_party = true;
    new.scope = "openid offline_access org orgs".into();
    new.org_optional = true;
    let client = register(&app, new).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid org orgs")],
        ))
        .await;
    let tokens = finish(&app, &client, &page, &verifier).await;
    for token in ["access_token", "id_token"] {
        let c = claims(tokens[token].as_str().unwrap());
        assert!(
            c.get("org_id").is_none() && c.get("org_role").is_none(),
            "{c}"
        );
        assert_eq!(c["orgs"], serde_json::json!([]), "{c}");
    }

    // Naming an organization the user is not in is still refused.
    let bob = Browser::new(&app);
    bob.sign_up("bob@example.com", PASSWORD).await;
    let foreign = org_with(
        &app,
        "initech",
        user_id(&app, "bob@example.com").await,
        Role::Owner,
    )
    .await;
    let named = browser
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", &format!("openid org:{foreign}"))],
        ))
        .await;
    // Issue 18 §5: refused as a scope the user cannot hold, never granted.
    assert_eq!(
        param(&redirect_params(&named), "error"),
        Some("invalid_scope")
    );
}

/// Signs `email` up and adds them to `org` as `role`.
async fn member(app: &TestApp, org: Uuid, email: &str, role: Role) -> (Browser, Uuid) {
    let browser = Browser::new(app);
    browser.sign_up(email, PASSWORD).await;
    let id = user_id(app, email).await;
    orgs::add_member(&app.state.db, org, id, role)
        .await
        .unwrap();
    (browser, id)
}

async fn role_in(app: &TestApp, org: Uuid, user: Uuid) -> Option<Role> {
    orgs::memberships_of(&app.state.db, user)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == org)
        .map(|m| m.role)
}

#[tokio::test]
async fn owners_and_admins_manage_members_from_the_account_page() {
    let app = common::spawn_app().await;
    let (owner, owner_id) = ada(&app).await;
    let org = org_with(&app, "acme", owner_id, Role::Owner).await;
    let (admin, admin_id) = member(&app, org, "admin@example.com", Role::Admin).await;
    let (plain, plain_id) = member(&app, org, "member@example.com", Role::Member).await;

    // Owners and admins see the members; members do not.
    let listing = owner.get("/account").await;
    assert!(
        listing.body.contains("Members of acme Inc"),
        "{}",
        listing.body
    );
    for email in ["admin@example.com", "member@example.com"] {
        assert!(listing.body.contains(email));
    }
    assert!(
        admin
            .get("/account")
            .await
            .body
            .contains("member@example.com")
    );
    assert!(
        !plain
            .get("/account")
            .await
            .body
            .contains("admin@example.com")
    );

    let role_path = |user: Uuid| format!("/account/orgs/{org}/members/{user}/role");
    let remove_path = |user: Uuid| format!("/account/orgs/{org}/members/{user}/remove");

    // An admin promotes a member to admin, but may not make an owner or touch one.
    let promoted = admin
        .submit("/account", &role_path(plain_id), &[("role", "admin")])
        .await;
    assert_eq!(promoted.status, 200);
    assert!(promoted.body.contains("The role was changed to admin."));
    assert_eq!(role_in(&app, org, plain_id).await, Some(Role::Admin));
    let to_owner = admin
        .submit("/account", &role_path(plain_id), &[("role", "owner")])
        .await;
    assert_eq!(to_owner.status, 403);
    assert!(to_owner.body.contains("Only owners may"));
    let demote_owner = admin
        .submit("/account", &role_path(owner_id), &[("role", "member")])
        .await;
    assert_eq!(demote_owner.status, 403);
    let remove_owner = admin.submit("/account", &remove_path(owner_id), &[]).await;
    assert_eq!(remove_owner.status, 403);
    assert_eq!(role_in(&app, org, owner_id).await, Some(Role::Owner));

    // A member manages no one; an outsider neither.
    orgs::set_role(&app.state.db, org, plain_id, Role::Member)
        .await
        .unwrap();
    let by_member = plain.submit("/account", &remove_path(admin_id), &[]).await;
    assert_eq!(by_member.status, 403);
    let outsider = Browser::new(&app);
    outsider.sign_up("eve@example.com", PASSWORD).await;
    let by_outsider = outsider
        .submit("/account", &role_path(plain_id), &[("role", "owner")])
        .await;
    assert_eq!(by_outsider.status, 403);
    assert_eq!(role_in(&app, org, plain_id).await, Some(Role::Member));

    // Without the form token nothing happens.
    let forged = owner
        .post(&remove_path(plain_id), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(role_in(&app, org, plain_id).await, Some(Role::Member));

    // The only owner cannot step down or leave; after making another owner, they can.
    let step_down = owner
        .submit("/account", &role_path(owner_id), &[("role", "admin")])
        .await;
    assert_eq!(step_down.status, 409);
    assert!(step_down.body.contains("at least one owner"));
    let leave = owner.submit("/account", &remove_path(owner_id), &[]).await;
    assert_eq!(leave.status, 409);
    let made_owner = owner
        .submit("/account", &role_path(admin_id), &[("role", "owner")])
        .await;
    assert_eq!(made_owner.status, 200);
    let stepped_down = owner
        .submit("/account", &role_path(owner_id), &[("role", "admin")])
        .await;
    assert_eq!(stepped_down.status, 200);
    assert_eq!(role_in(&app, org, owner_id).await, Some(Role::Admin));

    // Removal ends the membership, and the page says so.
    let removed = admin.submit("/account", &remove_path(plain_id), &[]).await;
    assert_eq!(removed.status, 200);
    assert!(removed.body.contains("The member was removed."));
    assert!(!removed.body.contains("member@example.com"));
    assert_eq!(role_in(&app, org, plain_id).await, None);
    let gone = admin.submit("/account", &remove_path(plain_id), &[]).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_member_removed_from_the_account_page_cannot_refresh_into_the_organization() {
    let app = common::spawn_app().await;
    let (owner, owner_id) = ada(&app).await;
    let org = org_with(&app, "acme", owner_id, Role::Owner).await;
    let (browser, bob) = member(&app, org, "bob@example.com", Role::Member).await;
    let client = org_client(&app, true).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", SCOPE)]))
        .await;
    let tokens = finish(&app, &client, &page, &verifier).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    let removed = owner
        .submit(
            "/account",
            &format!("/account/orgs/{org}/members/{bob}/remove"),
            &[],
        )
        .await;
    assert_eq!(removed.status, 200);
    let refused = refresh(&app, &client, refresh_token).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

/// Issue 18 §5: two owners demoting (or removing) each other at the same moment
/// must not leave the organization without an owner.
#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = common::spawn_app().await;
    let mut owners = Vec::new();
    for email in ["ada@example.com", "bob@example.com"] {
        tessera::identity::users::create(
            &app.state.db,
            &app.state.passwords,
            email,
            PASSWORD,
            tessera::identity::users::NewAddress::Verified,
        )
        .await
        .unwrap();
        owners.push(user_id(&app, email).await);
    }
    for round in 0..6 {
        let org = org_with(&app, &format!("race{round}"), owners[0], Role::Owner).await;
        orgs::add_member(&app.state.db, org, owners[1], Role::Owner)
            .await
            .unwrap();
        let (first, second) = if round % 2 == 0 {
            tokio::join!(
                orgs::set_role(&app.state.db, org, owners[0], Role::Member),
                orgs::set_role(&app.state.db, org, owners[1], Role::Member),
            )
        } else {
            tokio::join!(
                orgs::remove_member(&app.state.db, org, owners[0]),
                orgs::remove_member(&app.state.db, org, owners[1]),
            )
        };
        let outcomes = [&first, &second];
        assert_eq!(
            outcomes.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {first:?} {second:?}"
        );
        assert!(
            outcomes
                .iter()
                .any(|r| matches!(r, Err(orgs::OrgError::LastOwner))),
            "round {round}: {first:?} {second:?}"
        );
        let remaining_owners = orgs::members::list(&app.state.db, org)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .count();
        assert_eq!(remaining_owners, 1, "round {round}");
    }
}
