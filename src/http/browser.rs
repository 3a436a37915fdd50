//! What every browser page shares: the cookie builder, the secrets CSRF tokens are
//! bound to, the signed-in session, which origin a form may end at, static assets,
//! and the HTML error page.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::identity::sessions::{self, Session};
use crate::state::AppState;

/// Pages load styles and scripts from this server only (no inline script), fetch
/// only from here (the passkey ceremonies), submit forms only here.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

const STYLESHEET: &[u8] = include_bytes!("../../static/tessera.css");
const FORM_POST_SCRIPT: &[u8] = include_bytes!("../../static/form_post.js");
const PASSKEYS_SCRIPT: &[u8] = include_bytes!("../../static/passkeys.js");
const COPY_SCRIPT: &[u8] = include_bytes!("../../static/copy.js");

/// Content hash of the static assets, appended to their URLs so browsers may cache
/// them for a year and still see every change.
pub fn asset_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hasher = Sha256::new();
        hasher.update(STYLESHEET);
        hasher.update(FORM_POST_SCRIPT);
        hasher.update(PASSKEYS_SCRIPT);
        hasher.update(COPY_SCRIPT);
        URL_SAFE_NO_PAD.encode(&hasher.finalize()[..9])
    })
}

pub async fn form_post_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(FORM_POST_SCRIPT)
}

pub async fn passkeys_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(PASSKEYS_SCRIPT)
}

pub async fn copy_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(COPY_SCRIPT)
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(STYLESHEET)
}

/// Values the base layout needs on every page.
pub struct PageContext {
    pub asset_version: &'static str,
    pub csrf: String,
    pub signed_in_as: Option<String>,
    /// Shows the Administration link (the account page knows; other pages
    /// leave it out rather than read the account again).
    pub admin: bool,
}

fn session_cookie_name(settings: &Settings) -> &'static str {
    // RFC 6265bis §4.1.3.2: `__Host-` cookies must be Secure, so only on https.
    if settings.issuer_is_https() {
        "__Host-tessera"
    } else {
        "tessera_session"
    }
}

fn csrf_cookie_name(settings: &Settings) -> &'static str {
    if settings.issuer_is_https() {
        "__Host-tessera_csrf"
    } else {
        "tessera_csrf"
    }
}

fn device_cookie_name(settings: &Settings) -> &'static str {
    if settings.issuer_is_https() {
        "__Host-tessera_device"
    } else {
        "tessera_device"
    }
}

/// Short-lived cookies of a federated sign-in.
#[derive(Debug, Clone, Copy)]
pub enum FederationCookie {
    /// Binds a flow at a provider to the browser that began it.
    Flow,
    /// A "sign in to connect {provider}" offer, taken at the next sign-in.
    PendingLink,
}

impl FederationCookie {
    fn name(self, settings: &Settings) -> &'static str {
        match (self, settings.issuer_is_https()) {
            (FederationCookie::Flow, true) => "__Host-tessera_federation",
            (FederationCookie::Flow, false) => "tessera_federation",
            (FederationCookie::PendingLink, true) => "__Host-tessera_link",
            (FederationCookie::PendingLink, false) => "tessera_link",
        }
    }

    /// The cookie, `Lax` so it comes back with the provider's top-level
    /// redirect to the callback.
    pub fn make(self, settings: &Settings, value: String, ttl_secs: i64) -> Cookie<'static> {
        let mut c = cookie(settings, self.name(settings), value);
        c.set_max_age(actix_web::cookie::time::Duration::seconds(ttl_secs));
        c
    }

    pub fn expired(self, settings: &Settings) -> Cookie<'static> {
        let mut c = cookie(settings, self.name(settings), String::new());
        c.make_removal();
        c
    }

    pub fn value(self, req: &HttpRequest, settings: &Settings) -> Option<String> {
        req.cookie(self.name(settings))
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// Browsers keep cookies at most 400 days (RFC 6265bis §5.5); the device
/// cookie is renewed at every sign-in.
const DEVICE_COOKIE_DAYS: i64 = 400;

/// How a session begins, for the new-browser notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A sign-in: a browser new to the account gets a notice (when enabled).
    SignIn,
    /// Sign-up, or a password reset (which sends its own notice): no notice.
    Quiet,
}

/// Starts a session for `user` in this browser and records the browser among
/// the account's devices: the session and device cookies to set.
pub async fn begin_session(
    req: &HttpRequest,
    state: &AppState,
    user: &crate::identity::users::User,
    amr: &[&str],
    arrival: Arrival,
) -> Result<Vec<Cookie<'static>>, crate::identity::IdentityError> {
    begin_session_via(req, state, user, amr, None, arrival).await
}

/// [`begin_session`] for a sign-in through the upstream provider `idp`.
pub async fn begin_session_via(
    req: &HttpRequest,
    state: &AppState,
    user: &crate::identity::users::User,
    amr: &[&str],
    idp: Option<&str>,
    arrival: Arrival,
) -> Result<Vec<Cookie<'static>>, crate::identity::IdentityError> {
    let ip = super::client::ClientIp::of(req).0;
    let agent = super::client::user_agent(req);
    let from = crate::identity::devices::SignInFrom {
        device: super::account::describe_device(agent.as_deref()),
        ip: ip.clone(),
    };
    let started = state
        .sessions
        .start(user, amr, idp, Some(ip), agent)
        .await?;
    let presented = req.cookie(device_cookie_name(&state.settings));
    let device = crate::identity::devices::signed_in(
        &state.db,
        &state.mail,
        user,
        presented.as_ref().map(|c| c.value()),
        from,
        arrival == Arrival::SignIn && state.settings.mail.new_device_notice,
    )
    .await?;
    let mut device_cookie = cookie(&state.settings, device_cookie_name(&state.settings), device);
    device_cookie.set_max_age(actix_web::cookie::time::Duration::days(DEVICE_COOKIE_DAYS));
    let mut cookies = vec![
        session_cookie(&state.settings, started.token),
        device_cookie,
    ];
    // Every sign-in passes here, so a "sign in to connect {provider}" offer
    // is honoured however the person signs in — and only for the account it
    // was made for (`Federation::complete_link`).
    if let Some(offer) = FederationCookie::PendingLink.value(req, &state.settings) {
        match state.federation.complete_link(&offer, user.id).await {
            Ok(Some(link)) => tracing::info!(provider = %link.provider_id, "account connected"),
            Ok(None) => {}
            Err(e) => tracing::warn!("pending link not completed: {e}"),
        }
        cookies.push(FederationCookie::PendingLink.expired(&state.settings));
    }
    Ok(cookies)
}

/// The one place cookie flags are decided.
fn cookie(settings: &Settings, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(settings.issuer_is_https())
        .same_site(SameSite::Lax)
        .finish()
}

fn ceremony_cookie_name(settings: &Settings) -> &'static str {
    if settings.issuer_is_https() {
        "__Host-tessera_webauthn"
    } else {
        "tessera_webauthn"
    }
}

/// Binds a passkey ceremony to the browser that started it; only our own scripts
/// send it back (SameSite=Strict), and it dies with the ceremony.
pub fn ceremony_cookie(
    settings: &Settings,
    token: String,
    ttl: std::time::Duration,
) -> Cookie<'static> {
    let mut c = cookie(settings, ceremony_cookie_name(settings), token);
    c.set_same_site(SameSite::Strict);
    let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    c.set_max_age(actix_web::cookie::time::Duration::seconds(secs));
    c
}

pub fn expired_ceremony_cookie(settings: &Settings) -> Cookie<'static> {
    let mut c = cookie(settings, ceremony_cookie_name(settings), String::new());
    c.make_removal();
    c
}

/// The ceremony token the request brings, or an empty string.
pub fn ceremony_token(req: &HttpRequest, settings: &Settings) -> String {
    req.cookie(ceremony_cookie_name(settings))
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

pub fn session_cookie(settings: &Settings, token: String) -> Cookie<'static> {
    cookie(settings, session_cookie_name(settings), token)
}

pub fn expired_session_cookie(settings: &Settings) -> Cookie<'static> {
    let mut c = cookie(settings, session_cookie_name(settings), String::new());
    c.make_removal();
    c
}

/// The signed-in session and its cookie value, if the request carries a live one.
pub struct SignedIn {
    pub session: Session,
    pub token: String,
}

impl SignedIn {
    pub fn csrf(&self) -> String {
        sessions::csrf_token(&self.token)
    }

    /// The account this session is for, read now (its address may have
    /// changed since the session began).
    pub async fn account(
        &self,
        state: &AppState,
    ) -> Result<crate::identity::users::User, PageError> {
        crate::identity::users::find(&state.db, self.session.user_id)
            .await
            .map_err(unavailable)?
            .ok_or(PageError::NotFound)
    }
}

pub async fn signed_in(req: &HttpRequest, state: &AppState) -> Result<Option<SignedIn>, PageError> {
    let Some(cookie) = req.cookie(session_cookie_name(&state.settings)) else {
        return Ok(None);
    };
    let token = cookie.value().to_owned();
    match state.sessions.resolve(&token).await {
        Ok(Some(session)) => Ok(Some(SignedIn { session, token })),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::error!("session lookup failed: {e}");
            Err(PageError::Unavailable)
        }
    }
}

/// The secrets a request's CSRF token may be bound to: the session cookie and the
/// pre-session cookie, those the browser sent in their proper shape.
pub fn csrf_secrets(req: &HttpRequest, settings: &Settings) -> Vec<String> {
    [session_cookie_name(settings), csrf_cookie_name(settings)]
        .into_iter()
        .filter_map(|name| req.cookie(name))
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 43)
        .collect()
}

/// The pre-session CSRF secret: the existing cookie, or a new one to set.
pub struct PreSession {
    pub secret: String,
    pub new_cookie: Option<Cookie<'static>>,
}

impl PreSession {
    pub fn from_request(req: &HttpRequest, settings: &Settings) -> Result<Self, PageError> {
        let name = csrf_cookie_name(settings);
        if let Some(c) = req.cookie(name).filter(|c| c.value().len() == 43) {
            return Ok(Self {
                secret: c.value().to_owned(),
                new_cookie: None,
            });
        }
        let secret = sessions::random_token().map_err(|_| PageError::Unavailable)?;
        Ok(Self {
            new_cookie: Some(cookie(settings, name, secret.clone())),
            secret,
        })
    }

    pub fn csrf(&self) -> String {
        sessions::csrf_token(&self.secret)
    }
}

/// The session a form was posted in (its CSRF token was checked by the router's
/// `csrf::form` before this handler ran). Without one the form cannot have come
/// from a page of this session: refused as a forgery would be.
pub async fn require_session(req: &HttpRequest, state: &AppState) -> Result<SignedIn, PageError> {
    signed_in(req, state).await?.ok_or(PageError::Csrf)
}

/// Logs why a page could not be served and answers with the "temporarily
/// unavailable" page (details stay in the log).
pub fn unavailable(e: impl std::fmt::Display) -> PageError {
    tracing::error!("page failed: {e}");
    PageError::Unavailable
}

/// Back to the sign-in page with the session cookie removed.
pub fn signed_out(state: &AppState) -> HttpResponse {
    let mut response = see_other("/login");
    let _ = response.add_cookie(&expired_session_cookie(&state.settings));
    response
}

/// Renders a page with the page CSP and no caching (pages carry CSRF tokens).
pub fn render(template: &impl Template, status: StatusCode) -> HttpResponse {
    match template.render() {
        Ok(html) => {
            let mut response = HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(html);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            );
            response
        }
        Err(e) => {
            tracing::error!("template failed: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The CSP source a page needs so that its form may end at `uri`: Chromium applies
/// `form-action` to the redirects that follow a submission, so a consent or
/// sign-in form whose answer is a 303 to the client must name the client's
/// origin. A native app's private-use URI (`com.example.app:/cb`) has no origin;
/// its scheme is the narrowest source CSP can express for it. `None` for
/// anything CSP cannot name safely.
pub fn form_target(uri: &url::Url) -> Option<String> {
    let origin = uri.origin();
    if origin.is_tuple() {
        return Some(origin.ascii_serialization());
    }
    let scheme = uri.scheme();
    let plain = scheme
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (plain && !matches!(scheme, "javascript" | "data" | "blob" | "file"))
        .then(|| format!("{scheme}:"))
}

/// Lets the page in `response` submit forms that end at `target` (see
/// [`form_target`]) besides this server — that one origin, nothing wider.
pub fn allow_form_target(response: &mut HttpResponse, target: Option<&str>) {
    let Some(target) = target else {
        return;
    };
    let csp = PAGE_CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {target}"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Adds `Retry-After` (RFC 9110 §10.2.3, whole seconds, at least 1) to a
/// refusal over a limit: every 429 says when to come back.
pub fn retry_after(mut response: HttpResponse, wait: std::time::Duration) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// "Try again in N minute(s)" for a page that refuses over a limit.
pub fn minutes(wait: std::time::Duration) -> u64 {
    wait.as_secs().max(1).div_ceil(60)
}

/// A 303 to a path on this server.
pub fn see_other(path: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, path.to_owned()))
        .finish()
}

/// `return_to` values that stay on this server: an absolute path, not `//host` or
/// `/\\host` (which browsers treat as another origin), with no control characters.
pub fn safe_return_to(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    let ok = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        // Long enough for an authorization request to come back intact.
        && raw.len() <= 8192
        && !raw.chars().any(|c| c.is_control() || c == '\\');
    ok.then(|| raw.to_owned())
}

/// Errors on browser pages: an HTML page, never a redirect.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(
        "This form has expired or was sent from another site. Go back, reload the page and try again."
    )]
    Csrf,
    #[error("The service is temporarily unavailable. Please try again in a moment.")]
    Unavailable,
    #[error("The page you asked for does not exist.")]
    NotFound,
    #[error("The form could not be read ({0}). Go back and try again.")]
    BadForm(String),
    #[error("You are not allowed to do this.")]
    Forbidden,
    #[error("The form is larger than this server accepts. Go back and try again.")]
    TooLarge,
    #[error("This page cannot be used that way. Go back and try again.")]
    MethodNotAllowed,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: PageContext,
    title: &'a str,
    message: String,
    back_to: &'a str,
}

/// The one error page: a title, what happened, and where "Continue" leads (this
/// server's account page, or a link the person may follow to a client).
pub fn error_page(
    title: &str,
    message: impl Into<String>,
    back_to: &str,
    status: StatusCode,
) -> HttpResponse {
    let page = ErrorPage {
        page: PageContext {
            asset_version: asset_version(),
            csrf: String::new(),
            signed_in_as: None,
            admin: false,
        },
        title,
        message: message.into(),
        back_to,
    };
    render(&page, status)
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::BadForm(_) => StatusCode::BAD_REQUEST,
            PageError::Forbidden => StatusCode::FORBIDDEN,
            PageError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let title = match self {
            PageError::Csrf => "Request refused",
            PageError::Unavailable => "Temporarily unavailable",
            PageError::NotFound => "Not found",
            PageError::BadForm(_)
            | PageError::Forbidden
            | PageError::TooLarge
            | PageError::MethodNotAllowed => "Request refused",
        };
        let mut response = error_page(title, self.to_string(), "/account", self.status_code());
        if matches!(self, PageError::Unavailable) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_may_end_only_at_the_client_origin() {
        let target = |u: &str| form_target(&url::Url::parse(u).unwrap());
        assert_eq!(
            target("https://client.example:8443/cb?x=1").as_deref(),
            Some("https://client.example:8443")
        );
        assert_eq!(
            target("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(target("javascript:alert(1)"), None);
        assert_eq!(target("data:text/html,x"), None);
        let mut response = HttpResponse::Ok().finish();
        allow_form_target(&mut response, Some("https://client.example"));
        let csp = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("form-action 'self' https://client.example;"),
            "{csp}"
        );
    }

    #[test]
    fn return_to_never_leaves_this_server() {
        assert_eq!(
            safe_return_to(Some("/account")).as_deref(),
            Some("/account")
        );
        assert_eq!(
            safe_return_to(Some("/authorize?x=1&y=2")).as_deref(),
            Some("/authorize?x=1&y=2")
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
            "",
            "/a\\b",
        ] {
            assert_eq!(safe_return_to(Some(bad)), None, "{bad:?}");
        }
    }
}
