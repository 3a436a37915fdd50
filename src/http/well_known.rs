//! Discovery (OIDC Discovery 1.0 and RFC 8414) and the JWK Set (RFC 7517 §5).

use actix_web::http::header::HeaderValue;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::http::{cacheable_json, paths};
use crate::state::AppState;
use crate::tokens::Algorithm;

/// The grants a client registers for (RFC 8693 token exchange among them: a
/// personal access token needs no client, a provider's id_token does).
const GRANT_TYPES_SUPPORTED: &[&str] = crate::oauth::clients::GRANT_TYPES;

/// The provider metadata, serialized once at start. It lists only what works now;
/// each capability adds its fields as it lands.
pub struct Discovery {
    body: Bytes,
    /// A header value made once: checking its bytes per response costs more
    /// than sending it. (Always made: base64url in quotes is a valid value.)
    etag: Option<HeaderValue>,
    /// `Cache-Control` of discovery and the JWKS, made once.
    cache_control: HeaderValue,
}

#[derive(Serialize)]
struct ProviderMetadata<'a> {
    issuer: &'a str,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    revocation_endpoint: String,
    end_session_endpoint: String,
    introspection_endpoint: String,
    /// RFC 7591; absent when registration is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_endpoint: Option<String>,
    jwks_uri: String,
    response_types_supported: &'static [&'static str],
    response_modes_supported: &'static [&'static str],
    grant_types_supported: &'static [&'static str],
    subject_types_supported: &'static [&'static str],
    id_token_signing_alg_values_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    /// RFC 7636; `plain` is never accepted.
    code_challenge_methods_supported: &'static [&'static str],
    /// RFC 9207.
    authorization_response_iss_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    scopes_supported: &'static [&'static str],
    claims_supported: &'static [&'static str],
    claims_parameter_supported: bool,
    /// OIDC Back-Channel Logout 1.0 §2.1.
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
}

/// Client authentication methods, the same at every client-facing endpoint.
const AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "none"];

impl Discovery {
    pub fn new(settings: &Settings) -> Self {
        let metadata = ProviderMetadata {
            issuer: settings.issuer_str(),
            authorization_endpoint: settings.endpoint(paths::AUTHORIZE),
            token_endpoint: settings.endpoint(paths::TOKEN),
            userinfo_endpoint: settings.endpoint(paths::USERINFO),
            revocation_endpoint: settings.endpoint(paths::REVOKE),
            end_session_endpoint: settings.endpoint(paths::END_SESSION),
            introspection_endpoint: settings.endpoint(paths::INTROSPECT),
            registration_endpoint: (settings.registration
                != crate::config::RegistrationPolicy::Off)
                .then(|| settings.endpoint(paths::REGISTER)),
            jwks_uri: settings.endpoint(paths::JWKS),
            response_types_supported: &["code"],
            response_modes_supported: &["query", "form_post"],
            grant_types_supported: GRANT_TYPES_SUPPORTED,
            subject_types_supported: &["public"],
            // RS256 first: OIDC Core §15.1 makes it the default every RP can use.
            id_token_signing_alg_values_supported: vec![
                Algorithm::Rs256.as_str(),
                Algorithm::Es256.as_str(),
            ],
            token_endpoint_auth_methods_supported: AUTH_METHODS,
            revocation_endpoint_auth_methods_supported: AUTH_METHODS,
            introspection_endpoint_auth_methods_supported: &[
                "client_secret_basic",
                "client_secret_post",
            ],
            code_challenge_methods_supported: &["S256"],
            authorization_response_iss_parameter_supported: true,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            scopes_supported: crate::oauth::SCOPES,
            claims_supported: &[
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "amr",
                "sid",
                "azp",
                "at_hash",
                "email",
                "email_verified",
                "org_id",
                "org_slug",
                "org_role",
                "orgs",
                "updated_at",
            ],
            claims_parameter_supported: false,
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
        };
        let body = serde_json::to_vec(&metadata).unwrap_or_default();
        let etag = format!(
            "\"{}\"",
            URL_SAFE_NO_PAD.encode(&Sha256::digest(&body)[..16])
        );
        let cache_control = format!("public, max-age={}", settings.jwks_max_age.as_secs());
        Self {
            body: body.into(),
            etag: HeaderValue::from_str(&etag).ok(),
            cache_control: HeaderValue::from_str(&cache_control)
                .unwrap_or(HeaderValue::from_static("no-cache")),
        }
    }
}

pub async fn discovery(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let d = &state.discovery;
    cacheable_json(&req, &d.body, d.etag.as_ref(), &d.cache_control)
}

pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let keys = state.keys.keys();
    let doc = keys.jwks();
    // The key set is a domain type and holds its validator as bytes (base64url
    // in quotes, always a valid header value).
    let etag = HeaderValue::from_maybe_shared(doc.etag.clone()).ok();
    cacheable_json(
        &req,
        &doc.body,
        etag.as_ref(),
        &state.discovery.cache_control,
    )
}
