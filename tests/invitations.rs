//! Invitations: accepted once, before expiry, by the invited email only.

mod common;

use common::{Browser, PASSWORD, TestApp};
use sea_orm::{EntityTrait, sea_query::Expr};
use tessera::orgs::invitations::{self, InvitationError};
use tessera::orgs::{self, Role};
use tessera::store::entities::invitation;
use uuid::Uuid;

/// A person who signed up and followed the verification link.
async fn user(app: &TestApp, email: &str) -> Uuid {
    Browser::new(app).sign_up(email, PASSWORD).await;
    common::smtp::verify_address(app, &email.to_lowercase()).await;
    tessera::identity::users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn acme(app: &TestApp) -> Uuid {
    let owner = user(app, "owner@example.com").await;
    let org = orgs::create(&app.state.db, "Acme", None).await.unwrap();
    orgs::add_member(&app.state.db, org.id, owner, Role::Owner)
        .await
        .unwrap();
    org.id
}

async fn role_of(app: &TestApp, user: Uuid, org: Uuid) -> Option<Role> {
    orgs::memberships_of(&app.state.db, user)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == org)
        .map(|m| m.role)
}

#[tokio::test]
async fn an_invitation_is_accepted_once_by_the_invited_email() {
    let app = common::spawn_app().await;
    let org = acme(&app).await;
    let token = invitations::invite(
        &app.state.db,
        &app.state.mail,
        org,
        "Ada@Example.COM",
        Role::Admin,
    )
    .await
    .unwrap();
    assert!(token.len() >= 43);
    let ada = user(&app, "Ada@example.com").await;
    let mallory = user(&app, "mallory@example.com").await;

    let wrong = invitations::accept(&app.state.db, &token, mallory).await;
    assert!(
        matches!(wrong, Err(InvitationError::WrongEmail(_))),
        "{wrong:?}"
    );
    assert_eq!(role_of(&app, mallory, org).await, None);

    let joined = invitations::accept(&app.state.db, &token, ada)
        .await
        .unwrap();
    assert_eq!(joined.id, org);
    assert_eq!(role_of(&app, ada, org).await, Some(Role::Admin));

    let again = invitations::accept(&app.state.db, &token, ada).await;
    assert!(matches!(again, Err(InvitationError::Used)), "{again:?}");
    // Only the digest is stored.
    let rows = invitation::Entity::find().all(&app.state.db).await.unwrap();
    assert_ne!(rows[0].token_hash, token);
}

#[tokio::test]
async fn an_expired_or_unknown_invitation_is_refused() {
    let app = common::spawn_app().await;
    let org = acme(&app).await;
    let token = invitations::invite(
        &app.state.db,
        &app.state.mail,
        org,
        "ada@example.com",
        Role::Member,
    )
    .await
    .unwrap();
    invitation::Entity::update_many()
        .col_expr(
            invitation::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.state.db)
        .await
        .unwrap();
    let ada = user(&app, "ada@example.com").await;
    let expired = invitations::accept(&app.state.db, &token, ada).await;
    assert!(
        matches!(expired, Err(InvitationError::Expired)),
        "{expired:?}"
    );
    let unknown = invitations::accept(&app.state.db, "no-such-token", ada).await;
    assert!(
        matches!(unknown, Err(InvitationError::Unknown)),
        "{unknown:?}"
    );
    assert!(matches!(
        invitations::invite(
            &app.state.db,
            &app.state.mail,
            org,
            "not an email",
            Role::Member
        )
        .await,
        Err(InvitationError::InvalidEmail)
    ));
}

#[tokio::test]
async fn an_invitation_never_lowers_an_existing_role() {
    let app = common::spawn_app().await;
    let org = acme(&app).await;
    let ada = user(&app, "ada@example.com").await;
    orgs::add_member(&app.state.db, org, ada, Role::Admin)
        .await
        .unwrap();
    let token = invitations::invite(
        &app.state.db,
        &app.state.mail,
        org,
        "ada@example.com",
        Role::Member,
    )
    .await
    .unwrap();
    invitations::accept(&app.state.db, &token, ada)
        .await
        .unwrap();
    assert_eq!(role_of(&app, ada, org).await, Some(Role::Admin));
}

fn invite_link(page: &common::Page) -> String {
    let start = page
        .body
        .find("<span class=\"invite-link\">")
        .expect("a link on the page")
        + 26;
    let end = page.body[start..].find('<').unwrap();
    page.body[start..start + end]
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

#[tokio::test]
async fn an_owner_invites_from_the_account_page_and_the_invitee_signs_up_and_joins() {
    let app = common::spawn_app().await;
    let owner = Browser::new(&app);
    owner.sign_up("owner@example.com", PASSWORD).await;
    let owner_id = tessera::identity::users::find_by_email(&app.state.db, "owner@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let org = orgs::create(&app.state.db, "Acme", None).await.unwrap();
    orgs::add_member(&app.state.db, org.id, owner_id, Role::Owner)
        .await
        .unwrap();

    let account = owner.get("/account").await;
    assert!(account.body.contains("Organizations") && account.body.contains("Acme"));
    let invited = owner
        .submit(
            "/account",
            &format!("/account/orgs/{}/invitations", org.id),
            &[("email", "new@example.com"), ("role", "admin")],
        )
        .await;
    assert_eq!(invited.status, 200);
    assert!(invited.body.contains("Invitation sent to new@example.com"));
    // The invitee gets the link by mail; the inviter sees the same link once.
    let mailed =
        common::smtp::outbox_message(&app, "new@example.com", "You are invited to join Acme").await;
    assert!(mailed.text().contains("as admin"), "{}", mailed.text());
    let link = mailed.link(&app.url("/invitations/"));
    assert_eq!(invite_link(&invited), link);
    let path = link
        .strip_prefix(&app.base)
        .expect("a link on this server")
        .to_owned();

    // The invitee follows the link, is sent to sign in, signs up instead, comes back.
    let invitee = Browser::new(&app);
    let to_login = invitee.get(&path).await;
    let login_url = to_login.location().unwrap().to_owned();
    assert!(
        login_url.starts_with("/login?return_to=%2Finvitations%2F"),
        "{login_url}"
    );
    let return_to = format!("/invitations/{}", path.trim_start_matches("/invitations/"));
    let signup = invitee
        .get(&format!(
            "/signup?return_to={}",
            url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
        ))
        .await;
    let done = invitee
        .post(
            "/signup",
            &[
                ("csrf", &signup.csrf()),
                ("email", "new@example.com"),
                ("password", PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await;
    assert_eq!(done.location(), Some(return_to.as_str()));
    let page = invitee.get(&return_to).await;
    assert!(page.body.contains("Join Acme") && page.body.contains("admin"));
    // Anyone may sign up with any address: only a verified one may accept.
    let unverified = invitee.post(&return_to, &[("csrf", &page.csrf())]).await;
    assert_eq!(unverified.status, 400);
    assert!(
        unverified
            .body
            .contains("Verify your address new@example.com first")
    );
    common::smtp::verify_address(&app, "new@example.com").await;
    let page = invitee.get(&return_to).await;
    let joined = invitee.post(&return_to, &[("csrf", &page.csrf())]).await;
    assert!(joined.body.contains("You joined Acme."), "{}", joined.body);

    let again = invitee
        .post(
            &return_to,
            &[("csrf", &invitee.get("/account").await.csrf())],
        )
        .await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("already been used"));
}

#[tokio::test]
async fn members_cannot_invite_and_admins_cannot_invite_owners() {
    let app = common::spawn_app().await;
    let org = acme(&app).await;
    let member = Browser::new(&app);
    member.sign_up("member@example.com", PASSWORD).await;
    let member_id = tessera::identity::users::find_by_email(&app.state.db, "member@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    orgs::add_member(&app.state.db, org, member_id, Role::Member)
        .await
        .unwrap();
    let refused = member
        .submit(
            "/account",
            &format!("/account/orgs/{org}/invitations"),
            &[("email", "x@example.com"), ("role", "member")],
        )
        .await;
    assert_eq!(refused.status, 403);

    orgs::set_role(&app.state.db, org, member_id, Role::Admin)
        .await
        .unwrap();
    let as_admin = member
        .submit(
            "/account",
            &format!("/account/orgs/{org}/invitations"),
            &[("email", "x@example.com"), ("role", "owner")],
        )
        .await;
    assert!(as_admin.body.contains("Choose a role you may give."));
    assert!(!as_admin.body.contains("invite-link"));
}
