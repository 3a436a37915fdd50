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
}

impl GuardConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            leeway: Duration::from_secs(5),
            org_header: "x-organization-id".to_owned(),
            refetch_interval: Duration::from_secs(10),
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
    #[error("the authorization server cannot be reached: {0}")]
    Unavailable(String),
}

impl ResponseError for GuardError {
    fn status_code(&self) -> StatusCode {
        match self {
            GuardError::MissingToken | GuardError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            GuardError::BadOrganization => StatusCode::BAD_REQUEST,
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
                "invalid_request",
                "Bearer error=\"invalid_request\"".to_owned(),
            ),
            GuardError::Unavailable(_) => ("temporarily_unavailable", String::new()),
            GuardError::NoOrganization | GuardError::NotMember | GuardError::RoleTooLow(_) => (
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
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
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
            http,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fresh_until: Instant::now(),
                last_fetch: None,
            }),
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
        let named = match req.headers().get(self.config.org_header.as_str()) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| Uuid::parse_str(s.trim()).ok())
                    .ok_or(GuardError::BadOrganization)?,
            ),
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
}

impl Access {
    /// Refuses with `403` unless the caller's role is at least `minimum`.
    pub fn require(&self, minimum: Role) -> Result<(), GuardError> {
        if self.role >= minimum {
            Ok(())
        } else {
            Err(GuardError::RoleTooLow(minimum.as_str()))
        }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, GuardError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(GuardError::MissingToken)?
        .to_str()
        .map_err(|_| GuardError::InvalidToken("malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(GuardError::InvalidToken(
            "the Authorization header is not a Bearer token",
        ))
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
            let token = bearer(&req)?;
            let claims = guard.verify(&token).await?;
            let (org_id, role) = guard.organization(&req, &claims)?;
            let subject = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Ok(Access {
                claims,
                subject,
                org_id,
                role,
            })
        })
    }
}
