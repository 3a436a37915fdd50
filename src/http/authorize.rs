//! `/authorize` and the pages on its way: the organization picker and the consent
//! page. What a request gets is decided in `oauth::authorize`; this module turns
//! the outcome into a page or an answer at the client's redirect URI (with `iss`,
//! RFC 9207), in the response mode the client asked for.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use url::Url;

use super::browser::{
    PageContext, PageError, SignedIn, allow_form_target, asset_version, error_page, form_target,
    render, see_other, signed_in,
};
use super::form::PageForm;
use crate::error::ErrorCode;
use crate::oauth::authorize::{
    self, Decision, Interaction, ORG_CHOICE, Outcome, Reply, ResponseMode,
};
use crate::oauth::clients::Client;
use crate::oauth::params::Params;
use crate::orgs;
use crate::state::AppState;

fn refusal_page(message: impl Into<String>) -> HttpResponse {
    error_page(
        "This sign-in link is not valid",
        message,
        "/account",
        StatusCode::BAD_REQUEST,
    )
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage {
    asset_version: &'static str,
    action: String,
    fields: Vec<(String, String)>,
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
    scopes: Vec<Cow<'static, str>>,
    params: Vec<(String, String)>,
}

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
    answer(&req, &state, pairs, Interaction::default()).await
}

pub async fn authorize_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    PageForm(mut pairs): PageForm,
) -> Result<HttpResponse, PageError> {
    pairs.retain(|(n, _)| n != ORG_CHOICE);
    answer(&req, &state, pairs, Interaction::default()).await
}

/// The organization picker posts back the whole request plus the choice.
pub async fn org_decision(
    req: HttpRequest,
    state: web::Data<AppState>,
    PageForm(mut pairs): PageForm,
) -> Result<HttpResponse, PageError> {
    // Checked by the router (`csrf::form`); not part of the authorization request.
    take_field(&mut pairs, super::csrf::FIELD);
    let interaction = Interaction {
        decision: None,
        org_choice: take_org_choice(&mut pairs),
    };
    answer(&req, &state, pairs, interaction).await
}

/// The consent form posts back the whole request plus the decision.
pub async fn consent_decision(
    req: HttpRequest,
    state: web::Data<AppState>,
    PageForm(mut pairs): PageForm,
) -> Result<HttpResponse, PageError> {
    // Checked by the router (`csrf::form`); not part of the authorization request.
    take_field(&mut pairs, super::csrf::FIELD);
    let org_choice = take_org_choice(&mut pairs);
    let decision = match take_field(&mut pairs, "decision").as_deref() {
        Some("allow") => Decision::Allow,
        Some("deny") => Decision::Deny,
        _ => {
            return Ok(refusal_page(
                "The consent form was incomplete. Start again from the application.",
            ));
        }
    };
    let interaction = Interaction {
        decision: Some(decision),
        org_choice,
    };
    answer(&req, &state, pairs, interaction).await
}

fn take_org_choice(pairs: &mut Vec<(String, String)>) -> Option<uuid::Uuid> {
    take_field(pairs, ORG_CHOICE).and_then(|c| uuid::Uuid::parse_str(&c).ok())
}

/// Decides the request and renders what it gets.
async fn answer(
    req: &HttpRequest,
    state: &AppState,
    pairs: Vec<(String, String)>,
    interaction: Interaction,
) -> Result<HttpResponse, PageError> {
    let current = signed_in(req, state).await?;
    let session = current.as_ref().map(|s| &s.session);
    let config = state.issuer_config();
    let outcome = authorize::decide(&config, &state.clients, pairs, session, interaction)
        .await
        .map_err(|_| PageError::Unavailable)?;
    let issuer = state.settings.issuer_str();
    Ok(match outcome {
        Outcome::Invalid(why) => refusal_page(why),
        Outcome::Code { reply, code } => deliver(&reply, issuer, &[("code", &code)]),
        Outcome::Refuse {
            reply,
            code,
            description,
        } => refuse(&reply, issuer, code, &description),
        Outcome::SignIn { params, fresh } => send_to_login(&params, fresh),
        Outcome::VerifyEmail { email, params } => match &current {
            Some(current) => super::email::verify_first_page(
                current,
                &email,
                &format!("/authorize?{}", params.to_query()),
            ),
            None => return Err(PageError::Unavailable),
        },
        Outcome::PickOrganization {
            reply,
            client,
            params,
            memberships,
        } => match &current {
            Some(current) => picker_page(&client, current, &params, &memberships, &reply.uri),
            None => return Err(PageError::Unavailable),
        },
        Outcome::Consent {
            reply,
            client,
            params,
            scope,
        } => match &current {
            Some(current) => consent_page(&client, current, &scope, &params, &reply.uri),
            None => return Err(PageError::Unavailable),
        },
    })
}

/// An RFC 6749 §4.1.2.1 error response to the client, or, for `link_only`, a
/// page with a link to it.
fn refuse(reply: &Reply, issuer: &str, code: ErrorCode, description: &str) -> HttpResponse {
    let fields = [("error", code.as_str()), ("error_description", description)];
    if !reply.link_only {
        return deliver(reply, issuer, &fields);
    }
    let url = response_url(reply, issuer, &fields);
    error_page(
        "The application's request cannot be completed",
        format!(
            "{description}. Continue to return to the application at {}.",
            reply.uri.origin().ascii_serialization()
        ),
        url.as_str(),
        StatusCode::BAD_REQUEST,
    )
}

/// The redirect URI with the response parameters, `state` and `iss` added to its
/// own query.
fn response_url(reply: &Reply, issuer: &str, fields: &[(&str, &str)]) -> Url {
    let mut url = reply.uri.clone();
    {
        let mut query = url.query_pairs_mut();
        query.extend_pairs(fields);
        if let Some(state) = &reply.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    url
}

/// Sends the response parameters to the client in its response mode.
fn deliver(reply: &Reply, issuer: &str, fields: &[(&str, &str)]) -> HttpResponse {
    let url = response_url(reply, issuer, fields);
    if reply.mode == ResponseMode::Query {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .finish();
    }
    // The registered URI's own query stays in the action; the response
    // parameters go in the body.
    let own = reply.uri.query_pairs().count();
    let fields = url
        .query_pairs()
        .skip(own)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut response = render(
        &FormPostPage {
            asset_version: asset_version(),
            action: reply.uri.to_string(),
            fields,
        },
        StatusCode::OK,
    );
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; form-action {}; \
         frame-ancestors 'none'; base-uri 'none'",
        reply.uri.origin().ascii_serialization()
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// What each scope lets the client do, in the words shown on the consent page.
pub(super) fn describe_scope(scope: &str) -> Cow<'static, str> {
    match scope {
        "openid" => "Know who you are on this service".into(),
        "profile" => "See your basic profile".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Keep access while you are not using it".into(),
        "org" => "Act in the organization you choose, with your role there".into(),
        "orgs" => "See which organizations you belong to and your roles".into(),
        s if s.starts_with("org:") => {
            "Act in one of your organizations, with your role there".into()
        }
        other => format!("Use the “{other}” permission").into(),
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
            admin: false,
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
            admin: false,
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
