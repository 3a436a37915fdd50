//! Upstream OpenID providers as data: who people may sign in with, and the
//! client Tessera is at each. The client secret is sealed under the secrets key
//! beside the signing keys (`tokens::sealing`), so a database dump alone does
//! not reveal it; it is never shown or logged.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set, SqlErr};
use serde::Serialize;
use url::Url;

use crate::store::entities::identity_provider as row;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("a provider id is 1 to 32 lower-case letters, digits and dashes")]
    InvalidId,
    #[error("a provider needs a name of 1 to 100 characters")]
    InvalidName,
    #[error(
        "the issuer `{0}` must be an https URL (http only on loopback) without query or fragment"
    )]
    InvalidIssuer(String),
    #[error("a client id and a client secret are required")]
    MissingCredentials,
    #[error("the scope must include openid")]
    NoOpenid,
    #[error("token endpoint authentication is client_secret_basic or client_secret_post")]
    InvalidTokenAuth,
    #[error("a provider with the id `{0}` or that issuer exists already")]
    Taken(String),
    #[error("no provider `{0}`")]
    NotFound(String),
    #[error("the stored client secret cannot be opened with this secrets key")]
    Sealed,
    #[error("secrets key: {0}")]
    Key(String),
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
}

/// How Tessera authenticates at the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    /// RFC 6749 §2.3.1: every server must support it; the default.
    ClientSecretBasic,
    ClientSecretPost,
}

impl TokenAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuth::ClientSecretBasic => "client_secret_basic",
            TokenAuth::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "client_secret_basic" => Some(TokenAuth::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuth::ClientSecretPost),
            _ => None,
        }
    }
}

/// A provider as the CLI and pages show it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub scope: String,
    pub trust_email: bool,
    pub token_auth: TokenAuth,
    pub accepted_audiences: Vec<String>,
    pub created_at: chrono::DateTime<Utc>,
}

fn from_row(r: row::Model) -> Provider {
    Provider {
        token_auth: TokenAuth::parse(&r.token_auth).unwrap_or(TokenAuth::ClientSecretBasic),
        accepted_audiences: serde_json::from_str(&r.accepted_audiences).unwrap_or_default(),
        id: r.id,
        name: r.name,
        issuer: r.issuer,
        client_id: r.client_id,
        scope: r.scope,
        trust_email: r.trust_email,
        created_at: r.created_at,
    }
}

/// A provider to add.
pub struct NewProvider<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scope: &'a str,
    pub trust_email: bool,
    pub token_auth: TokenAuth,
    pub accepted_audiences: &'a [String],
}

/// What a provider's client secret is sealed for (the AAD): its id, so a
/// sealed secret copied to another provider's row does not open.
fn purpose(id: &str) -> Vec<u8> {
    format!("tessera provider client secret:{id}").into_bytes()
}

/// The issuer as stored: OIDC Discovery §4.3 compares it as a string, so no
/// trailing slash is added or removed.
fn check_issuer(raw: &str) -> Result<(), ProviderError> {
    let bad = || ProviderError::InvalidIssuer(raw.to_owned());
    let url = Url::parse(raw).map_err(|_| bad())?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || url.query().is_some() || url.fragment().is_some() || raw.len() > 2000 {
        return Err(bad());
    }
    Ok(())
}

fn check(new: &NewProvider<'_>) -> Result<(), ProviderError> {
    let id_ok = !new.id.is_empty()
        && new.id.len() <= 32
        && !new.id.starts_with('-')
        && new
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        return Err(ProviderError::InvalidId);
    }
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ProviderError::InvalidName);
    }
    check_issuer(new.issuer)?;
    if new.client_id.trim().is_empty() || new.client_secret.is_empty() {
        return Err(ProviderError::MissingCredentials);
    }
    if !new.scope.split_whitespace().any(|s| s == "openid") {
        return Err(ProviderError::NoOpenid);
    }
    Ok(())
}

/// Adds a provider, its secret sealed under `key`.
pub async fn add(
    db: &DatabaseConnection,
    key: &[u8; 32],
    new: NewProvider<'_>,
) -> Result<Provider, ProviderError> {
    check(&new)?;
    let sealed = crate::tokens::sealing::seal(key, &purpose(new.id), new.client_secret.as_bytes())
        .map_err(ProviderError::Key)?;
    let model = row::ActiveModel {
        id: Set(new.id.to_owned()),
        name: Set(new.name.trim().to_owned()),
        issuer: Set(new.issuer.to_owned()),
        client_id: Set(new.client_id.trim().to_owned()),
        client_secret_sealed: Set(sealed),
        scope: Set(new.scope.split_whitespace().collect::<Vec<_>>().join(" ")),
        trust_email: Set(new.trust_email),
        token_auth: Set(new.token_auth.as_str().to_owned()),
        accepted_audiences: Set(
            serde_json::to_string(new.accepted_audiences).unwrap_or_else(|_| "[]".into())
        ),
        created_at: Set(Utc::now()),
    };
    match model.insert(db).await {
        Ok(r) => {
            crate::audit::record(
                db,
                crate::audit::Event::new(crate::audit::Kind::ProviderAdded)
                    .detail("provider", r.id.clone())
                    .detail("issuer", r.issuer.clone()),
            )
            .await?;
            Ok(from_row(r))
        }
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(ProviderError::Taken(new.id.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Every provider, by id.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<Provider>, ProviderError> {
    Ok(row::Entity::find()
        .order_by_asc(row::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect())
}

pub async fn find(db: &DatabaseConnection, id: &str) -> Result<Provider, ProviderError> {
    row::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(from_row)
        .ok_or_else(|| ProviderError::NotFound(id.to_owned()))
}

/// The provider's client secret, opened with `key` (for the token request).
pub async fn client_secret(
    db: &DatabaseConnection,
    key: &[u8; 32],
    id: &str,
) -> Result<String, ProviderError> {
    let r = row::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ProviderError::NotFound(id.to_owned()))?;
    let plain = crate::tokens::sealing::open(key, &purpose(&r.id), &r.client_secret_sealed)
        .ok_or(ProviderError::Sealed)?;
    String::from_utf8(plain).map_err(|_| ProviderError::Sealed)
}

pub async fn remove(db: &DatabaseConnection, id: &str) -> Result<(), ProviderError> {
    let deleted = row::Entity::delete_by_id(id.to_owned()).exec(db).await?;
    if deleted.rows_affected == 0 {
        return Err(ProviderError::NotFound(id.to_owned()));
    }
    crate::audit::record(
        db,
        crate::audit::Event::new(crate::audit::Kind::ProviderRemoved).detail("provider", id),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(id: &'a str, issuer: &'a str, scope: &'a str) -> NewProvider<'a> {
        NewProvider {
            id,
            name: "Google",
            issuer,
            client_id: "abc.apps.example",
            client_secret: "s3cret",
            scope,
            trust_email: false,
            token_auth: TokenAuth::ClientSecretBasic,
            accepted_audiences: &[],
        }
    }

    #[test]
    fn providers_are_checked_before_they_are_stored() {
        let ok = "https://accounts.google.com";
        assert!(check(&new("google", ok, "openid email")).is_ok());
        assert!(check(&new("dev", "http://127.0.0.1:9000", "openid")).is_ok());
        for id in ["", "Google", "-x", "a b", &"x".repeat(33)] {
            assert!(
                matches!(check(&new(id, ok, "openid")), Err(ProviderError::InvalidId)),
                "{id}"
            );
        }
        for issuer in [
            "http://accounts.google.com",
            "https://accounts.google.com?x=1",
            "https://accounts.google.com#f",
            "accounts.google.com",
        ] {
            assert!(
                matches!(
                    check(&new("g", issuer, "openid")),
                    Err(ProviderError::InvalidIssuer(_))
                ),
                "{issuer}"
            );
        }
        assert!(matches!(
            check(&new("g", ok, "email profile")),
            Err(ProviderError::NoOpenid)
        ));
    }
}
