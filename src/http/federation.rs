//! Continue with {provider}: the start of a federated sign-in, the callback
//! the provider sends the browser back to, and disconnecting a provider.
//! Every failure is a page here; nothing redirects to a client.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::browser::{
    Arrival, FederationCookie, PageContext, PageError, begin_session_via, error_page, render,
    require_session, safe_return_to, see_other, signed_in, unavailable,
};
use crate::federation::FlowError;
use crate::federation::flow::{Callback, Decision, Finished};
use crate::federation::links::LinkError;
use crate::federation::upstream::Status;
use crate::state::AppState;

/// How long the browser-binding cookie of a flow lives (as the flow itself).
const FLOW_COOKIE_SECS: i64 = 10 * 60;

/// A provider's button on the sign-in and sign-up pages.
#[derive(Clone)]
pub struct ProviderButton {
    pub id: String,
    pub name: String,
    pub available: bool,
}

/// The buttons to show; a provider never fetched yet is tried in the
/// background now, so the next page knows. A database hiccup shows none
/// (the page still signs people in with passwords and passkeys).
pub async fn buttons(state: &AppState) -> Vec<ProviderButton> {
    match state.federation.buttons().await {
        Ok(list) => list
            .into_iter()
            .map(|(p, status)| {
                if status == Status::Unknown && state.federation.upstreams.first_fetch(&p) {
                    let upstreams = state.federation.upstreams.clone();
                    let provider = p.clone();
                    tokio::spawn(async move { upstreams.fetch(&provider).await });
                }
                ProviderButton {
                    available: !matches!(status, Status::Unavailable(_)),
                    id: p.id,
                    name: p.name,
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list identity providers: {e}");
            Vec::new()
        }
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
    /// Present when a signed-in person connects the provider from /account.
    connect: Option<String>,
}

/// The page for a flow that went wrong, with the status that says why.
fn flow_error(e: FlowError) -> Result<HttpResponse, PageError> {
    let status = match &e {
        FlowError::UnknownProvider(_) => StatusCode::NOT_FOUND,
        FlowError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        FlowError::Denied(_)
        | FlowError::StateInvalid
        | FlowError::NoEmail(_)
        | FlowError::NotConnected(_) => StatusCode::BAD_REQUEST,
        FlowError::Refused { .. } | FlowError::IdToken { .. } => StatusCode::BAD_GATEWAY,
        FlowError::SignupClosed(_) | FlowError::Disabled => StatusCode::FORBIDDEN,
        FlowError::Link(LinkError::LinkedElsewhere(_) | LinkError::LastWayIn) => {
            StatusCode::CONFLICT
        }
        FlowError::Link(_) | FlowError::Internal(_) => return Err(unavailable(e)),
    };
    if matches!(e, FlowError::IdToken { .. } | FlowError::Refused { .. }) {
        tracing::warn!("federated sign-in refused: {e}");
    }
    Ok(error_page(
        "Sign-in not completed",
        e.to_string(),
        "/login",
        status,
    ))
}

/// `GET /federation/{id}/start`: to the provider, with PKCE, state and nonce.
/// A link (not a form), so no `form-action` rule stands between the page and
/// the provider's origin.
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<StartQuery>,
) -> Result<HttpResponse, PageError> {
    let return_to = safe_return_to(query.return_to.as_deref());
    let connect = match query.connect {
        None => None,
        Some(_) => match signed_in(&req, &state).await? {
            Some(current) => Some(current.session.user_id),
            None => return Ok(see_other("/login?return_to=%2Faccount")),
        },
    };
    match state.federation.begin(&path, return_to, connect).await {
        Ok(begun) => {
            let mut response = see_other(begun.location.as_str());
            let cookie =
                FederationCookie::Flow.make(&state.settings, begun.binding, FLOW_COOKIE_SECS);
            let _ = response.add_cookie(&cookie);
            Ok(response)
        }
        Err(e) => flow_error(e),
    }
}

/// The callback's parameters, each at most once (RFC 6749 §3.1).
fn callback_params(req: &HttpRequest) -> Option<Callback> {
    let mut callback = Callback::default();
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        let slot = match name.as_ref() {
            "code" => &mut callback.code,
            "state" => &mut callback.state,
            "error" => &mut callback.error,
            "iss" => &mut callback.iss,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return None;
        }
    }
    Some(callback)
}

#[derive(Template)]
#[template(path = "federation_link.html")]
struct LinkPage {
    page: PageContext,
    provider: String,
    email: String,
    login: String,
}

/// `GET /federation/{id}/callback`: the provider's answer.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let binding = FederationCookie::Flow.value(&req, &state.settings);
    let outcome = match callback_params(&req) {
        None => Err(FlowError::StateInvalid),
        Some(params) => {
            state
                .federation
                .finish(&path, &params, binding.as_deref())
                .await
        }
    };
    let mut response = match outcome {
        Ok(finished) => signed_in_by(&req, &state, finished).await?,
        Err(e) => flow_error(e)?,
    };
    let _ = response.add_cookie(&FederationCookie::Flow.expired(&state.settings));
    Ok(response)
}

/// What a checked callback leads to: a session, a link, or the offer to
/// connect an existing account by signing in to it.
async fn signed_in_by(
    req: &HttpRequest,
    state: &AppState,
    finished: Finished,
) -> Result<HttpResponse, PageError> {
    let current = signed_in(req, state).await?.map(|s| s.session.user_id);
    let decision = match state
        .federation
        .decide(&state.mail, &finished, current, state.settings.signup)
        .await
    {
        Ok(d) => d,
        Err(e) => return flow_error(e),
    };
    let next = finished.return_to.as_deref().unwrap_or("/account");
    let (user, arrival) = match decision {
        Decision::Connected { .. } => return Ok(see_other(next)),
        Decision::ConfirmBySignIn { user_id, email } => {
            return confirm_page(state, &finished, user_id, &email).await;
        }
        Decision::SignIn { user } => (user, Arrival::SignIn),
        Decision::Created { user } => (user, Arrival::Quiet),
    };
    let amr: Vec<&str> = finished.identity.amr.iter().map(String::as_str).collect();
    let cookies = begin_session_via(
        req,
        state,
        &user,
        &amr,
        Some(&finished.provider.id),
        arrival,
    )
    .await
    .map_err(unavailable)?;
    let mut response = see_other(next);
    for c in &cookies {
        let _ = response.add_cookie(c);
    }
    Ok(response)
}

/// "An account with this address exists: sign in to it to connect." The
/// offer waits in a cookie for the sign-in (see `browser::begin_session_via`).
async fn confirm_page(
    state: &AppState,
    finished: &Finished,
    user_id: Uuid,
    email: &str,
) -> Result<HttpResponse, PageError> {
    let offer = match state.federation.hold_link(finished, user_id).await {
        Ok(offer) => offer,
        Err(e) => return flow_error(e),
    };
    let mut login = url::form_urlencoded::Serializer::for_suffix(String::from("/login?"), 7);
    login.append_pair("login_hint", email);
    if let Some(next) = &finished.return_to {
        login.append_pair("return_to", next);
    }
    let page = LinkPage {
        page: PageContext {
            asset_version: super::browser::asset_version(),
            csrf: String::new(),
            signed_in_as: None,
            admin: false,
        },
        provider: finished.provider.name.clone(),
        email: email.to_owned(),
        login: login.finish(),
    };
    let mut response = render(&page, StatusCode::OK);
    let cookie = FederationCookie::PendingLink.make(&state.settings, offer, FLOW_COOKIE_SECS);
    let _ = response.add_cookie(&cookie);
    Ok(response)
}

/// `POST /account/connections/{id}/disconnect`.
pub async fn disconnect(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    match crate::federation::links::disconnect(
        &state.db,
        current.session.user_id,
        path.into_inner(),
    )
    .await
    {
        Ok(_) => Ok(see_other("/account")),
        Err(e @ (LinkError::LastWayIn | LinkError::NotFound)) => {
            let status = if matches!(e, LinkError::NotFound) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            };
            let extras = super::account::AccountExtras {
                notice: Some(e.to_string()),
                ..Default::default()
            };
            super::account::account_page(&state, &current, extras, status).await
        }
        Err(e) => Err(unavailable(e)),
    }
}
