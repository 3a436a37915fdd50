//! actix routes and handlers, grouped by what the client sees.

pub mod browser;
pub mod form;
pub mod middleware;
pub mod oauth;
pub mod oidc;
pub mod ops;
pub mod pages;
pub mod passkeys;
pub mod registration;
pub mod well_known;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Paths of the published endpoints, shared by the router and the discovery document.
pub mod paths {
    pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
    pub const OAUTH_AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
    pub const JWKS: &str = "/.well-known/jwks.json";
    pub const AUTHORIZE: &str = "/authorize";
    pub const TOKEN: &str = "/token";
    pub const USERINFO: &str = "/userinfo";
    pub const REVOKE: &str = "/revoke";
    pub const INTROSPECT: &str = "/introspect";
    pub const END_SESSION: &str = "/end_session";
    pub const REGISTER: &str = "/register";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Malformed or oversized form bodies get the HTML error page, not a bare 400.
    cfg.app_data(
        web::FormConfig::default()
            .limit(16 * 1024)
            .error_handler(|err, _| match err {
                actix_web::error::UrlencodedError::Overflow { .. } => {
                    browser::PageError::TooLarge.into()
                }
                other => browser::PageError::BadForm(other.to_string()).into(),
            }),
    );
    cfg.app_data(web::PayloadConfig::new(form::MAX_BODY));
    // One resource per path, so a wrong method answers 405 rather than 404.
    let get = web::get;
    let post = web::post;
    // actix tries resources in this order, and a path with a parameter costs a regex
    // match: the endpoints every client and API call come first, parameterised
    // paths last (no two patterns here overlap, so order changes only the cost).
    let table = [
        (paths::TOKEN, vec![post().to(oauth::token)]),
        (paths::JWKS, vec![get().to(well_known::jwks)]),
        (
            paths::OPENID_CONFIGURATION,
            vec![get().to(well_known::discovery)],
        ),
        (
            paths::OAUTH_AUTHORIZATION_SERVER,
            vec![get().to(well_known::discovery)],
        ),
        (
            paths::USERINFO,
            vec![get().to(oidc::userinfo_get), post().to(oidc::userinfo_post)],
        ),
        (paths::INTROSPECT, vec![post().to(oauth::introspect)]),
        (paths::REVOKE, vec![post().to(oauth::revoke)]),
        (
            paths::AUTHORIZE,
            vec![
                get().to(oauth::authorize_get),
                post().to(oauth::authorize_post),
            ],
        ),
        (paths::HEALTHZ, vec![get().to(ops::healthz)]),
        (paths::READYZ, vec![get().to(ops::readyz)]),
        (paths::METRICS, vec![get().to(ops::metrics)]),
        ("/static/tessera.css", vec![get().to(browser::stylesheet)]),
        (
            "/static/form_post.js",
            vec![get().to(browser::form_post_script)],
        ),
        (
            "/static/passkeys.js",
            vec![get().to(browser::passkeys_script)],
        ),
        (paths::REGISTER, vec![post().to(registration::register)]),
        (
            "/passkeys/sign-in/start",
            vec![post().to(passkeys::sign_in_start)],
        ),
        (
            "/passkeys/sign-in/finish",
            vec![post().to(passkeys::sign_in_finish)],
        ),
        (
            "/passkeys/sign-up/start",
            vec![post().to(passkeys::sign_up_start)],
        ),
        (
            "/passkeys/sign-up/finish",
            vec![post().to(passkeys::sign_up_finish)],
        ),
        (
            "/account/passkeys/start",
            vec![post().to(passkeys::add_start)],
        ),
        (
            "/account/passkeys/finish",
            vec![post().to(passkeys::add_finish)],
        ),
        (
            "/login",
            vec![get().to(pages::login_page), post().to(pages::login)],
        ),
        (
            "/signup",
            vec![get().to(pages::signup_page), post().to(pages::signup)],
        ),
        ("/", vec![get().to(pages::home)]),
        ("/logout", vec![post().to(pages::logout)]),
        ("/account", vec![get().to(pages::account)]),
        ("/account/password", vec![post().to(pages::change_password)]),
        (
            "/account/sessions/end-all",
            vec![post().to(pages::end_all_sessions)],
        ),
        (
            "/authorize/consent",
            vec![post().to(oauth::consent_decision)],
        ),
        ("/authorize/org", vec![post().to(oauth::org_decision)]),
        (
            paths::END_SESSION,
            vec![
                get().to(oidc::end_session_get),
                post().to(oidc::end_session_post),
            ],
        ),
        (
            "/end_session/confirm",
            vec![post().to(oidc::end_session_confirm)],
        ),
        (
            "/register/{client_id}",
            vec![
                get().to(registration::read),
                web::put().to(registration::update),
                web::delete().to(registration::delete),
            ],
        ),
        (
            "/account/passkeys/{id}/rename",
            vec![post().to(passkeys::rename)],
        ),
        (
            "/account/passkeys/{id}/remove",
            vec![post().to(passkeys::remove)],
        ),
        (
            "/account/orgs/{org}/invitations",
            vec![post().to(pages::invite)],
        ),
        (
            "/account/orgs/{org}/members/{user}/role",
            vec![post().to(pages::change_member_role)],
        ),
        (
            "/account/orgs/{org}/members/{user}/remove",
            vec![post().to(pages::remove_member)],
        ),
        (
            "/invitations/{token}",
            vec![
                get().to(pages::invitation),
                post().to(pages::accept_invitation),
            ],
        ),
        (
            "/account/sessions/{id}/end",
            vec![post().to(pages::end_session)],
        ),
    ];
    for (path, routes) in table {
        let mut resource = web::resource(path);
        for route in routes {
            resource = resource.route(route);
        }
        cfg.service(resource);
    }
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

/// The one `Authorization` header of a request, if any. Two are refused: which one
/// a server reads is a guess an attacker could exploit.
pub(crate) fn authorization_header(req: &HttpRequest) -> Result<Option<&str>, &'static str> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| "malformed Authorization header")
}
