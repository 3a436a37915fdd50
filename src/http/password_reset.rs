//! "Forgot password?": asking for a reset link, and setting a new password
//! through it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::browser::{
    Arrival, PageContext, PageError, PreSession, error_page, minutes, render, retry_after,
    unavailable,
};
use super::client::ClientIp;
use super::signin::{pre_session_page, start_session, with_cookie};
use crate::identity::email::{self, LinkError};
use crate::identity::{IdentityError, account, normalize_email};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage {
    page: PageContext,
    email: String,
    sent: bool,
    error: Option<String>,
}

fn forgot(pre: &PreSession, email: String, sent: bool, error: Option<String>) -> ForgotPage {
    ForgotPage {
        page: pre_session_page(pre),
        email,
        sent,
        error,
    }
}

/// `GET /password/forgot`.
pub async fn forgot_page(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let pre = PreSession::from_request(&req, &state.settings)?;
    let page = forgot(&pre, String::new(), false, None);
    Ok(with_cookie(render(&page, StatusCode::OK), &pre))
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// `POST /password/forgot`: the same answer whether or not an account has the
/// address, in the same time — the lookup and the mail happen after the answer.
pub async fn request(
    req: HttpRequest,
    state: web::Data<AppState>,
    ip: ClientIp,
    form: web::Form<ForgotForm>,
) -> Result<HttpResponse, PageError> {
    let pre = PreSession::from_request(&req, &state.settings)?;
    let typed = form.email.trim().chars().take(254).collect::<String>();
    let Ok(address) = normalize_email(&form.email) else {
        let page = forgot(
            &pre,
            typed,
            false,
            Some(IdentityError::InvalidEmail.to_string()),
        );
        return Ok(with_cookie(render(&page, StatusCode::BAD_REQUEST), &pre));
    };
    if let Some(wait) = state
        .throttle
        .reset_attempt(&address, ip.as_str())
        .await
        .map_err(unavailable)?
    {
        let message = format!(
            "Too many reset links asked for. Try again in {} minute(s).",
            minutes(wait)
        );
        let page = forgot(&pre, typed, false, Some(message));
        let response = with_cookie(render(&page, StatusCode::TOO_MANY_REQUESTS), &pre);
        return Ok(retry_after(response, wait));
    }
    let (db, mail) = (state.db.clone(), state.mail.clone());
    tokio::spawn(async move {
        if let Err(e) = email::request_reset(&db, &mail, &address).await {
            tracing::error!("cannot queue a password reset: {e}");
        }
    });
    let page = forgot(&pre, typed, true, None);
    Ok(with_cookie(render(&page, StatusCode::OK), &pre))
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage {
    page: PageContext,
    email: String,
    action: String,
    error: Option<String>,
}

fn link_refused(e: LinkError) -> Result<HttpResponse, PageError> {
    match e {
        // A reset link never changes an address; `Taken` cannot come from it.
        LinkError::Invalid | LinkError::Taken => Ok(error_page(
            "This link cannot be used",
            format!("{e} Ask for a new one from the sign-in page (Forgot password?)."),
            "/password/forgot",
            StatusCode::BAD_REQUEST,
        )),
        LinkError::Identity(e) => Err(unavailable(e)),
    }
}

/// `GET /password/reset/{token}`: the form, while the link may be used.
pub async fn reset_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let email = match email::check_reset(&state.db, &token, chrono::Utc::now()).await {
        Ok(email) => email,
        Err(e) => return link_refused(e),
    };
    let pre = PreSession::from_request(&req, &state.settings)?;
    let page = ResetPage {
        page: pre_session_page(&pre),
        email,
        action: req.path().to_owned(),
        error: None,
    };
    Ok(with_cookie(render(&page, StatusCode::OK), &pre))
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    new_password: String,
}

/// `POST /password/reset/{token}`: the new password; every session and refresh
/// token of the account ends, and this browser is signed in.
pub async fn reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    form: web::Form<ResetForm>,
) -> Result<HttpResponse, PageError> {
    let now = chrono::Utc::now();
    match email::reset_password(
        &state.db,
        &state.passwords,
        &state.mail,
        &token,
        &form.new_password,
        now,
    )
    .await
    {
        Ok(user) => {
            account::sign_out_everywhere(&state.db, &state.sessions, user.id, false)
                .await
                .map_err(unavailable)?;
            start_session(&req, &state, &user, Some("/account"), Arrival::Quiet).await
        }
        Err(LinkError::Identity(
            e @ (IdentityError::PasswordTooShort
            | IdentityError::PasswordTooLong
            | IdentityError::PasswordTooCommon),
        )) => {
            let email = match email::check_reset(&state.db, &token, now).await {
                Ok(email) => email,
                Err(e) => return link_refused(e),
            };
            let pre = PreSession::from_request(&req, &state.settings)?;
            let page = ResetPage {
                page: pre_session_page(&pre),
                email,
                action: req.path().to_owned(),
                error: Some(e.to_string()),
            };
            Ok(with_cookie(render(&page, StatusCode::BAD_REQUEST), &pre))
        }
        Err(e) => link_refused(e),
    }
}
