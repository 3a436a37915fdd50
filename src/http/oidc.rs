//! `/userinfo` (OIDC Core §5.3), a bearer-token resource (RFC 6750).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::BearerRefusal;
use crate::error::ErrorCode;
use crate::oauth::tokens::{BearerError, verify_access_token};
use crate::oidc::userinfo;
use crate::state::AppState;

/// The token from `Authorization: Bearer`, or (POST only) the `access_token` form
/// field (RFC 6750 §2.2); presenting both is an invalid request.
pub(super) fn bearer_token(
    req: &HttpRequest,
    body: Option<&[u8]>,
) -> Result<Option<String>, &'static str> {
    let header_token = match super::authorization_header(req)? {
        None => None,
        Some(v) => {
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or("the Authorization header must use the Bearer scheme")?;
            Some(token.trim().to_owned())
        }
    };
    let form_token = match body.map(super::form::strict_pairs).transpose()? {
        None => None,
        Some(pairs) => {
            let mut tokens = pairs.into_iter().filter(|(k, _)| k == "access_token");
            let first = tokens.next().map(|(_, v)| v);
            if tokens.next().is_some() {
                return Err("access_token is repeated");
            }
            first
        }
    };
    match (header_token, form_token) {
        (Some(_), Some(_)) => Err("the token was sent in more than one way"),
        (Some(t), None) | (None, Some(t)) => Ok(Some(t)),
        (None, None) => Ok(None),
    }
}

pub async fn userinfo_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BearerRefusal> {
    userinfo(&req, &state, None).await
}

pub async fn userinfo_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, BearerRefusal> {
    let form = super::form::is_form(&req).then_some(&body[..]);
    userinfo(&req, &state, form).await
}

async fn userinfo(
    req: &HttpRequest,
    state: &AppState,
    body: Option<&[u8]>,
) -> Result<HttpResponse, BearerRefusal> {
    let token = bearer_token(req, body)
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
        Err(BearerError::Unavailable(e)) => {
            tracing::error!("userinfo: {e}");
            return Err(BearerRefusal::Unavailable);
        }
        Err(e) => return Err(BearerRefusal::new(ErrorCode::InvalidToken, e.to_string())),
    };
    let scope = claims
        .get("scope")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !scope.split_whitespace().any(|s| s == "openid") {
        return Err(BearerRefusal::new(
            ErrorCode::InsufficientScope,
            "the token was not granted the openid scope",
        ));
    }
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let org = claims.get("org_id").and_then(|v| v.as_str());
    match userinfo::claims(&state.db, sub, scope, org).await {
        Ok(Some(info)) => Ok(HttpResponse::Ok().json(info)),
        Ok(None) => Err(BearerRefusal::new(
            ErrorCode::InvalidToken,
            "the account behind the token no longer exists",
        )),
        Err(e) => {
            tracing::error!("userinfo: {e}");
            Err(BearerRefusal::Unavailable)
        }
    }
}

// ------------------------------------------------- RP-initiated logout

use askama::Template;

use super::browser::{
    PageContext, PageError, SignedIn, allow_form_target, asset_version, expired_session_cookie,
    form_target, render, signed_in, unavailable,
};
use crate::identity::account;
use crate::oidc::logout::{self, After, LogoutRequest};

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    page: PageContext,
    confirm: bool,
    requester: String,
    params: Vec<(String, String)>,
    /// After signing out: a link back to the application, which the person
    /// follows or not (no automatic redirect for a request nothing vouches for).
    continue_to: Option<String>,
}

fn logout_refusal(message: &str) -> HttpResponse {
    super::browser::error_page(
        "This sign-out link is not valid",
        message,
        "/account",
        StatusCode::BAD_REQUEST,
    )
}

pub async fn end_session_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Ok(pairs) = super::form::strict_pairs(req.query_string().as_bytes()) else {
        return Ok(logout_refusal("The request is not valid UTF-8."));
    };
    end_session(&req, &state, pairs, false).await
}

pub async fn end_session_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::PageForm(pairs): super::form::PageForm,
) -> Result<HttpResponse, PageError> {
    end_session(&req, &state, pairs, false).await
}

/// The person confirmed on the page (the router checked the form's CSRF token),
/// then is signed out. Only a signed-in person confirms anything.
pub async fn end_session_confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::PageForm(mut pairs): super::form::PageForm,
) -> Result<HttpResponse, PageError> {
    pairs.retain(|(name, _)| name != super::csrf::FIELD);
    if signed_in(&req, &state).await?.is_none() {
        return Err(PageError::Csrf);
    }
    end_session(&req, &state, pairs, true).await
}

/// RP-Initiated Logout 1.0 (rules in `oidc::logout`): the signed-in person
/// confirms unless the request names their session, then is signed out of it
/// with the refresh tokens it granted.
async fn end_session(
    req: &HttpRequest,
    state: &AppState,
    pairs: Vec<(String, String)>,
    confirmed: bool,
) -> Result<HttpResponse, PageError> {
    let checked = logout::check(&state.issuer_config(), &state.clients, pairs)
        .await
        .map_err(unavailable)?;
    let request = match checked {
        Ok(request) => request,
        Err(why) => return Ok(logout_refusal(why)),
    };
    if let Some(current) = signed_in(req, state).await? {
        if !(confirmed || request.names(&current.session)) {
            return Ok(confirmation_page(&request, &current));
        }
        account::end_browser_session(&state.db, &state.sessions, &current.token, &current.session)
            .await
            .map_err(unavailable)?;
    }
    let mut response = match request.after(confirmed) {
        After::Redirect(url) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .finish(),
        After::Page { continue_to } => render(
            &LogoutPage {
                page: PageContext {
                    asset_version: asset_version(),
                    csrf: String::new(),
                    signed_in_as: None,
                    admin: false,
                },
                confirm: false,
                requester: request.requester(),
                params: Vec::new(),
                continue_to: continue_to.map(String::from),
            },
            StatusCode::OK,
        ),
    };
    let _ = response.add_cookie(&expired_session_cookie(&state.settings));
    Ok(response)
}

/// Asks the signed-in person to confirm; confirming answers with a 303 to the
/// registered post-logout URI, so the form may end there.
fn confirmation_page(request: &LogoutRequest, current: &SignedIn) -> HttpResponse {
    let page = LogoutPage {
        page: PageContext {
            asset_version: asset_version(),
            csrf: current.csrf(),
            signed_in_as: Some(current.session.email.clone()),
            admin: false,
        },
        confirm: true,
        requester: request.requester(),
        params: request.params.pairs().to_vec(),
        continue_to: None,
    };
    let mut response = render(&page, StatusCode::OK);
    let target = request.redirect().and_then(form_target);
    allow_form_target(&mut response, target.as_deref());
    response
}
