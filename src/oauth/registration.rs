//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592):
//! what a client may register, the metadata it gets back, and the initial access
//! tokens that permit registering.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::clients::{self, AuthMethod, Client, ClientError, GrantType, NewClient, RedirectRules};
use super::{digest, scope_list};
use crate::identity::normalize_email;
use crate::identity::sessions::random_token;
use crate::store::entities::initial_access_token;
use crate::tokens::Algorithm;

/// Larger than any honest registration; a bigger body is refused unread.
pub const MAX_BODY: usize = 16 * 1024;
const MAX_URIS: usize = 20;
const MAX_CONTACTS: usize = 10;
const MAX_URI_LENGTH: usize = 2000;
const MAX_SCOPE_LENGTH: usize = 1000;

/// Scopes a client may register for itself: the ones this server defines. A
/// self-registered client naming an API scope could otherwise mint itself
/// `client_credentials` tokens an API trusts.
pub const REGISTRABLE_SCOPES: &[&str] = super::SCOPES;

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// RFC 7591 §3.2.2 `invalid_redirect_uri`.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// RFC 7591 §3.2.2 `invalid_client_metadata`.
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// A missing, unknown, spent or expired initial or registration access token.
    #[error("the access token is missing, unknown or expired")]
    InvalidToken,
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("randomness: {0}")]
    Random(String),
}

impl From<ClientError> for RegistrationError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidRedirectUri(..) | ClientError::NoRedirectUri => {
                RegistrationError::InvalidRedirectUri(e.to_string())
            }
            ClientError::Storage(e) => RegistrationError::Storage(e),
            ClientError::Random(e) => RegistrationError::Random(e),
            other => RegistrationError::InvalidClientMetadata(other.to_string()),
        }
    }
}

fn metadata_error(why: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidClientMetadata(why.into())
}

/// RFC 7591 §2 client metadata as a client sends it. Fields this server does not
/// know are ignored (§2: "the authorization server MUST ignore any client metadata
/// sent by the client that it does not understand").
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub redirect_uris: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub scope: Option<String>,
    pub contacts: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub application_type: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
    /// OIDC Back-Channel Logout 1.0 §2.2.
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: Option<bool>,
    /// RFC 7592 §2.2: an update names the client it replaces…
    pub client_id: Option<String>,
    /// …and, if it has one, its current secret.
    pub client_secret: Option<String>,
    /// Tessera's extension to an update: issue a new client secret.
    pub rotate_client_secret: Option<bool>,
}

impl Metadata {
    pub fn parse(body: &[u8]) -> Result<Self, RegistrationError> {
        if body.len() > MAX_BODY {
            return Err(metadata_error(format!(
                "the request body is larger than {MAX_BODY} bytes"
            )));
        }
        serde_json::from_slice(body)
            .map_err(|e| metadata_error(format!("the body is not client metadata JSON: {e}")))
    }
}

fn check_web_uri(
    field: &str,
    uri: &str,
    allow_http_localhost: bool,
) -> Result<(), RegistrationError> {
    let bad = |why: &str| metadata_error(format!("{field} `{uri}` {why}"));
    if uri.len() > MAX_URI_LENGTH {
        return Err(bad("is too long"));
    }
    let url = Url::parse(uri).map_err(|_| bad("is not an absolute URL"))?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http_localhost && local => Ok(()),
        _ => Err(bad("must use https")),
    }
}

/// Turns registered metadata into a client, or says precisely what is wrong.
pub fn validate(
    meta: &Metadata,
    allow_http_localhost: bool,
) -> Result<NewClient, RegistrationError> {
    let native = match meta.application_type.as_deref().unwrap_or("web") {
        "web" => false,
        "native" => true,
        other => {
            return Err(metadata_error(format!(
                "application_type `{other}` is neither `web` nor `native`"
            )));
        }
    };
    let auth_method = auth_method(meta)?;
    let grant_types = grant_types(meta, auth_method)?;
    let rules = RedirectRules::Registration {
        allow_http_localhost,
    };
    let (redirect_uris, post_logout_redirect_uris) =
        redirect_uris(meta, &grant_types, native, rules)?;
    let name = meta
        .client_name
        .as_deref()
        .map(str::trim)
        .unwrap_or("Unnamed application");
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(metadata_error("client_name must be 1 to 200 characters"));
    }
    for (field, uri) in [
        ("client_uri", &meta.client_uri),
        ("logo_uri", &meta.logo_uri),
    ] {
        if let Some(uri) = uri {
            check_web_uri(field, uri, allow_http_localhost)?;
        }
    }
    let id_token_alg = match meta.id_token_signed_response_alg.as_deref() {
        None | Some("RS256") => Algorithm::Rs256,
        Some("ES256") => Algorithm::Es256,
        Some(other) => {
            return Err(metadata_error(format!(
                "id_token_signed_response_alg `{other}` is not supported (RS256 or ES256)"
            )));
        }
    };
    let new = NewClient {
        name: name.to_owned(),
        redirect_uris,
        scope: scope(meta, &grant_types)?,
        grant_types,
        first_party: false,
        native,
        id_token_alg,
        post_logout_redirect_uris,
        org_optional: false,
        client_uri: meta.client_uri.clone(),
        logo_uri: meta.logo_uri.clone(),
        contacts: contacts(meta)?,
        auth_method,
        // An API is an operator's to assign (`tessera client create --default-api`).
        default_resource: None,
        introspect_for: None,
        service: None,
        backchannel_logout_uri: meta.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: meta
            .backchannel_logout_session_required
            .unwrap_or(false),
    };
    clients::validate(&new, rules)?;
    Ok(new)
}

/// RFC 7591 §2 `token_endpoint_auth_method`, `client_secret_basic` by default.
fn auth_method(meta: &Metadata) -> Result<AuthMethod, RegistrationError> {
    let name = meta
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or(AuthMethod::ClientSecretBasic.as_str());
    AuthMethod::parse(name).ok_or_else(|| {
        metadata_error(format!(
            "token_endpoint_auth_method `{name}` is not supported \
             (client_secret_basic, client_secret_post or none)"
        ))
    })
}

/// RFC 7591 §2.1: `grant_types` and `response_types` must agree — `code` goes
/// with authorization_code, and nothing else exists here.
fn grant_types(
    meta: &Metadata,
    auth_method: AuthMethod,
) -> Result<Vec<GrantType>, RegistrationError> {
    let mut grant_types = Vec::new();
    for name in meta.grant_types.as_deref().unwrap_or(&[]) {
        let grant = GrantType::parse(name).ok_or_else(|| {
            metadata_error(format!(
                "grant type `{name}` is not supported ({})",
                clients::GRANT_TYPES.join(", ")
            ))
        })?;
        if !grant_types.contains(&grant) {
            grant_types.push(grant);
        }
    }
    if meta.grant_types.is_none() {
        grant_types.push(GrantType::AuthorizationCode);
    }
    if grant_types.is_empty() {
        return Err(metadata_error("grant_types is empty"));
    }
    let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
    let response_types = meta
        .response_types
        .clone()
        .unwrap_or_else(|| uses_code.then(|| "code".to_owned()).into_iter().collect());
    if let Some(other) = response_types.iter().find(|r| *r != "code") {
        return Err(metadata_error(format!(
            "response type `{other}` is not supported (only `code`)"
        )));
    }
    if response_types.iter().any(|r| r == "code") != uses_code {
        return Err(metadata_error(
            "response_types and grant_types disagree: `code` goes with authorization_code, and only with it",
        ));
    }
    if grant_types.contains(&GrantType::RefreshToken)
        && !uses_code
        && !grant_types.contains(&GrantType::TokenExchange)
    {
        return Err(metadata_error(
            "refresh_token needs the authorization_code or token-exchange grant",
        ));
    }
    // A client without a secret proves itself with PKCE, which only the code flow has.
    if auth_method == AuthMethod::None && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(metadata_error(
            "token_endpoint_auth_method `none` cannot use client_credentials",
        ));
    }
    Ok(grant_types)
}

/// The redirect and post-logout redirect URIs, under the rules for clients that
/// register themselves.
fn redirect_uris(
    meta: &Metadata,
    grant_types: &[GrantType],
    native: bool,
    rules: RedirectRules,
) -> Result<(Vec<String>, Vec<String>), RegistrationError> {
    let redirect_uris = meta.redirect_uris.clone().unwrap_or_default();
    if redirect_uris.len() > MAX_URIS {
        return Err(RegistrationError::InvalidRedirectUri(format!(
            "at most {MAX_URIS} redirect URIs"
        )));
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri(
            "the authorization_code grant needs at least one redirect URI".to_owned(),
        ));
    }
    for uri in &redirect_uris {
        clients::check_redirect_uri(uri, native, rules)?;
    }
    let post_logout = meta.post_logout_redirect_uris.clone().unwrap_or_default();
    if post_logout.len() > MAX_URIS {
        return Err(metadata_error(format!(
            "at most {MAX_URIS} post_logout_redirect_uris"
        )));
    }
    for uri in &post_logout {
        clients::check_redirect_uri(uri, native, rules)
            .map_err(|e| metadata_error(format!("post_logout_redirect_uris: {e}")))?;
    }
    Ok((redirect_uris, post_logout))
}

fn contacts(meta: &Metadata) -> Result<Vec<String>, RegistrationError> {
    let contacts = meta.contacts.as_deref().unwrap_or(&[]);
    if contacts.len() > MAX_CONTACTS {
        return Err(metadata_error(format!("at most {MAX_CONTACTS} contacts")));
    }
    contacts
        .iter()
        .map(|c| {
            normalize_email(c)
                .map_err(|_| metadata_error(format!("contact `{c}` is not an email address")))
        })
        .collect()
}

/// The scopes registered: only ones this server defines (see
/// [`REGISTRABLE_SCOPES`]); without `scope`, the OIDC ones.
fn scope(meta: &Metadata, grant_types: &[GrantType]) -> Result<String, RegistrationError> {
    let Some(scope) = &meta.scope else {
        return Ok(if grant_types.contains(&GrantType::RefreshToken) {
            "openid profile email offline_access".to_owned()
        } else {
            "openid profile email".to_owned()
        });
    };
    if scope.len() > MAX_SCOPE_LENGTH {
        return Err(metadata_error("scope is too long"));
    }
    if let Some(unknown) = scope_list(scope)
        .into_iter()
        .find(|s| !REGISTRABLE_SCOPES.contains(&s.as_str()))
    {
        return Err(metadata_error(format!(
            "scope `{unknown}` is not one a client may register ({})",
            REGISTRABLE_SCOPES.join(", ")
        )));
    }
    Ok(scope.clone())
}

/// A registration's answer (RFC 7591 §3.2.1, RFC 7592 §3): the metadata as
/// registered plus the credentials that exist only in this response.
pub fn response(
    client: &Client,
    secret: Option<&str>,
    registration_token: Option<&str>,
    registration_client_uri: &str,
) -> Value {
    let response_types: &[&str] = if client.allows_grant(clients::GrantType::AuthorizationCode) {
        &["code"]
    } else {
        &[]
    };
    let mut body = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at.timestamp(),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": client.auth_method,
        "scope": client.scope.join(" "),
        "contacts": client.contacts,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "application_type": if client.native { "native" } else { "web" },
        "id_token_signed_response_alg": client.id_token_alg.as_str(),
        "registration_client_uri": registration_client_uri,
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(uri) = &client.client_uri {
            map.insert("client_uri".into(), json!(uri));
        }
        if let Some(uri) = &client.logo_uri {
            map.insert("logo_uri".into(), json!(uri));
        }
        if let Some(uri) = &client.backchannel_logout_uri {
            map.insert("backchannel_logout_uri".into(), json!(uri));
            map.insert(
                "backchannel_logout_session_required".into(),
                json!(client.backchannel_logout_session_required),
            );
        }
        if !client.is_public() {
            // Secrets do not expire here.
            map.insert("client_secret_expires_at".into(), json!(0));
        }
        if let Some(secret) = secret {
            map.insert("client_secret".into(), json!(secret));
        }
        if let Some(token) = registration_token {
            map.insert("registration_access_token".into(), json!(token));
        }
    }
    body
}

/// A registered client and the credentials shown once.
pub struct Registered {
    pub client: Client,
    pub secret: Option<String>,
    pub registration_token: String,
}

/// Registers `new`, spending one use of `initial_token` when the policy needs one;
/// a refused token spends nothing.
pub async fn register(
    db: &DatabaseConnection,
    new: NewClient,
    initial_token: Option<&str>,
) -> Result<Registered, RegistrationError> {
    if let Some(token) = initial_token {
        spend_initial_token(db, token).await?;
    }
    let registration_token =
        random_token().map_err(|e| RegistrationError::Random(e.to_string()))?;
    let (client, secret) =
        crate::store::clients::insert(db, new, Some(&registration_token)).await?;
    Ok(Registered {
        client,
        secret,
        registration_token,
    })
}

/// The client behind an RFC 7592 request, if `token` is its registration access
/// token. An unknown client and a wrong token read the same (§2: 401 for both).
pub async fn authorized_client(
    db: &DatabaseConnection,
    client_id: &str,
    token: Option<&str>,
) -> Result<Client, RegistrationError> {
    let token = token.ok_or(RegistrationError::InvalidToken)?;
    let client = crate::store::clients::find(db, client_id)
        .await?
        .ok_or(RegistrationError::InvalidToken)?;
    if !client.registration_token_matches(token) {
        return Err(RegistrationError::InvalidToken);
    }
    Ok(client)
}

/// The result of an update: the client, a new secret if one was issued, and the
/// new registration access token (rotated on every update).
pub struct Updated {
    pub client: Client,
    pub secret: Option<String>,
    pub registration_token: String,
}

/// RFC 7592 §2.2: replaces every field; `client_id` must name the client and a
/// `client_secret`, if sent, must be its current one.
pub async fn update(
    db: &DatabaseConnection,
    current: &Client,
    meta: &Metadata,
    allow_http_localhost: bool,
) -> Result<Updated, RegistrationError> {
    if meta.client_id.as_deref() != Some(current.client_id.as_str()) {
        return Err(metadata_error(
            "client_id must be present and name the client being updated",
        ));
    }
    if let Some(secret) = &meta.client_secret
        && !current.authenticates(Some(secret.as_bytes()))
    {
        return Err(metadata_error(
            "client_secret is not the client's current secret",
        ));
    }
    let new = validate(meta, allow_http_localhost)?;
    let rotate = meta.rotate_client_secret.unwrap_or(false);
    let registration_token =
        random_token().map_err(|e| RegistrationError::Random(e.to_string()))?;
    let (client, secret) = crate::store::clients::replace(db, &current.client_id, new, rotate)
        .await?
        .ok_or(RegistrationError::InvalidToken)?;
    // What people consented to was shown and answered under these: a change
    // means asking them again (else prompt=none would send a code to a new URI).
    let presented_anew = client.redirect_uris != current.redirect_uris
        || client.name != current.name
        || client.logo_uri != current.logo_uri
        || client.client_uri != current.client_uri;
    if presented_anew {
        super::consent::forget_client(db, &client.client_id).await?;
    }
    crate::store::clients::set_registration_token(db, &client.client_id, &registration_token)
        .await?;
    Ok(Updated {
        client,
        secret,
        registration_token,
    })
}

/// A new registration access token for `client`; the old one stops working.
pub async fn reissue_registration_token(
    db: &DatabaseConnection,
    client: &Client,
) -> Result<String, RegistrationError> {
    let token = random_token().map_err(|e| RegistrationError::Random(e.to_string()))?;
    crate::store::clients::set_registration_token(db, &client.client_id, &token).await?;
    Ok(token)
}

/// Creates an initial access token (shown once; stored as a digest).
pub async fn create_initial_token(
    db: &DatabaseConnection,
    expires_in: Option<Duration>,
    uses: Option<u32>,
) -> Result<(String, Option<DateTime<Utc>>), RegistrationError> {
    let token = random_token().map_err(|e| RegistrationError::Random(e.to_string()))?;
    let now = Utc::now();
    let expires_at = expires_in
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| now + d);
    initial_access_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        token_hash: Set(digest(&token)),
        expires_at: Set(expires_at),
        uses_left: Set(uses.map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok((token, expires_at))
}

/// Spends one use in a single conditional update, so two registrations racing for
/// a token's last use cannot both have it.
async fn spend_initial_token(
    db: &DatabaseConnection,
    token: &str,
) -> Result<(), RegistrationError> {
    use initial_access_token::Column;
    if token.is_empty() || token.len() > 128 {
        return Err(RegistrationError::InvalidToken);
    }
    let spent = initial_access_token::Entity::update_many()
        .col_expr(Column::UsesLeft, Expr::col(Column::UsesLeft).sub(1))
        .filter(Column::TokenHash.eq(digest(token)))
        .filter(
            Condition::any()
                .add(Column::UsesLeft.is_null())
                .add(Column::UsesLeft.gt(0)),
        )
        .filter(
            Condition::any()
                .add(Column::ExpiresAt.is_null())
                .add(Column::ExpiresAt.gt(Utc::now())),
        )
        .exec(db)
        .await?;
    if spent.rows_affected != 1 {
        return Err(RegistrationError::InvalidToken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(value: Value) -> Metadata {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn defaults_make_a_confidential_web_client_with_the_code_flow() {
        let new = validate(
            &meta(json!({ "redirect_uris": ["https://app.example/cb"], "unknown_field": 1 })),
            false,
        )
        .unwrap();
        assert!(!new.is_public() && !new.native && !new.first_party);
        assert_eq!(new.grant_types, [GrantType::AuthorizationCode]);
        assert_eq!(new.auth_method, clients::AuthMethod::ClientSecretBasic);
        assert_eq!(new.scope, "openid profile email");
    }

    #[test]
    fn grant_and_response_types_must_agree() {
        let refused = |v: Value| {
            matches!(
                validate(&meta(v), false),
                Err(RegistrationError::InvalidClientMetadata(_))
            )
        };
        assert!(refused(
            json!({ "redirect_uris": ["https://a.example/cb"], "response_types": ["token"] })
        ));
        assert!(refused(
            json!({ "grant_types": ["client_credentials"], "response_types": ["code"] })
        ));
        assert!(refused(
            json!({ "redirect_uris": ["https://a.example/cb"], "response_types": [] })
        ));
        assert!(refused(
            json!({ "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none" })
        ));
        assert!(refused(json!({ "grant_types": ["refresh_token"] })));
        assert!(
            validate(
                &meta(json!({ "grant_types": ["client_credentials"] })),
                false
            )
            .is_ok()
        );
    }
}
