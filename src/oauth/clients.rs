//! Registered clients: their typed vocabulary, the rules of their metadata, and
//! the row ↔ [`Client`] mapping.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    Set,
};
use subtle::ConstantTimeEq;
use url::Url;
use uuid::Uuid;

use super::{digest, scope_list};
use crate::identity::sessions::random_token;
use crate::store::entities::client;
use crate::tokens::Algorithm;

pub const GRANT_AUTHORIZATION_CODE: &str = GrantType::AuthorizationCode.as_str();
pub const GRANT_REFRESH_TOKEN: &str = GrantType::RefreshToken.as_str();
pub const GRANT_CLIENT_CREDENTIALS: &str = GrantType::ClientCredentials.as_str();
/// Every grant type this server implements, in the order discovery lists them.
pub const GRANT_TYPES: &[&str] = &[
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_CLIENT_CREDENTIALS,
];

/// A grant type this server implements (RFC 6749 §4.1, §4.4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    /// The grant type a request or registration names; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        [
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ]
        .into_iter()
        .find(|g| g.as_str() == name)
    }
}

impl serde::Serialize for GrantType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2
/// `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: no secret.
    None,
}

impl AuthMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::None,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AuthMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("redirect URI `{0}`: {1}")]
    InvalidRedirectUri(String, &'static str),
    #[error("a client needs a name of 1 to 200 characters")]
    InvalidName,
    #[error("unsupported grant type `{0}`")]
    UnsupportedGrantType(String),
    #[error("the authorization_code grant needs at least one redirect URI")]
    NoRedirectUri,
    #[error("public clients cannot use client_credentials")]
    PublicClientCredentials,
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("randomness: {0}")]
    Random(String),
}

/// A client, parsed from its row.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scope: Vec<String>,
    pub native: bool,
    pub first_party: bool,
    pub id_token_alg: Algorithm,
    pub post_logout_redirect_uris: Vec<String>,
    pub org_optional: bool,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub contacts: Vec<String>,
    pub auth_method: AuthMethod,
    /// Registered itself (RFC 7591) rather than by an operator.
    pub self_registered: bool,
    registration_token_hash: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
}

impl Client {
    /// A confidential client (secret `s3cret`) for the code flow, for tests.
    #[cfg(test)]
    pub(crate) fn example(uris: &[&str], native: bool) -> Client {
        Client {
            client_id: "c".into(),
            name: "App".into(),
            secret_hash: Some(digest("s3cret")),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            grant_types: vec![GrantType::AuthorizationCode],
            scope: scope_list("openid profile"),
            native,
            first_party: false,
            id_token_alg: Algorithm::Rs256,
            post_logout_redirect_uris: Vec::new(),
            org_optional: false,
            client_uri: None,
            logo_uri: None,
            contacts: Vec::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            self_registered: false,
            registration_token_hash: None,
            created_at: Utc::now(),
        }
    }

    /// The client a row stores. A value no release writes (an unknown grant type,
    /// algorithm or auth method, a list that is not JSON) is refused loudly, never
    /// read as a default: a silent default could widen what the client may do.
    fn from_row(row: client::Model) -> Result<Self, sea_orm::DbErr> {
        let id = row.client_id.clone();
        let malformed = |field: &str, value: &str| {
            sea_orm::DbErr::Custom(format!(
                "client {id}: stored {field} `{value}` is malformed"
            ))
        };
        let list = |field: &str, json: &str| -> Result<Vec<String>, sea_orm::DbErr> {
            serde_json::from_str(json).map_err(|_| malformed(field, json))
        };
        let grant_types = row
            .grant_types
            .split_whitespace()
            .map(|g| GrantType::parse(g).ok_or_else(|| malformed("grant type", g)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            redirect_uris: list("redirect_uris", &row.redirect_uris)?,
            grant_types,
            scope: scope_list(&row.scope),
            native: row.application_type == "native",
            first_party: row.first_party,
            id_token_alg: row
                .id_token_alg
                .parse()
                .map_err(|_| malformed("id_token_alg", &row.id_token_alg))?,
            post_logout_redirect_uris: list(
                "post_logout_redirect_uris",
                &row.post_logout_redirect_uris,
            )?,
            org_optional: row.org_optional,
            contacts: list("contacts", &row.contacts)?,
            auth_method: AuthMethod::parse(&row.token_endpoint_auth_method).ok_or_else(|| {
                malformed(
                    "token_endpoint_auth_method",
                    &row.token_endpoint_auth_method,
                )
            })?,
            self_registered: row.self_registered,
            registration_token_hash: row.registration_token_hash,
            created_at: row.created_at,
            client_id: row.client_id,
            name: row.name,
            secret_hash: row.secret_hash,
            client_uri: row.client_uri,
            logo_uri: row.logo_uri,
        })
    }

    /// Checks an RFC 7592 registration access token in constant time; clients an
    /// operator created have none.
    pub fn registration_token_matches(&self, presented: &str) -> bool {
        self.registration_token_hash
            .as_deref()
            .is_some_and(|stored| bool::from(digest(presented).as_bytes().ct_eq(stored.as_bytes())))
    }

    /// Public clients (`token_endpoint_auth_method: none`) have no secret.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }

    /// Exact string comparison against the registered URIs (RFC 9700 §4.1.3); for
    /// native clients a loopback URI matches with any port (RFC 8252 §7.3).
    pub fn redirect_allowed(&self, requested: &str) -> bool {
        if self.redirect_uris.iter().any(|r| r == requested) {
            return true;
        }
        if !self.native {
            return false;
        }
        let Ok(asked) = Url::parse(requested) else {
            return false;
        };
        if asked.scheme() != "http" || !is_loopback_ip(&asked) {
            return false;
        }
        self.redirect_uris.iter().any(|registered| {
            Url::parse(registered).is_ok_and(|mut r| {
                let mut a = asked.clone();
                let (_, _) = (r.set_port(None), a.set_port(None));
                r.scheme() == "http" && is_loopback_ip(&r) && r == a
            })
        })
    }

    /// Checks a presented secret in constant time; public clients must present none.
    pub fn authenticates(&self, secret: Option<&[u8]>) -> bool {
        match (&self.secret_hash, secret) {
            (None, None) => true,
            (Some(stored), Some(given)) => {
                let Ok(given) = std::str::from_utf8(given) else {
                    return false;
                };
                bool::from(digest(given).as_bytes().ct_eq(stored.as_bytes()))
            }
            _ => false,
        }
    }

    /// The requested scopes this client may have (unknown ones are ignored, as OIDC
    /// Core §3.1.2.1 and RFC 6749 §3.3 allow); `None` asks for all of its scopes.
    pub fn negotiate_scope(&self, requested: Option<&str>) -> Vec<String> {
        match requested {
            None => self.scope.clone(),
            // `org:{uuid}` names one organization; it is allowed wherever `org` is.
            Some(asked) => scope_list(asked)
                .into_iter()
                .filter(|s| {
                    self.scope.contains(s)
                        || (s.starts_with("org:") && self.scope.iter().any(|c| c == "org"))
                })
                .collect(),
        }
    }
}

fn is_loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// What an operator or dynamic registration asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub grant_types: Vec<String>,
    pub scope: String,
    pub first_party: bool,
    pub native: bool,
    pub id_token_alg: Algorithm,
    pub post_logout_redirect_uris: Vec<String>,
    /// See [`Client::org_optional`].
    pub org_optional: bool,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub contacts: Vec<String>,
    /// A confidential client that sends its secret in the body rather than with
    /// HTTP Basic (`client_secret_post`).
    pub secret_post: bool,
}

impl Default for NewClient {
    fn default() -> Self {
        Self {
            name: String::new(),
            redirect_uris: Vec::new(),
            public: false,
            grant_types: vec![GRANT_AUTHORIZATION_CODE.to_owned()],
            scope: "openid profile email offline_access".to_owned(),
            first_party: false,
            native: false,
            id_token_alg: Algorithm::Rs256,
            post_logout_redirect_uris: Vec::new(),
            org_optional: false,
            client_uri: None,
            logo_uri: None,
            contacts: Vec::new(),
            secret_post: false,
        }
    }
}

impl NewClient {
    pub fn auth_method(&self) -> AuthMethod {
        match (self.public, self.secret_post) {
            (true, _) => AuthMethod::None,
            (false, true) => AuthMethod::ClientSecretPost,
            (false, false) => AuthMethod::ClientSecretBasic,
        }
    }
}

/// Which redirect URIs a client may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectRules {
    /// An operator knows what they register: https, or http on a loopback host.
    Operator,
    /// Dynamic registration (RFC 8252, RFC 9700 §4.1): web clients https only
    /// (http on localhost/loopback when the development setting allows it);
    /// native clients a loopback IP with any port, a private-use scheme, or https.
    Registration { allow_http_localhost: bool },
}

pub fn check_redirect_uri(
    uri: &str,
    native: bool,
    rules: RedirectRules,
) -> Result<(), ClientError> {
    let bad = |why| ClientError::InvalidRedirectUri(uri.to_owned(), why);
    let url = Url::parse(uri).map_err(|_| bad("not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    if uri.contains('*') {
        return Err(bad("wildcards are not allowed"));
    }
    if uri.len() > 2000 {
        return Err(bad("is longer than 2000 characters"));
    }
    let loopback = is_loopback_ip(&url) || url.host_str() == Some("localhost");
    let http_allowed = match rules {
        RedirectRules::Operator => loopback,
        // RFC 8252 §8.3: loopback by IP literal, not `localhost`.
        RedirectRules::Registration { .. } if native => is_loopback_ip(&url),
        RedirectRules::Registration {
            allow_http_localhost,
        } => allow_http_localhost && loopback,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if http_allowed => Ok(()),
        "http" if native => Err(bad("native clients use http only on 127.0.0.1 or [::1]")),
        "http" => Err(bad("must use https")),
        // RFC 8252 §7.1: private-use URI schemes (reverse domain names) for native apps.
        scheme if native && scheme.contains('.') => Ok(()),
        _ if native => Err(bad(
            "use https, http on 127.0.0.1 or [::1], or a private-use scheme such as com.example.app",
        )),
        _ => Err(bad("unsupported scheme")),
    }
}

/// Checks what every client must satisfy, however it is registered.
pub fn validate(new: &NewClient, rules: RedirectRules) -> Result<(), ClientError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ClientError::InvalidName);
    }
    for g in &new.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(ClientError::UnsupportedGrantType(g.clone()));
        }
    }
    if new
        .grant_types
        .iter()
        .any(|g| g == GRANT_AUTHORIZATION_CODE)
        && new.redirect_uris.is_empty()
    {
        return Err(ClientError::NoRedirectUri);
    }
    if new.public
        && new
            .grant_types
            .iter()
            .any(|g| g == GRANT_CLIENT_CREDENTIALS)
    {
        return Err(ClientError::PublicClientCredentials);
    }
    for uri in new
        .redirect_uris
        .iter()
        .chain(&new.post_logout_redirect_uris)
    {
        check_redirect_uri(uri, new.native, rules)?;
    }
    Ok(())
}

fn new_secret(public: bool) -> Result<Option<String>, ClientError> {
    if public {
        return Ok(None);
    }
    random_token()
        .map(Some)
        .map_err(|e| ClientError::Random(e.to_string()))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Registers a client. Returns it with its secret, which exists only in this return
/// value: the database keeps its SHA-256 (a slow hash buys nothing for 256 random
/// bits and would cost every token request).
pub async fn create(
    db: &DatabaseConnection,
    new: NewClient,
) -> Result<(Client, Option<String>), ClientError> {
    validate(&new, RedirectRules::Operator)?;
    insert(db, new, None).await
}

/// Stores a validated client; `registration_token` is the RFC 7592 token of a
/// client that registered itself. Returns the client and its new secret.
pub async fn insert(
    db: &DatabaseConnection,
    new: NewClient,
    registration_token: Option<&str>,
) -> Result<(Client, Option<String>), ClientError> {
    let secret = new_secret(new.public)?;
    let row = client::ActiveModel {
        id: Set(Uuid::now_v7()),
        client_id: Set(Uuid::now_v7().to_string()),
        secret_hash: Set(secret.as_deref().map(digest)),
        name: Set(new.name.trim().to_owned()),
        redirect_uris: Set(json_list(&new.redirect_uris)),
        grant_types: Set(new.grant_types.join(" ")),
        scope: Set(scope_list(&new.scope).join(" ")),
        application_type: Set(if new.native { "native" } else { "web" }.to_owned()),
        first_party: Set(new.first_party),
        id_token_alg: Set(new.id_token_alg.as_str().to_owned()),
        created_at: Set(Utc::now()),
        post_logout_redirect_uris: Set(json_list(&new.post_logout_redirect_uris)),
        org_optional: Set(new.org_optional),
        client_uri: Set(new.client_uri.clone()),
        logo_uri: Set(new.logo_uri.clone()),
        contacts: Set(json_list(&new.contacts)),
        token_endpoint_auth_method: Set(new.auth_method().as_str().to_owned()),
        registration_token_hash: Set(registration_token.map(digest)),
        self_registered: Set(registration_token.is_some()),
    }
    .insert(db)
    .await?;
    Ok((Client::from_row(row)?, secret))
}

/// Replaces a client's metadata (RFC 7592 §2.2). A secret is kept unless the
/// client changes to or from public, or asks for a new one; a new one is returned.
pub async fn replace(
    db: &DatabaseConnection,
    client_id: &str,
    new: NewClient,
    rotate_secret: bool,
) -> Result<Option<(Client, Option<String>)>, ClientError> {
    let Some(row) = client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let was_public = row.secret_hash.is_none();
    let secret = if new.public {
        None
    } else if was_public || rotate_secret {
        new_secret(false)?
    } else {
        None
    };
    let keeps_secret = !new.public && secret.is_none();
    let mut active = row.into_active_model();
    if !keeps_secret {
        active.secret_hash = Set(secret.as_deref().map(digest));
    }
    active.name = Set(new.name.trim().to_owned());
    active.redirect_uris = Set(json_list(&new.redirect_uris));
    active.grant_types = Set(new.grant_types.join(" "));
    active.scope = Set(scope_list(&new.scope).join(" "));
    active.application_type = Set(if new.native { "native" } else { "web" }.to_owned());
    active.id_token_alg = Set(new.id_token_alg.as_str().to_owned());
    active.post_logout_redirect_uris = Set(json_list(&new.post_logout_redirect_uris));
    active.client_uri = Set(new.client_uri.clone());
    active.logo_uri = Set(new.logo_uri.clone());
    active.contacts = Set(json_list(&new.contacts));
    active.token_endpoint_auth_method = Set(new.auth_method().as_str().to_owned());
    let row = active.update(db).await?;
    Ok(Some((Client::from_row(row)?, secret)))
}

/// Replaces the RFC 7592 registration access token (stored as a digest).
pub async fn set_registration_token(
    db: &DatabaseConnection,
    client_id: &str,
    token: &str,
) -> Result<(), ClientError> {
    client::Entity::update_many()
        .col_expr(
            client::Column::RegistrationTokenHash,
            sea_orm::sea_query::Expr::value(digest(token)),
        )
        .filter(client::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes a client; its refresh tokens are revoked and its consents forgotten.
pub async fn delete(db: &DatabaseConnection, client_id: &str) -> Result<bool, ClientError> {
    use sea_orm::TransactionTrait;
    use sea_orm::sea_query::Expr;
    let txn = db.begin().await?;
    crate::store::entities::refresh_token::Entity::update_many()
        .col_expr(
            crate::store::entities::refresh_token::Column::RevokedAt,
            Expr::value(Utc::now()),
        )
        .filter(crate::store::entities::refresh_token::Column::ClientId.eq(client_id))
        .filter(crate::store::entities::refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    crate::store::entities::consent::Entity::delete_many()
        .filter(crate::store::entities::consent::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?;
    let deleted = client::Entity::delete_many()
        .filter(client::Column::ClientId.eq(client_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(deleted.rows_affected > 0)
}

pub async fn find(
    db: &DatabaseConnection,
    client_id: &str,
) -> Result<Option<Client>, sea_orm::DbErr> {
    if client_id.is_empty() || client_id.len() > 64 {
        return Ok(None);
    }
    client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await?
        .map(Client::from_row)
        .transpose()
}

/// Recently read clients, so the token endpoint does not ask the database on
/// every request (a round trip that cost more than signing the token). An entry
/// lives `ttl`: this instance forgets a client at once when it changes it, other
/// instances sharing the database within `ttl`.
pub struct ClientCache {
    ttl: std::time::Duration,
    entries: std::sync::RwLock<std::collections::HashMap<String, (std::time::Instant, Client)>>,
}

/// Enough for every client of a large deployment; past it the cache starts over.
const CLIENT_CACHE_CAPACITY: usize = 10_000;

impl ClientCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: std::sync::RwLock::new(std::collections::HashMap::new()),
        }
    }

    pub async fn find(
        &self,
        db: &DatabaseConnection,
        client_id: &str,
    ) -> Result<Option<Client>, sea_orm::DbErr> {
        if !self.ttl.is_zero() {
            let entries = self
                .entries
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, client)) = entries.get(client_id)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(client.clone()));
            }
        }
        let found = find(db, client_id).await?;
        if let Some(client) = &found
            && !self.ttl.is_zero()
        {
            let mut entries = self
                .entries
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if entries.len() >= CLIENT_CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(
                client_id.to_owned(),
                (std::time::Instant::now(), client.clone()),
            );
        }
        Ok(found)
    }

    /// The redirect URI `redirect_uri`, when it is one `client_id` registered (the
    /// same check `/authorize` makes before anything may go there); `None`
    /// for an unknown client or a URI it did not register.
    pub async fn verified_redirect(
        &self,
        db: &DatabaseConnection,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Option<Url>, sea_orm::DbErr> {
        let client = self.find(db, client_id).await?;
        Ok(client
            .filter(|c| c.redirect_allowed(redirect_uri))
            .and_then(|_| Url::parse(redirect_uri).ok()))
    }

    /// Drops a client this instance just changed or deleted.
    pub fn forget(&self, client_id: &str) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: &[&str], native: bool) -> Client {
        Client::example(uris, native)
    }

    fn row() -> client::Model {
        client::Model {
            id: uuid::Uuid::now_v7(),
            client_id: "c".into(),
            secret_hash: None,
            name: "App".into(),
            redirect_uris: r#"["https://app.example/cb"]"#.into(),
            grant_types: "authorization_code refresh_token".into(),
            scope: "openid".into(),
            application_type: "web".into(),
            first_party: false,
            id_token_alg: "RS256".into(),
            created_at: Utc::now(),
            post_logout_redirect_uris: "[]".into(),
            org_optional: false,
            client_uri: None,
            logo_uri: None,
            contacts: "[]".into(),
            token_endpoint_auth_method: "none".into(),
            registration_token_hash: None,
            self_registered: false,
        }
    }

    #[test]
    fn a_stored_client_reads_as_typed_values_and_a_malformed_one_is_refused() {
        let client = Client::from_row(row()).unwrap();
        assert_eq!(
            client.grant_types,
            [GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(client.auth_method, AuthMethod::None);
        let broken: [fn(&mut client::Model); 5] = [
            |r| r.grant_types = "authorization_code password".into(),
            |r| r.token_endpoint_auth_method = "private_key_jwt".into(),
            |r| r.id_token_alg = "HS256".into(),
            |r| r.redirect_uris = "https://app.example/cb".into(),
            |r| r.contacts = "".into(),
        ];
        for (i, breaks) in broken.into_iter().enumerate() {
            let mut r = row();
            breaks(&mut r);
            let refused = Client::from_row(r).expect_err("no silent default");
            assert!(
                refused.to_string().contains("client c: stored"),
                "{i}: {refused}"
            );
        }
    }

    #[test]
    fn grant_types_and_auth_methods_round_trip_their_names() {
        for g in GRANT_TYPES {
            assert_eq!(GrantType::parse(g).map(GrantType::as_str), Some(*g));
        }
        assert_eq!(GrantType::parse("password"), None);
        for m in ["client_secret_basic", "client_secret_post", "none"] {
            assert_eq!(AuthMethod::parse(m).map(AuthMethod::as_str), Some(m));
        }
        assert_eq!(AuthMethod::parse("private_key_jwt"), None);
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let web = client(&["https://app.example/cb"], false);
        assert!(web.redirect_allowed("https://app.example/cb"));
        for near_miss in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/CB",
            "https://app.example:443/cb",
            "https://evil.example/cb",
            "http://app.example/cb",
            "https://app.example/cb#frag",
        ] {
            assert!(!web.redirect_allowed(near_miss), "{near_miss}");
        }
    }

    #[test]
    fn native_loopback_redirects_match_any_port_but_nothing_else() {
        let native = client(
            &["http://127.0.0.1/callback", "http://[::1]/callback"],
            true,
        );
        assert!(native.redirect_allowed("http://127.0.0.1:51234/callback"));
        assert!(native.redirect_allowed("http://[::1]:8080/callback"));
        assert!(!native.redirect_allowed("http://127.0.0.1:51234/other"));
        assert!(!native.redirect_allowed("http://localhost:51234/callback"));
        assert!(!native.redirect_allowed("https://127.0.0.1:51234/callback"));
        let web = client(&["http://127.0.0.1/callback"], false);
        assert!(!web.redirect_allowed("http://127.0.0.1:51234/callback"));
    }

    #[test]
    fn secrets_are_checked_and_public_clients_present_none() {
        let confidential = client(&[], false);
        assert!(confidential.authenticates(Some(b"s3cret")));
        assert!(!confidential.authenticates(Some(b"s3cret ")));
        assert!(!confidential.authenticates(None));
        let mut public = client(&[], false);
        public.secret_hash = None;
        assert!(public.authenticates(None));
        assert!(!public.authenticates(Some(b"anything")));
    }

    #[test]
    fn scope_is_narrowed_to_what_the_client_may_have() {
        let c = client(&[], false);
        assert_eq!(
            c.negotiate_scope(Some("profile openid admin")),
            vec!["openid", "profile"]
        );
        assert!(c.negotiate_scope(Some("admin")).is_empty());
        assert_eq!(c.negotiate_scope(None), vec!["openid", "profile"]);
    }

    #[test]
    fn redirect_uri_registration_rules() {
        let op = RedirectRules::Operator;
        assert!(check_redirect_uri("https://app.example/cb", false, op).is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/cb", true, op).is_ok());
        assert!(check_redirect_uri("com.example.app:/cb", true, op).is_ok());
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "https://u:p@app.example/",
            "https://*.example/cb",
            "not a url",
            "com.example.app:/cb",
        ] {
            assert!(check_redirect_uri(bad, false, op).is_err(), "{bad}");
        }
    }

    #[test]
    fn self_registered_clients_get_the_stricter_rules() {
        let strict = RedirectRules::Registration {
            allow_http_localhost: false,
        };
        let dev = RedirectRules::Registration {
            allow_http_localhost: true,
        };
        // Web: https only, unless the development setting allows local http.
        assert!(check_redirect_uri("https://app.example/cb", false, strict).is_ok());
        assert!(check_redirect_uri("http://localhost:3000/cb", false, strict).is_err());
        assert!(check_redirect_uri("http://127.0.0.1:3000/cb", false, strict).is_err());
        assert!(check_redirect_uri("http://localhost:3000/cb", false, dev).is_ok());
        assert!(check_redirect_uri("http://app.example/cb", false, dev).is_err());
        // Native: loopback by IP literal, a private-use scheme, or https.
        assert!(check_redirect_uri("http://127.0.0.1/cb", true, strict).is_ok());
        assert!(check_redirect_uri("http://[::1]:8400/cb", true, strict).is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth", true, strict).is_ok());
        assert!(check_redirect_uri("https://app.example/cb", true, strict).is_ok());
        assert!(check_redirect_uri("http://localhost/cb", true, strict).is_err());
        assert!(check_redirect_uri("myapp:/cb", true, strict).is_err());
        let long = format!("https://app.example/{}", "a".repeat(2000));
        assert!(check_redirect_uri(&long, false, strict).is_err());
    }
}
