//! `/userinfo` (OIDC Core §5.3), a bearer-token resource (RFC 6750).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{BearerRefusal, ErrorCode};
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
        Ok(Some(info)) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(info)),
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
    PageContext, PageError, asset_version, expired_session_cookie, render, signed_in,
};
use crate::oauth::flows::Params;
use crate::oauth::refresh;

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

fn requester(client: Option<&crate::oauth::clients::Client>) -> String {
    client.map_or_else(|| "An application".to_owned(), |c| c.name.clone())
}

/// OIDC RP-Initiated Logout 1.0. A post-logout redirect goes only to a URI the
/// client registered; a request not tied to this session by its `id_token_hint`
/// is confirmed by the person first, so no site can sign users out behind
/// their backs.
async fn end_session(
    req: &HttpRequest,
    state: &AppState,
    pairs: Vec<(String, String)>,
    confirmed: bool,
) -> Result<HttpResponse, PageError> {
    let Ok(params) = Params::unique(pairs) else {
        return Ok(logout_refusal("The request repeats a parameter."));
    };
    let hint = match params.get("id_token_hint") {
        None => None,
        Some(token) => match state.keys.keys().verify_ignoring_expiry(
            token,
            "JWT",
            state.settings.issuer_str(),
            chrono::Utc::now(),
        ) {
            Ok(claims) => Some(claims),
            Err(_) => {
                return Ok(logout_refusal(
                    "The id_token_hint was not issued by this server.",
                ));
            }
        },
    };
    let hint_client = hint
        .as_ref()
        .and_then(|c| c.get("aud"))
        .and_then(|v| v.as_str());
    let client_id = match (hint_client, params.get("client_id")) {
        (Some(a), Some(b)) if a != b => {
            return Ok(logout_refusal(
                "client_id does not match the id_token_hint.",
            ));
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let client = match &client_id {
        Some(id) => state.clients.find(&state.db, id).await.map_err(|e| {
            tracing::error!("logout: {e}");
            PageError::Unavailable
        })?,
        None => None,
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let registered = client
                .as_ref()
                .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
            match url::Url::parse(uri) {
                Ok(url) if registered => Some(url),
                _ => {
                    return Ok(logout_refusal(
                        "The return address is not registered for this application.",
                    ));
                }
            }
        }
    };

    if let Some(current) = signed_in(req, state).await? {
        let session = &current.session;
        let hinted_here = hint.as_ref().is_some_and(|claims| {
            let sid = claims.get("sid").and_then(|v| v.as_str());
            let sub = claims.get("sub").and_then(|v| v.as_str());
            sid == Some(session.id.to_string().as_str())
                || (sid.is_none() && sub == Some(session.user_id.to_string().as_str()))
        });
        if !(confirmed || hinted_here) {
            let page = LogoutPage {
                page: PageContext {
                    asset_version: asset_version(),
                    csrf: current.csrf(),
                    signed_in_as: Some(session.email.clone()),
                },
                confirm: true,
                requester: requester(client.as_ref()),
                params: params.pairs().to_vec(),
                continue_to: None,
            };
            let mut response = render(&page, StatusCode::OK);
            // Confirming answers with a 303 to the registered post-logout URI.
            let target = redirect.as_ref().and_then(super::browser::form_target);
            super::browser::allow_form_target(&mut response, target.as_deref());
            return Ok(response);
        }
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::error!("logout: {e}");
            PageError::Unavailable
        };
        state
            .sessions
            .end(&current.token)
            .await
            .map_err(|e| unavailable(&e))?;
        refresh::revoke_for_session(&state.db, session.id, false)
            .await
            .map_err(|e| unavailable(&e))?;
    }

    let redirect = redirect.map(|mut url| {
        if let Some(s) = params.get("state") {
            url.query_pairs_mut().append_pair("state", s);
        }
        url
    });
    // Without a session, a redirect straight away would make this endpoint an open
    // redirector for any client that registered a URI (RFC 9700 §4.11): only an
    // id_token_hint of ours ties the request to the client (it named the same
    // client above), or the person's own confirmation did.
    let vouched = confirmed || hint.is_some();
    let mut response = match redirect {
        Some(url) if vouched => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        url => render(
            &LogoutPage {
                page: PageContext {
                    asset_version: asset_version(),
                    csrf: String::new(),
                    signed_in_as: None,
                },
                confirm: false,
                requester: requester(client.as_ref()),
                params: Vec::new(),
                continue_to: url.map(String::from),
            },
            StatusCode::OK,
        ),
    };
    let _ = response.add_cookie(&expired_session_cookie(&state.settings));
    Ok(response)
}
