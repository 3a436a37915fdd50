//! Registered clients: their typed vocabulary, the rules of their metadata, and
//! the row ↔ [`Client`] mapping.

use chrono::Utc;
use subtle::ConstantTimeEq;
use url::Url;
use uuid::Uuid;

use super::{digest, scope_list};
use crate::tokens::Algorithm;

/// Every grant type this server implements, in the order discovery lists them.
pub const GRANT_TYPES: &[&str] = &[
    GrantType::AuthorizationCode.as_str(),
    GrantType::RefreshToken.as_str(),
    GrantType::ClientCredentials.as_str(),
    GrantType::TokenExchange.as_str(),
];

/// A grant type this server implements (RFC 6749 §4.1, §4.4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8693, for a native app's id_token from an upstream provider (a
    /// personal access token needs no client, hence no registration).
    TokenExchange,
}

impl GrantType {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    /// The grant type a request or registration names; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        [
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
            GrantType::TokenExchange,
        ]
        .into_iter()
        .find(|g| g.as_str() == name)
    }
}

impl serde::Serialize for GrantType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2
/// `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: no secret.
    None,
}

impl AuthMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::None,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AuthMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("redirect URI `{0}`: {1}")]
    InvalidRedirectUri(String, &'static str),
    #[error("a client needs a name of 1 to 200 characters")]
    InvalidName,
    #[error("unsupported grant type `{0}`")]
    UnsupportedGrantType(String),
    #[error("the authorization_code grant needs at least one redirect URI")]
    NoRedirectUri,
    #[error("public clients cannot use client_credentials")]
    PublicClientCredentials,
    #[error("a service account is a confidential client with the client_credentials grant only")]
    ServiceAccount,
    #[error("backchannel_logout_uri `{0}`: {1}")]
    InvalidBackchannelUri(String, &'static str),
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("randomness: {0}")]
    Random(String),
}

/// A client, parsed from its row.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub(crate) secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scope: Vec<String>,
    pub native: bool,
    pub first_party: bool,
    pub id_token_alg: Algorithm,
    pub post_logout_redirect_uris: Vec<String>,
    pub org_optional: bool,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub contacts: Vec<String>,
    pub auth_method: AuthMethod,
    /// Registered itself (RFC 7591) rather than by an operator.
    pub self_registered: bool,
    pub(crate) registration_token_hash: Option<String>,
    /// The API its tokens are for when a request names none.
    pub default_resource: Option<String>,
    /// The API (audience) whose tokens it may introspect: it is that API's server.
    pub introspect_for: Option<String>,
    /// An organization service account: the organization it acts for, and its
    /// role there.
    pub service: Option<(Uuid, crate::orgs::Role)>,
    /// The secret replaced by a rotation, still accepted until the time given.
    pub(crate) previous_secret: Option<(String, chrono::DateTime<Utc>)>,
    /// OIDC Back-Channel Logout 1.0: where logout tokens go when a session it
    /// received tokens from ends.
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub created_at: chrono::DateTime<Utc>,
}

impl Client {
    /// A confidential client (secret `s3cret`) for the code flow, for tests.
    #[cfg(test)]
    pub(crate) fn example(uris: &[&str], native: bool) -> Client {
        Client {
            client_id: "c".into(),
            name: "App".into(),
            secret_hash: Some(digest("s3cret")),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            grant_types: vec![GrantType::AuthorizationCode],
            scope: scope_list("openid profile"),
            native,
            first_party: false,
            id_token_alg: Algorithm::Rs256,
            post_logout_redirect_uris: Vec::new(),
            org_optional: false,
            client_uri: None,
            logo_uri: None,
            contacts: Vec::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            self_registered: false,
            registration_token_hash: None,
            default_resource: None,
            introspect_for: None,
            service: None,
            previous_secret: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            created_at: Utc::now(),
        }
    }

    /// Checks an RFC 7592 registration access token in constant time; clients an
    /// operator created have none.
    pub fn registration_token_matches(&self, presented: &str) -> bool {
        self.registration_token_hash
            .as_deref()
            .is_some_and(|stored| bool::from(digest(presented).as_bytes().ct_eq(stored.as_bytes())))
    }

    /// Public clients (`token_endpoint_auth_method: none`) have no secret.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }

    /// Exact string comparison against the registered URIs (RFC 9700 §4.1.3); for
    /// native clients a loopback URI matches with any port (RFC 8252 §7.3).
    pub fn redirect_allowed(&self, requested: &str) -> bool {
        if self.redirect_uris.iter().any(|r| r == requested) {
            return true;
        }
        if !self.native {
            return false;
        }
        let Ok(asked) = Url::parse(requested) else {
            return false;
        };
        if asked.scheme() != "http" || !is_loopback_ip(&asked) {
            return false;
        }
        self.redirect_uris.iter().any(|registered| {
            Url::parse(registered).is_ok_and(|mut r| {
                let mut a = asked.clone();
                let (_, _) = (r.set_port(None), a.set_port(None));
                r.scheme() == "http" && is_loopback_ip(&r) && r == a
            })
        })
    }

    /// Checks a presented secret in constant time; public clients must present
    /// none. After a rotation the previous secret is accepted until its grace
    /// period ends, so a service can roll out the new one without an outage.
    pub fn authenticates(&self, secret: Option<&[u8]>) -> bool {
        let matches = |stored: &str, given: &[u8]| {
            std::str::from_utf8(given)
                .is_ok_and(|given| bool::from(digest(given).as_bytes().ct_eq(stored.as_bytes())))
        };
        match (&self.secret_hash, secret) {
            (None, None) => true,
            (Some(stored), Some(given)) => {
                matches(stored, given)
                    || self
                        .previous_secret
                        .as_ref()
                        .is_some_and(|(old, until)| *until > Utc::now() && matches(old, given))
            }
            _ => false,
        }
    }

    /// The requested scopes this client may have (unknown ones are ignored, as OIDC
    /// Core §3.1.2.1 and RFC 6749 §3.3 allow); `None` asks for all of its scopes.
    pub fn negotiate_scope(&self, requested: Option<&str>) -> Vec<String> {
        match requested {
            None => self.scope.clone(),
            // `org:{uuid}` names one organization; it is allowed wherever `org` is.
            Some(asked) => scope_list(asked)
                .into_iter()
                .filter(|s| {
                    self.scope.contains(s)
                        || (s.starts_with("org:") && self.scope.iter().any(|c| c == "org"))
                })
                .collect(),
        }
    }
}

fn is_loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// What an operator or dynamic registration asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scope: String,
    pub first_party: bool,
    pub native: bool,
    pub id_token_alg: Algorithm,
    pub post_logout_redirect_uris: Vec<String>,
    /// See [`Client::org_optional`].
    pub org_optional: bool,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub contacts: Vec<String>,
    /// How it authenticates at the token endpoint; `None` is a public client.
    pub auth_method: AuthMethod,
    /// The API its tokens are for when a request names none (an operator's
    /// choice; checked against the registered APIs by the caller).
    pub default_resource: Option<String>,
    /// See [`Client::introspect_for`].
    pub introspect_for: Option<String>,
    /// See [`Client::service`].
    pub service: Option<(Uuid, crate::orgs::Role)>,
    /// See [`Client::backchannel_logout_uri`].
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
}

impl Default for NewClient {
    fn default() -> Self {
        Self {
            name: String::new(),
            redirect_uris: Vec::new(),
            grant_types: vec![GrantType::AuthorizationCode],
            scope: "openid profile email offline_access".to_owned(),
            first_party: false,
            native: false,
            id_token_alg: Algorithm::Rs256,
            post_logout_redirect_uris: Vec::new(),
            org_optional: false,
            client_uri: None,
            logo_uri: None,
            contacts: Vec::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            default_resource: None,
            introspect_for: None,
            service: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
        }
    }
}

impl NewClient {
    pub fn is_public(&self) -> bool {
        self.auth_method == AuthMethod::None
    }
}

/// Which redirect URIs a client may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectRules {
    /// An operator knows what they register: https, or http on a loopback host.
    Operator,
    /// Dynamic registration (RFC 8252, RFC 9700 §4.1): web clients https only
    /// (http on localhost/loopback when the development setting allows it);
    /// native clients a loopback IP with any port, a private-use scheme, or https.
    Registration { allow_http_localhost: bool },
}

pub fn check_redirect_uri(
    uri: &str,
    native: bool,
    rules: RedirectRules,
) -> Result<(), ClientError> {
    let bad = |why| ClientError::InvalidRedirectUri(uri.to_owned(), why);
    let url = Url::parse(uri).map_err(|_| bad("not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    if uri.contains('*') {
        return Err(bad("wildcards are not allowed"));
    }
    if uri.len() > 2000 {
        return Err(bad("is longer than 2000 characters"));
    }
    let loopback = is_loopback_ip(&url) || url.host_str() == Some("localhost");
    let http_allowed = match rules {
        RedirectRules::Operator => loopback,
        // RFC 8252 §8.3: loopback by IP literal, not `localhost`.
        RedirectRules::Registration { .. } if native => is_loopback_ip(&url),
        RedirectRules::Registration {
            allow_http_localhost,
        } => allow_http_localhost && loopback,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if http_allowed => Ok(()),
        "http" if native => Err(bad("native clients use http only on 127.0.0.1 or [::1]")),
        "http" => Err(bad("must use https")),
        // RFC 8252 §7.1: private-use URI schemes (reverse domain names) for native apps.
        scheme if native && scheme.contains('.') => Ok(()),
        _ if native => Err(bad(
            "use https, http on 127.0.0.1 or [::1], or a private-use scheme such as com.example.app",
        )),
        _ => Err(bad("unsupported scheme")),
    }
}

/// Checks what every client must satisfy, however it is registered.
pub fn validate(new: &NewClient, rules: RedirectRules) -> Result<(), ClientError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ClientError::InvalidName);
    }
    if new.grant_types.contains(&GrantType::AuthorizationCode) && new.redirect_uris.is_empty() {
        return Err(ClientError::NoRedirectUri);
    }
    if new.is_public() && new.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(ClientError::PublicClientCredentials);
    }
    if new.service.is_some()
        && (new.is_public() || new.grant_types != [GrantType::ClientCredentials])
    {
        return Err(ClientError::ServiceAccount);
    }
    for uri in new
        .redirect_uris
        .iter()
        .chain(&new.post_logout_redirect_uris)
    {
        check_redirect_uri(uri, new.native, rules)?;
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_backchannel_uri(uri, rules)?;
    }
    Ok(())
}

/// OIDC Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment; we
/// also require https, except on loopback where an operator (or, for
/// self-registered clients, `TESSERA_REGISTRATION_ALLOW_HTTP_LOCALHOST`) allows
/// http for development.
pub fn check_backchannel_uri(uri: &str, rules: RedirectRules) -> Result<(), ClientError> {
    let bad = |why| ClientError::InvalidBackchannelUri(uri.to_owned(), why);
    let url = Url::parse(uri).map_err(|_| bad("not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() || uri.len() > 2000 {
        return Err(bad("must be a plain URL of at most 2000 characters"));
    }
    let loopback = is_loopback_ip(&url) || url.host_str() == Some("localhost");
    let http_allowed = loopback
        && match rules {
            RedirectRules::Operator => true,
            RedirectRules::Registration {
                allow_http_localhost,
            } => allow_http_localhost,
        };
    match url.scheme() {
        "https" => Ok(()),
        "http" if http_allowed => Ok(()),
        _ => Err(bad("must use https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: &[&str], native: bool) -> Client {
        Client::example(uris, native)
    }

    #[test]
    fn grant_types_and_auth_methods_round_trip_their_names() {
        for g in GRANT_TYPES {
            assert_eq!(GrantType::parse(g).map(GrantType::as_str), Some(*g));
        }
        assert_eq!(GrantType::parse("password"), None);
        for m in ["client_secret_basic", "client_secret_post", "none"] {
            assert_eq!(AuthMethod::parse(m).map(AuthMethod::as_str), Some(m));
        }
        assert_eq!(AuthMethod::parse("private_key_jwt"), None);
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let web = client(&["https://app.example/cb"], false);
        assert!(web.redirect_allowed("https://app.example/cb"));
        for near_miss in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/CB",
            "https://app.example:443/cb",
            "https://evil.example/cb",
            "http://app.example/cb",
            "https://app.example/cb#frag",
        ] {
            assert!(!web.redirect_allowed(near_miss), "{near_miss}");
        }
    }

    #[test]
    fn native_loopback_redirects_match_any_port_but_nothing_else() {
        let native = client(
            &["http://127.0.0.1/callback", "http://[::1]/callback"],
            true,
        );
        assert!(native.redirect_allowed("http://127.0.0.1:51234/callback"));
        assert!(native.redirect_allowed("http://[::1]:8080/callback"));
        assert!(!native.redirect_allowed("http://127.0.0.1:51234/other"));
        assert!(!native.redirect_allowed("http://localhost:51234/callback"));
        assert!(!native.redirect_allowed("https://127.0.0.1:51234/callback"));
        let web = client(&["http://127.0.0.1/callback"], false);
        assert!(!web.redirect_allowed("http://127.0.0.1:51234/callback"));
    }

    #[test]
    fn secrets_are_checked_and_public_clients_present_none() {
        let confidential = client(&[], false);
        assert!(confidential.authenticates(Some(b"s3cret")));
        assert!(!confidential.authenticates(Some(b"s3cret ")));
        assert!(!confidential.authenticates(None));
        let mut public = client(&[], false);
        public.secret_hash = None;
        assert!(public.authenticates(None));
        assert!(!public.authenticates(Some(b"anything")));
    }

    #[test]
    fn scope_is_narrowed_to_what_the_client_may_have() {
        let c = client(&[], false);
        assert_eq!(
            c.negotiate_scope(Some("profile openid admin")),
            vec!["openid", "profile"]
        );
        assert!(c.negotiate_scope(Some("admin")).is_empty());
        assert_eq!(c.negotiate_scope(None), vec!["openid", "profile"]);
    }

    #[test]
    fn redirect_uri_registration_rules() {
        let op = RedirectRules::Operator;
        assert!(check_redirect_uri("https://app.example/cb", false, op).is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/cb", true, op).is_ok());
        assert!(check_redirect_uri("com.example.app:/cb", true, op).is_ok());
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "https://u:p@app.example/",
            "https://*.example/cb",
            "not a url",
            "com.example.app:/cb",
        ] {
            assert!(check_redirect_uri(bad, false, op).is_err(), "{bad}");
        }
    }

    #[test]
    fn self_registered_clients_get_the_stricter_rules() {
        let strict = RedirectRules::Registration {
            allow_http_localhost: false,
        };
        let dev = RedirectRules::Registration {
            allow_http_localhost: true,
        };
        // Web: https only, unless the development setting allows local http.
        assert!(check_redirect_uri("https://app.example/cb", false, strict).is_ok());
        assert!(check_redirect_uri("http://localhost:3000/cb", false, strict).is_err());
        assert!(check_redirect_uri("http://127.0.0.1:3000/cb", false, strict).is_err());
        assert!(check_redirect_uri("http://localhost:3000/cb", false, dev).is_ok());
        assert!(check_redirect_uri("http://app.example/cb", false, dev).is_err());
        // Native: loopback by IP literal, a private-use scheme, or https.
        assert!(check_redirect_uri("http://127.0.0.1/cb", true, strict).is_ok());
        assert!(check_redirect_uri("http://[::1]:8400/cb", true, strict).is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth", true, strict).is_ok());
        assert!(check_redirect_uri("https://app.example/cb", true, strict).is_ok());
        assert!(check_redirect_uri("http://localhost/cb", true, strict).is_err());
        assert!(check_redirect_uri("myapp:/cb", true, strict).is_err());
        let long = format!("https://app.example/{}", "a".repeat(2000));
        assert!(check_redirect_uri(&long, false, strict).is_err());
    }
}
