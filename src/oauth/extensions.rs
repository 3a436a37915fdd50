//! Request extensions around oxide-auth's flows: PKCE (RFC 7636, `S256` only and
//! required for every client) and the OpenID Connect `nonce`. Each records why it
//! refused, so the answer can say precisely what was wrong.

use async_trait::async_trait;
use oxide_auth::code_grant::accesstoken::Request as TokenRequest;
use oxide_auth::code_grant::authorization::Request as AuthorizationRequest;
use oxide_auth::frontends::simple::extensions::Pkce;
use oxide_auth::primitives::grant::{Extensions, Value};

use super::codes::{EXT_NONCE, EXT_RESOURCE};

/// RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

use super::MAX_NONCE;

/// Applied to authorization requests.
pub struct AuthorizationChecks {
    pkce: Pkce,
    /// The RFC 8707 resource the request asked for, already checked as allowed.
    pub resource: Option<String>,
    pub refusal: Option<&'static str>,
}

impl Default for AuthorizationChecks {
    fn default() -> Self {
        Self {
            // Required, and `plain` stays off: OAuth 2.1 §4.1.1, RFC 9700 §2.1.1.
            pkce: Pkce::required(),
            resource: None,
            refusal: None,
        }
    }
}

#[async_trait]
impl oxide_auth_async::code_grant::authorization::Extension for AuthorizationChecks {
    async fn extend(
        &mut self,
        request: &(dyn AuthorizationRequest + Sync),
    ) -> Result<Extensions, ()> {
        let challenge = request.extension("code_challenge");
        let method = request.extension("code_challenge_method");
        let refuse = |this: &mut Self, why| {
            this.refusal = Some(why);
            Err(())
        };
        let Some(challenge) = challenge else {
            return refuse(self, "code_challenge is required (PKCE with S256)");
        };
        if method.as_deref() != Some("S256") {
            return refuse(self, "code_challenge_method must be S256");
        }
        // S256 challenges are base64url SHA-256 digests: exactly 43 characters.
        if challenge.len() != 43 || !is_pkce_string(&challenge) {
            return refuse(self, "code_challenge is not a base64url SHA-256 digest");
        }
        let mut extensions = Extensions::new();
        match self.pkce.challenge(method, Some(challenge)) {
            Ok(Some(value)) => extensions.set(&self.pkce, value),
            _ => return refuse(self, "code_challenge is invalid"),
        }
        if let Some(nonce) = request.extension("nonce") {
            if nonce.len() > MAX_NONCE {
                return refuse(self, "nonce is too long");
            }
            extensions.set_raw(
                EXT_NONCE.to_owned(),
                Value::private(Some(nonce.into_owned())),
            );
        }
        if let Some(resource) = &self.resource {
            extensions.set_raw(
                EXT_RESOURCE.to_owned(),
                Value::private(Some(resource.clone())),
            );
        }
        Ok(extensions)
    }
}

/// Applied to token requests for the authorization_code grant.
pub struct TokenChecks {
    pkce: Pkce,
    /// The RFC 8707 resource named at the token endpoint, if any.
    pub resource: Option<String>,
    pub refusal: Option<TokenRefusal>,
}

/// Why a token request failed the checks its code carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("code_verifier is required")]
    VerifierMissing,
    #[error("code_verifier must be 43 to 128 unreserved characters")]
    VerifierMalformed,
    /// RFC 7636 §4.6: an invalid grant, not a malformed request.
    #[error("code_verifier does not match the code_challenge")]
    VerifierMismatch,
    /// RFC 8707 §2.2: the token request named a resource the grant did not cover.
    #[error("the resource differs from the one authorized")]
    ResourceNotGranted,
}

impl Default for TokenChecks {
    fn default() -> Self {
        Self {
            pkce: Pkce::required(),
            resource: None,
            refusal: None,
        }
    }
}

#[async_trait]
impl oxide_auth_async::code_grant::access_token::Extension for TokenChecks {
    async fn extend(
        &mut self,
        request: &(dyn TokenRequest + Sync),
        mut data: Extensions,
    ) -> Result<Extensions, ()> {
        let verifier = request.extension("code_verifier");
        let Some(verifier) = verifier else {
            self.refusal = Some(TokenRefusal::VerifierMissing);
            return Err(());
        };
        if !is_pkce_string(&verifier) {
            self.refusal = Some(TokenRefusal::VerifierMalformed);
            return Err(());
        }
        let challenge = data.remove(&self.pkce);
        if self.pkce.verify(challenge, Some(verifier)).is_err() {
            self.refusal = Some(TokenRefusal::VerifierMismatch);
            return Err(());
        }
        // RFC 8707 §2.2: the token request may name the authorized resource, not another.
        let authorized = data
            .private()
            .find(|(k, _)| *k == EXT_RESOURCE)
            .and_then(|(_, v)| v.map(str::to_owned));
        if let (Some(asked), Some(granted)) = (&self.resource, &authorized)
            && asked != granted
        {
            self.refusal = Some(TokenRefusal::ResourceNotGranted);
            return Err(());
        }
        if let (Some(_), None) = (&self.resource, &authorized) {
            self.refusal = Some(TokenRefusal::ResourceNotGranted);
            return Err(());
        }
        // Everything else recorded at authorization travels on to the issuer.
        let mut carried = Extensions::new();
        for (k, v) in data.private() {
            carried.set_raw(k.to_owned(), Value::private(v.map(str::to_owned)));
        }
        Ok(carried)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_strings_follow_rfc7636() {
        assert!(is_pkce_string(&"a".repeat(43)));
        assert!(is_pkce_string(&"A-._~9".repeat(10)));
        assert!(!is_pkce_string(&"a".repeat(42)));
        assert!(!is_pkce_string(&"a".repeat(129)));
        assert!(!is_pkce_string(&format!("{}+", "a".repeat(43))));
    }
}
