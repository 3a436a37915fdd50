//! The HTTP each error becomes (the OAuth codes themselves are spelled once, in
//! `oauth::error`): status, `WWW-Authenticate`,
//! `Retry-After` (`Cache-Control: no-store` is every response's default, set in
//! `http::middleware`).

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::browser::PageError;
use crate::error::ErrorCode;
use crate::identity::passkeys::PasskeyError;
use crate::oauth::error::TokenError;
use crate::oauth::registration::RegistrationError;

/// An RFC 6749 §5.2 answer of the token, revocation and introspection endpoints.
#[derive(Debug, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// Seconds for `Retry-After` when the answer is "not now" (5 unless known).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// Storage or the cache did not answer; the cause is logged where it happened.
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, "try again shortly")
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self.code {
            // RFC 6749 §5.2: a client that failed to authenticate gets 401 and a
            // challenge for the scheme it may use.
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::PRAGMA, "no-cache"));
        match self.code {
            ErrorCode::InvalidClient => {
                response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"tessera\""));
            }
            ErrorCode::TemporarilyUnavailable => {
                let wait = self.retry_after.unwrap_or(5).to_string();
                if let Ok(v) = HeaderValue::from_str(&wait) {
                    response.insert_header((header::RETRY_AFTER, v));
                }
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
        })
    }
}

/// An RFC 6750 §3 answer of a resource that takes bearer tokens (userinfo, client
/// registration): a `WWW-Authenticate: Bearer` challenge, with the error code
/// only when a token was presented.
#[derive(Debug, thiserror::Error)]
pub enum BearerRefusal {
    /// No token: a bare challenge (RFC 6750 §3.1).
    #[error("a bearer token is required")]
    Missing,
    /// `invalid_request` (400), `invalid_token` (401) or `insufficient_scope` (403).
    #[error("{description}", description = .1)]
    Refused(ErrorCode, Cow<'static, str>),
    /// Storage or the cache did not answer; the cause is logged where it happened.
    #[error("try again shortly")]
    Unavailable,
}

impl BearerRefusal {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        BearerRefusal::Refused(code, description.into())
    }
}

impl ResponseError for BearerRefusal {
    fn status_code(&self) -> StatusCode {
        match self {
            BearerRefusal::Missing => StatusCode::UNAUTHORIZED,
            BearerRefusal::Refused(ErrorCode::InvalidRequest, _) => StatusCode::BAD_REQUEST,
            BearerRefusal::Refused(ErrorCode::InsufficientScope, _) => StatusCode::FORBIDDEN,
            BearerRefusal::Refused(..) => StatusCode::UNAUTHORIZED,
            BearerRefusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            BearerRefusal::Missing => response
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"tessera\""))
                .finish(),
            BearerRefusal::Refused(code, description) => {
                // The description is ours and plain text; quotes would end the
                // auth-param early, so they are left out.
                let quoted = description.replace(['"', '\\'], "");
                let challenge = format!(
                    "Bearer realm=\"tessera\", error=\"{}\", error_description=\"{quoted}\"",
                    code.as_str()
                );
                response
                    .insert_header((header::WWW_AUTHENTICATE, challenge))
                    .json(ErrorBody {
                        error: code.as_str(),
                        error_description: description,
                    })
            }
            BearerRefusal::Unavailable => OAuthError::unavailable().error_response(),
        }
    }
}

/// A grant's refusal, in the code it carries.
impl From<TokenError> for OAuthError {
    fn from(refusal: TokenError) -> Self {
        let mut error = OAuthError::new(refusal.code(), refusal.to_string());
        if let TokenError::Throttled(wait) = refusal {
            error.retry_after = Some(wait);
        }
        error
    }
}

/// RFC 7591 §3.2.2 and RFC 7592 answers of the registration endpoints: metadata
/// errors in the one JSON shape, a bad registration access token as a Bearer
/// challenge.
impl ResponseError for RegistrationError {
    fn status_code(&self) -> StatusCode {
        match self {
            RegistrationError::InvalidRedirectUri(_)
            | RegistrationError::InvalidClientMetadata(_) => StatusCode::BAD_REQUEST,
            RegistrationError::InvalidToken => StatusCode::UNAUTHORIZED,
            RegistrationError::Storage(_) | RegistrationError::Random(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let refused = |code, description: &str| ApiError::Refused {
            status: StatusCode::BAD_REQUEST,
            code,
            description: description.to_owned(),
        };
        match self {
            RegistrationError::InvalidRedirectUri(why) => {
                refused(ErrorCode::InvalidRedirectUri, why).error_response()
            }
            RegistrationError::InvalidClientMetadata(why) => {
                refused(ErrorCode::InvalidClientMetadata, why).error_response()
            }
            RegistrationError::InvalidToken => BearerRefusal::new(
                ErrorCode::InvalidToken,
                "the access token is missing, unknown or expired",
            )
            .error_response(),
            RegistrationError::Storage(_) | RegistrationError::Random(_) => {
                tracing::error!("client registration failed: {self}");
                OAuthError::unavailable().error_response()
            }
        }
    }
}

/// A browser-side failure met by a JSON endpoint (the passkey scripts'): the
/// same cause, in the JSON shape.
impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::Unavailable => ApiError::Unavailable("try again in a moment".into()),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

/// How a passkey ceremony's refusal reads to the page's script.
impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        use PasskeyError as E;
        let description = e.to_string();
        match e {
            E::CeremonyExpired
            | E::Rejected(_)
            | E::NotVerified
            | E::InvalidEmail
            | E::InvalidName => ApiError::refused(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                description,
            ),
            E::UnknownCredential | E::CounterRegression | E::Disabled => ApiError::refused(
                StatusCode::UNAUTHORIZED,
                ErrorCode::AccessDenied,
                description,
            ),
            E::EmailTaken | E::LastWayIn => {
                ApiError::refused(StatusCode::CONFLICT, ErrorCode::Conflict, description)
            }
            E::NotFound => ApiError::NotFound,
            E::Storage(_) | E::Cache(_) => {
                tracing::error!("passkey ceremony failed: {e}");
                ApiError::Unavailable("try again in a moment".into())
            }
            E::Internal(_) => {
                tracing::error!("passkey ceremony failed: {e}");
                ApiError::Internal
            }
        }
    }
}

/// A JSON API's refusal (passkey scripts, registration management, the router's
/// own refusals), with one body shape, `{"error": "...", "error_description":
/// "..."}` — the RFC 6749 §5.2 shape, so OAuth and non-OAuth endpoints read the
/// same to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    /// A refusal with its own status and error code, e.g. `403 login_required`.
    #[error("{description}")]
    Refused {
        status: StatusCode,
        code: ErrorCode,
        description: String,
    },
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl ApiError {
    /// A refusal with its own status and code.
    pub fn refused(status: StatusCode, code: ErrorCode, description: impl Into<String>) -> Self {
        ApiError::Refused {
            status,
            code,
            description: description.into(),
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::BadRequest(_) => ErrorCode::InvalidRequest,
            ApiError::Unavailable(_) => ErrorCode::TemporarilyUnavailable,
            ApiError::Refused { code, .. } => *code,
            ApiError::Internal => ErrorCode::ServerError,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused { status, .. } => *status,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Internal details are logged where they happen, never sent.
        let description = match self {
            ApiError::Internal => None,
            other => Some(other.to_string()),
        };
        HttpResponse::build(self.status_code()).json(ApiErrorBody {
            error: self.code().as_str(),
            error_description: description.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_has_its_status_and_headers() {
        let client = OAuthError::new(ErrorCode::InvalidClient, "x").error_response();
        assert_eq!(client.status(), 401);
        assert!(client.headers().contains_key(header::WWW_AUTHENTICATE));
        let busy = OAuthError::unavailable().error_response();
        assert_eq!(busy.status(), 503);
        assert!(busy.headers().contains_key(header::RETRY_AFTER));
        let grant = OAuthError::new(ErrorCode::InvalidGrant, "x").error_response();
        assert_eq!(grant.status(), 400);
        assert_eq!(grant.headers().get(header::PRAGMA).unwrap(), "no-cache");
    }
}
