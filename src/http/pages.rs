//! Sign-up, sign-in, sign-out and the account page.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::browser::{
    PageContext, PageError, PreSession, SignedIn, allow_form_target, asset_version, check_csrf,
    expired_session_cookie, render, safe_return_to, see_other, session_cookie, signed_in,
};
use crate::identity::throttle::Admission;
use crate::identity::{IdentityError, account, normalize_email, users};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
    /// `login` asks for a fresh sign-in even with a live session (OIDC `prompt`).
    prompt: Option<String>,
    /// Pre-fills the Email field (OIDC `login_hint`).
    login_hint: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: PageContext,
    error: Option<String>,
    email: String,
    return_to: String,
    signup_open: bool,
    passkeys: bool,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    page: PageContext,
    error: Option<String>,
    email: String,
    return_to: String,
    signup_open: bool,
    passkeys: bool,
}

#[derive(Deserialize)]
pub struct CredentialsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    return_to: Option<String>,
}

fn pre_session_page(pre: &PreSession) -> PageContext {
    PageContext {
        asset_version: asset_version(),
        csrf: pre.csrf(),
        signed_in_as: None,
    }
}

/// A sign-in or sign-up page whose form may end at the client `target`.
fn page_for(mut response: HttpResponse, target: Option<&str>) -> HttpResponse {
    allow_form_target(&mut response, target);
    response
}

fn with_cookie(mut response: HttpResponse, pre: &PreSession) -> HttpResponse {
    if let Some(c) = &pre.new_cookie {
        let _ = response.add_cookie(c);
    }
    response
}

/// The address per-address limits count against: the TCP peer, unless the peer is
/// one of `TESSERA_TRUSTED_PROXIES`, in which case `X-Forwarded-For` is read from
/// the right and the first address that is not a trusted proxy is the client. A
/// header from anyone else is ignored: any client can forge one.
pub(super) fn client_ip(req: &HttpRequest) -> String {
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_address(req.peer_addr().map(|a| a.ip()), forwarded, trusted)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn client_address<'a>(
    peer: Option<std::net::IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[crate::config::IpRange],
) -> Option<std::net::IpAddr> {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|range| range.contains(ip));
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An entry that is not an address was not written by a proxy we trust:
        // stop at the last hop we could vouch for.
        let Ok(ip) = hop.trim().parse::<std::net::IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

pub(super) fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A form posted before sign-in: its token must match the pre-session cookie, which
/// must already exist (a POST that brings none was not made from our form).
fn checked_pre_session(
    req: &HttpRequest,
    state: &AppState,
    submitted: &str,
) -> Result<PreSession, PageError> {
    let pre = PreSession::from_request(req, &state.settings)?;
    let secret = pre.new_cookie.is_none().then_some(pre.secret.as_str());
    check_csrf(req, secret, submitted)?;
    Ok(pre)
}

/// Signs `user` in with a password session and sends them on to `return_to`.
async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    user: &users::User,
    return_to: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let started = state
        .sessions
        .start(user, &["pwd"], Some(client_ip(req)), user_agent(req))
        .await
        .map_err(unavailable)?;
    let mut response = see_other(return_to.unwrap_or("/account"));
    let _ = response.add_cookie(&session_cookie(&state.settings, started.token));
    Ok(response)
}

/// The server's root is for people: their account, which sends them to sign in
/// when they are not.
pub async fn home() -> HttpResponse {
    see_other("/account")
}

pub async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ReturnTo>,
) -> Result<HttpResponse, PageError> {
    let return_to = safe_return_to(query.return_to.as_deref());
    let fresh_sign_in = query.prompt.as_deref() == Some("login");
    if !fresh_sign_in && signed_in(&req, &state).await?.is_some() {
        return Ok(see_other(return_to.as_deref().unwrap_or("/account")));
    }
    let pre = PreSession::from_request(&req, &state.settings)?;
    let hint = query.login_hint.as_deref().unwrap_or_default();
    let target = super::oauth::return_target(&state, return_to.as_deref()).await;
    let page = LoginPage {
        page: pre_session_page(&pre),
        error: None,
        email: hint.chars().take(254).collect(),
        return_to: return_to.unwrap_or_default(),
        signup_open: state.settings.signup,
        passkeys: state.passkeys.is_some(),
    };
    Ok(with_cookie(
        page_for(render(&page, StatusCode::OK), target.as_deref()),
        &pre,
    ))
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, PageError> {
    let pre = checked_pre_session(&req, &state, &form.csrf)?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let target = super::oauth::return_target(&state, return_to.as_deref()).await;
    let failure = |message: String, status: StatusCode| {
        let page = LoginPage {
            page: pre_session_page(&pre),
            error: Some(message),
            email: form.email.trim().to_owned(),
            return_to: return_to.clone().unwrap_or_default(),
            signup_open: state.settings.signup,
            passkeys: state.passkeys.is_some(),
        };
        with_cookie(page_for(render(&page, status), target.as_deref()), &pre)
    };

    let ip = client_ip(&req);
    // Unparseable emails are counted under their raw form; they can never succeed.
    let account = normalize_email(&form.email).unwrap_or_else(|_| form.email.trim().to_lowercase());
    let throttle = &state.login_throttle;
    let attempt = match throttle
        .password_attempt(&account, &ip)
        .await
        .map_err(unavailable)?
    {
        Admission::Allowed(attempt) => attempt,
        Admission::Refused(wait) => {
            let secs = wait.as_secs().max(1);
            let mut response = failure(
                format!(
                    "Too many failed attempts. Try again in {} minute(s).",
                    secs.div_ceil(60)
                ),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(response);
        }
    };

    match users::authenticate(&state.db, &state.passwords, &form.email, &form.password).await {
        Ok(user) => {
            throttle.forgive(attempt).await.map_err(unavailable)?;
            start_session(&req, &state, &user, return_to.as_deref()).await
        }
        // The attempt was counted before the check; a failure needs nothing more.
        Err(e @ (IdentityError::BadCredentials | IdentityError::Disabled)) => {
            Ok(failure(e.to_string(), StatusCode::UNAUTHORIZED))
        }
        Err(e) => Err(unavailable(e)),
    }
}

pub async fn signup_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ReturnTo>,
) -> Result<HttpResponse, PageError> {
    let pre = PreSession::from_request(&req, &state.settings)?;
    let return_to = safe_return_to(query.return_to.as_deref());
    let target = super::oauth::return_target(&state, return_to.as_deref()).await;
    let page = SignupPage {
        page: pre_session_page(&pre),
        error: None,
        email: String::new(),
        return_to: return_to.unwrap_or_default(),
        signup_open: state.settings.signup,
        passkeys: state.passkeys.is_some(),
    };
    Ok(with_cookie(
        page_for(render(&page, StatusCode::OK), target.as_deref()),
        &pre,
    ))
}

pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, PageError> {
    let pre = checked_pre_session(&req, &state, &form.csrf)?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let target = super::oauth::return_target(&state, return_to.as_deref()).await;
    let render = |page: &SignupPage, status| page_for(render(page, status), target.as_deref());
    let page = |error: Option<String>| SignupPage {
        page: pre_session_page(&pre),
        error,
        email: form.email.trim().to_owned(),
        return_to: return_to.clone().unwrap_or_default(),
        signup_open: state.settings.signup,
        passkeys: state.passkeys.is_some(),
    };
    if !state.settings.signup {
        return Ok(render(&page(None), StatusCode::FORBIDDEN));
    }
    if let Some(wait) = state
        .login_throttle
        .signup_attempt(&client_ip(&req))
        .await
        .map_err(unavailable)?
    {
        let secs = wait.as_secs().max(1);
        let mut response = render(
            &page(Some(format!(
                "Too many sign-ups from this network. Try again in {} minute(s).",
                secs.div_ceil(60)
            ))),
            StatusCode::TOO_MANY_REQUESTS,
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(response);
    }
    let user = match users::create(&state.db, &state.passwords, &form.email, &form.password).await {
        Ok(user) => user,
        Err(e @ IdentityError::EmailTaken) => {
            return Ok(render(&page(Some(e.to_string())), StatusCode::CONFLICT));
        }
        Err(
            e @ (IdentityError::InvalidEmail
            | IdentityError::PasswordTooShort
            | IdentityError::PasswordTooLong
            | IdentityError::PasswordTooCommon),
        ) => return Ok(render(&page(Some(e.to_string())), StatusCode::BAD_REQUEST)),
        Err(e) => return Err(unavailable(e)),
    };
    start_session(&req, &state, &user, return_to.as_deref()).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

pub(super) async fn require_session(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
) -> Result<SignedIn, PageError> {
    let current = signed_in(req, state).await?;
    check_csrf(req, current.as_ref().map(|s| s.token.as_str()), csrf)?;
    current.ok_or(PageError::Csrf)
}

fn signed_out(state: &AppState) -> HttpResponse {
    let mut response = see_other("/login");
    let _ = response.add_cookie(&expired_session_cookie(&state.settings));
    response
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state, &form.csrf).await?;
    account::sign_out(
        &state.db,
        &state.sessions,
        &current.token,
        current.session.id,
    )
    .await
    .map_err(unavailable)?;
    Ok(signed_out(&state))
}

struct SessionRow {
    id: Uuid,
    device: String,
    ip: String,
    created: String,
    last_seen: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: PageContext,
    email: String,
    member_since: String,
    sessions: Vec<SessionRow>,
    orgs: Vec<OrgSection>,
    /// `None` when passkeys are off on this server.
    passkeys: Option<Vec<PasskeyRow>>,
    has_password: bool,
    /// A just-created invitation link, shown once.
    invite_link: Option<String>,
    notice: Option<String>,
    password_error: Option<String>,
    /// The password could not be set because the sign-in is too old.
    password_needs_sign_in: bool,
}

fn describe_device(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent else {
        return "Unknown device".to_owned();
    };
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/", "curl/"]
        .iter()
        .find(|b| ua.contains(*b))
        .map(|b| match *b {
            "Edg/" => "Edge",
            "Firefox/" => "Firefox",
            "Chrome/" => "Chrome",
            "Safari/" => "Safari",
            _ => "curl",
        });
    let os = ["Android", "iPhone", "iPad", "Windows", "Mac OS X", "Linux"]
        .iter()
        .find(|o| ua.contains(*o))
        .map(|o| if *o == "Mac OS X" { "macOS" } else { o });
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => o.to_string(),
        (None, None) => ua.chars().take(60).collect(),
    }
}

struct PasskeyRow {
    id: Uuid,
    name: String,
    created: String,
    last_used: String,
    synced: bool,
}

/// One of the user's organizations; owners and admins also see and manage its
/// members.
struct OrgSection {
    org: crate::orgs::Membership,
    members: Vec<MemberRow>,
}

struct MemberRow {
    user_id: Uuid,
    email: String,
    role: crate::orgs::Role,
    is_me: bool,
    /// Whether the viewer may change this member's role or remove them.
    manageable: bool,
    /// The roles the viewer may give this member.
    grantable: Vec<crate::orgs::Role>,
}

async fn org_sections(
    state: &AppState,
    viewer: Uuid,
) -> Result<Vec<OrgSection>, crate::orgs::OrgError> {
    use crate::orgs::members::{self, Change, may_manage};
    use crate::orgs::{Role, memberships_of};
    let mut sections = Vec::new();
    for org in memberships_of(&state.db, viewer).await? {
        let members = if org.role >= Role::Admin {
            members::list(&state.db, org.id)
                .await?
                .into_iter()
                .map(|m| MemberRow {
                    manageable: may_manage(org.role, m.role, Change::Remove).is_ok(),
                    grantable: [Role::Member, Role::Admin, Role::Owner]
                        .into_iter()
                        .filter(|r| may_manage(org.role, m.role, Change::SetRole(*r)).is_ok())
                        .collect(),
                    is_me: m.user_id == viewer,
                    user_id: m.user_id,
                    email: m.email,
                    role: m.role,
                })
                .collect()
        } else {
            Vec::new()
        };
        sections.push(OrgSection { org, members });
    }
    Ok(sections)
}

/// What the account page shows besides the basics.
#[derive(Default)]
struct AccountExtras {
    notice: Option<String>,
    password_error: Option<String>,
    password_needs_sign_in: bool,
    invite_link: Option<String>,
}

async fn account_page(
    state: &AppState,
    current: &SignedIn,
    extras: AccountExtras,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let AccountExtras {
        notice,
        password_error,
        password_needs_sign_in,
        invite_link,
    } = extras;
    let user = users::find(&state.db, current.session.user_id)
        .await
        .map_err(unavailable)?
        .ok_or(PageError::NotFound)?;
    let sessions = state.sessions.list(&user).await.map_err(unavailable)?;
    let orgs = org_sections(state, user.id).await.map_err(unavailable)?;
    let passkeys = match &state.passkeys {
        None => None,
        Some(_) => Some(
            crate::identity::passkeys::list(&state.db, user.id)
                .await
                .map_err(unavailable)?,
        ),
    };
    let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let page = AccountPage {
        page: PageContext {
            asset_version: asset_version(),
            csrf: current.csrf(),
            signed_in_as: Some(user.email.clone()),
        },
        email: user.email.clone(),
        member_since: user.created_at.format("%Y-%m-%d").to_string(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                id: s.id,
                device: describe_device(s.user_agent.as_deref()),
                ip: s.ip.clone().unwrap_or_else(|| "unknown address".to_owned()),
                created: when(s.created_at),
                last_seen: when(s.last_seen_at),
                current: s.id == current.session.id,
            })
            .collect(),
        orgs,
        passkeys: passkeys.map(|keys| {
            keys.into_iter()
                .map(|k| PasskeyRow {
                    id: k.id,
                    name: k.name,
                    created: when(k.created_at),
                    last_used: k.last_used_at.map_or_else(|| "never".to_owned(), when),
                    synced: k.backed_up,
                })
                .collect()
        }),
        has_password: user.password_hash.is_some(),
        invite_link,
        notice,
        password_error,
        password_needs_sign_in,
    };
    Ok(render(&page, status))
}

pub async fn account(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    match signed_in(&req, &state).await? {
        Some(current) => {
            account_page(&state, &current, AccountExtras::default(), StatusCode::OK).await
        }
        None => Ok(see_other("/login?return_to=%2Faccount")),
    }
}

pub async fn end_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state, &form.csrf).await?;
    let target = path.into_inner();
    account::end_session(&state.db, &state.sessions, current.session.user_id, target)
        .await
        .map_err(unavailable)?;
    if target == current.session.id {
        return Ok(signed_out(&state));
    }
    Ok(see_other("/account"))
}

pub async fn end_all_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state, &form.csrf).await?;
    account::sign_out_everywhere(&state.db, &state.sessions, current.session.user_id)
        .await
        .map_err(unavailable)?;
    Ok(signed_out(&state))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state, &form.csrf).await?;
    let user = users::find(&state.db, current.session.user_id)
        .await
        .map_err(unavailable)?
        .ok_or(PageError::NotFound)?;
    if user.password_hash.is_none() {
        return set_first_password(&state, &current, user, &form.new_password).await;
    }
    match users::change_password(
        &state.db,
        &state.passwords,
        user,
        &form.current_password,
        &form.new_password,
    )
    .await
    {
        Ok(_) => {
            // Whoever else knew the old password loses their sessions and tokens.
            account::password_changed(
                &state.db,
                &state.sessions,
                current.session.user_id,
                current.session.id,
            )
            .await
            .map_err(unavailable)?;
            let notice =
                Some("Your password was changed. Other sessions were signed out.".to_owned());
            let extras = AccountExtras {
                notice,
                ..AccountExtras::default()
            };
            account_page(&state, &current, extras, StatusCode::OK).await
        }
        Err(
            e @ (IdentityError::WrongCurrentPassword
            | IdentityError::PasswordTooShort
            | IdentityError::PasswordTooLong
            | IdentityError::PasswordTooCommon),
        ) => {
            let extras = AccountExtras {
                password_error: Some(e.to_string()),
                ..AccountExtras::default()
            };
            account_page(&state, &current, extras, StatusCode::BAD_REQUEST).await
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// A passkey-only account adds a password. With no current password to ask for,
/// the session's sign-in must be recent, as for adding a passkey: a borrowed
/// session must not be able to plant a lasting way in.
async fn set_first_password(
    state: &AppState,
    current: &SignedIn,
    user: users::User,
    new_password: &str,
) -> Result<HttpResponse, PageError> {
    let refused = |message: String, status| {
        let extras = AccountExtras {
            password_error: Some(message),
            password_needs_sign_in: status == StatusCode::FORBIDDEN,
            ..AccountExtras::default()
        };
        account_page(state, current, extras, status)
    };
    if !crate::identity::passkeys::signed_in_recently(current.session.auth_time) {
        return refused(
            "To set a password, sign in again: your sign-in is more than a few minutes old."
                .to_owned(),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    match users::set_first_password(&state.db, &state.passwords, user, new_password).await {
        Ok(_) => {
            let extras = AccountExtras {
                notice: Some(
                    "Your password was set. You can sign in with it or with a passkey.".to_owned(),
                ),
                ..AccountExtras::default()
            };
            account_page(state, current, extras, StatusCode::OK).await
        }
        Err(
            e @ (IdentityError::PasswordTooShort
            | IdentityError::PasswordTooLong
            | IdentityError::PasswordTooCommon),
        ) => refused(e.to_string(), StatusCode::BAD_REQUEST).await,
        Err(e) => Err(unavailable(e)),
    }
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// An owner or admin invites someone; the link is shown on the page once (there
/// is no mail server). Only owners may invite owners.
pub async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::invitations::{self, InvitationError};
    let current = require_session(&req, &state, &form.csrf).await?;
    let org = path.into_inner();
    let refuse = |e: InvitationError| AccountExtras {
        notice: Some(e.to_string()),
        ..AccountExtras::default()
    };
    let Ok(role) = form.role.parse::<crate::orgs::Role>() else {
        return account_page(
            &state,
            &current,
            refuse(InvitationError::RoleNotGrantable),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let extras =
        match invitations::invite_as(&state.db, current.session.user_id, org, &form.email, role)
            .await
        {
            Ok(token) => {
                // The link itself is a credential: shown to the inviter, never logged.
                tracing::info!(%org, role = role.as_str(), "invitation created");
                AccountExtras {
                    notice: Some(format!(
                        "Invitation created for {}. Send them this link:",
                        form.email.trim()
                    )),
                    invite_link: Some(state.settings.endpoint(&format!("/invitations/{token}"))),
                    ..AccountExtras::default()
                }
            }
            Err(InvitationError::NotAllowed) => return Err(PageError::Forbidden),
            Err(e @ (InvitationError::InvalidEmail | InvitationError::RoleNotGrantable)) => {
                refuse(e)
            }
            Err(e) => return Err(unavailable(e)),
        };
    account_page(&state, &current, extras, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct MemberRoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

/// An owner or admin changes a member's role.
pub async fn change_member_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    form: web::Form<MemberRoleForm>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::members::Change;
    let current = require_session(&req, &state, &form.csrf).await?;
    let Ok(role) = form.role.parse::<crate::orgs::Role>() else {
        let extras = AccountExtras {
            notice: Some("Choose owner, admin or member.".to_owned()),
            ..AccountExtras::default()
        };
        return account_page(&state, &current, extras, StatusCode::BAD_REQUEST).await;
    };
    let (org, member) = path.into_inner();
    manage_member(&state, &current, org, member, Change::SetRole(role)).await
}

/// An owner or admin removes a member (or leaves, by removing themselves).
pub async fn remove_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state, &form.csrf).await?;
    let (org, member) = path.into_inner();
    manage_member(
        &state,
        &current,
        org,
        member,
        crate::orgs::members::Change::Remove,
    )
    .await
}

async fn manage_member(
    state: &AppState,
    current: &SignedIn,
    org: Uuid,
    member: Uuid,
    change: crate::orgs::members::Change,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::members::{self, Change, ManageError};
    let result = members::manage(&state.db, current.session.user_id, org, member, change).await;
    let (notice, status) = match result {
        Ok(()) => {
            tracing::info!(%org, %member, ?change, "membership changed");
            let done = match change {
                Change::SetRole(role) => format!("The role was changed to {role}."),
                Change::Remove => "The member was removed.".to_owned(),
            };
            (done, StatusCode::OK)
        }
        Err(ManageError::NotAllowed) => return Err(PageError::Forbidden),
        Err(ManageError::Org(e)) => return Err(unavailable(e)),
        Err(e @ ManageError::NotMember) => (e.to_string(), StatusCode::NOT_FOUND),
        Err(e @ ManageError::OwnersOnly) => (e.to_string(), StatusCode::FORBIDDEN),
        Err(e @ ManageError::LastOwner) => (e.to_string(), StatusCode::CONFLICT),
    };
    let extras = AccountExtras {
        notice: Some(notice),
        ..AccountExtras::default()
    };
    account_page(state, current, extras, status).await
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    page: PageContext,
    org_name: String,
    role: String,
    token: String,
    error: Option<String>,
}

/// The invitation link: sign in (or up) first, then accept as the invited email.
pub async fn invitation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let token = path.into_inner();
    let Some(current) = signed_in(&req, &state).await? else {
        let back = format!("/invitations/{token}");
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &back)
            .finish();
        return Ok(see_other(&format!("/login?{query}")));
    };
    let page = |org_name: String, role: String, error: Option<String>| InvitationPage {
        page: PageContext {
            asset_version: asset_version(),
            csrf: current.csrf(),
            signed_in_as: Some(current.session.email.clone()),
        },
        org_name,
        role,
        token: token.clone(),
        error,
    };
    match crate::orgs::invitations::pending(&state.db, &token).await {
        Ok(p) => Ok(render(
            &page(p.organization.name, p.role.to_string(), None),
            StatusCode::OK,
        )),
        Err(e @ crate::orgs::invitations::InvitationError::Org(_)) => Err(unavailable(e)),
        Err(e) => Ok(render(
            &page(String::new(), String::new(), Some(e.to_string())),
            StatusCode::BAD_REQUEST,
        )),
    }
}

pub async fn accept_invitation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::invitations::{self, InvitationError};
    let current = require_session(&req, &state, &form.csrf).await?;
    let token = path.into_inner();
    match invitations::accept(
        &state.db,
        &token,
        current.session.user_id,
        &current.session.email,
    )
    .await
    {
        Ok(org) => {
            let extras = AccountExtras {
                notice: Some(format!("You joined {}.", org.name)),
                ..AccountExtras::default()
            };
            account_page(&state, &current, extras, StatusCode::OK).await
        }
        Err(e @ InvitationError::Org(_)) => Err(unavailable(e)),
        Err(e) => {
            let page = InvitationPage {
                page: PageContext {
                    asset_version: asset_version(),
                    csrf: current.csrf(),
                    signed_in_as: Some(current.session.email.clone()),
                },
                org_name: String::new(),
                role: String::new(),
                token,
                error: Some(e.to_string()),
            };
            Ok(render(&page, StatusCode::BAD_REQUEST))
        }
    }
}

/// The account page again, with why a passkey change was refused.
pub(super) async fn account_with_notice(
    state: &AppState,
    current: &SignedIn,
    e: crate::identity::passkeys::PasskeyError,
) -> Result<HttpResponse, PageError> {
    use crate::identity::passkeys::PasskeyError as E;
    let status = match e {
        E::NotFound => StatusCode::NOT_FOUND,
        E::LastWayIn => StatusCode::CONFLICT,
        E::InvalidName => StatusCode::BAD_REQUEST,
        other => return Err(unavailable(other)),
    };
    let extras = AccountExtras {
        notice: Some(e.to_string()),
        ..AccountExtras::default()
    };
    account_page(state, current, extras, status).await
}

fn unavailable(e: impl std::fmt::Display) -> PageError {
    tracing::error!("page failed: {e}");
    PageError::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let trusted: Vec<crate::config::IpRange> =
            trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_address(
            Some(peer.parse().unwrap()),
            forwarded.iter().copied(),
            &trusted,
        )
        .unwrap()
        .to_string()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        // No trusted proxies: the header is anyone's to forge.
        assert_eq!(
            address("198.51.100.9", &["203.0.113.5"], &[]),
            "198.51.100.9"
        );
        // From a trusted proxy: the rightmost untrusted hop is the client, so a
        // client cannot hide behind addresses it prepends itself.
        assert_eq!(
            address("10.0.0.2", &["6.6.6.6, 203.0.113.5"], &["10.0.0.0/8"]),
            "203.0.113.5"
        );
        assert_eq!(
            address("10.0.0.2", &["203.0.113.5, 10.0.0.7"], &["10.0.0.0/8"]),
            "203.0.113.5"
        );
        // Several headers are one list.
        assert_eq!(
            address("10.0.0.2", &["6.6.6.6", "203.0.113.5"], &["10.0.0.0/8"]),
            "203.0.113.5"
        );
        // A peer that is not trusted does not get its header read.
        assert_eq!(
            address("198.51.100.9", &["203.0.113.5"], &["10.0.0.0/8"]),
            "198.51.100.9"
        );
        // Garbage stops the walk at the last hop vouched for.
        assert_eq!(
            address("10.0.0.2", &["not-an-ip"], &["10.0.0.0/8"]),
            "10.0.0.2"
        );
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(address("10.0.0.2", &[], &["10.0.0.0/8"]), "10.0.0.2");
    }
}
