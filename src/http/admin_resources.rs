//! The admin API's other resources (issue 24): a person's sessions and API
//! tokens, organizations and members, clients, signing keys, identity
//! providers. Authentication, errors and the audit context are
//! `admin_api`'s; each change goes through the domain function the CLI and
//! the pages use.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::admin_api::{AdminApiError, Answer, ErrorBody, acting, caller, unavailable};
use super::error::ApiError;
use crate::error::ErrorCode;
use crate::state::AppState;

fn refused(status: StatusCode, code: ErrorCode, why: impl Into<String>) -> AdminApiError {
    ApiError::refused(status, code, why).into()
}

fn bad(why: impl Into<String>) -> AdminApiError {
    ApiError::BadRequest(why.into()).into()
}

/// A JSON body, or `400` saying why not.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("the body is not the expected JSON: {e}")))
}

async fn user_exists(
    state: &AppState,
    id: Uuid,
) -> Result<crate::identity::users::User, AdminApiError> {
    crate::identity::users::find(&state.db, id)
        .await
        .map_err(unavailable)?
        .ok_or(AdminApiError::Api(ApiError::NotFound))
}

/// A browser session.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    last_seen_at: chrono::DateTime<chrono::Utc>,
    auth_time: chrono::DateTime<chrono::Utc>,
    amr: Vec<String>,
    /// The upstream provider signed in through, if any.
    idp: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/api/v1/users/{id}/sessions", tag = "users",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Live sessions", body = [SessionView]), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    caller(&req, &state).await?;
    let user = user_exists(&state, path.into_inner()).await?;
    let sessions: Vec<SessionView> = state
        .sessions
        .list(&user)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|s| SessionView {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            auth_time: s.auth_time,
            amr: s.amr,
            idp: s.idp,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(HttpResponse::Ok().json(sessions))
}

#[utoipa::path(
    delete, path = "/admin/api/v1/users/{id}/sessions/{session}", tag = "users",
    params(("id" = Uuid, Path), ("session" = Uuid, Path)),
    responses((status = 204, description = "Ended, with the refresh tokens it backs (offline_access kept)"), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn end_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let (user, session) = path.into_inner();
    let ended = acting(
        &req,
        &caller,
        crate::identity::account::end_session(&state.db, &state.sessions, user, session),
    )
    .await
    .map_err(unavailable)?;
    if !ended {
        return Err(ApiError::NotFound.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A personal access token (never the token itself).
#[derive(Serialize, ToSchema)]
pub struct ApiTokenView {
    id: Uuid,
    name: String,
    org_id: Option<Uuid>,
    scopes: Vec<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[utoipa::path(
    get, path = "/admin/api/v1/users/{id}/api-tokens", tag = "users",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Live personal access tokens", body = [ApiTokenView])),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_api_tokens(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    caller(&req, &state).await?;
    let user = user_exists(&state, path.into_inner()).await?;
    let tokens: Vec<ApiTokenView> = crate::identity::pats::list(&state.db, user.id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|p| ApiTokenView {
            id: p.id,
            name: p.name,
            org_id: p.org_id,
            scopes: p.scopes,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            expires_at: p.expires_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(tokens))
}

#[utoipa::path(
    delete, path = "/admin/api/v1/api-tokens/{id}", tag = "users",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn revoke_api_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    match acting(
        &req,
        &caller,
        crate::identity::pats::revoke(&state.db, None, path.into_inner()),
    )
    .await
    {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(crate::identity::pats::PatError::NotFound) => Err(ApiError::NotFound.into()),
        Err(e) => Err(unavailable(e)),
    }
}

/// An organization.
#[derive(Serialize, ToSchema)]
pub struct OrganizationView {
    id: Uuid,
    name: String,
    slug: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<crate::orgs::Organization> for OrganizationView {
    fn from(o: crate::orgs::Organization) -> Self {
        Self {
            id: o.id,
            name: o.name,
            slug: o.slug,
            created_at: o.created_at,
        }
    }
}

#[utoipa::path(
    get, path = "/admin/api/v1/organizations", tag = "organizations",
    responses((status = 200, description = "Every organization, by slug", body = [OrganizationView])),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_organizations(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    caller(&req, &state).await?;
    let all: Vec<OrganizationView> = crate::orgs::list(&state.db)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(OrganizationView::from)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

/// A new organization.
#[derive(Deserialize, ToSchema)]
pub struct NewOrganization {
    name: String,
    /// Derived from the name when absent.
    slug: Option<String>,
}

fn org_error(e: crate::orgs::OrgError) -> AdminApiError {
    use crate::orgs::OrgError as E;
    match e {
        E::InvalidName | E::InvalidSlug => bad(e.to_string()),
        E::SlugTaken(_) | E::AlreadyMember | E::LastOwner => {
            refused(StatusCode::CONFLICT, ErrorCode::Conflict, e.to_string())
        }
        E::NoSuchOrganization | E::NotMember => ApiError::NotFound.into(),
        E::Storage(e) => unavailable(e),
    }
}

#[utoipa::path(
    post, path = "/admin/api/v1/organizations", tag = "organizations",
    request_body = NewOrganization,
    responses((status = 201, description = "Created", body = OrganizationView), (status = 409, description = "The slug is taken", body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn create_organization(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let new: NewOrganization = json_body(&body)?;
    let org = acting(
        &req,
        &caller,
        crate::orgs::create(&state.db, &new.name, new.slug.as_deref()),
    )
    .await
    .map_err(org_error)?;
    Ok(HttpResponse::Created().json(OrganizationView::from(org)))
}

/// A member of an organization.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    user_id: Uuid,
    email: String,
    /// `owner`, `admin` or `member`.
    role: String,
}

#[utoipa::path(
    get, path = "/admin/api/v1/organizations/{id}/members", tag = "organizations",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Its members", body = [MemberView]), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_members(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    caller(&req, &state).await?;
    let org = crate::orgs::find(&state.db, &path.into_inner().to_string())
        .await
        .map_err(org_error)?
        .ok_or(AdminApiError::Api(ApiError::NotFound))?;
    let members: Vec<MemberView> = crate::orgs::members::list(&state.db, org.id)
        .await
        .map_err(org_error)?
        .into_iter()
        .map(|m| MemberView {
            user_id: m.user_id,
            email: m.email,
            role: m.role.as_str().to_owned(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(members))
}

/// A member's role.
#[derive(Deserialize, ToSchema)]
pub struct MemberRole {
    /// `owner`, `admin` or `member`.
    role: String,
}

#[utoipa::path(
    put, path = "/admin/api/v1/organizations/{id}/members/{user}", tag = "organizations",
    params(("id" = Uuid, Path), ("user" = Uuid, Path)),
    request_body = MemberRole,
    responses(
        (status = 201, description = "Added with that role"),
        (status = 204, description = "Their role is now that one"),
        (status = 409, description = "The last owner cannot be demoted", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn put_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Bytes,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let (org, user) = path.into_inner();
    let asked: MemberRole = json_body(&body)?;
    let role: crate::orgs::Role = asked
        .role
        .parse()
        .map_err(|_| bad("role is owner, admin or member"))?;
    user_exists(&state, user).await?;
    let member = crate::orgs::members::list(&state.db, org)
        .await
        .map_err(org_error)?
        .into_iter()
        .any(|m| m.user_id == user);
    if member {
        acting(
            &req,
            &caller,
            crate::orgs::set_role(&state.db, org, user, role),
        )
        .await
        .map_err(org_error)?;
        Ok(HttpResponse::NoContent().finish())
    } else {
        acting(
            &req,
            &caller,
            crate::orgs::add_member(&state.db, org, user, role),
        )
        .await
        .map_err(org_error)?;
        Ok(HttpResponse::Created().finish())
    }
}

#[utoipa::path(
    delete, path = "/admin/api/v1/organizations/{id}/members/{user}", tag = "organizations",
    params(("id" = Uuid, Path), ("user" = Uuid, Path)),
    responses((status = 204, description = "Removed (API tokens pinned there revoked)"), (status = 409, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn remove_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let (org, user) = path.into_inner();
    acting(
        &req,
        &caller,
        crate::orgs::remove_member(&state.db, org, user),
    )
    .await
    .map_err(org_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// An OAuth client (never its secret).
#[derive(Serialize, ToSchema)]
pub struct ClientView {
    client_id: String,
    name: String,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scope: String,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    token_endpoint_auth_method: String,
    first_party: bool,
    self_registered: bool,
}

impl From<&crate::oauth::clients::Client> for ClientView {
    fn from(c: &crate::oauth::clients::Client) -> Self {
        Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            scope: c.scope.join(" "),
            token_endpoint_auth_method: c.auth_method.as_str().to_owned(),
            first_party: c.first_party,
            self_registered: c.self_registered,
        }
    }
}

#[utoipa::path(
    get, path = "/admin/api/v1/clients", tag = "clients",
    responses((status = 200, description = "Every client, oldest first", body = [ClientView])),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_clients(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    caller(&req, &state).await?;
    let all: Vec<ClientView> = crate::store::clients::list(&state.db)
        .await
        .map_err(unavailable)?
        .iter()
        .map(ClientView::from)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

#[utoipa::path(
    get, path = "/admin/api/v1/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses((status = 200, description = "The client; `ETag` names this version", body = ClientView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn show_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Answer {
    caller(&req, &state).await?;
    let client = crate::store::clients::find(&state.db, &path)
        .await
        .map_err(unavailable)?
        .ok_or(AdminApiError::Api(ApiError::NotFound))?;
    Ok(super::admin_api::with_tag(
        HttpResponse::Ok().json(ClientView::from(&client)),
        &client_etag(&client),
    ))
}

/// A client to register, as an operator would.
#[derive(Deserialize, ToSchema)]
pub struct NewClientRequest {
    name: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    /// Defaults to `["authorization_code"]`.
    grant_types: Option<Vec<String>>,
    /// Defaults to `openid profile email offline_access`.
    scope: Option<String>,
    /// A public client (no secret).
    #[serde(default)]
    public: bool,
    /// Skip the consent page.
    #[serde(default)]
    first_party: bool,
}

/// A registered client with its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    client: ClientView,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

fn client_error(e: crate::oauth::clients::ClientError) -> AdminApiError {
    match e {
        crate::oauth::clients::ClientError::Storage(e) => unavailable(e),
        crate::oauth::clients::ClientError::Random(e) => unavailable(e),
        other => bad(other.to_string()),
    }
}

#[utoipa::path(
    post, path = "/admin/api/v1/clients", tag = "clients",
    request_body = NewClientRequest,
    responses((status = 201, description = "Registered; the secret is shown this once", body = CreatedClient), (status = 400, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn create_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Answer {
    use crate::oauth::clients::{AuthMethod, GrantType, NewClient};
    let caller = caller(&req, &state).await?;
    let asked: NewClientRequest = json_body(&body)?;
    let grant_types = match asked.grant_types {
        None => vec![GrantType::AuthorizationCode],
        Some(names) => names
            .iter()
            .map(|g| {
                GrantType::parse(g).ok_or_else(|| bad(format!("unsupported grant type `{g}`")))
            })
            .collect::<Result<_, _>>()?,
    };
    let new = NewClient {
        name: asked.name,
        redirect_uris: asked.redirect_uris,
        auth_method: if asked.public {
            AuthMethod::None
        } else {
            AuthMethod::ClientSecretBasic
        },
        grant_types,
        scope: asked
            .scope
            .unwrap_or_else(|| "openid profile email offline_access".to_owned()),
        first_party: asked.first_party,
        ..NewClient::default()
    };
    let (client, secret) = acting(&req, &caller, crate::store::clients::create(&state.db, new))
        .await
        .map_err(client_error)?;
    Ok(HttpResponse::Created().json(CreatedClient {
        client: ClientView::from(&client),
        client_secret: secret,
    }))
}

/// How long the old secret keeps working.
#[derive(Deserialize, ToSchema, Default)]
pub struct RotateSecret {
    /// Seconds; 86400 (a day) when absent, 0 ends the old one at once.
    grace_seconds: Option<u32>,
}

/// A new client secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewSecret {
    client_secret: String,
}

#[utoipa::path(
    post, path = "/admin/api/v1/clients/{id}/rotate-secret", tag = "clients",
    params(("id" = String, Path)),
    request_body(content = RotateSecret, description = "Optional"),
    responses((status = 200, description = "The new secret", body = NewSecret), (status = 404, description = "No such confidential client", body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn rotate_client_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let asked: RotateSecret = if body.is_empty() {
        RotateSecret::default()
    } else {
        json_body(&body)?
    };
    let grace = chrono::Duration::seconds(i64::from(asked.grace_seconds.unwrap_or(86_400)));
    let secret = acting(
        &req,
        &caller,
        crate::store::clients::rotate_secret(&state.db, &path, grace),
    )
    .await
    .map_err(client_error)?
    .ok_or(AdminApiError::Api(ApiError::NotFound))?;
    state.clients.forget(&path);
    Ok(HttpResponse::Ok().json(NewSecret {
        client_secret: secret,
    }))
}

#[utoipa::path(
    delete, path = "/admin/api/v1/clients/{id}", tag = "clients",
    params(("id" = String, Path)),
    responses((status = 204, description = "Deleted; its refresh tokens are revoked"), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn delete_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let deleted = acting(
        &req,
        &caller,
        crate::store::clients::delete(&state.db, &path),
    )
    .await
    .map_err(client_error)?;
    state.clients.forget(&path);
    if !deleted {
        return Err(ApiError::NotFound.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A signing key (its public half is in the JWKS).
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    kid: String,
    alg: String,
    /// `pending`, `active`, `retiring (published until …)` or `expired`.
    status: String,
    created_at: chrono::DateTime<chrono::Utc>,
    activates_at: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(
    get, path = "/admin/api/v1/keys", tag = "keys",
    responses((status = 200, description = "Signing keys and their status", body = [KeyView])),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_keys(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    caller(&req, &state).await?;
    let keys: Vec<KeyView> = crate::tokens::keys::list(
        &state.db,
        state.settings.longest_signed_token_ttl(),
        chrono::Utc::now(),
    )
    .await
    .map_err(unavailable)?
    .into_iter()
    .map(|(row, status)| KeyView {
        kid: row.kid,
        alg: row.alg,
        status: status.to_string(),
        created_at: row.created_at,
        activates_at: row.activates_at,
    })
    .collect();
    Ok(HttpResponse::Ok().json(keys))
}

/// A rotation.
#[derive(Deserialize, ToSchema)]
pub struct RotateKey {
    /// `ES256` or `RS256`.
    alg: String,
    /// Seconds until the new key signs (published at once so verifiers
    /// fetch it first); the server's rotation delay when absent.
    delay_seconds: Option<u32>,
}

#[utoipa::path(
    post, path = "/admin/api/v1/keys/rotate", tag = "keys",
    request_body = RotateKey,
    responses((status = 201, description = "The new key", body = KeyView), (status = 400, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn rotate_key(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Answer {
    let caller = caller(&req, &state).await?;
    let asked: RotateKey = json_body(&body)?;
    let alg: crate::tokens::Algorithm = asked
        .alg
        .parse()
        .map_err(|_| bad("alg is ES256 or RS256"))?;
    let delay = asked
        .delay_seconds
        .map(|s| chrono::Duration::seconds(i64::from(s)))
        .unwrap_or_else(|| {
            chrono::Duration::from_std(state.settings.key_rotation_delay)
                .unwrap_or(chrono::Duration::hours(1))
        });
    let activates_at = chrono::Utc::now() + delay;
    let kid = acting(
        &req,
        &caller,
        crate::tokens::keys::rotate(&state.db, &state.settings.keys_dir, alg, activates_at),
    )
    .await
    .map_err(unavailable)?;
    // Published by this instance now; the others on their next refresh.
    if let Err(e) = state.keys.refresh().await {
        tracing::warn!("key ring refresh after rotation: {e}");
    }
    Ok(HttpResponse::Created().json(KeyView {
        kid,
        alg: alg.as_str().to_owned(),
        status: "pending".to_owned(),
        created_at: chrono::Utc::now(),
        activates_at,
    }))
}

/// An upstream identity provider (never its client secret).
#[derive(Serialize, ToSchema)]
pub struct ProviderView {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    scope: String,
    trust_email: bool,
    /// Whether its discovery and keys could be fetched (as the login page shows it).
    status: String,
}

#[utoipa::path(
    get, path = "/admin/api/v1/identity-providers", tag = "providers",
    responses((status = 200, description = "Providers people may sign in with", body = [ProviderView])),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_providers(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    caller(&req, &state).await?;
    let list = state.federation.buttons().await.map_err(unavailable)?;
    let views: Vec<ProviderView> = list
        .into_iter()
        .map(|(p, status)| ProviderView {
            status: match status {
                crate::federation::upstream::Status::Unknown => "unknown".to_owned(),
                crate::federation::upstream::Status::Available => "available".to_owned(),
                crate::federation::upstream::Status::Unavailable(_) => "unavailable".to_owned(),
            },
            id: p.id,
            name: p.name,
            issuer: p.issuer,
            client_id: p.client_id,
            scope: p.scope,
            trust_email: p.trust_email,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// The version of a client's registration for `ETag`/`If-Match`: a digest of
/// what the API shows of it, so any change to it is a new version.
fn client_etag(client: &crate::oauth::clients::Client) -> String {
    use base64::Engine;
    use sha2::Digest;
    let shown = serde_json::to_vec(&ClientView::from(client)).unwrap_or_default();
    let digest = sha2::Sha256::digest(&shown);
    format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    )
}

/// Changes to a client's registration; absent fields stay.
#[derive(Deserialize, ToSchema)]
pub struct ClientChanges {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    scope: Option<String>,
}

#[utoipa::path(
    patch, path = "/admin/api/v1/clients/{id}", tag = "clients",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The ETag read")),
    request_body = ClientChanges,
    responses(
        (status = 200, description = "Changed; consents given to it are asked again", body = ClientView),
        (status = 400, body = ErrorBody),
        (status = 412, description = "Changed since read", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn update_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    use crate::oauth::clients::{GrantType, NewClient, RedirectRules};
    let caller = caller(&req, &state).await?;
    let changes: ClientChanges = json_body(&body)?;
    let current = crate::store::clients::find(&state.db, &path)
        .await
        .map_err(unavailable)?
        .ok_or(AdminApiError::Api(ApiError::NotFound))?;
    super::admin_api::if_match(&req, &client_etag(&current), "client")?;
    let grant_types = match changes.grant_types {
        None => current.grant_types.clone(),
        Some(names) => names
            .iter()
            .map(|g| {
                GrantType::parse(g).ok_or_else(|| bad(format!("unsupported grant type `{g}`")))
            })
            .collect::<Result<_, _>>()?,
    };
    let new = NewClient {
        name: changes.name.unwrap_or_else(|| current.name.clone()),
        redirect_uris: changes
            .redirect_uris
            .unwrap_or_else(|| current.redirect_uris.clone()),
        grant_types,
        scope: changes.scope.unwrap_or_else(|| current.scope.join(" ")),
        first_party: current.first_party,
        native: current.native,
        id_token_alg: current.id_token_alg,
        post_logout_redirect_uris: current.post_logout_redirect_uris.clone(),
        org_optional: current.org_optional,
        client_uri: current.client_uri.clone(),
        logo_uri: current.logo_uri.clone(),
        contacts: current.contacts.clone(),
        auth_method: current.auth_method,
        default_resource: current.default_resource.clone(),
        introspect_for: current.introspect_for.clone(),
        service: current.service,
        backchannel_logout_uri: current.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: current.backchannel_logout_session_required,
    };
    crate::oauth::clients::validate(&new, RedirectRules::Operator).map_err(client_error)?;
    let (client, _) = acting(
        &req,
        &caller,
        crate::store::clients::replace(&state.db, &path, new, false),
    )
    .await
    .map_err(client_error)?
    .ok_or(AdminApiError::Api(ApiError::NotFound))?;
    state.clients.forget(&path);
    // What people allowed was shown under the old name and URIs.
    crate::oauth::consent::forget_client(&state.db, &path)
        .await
        .map_err(unavailable)?;
    Ok(super::admin_api::with_tag(
        HttpResponse::Ok().json(ClientView::from(&client)),
        &client_etag(&client),
    ))
}

/// An API tokens may be issued for, and which scopes each role holds.
#[derive(Serialize, ToSchema)]
pub struct ApiView {
    audience: String,
    name: String,
    scopes: Vec<String>,
    member_scopes: Vec<String>,
    admin_scopes: Vec<String>,
}

impl From<crate::orgs::apis::Api> for ApiView {
    fn from(a: crate::orgs::apis::Api) -> Self {
        Self {
            audience: a.audience,
            name: a.name,
            scopes: a.scopes,
            member_scopes: a.member_scopes,
            admin_scopes: a.admin_scopes,
        }
    }
}

fn api_error(e: crate::orgs::apis::ApiRegistryError) -> AdminApiError {
    use crate::orgs::apis::ApiRegistryError as E;
    match e {
        E::Exists(_) => refused(StatusCode::CONFLICT, ErrorCode::Conflict, e.to_string()),
        E::NotFound(_) => ApiError::NotFound.into(),
        E::Storage(e) => unavailable(e),
        other => bad(other.to_string()),
    }
}

#[utoipa::path(
    get, path = "/admin/api/v1/apis", tag = "apis",
    responses((status = 200, description = "Registered APIs", body = [ApiView])),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_apis(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    caller(&req, &state).await?;
    let all: Vec<ApiView> = crate::orgs::apis::list(&state.db)
        .await
        .map_err(api_error)?
        .into_iter()
        .map(ApiView::from)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

/// A new API.
#[derive(Deserialize, ToSchema)]
pub struct NewApi {
    name: String,
    /// Its RFC 8707 resource indicator (an absolute URI).
    audience: String,
    #[serde(default)]
    scopes: Vec<String>,
}

#[utoipa::path(
    post, path = "/admin/api/v1/apis", tag = "apis",
    request_body = NewApi,
    responses((status = 201, body = ApiView), (status = 409, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn create_api(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Answer {
    let caller = caller(&req, &state).await?;
    let new: NewApi = json_body(&body)?;
    let api = acting(
        &req,
        &caller,
        crate::orgs::apis::create(&state.db, &new.name, &new.audience, &new.scopes),
    )
    .await
    .map_err(api_error)?;
    Ok(HttpResponse::Created().json(ApiView::from(api)))
}

/// Scopes a role is to hold on an API (added to what it holds).
#[derive(Deserialize, ToSchema)]
pub struct Grant {
    audience: String,
    /// `admin` or `member` (owners hold every scope).
    role: String,
    scopes: Vec<String>,
}

#[utoipa::path(
    post, path = "/admin/api/v1/apis/grant", tag = "apis",
    request_body = Grant,
    responses((status = 200, body = ApiView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn grant_api(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Answer {
    let caller = caller(&req, &state).await?;
    let asked: Grant = json_body(&body)?;
    let role: crate::orgs::Role = asked
        .role
        .parse()
        .map_err(|_| bad("role is admin or member"))?;
    let api = acting(
        &req,
        &caller,
        crate::orgs::apis::grant(&state.db, &asked.audience, role, &asked.scopes),
    )
    .await
    .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(ApiView::from(api)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AudienceQuery {
    /// The API's audience (required; optional here so a caller without a
    /// token hears `401` first).
    audience: Option<String>,
}

#[utoipa::path(
    delete, path = "/admin/api/v1/apis", tag = "apis",
    params(AudienceQuery),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn delete_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<AudienceQuery>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let audience = query
        .audience
        .as_deref()
        .ok_or_else(|| bad("audience is required"))?;
    acting(
        &req,
        &caller,
        crate::orgs::apis::delete(&state.db, audience),
    )
    .await
    .map_err(api_error)?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get, path = "/admin/api/v1/organizations/{id}/service-accounts", tag = "organizations",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Its service accounts (clients)", body = [ClientView])),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_service_accounts(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    caller(&req, &state).await?;
    let all: Vec<ClientView> =
        crate::store::clients::service_accounts_of(&state.db, path.into_inner())
            .await
            .map_err(unavailable)?
            .iter()
            .map(ClientView::from)
            .collect();
    Ok(HttpResponse::Ok().json(all))
}

/// A provider to add (the secret is stored sealed and never shown again).
#[derive(Deserialize, ToSchema)]
pub struct NewProvider {
    /// The slug in URLs: the redirect URI to register at the provider is
    /// `{issuer}/federation/{id}/callback`.
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    client_secret: String,
    /// `openid email profile` when absent.
    scope: Option<String>,
    #[serde(default)]
    trust_email: bool,
    /// `client_secret_basic` (default) or `client_secret_post`.
    token_auth: Option<String>,
    /// Client ids of native apps at the provider whose id_tokens may be exchanged.
    #[serde(default)]
    accepted_audiences: Vec<String>,
}

#[utoipa::path(
    post, path = "/admin/api/v1/identity-providers", tag = "providers",
    request_body = NewProvider,
    responses((status = 201, body = ProviderView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn add_provider(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Answer {
    use crate::federation::providers::{NewProvider as New, ProviderError, TokenAuth};
    let caller = caller(&req, &state).await?;
    let asked: NewProvider = json_body(&body)?;
    let token_auth = match asked.token_auth.as_deref() {
        None => TokenAuth::ClientSecretBasic,
        Some(raw) => TokenAuth::parse(raw)
            .ok_or_else(|| bad("token_auth is client_secret_basic or client_secret_post"))?,
    };
    let scope = asked
        .scope
        .unwrap_or_else(|| "openid email profile".to_owned());
    let new = New {
        id: &asked.id,
        name: &asked.name,
        issuer: &asked.issuer,
        client_id: &asked.client_id,
        client_secret: &asked.client_secret,
        scope: &scope,
        trust_email: asked.trust_email,
        token_auth,
        accepted_audiences: &asked.accepted_audiences,
    };
    match acting(&req, &caller, state.federation.add_provider(new)).await {
        Ok(p) => Ok(HttpResponse::Created().json(ProviderView {
            status: "unknown".to_owned(),
            id: p.id,
            name: p.name,
            issuer: p.issuer,
            client_id: p.client_id,
            scope: p.scope,
            trust_email: p.trust_email,
        })),
        Err(e @ ProviderError::Taken(_)) => Err(refused(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            e.to_string(),
        )),
        Err(e @ (ProviderError::Storage(_) | ProviderError::Key(_) | ProviderError::Sealed)) => {
            Err(unavailable(e))
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

#[utoipa::path(
    delete, path = "/admin/api/v1/identity-providers/{id}", tag = "providers",
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed with the accounts' links to it"), (status = 404, body = ErrorBody)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn remove_provider(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Answer {
    use crate::federation::providers::ProviderError;
    let caller = caller(&req, &state).await?;
    match acting(
        &req,
        &caller,
        crate::federation::providers::remove(&state.db, &path),
    )
    .await
    {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(ProviderError::NotFound(_)) => Err(ApiError::NotFound.into()),
        Err(e) => Err(unavailable(e)),
    }
}
