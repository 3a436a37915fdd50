//! The account page: sessions, password, passkeys and organizations at a glance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::browser::{
    PageContext, PageError, SignedIn, asset_version, render, require_session, see_other, signed_in,
    signed_out, unavailable,
};
use crate::identity::{IdentityError, account, users};
use crate::state::AppState;

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
    email_verified: bool,
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
    api_tokens: super::api_tokens::ApiTokensSection,
    new_service_secret: Option<(String, String)>,
    email_error: Option<String>,
    apps: Vec<AppRow>,
    connections: Vec<ConnectionRow>,
    /// Providers not connected yet: (id, name).
    connectable: Vec<(String, String)>,
    activity: Vec<ActivityRow>,
}

/// One line of "Recent security activity".
struct ActivityRow {
    when: String,
    what: String,
    /// Where from and how (address, reason, by whom when not the person).
    how: String,
}

/// How many events the account page shows.
const RECENT_ACTIVITY: u64 = 10;

impl ActivityRow {
    fn new(event: crate::audit::Recorded, user: Uuid) -> Self {
        let what = crate::audit::Kind::parse(&event.kind)
            .map_or(event.kind.as_str(), |k| k.describe())
            .to_owned();
        let details: serde_json::Value =
            serde_json::from_str(&event.details).unwrap_or(serde_json::Value::Null);
        let mut how = Vec::new();
        if let Some(reason) = details.get("reason").and_then(|r| r.as_str()) {
            how.push(reason.replace('_', " "));
        }
        if let Some(provider) = details.get("idp").or_else(|| details.get("provider")) {
            how.push(format!("via {}", provider.as_str().unwrap_or_default()));
        }
        let by_someone_else = match event.actor_type.as_str() {
            "person" => event.actor_id.as_deref() != Some(user.to_string().as_str()),
            _ => true,
        };
        if by_someone_else {
            how.push(format!(
                "by {}",
                match event.actor_type.as_str() {
                    "admin" => "an administrator",
                    "service" => "an application",
                    "system" => "Tessera",
                    _ => "someone else",
                }
            ));
        }
        if let Some(ip) = event.ip {
            how.push(format!("from {ip}"));
        }
        Self {
            when: when(event.at),
            what,
            how: how.join(" · "),
        }
    }
}

/// A connected provider account, as the account page lists it.
struct ConnectionRow {
    id: Uuid,
    provider: String,
    email: String,
    since: String,
    last_used: String,
}

/// The account's connected providers, and those it could connect.
async fn connections(
    state: &AppState,
    user: Uuid,
) -> Result<(Vec<ConnectionRow>, Vec<(String, String)>), PageError> {
    let providers = crate::federation::providers::list(&state.db)
        .await
        .map_err(unavailable)?;
    let links = crate::federation::links::of_user(&state.db, user)
        .await
        .map_err(unavailable)?;
    let name_of = |id: &str| {
        providers
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| id.to_owned(), |p| p.name.clone())
    };
    let rows = links
        .iter()
        .map(|l| ConnectionRow {
            id: l.id,
            provider: name_of(&l.provider_id),
            email: l.email.clone().unwrap_or_default(),
            since: l.created_at.format("%Y-%m-%d").to_string(),
            last_used: when(l.last_used_at),
        })
        .collect();
    let connectable = providers
        .into_iter()
        .filter(|p| !links.iter().any(|l| l.provider_id == p.id))
        .map(|p| (p.id, p.name))
        .collect();
    Ok((rows, connectable))
}

/// An application with access, as the account page lists it.
struct AppRow {
    client_id: String,
    name: String,
    may: Vec<String>,
    last_used: String,
}

pub(super) fn describe_device(user_agent: Option<&str>) -> String {
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
    /// For owners and admins: the organization's service accounts.
    service_accounts: Vec<ServiceRow>,
    /// The roles the viewer may give a new service account.
    service_roles: Vec<crate::orgs::Role>,
}

struct ServiceRow {
    client_id: String,
    name: String,
    role: String,
    created: String,
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
        let service_accounts = if org.role >= Role::Admin {
            crate::orgs::service_accounts::list(&state.db, org.id)
                .await
                .map_err(|e| crate::orgs::OrgError::Storage(sea_orm::DbErr::Custom(e.to_string())))?
                .into_iter()
                .map(|c| ServiceRow {
                    role: c.service.map_or("member", |(_, r)| r.as_str()).to_owned(),
                    created: c.created_at.format("%Y-%m-%d").to_string(),
                    client_id: c.client_id,
                    name: c.name,
                })
                .collect()
        } else {
            Vec::new()
        };
        let service_roles = [Role::Member, Role::Admin, Role::Owner]
            .into_iter()
            .filter(|r| may_manage(org.role, *r, Change::SetRole(*r)).is_ok())
            .collect();
        sections.push(OrgSection {
            org,
            members,
            service_accounts,
            service_roles,
        });
    }
    Ok(sections)
}

/// What the account page shows besides the basics.
#[derive(Default)]
pub(super) struct AccountExtras {
    pub(super) notice: Option<String>,
    pub(super) password_error: Option<String>,
    pub(super) password_needs_sign_in: bool,
    pub(super) invite_link: Option<String>,
    /// A personal access token just created: shown this once.
    pub(super) new_api_token: Option<String>,
    /// A service account's client_id and its new secret: shown this once.
    pub(super) new_service_secret: Option<(String, String)>,
    pub(super) api_token_error: Option<String>,
    pub(super) email_error: Option<String>,
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

impl SessionRow {
    fn new(s: crate::identity::sessions::Session, current: uuid::Uuid) -> Self {
        SessionRow {
            id: s.id,
            device: describe_device(s.user_agent.as_deref()),
            ip: s.ip.unwrap_or_else(|| "unknown address".to_owned()),
            created: when(s.created_at),
            last_seen: when(s.last_seen_at),
            current: s.id == current,
        }
    }
}

impl PasskeyRow {
    fn new(k: crate::identity::passkeys::PasskeySummary) -> Self {
        PasskeyRow {
            id: k.id,
            name: k.name,
            created: when(k.created_at),
            last_used: k.last_used_at.map_or_else(|| "never".to_owned(), when),
            synced: k.backed_up,
        }
    }
}

pub(super) async fn account_page(
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
        new_api_token,
        api_token_error,
        new_service_secret,
        email_error,
    } = extras;
    let user = current.account(state).await?;
    let sessions = state.sessions.list(&user).await.map_err(unavailable)?;
    let orgs = org_sections(state, user.id).await.map_err(unavailable)?;
    let api_tokens =
        super::api_tokens::section(state, user.id, new_api_token, api_token_error).await?;
    let passkeys = match &state.passkeys {
        None => None,
        Some(_) => Some(
            crate::identity::passkeys::list(&state.db, user.id)
                .await
                .map_err(unavailable)?,
        ),
    };
    let apps = crate::oauth::access::list(&state.db, user.id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|a| AppRow {
            may: a
                .scopes
                .iter()
                .map(|s| super::authorize::describe_scope(s).into_owned())
                .collect(),
            last_used: a.last_used.map_or_else(|| "never".to_owned(), when),
            client_id: a.client_id,
            name: a.name,
        })
        .collect();
    let (connections, connectable) = connections(state, user.id).await?;
    let activity = crate::audit::recent_for(&state.db, user.id, RECENT_ACTIVITY)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|e| ActivityRow::new(e, user.id))
        .collect();
    let page = AccountPage {
        activity,
        connections,
        connectable,
        page: PageContext {
            asset_version: asset_version(),
            csrf: current.csrf(),
            signed_in_as: Some(user.email.clone()),
            admin: user.is_admin,
        },
        email: user.email.clone(),
        email_verified: user.email_verified_at.is_some(),
        member_since: user.created_at.format("%Y-%m-%d").to_string(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow::new(s, current.session.id))
            .collect(),
        orgs,
        passkeys: passkeys.map(|keys| keys.into_iter().map(PasskeyRow::new).collect()),
        has_password: user.password_hash.is_some(),
        invite_link,
        notice,
        password_error,
        password_needs_sign_in,
        api_tokens,
        new_service_secret,
        email_error,
        apps,
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
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    let target = path.into_inner();
    account::end_session(&state.db, &state.sessions, current.session.user_id, target)
        .await
        .map_err(unavailable)?;
    if target == current.session.id {
        return Ok(signed_out(&state));
    }
    Ok(see_other("/account"))
}

#[derive(Deserialize)]
pub struct EndAllForm {
    /// The "Also revoke API tokens" box: scripts keep working unless ticked.
    #[serde(default)]
    revoke_api_tokens: Option<String>,
}

pub async fn end_all_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<EndAllForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    let api_tokens = form.revoke_api_tokens.is_some();
    account::sign_out_everywhere(
        &state.db,
        &state.sessions,
        current.session.user_id,
        api_tokens,
    )
    .await
    .map_err(unavailable)?;
    Ok(signed_out(&state))
}

#[derive(Deserialize)]
pub struct PasswordForm {
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
    let current = require_session(&req, &state).await?;
    let user = current.account(&state).await?;
    if user.password_hash.is_none() {
        return set_first_password(&state, &current, user, &form.new_password).await;
    }
    match users::change_password(
        &state.db,
        &state.passwords,
        &state.mail,
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
    match users::set_first_password(&state.db, &state.passwords, &state.mail, user, new_password)
        .await
    {
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

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    new_email: String,
    #[serde(default)]
    current_password: String,
}

/// `POST /account/email`: a confirmation link to the new address (at most
/// `throttle::MAILS_PER_HOUR` an hour); the address changes when it is followed.
pub async fn change_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<EmailForm>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    let user = current.account(&state).await?;
    let refused = |message: String, status| {
        let extras = AccountExtras {
            email_error: Some(message),
            ..AccountExtras::default()
        };
        account_page(&state, &current, extras, status)
    };
    if let Some(wait) = state
        .throttle
        .mail_attempt("change", &user.id.to_string())
        .await
        .map_err(unavailable)?
    {
        let message = format!(
            "Too many address changes asked for. Try again in {} minute(s).",
            super::browser::minutes(wait)
        );
        let response = refused(message, StatusCode::TOO_MANY_REQUESTS).await?;
        return Ok(super::browser::retry_after(response, wait));
    }
    let recent = crate::identity::passkeys::signed_in_recently(current.session.auth_time);
    match crate::identity::email::request_change(
        &state.db,
        &state.passwords,
        &state.mail,
        &user,
        &form.new_email,
        &form.current_password,
        recent,
    )
    .await
    {
        Ok(new_email) => {
            let extras = AccountExtras {
                notice: Some(format!(
                    "We sent a link to {new_email}. Your address changes when you follow it."
                )),
                ..AccountExtras::default()
            };
            account_page(&state, &current, extras, StatusCode::OK).await
        }
        Err(e @ (IdentityError::InvalidEmail | IdentityError::SameEmail)) => {
            refused(e.to_string(), StatusCode::BAD_REQUEST).await
        }
        Err(e @ IdentityError::EmailTaken) => refused(e.to_string(), StatusCode::CONFLICT).await,
        Err(e @ (IdentityError::WrongCurrentPassword | IdentityError::NeedsFreshSignIn)) => {
            refused(e.to_string(), StatusCode::FORBIDDEN).await
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// `POST /account/apps/{client_id}/remove`: the application loses its refresh
/// tokens and consent, and is told through back-channel logout.
pub async fn remove_app(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    let client_id = path.into_inner();
    let apps = crate::oauth::access::list(&state.db, current.session.user_id)
        .await
        .map_err(unavailable)?;
    let Some(app) = apps.into_iter().find(|a| a.client_id == client_id) else {
        return Err(PageError::NotFound);
    };
    crate::oauth::access::remove(&state.db, &state.jobs, current.session.user_id, &client_id)
        .await
        .map_err(unavailable)?;
    let extras = AccountExtras {
        notice: Some(format!(
            "{} no longer has access to your account.",
            app.name
        )),
        ..AccountExtras::default()
    };
    account_page(&state, &current, extras, StatusCode::OK).await
}
