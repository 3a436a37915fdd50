//! Organizations, memberships and roles, and the organization claims tokens carry.
//!
//! Every rule that keeps an organization usable lives here: slugs are unique and
//! URL-safe, a user has one role per organization, and an organization always keeps
//! at least one owner.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, Set, SqlErr,
    TransactionTrait,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub mod apis;
pub mod invitations;
pub mod members;
pub mod service_accounts;

use crate::store::entities::{membership, organization};

pub use organization::Model as Organization;

/// A role in an organization, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(format!("unknown role `{other}` (owner, admin or member)")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("an organization needs a name of 1 to 200 characters")]
    InvalidName,
    #[error("a slug is 1 to 64 lower-case letters, digits and dashes, not starting with a dash")]
    InvalidSlug,
    #[error("the slug `{0}` is taken")]
    SlugTaken(String),
    #[error("no such organization")]
    NoSuchOrganization,
    #[error("the user is already a member")]
    AlreadyMember,
    #[error("the user is not a member")]
    NotMember,
    #[error("an organization must keep at least one owner")]
    LastOwner,
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
}

/// One of a user's memberships, with what tokens say about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub role: Role,
}

fn valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && !slug.starts_with('-')
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A slug from a name: lower-case ASCII letters and digits, other runs as one dash.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let trimmed: String = slug.trim_end_matches('-').chars().take(64).collect();
    trimmed.trim_end_matches('-').to_owned()
}

pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    slug: Option<&str>,
) -> Result<Organization, OrgError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(OrgError::InvalidName);
    }
    let slug = slug.map_or_else(|| slugify(name), str::to_owned);
    if !valid_slug(&slug) {
        return Err(OrgError::InvalidSlug);
    }
    let org = organization::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.to_owned()),
        slug: Set(slug.clone()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => OrgError::SlugTaken(slug),
        _ => OrgError::Storage(e),
    })?;
    crate::audit::record(
        db,
        crate::audit::Event::new(crate::audit::Kind::OrganizationCreated)
            .org(org.id)
            .detail("slug", org.slug.clone()),
    )
    .await?;
    Ok(org)
}

/// By UUID or by slug, as operators type it.
pub async fn find(
    db: &DatabaseConnection,
    id_or_slug: &str,
) -> Result<Option<Organization>, OrgError> {
    let query = match Uuid::parse_str(id_or_slug) {
        Ok(id) => organization::Entity::find_by_id(id),
        Err(_) => organization::Entity::find().filter(organization::Column::Slug.eq(id_or_slug)),
    };
    Ok(query.one(db).await?)
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<Organization>, OrgError> {
    Ok(organization::Entity::find()
        .order_by_asc(organization::Column::Slug)
        .all(db)
        .await?)
}

pub async fn add_member(
    db: &DatabaseConnection,
    org: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), OrgError> {
    membership::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
        user_id: Set(user),
        role: Set(role.as_str().to_owned()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => OrgError::AlreadyMember,
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => OrgError::NoSuchOrganization,
        _ => OrgError::Storage(e),
    })?;
    crate::audit::record(
        db,
        crate::audit::Event::new(crate::audit::Kind::MemberAdded)
            .subject(user)
            .org(org)
            .detail("role", role.as_str()),
    )
    .await?;
    Ok(())
}

async fn owner_count(db: &impl ConnectionTrait, org: Uuid) -> Result<u64, OrgError> {
    Ok(membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org))
        .filter(membership::Column::Role.eq(Role::Owner.as_str()))
        .count(db)
        .await?)
}

async fn membership_row(
    db: &impl ConnectionTrait,
    org: Uuid,
    user: Uuid,
) -> Result<membership::Model, OrgError> {
    membership::Entity::find()
        .filter(membership::Column::OrganizationId.eq(org))
        .filter(membership::Column::UserId.eq(user))
        .one(db)
        .await?
        .ok_or(OrgError::NotMember)
}

/// Removes a member; the last owner cannot be removed.
pub async fn remove_member(db: &DatabaseConnection, org: Uuid, user: Uuid) -> Result<(), OrgError> {
    let txn = db.begin().await?;
    lock_organization(&txn, org).await?;
    let row = membership_row(&txn, org, user).await?;
    if row.role == Role::Owner.as_str() && owner_count(&txn, org).await? <= 1 {
        return Err(OrgError::LastOwner);
    }
    membership::Entity::delete_by_id(row.id).exec(&txn).await?;
    // Personal access tokens pinned here die with the membership, in the same
    // transaction: joining again later brings none back.
    use crate::store::entities::personal_access_token as pat;
    pat::Entity::update_many()
        .col_expr(
            pat::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .filter(pat::Column::UserId.eq(user))
        .filter(pat::Column::OrgId.eq(org))
        .filter(pat::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    crate::audit::record(
        &txn,
        crate::audit::Event::new(crate::audit::Kind::MemberRemoved)
            .subject(user)
            .org(org)
            .detail("role", row.role.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Serializes changes to one organization's owners: two owners demoting or
/// removing each other at once must not each count the other and leave none. A
/// no-op write to the organization row does it on every backend: PostgreSQL holds
/// the row lock until commit, SQLite takes its write lock here rather than
/// failing a later upgrade from a read.
async fn lock_organization(txn: &DatabaseTransaction, org: Uuid) -> Result<(), OrgError> {
    organization::Entity::update_many()
        .col_expr(
            organization::Column::Name,
            sea_orm::sea_query::Expr::col(organization::Column::Name),
        )
        .filter(organization::Column::Id.eq(org))
        .exec(txn)
        .await?;
    Ok(())
}

/// Changes a member's role; the last owner cannot be demoted.
pub async fn set_role(
    db: &DatabaseConnection,
    org: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), OrgError> {
    let txn = db.begin().await?;
    lock_organization(&txn, org).await?;
    let row = membership_row(&txn, org, user).await?;
    if row.role == Role::Owner.as_str() && role != Role::Owner && owner_count(&txn, org).await? <= 1
    {
        return Err(OrgError::LastOwner);
    }
    let from = row.role.clone();
    let mut active = row.into_active_model();
    active.role = Set(role.as_str().to_owned());
    active.update(&txn).await?;
    crate::audit::record(
        &txn,
        crate::audit::Event::new(crate::audit::Kind::MemberRoleChanged)
            .subject(user)
            .org(org)
            .detail("from", from)
            .detail("to", role.as_str()),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A user's memberships, by organization slug.
pub async fn memberships_of(
    db: &DatabaseConnection,
    user: Uuid,
) -> Result<Vec<Membership>, OrgError> {
    let rows = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user))
        .find_also_related(organization::Entity)
        .all(db)
        .await?;
    let mut out: Vec<Membership> = rows
        .into_iter()
        .filter_map(|(m, org)| {
            let org = org?;
            Some(Membership {
                id: org.id,
                slug: org.slug,
                name: org.name,
                role: m.role.parse().ok()?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(out)
}

/// The organization a grant is made in, as decided by [`choose_for_grant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgChoice {
    Chosen(Uuid),
    /// No organization: the user has none and the client accepts that.
    Without,
    /// Refused with this description (`access_denied`).
    Refused(&'static str),
    /// The scope names an organization the grant cannot be made in, or more than
    /// one (`invalid_scope`): nothing of it is granted.
    InvalidScope(&'static str),
    /// The person must pick one of several.
    Ask,
}

/// Which organization a grant is made in: the one an `org:{uuid}` scope names
/// (if the user is a member), the only one the user has, or the one they picked.
/// A user with none is refused unless the client is `org_optional`; naming an
/// organization the user is not in is refused either way.
pub fn choose_for_grant(
    granted_scopes: &[String],
    memberships: &[Membership],
    picked: Option<Uuid>,
    org_optional: bool,
) -> OrgChoice {
    let member = |id: Uuid| memberships.iter().any(|m| m.id == id);
    let mut named = granted_scopes.iter().filter_map(|s| s.strip_prefix("org:"));
    if let Some(first) = named.next() {
        // A grant is made in one organization; the scope that names one must be
        // one the user can hold, or it would be granted as asked (RFC 6749 §3.3:
        // invalid_scope).
        if named.next().is_some() {
            return OrgChoice::InvalidScope("only one org:{id} scope may be requested");
        }
        return match Uuid::parse_str(first).ok().filter(|id| member(*id)) {
            Some(id) => OrgChoice::Chosen(id),
            None => OrgChoice::InvalidScope(
                "the user is not a member of the organization in the org:{id} scope",
            ),
        };
    }
    match (memberships, picked) {
        ([], _) if org_optional => OrgChoice::Without,
        ([], _) => OrgChoice::Refused("the user belongs to no organization"),
        ([only], _) => OrgChoice::Chosen(only.id),
        (_, Some(id)) if member(id) => OrgChoice::Chosen(id),
        _ => OrgChoice::Ask,
    }
}

/// The claims an access token, id_token and userinfo carry for the organization
/// chosen on the grant (`org_id`, `org_slug`, `org_role`), plus every membership
/// under `orgs` when that scope was granted. Looked up at issue time, so a role
/// change shows in the next token.
pub async fn claims(
    db: &DatabaseConnection,
    user: Uuid,
    chosen: Option<Uuid>,
    with_all: bool,
) -> Result<Map<String, Value>, OrgError> {
    let all = memberships_of(db, user).await?;
    let mut out = Map::new();
    if let Some(org) = chosen {
        let m = all
            .iter()
            .find(|m| m.id == org)
            .ok_or(OrgError::NotMember)?;
        out.insert("org_id".into(), Value::from(m.id.to_string()));
        out.insert("org_slug".into(), Value::from(m.slug.clone()));
        out.insert("org_role".into(), Value::from(m.role.as_str()));
    }
    if with_all {
        let list: Vec<Value> = all
            .iter()
            .map(|m| json!({ "id": m.id, "slug": m.slug, "role": m.role }))
            .collect();
        out.insert("orgs".into(), Value::Array(list));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Acme Corp."), "acme-corp");
        assert_eq!(slugify("  Ünïcode & Co  "), "n-code-co");
        assert!(valid_slug("acme-2"));
        assert!(
            !valid_slug("-acme") && !valid_slug("Acme") && !valid_slug("") && !valid_slug("a b")
        );
    }

    fn membership(slug: &str) -> Membership {
        Membership {
            id: Uuid::now_v7(),
            slug: slug.into(),
            name: slug.into(),
            role: Role::Member,
        }
    }

    #[test]
    fn a_grant_gets_the_named_the_only_or_the_picked_organization() {
        let (a, b) = (membership("a"), membership("b"));
        let org = vec!["org".to_owned()];
        assert_eq!(
            choose_for_grant(&org, std::slice::from_ref(&a), None, false),
            OrgChoice::Chosen(a.id)
        );
        assert_eq!(
            choose_for_grant(&org, &[a.clone(), b.clone()], None, false),
            OrgChoice::Ask
        );
        assert_eq!(
            choose_for_grant(&org, &[a.clone(), b.clone()], Some(b.id), false),
            OrgChoice::Chosen(b.id)
        );
        // A pick outside the user's memberships is no pick.
        assert_eq!(
            choose_for_grant(&org, &[a.clone(), b.clone()], Some(Uuid::now_v7()), false),
            OrgChoice::Ask
        );
        assert!(matches!(
            choose_for_grant(&org, &[], None, false),
            OrgChoice::Refused(_)
        ));
        assert_eq!(choose_for_grant(&org, &[], None, true), OrgChoice::Without);
        let named = vec![format!("org:{}", b.id)];
        assert_eq!(
            choose_for_grant(&named, &[a.clone(), b.clone()], Some(a.id), false),
            OrgChoice::Chosen(b.id)
        );
        let foreign = vec![format!("org:{}", Uuid::now_v7())];
        assert!(matches!(
            choose_for_grant(&foreign, &[a.clone(), b.clone()], None, false),
            OrgChoice::InvalidScope(_)
        ));
        assert!(matches!(
            choose_for_grant(&foreign, &[], None, true),
            OrgChoice::InvalidScope(_)
        ));
        // Two organizations named: even both the user's, a grant is made in one.
        let two = vec![format!("org:{}", a.id), format!("org:{}", b.id)];
        assert!(matches!(
            choose_for_grant(&two, &[a, b], None, false),
            OrgChoice::InvalidScope(_)
        ));
    }

    #[test]
    fn roles_order_by_power() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}
