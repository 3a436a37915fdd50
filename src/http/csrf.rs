//! CSRF defence by construction. Every route in the table (`http::table`) says how
//! its state-changing requests are protected, and this middleware checks them
//! before any handler runs: a handler cannot forget.
//!
//! The token is an HMAC of a secret cookie the browser holds: the session cookie
//! once signed in, the pre-session cookie before. Checking it needs no lookup —
//! the cookie value itself is the key — so refusal is cheap and comes first. A
//! request the browser marks `Sec-Fetch-Site: cross-site` is refused whatever it
//! carries (Fetch Metadata).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, ResponseError as _, web};

use super::browser::{self, PageError};
use super::error::ApiError;
use crate::error::ErrorCode;
use crate::identity::sessions;
use crate::state::AppState;

/// How a route's state-changing requests (POST, PUT, PATCH, DELETE) are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Nothing here: OAuth and OIDC endpoints other sites call by design (token,
    /// registration, RP-initiated logout), authenticated by their own means, and
    /// routes without a state-changing method.
    Exempt,
    /// Our pages' forms: a `csrf` field in the form body. Refusals are HTML pages.
    Form,
    /// Our scripts' JSON requests: an `x-csrf-token` header. Refusals are JSON.
    Script,
}

/// The header our script sends the page's CSRF token in.
pub const HEADER: &str = "x-csrf-token";
/// The form field our pages send it in.
pub const FIELD: &str = "csrf";

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether `submitted` is the token of a secret cookie this browser holds, and
/// the browser does not say the request came from another site.
fn accepted(req: &HttpRequest, submitted: &str) -> bool {
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site || submitted.is_empty() {
        return false;
    }
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return false;
    };
    browser::csrf_secrets(req, &state.settings)
        .iter()
        .any(|secret| sessions::csrf_matches(secret, submitted))
}

/// Checks a page form's `csrf` field; the body is read here and handed on
/// unchanged to the handler.
pub async fn form(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !changes_state(req.method()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // Our pages send forms only; anything else is answered as what it is.
    if !super::form::is_form(req.request()) {
        let refusal = PageError::BadForm("it was not sent as a form".to_owned());
        return Ok(req.into_response(refusal.error_response()));
    }
    let body = match req.extract::<web::Bytes>().await {
        Ok(body) => body,
        Err(e) => {
            let refusal = if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                PageError::TooLarge
            } else {
                PageError::BadForm("the body could not be read".to_owned())
            };
            return Ok(req.into_response(refusal.error_response()));
        }
    };
    // Lossy decoding only to find the token (base64url, plain ASCII); the handler
    // reads the form strictly and answers malformed input precisely.
    let submitted = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !accepted(req.request(), &submitted) {
        return Ok(req.into_response(PageError::Csrf.error_response()));
    }
    req.set_payload(Payload::from(body));
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Checks a script request's `x-csrf-token` header.
pub async fn script(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if changes_state(req.method()) {
        let submitted = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !accepted(req.request(), &submitted) {
            let refusal = ApiError::Refused {
                status: StatusCode::FORBIDDEN,
                code: ErrorCode::InvalidCsrfToken,
                description:
                    "the page has expired or the request came from another site; reload the page"
                        .into(),
            };
            return Ok(req.into_response(refusal.error_response()));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
