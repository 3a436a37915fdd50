//! The admin API, `/admin/api/v1/…` (issue 24): JSON over bearer tokens with
//! the `tessera:admin` scope, documented by the OpenAPI 3.1 document at
//! `/admin/api/openapi.json`, which is generated from these handlers and
//! types (utoipa) so it cannot drift from them.
//!
//! Every change runs in an audit context naming the caller, so the events the
//! domain functions record say which administrator (or service) acted.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, BearerRefusal};
use crate::admin::{self, Caller, EventFilter};
use crate::error::ErrorCode;
use crate::oauth::tokens::{BearerError, verify_access_token};
use crate::state::AppState;

/// An admin API refusal: a bearer challenge (401/403) or an API error, both
/// in the one JSON error shape `{"error", "error_description"}`.
#[derive(Debug, thiserror::Error)]
pub enum AdminApiError {
    #[error(transparent)]
    Bearer(#[from] BearerRefusal),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for AdminApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminApiError::Bearer(b) => b.status_code(),
            AdminApiError::Api(a) => a.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AdminApiError::Bearer(b) => b.error_response(),
            AdminApiError::Api(a) => a.error_response(),
        }
    }
}

pub(super) type Answer = Result<HttpResponse, AdminApiError>;

pub(super) fn unavailable(e: impl std::fmt::Display) -> AdminApiError {
    tracing::error!("admin api: {e}");
    AdminApiError::Api(ApiError::Unavailable("try again shortly".into()))
}

/// The caller of this request, from its bearer token.
pub(super) async fn caller(req: &HttpRequest, state: &AppState) -> Result<Caller, AdminApiError> {
    let token = super::oidc::bearer_token(req, None)
        .map_err(|why| BearerRefusal::new(ErrorCode::InvalidRequest, why))?
        .ok_or(BearerRefusal::Missing)?;
    let claims = match verify_access_token(
        &state.keys,
        &state.cache,
        state.settings.issuer_str(),
        &token,
    )
    .await
    {
        Ok(c) => c,
        Err(BearerError::Unavailable(e)) => return Err(unavailable(e)),
        Err(e) => return Err(BearerRefusal::new(ErrorCode::InvalidToken, e.to_string()).into()),
    };
    match admin::caller(&state.db, state.settings.issuer_str(), &claims)
        .await
        .map_err(unavailable)?
    {
        Ok(caller) => Ok(caller),
        Err(refusal) => {
            Err(BearerRefusal::new(ErrorCode::InsufficientScope, refusal.to_string()).into())
        }
    }
}

/// Runs `f` with the caller as the actor of every audit event it records.
pub(super) async fn acting<F: std::future::Future>(
    req: &HttpRequest,
    caller: &Caller,
    f: F,
) -> F::Output {
    crate::audit::within(super::client::audit_context(req, Some(caller.actor())), f).await
}

/// An account as the admin API shows it.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: Uuid,
    email: String,
    email_verified: bool,
    disabled: bool,
    admin: bool,
    has_password: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&crate::identity::users::User> for UserView {
    fn from(u: &crate::identity::users::User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            email_verified: u.email_verified_at.is_some(),
            disabled: u.disabled,
            admin: u.is_admin,
            has_password: u.password_hash.is_some(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// One page of accounts.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    items: Vec<UserView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Uuid>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Part of the address, case-insensitive.
    search: Option<String>,
    /// The `next_cursor` of the previous page.
    after: Option<Uuid>,
    /// At most 200; 50 when absent.
    limit: Option<u64>,
}

/// The one error shape of the admin API.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code, e.g. `not_found`, `insufficient_scope`,
    /// `precondition_failed`.
    error: String,
    error_description: Option<String>,
}

const DEFAULT_PAGE: u64 = 50;

#[utoipa::path(
    get, path = "/admin/api/v1/users", tag = "users",
    params(UserQuery),
    responses(
        (status = 200, description = "Accounts in creation order", body = UserPage),
        (status = 401, description = "No or a bad token", body = ErrorBody),
        (status = 403, description = "Not an administrator's token", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<UserQuery>,
) -> Answer {
    caller(&req, &state).await?;
    let page = admin::users(
        &state.db,
        query.search.as_deref(),
        query.after,
        query.limit.unwrap_or(DEFAULT_PAGE),
    )
    .await
    .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(UserPage {
        items: page.items.iter().map(UserView::from).collect(),
        next_cursor: page.next,
    }))
}

async fn find_user(
    state: &AppState,
    id: Uuid,
) -> Result<crate::identity::users::User, AdminApiError> {
    crate::identity::users::find(&state.db, id)
        .await
        .map_err(unavailable)?
        .ok_or(AdminApiError::Api(ApiError::NotFound))
}

/// Sets `ETag` to `tag` (a quoted validator).
pub(super) fn with_tag(mut response: HttpResponse, tag: &str) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

fn with_etag(response: HttpResponse, user: &crate::identity::users::User) -> HttpResponse {
    with_tag(response, &admin::etag(user))
}

/// RFC 9110 §13.1.1: a change names the version (`current`) it was made
/// against; another administrator's change in between makes it `412`. No
/// `If-Match`: the caller accepts whatever is there.
pub(super) fn if_match(req: &HttpRequest, current: &str, what: &str) -> Result<(), AdminApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(());
    };
    let matches = value
        .to_str()
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == current)
        })
        .unwrap_or(false);
    if matches {
        Ok(())
    } else {
        Err(ApiError::refused(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::PreconditionFailed,
            format!("the {what} changed since that version was read; read it again"),
        )
        .into())
    }
}

fn check_if_match(
    req: &HttpRequest,
    user: &crate::identity::users::User,
) -> Result<(), AdminApiError> {
    if_match(req, &admin::etag(user), "account")
}

#[utoipa::path(
    get, path = "/admin/api/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account; `ETag` names this version", body = UserView),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn show_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    caller(&req, &state).await?;
    let user = find_user(&state, path.into_inner()).await?;
    Ok(with_etag(
        HttpResponse::Ok().json(UserView::from(&user)),
        &user,
    ))
}

#[utoipa::path(
    post, path = "/admin/api/v1/users/{id}/disable", tag = "users",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag read")),
    responses(
        (status = 200, description = "Disabled: sessions ended, refresh and API tokens revoked", body = UserView),
        (status = 412, description = "Changed since read", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn disable_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let user = find_user(&state, path.into_inner()).await?;
    check_if_match(&req, &user)?;
    let (user, _) = acting(
        &req,
        &caller,
        crate::identity::account::disable(&state.db, &state.sessions, &user.email),
    )
    .await
    .map_err(unavailable)?;
    Ok(with_etag(
        HttpResponse::Ok().json(UserView::from(&user)),
        &user,
    ))
}

#[utoipa::path(
    post, path = "/admin/api/v1/users/{id}/enable", tag = "users",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "Enabled (nothing revoked comes back)", body = UserView),
        (status = 412, description = "Changed since read", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn enable_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let user = find_user(&state, path.into_inner()).await?;
    check_if_match(&req, &user)?;
    let user = acting(
        &req,
        &caller,
        crate::identity::users::set_disabled(&state.db, &user.email, false),
    )
    .await
    .map_err(unavailable)?;
    Ok(with_etag(
        HttpResponse::Ok().json(UserView::from(&user)),
        &user,
    ))
}

/// What "sign out everywhere" ended.
#[derive(Serialize, ToSchema)]
pub struct EndedView {
    sessions: u64,
    refresh_tokens: u64,
    api_tokens: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignOutQuery {
    /// Also revoke the account's personal access tokens.
    #[serde(default)]
    api_tokens: bool,
}

#[utoipa::path(
    post, path = "/admin/api/v1/users/{id}/sign-out-everywhere", tag = "users",
    params(("id" = Uuid, Path), SignOutQuery),
    responses((status = 200, description = "What ended", body = EndedView)),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn sign_out_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    query: web::Query<SignOutQuery>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let user = find_user(&state, path.into_inner()).await?;
    let ended = acting(
        &req,
        &caller,
        crate::identity::account::sign_out_everywhere(
            &state.db,
            &state.sessions,
            user.id,
            query.api_tokens,
        ),
    )
    .await
    .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(EndedView {
        sessions: ended.sessions,
        refresh_tokens: ended.refresh_tokens,
        api_tokens: ended.api_tokens,
    }))
}

#[utoipa::path(
    post, path = "/admin/api/v1/users/{id}/password-reset", tag = "users",
    params(("id" = Uuid, Path)),
    responses((status = 202, description = "A reset link is queued to the account's address")),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn send_password_reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let user = find_user(&state, path.into_inner()).await?;
    if user.disabled {
        return Err(ApiError::refused(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "the account is disabled; enable it first",
        )
        .into());
    }
    acting(
        &req,
        &caller,
        crate::identity::email::request_reset(&state.db, &state.mail, &user.email),
    )
    .await
    .map_err(unavailable)?;
    Ok(HttpResponse::Accepted().finish())
}

#[utoipa::path(
    delete, path = "/admin/api/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 204, description = "Deleted with its sessions, tokens, consents and memberships"),
        (status = 409, description = "The last owner of an organization", body = ErrorBody),
        (status = 412, description = "Changed since read", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn delete_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Answer {
    let caller = caller(&req, &state).await?;
    let user = find_user(&state, path.into_inner()).await?;
    check_if_match(&req, &user)?;
    match acting(
        &req,
        &caller,
        admin::delete_user(&state.db, &state.sessions, user.id),
    )
    .await
    {
        Ok(_) => Ok(HttpResponse::NoContent().finish()),
        Err(admin::DeleteError::NotFound) => Err(ApiError::NotFound.into()),
        Err(e @ admin::DeleteError::LastOwner) => {
            Err(ApiError::refused(StatusCode::CONFLICT, ErrorCode::Conflict, e.to_string()).into())
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// Who acted, in an audit event.
#[derive(Serialize, ToSchema)]
pub struct ActorView {
    /// `person`, `admin`, `service` or `system`.
    r#type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
    /// e.g. `sign_in.failed`, `account.disabled`.
    kind: String,
    actor: ActorView,
    subject: Option<Uuid>,
    client_id: Option<String>,
    org_id: Option<Uuid>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// What else is known (a reason, a name, counts).
    #[schema(value_type = Object)]
    details: serde_json::Value,
}

/// One page of audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    items: Vec<EventView>,
    /// Pass as `before` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Uuid>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Events about this account.
    user: Option<Uuid>,
    /// Events about this client.
    client: Option<String>,
    /// One kind, e.g. `sign_in.failed`.
    kind: Option<String>,
    /// From this time (RFC 3339).
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Before this time (RFC 3339).
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// The `next_cursor` of the previous page.
    before: Option<Uuid>,
    /// At most 200; 50 when absent.
    limit: Option<u64>,
}

#[utoipa::path(
    get, path = "/admin/api/v1/audit-events", tag = "audit",
    params(EventQuery),
    responses(
        (status = 200, description = "Audit events, newest first", body = EventPage),
        (status = 400, description = "An unknown kind", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn list_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<EventQuery>,
) -> Answer {
    caller(&req, &state).await?;
    let query = query.into_inner();
    if let Some(kind) = &query.kind
        && crate::audit::Kind::parse(kind).is_none()
    {
        return Err(ApiError::BadRequest(format!("no event kind `{kind}`")).into());
    }
    let filter = EventFilter {
        user: query.user,
        client: query.client,
        kind: query.kind,
        since: query.since,
        until: query.until,
    };
    let page = admin::events(
        &state.db,
        &filter,
        query.before,
        query.limit.unwrap_or(DEFAULT_PAGE),
    )
    .await
    .map_err(unavailable)?;
    let items = page
        .items
        .into_iter()
        .map(|e| EventView {
            id: e.id,
            at: e.at,
            kind: e.kind,
            actor: ActorView {
                r#type: e.actor_type,
                id: e.actor_id,
            },
            subject: e.subject_user_id,
            client_id: e.client_id,
            org_id: e.org_id,
            ip: e.ip,
            user_agent: e.user_agent,
            details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(HttpResponse::Ok().json(EventPage {
        items,
        next_cursor: page.next,
    }))
}

/// The bearer scheme the document declares.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token of this server with the tessera:admin scope",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera admin API",
        description = "Manage accounts and read the audit log. Every change is recorded in the audit log with its actor."
    ),
    paths(
        super::admin_resources::list_sessions,
        super::admin_resources::end_session,
        super::admin_resources::list_api_tokens,
        super::admin_resources::revoke_api_token,
        super::admin_resources::list_organizations,
        super::admin_resources::create_organization,
        super::admin_resources::list_members,
        super::admin_resources::put_member,
        super::admin_resources::remove_member,
        super::admin_resources::list_clients,
        super::admin_resources::show_client,
        super::admin_resources::create_client,
        super::admin_resources::rotate_client_secret,
        super::admin_resources::delete_client,
        super::admin_resources::list_keys,
        super::admin_resources::rotate_key,
        super::admin_resources::list_providers,
        super::admin_resources::update_client,
        super::admin_resources::list_apis,
        super::admin_resources::create_api,
        super::admin_resources::grant_api,
        super::admin_resources::delete_api,
        super::admin_resources::list_service_accounts,
        super::admin_resources::add_provider,
        super::admin_resources::remove_provider,
        create_user,
        list_users,
        show_user,
        disable_user,
        enable_user,
        sign_out_user,
        send_password_reset,
        delete_user,
        list_events
    ),
    components(schemas(
        UserView,
        UserPage,
        EndedView,
        EventView,
        EventPage,
        ActorView,
        ErrorBody,
        super::admin_resources::SessionView,
        super::admin_resources::ApiTokenView,
        super::admin_resources::OrganizationView,
        super::admin_resources::NewOrganization,
        super::admin_resources::MemberView,
        super::admin_resources::MemberRole,
        super::admin_resources::ClientView,
        super::admin_resources::NewClientRequest,
        super::admin_resources::CreatedClient,
        super::admin_resources::RotateSecret,
        super::admin_resources::NewSecret,
        super::admin_resources::KeyView,
        super::admin_resources::RotateKey,
        super::admin_resources::ProviderView,
        super::admin_resources::ClientChanges,
        super::admin_resources::ApiView,
        super::admin_resources::NewApi,
        super::admin_resources::Grant,
        super::admin_resources::NewProvider,
        NewUser,
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "users", description = "Accounts, their sessions and API tokens"),
        (name = "organizations", description = "Organizations and their members"),
        (name = "clients", description = "OAuth clients"),
        (name = "keys", description = "Signing keys"),
        (name = "apis", description = "APIs and the scopes each role holds"),
        (name = "providers", description = "Upstream identity providers"),
        (name = "audit", description = "The audit log"),
    )
)]
pub struct AdminApiDoc;

/// The document, built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        AdminApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

/// `GET /admin/api/openapi.json`: public, like any API description.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// An account to create.
#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    email: String,
    /// Without one, a link to set it is mailed.
    password: Option<String>,
    /// The administrator vouches for the address; otherwise a verification
    /// link is mailed.
    #[serde(default)]
    verified: bool,
}

#[utoipa::path(
    post, path = "/admin/api/v1/users", tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 400, description = "A bad address or password", body = ErrorBody),
        (status = 409, description = "The address has an account", body = ErrorBody),
    ),
    security(("bearer" = ["tessera:admin"]))
)]
pub async fn create_user(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Answer {
    use crate::identity::IdentityError as E;
    let caller = caller(&req, &state).await?;
    let new: NewUser = serde_json::from_slice(&body).map_err(|e| {
        AdminApiError::Api(ApiError::BadRequest(format!(
            "the body is not the expected JSON: {e}"
        )))
    })?;
    let made = acting(
        &req,
        &caller,
        admin::create_user(
            &state.db,
            &state.passwords,
            &state.mail,
            &new.email,
            new.password.as_deref(),
            new.verified,
        ),
    )
    .await;
    match made {
        Ok(user) => Ok(with_etag(
            HttpResponse::Created().json(UserView::from(&user)),
            &user,
        )),
        Err(e @ E::EmailTaken) => {
            Err(ApiError::refused(StatusCode::CONFLICT, ErrorCode::Conflict, e.to_string()).into())
        }
        Err(
            e @ (E::InvalidEmail | E::PasswordTooShort | E::PasswordTooLong | E::PasswordTooCommon),
        ) => Err(ApiError::BadRequest(e.to_string()).into()),
        Err(e) => Err(unavailable(e)),
    }
}
