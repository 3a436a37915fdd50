//! The passkey ceremonies as JSON endpoints for `static/passkeys.js`: sign-in and
//! sign-up before a session exists, adding a passkey with one, each in a `…/start`
//! and `…/finish` step (the router checks the page's CSRF token in `x-csrf-token`
//! before any of them runs: `http::csrf::script`). Rename and remove are plain
//! forms on the account page.

use super::browser::{Arrival, begin_session};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::browser::{
    PageError, SignedIn, ceremony_cookie, ceremony_token, expired_ceremony_cookie, safe_return_to,
    see_other, signed_in,
};
use super::client::ClientIp;
use super::error::ApiError;
use crate::error::ErrorCode;
use crate::identity::passkeys::{self, PasskeyError, Passkeys};
use crate::identity::throttle::Admission;
use crate::state::AppState;

/// Larger than any attestation a passkey sends (`none` attestation, one key).
const MAX_BODY: usize = 64 * 1024;

fn enabled(state: &AppState) -> Result<&Passkeys, ApiError> {
    state.passkeys.as_ref().ok_or_else(|| {
        ApiError::refused(
            StatusCode::NOT_FOUND,
            ErrorCode::PasskeysUnavailable,
            "passkeys are not available on this server",
        )
    })
}

/// The session a script request was made in (the router checked its CSRF header).
async fn check_session(req: &HttpRequest, state: &AppState) -> Result<SignedIn, ApiError> {
    signed_in(req, state).await?.ok_or_else(|| {
        ApiError::refused(
            StatusCode::UNAUTHORIZED,
            ErrorCode::LoginRequired,
            "sign in first",
        )
    })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidRequest,
            "the request body is too large",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the request body is not what was expected: {e}"))
    })
}

async fn address_blocked(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<std::time::Duration>, ApiError> {
    state
        .throttle
        .address_blocked_for(ClientIp::of(req).as_str())
        .await
        .map_err(|e| {
            tracing::error!("sign-in throttle: {e}");
            ApiError::Unavailable("try again in a moment".into())
        })
}

/// `429` in the one JSON error shape, with `Retry-After`.
fn too_many_attempts(wait: std::time::Duration) -> HttpResponse {
    too_many(
        wait,
        "too many failed sign-ins from this address; try again later",
    )
}

fn too_many(wait: std::time::Duration, description: &str) -> HttpResponse {
    let response = ApiError::Refused {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: ErrorCode::TooManyRequests,
        description: description.into(),
    }
    .error_response();
    super::browser::retry_after(response, wait)
}

/// The options for `navigator.credentials`, with the ceremony cookie set.
fn started(
    state: &AppState,
    passkeys: &Passkeys,
    options: impl serde::Serialize,
    token: String,
) -> HttpResponse {
    let mut response = HttpResponse::Ok().json(options);
    let cookie = ceremony_cookie(&state.settings, token, passkeys.ceremony_ttl());
    let _ = response.add_cookie(&cookie);
    response
}

/// Starts a session after a passkey sign-in or sign-up and tells the script where
/// to go next.
async fn signed_in_response(
    req: &HttpRequest,
    state: &AppState,
    user: &crate::identity::users::User,
    amr: &[&str],
    return_to: Option<&str>,
    arrival: Arrival,
) -> Result<HttpResponse, ApiError> {
    let cookies = begin_session(req, state, user, amr, arrival)
        .await
        .map_err(|e| {
            tracing::error!("session start failed: {e}");
            ApiError::Unavailable("try again in a moment".into())
        })?;
    let next = safe_return_to(return_to).unwrap_or_else(|| "/account".to_owned());
    let mut response = HttpResponse::Ok().json(json!({ "redirect": next }));
    for c in &cookies {
        let _ = response.add_cookie(c);
    }
    let _ = response.add_cookie(&expired_ceremony_cookie(&state.settings));
    Ok(response)
}

#[derive(Deserialize)]
struct Finish<T> {
    credential: T,
    #[serde(default)]
    return_to: Option<String>,
}

pub async fn sign_in_start(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let passkeys = enabled(&state)?;
    if let Some(wait) = address_blocked(&req, &state).await? {
        return Ok(too_many_attempts(wait));
    }
    let begun = passkeys.start_sign_in().await?;
    Ok(started(&state, passkeys, begun.options, begun.token))
}

pub async fn sign_in_finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    ip: ClientIp,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, ApiError> {
    let passkeys = enabled(&state)?;
    let throttle_failed = |e: crate::store::cache::CacheError| {
        tracing::error!("sign-in throttle: {e}");
        ApiError::Unavailable("try again in a moment".into())
    };
    // Counted before the check, so parallel attempts cannot all slip under the limit.
    let attempt = match state
        .throttle
        .address_attempt(ip.as_str())
        .await
        .map_err(throttle_failed)?
    {
        Admission::Allowed(attempt) => attempt,
        Admission::Refused(wait) => return Ok(too_many_attempts(wait)),
    };
    let finish: Finish<PublicKeyCredential> = match parse(&body) {
        Ok(finish) => finish,
        Err(e) => {
            state
                .throttle
                .forgive(attempt)
                .await
                .map_err(throttle_failed)?;
            return Err(e);
        }
    };
    let token = ceremony_token(&req, &state.settings);
    let outcome = passkeys.finish_sign_in(&token, &finish.credential).await;
    use PasskeyError as E;
    let guessed = matches!(
        outcome,
        Err(E::UnknownCredential | E::CounterRegression | E::Rejected(_) | E::NotVerified)
    );
    if !guessed {
        state
            .throttle
            .forgive(attempt)
            .await
            .map_err(throttle_failed)?;
    }
    let done = outcome?;
    tracing::info!(user = %done.user.id, "signed in with a passkey");
    signed_in_response(
        &req,
        &state,
        &done.user,
        &done.amr,
        finish.return_to.as_deref(),
        Arrival::SignIn,
    )
    .await
}

#[derive(Deserialize)]
struct SignUpStart {
    #[serde(default)]
    email: String,
}

pub async fn sign_up_start(
    state: web::Data<AppState>,
    ip: ClientIp,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, ApiError> {
    let passkeys = enabled(&state)?;
    if !state.settings.signup {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            ErrorCode::SignupClosed,
            "sign-up is closed on this server",
        ));
    }
    if let Some(wait) = state
        .throttle
        .signup_attempt(ip.as_str())
        .await
        .map_err(|e| {
            tracing::error!("sign-up limit: {e}");
            ApiError::Unavailable("try again in a moment".into())
        })?
    {
        return Ok(too_many(
            wait,
            "too many sign-ups from this address; try again later",
        ));
    }
    let start: SignUpStart = parse(&body)?;
    let begun = passkeys.start_sign_up(&start.email).await?;
    Ok(started(&state, passkeys, begun.options, begun.token))
}

pub async fn sign_up_finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, ApiError> {
    let passkeys = enabled(&state)?;
    let finish: Finish<RegisterPublicKeyCredential> = parse(&body)?;
    let token = ceremony_token(&req, &state.settings);
    let done = passkeys.finish_sign_up(&token, &finish.credential).await?;
    tracing::info!(user = %done.user.id, "account created with a passkey");
    signed_in_response(
        &req,
        &state,
        &done.user,
        &done.amr,
        finish.return_to.as_deref(),
        Arrival::Quiet,
    )
    .await
}

pub async fn add_start(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let passkeys = enabled(&state)?;
    let current = check_session(&req, &state).await?;
    let user = crate::identity::users::find(&state.db, current.session.user_id)
        .await
        .map_err(|e| {
            tracing::error!("user lookup failed: {e}");
            ApiError::Unavailable("try again in a moment".into())
        })?
        .ok_or(ApiError::NotFound)?;
    if passkeys::needs_fresh_sign_in(&user, current.session.auth_time) {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            ErrorCode::LoginRequired,
            "sign in again to add a passkey (your sign-in is more than a few minutes old)",
        ));
    }
    let begun = passkeys.start_add(&user).await?;
    Ok(started(&state, passkeys, begun.options, begun.token))
}

pub async fn add_finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, ApiError> {
    let passkeys = enabled(&state)?;
    let current = check_session(&req, &state).await?;
    let finish: Finish<RegisterPublicKeyCredential> = parse(&body)?;
    let token = ceremony_token(&req, &state.settings);
    let added = passkeys
        .finish_add(&token, current.session.user_id, &finish.credential)
        .await?;
    tracing::info!(user = %current.session.user_id, passkey = %added.id, "passkey added");
    let mut response = HttpResponse::Ok()
        .json(json!({ "id": added.id, "name": added.name, "redirect": "/account" }));
    let _ = response.add_cookie(&expired_ceremony_cookie(&state.settings));
    Ok(response)
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

pub async fn rename(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    form: web::Form<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let current = super::browser::require_session(&req, &state).await?;
    match passkeys::rename(
        &state.db,
        current.session.user_id,
        path.into_inner(),
        &form.name,
    )
    .await
    {
        Ok(()) => Ok(see_other("/account")),
        Err(e) => super::account::account_with_notice(&state, &current, e).await,
    }
}

pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let current = super::browser::require_session(&req, &state).await?;
    match passkeys::remove(
        &state.db,
        &state.mail,
        current.session.user_id,
        path.into_inner(),
    )
    .await
    {
        Ok(()) => Ok(see_other("/account")),
        Err(e) => super::account::account_with_notice(&state, &current, e).await,
    }
}
