//! The glue between oxide-auth's protocol state machines and our primitives: the
//! request adapters and the per-request endpoint handlers.

use std::borrow::Cow;

use oxide_auth::code_grant::accesstoken::Authorization;
use oxide_auth_async::code_grant::{access_token, authorization, client_credentials, refresh};
use oxide_auth_async::primitives::{Authorizer, Issuer, Registrar};

use super::clients::ClientRegistry;
use super::codes::CodeStore;
use super::extensions::{AuthorizationChecks, TokenChecks};
use super::tokens::TokenIssuer;

/// Request parameters with every name present at most once (RFC 6749 §3.1: a
/// repeated parameter makes the request invalid).
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

/// The largest number of parameters an OAuth request may carry.
const MAX_PARAMS: usize = 64;

impl Params {
    /// Fails with the first repeated name.
    pub fn unique(pairs: Vec<(String, String)>) -> Result<Self, String> {
        if pairs.len() > MAX_PARAMS {
            return Err("too many parameters".to_owned());
        }
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("parameter `{name}` is repeated"));
            }
        }
        Ok(Self(pairs))
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The parameters without `name`, for re-sending a request.
    pub fn without(&self, names: &[&str]) -> Params {
        Params(
            self.0
                .iter()
                .filter(|(n, _)| !names.contains(&n.as_str()))
                .cloned()
                .collect(),
        )
    }

    pub fn with(mut self, name: &str, value: &str) -> Params {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn to_query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }
}

/// An authorization request as oxide-auth reads it.
pub struct AuthorizationRequest<'a>(pub &'a Params);

impl oxide_auth::code_grant::authorization::Request for AuthorizationRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        self.0.get("client_id").map(Cow::Borrowed)
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.0.get("scope").map(Cow::Borrowed)
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.0.get("redirect_uri").map(Cow::Borrowed)
    }
    fn state(&self) -> Option<Cow<'_, str>> {
        self.0.get("state").map(Cow::Borrowed)
    }
    fn response_type(&self) -> Option<Cow<'_, str>> {
        self.0.get("response_type").map(Cow::Borrowed)
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.0.get(key).map(Cow::Borrowed)
    }
}

/// A token request as oxide-auth reads it: client credentials come from HTTP Basic
/// (`client_secret_basic`) or the body (`client_secret_post`), never both.
pub struct TokenRequest<'a> {
    pub params: &'a Params,
    pub basic: Option<(String, Vec<u8>)>,
}

impl oxide_auth::code_grant::accesstoken::Request for TokenRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        self.params.get("code").map(Cow::Borrowed)
    }
    fn authorization(&self) -> Authorization<'_> {
        match &self.basic {
            Some((user, pass)) => {
                Authorization::UsernamePassword(Cow::Borrowed(user), Cow::Borrowed(pass))
            }
            None => Authorization::None,
        }
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        self.params.get("client_id").map(Cow::Borrowed)
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.params.get("redirect_uri").map(Cow::Borrowed)
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.params.get("grant_type").map(Cow::Borrowed)
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.params.get(key).map(Cow::Borrowed)
    }
    fn allow_credentials_in_body(&self) -> bool {
        true
    }
}

/// A refresh request as oxide-auth reads it. Client credentials were checked
/// before the flow; they are passed on so oxide-auth binds the token to the client.
pub struct RefreshRequest<'a> {
    pub params: &'a Params,
    pub credentials: Option<(String, Vec<u8>)>,
}

impl oxide_auth::code_grant::refresh::Request for RefreshRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn refresh_token(&self) -> Option<Cow<'_, str>> {
        self.params.get("refresh_token").map(Cow::Borrowed)
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.params.get("scope").map(Cow::Borrowed)
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.params.get("grant_type").map(Cow::Borrowed)
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        self.credentials
            .as_ref()
            .map(|(id, secret)| (Cow::Borrowed(id.as_str()), Cow::Borrowed(secret.as_slice())))
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.params.get(key).map(Cow::Borrowed)
    }
}

/// A client_credentials request as oxide-auth reads it; the client was
/// authenticated before the flow and its credentials are passed on.
pub struct ClientCredentialsRequest<'a> {
    pub params: &'a Params,
    pub credentials: (String, Vec<u8>),
}

impl oxide_auth::code_grant::client_credentials::Request for ClientCredentialsRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        Some((
            Cow::Borrowed(&self.credentials.0),
            Cow::Borrowed(&self.credentials.1),
        ))
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.params.get("scope").map(Cow::Borrowed)
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.params.get("grant_type").map(Cow::Borrowed)
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.params.get(key).map(Cow::Borrowed)
    }
}

/// Everything one client_credentials request touches. It issues no codes, but
/// oxide-auth's endpoint shape asks for an authorizer.
pub struct ClientCredentialsExchange {
    pub registry: ClientRegistry,
    pub codes: CodeStore,
    pub issuer: TokenIssuer,
    /// This grant carries no extension data (`()` is oxide-auth's empty extension).
    pub no_extension: (),
}

impl client_credentials::Endpoint for ClientCredentialsExchange {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registry
    }
    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.codes
    }
    fn issuer(&mut self) -> &mut (dyn Issuer + Send) {
        &mut self.issuer
    }
    fn extension(&mut self) -> &mut (dyn client_credentials::Extension + Send) {
        &mut self.no_extension
    }
}

/// Everything one refresh_token request touches.
pub struct RefreshExchange {
    pub registry: ClientRegistry,
    pub issuer: TokenIssuer,
}

impl refresh::Endpoint for RefreshExchange {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registry
    }
    fn issuer(&mut self) -> &mut (dyn Issuer + Send) {
        &mut self.issuer
    }
}

/// Everything one authorization request touches.
pub struct AuthorizationFlow {
    pub registry: ClientRegistry,
    pub codes: CodeStore,
    pub checks: AuthorizationChecks,
}

impl authorization::Endpoint for AuthorizationFlow {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registry
    }
    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.codes
    }
    fn extension(&mut self) -> &mut (dyn authorization::Extension + Send) {
        &mut self.checks
    }
}

/// Everything one authorization_code token request touches.
pub struct CodeExchange {
    pub registry: ClientRegistry,
    pub codes: CodeStore,
    pub issuer: TokenIssuer,
    pub checks: TokenChecks,
}

impl access_token::Endpoint for CodeExchange {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registry
    }
    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.codes
    }
    fn issuer(&mut self) -> &mut (dyn Issuer + Send) {
        &mut self.issuer
    }
    fn extension(&mut self) -> &mut (dyn access_token::Extension + Send) {
        &mut self.checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Params::unique(pairs(&[("a", "1"), ("b", "2"), ("a", "3")])).unwrap_err();
        assert!(err.contains("`a`"));
        let ok = Params::unique(pairs(&[("a", "1"), ("b", "")])).unwrap();
        assert_eq!(ok.get("a"), Some("1"));
        assert_eq!(ok.get("b"), None, "empty means absent");
    }
}
