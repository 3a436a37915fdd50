//! Sign-in, sign-up and sign-out: the pages a person meets before their account.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::browser::{
    Arrival, PageContext, PageError, PreSession, allow_form_target, asset_version, begin_session,
    minutes, render, require_session, retry_after, safe_return_to, see_other, signed_in,
    signed_out, unavailable,
};
use super::client::ClientIp;
use crate::identity::throttle::Admission;
use crate::identity::{IdentityError, account, normalize_email, users};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
    /// `login` asks for a fresh sign-in even with a live session (OIDC `prompt`).
    prompt: Option<String>,
    /// Pre-fills the Email field (OIDC `login_hint`).
    login_hint: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: PageContext,
    error: Option<String>,
    email: String,
    return_to: String,
    signup_open: bool,
    passkeys: bool,
    /// Continue with {provider}.
    providers: Vec<super::federation::ProviderButton>,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    page: PageContext,
    error: Option<String>,
    email: String,
    return_to: String,
    signup_open: bool,
    passkeys: bool,
    /// Continue with {provider}.
    providers: Vec<super::federation::ProviderButton>,
}

#[derive(Deserialize)]
pub struct CredentialsForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    return_to: Option<String>,
}

pub(super) fn pre_session_page(pre: &PreSession) -> PageContext {
    PageContext {
        asset_version: asset_version(),
        csrf: pre.csrf(),
        signed_in_as: None,
        admin: false,
    }
}

/// A sign-in or sign-up page whose form may end at the client `target`.
fn page_for(mut response: HttpResponse, target: Option<&str>) -> HttpResponse {
    allow_form_target(&mut response, target);
    response
}

pub(super) fn with_cookie(mut response: HttpResponse, pre: &PreSession) -> HttpResponse {
    if let Some(c) = &pre.new_cookie {
        let _ = response.add_cookie(c);
    }
    response
}

/// Signs `user` in with a password session and sends them on to `return_to`.
pub(super) async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    user: &users::User,
    return_to: Option<&str>,
    arrival: Arrival,
) -> Result<HttpResponse, PageError> {
    let cookies = begin_session(req, state, user, &["pwd"], arrival)
        .await
        .map_err(unavailable)?;
    let mut response = see_other(return_to.unwrap_or("/account"));
    for c in &cookies {
        let _ = response.add_cookie(c);
    }
    Ok(response)
}

/// The server's root is for people: their account, which sends them to sign in
/// when they are not.
pub async fn home() -> HttpResponse {
    see_other("/account")
}

pub async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ReturnTo>,
) -> Result<HttpResponse, PageError> {
    let return_to = safe_return_to(query.return_to.as_deref());
    let fresh_sign_in = query.prompt.as_deref() == Some("login");
    if !fresh_sign_in && signed_in(&req, &state).await?.is_some() {
        return Ok(see_other(return_to.as_deref().unwrap_or("/account")));
    }
    let pre = PreSession::from_request(&req, &state.settings)?;
    let hint = query.login_hint.as_deref().unwrap_or_default();
    let target = super::authorize::return_target(&state, return_to.as_deref()).await;
    let page = LoginPage {
        page: pre_session_page(&pre),
        error: None,
        email: hint.chars().take(254).collect(),
        return_to: return_to.unwrap_or_default(),
        signup_open: state.settings.signup,
        passkeys: state.passkeys.is_some(),
        providers: super::federation::buttons(&state).await,
    };
    Ok(with_cookie(
        page_for(render(&page, StatusCode::OK), target.as_deref()),
        &pre,
    ))
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    ip: ClientIp,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, PageError> {
    let pre = PreSession::from_request(&req, &state.settings)?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let target = super::authorize::return_target(&state, return_to.as_deref()).await;
    // The buttons are read only when the page is shown again.
    let failure = |message: String, status: StatusCode, providers| {
        let page = LoginPage {
            page: pre_session_page(&pre),
            error: Some(message),
            email: form.email.trim().to_owned(),
            return_to: return_to.clone().unwrap_or_default(),
            signup_open: state.settings.signup,
            passkeys: state.passkeys.is_some(),
            providers,
        };
        with_cookie(page_for(render(&page, status), target.as_deref()), &pre)
    };

    // Unparseable emails are counted under their raw form; they can never succeed.
    let account = normalize_email(&form.email).unwrap_or_else(|_| form.email.trim().to_lowercase());
    let throttle = &state.throttle;
    let attempt = match throttle
        .password_attempt(&account, ip.as_str())
        .await
        .map_err(unavailable)?
    {
        Admission::Allowed(attempt) => attempt,
        Admission::Refused(wait) => {
            // Once per account and address while the limit holds.
            crate::audit::record_once(
                &state.db,
                &state.cache,
                &format!("throttled:{account}:{}", ip.as_str()),
                wait,
                crate::audit::Event::new(crate::audit::Kind::SignInFailed)
                    .detail("method", "password")
                    .detail("reason", "throttled"),
            )
            .await;
            let response = failure(
                format!(
                    "Too many failed attempts. Try again in {} minute(s).",
                    minutes(wait)
                ),
                StatusCode::TOO_MANY_REQUESTS,
                super::federation::buttons(&state).await,
            );
            return Ok(retry_after(response, wait));
        }
    };

    match users::authenticate(&state.db, &state.passwords, &form.email, &form.password).await {
        Ok(user) => {
            throttle.forgive(attempt).await.map_err(unavailable)?;
            start_session(&req, &state, &user, return_to.as_deref(), Arrival::SignIn).await
        }
        // The attempt was counted before the check; a failure needs nothing more.
        Err(e @ (IdentityError::BadCredentials | IdentityError::Disabled)) => Ok(failure(
            e.to_string(),
            StatusCode::UNAUTHORIZED,
            super::federation::buttons(&state).await,
        )),
        Err(e) => Err(unavailable(e)),
    }
}

pub async fn signup_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ReturnTo>,
) -> Result<HttpResponse, PageError> {
    let pre = PreSession::from_request(&req, &state.settings)?;
    let return_to = safe_return_to(query.return_to.as_deref());
    let target = super::authorize::return_target(&state, return_to.as_deref()).await;
    let page = SignupPage {
        page: pre_session_page(&pre),
        error: None,
        email: String::new(),
        return_to: return_to.unwrap_or_default(),
        signup_open: state.settings.signup,
        passkeys: state.passkeys.is_some(),
        providers: super::federation::buttons(&state).await,
    };
    Ok(with_cookie(
        page_for(render(&page, StatusCode::OK), target.as_deref()),
        &pre,
    ))
}

pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    ip: ClientIp,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, PageError> {
    let pre = PreSession::from_request(&req, &state.settings)?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let target = super::authorize::return_target(&state, return_to.as_deref()).await;
    let render = |page: &SignupPage, status| page_for(render(page, status), target.as_deref());
    let providers = super::federation::buttons(&state).await;
    let page = |error: Option<String>| SignupPage {
        page: pre_session_page(&pre),
        error,
        email: form.email.trim().to_owned(),
        return_to: return_to.clone().unwrap_or_default(),
        signup_open: state.settings.signup,
        passkeys: state.passkeys.is_some(),
        providers: providers.clone(),
    };
    if !state.settings.signup {
        return Ok(render(&page(None), StatusCode::FORBIDDEN));
    }
    if let Some(wait) = state
        .throttle
        .signup_attempt(ip.as_str())
        .await
        .map_err(unavailable)?
    {
        let response = render(
            &page(Some(format!(
                "Too many sign-ups from this network. Try again in {} minute(s).",
                minutes(wait)
            ))),
            StatusCode::TOO_MANY_REQUESTS,
        );
        return Ok(retry_after(response, wait));
    }
    let user = match users::create(
        &state.db,
        &state.passwords,
        &form.email,
        &form.password,
        users::NewAddress::SendVerification(&state.mail),
    )
    .await
    {
        Ok(user) => user,
        Err(e @ IdentityError::EmailTaken) => {
            return Ok(render(&page(Some(e.to_string())), StatusCode::CONFLICT));
        }
        Err(
            e @ (IdentityError::InvalidEmail
            | IdentityError::PasswordTooShort
            | IdentityError::PasswordTooLong
            | IdentityError::PasswordTooCommon),
        ) => return Ok(render(&page(Some(e.to_string())), StatusCode::BAD_REQUEST)),
        Err(e) => return Err(unavailable(e)),
    };
    start_session(&req, &state, &user, return_to.as_deref(), Arrival::Quiet).await
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    account::sign_out(&state.db, &state.sessions, &current.token, &current.session)
        .await
        .map_err(unavailable)?;
    Ok(signed_out(&state))
}
