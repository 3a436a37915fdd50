//! The registration endpoint (RFC 7591) and the client configuration endpoint
//! (RFC 7592) at `registration_client_uri`.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::client::ClientIp;
use actix_web::ResponseError as _;

use super::error::ApiError;
use super::error::BearerRefusal;
use super::oidc::bearer_token;
use super::paths;
use crate::config::RegistrationPolicy;
use crate::error::ErrorCode;
use crate::oauth::registration::{self, Metadata, RegistrationError};
use crate::state::AppState;

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

fn metadata(req: &HttpRequest, body: &[u8]) -> Result<Metadata, RegistrationError> {
    if !is_json(req) {
        return Err(RegistrationError::InvalidClientMetadata(
            "the body must be application/json".to_owned(),
        ));
    }
    Metadata::parse(body)
}

fn malformed_authorization(why: &str) -> HttpResponse {
    ApiError::BadRequest(why.to_owned()).error_response()
}

fn client_uri(state: &AppState, client_id: &str) -> String {
    state
        .settings
        .endpoint(&format!("{}/{client_id}", paths::REGISTER))
}

/// At most `registration_max_per_ip` registrations per client IP per hour.
async fn rate_limited(req: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    match state
        .throttle
        .registration_attempt(ClientIp::of(req).as_str())
        .await
    {
        Ok(Some(wait)) => {
            let response = ApiError::Refused {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: ErrorCode::TooManyRequests,
                description: "too many registrations from this address; try again later".into(),
            }
            .error_response();
            Some(super::browser::retry_after(response, wait))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!("registration rate limit: {e}");
            Some(super::error::OAuthError::unavailable().error_response())
        }
    }
}

pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::Body(body): super::form::Body,
) -> HttpResponse {
    let policy = state.settings.registration;
    if policy == RegistrationPolicy::Off {
        return ApiError::NotFound.error_response();
    }
    if let Some(limited) = rate_limited(&req, &state).await {
        return limited;
    }
    let presented = match bearer_token(&req, None) {
        Ok(t) => t,
        Err(why) => return malformed_authorization(why),
    };
    let initial_token = match (policy, presented) {
        (RegistrationPolicy::InitialAccessToken, None) => {
            return BearerRefusal::new(
                ErrorCode::InvalidToken,
                "registration needs an initial access token (Authorization: Bearer)",
            )
            .error_response();
        }
        (RegistrationPolicy::InitialAccessToken, Some(t)) => Some(t),
        _ => None,
    };
    let meta = match metadata(&req, &body) {
        Ok(m) => m,
        Err(e) => return e.error_response(),
    };
    let new = match registration::validate(&meta, state.settings.registration_allow_http_localhost)
    {
        Ok(n) => n,
        Err(e) => return e.error_response(),
    };
    match registration::register(&state.db, new, initial_token.as_deref()).await {
        Ok(done) => {
            tracing::info!(client_id = %done.client.client_id, "client registered itself");
            let uri = client_uri(&state, &done.client.client_id);
            let body = registration::response(
                &done.client,
                done.secret.as_deref(),
                Some(&done.registration_token),
                &uri,
            );
            HttpResponse::Created().json(body)
        }
        Err(e) => e.error_response(),
    }
}

async fn authorized(
    req: &HttpRequest,
    state: &AppState,
    client_id: &str,
) -> Result<crate::oauth::clients::Client, HttpResponse> {
    if state.settings.registration == RegistrationPolicy::Off {
        return Err(ApiError::NotFound.error_response());
    }
    let presented = bearer_token(req, None).map_err(malformed_authorization)?;
    registration::authorized_client(&state.db, client_id, presented.as_deref())
        .await
        .map_err(|e| e.error_response())
}

pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let client = match authorized(&req, &state, &path).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    // RFC 7592 §3 requires the registration access token in the answer, and only
    // its digest is stored: the answer carries a new one (the old one stops
    // working). The secret, shown when issued, stays out.
    match registration::reissue_registration_token(&state.db, &client).await {
        Ok(token) => {
            let uri = client_uri(&state, &path);
            let body = registration::response(&client, None, Some(&token), &uri);
            HttpResponse::Ok().json(body)
        }
        Err(e) => e.error_response(),
    }
}

pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    super::form::Body(body): super::form::Body,
) -> HttpResponse {
    let client = match authorized(&req, &state, &path).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let meta = match metadata(&req, &body) {
        Ok(m) => m,
        Err(e) => return e.error_response(),
    };
    match registration::update(
        &state.db,
        &client,
        &meta,
        state.settings.registration_allow_http_localhost,
    )
    .await
    {
        Ok(done) => {
            tracing::info!(client_id = %done.client.client_id, "client updated its registration");
            state.clients.forget(&done.client.client_id);
            let body = registration::response(
                &done.client,
                done.secret.as_deref(),
                Some(&done.registration_token),
                &client_uri(&state, &path),
            );
            HttpResponse::Ok().json(body)
        }
        Err(e) => e.error_response(),
    }
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let client = match authorized(&req, &state, &path).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    match crate::store::clients::delete(&state.db, &client.client_id).await {
        Ok(_) => {
            tracing::info!(client_id = %client.client_id, "client deleted its registration");
            state.clients.forget(&client.client_id);
            HttpResponse::NoContent().finish()
        }
        Err(e) => RegistrationError::from(e).error_response(),
    }
}
