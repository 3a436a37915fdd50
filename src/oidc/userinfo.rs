//! Claims about the user, released per granted scope (OIDC Core §5.4).

use sea_orm::DatabaseConnection;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::identity::users;

/// The claims for `sub` under `scope`; `None` when the account is gone or disabled.
pub async fn claims(
    db: &DatabaseConnection,
    sub: &str,
    scope: &str,
    org: Option<&str>,
) -> Result<Option<Map<String, Value>>, crate::identity::IdentityError> {
    let Ok(id) = Uuid::parse_str(sub) else {
        return Ok(None);
    };
    let Some(user) = users::find_claimable(db, id).await? else {
        return Ok(None);
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(id.to_string()));
    if scopes.contains(&"email") {
        claims.insert("email".into(), Value::String(user.email));
        // True once a mailed link proved the address (identity::email).
        claims.insert("email_verified".into(), Value::Bool(user.email_verified));
    }
    if scopes.contains(&"profile") {
        claims.insert(
            "updated_at".into(),
            Value::from(user.updated_at.timestamp()),
        );
    }
    // The same organization claims as the token, read fresh.
    let chosen = org.and_then(|id| Uuid::parse_str(id).ok());
    let with_all = scopes.contains(&"orgs");
    if chosen.is_some() || with_all {
        match crate::orgs::claims(db, id, chosen, with_all).await {
            Ok(org_claims) => claims.extend(org_claims),
            Err(crate::orgs::OrgError::Storage(e)) => {
                return Err(crate::identity::IdentityError::Storage(e));
            }
            // The membership is gone: the token's organization claims no longer hold.
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(claims))
}
