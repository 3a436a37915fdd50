//! OAuth 2.1 on oxide-auth: its protocol state machines (from `oxide-auth-async`)
//! drive authorization and token requests, and the primitives they call —
//! [`clients::ClientRegistry`], [`codes::CodeStore`], [`tokens::TokenIssuer`] — are
//! backed by our database, cache and key ring.

pub mod clients;
pub mod codes;
pub mod consent;
pub mod extensions;
pub mod flows;
pub mod refresh;
pub mod registration;
pub mod revocation;
pub mod tokens;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// base64url SHA-256, the form in which secrets and codes are stored and looked up.
pub fn digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// A scope string as a sorted, de-duplicated list.
pub fn scope_list(scope: &str) -> Vec<String> {
    let mut items: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    items.sort();
    items.dedup();
    items
}
