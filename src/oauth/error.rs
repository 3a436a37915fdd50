//! The refusals of the token endpoint's grants. Each carries its RFC 6749 §5.2
//! code ([`ErrorCode`]); `http::error` decides only how a code travels (status,
//! headers, body).

use crate::error::ErrorCode;

/// Why a grant at the token endpoint issued nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A required parameter is missing or malformed.
    #[error("{0}")]
    Malformed(&'static str),
    #[error("the code is invalid or expired")]
    CodeInvalid,
    /// RFC 6749 §4.1.2: what the code issued has been revoked.
    #[error("the code was already used; tokens issued from it are revoked")]
    CodeReplayed,
    #[error("the code was issued to another client or redirect_uri, or has expired")]
    CodeMismatch,
    #[error("code_verifier is required")]
    VerifierMissing,
    #[error("code_verifier must be 43 to 128 unreserved characters")]
    VerifierMalformed,
    /// RFC 7636 §4.6: an invalid grant, not a malformed request.
    #[error("code_verifier does not match the code_challenge")]
    VerifierMismatch,
    /// RFC 8707 §2: a resource this server issues no tokens for.
    #[error("the resource is not one this server issues tokens for")]
    UnknownResource,
    /// RFC 8707 §2.2: the token request named a resource the grant did not cover.
    #[error("the resource differs from the one authorized")]
    ResourceNotGranted,
    #[error("the refresh token is invalid, expired or revoked")]
    RefreshInvalid,
    #[error("the refresh token was issued to another client")]
    RefreshWrongClient,
    /// RFC 9700 §4.14.2: every token descended from it is revoked.
    #[error("the refresh token was already used; every token descended from it is revoked")]
    RefreshReused,
    /// RFC 6749 §6: a refresh may narrow the scope, never widen it.
    #[error("a refresh may narrow the scope, never widen it")]
    ScopeWidened,
    /// RFC 6749 §3.3: nothing the client asked for is the client's to have.
    #[error("none of the requested scopes is available to this client")]
    NoScope,
    #[error("the scope contains characters RFC 6749 §3.3 does not allow")]
    ScopeMalformed,
    #[error("the user is no longer a member of the organization this grant was made in")]
    MembershipGone,
    /// Switching organization on a refresh needs a grant that includes `org` or `orgs`.
    #[error("organization_id needs a grant that includes the org or orgs scope")]
    SwitchNotGranted,
    /// Switching to an organization the person is not (now) a member of.
    #[error("the user is not a member of the organization named by organization_id")]
    SwitchNotMember,
    /// A client acting for itself has no organization to switch.
    #[error("only tokens a person granted can switch organization")]
    SwitchNotAPerson,
    #[error("the account this grant was made for is disabled")]
    AccountDisabled,
    /// Only confidential clients act for themselves (RFC 6749 §4.4).
    #[error("a public client cannot act for itself")]
    PublicClientForItself,
    /// RFC 8693 §2.2.2: an unknown, revoked or expired personal access token.
    #[error("the subject_token is not a valid personal access token")]
    SubjectTokenInvalid,
    /// The organization named is not one the personal access token may act in.
    /// RFC 8693 §2.2.2: an unacceptable subject_token is `invalid_request`.
    #[error("the subject_token is not an acceptable id_token: {0}")]
    SubjectIdToken(String),
    #[error("{0}")]
    UnknownProvider(String),
    /// A provider's id_token for an account that is not connected to it.
    #[error("{0}")]
    NotConnected(String),
    #[error("organization_id is not an organization this token may act in")]
    OrganizationNotAllowed,
    /// Too many failed attempts from this address (seconds to wait).
    #[error("too many failed attempts from this address; try again in {0} s")]
    Throttled(u64),
    /// Storage, the cache or the key ring failed; the cause is logged where it
    /// happened.
    #[error("try again shortly")]
    Unavailable,
}

impl TokenError {
    /// The RFC 6749 §5.2 (RFC 7636 §4.6, RFC 8707 §2) code this refusal is.
    pub const fn code(&self) -> ErrorCode {
        use TokenError as E;
        match self {
            E::Malformed(_)
            | E::VerifierMissing
            | E::VerifierMalformed
            | E::SubjectTokenInvalid
            | E::SubjectIdToken(_)
            | E::UnknownProvider(_)
            | E::NotConnected(_)
            | E::OrganizationNotAllowed => ErrorCode::InvalidRequest,
            E::Throttled(_) => ErrorCode::TemporarilyUnavailable,
            E::CodeInvalid
            | E::CodeReplayed
            | E::CodeMismatch
            | E::VerifierMismatch
            | E::RefreshInvalid
            | E::RefreshWrongClient
            | E::RefreshReused
            | E::MembershipGone
            | E::SwitchNotGranted
            | E::SwitchNotMember
            | E::SwitchNotAPerson
            | E::AccountDisabled => ErrorCode::InvalidGrant,
            E::UnknownResource | E::ResourceNotGranted => ErrorCode::InvalidTarget,
            E::ScopeWidened | E::NoScope | E::ScopeMalformed => ErrorCode::InvalidScope,
            E::PublicClientForItself => ErrorCode::UnauthorizedClient,
            E::Unavailable => ErrorCode::TemporarilyUnavailable,
        }
    }

    /// Logs `cause` and stands for it: the client hears only "try again".
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!("{what}: {cause}");
        TokenError::Unavailable
    }
}
