//! Discovery (OIDC Discovery 1.0 and RFC 8414) and the JWK Set (RFC 7517 §5).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::http::{cacheable_json, paths};
use crate::state::AppState;
use crate::tokens::Algorithm;

/// The provider metadata, serialized once at start. It lists only what works now;
/// each capability adds its fields as it lands.
pub struct Discovery {
    body: Arc<[u8]>,
    etag: String,
}

#[derive(Serialize)]
struct ProviderMetadata<'a> {
    issuer: &'a str,
    jwks_uri: String,
    /// Required by both specifications; empty until an authorization flow exists.
    response_types_supported: [&'static str; 0],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: Vec<&'static str>,
}

impl Discovery {
    pub fn new(settings: &Settings) -> Self {
        let metadata = ProviderMetadata {
            issuer: settings.issuer_str(),
            jwks_uri: settings.endpoint(paths::JWKS),
            response_types_supported: [],
            subject_types_supported: ["public"],
            // RS256 first: OIDC Core §15.1 makes it the default every RP can use.
            id_token_signing_alg_values_supported: vec![
                Algorithm::Rs256.as_str(),
                Algorithm::Es256.as_str(),
            ],
        };
        let body = serde_json::to_vec(&metadata).unwrap_or_default();
        let etag = format!(
            "\"{}\"",
            URL_SAFE_NO_PAD.encode(&Sha256::digest(&body)[..16])
        );
        Self {
            body: Arc::from(body),
            etag,
        }
    }
}

pub async fn discovery(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let d = &state.discovery;
    cacheable_json(
        &req,
        &d.body,
        &d.etag,
        state.settings.jwks_max_age.as_secs(),
    )
}

pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let keys = state.keys.keys();
    let doc = keys.jwks();
    cacheable_json(
        &req,
        &doc.body,
        &doc.etag,
        state.settings.jwks_max_age.as_secs(),
    )
}
