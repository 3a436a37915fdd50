//! actix routes and handlers, grouped by what the client sees.

pub mod browser;
pub mod middleware;
pub mod ops;
pub mod pages;
pub mod well_known;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Paths of the published endpoints, shared by the router and the discovery document.
pub mod paths {
    pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
    pub const OAUTH_AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
    pub const JWKS: &str = "/.well-known/jwks.json";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Malformed or oversized form bodies get the HTML error page, not a bare 400.
    cfg.app_data(
        web::FormConfig::default()
            .limit(16 * 1024)
            .error_handler(|err, _| browser::PageError::BadForm(err.to_string()).into()),
    );
    cfg.route(
        paths::OPENID_CONFIGURATION,
        web::get().to(well_known::discovery),
    )
    .route(
        paths::OAUTH_AUTHORIZATION_SERVER,
        web::get().to(well_known::discovery),
    )
    .route(paths::JWKS, web::get().to(well_known::jwks))
    .route(paths::HEALTHZ, web::get().to(ops::healthz))
    .route(paths::READYZ, web::get().to(ops::readyz))
    .route(paths::METRICS, web::get().to(ops::metrics))
    .route("/static/tessera.css", web::get().to(browser::stylesheet))
    .route("/login", web::get().to(pages::login_page))
    .route("/login", web::post().to(pages::login))
    .route("/signup", web::get().to(pages::signup_page))
    .route("/signup", web::post().to(pages::signup))
    .route("/logout", web::post().to(pages::logout))
    .route("/account", web::get().to(pages::account))
    .route("/account/password", web::post().to(pages::change_password))
    .route(
        "/account/sessions/end-all",
        web::post().to(pages::end_all_sessions),
    )
    .route(
        "/account/sessions/{id}/end",
        web::post().to(pages::end_session),
    );
}

/// Unknown paths answer with the JSON error body, not an empty 404.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Serves a precomputed public document with an ETag, answering `If-None-Match`
/// with `304 Not Modified` (RFC 9110 §13.1.2).
pub fn cacheable_json(
    req: &HttpRequest,
    body: &std::sync::Arc<[u8]>,
    etag: &str,
    max_age_secs: u64,
) -> HttpResponse {
    let cache_control = format!("public, max-age={max_age_secs}");
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    let mut response = if matches {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .content_type(header::ContentType::json())
            .body(body.to_vec())
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    response
}
