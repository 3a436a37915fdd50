//! The admin console (issue 24): administrators only; every action confirmed
//! on its own page, posted with the CSRF token, and recorded with the
//! administrator as actor.

mod common;

use common::{Browser, PASSWORD, account};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tessera::store::entities::audit_event;

const ROOT: &str = "root@example.com";

#[tokio::test]
async fn only_administrators_see_the_console_and_its_link() {
    let app = common::spawn_app().await;
    account(&app, ROOT, true);
    account(&app, "pat@example.com", false);
    let anonymous = Browser::new(&app).get("/admin/users").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(
        anonymous.location(),
        Some("/login?return_to=%2Fadmin%2Fusers")
    );
    let pat = Browser::new(&app);
    pat.sign_in("pat@example.com", PASSWORD).await;
    assert!(!pat.get("/account").await.body.contains("Administration"));
    for path in ["/admin/users", "/admin/audit", "/admin/users/x"] {
        let page = pat.get(path).await;
        assert!(
            page.status == 403 || page.status == 404,
            "{path}: {}",
            page.status
        );
    }
    let root = Browser::new(&app);
    root.sign_in(ROOT, PASSWORD).await;
    let account = root.get("/account").await;
    assert!(
        account.body.contains("href=\"/admin\""),
        "the header links it"
    );
    assert_eq!(root.get("/admin").await.location(), Some("/admin/users"));
    let users = root.get("/admin/users?search=pat").await;
    assert_eq!(users.status, 200);
    assert!(users.body.contains("<strong>pat@example.com</strong>"));
    assert!(!users.body.contains("<strong>root@example.com</strong>"));
}

#[tokio::test]
async fn an_administrator_disables_after_confirming_and_the_log_says_who() {
    let app = common::spawn_app().await;
    account(&app, ROOT, true);
    account(&app, "pat@example.com", false);
    let pat = tessera::identity::users::find_by_email(&app.state.db, "pat@example.com")
        .await
        .unwrap()
        .unwrap();
    let patrons = Browser::new(&app);
    patrons.sign_in("pat@example.com", PASSWORD).await;
    let root = Browser::new(&app);
    root.sign_in(ROOT, PASSWORD).await;

    let page = root.get(&format!("/admin/users/{}", pat.id)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Active sessions") && page.body.contains("Signed in"));
    let confirm = root
        .get(&format!("/admin/users/{}/confirm/disable", pat.id))
        .await;
    assert!(confirm.body.contains("Disable this account?"));
    // Without the form's token, nothing happens.
    let forged = root
        .post(&format!("/admin/users/{}/disable", pat.id), &[])
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        !tessera::identity::users::find(&app.state.db, pat.id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let done = root
        .post(
            &format!("/admin/users/{}/disable", pat.id),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    let after = root.get(done.location().unwrap()).await;
    assert!(after.body.contains("The account is disabled."));
    assert!(!patrons.is_signed_in().await, "their session ended");
    let event = audit_event::Entity::find()
        .filter(audit_event::Column::Kind.eq("account.disabled"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let root_id = tessera::identity::users::find_by_email(&app.state.db, ROOT)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(event.actor_type, "admin");
    assert_eq!(event.actor_id, Some(root_id.to_string()));
    let log = root
        .get("/admin/audit?kind=account.disabled&user=pat%40example.com")
        .await;
    assert!(log.body.contains("Account disabled"), "{}", log.body);
    assert!(
        log.body.contains("by admin root@example.com"),
        "{}",
        log.body
    );
    let bad = root.get("/admin/audit?since=yesterday").await;
    assert!(bad.body.contains("is not a date"));
    // A non-administrator cannot act, even with a token of their own page.
    let pat2 = Browser::new(&app);
    account(&app, "sam@example.com", false);
    pat2.sign_in("sam@example.com", PASSWORD).await;
    let own = pat2.get("/account").await;
    let refused = pat2
        .post(
            &format!("/admin/users/{}/enable", pat.id),
            &[("csrf", &own.csrf())],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        tessera::identity::users::find(&app.state.db, pat.id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
}

#[tokio::test]
async fn organizations_clients_apis_and_keys_are_shown_and_keys_rotate_after_confirming() {
    let app = common::spawn_app().await;
    account(&app, ROOT, true);
    account(&app, "pat@example.com", false);
    for args in [
        &["org", "create", "--name", "Acme Corp", "--slug", "acme"][..],
        &[
            "org",
            "add-member",
            "--org",
            "acme",
            "--email",
            "pat@example.com",
            "--role",
            "admin",
        ][..],
        &[
            "client",
            "create",
            "--name",
            "Billing",
            "--redirect-uri",
            "https://billing.example/cb",
        ][..],
        &[
            "api",
            "create",
            "--name",
            "Projects",
            "--audience",
            "https://projects.example",
            "--scope",
            "projects:read",
        ][..],
    ] {
        let (ok, _, err) = common::cli(&app, args);
        assert!(ok, "{args:?}: {err}");
    }
    let root = Browser::new(&app);
    root.sign_in(ROOT, PASSWORD).await;
    let orgs = root.get("/admin/organizations").await;
    assert!(orgs.body.contains("Acme Corp") && orgs.body.contains("pat@example.com (admin)"));
    let clients = root.get("/admin/clients").await;
    assert!(clients.body.contains("Billing") && clients.body.contains("https://projects.example"));
    let keys = root.get("/admin/keys").await;
    assert_eq!(keys.status, 200);
    let before = tessera::tokens::keys::list(
        &app.state.db,
        std::time::Duration::from_secs(3600),
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .len();
    let confirm = root.get("/admin/keys/rotate/ES256").await;
    assert!(confirm.body.contains("Rotate the signing key?"));
    let forged = root.post("/admin/keys/rotate/ES256", &[]).await;
    assert_eq!(forged.status, 403);
    let done = root
        .post("/admin/keys/rotate/ES256", &[("csrf", &confirm.csrf())])
        .await;
    assert_eq!(done.location(), Some("/admin/keys?done=rotated"));
    let after = tessera::tokens::keys::list(
        &app.state.db,
        std::time::Duration::from_secs(3600),
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .len();
    assert_eq!(after, before + 1);
    let rotated = audit_event::Entity::find()
        .filter(audit_event::Column::Kind.eq("key.rotated"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.actor_type, "admin");
    // Not for the others.
    let pat = Browser::new(&app);
    pat.sign_in("pat@example.com", PASSWORD).await;
    for path in [
        "/admin/organizations",
        "/admin/clients",
        "/admin/keys",
        "/admin/keys/rotate/ES256",
    ] {
        assert_eq!(pat.get(path).await.status, 403, "{path}");
    }
}
