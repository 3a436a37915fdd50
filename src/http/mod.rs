//! actix routes and handlers, grouped by what the client sees.

pub mod account;
pub mod admin_api;
pub mod admin_console;
pub mod admin_resources;
pub mod api_tokens;
pub mod authorize;
pub mod browser;
pub mod client;
pub mod csrf;
pub mod email;
pub mod error;
pub mod federation;
pub mod form;
pub mod middleware;
pub mod oidc;
pub mod ops;
pub mod organizations;
pub mod passkeys;
pub mod password_reset;
pub mod registration;
pub mod signin;
pub mod token;
pub mod well_known;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, Route, web};

use self::csrf::Protection;

use self::error::ApiError;

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
    for Entry { path, csrf, routes } in table() {
        // One resource per path, so a wrong method answers 405 rather than 404,
        // with the methods the path does answer (RFC 9110 §15.5.6).
        let refusal = MethodNotAllowed::new(routes.iter().map(|(method, _)| method), csrf);
        let mut resource = web::resource(path)
            .app_data(RoutePattern(path))
            .default_service(web::to(move || {
                let refusal = refusal.clone();
                async move { refusal.response() }
            }));
        for (_, route) in routes {
            resource = resource.route(route);
        }
        match csrf {
            Protection::Exempt => cfg.service(resource),
            Protection::Form => cfg.service(resource.wrap(from_fn(csrf::form))),
            Protection::Script => cfg.service(resource.wrap(from_fn(csrf::script))),
        };
    }
}

/// The pattern a resource was registered under (`/invitations/{token}`), kept
/// in the resource's data so the middleware names a request's route in logs and
/// metrics without matching the path again (`HttpRequest::match_pattern` walks
/// the route table and copies the pattern into a new `String` every time).
#[derive(Clone, Copy, Debug)]
pub struct RoutePattern(pub &'static str);

/// A route answering one method. actix's own (`web::get()` and the like) record
/// every method they are tried against in the request's extensions — an
/// allocation and a map insert per route tried, on every request (≈ 560
/// instructions of a JWKS request's 24k) — so that its 405 can list them, with
/// an empty body. A path's methods are known from the table instead, and its
/// 405 is made once (below).
mod method {
    use actix_web::guard::{Guard, GuardContext};
    use actix_web::http::Method;
    use actix_web::{FromRequest, Handler, Responder, Route, web};

    struct Is(Method);

    impl Guard for Is {
        fn check(&self, ctx: &GuardContext<'_>) -> bool {
            ctx.head().method == self.0
        }
    }

    fn on<F, Args>(method: Method, handler: F) -> (Method, Route)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::route().guard(Is(method.clone())).to(handler);
        (method, route)
    }

    macro_rules! methods {
        ($($name:ident $method:ident),*) => {$(
            pub(super) fn $name<F, Args>(handler: F) -> (Method, Route)
            where
                F: Handler<Args>,
                Args: FromRequest + 'static,
                F::Output: Responder + 'static,
            {
                on(Method::$method, handler)
            }
        )*};
    }
    methods!(get GET, post POST, put PUT, patch PATCH, delete DELETE);
}

/// The answer to a method a path does not take: `405` with `Allow`, and the
/// body every other refusal on that path has — the HTML error page behind a
/// form's CSRF check, the JSON error body elsewhere.
#[derive(Clone)]
struct MethodNotAllowed {
    allow: HeaderValue,
    page: bool,
}

impl MethodNotAllowed {
    fn new<'a>(
        methods: impl Iterator<Item = &'a actix_web::http::Method>,
        csrf: Protection,
    ) -> Self {
        let allow = methods.map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        Self {
            // Method names are tokens, always a valid header value.
            allow: HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("")),
            page: csrf == Protection::Form,
        }
    }

    fn response(&self) -> HttpResponse {
        use actix_web::ResponseError as _;
        let mut response = if self.page {
            browser::PageError::MethodNotAllowed.error_response()
        } else {
            ApiError::MethodNotAllowed.error_response()
        };
        response
            .headers_mut()
            .insert(header::ALLOW, self.allow.clone());
        response
    }
}

/// One path of the route table: its handlers by method, and how its
/// state-changing requests are protected against cross-site forgery — every path
/// must say, so no form can be added without the check.
struct Entry {
    path: &'static str,
    csrf: Protection,
    routes: Vec<(actix_web::http::Method, Route)>,
}

/// Every path and its CSRF protection, as the router applies it (tests walk this
/// to prove each protected route refuses a request without a token).
pub fn csrf_protections() -> Vec<(&'static str, Protection)> {
    table().into_iter().map(|e| (e.path, e.csrf)).collect()
}

fn table() -> Vec<Entry> {
    use self::method::{delete, get, patch, post, put};
    use Protection::{Exempt, Form, Script};
    let entry = |path, csrf, routes| Entry { path, csrf, routes };
    // actix tries resources in this order: each path tried before the one that
    // matches costs ≈ 220 instructions, and one with a parameter a regex match.
    // The endpoints every client and API call come first — the two fixed
    // documents ahead of the token endpoint, since those costs weigh on a
    // ≈ 17k-instruction answer and not on a signed token's 100k+ — and
    // parameterised paths last (no two patterns here overlap, so order changes
    // only the cost).
    vec![
        entry(paths::JWKS, Exempt, vec![get(well_known::jwks)]),
        entry(
            paths::OPENID_CONFIGURATION,
            Exempt,
            vec![get(well_known::discovery)],
        ),
        entry(paths::TOKEN, Exempt, vec![post(token::token)]),
        entry(
            paths::OAUTH_AUTHORIZATION_SERVER,
            Exempt,
            vec![get(well_known::discovery)],
        ),
        entry(
            paths::USERINFO,
            Exempt,
            vec![get(oidc::userinfo_get), post(oidc::userinfo_post)],
        ),
        entry(paths::INTROSPECT, Exempt, vec![post(token::introspect)]),
        entry(paths::REVOKE, Exempt, vec![post(token::revoke)]),
        // A client may send the authorization request as a form from its own site.
        entry(
            paths::AUTHORIZE,
            Exempt,
            vec![
                get(authorize::authorize_get),
                post(authorize::authorize_post),
            ],
        ),
        entry(paths::HEALTHZ, Exempt, vec![get(ops::healthz)]),
        entry(paths::READYZ, Exempt, vec![get(ops::readyz)]),
        entry(paths::METRICS, Exempt, vec![get(ops::metrics)]),
        entry(
            "/static/tessera.css",
            Exempt,
            vec![get(browser::stylesheet)],
        ),
        entry(
            "/static/form_post.js",
            Exempt,
            vec![get(browser::form_post_script)],
        ),
        entry(
            "/static/passkeys.js",
            Exempt,
            vec![get(browser::passkeys_script)],
        ),
        entry("/static/copy.js", Exempt, vec![get(browser::copy_script)]),
        entry(paths::REGISTER, Exempt, vec![post(registration::register)]),
        entry(
            "/passkeys/sign-in/start",
            Script,
            vec![post(passkeys::sign_in_start)],
        ),
        entry(
            "/passkeys/sign-in/finish",
            Script,
            vec![post(passkeys::sign_in_finish)],
        ),
        entry(
            "/passkeys/sign-up/start",
            Script,
            vec![post(passkeys::sign_up_start)],
        ),
        entry(
            "/passkeys/sign-up/finish",
            Script,
            vec![post(passkeys::sign_up_finish)],
        ),
        entry(
            "/account/passkeys/start",
            Script,
            vec![post(passkeys::add_start)],
        ),
        entry(
            "/account/passkeys/finish",
            Script,
            vec![post(passkeys::add_finish)],
        ),
        entry(
            "/login",
            Form,
            vec![get(signin::login_page), post(signin::login)],
        ),
        entry(
            "/signup",
            Form,
            vec![get(signin::signup_page), post(signin::signup)],
        ),
        entry(
            "/password/forgot",
            Form,
            vec![
                get(password_reset::forgot_page),
                post(password_reset::request),
            ],
        ),
        entry("/", Exempt, vec![get(signin::home)]),
        entry("/logout", Form, vec![post(signin::logout)]),
        entry("/account", Exempt, vec![get(account::account)]),
        entry(
            "/account/password",
            Form,
            vec![post(account::change_password)],
        ),
        entry("/account/email", Form, vec![post(account::change_email)]),
        entry("/account/email/verify", Form, vec![post(email::resend)]),
        entry(
            "/account/sessions/end-all",
            Form,
            vec![post(account::end_all_sessions)],
        ),
        entry(
            "/authorize/consent",
            Form,
            vec![post(authorize::consent_decision)],
        ),
        entry("/authorize/org", Form, vec![post(authorize::org_decision)]),
        // RP-initiated logout is requested by the client's site; what it does
        // without proof of the person's intent is bounded in `oidc::end_session`.
        entry(
            paths::END_SESSION,
            Exempt,
            vec![get(oidc::end_session_get), post(oidc::end_session_post)],
        ),
        entry(
            "/end_session/confirm",
            Form,
            vec![post(oidc::end_session_confirm)],
        ),
        // RFC 7592: authenticated by the registration access token.
        entry(
            "/register/{client_id}",
            Exempt,
            vec![
                get(registration::read),
                put(registration::update),
                delete(registration::delete),
            ],
        ),
        entry("/account/api-tokens", Form, vec![post(api_tokens::create)]),
        // The token in the path is a secret: logs name the route pattern only.
        entry("/email/verify/{token}", Exempt, vec![get(email::verify)]),
        entry(
            "/password/reset/{token}",
            Form,
            vec![get(password_reset::reset_page), post(password_reset::reset)],
        ),
        // The admin console: pages to read (GET) and confirmation pages; the
        // actions they lead to are forms with the session's CSRF token.
        entry("/admin", Exempt, vec![get(admin_console::home)]),
        entry("/admin/users", Exempt, vec![get(admin_console::users)]),
        entry("/admin/audit", Exempt, vec![get(admin_console::audit)]),
        entry(
            "/admin/organizations",
            Exempt,
            vec![get(admin_console::organizations)],
        ),
        entry("/admin/clients", Exempt, vec![get(admin_console::clients)]),
        entry("/admin/keys", Exempt, vec![get(admin_console::keys)]),
        entry(
            "/admin/keys/rotate/{alg}",
            Form,
            vec![
                get(admin_console::confirm_rotation),
                post(admin_console::rotate_key),
            ],
        ),
        entry("/admin/users/{id}", Exempt, vec![get(admin_console::user)]),
        entry(
            "/admin/users/{id}/confirm/{action}",
            Exempt,
            vec![get(admin_console::confirm)],
        ),
        entry(
            "/admin/users/{id}/{action}",
            Form,
            vec![post(admin_console::act)],
        ),
        // The admin API: bearer tokens (no cookies), so nothing to forge.
        entry(
            "/admin/api/openapi.json",
            Exempt,
            vec![get(admin_api::openapi)],
        ),
        entry(
            "/admin/api/v1/users",
            Exempt,
            vec![get(admin_api::list_users), post(admin_api::create_user)],
        ),
        entry(
            "/admin/api/v1/audit-events",
            Exempt,
            vec![get(admin_api::list_events)],
        ),
        entry(
            "/admin/api/v1/organizations",
            Exempt,
            vec![
                get(admin_resources::list_organizations),
                post(admin_resources::create_organization),
            ],
        ),
        entry(
            "/admin/api/v1/clients",
            Exempt,
            vec![
                get(admin_resources::list_clients),
                post(admin_resources::create_client),
            ],
        ),
        entry(
            "/admin/api/v1/apis",
            Exempt,
            vec![
                get(admin_resources::list_apis),
                post(admin_resources::create_api),
                delete(admin_resources::delete_api),
            ],
        ),
        entry(
            "/admin/api/v1/apis/grant",
            Exempt,
            vec![post(admin_resources::grant_api)],
        ),
        entry(
            "/admin/api/v1/keys",
            Exempt,
            vec![get(admin_resources::list_keys)],
        ),
        entry(
            "/admin/api/v1/keys/rotate",
            Exempt,
            vec![post(admin_resources::rotate_key)],
        ),
        entry(
            "/admin/api/v1/identity-providers",
            Exempt,
            vec![
                get(admin_resources::list_providers),
                post(admin_resources::add_provider),
            ],
        ),
        entry(
            "/admin/api/v1/identity-providers/{id}",
            Exempt,
            vec![delete(admin_resources::remove_provider)],
        ),
        entry(
            "/admin/api/v1/users/{id}",
            Exempt,
            vec![get(admin_api::show_user), delete(admin_api::delete_user)],
        ),
        entry(
            "/admin/api/v1/users/{id}/disable",
            Exempt,
            vec![post(admin_api::disable_user)],
        ),
        entry(
            "/admin/api/v1/users/{id}/enable",
            Exempt,
            vec![post(admin_api::enable_user)],
        ),
        entry(
            "/admin/api/v1/users/{id}/sign-out-everywhere",
            Exempt,
            vec![post(admin_api::sign_out_user)],
        ),
        entry(
            "/admin/api/v1/users/{id}/password-reset",
            Exempt,
            vec![post(admin_api::send_password_reset)],
        ),
        entry(
            "/admin/api/v1/users/{id}/sessions",
            Exempt,
            vec![get(admin_resources::list_sessions)],
        ),
        entry(
            "/admin/api/v1/users/{id}/sessions/{session}",
            Exempt,
            vec![delete(admin_resources::end_session)],
        ),
        entry(
            "/admin/api/v1/users/{id}/api-tokens",
            Exempt,
            vec![get(admin_resources::list_api_tokens)],
        ),
        entry(
            "/admin/api/v1/api-tokens/{id}",
            Exempt,
            vec![delete(admin_resources::revoke_api_token)],
        ),
        entry(
            "/admin/api/v1/organizations/{id}/service-accounts",
            Exempt,
            vec![get(admin_resources::list_service_accounts)],
        ),
        entry(
            "/admin/api/v1/organizations/{id}/members",
            Exempt,
            vec![get(admin_resources::list_members)],
        ),
        entry(
            "/admin/api/v1/organizations/{id}/members/{user}",
            Exempt,
            vec![
                put(admin_resources::put_member),
                delete(admin_resources::remove_member),
            ],
        ),
        entry(
            "/admin/api/v1/clients/{id}",
            Exempt,
            vec![
                get(admin_resources::show_client),
                patch(admin_resources::update_client),
                delete(admin_resources::delete_client),
            ],
        ),
        entry(
            "/admin/api/v1/clients/{id}/rotate-secret",
            Exempt,
            vec![post(admin_resources::rotate_client_secret)],
        ),
        // The provider sends the browser back here (a top-level GET from its
        // origin): the flow's own state and binding cookie are the checks.
        entry(
            "/federation/{id}/start",
            Exempt,
            vec![get(federation::start)],
        ),
        entry(
            "/federation/{id}/callback",
            Exempt,
            vec![get(federation::callback)],
        ),
        entry(
            "/account/connections/{id}/disconnect",
            Form,
            vec![post(federation::disconnect)],
        ),
        entry(
            "/account/apps/{client_id}/remove",
            Form,
            vec![post(account::remove_app)],
        ),
        entry(
            "/account/api-tokens/{id}/revoke",
            Form,
            vec![post(api_tokens::revoke)],
        ),
        entry(
            "/account/passkeys/{id}/rename",
            Form,
            vec![post(passkeys::rename)],
        ),
        entry(
            "/account/passkeys/{id}/remove",
            Form,
            vec![post(passkeys::remove)],
        ),
        entry(
            "/account/orgs/{org}/service-accounts",
            Form,
            vec![post(organizations::create_service_account)],
        ),
        entry(
            "/account/orgs/{org}/service-accounts/{client_id}/rotate",
            Form,
            vec![post(organizations::rotate_service_account)],
        ),
        entry(
            "/account/orgs/{org}/service-accounts/{client_id}/delete",
            Form,
            vec![post(organizations::delete_service_account)],
        ),
        entry(
            "/account/orgs/{org}/invitations",
            Form,
            vec![post(organizations::invite)],
        ),
        entry(
            "/account/orgs/{org}/members/{user}/role",
            Form,
            vec![post(organizations::change_member_role)],
        ),
        entry(
            "/account/orgs/{org}/members/{user}/remove",
            Form,
            vec![post(organizations::remove_member)],
        ),
        entry(
            "/invitations/{token}",
            Form,
            vec![
                get(organizations::invitation),
                post(organizations::accept_invitation),
            ],
        ),
        entry(
            "/account/sessions/{id}/end",
            Form,
            vec![post(account::end_session)],
        ),
    ]
}

/// Unknown paths answer with the JSON error body, not an empty 404.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// `Content-Type: application/json`, made at compile time (the `ContentType`
/// builder formats a `mime` on every response).
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Serves a precomputed public document with an ETag, answering `If-None-Match`
/// with `304 Not Modified` (RFC 9110 §13.1.2).
pub fn cacheable_json(
    req: &HttpRequest,
    body: &web::Bytes,
    etag: Option<&HeaderValue>,
    cache_control: &HeaderValue,
) -> HttpResponse {
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| etag.is_some_and(|etag| tag.as_bytes() == etag.as_bytes()) || tag == "*");
    // Built directly rather than through `HttpResponseBuilder`, whose header
    // conversion and body checks cost more than the headers themselves here.
    // The response is new, so its headers are added (`append`), not looked up
    // and replaced (`insert` hands back what it replaced).
    let mut response = if matches {
        HttpResponse::new(actix_web::http::StatusCode::NOT_MODIFIED)
    } else {
        let mut ok = HttpResponse::with_body(actix_web::http::StatusCode::OK, body.clone())
            .map_into_boxed_body();
        ok.headers_mut().append(header::CONTENT_TYPE, JSON);
        ok
    };
    let headers = response.headers_mut();
    if let Some(etag) = etag {
        headers.append(header::ETAG, etag.clone());
    }
    headers.append(header::CACHE_CONTROL, cache_control.clone());
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
