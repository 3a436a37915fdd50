//! APIs (resource servers) as data: the audience tokens for it carry (its RFC 8707
//! resource URI), the scopes it defines, and which of them each organization role
//! holds — owners hold them all. A token for an API carries only the API scopes
//! the person's role in the token's organization holds (requested ∩ client-allowed
//! ∩ role-held); a scope the person lacks is dropped, not refused, as RFC 6749
//! §3.3 allows. APIs listed in `TESSERA_RESOURCES` keep working as APIs without
//! scopes.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;
use url::Url;
use uuid::Uuid;

use super::Role;
use crate::oauth::scope_list;
use crate::store::entities::api;

/// The longest audience accepted; an API's URI, never a document.
const MAX_AUDIENCE: usize = 512;
const MAX_SCOPES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ApiRegistryError {
    #[error("the audience `{0}` is not an absolute URI without a fragment (RFC 8707 §2)")]
    InvalidAudience(String),
    #[error("an API needs a name of 1 to 200 characters")]
    InvalidName,
    #[error("`{0}` cannot be an API scope: {1}")]
    InvalidScope(String, &'static str),
    #[error("the API `{0}` does not define the scope `{1}`")]
    UnknownScope(String, String),
    #[error("an API with the audience `{0}` exists already")]
    Exists(String),
    #[error("no API has the audience `{0}`")]
    NotFound(String),
    #[error("owners hold every scope of every API; grant to admin or member")]
    OwnersHoldAll,
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
}

/// An API tokens may be issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Api {
    pub audience: String,
    pub name: String,
    /// Sorted.
    pub scopes: Vec<String>,
    pub member_scopes: Vec<String>,
    pub admin_scopes: Vec<String>,
    /// Listed in `TESSERA_RESOURCES` rather than stored: no scopes, not editable.
    pub configured: bool,
}

impl Api {
    fn from_row(row: api::Model) -> Self {
        Api {
            audience: row.audience,
            name: row.name,
            scopes: scope_list(&row.scopes),
            member_scopes: scope_list(&row.member_scopes),
            admin_scopes: scope_list(&row.admin_scopes),
            configured: false,
        }
    }

    /// An API from `TESSERA_RESOURCES`.
    fn configured(audience: &str) -> Self {
        Api {
            audience: audience.to_owned(),
            name: audience.to_owned(),
            scopes: Vec::new(),
            member_scopes: Vec::new(),
            admin_scopes: Vec::new(),
            configured: true,
        }
    }

    /// The scopes of this API `role` holds.
    pub fn held_by(&self, role: Role) -> &[String] {
        match role {
            Role::Owner => &self.scopes,
            Role::Admin => &self.admin_scopes,
            Role::Member => &self.member_scopes,
        }
    }

    /// `scope` narrowed for a person with `role` in the token's organization (none:
    /// no API scope at all): scopes this API defines stay only if the role holds
    /// them; every other scope (OpenID Connect, organizations) is left alone.
    pub fn narrow(&self, scope: &str, role: Option<Role>) -> String {
        let held = role.map_or(&[][..], |r| self.held_by(r));
        scope
            .split_whitespace()
            .filter(|s| !self.scopes.iter().any(|d| d == s) || held.iter().any(|h| h == s))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// RFC 8707 §2: an absolute URI without a fragment.
fn check_audience(audience: &str) -> Result<(), ApiRegistryError> {
    let invalid = || ApiRegistryError::InvalidAudience(audience.to_owned());
    if audience.len() > MAX_AUDIENCE {
        return Err(invalid());
    }
    match Url::parse(audience) {
        Ok(url) if url.fragment().is_none() => Ok(()),
        _ => Err(invalid()),
    }
}

/// A scope an API may define: an RFC 6749 §3.3 scope token that does not name
/// one of this server's own scopes.
fn check_scope(scope: &str) -> Result<(), ApiRegistryError> {
    let invalid = |why| Err(ApiRegistryError::InvalidScope(scope.to_owned(), why));
    if scope.is_empty() || scope.len() > 128 {
        return invalid("a scope is 1 to 128 characters");
    }
    if !scope
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    {
        return invalid("RFC 6749 §3.3 allows printable ASCII without spaces, `\"` and `\\`");
    }
    // `tessera:` names this server's own powers (`tessera:admin`): an API
    // defining one would let its tokens pass for admin API tokens.
    if crate::oauth::SCOPES.contains(&scope)
        || scope.starts_with("org:")
        || scope.starts_with("tessera:")
    {
        return invalid("it is one of this server's own scopes");
    }
    Ok(())
}

/// Registers an API.
pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    audience: &str,
    scopes: &[String],
) -> Result<Api, ApiRegistryError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiRegistryError::InvalidName);
    }
    check_audience(audience)?;
    if scopes.len() > MAX_SCOPES {
        return Err(ApiRegistryError::InvalidScope(
            format!("{} scopes", scopes.len()),
            "an API defines at most 100",
        ));
    }
    for scope in scopes {
        check_scope(scope)?;
    }
    if find(db, audience).await?.is_some() {
        return Err(ApiRegistryError::Exists(audience.to_owned()));
    }
    let row = api::ActiveModel {
        id: Set(Uuid::now_v7()),
        audience: Set(audience.to_owned()),
        name: Set(name.to_owned()),
        scopes: Set(scope_list(&scopes.join(" ")).join(" ")),
        member_scopes: Set(String::new()),
        admin_scopes: Set(String::new()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    crate::audit::record(
        db,
        crate::audit::Event::new(crate::audit::Kind::ApiCreated)
            .detail("audience", row.audience.clone())
            .detail("scopes", row.scopes.clone()),
    )
    .await?;
    Ok(Api::from_row(row))
}

/// Every stored API, by audience.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<Api>, ApiRegistryError> {
    let rows = api::Entity::find()
        .order_by_asc(api::Column::Audience)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Api::from_row).collect())
}

/// The stored API with `audience`.
pub async fn find(
    db: &DatabaseConnection,
    audience: &str,
) -> Result<Option<Api>, ApiRegistryError> {
    if audience.len() > MAX_AUDIENCE {
        return Ok(None);
    }
    let row = api::Entity::find()
        .filter(api::Column::Audience.eq(audience))
        .one(db)
        .await?;
    Ok(row.map(Api::from_row))
}

/// The API a token may be issued for: a stored one, or one listed in
/// `TESSERA_RESOURCES` (`configured`). `None` for anything else.
pub async fn resolve(
    db: &DatabaseConnection,
    configured: &[String],
    audience: &str,
) -> Result<Option<Api>, sea_orm::DbErr> {
    match find(db, audience).await {
        Ok(Some(api)) => Ok(Some(api)),
        Ok(None) => Ok(configured
            .iter()
            .any(|c| c == audience)
            .then(|| Api::configured(audience))),
        Err(ApiRegistryError::Storage(e)) => Err(e),
        Err(e) => Err(sea_orm::DbErr::Custom(e.to_string())),
    }
}

/// Every API scope one of `roles` holds, across all APIs: what a personal access
/// token acting with those roles may carry.
pub async fn held_scopes(
    db: &DatabaseConnection,
    roles: &[Role],
) -> Result<Vec<String>, ApiRegistryError> {
    let mut held: Vec<String> = list(db)
        .await?
        .iter()
        .flat_map(|api| roles.iter().flat_map(|r| api.held_by(*r).to_vec()))
        .collect();
    held.sort();
    held.dedup();
    Ok(held)
}

pub async fn delete(db: &DatabaseConnection, audience: &str) -> Result<(), ApiRegistryError> {
    let deleted = api::Entity::delete_many()
        .filter(api::Column::Audience.eq(audience))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(ApiRegistryError::NotFound(audience.to_owned()));
    }
    crate::audit::record(
        db,
        crate::audit::Event::new(crate::audit::Kind::ApiDeleted).detail("audience", audience),
    )
    .await?;
    Ok(())
}

/// Lets `role` hold `scopes` of the API (in addition to what it holds).
pub async fn grant(
    db: &DatabaseConnection,
    audience: &str,
    role: Role,
    scopes: &[String],
) -> Result<Api, ApiRegistryError> {
    let row = api::Entity::find()
        .filter(api::Column::Audience.eq(audience))
        .one(db)
        .await?
        .ok_or_else(|| ApiRegistryError::NotFound(audience.to_owned()))?;
    let defined = scope_list(&row.scopes);
    if let Some(unknown) = scopes.iter().find(|s| !defined.contains(s)) {
        return Err(ApiRegistryError::UnknownScope(
            audience.to_owned(),
            unknown.clone(),
        ));
    }
    let held = match role {
        Role::Owner => return Err(ApiRegistryError::OwnersHoldAll),
        Role::Admin => &row.admin_scopes,
        Role::Member => &row.member_scopes,
    };
    let merged = scope_list(&format!("{held} {}", scopes.join(" "))).join(" ");
    let mut active: api::ActiveModel = row.into();
    match role {
        Role::Admin => active.admin_scopes = Set(merged),
        _ => active.member_scopes = Set(merged),
    }
    let row = active.update(db).await?;
    crate::audit::record(
        db,
        crate::audit::Event::new(crate::audit::Kind::ApiGranted)
            .detail("audience", audience)
            .detail("role", role.as_str())
            .detail("scopes", scopes.join(" ")),
    )
    .await?;
    Ok(Api::from_row(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        Api {
            audience: "https://api.example.com".into(),
            name: "Projects".into(),
            scopes: scope_list("projects:read projects:write projects:admin"),
            member_scopes: scope_list("projects:read"),
            admin_scopes: scope_list("projects:read projects:write"),
            configured: false,
        }
    }

    #[test]
    fn a_token_keeps_only_the_api_scopes_the_role_holds() {
        let asked = "openid org projects:read projects:write projects:admin";
        let api = api();
        assert_eq!(api.narrow(asked, Some(Role::Owner)), asked);
        assert_eq!(
            api.narrow(asked, Some(Role::Admin)),
            "openid org projects:read projects:write"
        );
        assert_eq!(
            api.narrow(asked, Some(Role::Member)),
            "openid org projects:read"
        );
        assert_eq!(
            api.narrow(asked, None),
            "openid org",
            "no organization, no API scope"
        );
    }

    #[test]
    fn audiences_and_scopes_follow_the_rfcs() {
        assert!(check_audience("https://api.example.com").is_ok());
        assert!(check_audience("urn:example:api").is_ok());
        assert!(check_audience("https://api.example.com#x").is_err());
        assert!(check_audience("api.example.com").is_err());
        assert!(check_scope("projects:read").is_ok());
        for bad in ["", "has space", "quo\"te", "openid", "org", "org:x", "é"] {
            assert!(check_scope(bad).is_err(), "{bad:?}");
        }
    }
}
