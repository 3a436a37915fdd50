//! `/authorize` (with the consent page) and `/token`.
//!
//! Until the client and its redirect URI are verified, every refusal is an HTML
//! page: nothing is ever sent to an unverified redirect URI. After that, errors go
//! back to the client with `error`, `error_description`, `state` and `iss`
//! (RFC 9207).

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use chrono::Utc;
use oxide_auth::code_grant::accesstoken::Error as TokenError;
use oxide_auth::code_grant::authorization::Error as AuthorizationError;
use oxide_auth::code_grant::client_credentials::Error as ClientCredentialsError;
use oxide_auth::code_grant::error::AccessTokenErrorType;
use oxide_auth::code_grant::refresh::Error as RefreshError;
use serde::Serialize;
use url::Url;

use super::browser::{
    PageContext, PageError, SignedIn, allow_form_target, asset_version, error_page, form_target,
    render, see_other, signed_in,
};
use super::error::{ErrorCode, OAuthError};
use crate::oauth::MAX_NONCE;
use crate::oauth::clients::{AuthMethod, Client, ClientRegistry, GRANT_TYPES, GrantType};
use crate::oauth::codes::{CodeFailure, CodeStore, SessionContext};
use crate::oauth::consent;
use crate::oauth::extensions::{AuthorizationChecks, TokenChecks};
use crate::oauth::flows::{
    AuthorizationFlow, AuthorizationRequest, ClientCredentialsExchange, ClientCredentialsRequest,
    CodeExchange, Params, RefreshExchange, RefreshRequest, TokenRequest,
};
use crate::oauth::refresh::Lifetimes;
use crate::oauth::revocation::{self, RevocationError};
use crate::oauth::tokens::{Issued, IssuerConfig, RefreshFailure, TokenIssuer};
use crate::oidc::id_token::{self, IdTokenRequest};
use crate::orgs::{self, OrgChoice};
use crate::state::AppState;
use crate::tokens::Algorithm;

/// The longest `state` echoed back into the redirect. Generous for any real client
/// (node-oidc-provider and Hydra clients use a few dozen characters).
const MAX_STATE: usize = 2048;

fn refusal_page(message: impl Into<String>) -> HttpResponse {
    error_page(
        "This sign-in link is not valid",
        message,
        "/account",
        StatusCode::BAD_REQUEST,
    )
}

/// How the authorization response travels back (OAuth 2.0 Multiple Response Types
/// §2.1 and Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    Query,
    FormPost,
}

/// The verified redirect URI and everything needed to answer through it.
struct ClientRedirect {
    uri: Url,
    state: Option<String>,
    mode: ResponseMode,
    issuer: String,
    /// Errors are shown as a page with a link to the client instead of a
    /// redirect: for a self-registered client while nobody is signed in, where a
    /// redirect would make this server an open redirector to whatever URI anyone
    /// registered (RFC 9700 §4.11.2).
    link_only: bool,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage {
    asset_version: &'static str,
    action: String,
    fields: Vec<(String, String)>,
}

impl ClientRedirect {
    /// An error response built here.
    fn error(&self, code: &str, description: &str) -> HttpResponse {
        let mut url = self.uri.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("error", code);
            q.append_pair("error_description", description);
            if let Some(state) = &self.state {
                q.append_pair("state", state);
            }
        }
        if self.link_only {
            url.query_pairs_mut().append_pair("iss", &self.issuer);
            return error_page(
                "The application's request cannot be completed",
                format!(
                    "{description}. Continue to return to the application at {}.",
                    self.uri.origin().ascii_serialization()
                ),
                url.as_str(),
                StatusCode::BAD_REQUEST,
            );
        }
        self.deliver(url)
    }

    /// An error response prepared by oxide-auth (it carries `error` and `state`);
    /// adds what it lacks: a description, and `iss`.
    fn relay_oxide_error(&self, url: Url, refusal: Option<&str>) -> HttpResponse {
        let code = url
            .query_pairs()
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| "invalid_request".to_owned());
        let description = refusal.unwrap_or(match code.as_str() {
            "unsupported_response_type" => "response_type must be code",
            "invalid_scope" => "none of the requested scopes is available to this client",
            "access_denied" => "the user denied the request",
            _ => "the authorization request is invalid",
        });
        self.error(&code, description)
    }

    /// Sends the response parameters in `url`'s query to the client, adding `iss`.
    fn deliver(&self, mut url: Url) -> HttpResponse {
        url.query_pairs_mut().append_pair("iss", &self.issuer);
        match self.mode {
            ResponseMode::Query => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, url.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish(),
            ResponseMode::FormPost => {
                // The registered URI's own query stays in the action; the response
                // parameters go in the body.
                let own = self.uri.query_pairs().count();
                let fields = url
                    .query_pairs()
                    .skip(own)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let mut response = render(
                    &FormPostPage {
                        asset_version: asset_version(),
                        action: self.uri.to_string(),
                        fields,
                    },
                    StatusCode::OK,
                );
                let csp = format!(
                    "default-src 'none'; script-src 'self'; style-src 'self'; form-action {}; \
                     frame-ancestors 'none'; base-uri 'none'",
                    self.uri.origin().ascii_serialization()
                );
                if let Ok(v) = HeaderValue::from_str(&csp) {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_SECURITY_POLICY, v);
                }
                response
            }
        }
    }
}

/// RFC 8707 §2: a `resource` must be one this server issues tokens for.
fn allowed_resource(
    requested: Option<&str>,
    settings: &crate::Settings,
) -> Result<Option<String>, &'static str> {
    match requested {
        None => Ok(None),
        Some(r) if settings.resources.iter().any(|allowed| allowed == r) => Ok(Some(r.to_owned())),
        Some(_) => Err("the resource is not one this server issues tokens for"),
    }
}

/// OIDC Core §3.1.2.1 `prompt`.
#[derive(Debug, Default)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

impl Prompt {
    fn parse(raw: Option<&str>) -> Result<Self, &'static str> {
        let mut prompt = Prompt::default();
        for value in raw.unwrap_or_default().split_whitespace() {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err("prompt has an unknown value"),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values");
        }
        Ok(prompt)
    }
}

/// The person's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    page: PageContext,
    client_name: String,
    /// The application registered itself: its name is its own claim.
    self_registered: bool,
    client_uri: Option<String>,
    email: String,
    scopes: Vec<String>,
    params: Vec<(String, String)>,
}

/// What each scope lets the client do, in the words shown on the consent page.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are on this service".to_owned(),
        "profile" => "See your basic profile".to_owned(),
        "email" => "See your email address".to_owned(),
        "offline_access" => "Keep access while you are not using it".to_owned(),
        "org" => "Act in the organization you choose, with your role there".to_owned(),
        "orgs" => "See which organizations you belong to and your roles".to_owned(),
        s if s.starts_with("org:") => {
            "Act in one of your organizations, with your role there".to_owned()
        }
        other => format!("Use the “{other}” permission"),
    }
}

/// The field our own forms use to carry the person's organization choice; a
/// client cannot make the choice by adding it to its request.
const ORG_CHOICE: &str = "org_choice";

fn take_field(pairs: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = pairs.iter().position(|(n, _)| n == name)?;
    Some(pairs.remove(at).1)
}

pub async fn authorize_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let mut pairs = match super::form::strict_pairs(req.query_string().as_bytes()) {
        Ok(pairs) => pairs,
        Err(why) => return Ok(refusal_page(format!("The request is malformed: {why}."))),
    };
    pairs.retain(|(n, _)| n != ORG_CHOICE);
    authorize(&req, &state, pairs, None, None).await
}

pub async fn authorize_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::PageForm(mut pairs): super::form::PageForm,
) -> Result<HttpResponse, PageError> {
    pairs.retain(|(n, _)| n != ORG_CHOICE);
    authorize(&req, &state, pairs, None, None).await
}

/// The organization picker posts back the whole request plus the choice.
pub async fn org_decision(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::PageForm(mut pairs): super::form::PageForm,
) -> Result<HttpResponse, PageError> {
    // Checked by the router (`csrf::form`); not part of the authorization request.
    take_field(&mut pairs, super::csrf::FIELD);
    let choice = take_field(&mut pairs, ORG_CHOICE).and_then(|c| uuid::Uuid::parse_str(&c).ok());
    authorize(&req, &state, pairs, None, choice).await
}

/// The consent form posts back the whole request plus the decision and CSRF token.
pub async fn consent_decision(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::PageForm(mut pairs): super::form::PageForm,
) -> Result<HttpResponse, PageError> {
    // Checked by the router (`csrf::form`); not part of the authorization request.
    take_field(&mut pairs, super::csrf::FIELD);
    let choice = take_field(&mut pairs, ORG_CHOICE).and_then(|c| uuid::Uuid::parse_str(&c).ok());
    let decision = match take_field(&mut pairs, "decision").as_deref() {
        Some("allow") => Decision::Allow,
        Some("deny") => Decision::Deny,
        _ => {
            return Ok(refusal_page(
                "The consent form was incomplete. Start again from the application.",
            ));
        }
    };
    authorize(&req, &state, pairs, Some(decision), choice).await
}

async fn authorize(
    req: &HttpRequest,
    state: &AppState,
    pairs: Vec<(String, String)>,
    decision: Option<Decision>,
    org_choice: Option<uuid::Uuid>,
) -> Result<HttpResponse, PageError> {
    let params = match Params::unique(pairs) {
        Ok(p) => p,
        Err(why) => return Ok(refusal_page(format!("The request is malformed: {why}."))),
    };

    // 1. The client and its redirect URI, or an HTML page.
    let Some(client_id) = params.get("client_id") else {
        return Ok(refusal_page(
            "The request does not say which application it is for (client_id is missing).",
        ));
    };
    let client = state
        .clients
        .find(&state.db, client_id)
        .await
        .map_err(|e| unavailable(&e))?;
    let Some(client) = client else {
        return Ok(refusal_page(
            "The application is not registered here (unknown client_id).",
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Ok(refusal_page(
            "The request does not say where to return (redirect_uri is missing).",
        ));
    };
    let Some(uri) = Url::parse(redirect_uri)
        .ok()
        .filter(|_| client.redirect_allowed(redirect_uri))
    else {
        return Ok(refusal_page(
            "The return address is not registered for this application (redirect_uri mismatch).",
        ));
    };
    // A state too long to echo back safely cannot be answered at the redirect
    // URI (RFC 6749 §4.1.2.1 requires echoing it), so it gets the page.
    if params.get("state").is_some_and(|s| s.len() > MAX_STATE) {
        return Ok(refusal_page(format!(
            "The request's state is longer than {MAX_STATE} characters."
        )));
    }
    // The person behind the browser, if anyone is signed in.
    let current = signed_in(req, state).await?;
    let mut redirect = ClientRedirect {
        uri,
        state: params.get("state").map(str::to_owned),
        mode: ResponseMode::Query,
        issuer: state.settings.issuer_str().to_owned(),
        link_only: client.self_registered && current.is_none(),
    };

    // 2. Everything else is the client's to hear about.
    match params.get("response_mode") {
        None | Some("query") => {}
        Some("form_post") => redirect.mode = ResponseMode::FormPost,
        Some(_) => {
            return Ok(redirect.error(
                "invalid_request",
                "response_mode must be query or form_post",
            ));
        }
    }
    if params.get("request").is_some() {
        return Ok(redirect.error("request_not_supported", "request objects are not supported"));
    }
    if params.get("request_uri").is_some() {
        return Ok(redirect.error("request_uri_not_supported", "request_uri is not supported"));
    }
    if params.get("nonce").is_some_and(|n| n.len() > MAX_NONCE) {
        return Ok(redirect.error(
            "invalid_request",
            &format!("nonce is longer than {MAX_NONCE} characters"),
        ));
    }
    let prompt = match Prompt::parse(params.get("prompt")) {
        Ok(p) => p,
        Err(why) => return Ok(redirect.error("invalid_request", why)),
    };
    let max_age = match params.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => {
            return Ok(redirect.error(
                "invalid_request",
                "max_age must be a whole number of seconds",
            ));
        }
    };
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Ok(redirect.error(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }

    let resource = match allowed_resource(params.get("resource"), &state.settings) {
        Ok(r) => r,
        Err(why) => return Ok(redirect.error("invalid_target", why)),
    };
    let mut flow = AuthorizationFlow {
        registry: ClientRegistry::new(Some(client.clone())),
        codes: CodeStore::new(state.cache.clone(), None),
        checks: AuthorizationChecks::default(),
    };
    flow.checks.resource = resource;
    let request = AuthorizationRequest(&params);
    let pending =
        match oxide_auth_async::code_grant::authorization::authorization_code(&mut flow, &request)
            .await
        {
            Ok(pending) => pending,
            Err(AuthorizationError::Redirect(url)) => {
                return Ok(redirect.relay_oxide_error(url.into(), flow.checks.refusal));
            }
            Err(AuthorizationError::Ignore) => {
                return Ok(refusal_page(
                    "The return address is not registered for this application.",
                ));
            }
            Err(AuthorizationError::PrimitiveError) => return Err(PageError::Unavailable),
        };

    // 3. The person behind the browser.
    let now = Utc::now();
    // OIDC Core §3.1.2.1: a sign-in older than max_age seconds must be redone.
    let stale = |s: &SignedIn| {
        max_age.is_some_and(|age| now - s.session.auth_time > chrono::Duration::seconds(age))
    };
    // OIDC Core §3.1.2.1: `id_token_hint` names who the client expects; a session of
    // anyone else does not count.
    let hinted_sub = match params.get("id_token_hint") {
        None => None,
        Some(hint) => {
            let claims = state.keys.keys().verify_ignoring_expiry(
                hint,
                "JWT",
                state.settings.issuer_str(),
                now,
            );
            match claims {
                Ok(c) => c.get("sub").and_then(|v| v.as_str()).map(str::to_owned),
                Err(_) => {
                    return Ok(redirect.error(
                        "invalid_request",
                        "id_token_hint is not an id_token of this server",
                    ));
                }
            }
        }
    };
    let someone_else = |s: &SignedIn| {
        hinted_sub
            .as_deref()
            .is_some_and(|sub| sub != s.session.user_id.to_string())
    };
    let current = match current {
        Some(s) if !prompt.login && !stale(&s) && !someone_else(&s) => s,
        _ if prompt.none => {
            return Ok(redirect.error("login_required", "the user is not signed in"));
        }
        // A session that exists but does not do (too old, another user, or a fresh
        // sign-in asked for) must not bounce straight back from the sign-in page.
        existing => return Ok(send_to_login(&params, existing.is_some())),
    };

    // 3b. The organization, when the client asks for one (`org` or `org:{uuid}`).
    let granted = crate::oauth::scope_list(&pending.pre_grant().scope.to_string());
    let memberships = if granted.iter().any(|s| s == "org" || s.starts_with("org:")) {
        Some(
            orgs::memberships_of(&state.db, current.session.user_id)
                .await
                .map_err(|e| unavailable(&e))?,
        )
    } else {
        None
    };
    let chosen_org = match memberships {
        None => None,
        Some(memberships) => {
            match orgs::choose_for_grant(&granted, &memberships, org_choice, client.org_optional) {
                OrgChoice::Chosen(id) => Some(id),
                OrgChoice::Without => None,
                OrgChoice::Refused(why) => return Ok(redirect.error("access_denied", why)),
                OrgChoice::InvalidScope(why) => return Ok(redirect.error("invalid_scope", why)),
                OrgChoice::Ask if prompt.none => {
                    return Ok(redirect.error(
                        "interaction_required",
                        "the user must choose an organization",
                    ));
                }
                OrgChoice::Ask => {
                    return Ok(picker_page(
                        &client,
                        &current,
                        &params,
                        &memberships,
                        &redirect.uri,
                    ));
                }
            }
        }
    };
    // Our own forms carry the choice on to the consent page.
    let params = match chosen_org {
        Some(org) if org_choice.is_some() => params.with(ORG_CHOICE, &org.to_string()),
        _ => params,
    };

    // 4. Consent.
    let scope = crate::oauth::scope_list(&pending.pre_grant().scope.to_string()).join(" ");
    match decision {
        Some(Decision::Deny) => {
            return Ok(match pending.deny() {
                Err(AuthorizationError::Redirect(url)) => {
                    redirect.relay_oxide_error(url.into(), None)
                }
                _ => redirect.error("access_denied", "the user denied the request"),
            });
        }
        Some(Decision::Allow) => {
            consent::remember(
                &state.db,
                current.session.user_id,
                &client.client_id,
                &scope,
            )
            .await
            .map_err(|e| unavailable(&e))?;
        }
        None => {
            let remembered = !prompt.consent
                && consent::covers(
                    &state.db,
                    current.session.user_id,
                    &client.client_id,
                    &scope,
                )
                .await
                .map_err(|e| unavailable(&e))?;
            if !(client.first_party || remembered) {
                if prompt.none {
                    return Ok(
                        redirect.error("consent_required", "the user has not allowed this client")
                    );
                }
                return Ok(consent_page(
                    &client,
                    &current,
                    &scope,
                    &params,
                    &redirect.uri,
                ));
            }
        }
    }

    // 5. The code.
    flow.codes.org = chosen_org;
    flow.codes.session = Some(SessionContext {
        session_id: current.session.id,
        auth_time: current.session.auth_time,
        amr: current.session.amr.clone(),
    });
    let owner = current.session.user_id.to_string();
    match pending.authorize(&mut flow, Cow::Owned(owner)).await {
        Ok(url) => Ok(redirect.deliver(url)),
        Err(_) => Err(PageError::Unavailable),
    }
}

#[derive(Template)]
#[template(path = "picker.html")]
struct PickerPage<'a> {
    page: PageContext,
    client_name: &'a str,
    params: Vec<(String, String)>,
    orgs: &'a [orgs::Membership],
}

fn picker_page(
    client: &Client,
    current: &SignedIn,
    params: &Params,
    memberships: &[orgs::Membership],
    redirect_uri: &Url,
) -> HttpResponse {
    let page = PickerPage {
        page: PageContext {
            asset_version: asset_version(),
            csrf: current.csrf(),
            signed_in_as: Some(current.session.email.clone()),
        },
        client_name: &client.name,
        // `max_age` was checked on the way here (see the consent page).
        params: params.without(&["max_age"]).pairs().to_vec(),
        orgs: memberships,
    };
    let mut response = render(&page, StatusCode::OK);
    // The choice can end at the client (consent already given).
    allow_form_target(&mut response, form_target(redirect_uri).as_deref());
    response
}

/// To the sign-in page, then back to this same request. `prompt=login` and
/// `max_age` are dropped from the way back: the sign-in about to happen satisfies
/// both, and checking them again would send the person round forever (`max_age=0`
/// is older than any sign-in by the time it is checked). `auth_time` in the
/// id_token tells the client when it was. `fresh` shows the form even to a
/// signed-in browser.
fn send_to_login(params: &Params, fresh: bool) -> HttpResponse {
    let mut back = params.without(&["max_age"]);
    if let Some(prompt) = params.get("prompt") {
        let rest: Vec<&str> = prompt
            .split_whitespace()
            .filter(|p| *p != "login")
            .collect();
        back = back.without(&["prompt"]);
        if !rest.is_empty() {
            back = back.with("prompt", &rest.join(" "));
        }
    }
    let return_to = format!("/authorize?{}", back.to_query());
    let mut login = url::form_urlencoded::Serializer::new(String::new());
    login.append_pair("return_to", &return_to);
    if fresh {
        login.append_pair("prompt", "login");
    }
    if let Some(hint) = params.get("login_hint") {
        login.append_pair("login_hint", hint);
    }
    see_other(&format!("/login?{}", login.finish()))
}

fn consent_page(
    client: &Client,
    current: &SignedIn,
    scope: &str,
    params: &Params,
    redirect_uri: &Url,
) -> HttpResponse {
    let page = ConsentPage {
        page: PageContext {
            asset_version: asset_version(),
            csrf: current.csrf(),
            signed_in_as: Some(current.session.email.clone()),
        },
        client_name: client.name.clone(),
        self_registered: client.self_registered,
        client_uri: client.client_uri.clone(),
        email: current.session.email.clone(),
        scopes: scope.split_whitespace().map(describe_scope).collect(),
        // `prompt=consent` is satisfied by this very page, and `max_age` was
        // checked on the way here: answering must not send the person to sign in
        // again.
        params: params.without(&["prompt", "max_age"]).pairs().to_vec(),
    };
    let mut response = render(&page, StatusCode::OK);
    // Allow and Deny both answer with a 303 to the client.
    allow_form_target(&mut response, form_target(redirect_uri).as_deref());
    response
}

/// The form target (see [`form_target`]) of the authorization request a sign-in
/// page returns to, once its redirect URI is verified as the client's: a sign-in
/// that ends at `/authorize` may be answered straight away with a 303 to the
/// client. `None` for any other `return_to`, or one that does not verify.
pub(super) async fn return_target(state: &AppState, return_to: Option<&str>) -> Option<String> {
    let query = return_to?.strip_prefix("/authorize?")?;
    let mut client_id = None;
    let mut redirect_uri = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "client_id" => client_id = Some(value.into_owned()),
            "redirect_uri" => redirect_uri = Some(value.into_owned()),
            _ => {}
        }
    }
    let (client_id, redirect_uri) = (client_id?, redirect_uri?);
    match state
        .clients
        .verified_redirect(&state.db, &client_id, &redirect_uri)
        .await
    {
        Ok(uri) => form_target(&uri?),
        Err(e) => {
            // The page still works; only its answer cannot end at the client.
            tracing::warn!("sign-in page: client lookup failed: {e}");
            None
        }
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> PageError {
    tracing::error!("authorization failed: {e}");
    PageError::Unavailable
}

// ---------------------------------------------------------------- /token

/// An RFC 6749 §5.2 refusal (see [`OAuthError`] for how it is answered).
fn refuse<T>(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Result<T, OAuthError> {
    Err(OAuthError::new(code, description))
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// `client_secret_basic`: RFC 6749 §2.3.1 — both halves are form-urlencoded.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, Vec<u8>)>, &'static str> {
    let Some(value) = super::authorization_header(req)? else {
        return Ok(None);
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return Err("only Basic client authentication is accepted here");
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "malformed Basic credentials")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "malformed Basic credentials")?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or("malformed Basic credentials")?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret).into_bytes())))
}

/// A form-encoded request from an authenticated client (token, revocation and
/// introspection endpoints all start here).
struct ClientRequest {
    client: Client,
    params: Params,
    basic: Option<(String, Vec<u8>)>,
    /// The secret the client presented (Basic or body), for oxide-auth's own check.
    secret: Option<Vec<u8>>,
}

async fn authenticated_request(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<ClientRequest, OAuthError> {
    if !super::form::is_form(req) {
        return refuse(
            ErrorCode::InvalidRequest,
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let pairs = super::form::strict_pairs(body)
        .map_err(|why| OAuthError::new(ErrorCode::InvalidRequest, why.to_owned()))?;
    let params =
        Params::unique(pairs).map_err(|why| OAuthError::new(ErrorCode::InvalidRequest, why))?;
    let basic = basic_credentials(req)
        .map_err(|why| OAuthError::new(ErrorCode::InvalidClient, why.to_owned()))?;

    let client_id = match (&basic, params.get("client_id")) {
        (Some((id, _)), Some(body)) if id != body => {
            return refuse(
                ErrorCode::InvalidRequest,
                "client_id differs from the authenticated client",
            );
        }
        (Some((id, _)), _) => id.clone(),
        (None, Some(id)) => id.to_owned(),
        (None, None) => {
            return refuse(
                ErrorCode::InvalidClient,
                "client authentication is required",
            );
        }
    };
    if basic.is_some() && params.get("client_secret").is_some() {
        return refuse(
            ErrorCode::InvalidRequest,
            "use one client authentication method, not two",
        );
    }
    let client = match state.clients.find(&state.db, &client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return refuse(
                ErrorCode::InvalidClient,
                "unknown client or wrong credentials",
            );
        }
        Err(e) => {
            tracing::error!("client lookup: {e}");
            return Err(OAuthError::unavailable());
        }
    };
    let secret = basic
        .as_ref()
        .map(|(_, s)| s.clone())
        .or(params.get("client_secret").map(|s| s.as_bytes().to_vec()));
    if !client.authenticates(secret.as_deref()) {
        return refuse(
            ErrorCode::InvalidClient,
            "unknown client or wrong credentials",
        );
    }
    // A secret is only as safe as the channel the client agreed to send it on
    // (RFC 7591 §2); Hydra and node-oidc-provider hold clients to it too. Checked
    // after the secret so that only the client itself learns its method.
    let used = match (&basic, &secret) {
        (Some(_), _) => AuthMethod::ClientSecretBasic,
        (None, Some(_)) => AuthMethod::ClientSecretPost,
        (None, None) => AuthMethod::None,
    };
    if used != client.auth_method {
        return refuse(
            ErrorCode::InvalidClient,
            format!(
                "this client is registered to authenticate with {}, not {used}",
                client.auth_method
            ),
        );
    }
    Ok(ClientRequest {
        client,
        params,
        basic,
        secret,
    })
}

pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, OAuthError> {
    let ClientRequest {
        client,
        params,
        basic,
        secret,
    } = authenticated_request(&req, &state, &body).await?;
    let Some(grant_type) = params.get("grant_type") else {
        return refuse(ErrorCode::InvalidRequest, "grant_type is required");
    };
    let Some(grant_type) = GrantType::parse(grant_type) else {
        return refuse(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type must be one of {}", GRANT_TYPES.join(", ")),
        );
    };
    if !client.allows_grant(grant_type) {
        return refuse(
            ErrorCode::UnauthorizedClient,
            "this client may not use this grant type",
        );
    }
    let credentials = secret.map(|s| (client.client_id.clone(), s));
    let resource = match allowed_resource(params.get("resource"), &state.settings) {
        Ok(r) => r,
        Err(why) => return refuse(ErrorCode::InvalidTarget, why),
    };
    let mut issuer = TokenIssuer::new(
        issuer_config(&state),
        &client.client_id,
        grant_type == GrantType::AuthorizationCode && client.allows_grant(GrantType::RefreshToken),
    );
    issuer.resource = resource;
    // Without `scope` oxide-auth keeps the granted one, so nothing it checks after
    // recovering the token can refuse a token the one-step rotation accepted.
    issuer.rotate_on_recovery =
        grant_type == GrantType::RefreshToken && params.get("scope").is_none();
    match grant_type {
        GrantType::RefreshToken => {
            refresh_grant(&state, issuer, client, &params, credentials).await
        }
        GrantType::ClientCredentials => match credentials {
            Some(credentials) => {
                client_credentials_grant(&state, issuer, client, &params, credentials).await
            }
            // Only confidential clients are registered for this grant.
            None => refuse(
                ErrorCode::UnauthorizedClient,
                "a public client cannot act for itself",
            ),
        },
        GrantType::AuthorizationCode => exchange_code(&state, issuer, client, &params, basic).await,
    }
}

/// RFC 6749 §4.4: the client acts for itself; `sub` is its client_id.
async fn client_credentials_grant(
    state: &AppState,
    issuer: TokenIssuer,
    client: Client,
    params: &Params,
    credentials: (String, Vec<u8>),
) -> Result<HttpResponse, OAuthError> {
    let id_token_alg = client.id_token_alg;
    let owner = client.client_id.clone();
    let mut flow = ClientCredentialsExchange {
        issuer,
        registry: ClientRegistry::for_client_credentials(client),
        codes: CodeStore::new(state.cache.clone(), None),
        no_extension: (),
    };
    let request = ClientCredentialsRequest {
        params,
        credentials,
    };
    let pending = match oxide_auth_async::code_grant::client_credentials::client_credentials(
        &mut flow, &request,
    )
    .await
    {
        Ok(pending) => pending,
        // The client is already authenticated and bound, so oxide-auth's
        // `Ignore` can only mean the scope negotiation found nothing to grant.
        Err(ClientCredentialsError::Ignore | ClientCredentialsError::Invalid(_)) => {
            return refuse(
                ErrorCode::InvalidScope,
                "none of the requested scopes is available to this client",
            );
        }
        Err(ClientCredentialsError::Unauthorized(..)) => {
            return refuse(
                ErrorCode::InvalidClient,
                "unknown client or wrong credentials",
            );
        }
        Err(_) => return Err(OAuthError::unavailable()),
    };
    match (
        pending.issue(&mut flow, owner, false).await,
        &flow.issuer.issued,
    ) {
        (Ok(_), Some(issued)) => token_success(state, issued, id_token_alg),
        _ => Err(OAuthError::unavailable()),
    }
}

/// RFC 7009 revocation: 200 with an empty body for every token the client may
/// revoke, known or not.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, OAuthError> {
    let request = authenticated_request(&req, &state, &body).await?;
    let Some(token) = request.params.get("token") else {
        return refuse(ErrorCode::InvalidRequest, "token is required");
    };
    let hint = request.params.get("token_type_hint");
    match revocation::revoke(
        &issuer_config(&state),
        &request.client.client_id,
        token,
        hint,
    )
    .await
    {
        Ok(()) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        Err(RevocationError::NotOwner) => refuse(
            ErrorCode::UnauthorizedClient,
            "the token was issued to another client",
        ),
        Err(RevocationError::Storage(e)) => {
            tracing::error!("revocation: {e}");
            Err(OAuthError::unavailable())
        }
    }
}

/// RFC 7662 introspection for authenticated confidential clients: a public client
/// proves nothing but its id, so it may not inspect tokens.
pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    super::form::Body(body): super::form::Body,
) -> Result<HttpResponse, OAuthError> {
    let request = authenticated_request(&req, &state, &body).await?;
    if request.client.is_public() {
        return refuse(
            ErrorCode::InvalidClient,
            "introspection needs a confidential client",
        );
    }
    let Some(token) = request.params.get("token") else {
        return refuse(ErrorCode::InvalidRequest, "token is required");
    };
    let hint = request.params.get("token_type_hint");
    match revocation::introspect(
        &issuer_config(&state),
        &request.client.client_id,
        token,
        hint,
    )
    .await
    {
        Ok(answer) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(answer)),
        Err(e) => {
            tracing::error!("introspection: {e}");
            Err(OAuthError::unavailable())
        }
    }
}

fn issuer_config(state: &AppState) -> IssuerConfig {
    let settings = &state.settings;
    IssuerConfig {
        keys: state.keys.clone(),
        cache: state.cache.clone(),
        db: state.db.clone(),
        issuer: settings.issuer_str().to_owned(),
        audience: settings.default_audience.clone(),
        access_ttl: settings.access_token_ttl,
        refresh: Lifetimes {
            idle: settings.refresh_token_idle_ttl,
            absolute: settings.refresh_token_ttl,
        },
    }
}

async fn exchange_code(
    state: &AppState,
    issuer: TokenIssuer,
    client: Client,
    params: &Params,
    basic: Option<(String, Vec<u8>)>,
) -> Result<HttpResponse, OAuthError> {
    let id_token_alg = client.id_token_alg;
    let mut checks = TokenChecks::default();
    checks.resource = issuer.resource.clone();
    let mut flow = CodeExchange {
        registry: ClientRegistry::new(Some(client)),
        codes: CodeStore::new(state.cache.clone(), Some(state.db.clone())),
        issuer,
        checks,
    };
    // With Basic authentication the body's client_id (already checked equal) would
    // count as a second credential to oxide-auth.
    let body_params;
    let params = if basic.is_some() {
        body_params = params.without(&["client_id"]);
        &body_params
    } else {
        params
    };
    let request = TokenRequest { params, basic };
    let result =
        oxide_auth_async::code_grant::access_token::access_token(&mut flow, &request).await;
    match (result, &flow.issuer.issued) {
        (Ok(_), Some(issued)) => token_success(state, issued, id_token_alg),
        (Ok(_), None) => Err(OAuthError::unavailable()),
        (Err(error), _) => exchange_error(error, &flow),
    }
}

async fn refresh_grant(
    state: &AppState,
    issuer: TokenIssuer,
    client: Client,
    params: &Params,
    credentials: Option<(String, Vec<u8>)>,
) -> Result<HttpResponse, OAuthError> {
    let id_token_alg = client.id_token_alg;
    let mut flow = RefreshExchange {
        registry: ClientRegistry::new(Some(client)),
        issuer,
    };
    let request = RefreshRequest {
        params,
        credentials,
    };
    let result = oxide_auth_async::code_grant::refresh::refresh(&mut flow, &request).await;
    if let Some(failure) = flow.issuer.refresh_failure {
        let description = match failure {
            RefreshFailure::Invalid => "the refresh token is invalid, expired or revoked",
            RefreshFailure::WrongClient => "the refresh token was issued to another client",
            RefreshFailure::Reused => {
                "the refresh token was already used; every token descended from it is revoked"
            }
            RefreshFailure::MembershipGone => {
                "the user is no longer a member of the organization this grant was made in"
            }
            RefreshFailure::AccountDisabled => "the account this grant was made for is disabled",
        };
        return refuse(ErrorCode::InvalidGrant, description);
    }
    match (result, &flow.issuer.issued) {
        (Ok(_), Some(issued)) => token_success(state, issued, id_token_alg),
        (Ok(_), None) | (Err(RefreshError::Primitive), _) => Err(OAuthError::unavailable()),
        (Err(RefreshError::Invalid(mut e)), _) => match e.description().kind() {
            AccessTokenErrorType::InvalidScope => refuse(
                ErrorCode::InvalidScope,
                "a refresh may narrow the scope, never widen it",
            ),
            AccessTokenErrorType::InvalidGrant => refuse(
                ErrorCode::InvalidGrant,
                "the refresh token is invalid for this client",
            ),
            _ => refuse(ErrorCode::InvalidRequest, "refresh_token is required"),
        },
        (Err(RefreshError::Unauthorized(..)), _) => refuse(
            ErrorCode::InvalidClient,
            "unknown client or wrong credentials",
        ),
    }
}

/// The RFC 6749 §5.1 response, with an id_token when `openid` was granted.
fn token_success(
    state: &AppState,
    issued: &Issued,
    id_token_alg: Algorithm,
) -> Result<HttpResponse, OAuthError> {
    let settings = &state.settings;
    let id_token = if issued.scope.split_whitespace().any(|s| s == "openid") {
        let request = IdTokenRequest {
            issuer: settings.issuer_str(),
            subject: &issued.subject,
            client_id: &issued.client_id,
            nonce: issued.nonce.as_deref(),
            session: issued.session.as_ref(),
            access_token: &issued.access_token,
            alg: id_token_alg,
            ttl: settings.id_token_ttl,
            org: &issued.org_claims,
        };
        match id_token::sign(&state.keys.keys(), &request, Utc::now()) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::error!("cannot sign an id_token: {e}");
                return Err(OAuthError::unavailable());
            }
        }
    } else {
        None
    };
    let body = TokenResponse {
        access_token: &issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: &issued.scope,
        refresh_token: issued.refresh_token.as_deref(),
        id_token,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}

/// Turns oxide-auth's verdict into the precise RFC 6749 §5.2 answer.
fn exchange_error(mut error: TokenError, flow: &CodeExchange) -> Result<HttpResponse, OAuthError> {
    match flow.issuer.refresh_failure {
        Some(RefreshFailure::MembershipGone) => {
            return refuse(
                ErrorCode::InvalidGrant,
                "the user is no longer a member of the organization chosen for this code",
            );
        }
        Some(RefreshFailure::AccountDisabled) => {
            return refuse(
                ErrorCode::InvalidGrant,
                "the account this code was issued for is disabled",
            );
        }
        _ => {}
    }
    match flow.codes.failure {
        Some(CodeFailure::Replayed) => {
            return refuse(
                ErrorCode::InvalidGrant,
                "the code was already used; tokens issued from it are revoked",
            );
        }
        Some(CodeFailure::Invalid) => {
            return refuse(ErrorCode::InvalidGrant, "the code is invalid or expired");
        }
        None => {}
    }
    if let Some(refusal) = flow.checks.refusal {
        return Err(refusal.into());
    }
    if matches!(error, TokenError::Primitive(_)) {
        return Err(OAuthError::unavailable());
    }
    let kind = error
        .description()
        .map(|d| d.kind())
        .unwrap_or(AccessTokenErrorType::InvalidRequest);
    match kind {
        AccessTokenErrorType::InvalidGrant => refuse(
            ErrorCode::InvalidGrant,
            "the code was issued to another client or redirect_uri, or has expired",
        ),
        AccessTokenErrorType::InvalidClient => refuse(
            ErrorCode::InvalidClient,
            "unknown client or wrong credentials",
        ),
        AccessTokenErrorType::UnauthorizedClient => refuse(
            ErrorCode::UnauthorizedClient,
            "this client may not use this grant",
        ),
        AccessTokenErrorType::UnsupportedGrantType => refuse(
            ErrorCode::UnsupportedGrantType,
            "grant_type is not supported",
        ),
        AccessTokenErrorType::InvalidScope => {
            refuse(ErrorCode::InvalidScope, "the scope is invalid")
        }
        AccessTokenErrorType::InvalidRequest => refuse(
            ErrorCode::InvalidRequest,
            "code and redirect_uri are required",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_values_combine_by_the_rules() {
        assert!(Prompt::parse(Some("login consent")).is_ok());
        assert!(Prompt::parse(Some("none")).unwrap().none);
        assert!(Prompt::parse(Some("none login")).is_err());
        assert!(Prompt::parse(Some("sideways")).is_err());
        assert!(!Prompt::parse(None).unwrap().login);
    }
}
