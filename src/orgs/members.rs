//! An organization's members as its owners and admins manage them: who may change
//! whom, on top of the last-owner rule that [`super::set_role`] and
//! [`super::remove_member`] enforce.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{OrgError, Role};
use crate::store::entities::{membership, user};

/// One member as the organization's managers see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("Only owners and admins of the organization may manage its members.")]
    NotAllowed,
    #[error("Only owners may change or remove an owner, or make someone an owner.")]
    OwnersOnly,
    #[error("An organization must keep at least one owner.")]
    LastOwner,
    #[error("That person is not a member of the organization.")]
    NotMember,
    #[error(transparent)]
    Org(OrgError),
}

impl From<OrgError> for ManageError {
    fn from(e: OrgError) -> Self {
        match e {
            OrgError::LastOwner => ManageError::LastOwner,
            OrgError::NotMember => ManageError::NotMember,
            other => ManageError::Org(other),
        }
    }
}

/// What a manager does to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    SetRole(Role),
    Remove,
}

/// Whether someone with `actor`'s role may apply `change` to a member holding
/// `target`: owners and admins manage, and owners alone touch owners — an admin can
/// neither make an owner nor demote or remove one.
pub fn may_manage(actor: Role, target: Role, change: Change) -> Result<(), ManageError> {
    if actor < Role::Admin {
        return Err(ManageError::NotAllowed);
    }
    let makes_owner = change == Change::SetRole(Role::Owner);
    if actor != Role::Owner && (target == Role::Owner || makes_owner) {
        return Err(ManageError::OwnersOnly);
    }
    Ok(())
}

/// The members of `org`, owners first, then by email.
pub async fn list(db: &DatabaseConnection, org: Uuid) -> Result<Vec<Member>, OrgError> {
    let rows = membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org))
        .all(db)
        .await?;
    let emails = user::Entity::find()
        .filter(user::Column::Id.is_in(rows.iter().map(|m| m.user_id)))
        .all(db)
        .await?;
    let mut out: Vec<Member> = rows
        .into_iter()
        .filter_map(|m| {
            let email = emails.iter().find(|u| u.id == m.user_id)?.email.clone();
            Some(Member {
                user_id: m.user_id,
                email,
                role: m.role.parse().ok()?,
            })
        })
        .collect();
    out.sort_by(|a, b| b.role.cmp(&a.role).then_with(|| a.email.cmp(&b.email)));
    Ok(out)
}

/// Applies `change` to `target`'s membership on behalf of `actor`.
pub async fn manage(
    db: &DatabaseConnection,
    actor: Uuid,
    org: Uuid,
    target: Uuid,
    change: Change,
) -> Result<(), ManageError> {
    let memberships = list(db, org).await?;
    let role_of = |user: Uuid| {
        memberships
            .iter()
            .find(|m| m.user_id == user)
            .map(|m| m.role)
    };
    let actor_role = role_of(actor).ok_or(ManageError::NotAllowed)?;
    let target_role = role_of(target).ok_or(ManageError::NotMember)?;
    may_manage(actor_role, target_role, change)?;
    match change {
        Change::SetRole(role) => super::set_role(db, org, target, role).await?,
        Change::Remove => super::remove_member(db, org, target).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_touch_anyone_admins_everyone_but_owners_members_no_one() {
        use Change::{Remove, SetRole};
        use Role::{Admin, Member, Owner};
        assert!(may_manage(Owner, Owner, SetRole(Member)).is_ok());
        assert!(may_manage(Owner, Member, SetRole(Owner)).is_ok());
        assert!(may_manage(Owner, Owner, Remove).is_ok());
        assert!(may_manage(Admin, Member, SetRole(Admin)).is_ok());
        assert!(may_manage(Admin, Admin, Remove).is_ok());
        assert!(matches!(
            may_manage(Admin, Member, SetRole(Owner)),
            Err(ManageError::OwnersOnly)
        ));
        assert!(matches!(
            may_manage(Admin, Owner, SetRole(Admin)),
            Err(ManageError::OwnersOnly)
        ));
        assert!(matches!(
            may_manage(Admin, Owner, Remove),
            Err(ManageError::OwnersOnly)
        ));
        assert!(matches!(
            may_manage(Member, Member, Remove),
            Err(ManageError::NotAllowed)
        ));
    }
}
