//! OAuth 2.1: the protocol's rules, free of HTTP. [`authorize`] decides what an
//! authorization request gets, [`grants`] what a token request gets; both
//! answer in the codes of [`error`], which `http::error` turns into responses.
//! Codes live in the cache ([`codes`]), refresh tokens in the database
//! ([`refresh`]), and access tokens are signed by the key ring ([`tokens`]).

pub mod access;
pub mod authorize;
pub mod client_auth;
pub mod clients;
pub mod codes;
pub mod consent;
pub mod error;
pub mod grants;
pub mod params;
pub mod pkce;
pub mod refresh;
pub mod registration;
pub mod revocation;
pub mod tokens;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The browser session behind a grant: what `auth_time`, `amr` and `sid` report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionContext {
    pub session_id: Uuid,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    /// The upstream provider the session signed in through (`idp` claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

/// base64url SHA-256, the form in which secrets and codes are stored and looked up.
pub fn digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// The scopes this server itself defines (OpenID Connect and organizations): what
/// discovery lists and what a client may register for itself. An API's own
/// scopes are not among them.
pub const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    "org",
    "orgs",
];

/// The longest `nonce` accepted (it is echoed into the id_token); generous for any
/// real client (node-oidc-provider and Hydra clients use a few dozen characters).
pub const MAX_NONCE: usize = 512;

/// A scope string as a sorted, de-duplicated list.
pub fn scope_list(scope: &str) -> Vec<String> {
    let mut items: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    items.sort();
    items.dedup();
    items
}
