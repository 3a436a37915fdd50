//! Invitations: an owner or admin invites an email address with a role; the link
//! works once, before it expires, for the account with that email only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::{OrgError, Organization, Role};
use crate::identity::normalize_email;
use crate::identity::sessions::random_token;
use crate::mail::{Letter, Mailer};
use crate::oauth::digest;
use crate::store::entities::{invitation, membership, organization};

/// How long an invitation link works.
pub const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    #[error("This invitation link is not valid.")]
    Unknown,
    #[error("This invitation has already been used.")]
    Used,
    #[error("This invitation has expired. Ask for a new one.")]
    Expired,
    #[error("This invitation is for another email address. Sign in as {0} to accept it.")]
    WrongEmail(String),
    #[error(
        "Verify your address {0} first: follow the link we mailed to it (or resend it from your account page), then open this invitation again."
    )]
    Unverified(String),
    #[error("Enter an email address such as name@example.com.")]
    InvalidEmail,
    #[error("Only owners and admins of the organization may invite.")]
    NotAllowed,
    #[error("Choose a role you may give.")]
    RoleNotGrantable,
    #[error(transparent)]
    Org(#[from] OrgError),
}

impl From<sea_orm::DbErr> for InvitationError {
    fn from(e: sea_orm::DbErr) -> Self {
        InvitationError::Org(OrgError::Storage(e))
    }
}

/// A pending invitation as its page shows it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub organization: Organization,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// Whether someone with `inviter` may invite with `role`: owners and admins may
/// invite, and only owners may make owners.
pub fn may_invite(inviter: Role, role: Role) -> Result<(), InvitationError> {
    if inviter < Role::Admin {
        return Err(InvitationError::NotAllowed);
    }
    if role == Role::Owner && inviter != Role::Owner {
        return Err(InvitationError::RoleNotGrantable);
    }
    Ok(())
}

/// Invites on behalf of `inviter`, checking their role in `org` first.
pub async fn invite_as(
    db: &DatabaseConnection,
    mailer: &Mailer,
    inviter: Uuid,
    org: Uuid,
    email: &str,
    role: Role,
) -> Result<String, InvitationError> {
    let memberships = super::memberships_of(db, inviter).await?;
    let inviter_role = memberships
        .iter()
        .find(|m| m.id == org)
        .map(|m| m.role)
        .ok_or(InvitationError::NotAllowed)?;
    may_invite(inviter_role, role)?;
    invite(db, mailer, org, email, role).await
}

/// Creates an invitation and mails its link to the invitee, in one
/// transaction; returns the token for the link (shown once to the inviter too,
/// stored as a digest).
pub async fn invite(
    db: &DatabaseConnection,
    mailer: &Mailer,
    org: Uuid,
    email: &str,
    role: Role,
) -> Result<String, InvitationError> {
    let email = normalize_email(email).map_err(|_| InvitationError::InvalidEmail)?;
    let organization = organization::Entity::find_by_id(org)
        .one(db)
        .await?
        .ok_or(OrgError::NoSuchOrganization)?;
    let token =
        random_token().map_err(|e| OrgError::Storage(sea_orm::DbErr::Custom(e.to_string())))?;
    let now = Utc::now();
    let txn = db.begin().await?;
    invitation::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
        email: Set(email.clone()),
        role: Set(role.as_str().to_owned()),
        token_hash: Set(digest(&token)),
        expires_at: Set(
            now + chrono::Duration::from_std(INVITATION_TTL).unwrap_or(chrono::Duration::days(7))
        ),
        accepted_at: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let letter = Letter::Invitation {
        organization: organization.name,
        role: role.to_string(),
        link: mailer.link(&format!("/invitations/{token}")),
    };
    mailer
        .enqueue(&txn, &email, &letter)
        .await
        .map_err(|e| OrgError::Storage(sea_orm::DbErr::Custom(e.to_string())))?;
    txn.commit().await?;
    mailer.wake();
    Ok(token)
}

async fn find(db: &DatabaseConnection, token: &str) -> Result<invitation::Model, InvitationError> {
    if token.len() > 128 {
        return Err(InvitationError::Unknown);
    }
    invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(digest(token)))
        .one(db)
        .await?
        .ok_or(InvitationError::Unknown)
}

/// The invitation behind a link, if it can still be accepted by someone.
pub async fn pending(db: &DatabaseConnection, token: &str) -> Result<Pending, InvitationError> {
    let row = find(db, token).await?;
    if row.accepted_at.is_some() {
        return Err(InvitationError::Used);
    }
    if row.expires_at <= Utc::now() {
        return Err(InvitationError::Expired);
    }
    let organization = organization::Entity::find_by_id(row.organization_id)
        .one(db)
        .await?
        .ok_or(InvitationError::Unknown)?;
    Ok(Pending {
        organization,
        email: row.email,
        role: row.role.parse().unwrap_or(Role::Member),
        expires_at: row.expires_at,
    })
}

/// Accepts for the signed-in account `user`, which must have the invited
/// address, verified (anyone may sign up with any address; only a link that
/// reached it proves it is theirs). The invitation is spent and the membership
/// created in one transaction, so a link works exactly once.
pub async fn accept(
    db: &DatabaseConnection,
    token: &str,
    user: Uuid,
) -> Result<Organization, InvitationError> {
    let pending = pending(db, token).await?;
    let account = crate::store::entities::user::Entity::find_by_id(user)
        .one(db)
        .await?
        .ok_or(InvitationError::Unknown)?;
    // Both sides in their canonical form: the invitation may predate it.
    let same = normalize_email(&pending.email)
        .ok()
        .is_some_and(|invited| normalize_email(&account.email).ok() == Some(invited));
    if !same {
        return Err(InvitationError::WrongEmail(pending.email));
    }
    if account.email_verified_at.is_none() {
        return Err(InvitationError::Unverified(account.email));
    }
    let txn = db.begin().await?;
    let spent = invitation::Entity::update_many()
        .col_expr(invitation::Column::AcceptedAt, Expr::value(Utc::now()))
        .filter(invitation::Column::TokenHash.eq(digest(token)))
        .filter(invitation::Column::AcceptedAt.is_null())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(InvitationError::Used);
    }
    let existing = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(pending.organization.id))
        .filter(membership::Column::UserId.eq(user))
        .one(&txn)
        .await?;
    match existing {
        // Already a member: an invitation never lowers a role.
        Some(row) if row.role.parse::<Role>().is_ok_and(|r| r >= pending.role) => {}
        Some(row) => {
            let mut active: membership::ActiveModel = row.into();
            active.role = Set(pending.role.as_str().to_owned());
            active.update(&txn).await?;
        }
        None => {
            membership::ActiveModel {
                id: Set(Uuid::now_v7()),
                organization_id: Set(pending.organization.id),
                user_id: Set(user),
                role: Set(pending.role.as_str().to_owned()),
                created_at: Set(Utc::now()),
            }
            .insert(&txn)
            .await?;
        }
    }
    txn.commit().await?;
    Ok(pending.organization)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_admins_invite_and_only_owners_make_owners() {
        assert!(may_invite(Role::Owner, Role::Owner).is_ok());
        assert!(may_invite(Role::Admin, Role::Admin).is_ok());
        assert!(matches!(
            may_invite(Role::Admin, Role::Owner),
            Err(InvitationError::RoleNotGrantable)
        ));
        assert!(matches!(
            may_invite(Role::Member, Role::Member),
            Err(InvitationError::NotAllowed)
        ));
    }
}
