//! `tessera-guard`: protect an actix-web API with Tessera's access tokens.
//!
//! ```ignore
//! let guard = Guard::discover(GuardConfig::new("https://id.example.com", "https://api.example.com")).await?;
//! App::new()
//!     .app_data(web::Data::new(guard))
//!     .route("/orders", web::get().to(|access: Access| async move {
//!         format!("orders of {}", access.org_id)
//!     }))
//! ```
//!
//! An `Access` extractor answers for the handler:
//! - `401` + `WWW-Authenticate: Bearer error="invalid_token"` when the token is
//!   missing, malformed, expired, not yet valid, badly signed, of another issuer or
//!   audience, not an access token (`typ: at+jwt`), or not ES256 (`alg: none` and
//!   every other algorithm are refused);
//! - `403` + `error="insufficient_scope"` when the token is valid but the user is
//!   not a member of the organization the request names (`x-organization-id`), or
//!   their role there is below the route's minimum ([`Access::require`]).
//!
//! Keys come from the issuer's JWKS, cached for its `Cache-Control: max-age` and
//! refetched (at most once per [`GuardConfig::refetch_interval`]) when a token names
//! an unknown `kid`, so key rotation needs no restart.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use josekit::jwk::Jwk;
use josekit::jws::{ES256, JwsVerifier};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;
use uuid::Uuid;

/// A role in an organization, least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// What the guard checks tokens against.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The issuer, exactly as in Tessera's discovery document.
    pub issuer: String,
    /// This API's identifier: the token's `aud` must contain it.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The request header naming the organization the call is made in.
    pub org_header: String,
    /// The least time between two JWKS fetches triggered by unknown `kid`s.
    pub refetch_interval: Duration,
    /// The route's path parameter that names the organization (e.g.
    /// `organizationId` for `/organizations/{organizationId}/…`), read when the
    /// request has no `org_header`.
    pub org_path_param: Option<String>,
    /// This API server's own confidential client (`client_id`, `client_secret`),
    /// registered `--introspect-for` the audience: personal access tokens are
    /// checked through introspection with it. Without it they are refused.
    pub introspection_client: Option<(String, String)>,
    /// How long an introspection answer is reused: a revoked personal access
    /// token stops working within this time.
    pub introspection_cache_ttl: Duration,
    /// The most answers kept; past it the cache starts over.
    pub introspection_cache_capacity: usize,
}

impl GuardConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            leeway: Duration::from_secs(5),
            org_header: "x-organization-id".to_owned(),
            refetch_interval: Duration::from_secs(10),
            org_path_param: None,
            introspection_client: None,
            introspection_cache_ttl: Duration::from_secs(30),
            introspection_cache_capacity: 10_000,
        }
    }
}

/// Why a request was refused; the `ResponseError` impl is the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("no bearer token")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("the request names no organization and the token carries none")]
    NoOrganization,
    #[error("the organization id is not a UUID")]
    BadOrganization,
    #[error("the user is not a member of the organization")]
    NotMember,
    #[error("this needs the {0} role or higher")]
    RoleTooLow(&'static str),
    #[error("this needs the {0} scope")]
    MissingScope(String),
    #[error("the authorization server cannot be reached: {0}")]
    Unavailable(String),
}

impl ResponseError for GuardError {
    fn status_code(&self) -> StatusCode {
        match self {
            GuardError::MissingToken | GuardError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            // An organization id that is not one cannot be one the caller is in.
            GuardError::BadOrganization => StatusCode::FORBIDDEN,
            GuardError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, challenge) = match self {
            // RFC 6750 §3.1: no error code when no credentials were sent.
            GuardError::MissingToken => ("invalid_token", "Bearer".to_owned()),
            GuardError::InvalidToken(why) => (
                "invalid_token",
                format!("Bearer error=\"invalid_token\", error_description=\"{why}\""),
            ),
            GuardError::BadOrganization => (
                "insufficient_scope",
                format!("Bearer error=\"insufficient_scope\", error_description=\"{self}\""),
            ),
            GuardError::Unavailable(_) => ("temporarily_unavailable", String::new()),
            GuardError::NoOrganization
            | GuardError::NotMember
            | GuardError::RoleTooLow(_)
            | GuardError::MissingScope(_) => (
                "insufficient_scope",
                format!("Bearer error=\"insufficient_scope\", error_description=\"{self}\""),
            ),
        };
        let mut response = HttpResponse::build(self.status_code())
            .json(json!({ "error": code, "error_description": self.to_string() }));
        if let Ok(v) = HeaderValue::from_str(&challenge)
            && !challenge.is_empty()
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

struct KeyCache {
    keys: HashMap<String, Arc<dyn JwsVerifier>>,
    fresh_until: Instant,
    last_fetch: Option<Instant>,
}

/// Verifies Tessera access tokens; share one per API (`web::Data<Guard>`).
pub struct Guard {
    config: GuardConfig,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    /// Introspection answers by token: the claims of an active one, `None` for
    /// an inactive one, and when the answer was fetched.
    introspected: std::sync::Mutex<HashMap<String, Introspected>>,
}

/// An introspection answer and when it was fetched: the claims of an active
/// token, `None` for an inactive one.
type Introspected = (Instant, Option<Map<String, Value>>);

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

/// What every personal access token starts with.
pub const PAT_PREFIX: &str = "tsr_pat_";

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A person, through an application (OAuth code flow).
    Person,
    /// A script acting as a person: a personal access token, presented as is or
    /// exchanged for a JWT (RFC 8693).
    PersonalAccessToken,
    /// An organization's service account (client_credentials).
    ServiceAccount,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Map<String, Value>>,
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Duration {
    let seconds = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    Duration::from_secs(seconds)
}

impl Guard {
    /// Reads the issuer's discovery document to find its JWKS, and loads the keys.
    pub async fn discover(config: GuardConfig) -> Result<Self, GuardError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| GuardError::Unavailable(e.to_string()))?;
        let url = format!("{}/.well-known/openid-configuration", config.issuer);
        let discovery: Discovery = http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| GuardError::Unavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| GuardError::Unavailable(e.to_string()))?;
        if discovery.issuer != config.issuer {
            return Err(GuardError::Unavailable(format!(
                "discovery names issuer {} instead of {}",
                discovery.issuer, config.issuer
            )));
        }
        let guard = Self {
            config,
            jwks_uri: discovery.jwks_uri,
            introspection_endpoint: discovery.introspection_endpoint,
            http,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fresh_until: Instant::now(),
                last_fetch: None,
            }),
            introspected: std::sync::Mutex::new(HashMap::new()),
        };
        guard.fetch_keys().await?;
        Ok(guard)
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    async fn fetch_keys(&self) -> Result<(), GuardError> {
        let response = self
            .http
            .get(&self.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| GuardError::Unavailable(e.to_string()))?;
        let ttl = max_age(response.headers());
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| GuardError::Unavailable(e.to_string()))?;
        let mut keys: HashMap<String, Arc<dyn JwsVerifier>> = HashMap::new();
        for member in set.keys {
            // Only ES256 signing keys can verify an access token.
            if member.get("alg").and_then(Value::as_str) != Some("ES256") {
                continue;
            }
            let Some(kid) = member.get("kid").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let Ok(jwk) = Jwk::from_map(member) else {
                continue;
            };
            if let Ok(verifier) = ES256.verifier_from_jwk(&jwk) {
                keys.insert(kid, Arc::new(verifier));
            }
        }
        let now = Instant::now();
        let mut cache = self.cache.write().await;
        cache.keys = keys;
        cache.fresh_until = now + ttl;
        cache.last_fetch = Some(now);
        Ok(())
    }

    /// The verifier for `kid`, refetching the JWKS when it is stale or the kid is
    /// new (rate-limited, so a flood of made-up kids costs one fetch per interval).
    async fn verifier(&self, kid: &str) -> Result<Option<Arc<dyn JwsVerifier>>, GuardError> {
        {
            let cache = self.cache.read().await;
            if let Some(v) = cache.keys.get(kid)
                && Instant::now() < cache.fresh_until
            {
                return Ok(Some(Arc::clone(v)));
            }
            let recently = cache
                .last_fetch
                .is_some_and(|t| t.elapsed() < self.config.refetch_interval);
            if recently {
                return Ok(cache.keys.get(kid).cloned());
            }
        }
        if let Err(e) = self.fetch_keys().await {
            // Keep serving with the keys we have if the issuer is briefly away.
            tracing::warn!("JWKS refetch failed: {e}");
        }
        Ok(self.cache.read().await.keys.get(kid).cloned())
    }

    /// Verifies an access token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, GuardError> {
        let invalid = GuardError::InvalidToken;
        let header =
            josekit::jwt::decode_header(token).map_err(|_| invalid("the token is malformed"))?;
        if header.claim("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(invalid("the token is not signed with ES256"));
        }
        if header.claim("typ").and_then(Value::as_str) != Some("at+jwt") {
            return Err(invalid("the token is not an access token"));
        }
        let kid = header
            .claim("kid")
            .and_then(Value::as_str)
            .ok_or(invalid("the token names no key"))?;
        let verifier = self
            .verifier(kid)
            .await?
            .ok_or(invalid("the token was not signed by the issuer's keys"))?;
        let (payload, _) = josekit::jws::deserialize_compact(token, verifier.as_ref())
            .map_err(|_| invalid("the token signature is invalid"))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| invalid("the token is malformed"))?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    /// Checks a personal access token through introspection (RFC 7662) with
    /// this API's own client; answers are reused for
    /// [`GuardConfig::introspection_cache_ttl`].
    pub async fn verify_personal_token(
        &self,
        token: &str,
    ) -> Result<Map<String, Value>, GuardError> {
        let invalid = GuardError::InvalidToken("the token is unknown, expired or revoked");
        let ttl = self.config.introspection_cache_ttl;
        let cached = self
            .introspected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, answer)| answer.clone());
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = self.introspect(token).await?;
                self.remember(token, answer.clone());
                answer
            }
        };
        let claims = answer.ok_or(invalid)?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    /// Keeps an introspection answer, within
    /// [`GuardConfig::introspection_cache_capacity`]: past it the cache starts over.
    fn remember(&self, token: &str, answer: Option<Map<String, Value>>) {
        let mut cache = self
            .introspected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= self.config.introspection_cache_capacity {
            cache.clear();
        }
        cache.insert(token.to_owned(), (Instant::now(), answer));
    }

    async fn introspect(&self, token: &str) -> Result<Option<Map<String, Value>>, GuardError> {
        let (Some((id, secret)), Some(endpoint)) = (
            &self.config.introspection_client,
            &self.introspection_endpoint,
        ) else {
            return Err(GuardError::InvalidToken(
                "this API does not accept personal access tokens",
            ));
        };
        let answer: Map<String, Value> = self
            .http
            .post(endpoint)
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| GuardError::Unavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| GuardError::Unavailable(e.to_string()))?;
        Ok((answer.get("active") == Some(&Value::Bool(true))).then_some(answer))
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), GuardError> {
        let invalid = GuardError::InvalidToken;
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(invalid("the token was issued by another server"));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.config.audience,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(&self.config.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(invalid("the token is for another audience"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let leeway = self.config.leeway.as_secs() as i64;
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp + leeway > now => {}
            Some(_) => return Err(invalid("the token has expired")),
            None => return Err(invalid("the token has no expiry")),
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && nbf - leeway > now
        {
            return Err(invalid("the token is not valid yet"));
        }
        Ok(())
    }

    /// The organization the request is made in and the user's role there: the one
    /// the request names (header), which must be the token's `org_id` or one of its
    /// `orgs`; else the token's own `org_id`.
    pub fn organization(
        &self,
        req: &HttpRequest,
        claims: &Map<String, Value>,
    ) -> Result<(Uuid, Role), GuardError> {
        let from_path = self
            .config
            .org_path_param
            .as_deref()
            .and_then(|name| req.match_info().get(name));
        let raw = match req.headers().get(self.config.org_header.as_str()) {
            Some(v) => Some(v.to_str().map_err(|_| GuardError::BadOrganization)?),
            None => from_path,
        };
        let named = match raw {
            None => None,
            Some(s) => Some(Uuid::parse_str(s.trim()).map_err(|_| GuardError::BadOrganization)?),
        };
        let token_org = claims
            .get("org_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        let token_role = claims
            .get("org_role")
            .and_then(Value::as_str)
            .and_then(Role::parse);
        let listed = |id: Uuid| {
            claims.get("orgs")?.as_array()?.iter().find_map(|m| {
                let same = m.get("id")?.as_str()? == id.to_string();
                same.then(|| m.get("role")?.as_str().and_then(Role::parse))?
            })
        };
        match (named, token_org) {
            (None, None) => Err(GuardError::NoOrganization),
            (None, Some(org)) => token_role.map(|r| (org, r)).ok_or(GuardError::NotMember),
            (Some(id), Some(org)) if id == org => {
                token_role.map(|r| (id, r)).ok_or(GuardError::NotMember)
            }
            (Some(id), _) => listed(id).map(|r| (id, r)).ok_or(GuardError::NotMember),
        }
    }
}

/// A verified caller, in one organization.
#[derive(Debug, Clone)]
pub struct Access {
    pub claims: Map<String, Value>,
    pub subject: String,
    pub org_id: Uuid,
    pub role: Role,
    pub caller: Caller,
    /// The scopes the credential carries.
    pub scopes: Vec<String>,
}

impl Access {
    /// Refuses with `403` unless the credential carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), GuardError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(GuardError::MissingScope(scope.to_owned()))
        }
    }

    /// Refuses with `403` unless the caller's role is at least `minimum`.
    pub fn require(&self, minimum: Role) -> Result<(), GuardError> {
        if self.role >= minimum {
            Ok(())
        } else {
            Err(GuardError::RoleTooLow(minimum.as_str()))
        }
    }
}

/// The credential: `Authorization: Bearer …` or `X-Api-Key: …` (a personal
/// access token), not both.
fn credential(req: &HttpRequest) -> Result<String, GuardError> {
    let bearer = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| GuardError::InvalidToken("malformed Authorization header"))?;
            Some(
                value
                    .strip_prefix("Bearer ")
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or(GuardError::InvalidToken(
                        "the Authorization header is not a Bearer token",
                    ))?,
            )
        }
    };
    let api_key = match req.headers().get("x-api-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| GuardError::InvalidToken("malformed X-Api-Key header"))?
                .trim()
                .to_owned(),
        ),
    };
    match (bearer, api_key) {
        (Some(_), Some(_)) => Err(GuardError::InvalidToken(
            "send the token in Authorization or X-Api-Key, not both",
        )),
        (Some(t), None) => Ok(t),
        (None, Some(k)) if k.starts_with(PAT_PREFIX) => Ok(k),
        (None, Some(_)) => Err(GuardError::InvalidToken(
            "X-Api-Key takes a personal access token",
        )),
        (None, None) => Err(GuardError::MissingToken),
    }
}

/// The scopes the credential carries in `org`: the `scope` of its `orgs` entry
/// when it has one (a personal access token for any of the person's
/// organizations carries there what the person's role holds), else its `scope`.
fn scopes_in(claims: &Map<String, Value>, org: Uuid) -> Vec<String> {
    let in_org = claims
        .get("orgs")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|m| m.get("id").and_then(Value::as_str) == Some(org.to_string().as_str()))
        })
        .and_then(|m| m.get("scope"))
        .and_then(Value::as_str);
    in_org
        .or_else(|| claims.get("scope").and_then(Value::as_str))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn caller_of(claims: &Map<String, Value>) -> Caller {
    let credential = claims.get("credential").and_then(Value::as_str);
    let token_type = claims.get("token_type").and_then(Value::as_str);
    match (credential, token_type) {
        (Some("service_account"), _) => Caller::ServiceAccount,
        (Some("personal_access_token"), _) | (_, Some("personal_access_token")) => {
            Caller::PersonalAccessToken
        }
        _ => Caller::Person,
    }
}

impl FromRequest for Access {
    type Error = GuardError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let guard = req
                .app_data::<web::Data<Guard>>()
                .cloned()
                .ok_or_else(|| GuardError::Unavailable("no Guard in app_data".to_owned()))?;
            let token = credential(&req)?;
            let claims = if token.starts_with(PAT_PREFIX) {
                guard.verify_personal_token(&token).await?
            } else {
                guard.verify(&token).await?
            };
            let (org_id, role) = guard.organization(&req, &claims)?;
            let scopes = scopes_in(&claims, org_id);
            let subject = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Ok(Access {
                caller: caller_of(&claims),
                claims,
                subject,
                org_id,
                role,
                scopes,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guard that knows no introspection endpoint: asking the server fails,
    /// so only its cache can answer.
    fn offline_guard(ttl: Duration, capacity: usize) -> Guard {
        let mut config = GuardConfig::new("https://id.example.com", "https://api.example.com");
        config.introspection_cache_ttl = ttl;
        config.introspection_cache_capacity = capacity;
        Guard {
            config,
            jwks_uri: String::new(),
            introspection_endpoint: None,
            http: reqwest::Client::new(),
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fresh_until: Instant::now(),
                last_fetch: None,
            }),
            introspected: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn active_answer() -> Map<String, Value> {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            + 3600;
        json!({
            "active": true,
            "iss": "https://id.example.com",
            "aud": "https://api.example.com",
            "exp": exp,
            "scope": "projects:read",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    /// Puts an answer fetched `age` ago into the cache (ageing the entry instead
    /// of waiting for it to age).
    fn cached(guard: &Guard, token: &str, age: Duration, answer: Option<Map<String, Value>>) {
        let at = Instant::now().checked_sub(age).expect("an earlier instant");
        guard
            .introspected
            .lock()
            .unwrap()
            .insert(token.to_owned(), (at, answer));
    }

    #[tokio::test]
    async fn an_answer_is_reused_within_the_cache_time_and_asked_again_after_it() {
        let guard = offline_guard(Duration::from_secs(30), 100);
        cached(
            &guard,
            "tsr_pat_fresh",
            Duration::from_secs(29),
            Some(active_answer()),
        );
        let claims = guard.verify_personal_token("tsr_pat_fresh").await;
        assert_eq!(claims.unwrap()["scope"], "projects:read");

        // A revoked token's "inactive" is reused the same way.
        cached(&guard, "tsr_pat_revoked", Duration::from_secs(1), None);
        assert!(matches!(
            guard.verify_personal_token("tsr_pat_revoked").await,
            Err(GuardError::InvalidToken(_))
        ));

        // Past the cache time the server is asked again (here: it cannot be).
        cached(
            &guard,
            "tsr_pat_stale",
            Duration::from_secs(31),
            Some(active_answer()),
        );
        assert!(matches!(
            guard.verify_personal_token("tsr_pat_stale").await,
            Err(GuardError::InvalidToken(why)) if why.contains("does not accept")
        ));
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity() {
        let guard = offline_guard(Duration::from_secs(30), 2);
        for token in ["tsr_pat_a", "tsr_pat_b", "tsr_pat_c"] {
            guard.remember(token, None);
            let held = guard.introspected.lock().unwrap().len();
            assert!(held <= 2, "{held} answers kept");
        }
        assert!(guard.introspected.lock().unwrap().contains_key("tsr_pat_c"));
    }
}
