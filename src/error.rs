//! The error codes Tessera answers with, spelled once. How each travels (status,
//! headers, body shape) is decided in `http::error`.

/// Every error code Tessera answers with: RFC 6749 §4.1.2.1 and §5.2, RFC 6750
/// §3.1, RFC 7591 §3.2.2, RFC 8707 §2, RFC 9101 and OIDC Core §3.1.2.6 codes, and
/// the JSON API's own (after `RequestUriNotSupported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    InvalidToken,
    InsufficientScope,
    TemporarilyUnavailable,
    LoginRequired,
    InteractionRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    ServerError,
    InvalidRedirectUri,
    InvalidClientMetadata,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// `If-Match` named another version of the resource (RFC 9110 §13.1.1).
    PreconditionFailed,
    TooManyRequests,
    InvalidCsrfToken,
    PasskeysUnavailable,
    SignupClosed,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::ServerError => "server_error",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::InvalidCsrfToken => "invalid_csrf_token",
            ErrorCode::PasskeysUnavailable => "passkeys_unavailable",
            ErrorCode::SignupClosed => "signup_closed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
