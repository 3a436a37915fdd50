//! The HTTP error boundary. Every JSON API error leaves through [`ApiError`], with
//! one body shape, `{"error": "...", "error_description": "..."}` — the RFC 6749
//! §5.2 shape, so OAuth and non-OAuth endpoints read the same to a client.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

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
        code: &'static str,
        description: String,
    },
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl ApiError {
    /// A refusal with its own status and code.
    pub fn refused(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        ApiError::Refused {
            status,
            code,
            description: description.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Unavailable(_) => "temporarily_unavailable",
            ApiError::Refused { code, .. } => code,
            ApiError::Internal => "server_error",
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
        let mut response = HttpResponse::build(self.status_code()).json(ErrorBody {
            error: self.code(),
            error_description: description.as_deref(),
        });
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
