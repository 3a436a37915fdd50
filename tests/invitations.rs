//! Invitations: accepted once, before expiry, by the invited email only.

mod common;

use common::{Browser, PASSWORD, TestApp};
use sea_orm::{EntityTrait, sea_query::Expr};
use tessera::orgs::invitations::{self, InvitationError};
use tessera::orgs::{self, Role};
use tessera::store::entities::invitation;
use uuid::Uuid;

async fn user(app: &TestApp, email: &str) -> Uuid {
    Browser::new(app).sign_up(email, PASSWORD).await;
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
    let token = invitations::invite(&app.state.db, org, "Ada@Example.COM", Role::Admin)
        .await
        .unwrap();
    assert!(token.len() >= 43);
    let ada = user(&app, "Ada@example.com").await;
    let mallory = user(&app, "mallory@example.com").await;

    let wrong = invitations::accept(&app.state.db, &token, mallory, "mallory@example.com").await;
    assert!(
        matches!(wrong, Err(InvitationError::WrongEmail(_))),
        "{wrong:?}"
    );
    assert_eq!(role_of(&app, mallory, org).await, None);

    let joined = invitations::accept(&app.state.db, &token, ada, "Ada@example.com")
        .await
        .unwrap();
    assert_eq!(joined.id, org);
    assert_eq!(role_of(&app, ada, org).await, Some(Role::Admin));

    let again = invitations::accept(&app.state.db, &token, ada, "Ada@example.com").await;
    assert!(matches!(again, Err(InvitationError::Used)), "{again:?}");
    // Only the digest is stored.
    let rows = invitation::Entity::find().all(&app.state.db).await.unwrap();
    assert_ne!(rows[0].token_hash, token);
}

#[tokio::test]
async fn an_expired_or_unknown_invitation_is_refused() {
    let app = common::spawn_app().await;
    let org = acme(&app).await;
    let token = invitations::invite(&app.state.db, org, "ada@example.com", Role::Member)
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
    let expired = invitations::accept(&app.state.db, &token, ada, "ada@example.com").await;
    assert!(
        matches!(expired, Err(InvitationError::Expired)),
        "{expired:?}"
    );
    let unknown = invitations::accept(&app.state.db, "no-such-token", ada, "ada@example.com").await;
    assert!(
        matches!(unknown, Err(InvitationError::Unknown)),
        "{unknown:?}"
    );
    assert!(matches!(
        invitations::invite(&app.state.db, org, "not an email", Role::Member).await,
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
    let token = invitations::invite(&app.state.db, org, "ada@example.com", Role::Member)
        .await
        .unwrap();
    invitations::accept(&app.state.db, &token, ada, "ada@example.com")
        .await
        .unwrap();
    assert_eq!(role_of(&app, ada, org).await, Some(Role::Admin));
}
