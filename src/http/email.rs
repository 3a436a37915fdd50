//! Mailed links: following a verification link, asking for a new one, and the
//! page that asks a person to verify before an application gets a code.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::account::{AccountExtras, account_page};
use super::browser::{
    PageContext, PageError, SignedIn, asset_version, error_page, minutes, render, require_session,
    retry_after, safe_return_to, unavailable,
};
use crate::identity::email::{self, LinkError, Resent, Verified};
use crate::state::AppState;

/// `GET /email/verify/{token}`: the link in the verification message. It works
/// in any browser (mail is often read on another device than the sign-up).
pub async fn verify(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    match email::verify(&state.db, &state.mail, &token, chrono::Utc::now()).await {
        Ok(Verified::Now(address) | Verified::Already(address)) => Ok(error_page(
            "Email verified",
            format!("Your address {address} is verified. Thank you."),
            "/account",
            StatusCode::OK,
        )),
        Ok(Verified::Changed { user_id, to }) => {
            // Sessions carry the address they were signed in with; read it anew.
            state
                .sessions
                .refresh_for_user(user_id)
                .await
                .map_err(unavailable)?;
            Ok(error_page(
                "Email changed",
                format!("Your account's address is now {to}. Sign in with it from now on."),
                "/account",
                StatusCode::OK,
            ))
        }
        Err(e @ LinkError::Taken) => Ok(error_page(
            "Email not changed",
            e.to_string(),
            "/account",
            StatusCode::CONFLICT,
        )),
        Err(e @ LinkError::Invalid) => Ok(error_page(
            "This link cannot be used",
            format!("{e} Sign in and ask for a new one on your account page."),
            "/account",
            StatusCode::BAD_REQUEST,
        )),
        Err(LinkError::Identity(e)) => Err(unavailable(e)),
    }
}

#[derive(Deserialize)]
pub struct ResendForm {
    /// Set by the "verify first" page: it is shown again, with a notice.
    #[serde(default)]
    return_to: Option<String>,
}

/// `POST /account/email/verify`: a fresh verification link, at most
/// `throttle::MAILS_PER_HOUR` an hour per account.
pub async fn resend(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ResendForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    let user_id = current.session.user_id;
    let continue_to = safe_return_to(form.return_to.as_deref());
    let wait = state
        .throttle
        .mail_attempt("verify", &user_id.to_string())
        .await
        .map_err(unavailable)?;
    let (notice, status) = match wait {
        Some(wait) => (
            format!(
                "Too many verification messages asked for. Try again in {} minute(s).",
                minutes(wait)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        None => match email::resend_verification(&state.db, &state.mail, user_id).await {
            Ok(Resent::Queued) => (
                "We sent a new verification link. Follow it to verify your address.".to_owned(),
                StatusCode::OK,
            ),
            Ok(Resent::AlreadyVerified) => (
                "Your address is already verified.".to_owned(),
                StatusCode::OK,
            ),
            Err(e) => return Err(unavailable(e)),
        },
    };
    let response = match continue_to {
        Some(to) => {
            let account = current.account(&state).await?;
            let mut page = verify_first(&current, &account.email, &to);
            page.notice = Some(notice);
            render(&page, status)
        }
        None => {
            let extras = AccountExtras {
                notice: Some(notice),
                ..AccountExtras::default()
            };
            account_page(&state, &current, extras, status).await?
        }
    };
    Ok(match wait {
        Some(wait) => retry_after(response, wait),
        None => response,
    })
}

#[derive(Template)]
#[template(path = "verify_email.html")]
struct VerifyFirstPage {
    page: PageContext,
    email: String,
    continue_to: String,
    notice: Option<String>,
}

fn verify_first(current: &SignedIn, email: &str, continue_to: &str) -> VerifyFirstPage {
    VerifyFirstPage {
        page: PageContext {
            asset_version: asset_version(),
            csrf: current.csrf(),
            signed_in_as: Some(email.to_owned()),
            admin: false,
        },
        email: email.to_owned(),
        continue_to: continue_to.to_owned(),
        notice: None,
    }
}

/// `TESSERA_REQUIRE_VERIFIED_EMAIL`: the application gets no code until the
/// address is verified; `continue_to` resumes its request.
pub fn verify_first_page(current: &SignedIn, email: &str, continue_to: &str) -> HttpResponse {
    render(
        &verify_first(current, email, continue_to),
        StatusCode::FORBIDDEN,
    )
}
