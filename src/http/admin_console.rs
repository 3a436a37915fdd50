//! The admin console, `/admin` (issue 24): server-rendered pages in the
//! account page's style for administrators signed in with their session.
//! Every action is confirmed on its own page and posted with the session's
//! CSRF token; what it changes is recorded with the administrator as actor.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::browser::{
    PageContext, PageError, SignedIn, asset_version, render, see_other, signed_in, unavailable,
};
use crate::admin::{self, EventFilter};
use crate::audit::Kind;
use crate::identity::users::User;
use crate::state::AppState;

/// The signed-in administrator, or the answer for whoever else asked.
enum Gate {
    Admin(SignedIn, User),
    Answer(HttpResponse),
}

async fn gate(req: &HttpRequest, state: &AppState, here: &str) -> Result<Gate, PageError> {
    let Some(current) = signed_in(req, state).await? else {
        let back: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
        return Ok(Gate::Answer(see_other(&format!("/login?return_to={back}"))));
    };
    let user = current.account(state).await?;
    if !user.is_admin || user.disabled {
        return Err(PageError::Forbidden);
    }
    Ok(Gate::Admin(current, user))
}

fn page_context(current: &SignedIn, user: &User) -> PageContext {
    PageContext {
        asset_version: asset_version(),
        csrf: current.csrf(),
        signed_in_as: Some(user.email.clone()),
        admin: true,
    }
}

/// Runs `f` with the administrator as the actor of what it records.
async fn acting<F: std::future::Future>(req: &HttpRequest, admin: &User, f: F) -> F::Output {
    let actor = crate::audit::Actor::Admin(Some(admin.id));
    crate::audit::within(super::client::audit_context(req, Some(actor)), f).await
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub async fn home() -> HttpResponse {
    see_other("/admin/users")
}

struct UserRow {
    id: Uuid,
    email: String,
    disabled: bool,
    admin: bool,
    verified: bool,
    created: String,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            disabled: u.disabled,
            admin: u.is_admin,
            verified: u.email_verified_at.is_some(),
            created: u.created_at.format("%Y-%m-%d").to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    page: PageContext,
    search: String,
    users: Vec<UserRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    search: Option<String>,
    after: Option<Uuid>,
}

const PAGE: u64 = 50;

pub async fn users(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, PageError> {
    let (current, me) = match gate(&req, &state, "/admin/users").await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let search = query.search.clone().unwrap_or_default();
    let found = admin::users(&state.db, Some(&search), query.after, PAGE)
        .await
        .map_err(unavailable)?;
    let next = found.next.map(|after| {
        let mut link =
            url::form_urlencoded::Serializer::for_suffix(String::from("/admin/users?"), 13);
        if !search.is_empty() {
            link.append_pair("search", &search);
        }
        link.append_pair("after", &after.to_string());
        link.finish()
    });
    let page = UsersPage {
        page: page_context(&current, &me),
        users: found.items.iter().map(UserRow::from).collect(),
        search,
        next,
    };
    Ok(render(&page, StatusCode::OK))
}

struct EventRow {
    when: String,
    what: String,
    kind: String,
    actor: String,
    subject: String,
    how: String,
}

/// Events as the console lists them: the addresses of the accounts they are
/// about and by, where those still exist (one query for the page).
async fn event_rows(
    state: &AppState,
    events: Vec<crate::audit::Recorded>,
) -> Result<Vec<EventRow>, PageError> {
    let actors = events
        .iter()
        .filter(|e| e.actor_type == "admin" || e.actor_type == "person")
        .filter_map(|e| {
            e.actor_id
                .as_deref()
                .and_then(|id| Uuid::parse_str(id).ok())
        });
    let ids: Vec<Uuid> = events
        .iter()
        .filter_map(|e| e.subject_user_id)
        .chain(actors)
        .collect();
    let emails = admin::emails_of(&state.db, ids)
        .await
        .map_err(unavailable)?;
    Ok(events
        .into_iter()
        .map(|e| {
            let details: serde_json::Value =
                serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null);
            let mut how: Vec<String> = details
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| match v.as_str() {
                            Some(s) => format!("{k}: {s}"),
                            None => format!("{k}: {v}"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(client) = &e.client_id {
                how.push(format!("client: {client}"));
            }
            if let Some(ip) = &e.ip {
                how.push(format!("from {ip}"));
            }
            let email_of = |id: &str| {
                Uuid::parse_str(id)
                    .ok()
                    .and_then(|id| emails.get(&id).cloned())
                    .unwrap_or_else(|| id.to_owned())
            };
            let actor = match (e.actor_type.as_str(), &e.actor_id) {
                ("admin", None) => "admin (command line)".to_owned(),
                ("admin", Some(id)) => format!("admin {}", email_of(id)),
                ("person", Some(id)) => email_of(id),
                ("service", Some(id)) => format!("client {id}"),
                (kind, Some(id)) => format!("{kind} {id}"),
                (kind, None) => kind.to_owned(),
            };
            EventRow {
                when: when(e.at),
                what: Kind::parse(&e.kind).map_or("", |k| k.describe()).to_owned(),
                subject: e
                    .subject_user_id
                    .map(|id| emails.get(&id).cloned().unwrap_or_else(|| id.to_string()))
                    .unwrap_or_default(),
                kind: e.kind,
                actor,
                how: how.join(" · "),
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    page: PageContext,
    user: UserRow,
    has_password: bool,
    sessions: Vec<(String, String, String)>,
    passkeys: Vec<String>,
    orgs: Vec<(String, String)>,
    connections: Vec<String>,
    events: Vec<EventRow>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

pub async fn user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let (current, me) = match gate(&req, &state, &format!("/admin/users/{id}")).await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let user = crate::identity::users::find(&state.db, id)
        .await
        .map_err(unavailable)?
        .ok_or(PageError::NotFound)?;
    let sessions = state
        .sessions
        .list(&user)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|s| {
            (
                super::account::describe_device(s.user_agent.as_deref()),
                s.ip.unwrap_or_default(),
                when(s.last_seen_at),
            )
        })
        .collect();
    let passkeys = crate::identity::passkeys::list(&state.db, id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|k| k.name)
        .collect();
    let orgs = crate::orgs::memberships_of(&state.db, id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|m| (m.name, m.role.as_str().to_owned()))
        .collect();
    let connections = crate::federation::links::of_user(&state.db, id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|l| match l.email {
            Some(email) => format!("{} ({email})", l.provider_id),
            None => l.provider_id,
        })
        .collect();
    let filter = EventFilter {
        user: Some(id),
        ..EventFilter::default()
    };
    let recent = admin::events(&state.db, &filter, None, 20)
        .await
        .map_err(unavailable)?;
    let events = event_rows(&state, recent.items).await?;
    let notice = query
        .done
        .as_deref()
        .and_then(Action::parse)
        .map(|a| a.done().to_owned());
    let page = UserPage {
        page: page_context(&current, &me),
        has_password: user.password_hash.is_some(),
        user: UserRow::from(&user),
        sessions,
        passkeys,
        orgs,
        connections,
        events,
        notice,
    };
    Ok(render(&page, StatusCode::OK))
}

/// What an administrator may do to an account from the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Disable,
    Enable,
    SignOut,
    PasswordReset,
    Delete,
}

impl Action {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "disable" => Action::Disable,
            "enable" => Action::Enable,
            "sign-out" => Action::SignOut,
            "password-reset" => Action::PasswordReset,
            "delete" => Action::Delete,
            _ => return None,
        })
    }

    fn slug(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::SignOut => "sign-out",
            Action::PasswordReset => "password-reset",
            Action::Delete => "delete",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Action::Disable => "Disable this account?",
            Action::Enable => "Enable this account?",
            Action::SignOut => "Sign this account out everywhere?",
            Action::PasswordReset => "Send a password reset link?",
            Action::Delete => "Delete this account?",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Action::Disable => {
                "They cannot sign in; every session ends and every refresh and API token is revoked for good (enabling again brings none back)."
            }
            Action::Enable => "They can sign in again. Nothing that was revoked comes back.",
            Action::SignOut => {
                "Every session ends and every refresh token is revoked; API tokens keep working."
            }
            Action::PasswordReset => {
                "A link to choose a new password is mailed to their address; it works once, for 30 minutes."
            }
            Action::Delete => {
                "The account goes with its sessions, tokens, passkeys, consents, connected accounts and memberships. This cannot be undone."
            }
        }
    }

    fn button(self) -> &'static str {
        match self {
            Action::Disable => "Disable",
            Action::Enable => "Enable",
            Action::SignOut => "Sign out everywhere",
            Action::PasswordReset => "Send reset link",
            Action::Delete => "Delete",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Disable => "The account is disabled.",
            Action::Enable => "The account is enabled.",
            Action::SignOut => "The account is signed out everywhere.",
            Action::PasswordReset => "A reset link is on its way.",
            Action::Delete => "The account is deleted.",
        }
    }
}

#[derive(Template)]
#[template(path = "admin_confirm.html")]
struct ConfirmPage {
    page: PageContext,
    title: &'static str,
    explain: &'static str,
    button: &'static str,
    danger: bool,
    email: String,
    action: String,
    back: String,
}

pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, PageError> {
    let (id, raw) = path.into_inner();
    let action = Action::parse(&raw).ok_or(PageError::NotFound)?;
    let here = format!("/admin/users/{id}/confirm/{}", action.slug());
    let (current, me) = match gate(&req, &state, &here).await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let user = crate::identity::users::find(&state.db, id)
        .await
        .map_err(unavailable)?
        .ok_or(PageError::NotFound)?;
    let page = ConfirmPage {
        page: page_context(&current, &me),
        title: action.title(),
        explain: action.explain(),
        button: action.button(),
        danger: matches!(action, Action::Disable | Action::Delete),
        email: user.email,
        action: format!("/admin/users/{id}/{}", action.slug()),
        back: format!("/admin/users/{id}"),
    };
    Ok(render(&page, StatusCode::OK))
}

/// `POST /admin/users/{id}/{action}`, from its confirmation page.
pub async fn act(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, PageError> {
    let (id, raw) = path.into_inner();
    let action = Action::parse(&raw).ok_or(PageError::NotFound)?;
    let (_, me) = match gate(&req, &state, "/admin/users").await? {
        Gate::Admin(c, u) => (c, u),
        // A form without a session cannot be this administrator's.
        Gate::Answer(_) => return Err(PageError::Csrf),
    };
    let user = crate::identity::users::find(&state.db, id)
        .await
        .map_err(unavailable)?
        .ok_or(PageError::NotFound)?;
    let db = &state.db;
    let sessions = &state.sessions;
    match action {
        Action::Disable => {
            acting(
                &req,
                &me,
                crate::identity::account::disable(db, sessions, &user.email),
            )
            .await
            .map_err(unavailable)?;
        }
        Action::Enable => {
            acting(
                &req,
                &me,
                crate::identity::users::set_disabled(db, &user.email, false),
            )
            .await
            .map_err(unavailable)?;
        }
        Action::SignOut => {
            acting(
                &req,
                &me,
                crate::identity::account::sign_out_everywhere(db, sessions, id, false),
            )
            .await
            .map_err(unavailable)?;
        }
        Action::PasswordReset => {
            acting(
                &req,
                &me,
                crate::identity::email::request_reset(db, &state.mail, &user.email),
            )
            .await
            .map_err(unavailable)?;
        }
        Action::Delete => match acting(&req, &me, admin::delete_user(db, sessions, id)).await {
            Ok(_) => return Ok(see_other("/admin/users")),
            Err(e @ admin::DeleteError::LastOwner) => {
                return Ok(super::browser::error_page(
                    "Not deleted",
                    e.to_string(),
                    &format!("/admin/users/{id}"),
                    StatusCode::CONFLICT,
                ));
            }
            Err(e) => return Err(unavailable(e)),
        },
    }
    Ok(see_other(&format!(
        "/admin/users/{id}?done={}",
        action.slug()
    )))
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    page: PageContext,
    kinds: Vec<(&'static str, &'static str)>,
    user: String,
    client: String,
    kind: String,
    since: String,
    until: String,
    events: Vec<EventRow>,
    next: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    /// An address or an account id.
    user: Option<String>,
    client: Option<String>,
    kind: Option<String>,
    /// `YYYY-MM-DD` (UTC), from the date field.
    since: Option<String>,
    until: Option<String>,
    before: Option<Uuid>,
}

fn day(raw: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| Some(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()))
            .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)")),
    }
}

pub async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    let (current, me) = match gate(&req, &state, "/admin/audit").await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let (user_text, client, kind) = (text(&query.user), text(&query.client), text(&query.kind));
    let mut error = None;
    let user = if user_text.is_empty() {
        None
    } else if let Ok(id) = Uuid::parse_str(&user_text) {
        Some(id)
    } else {
        match crate::identity::users::find_by_email(&state.db, &user_text)
            .await
            .map_err(unavailable)?
        {
            Some(u) => Some(u.id),
            None => {
                error = Some(format!("No account has the address {user_text}."));
                Some(Uuid::nil())
            }
        }
    };
    let since = day(query.since.as_deref()).unwrap_or_else(|e| {
        error = Some(e);
        None
    });
    // "Until" a day includes that day.
    let until = day(query.until.as_deref())
        .unwrap_or_else(|e| {
            error = Some(e);
            None
        })
        .map(|d| d + chrono::Duration::days(1));
    let filter = EventFilter {
        user,
        client: (!client.is_empty()).then(|| client.clone()),
        kind: Kind::parse(&kind).map(|k| k.as_str().to_owned()),
        since,
        until,
    };
    let found = admin::events(&state.db, &filter, query.before, PAGE)
        .await
        .map_err(unavailable)?;
    let next = found.next.map(|before| {
        let mut link =
            url::form_urlencoded::Serializer::for_suffix(String::from("/admin/audit?"), 13);
        for (k, v) in [
            ("user", &user_text),
            ("client", &client),
            ("kind", &kind),
            ("since", &text(&query.since)),
            ("until", &text(&query.until)),
        ] {
            if !v.is_empty() {
                link.append_pair(k, v);
            }
        }
        link.append_pair("before", &before.to_string());
        link.finish()
    });
    let page = AuditPage {
        page: page_context(&current, &me),
        kinds: Kind::ALL
            .iter()
            .map(|k| (k.as_str(), k.describe()))
            .collect(),
        events: event_rows(&state, found.items).await?,
        user: user_text,
        client,
        kind,
        since: text(&query.since),
        until: text(&query.until),
        next,
        error,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "admin_organizations.html")]
struct OrganizationsPage {
    page: PageContext,
    /// (name, slug, members: (email, role), service accounts: (name, client id, role))
    orgs: Vec<OrgSection>,
}

struct OrgSection {
    name: String,
    slug: String,
    members: Vec<(String, String)>,
    services: Vec<(String, String, String)>,
}

pub async fn organizations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (current, me) = match gate(&req, &state, "/admin/organizations").await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let mut orgs = Vec::new();
    for org in crate::orgs::list(&state.db).await.map_err(unavailable)? {
        let members = crate::orgs::members::list(&state.db, org.id)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|m| (m.email, m.role.as_str().to_owned()))
            .collect();
        let services = crate::store::clients::service_accounts_of(&state.db, org.id)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|c| {
                let role = c
                    .service
                    .map(|(_, r)| r.as_str().to_owned())
                    .unwrap_or_default();
                (c.name, c.client_id, role)
            })
            .collect();
        orgs.push(OrgSection {
            name: org.name,
            slug: org.slug,
            members,
            services,
        });
    }
    let page = OrganizationsPage {
        page: page_context(&current, &me),
        orgs,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "admin_clients.html")]
struct ClientsPage {
    page: PageContext,
    clients: Vec<ClientRow>,
    apis: Vec<crate::orgs::apis::Api>,
}

struct ClientRow {
    name: String,
    client_id: String,
    kind: String,
    grants: String,
    scope: String,
    redirect_uris: String,
}

pub async fn clients(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (current, me) = match gate(&req, &state, "/admin/clients").await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let clients = crate::store::clients::list(&state.db)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|c| ClientRow {
            kind: match (
                c.is_public(),
                c.first_party,
                c.self_registered,
                c.service.is_some(),
            ) {
                (_, _, _, true) => "service account",
                (true, _, _, _) => "public",
                (false, true, _, _) => "confidential, first-party",
                (false, false, true, _) => "confidential, self-registered",
                _ => "confidential",
            }
            .to_owned(),
            grants: c
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            scope: c.scope.join(" "),
            redirect_uris: c.redirect_uris.join(", "),
            name: c.name,
            client_id: c.client_id,
        })
        .collect();
    let apis = crate::orgs::apis::list(&state.db)
        .await
        .map_err(unavailable)?;
    let page = ClientsPage {
        page: page_context(&current, &me),
        clients,
        apis,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "admin_keys.html")]
struct KeysPage {
    page: PageContext,
    keys: Vec<(String, String, String, String)>,
    notice: Option<String>,
}

pub async fn keys(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let (current, me) = match gate(&req, &state, "/admin/keys").await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let keys = crate::tokens::keys::list(
        &state.db,
        state.settings.longest_signed_token_ttl(),
        chrono::Utc::now(),
    )
    .await
    .map_err(unavailable)?
    .into_iter()
    .map(|(row, status)| (row.kid, row.alg, status.to_string(), when(row.activates_at)))
    .collect();
    let page = KeysPage {
        page: page_context(&current, &me),
        keys,
        notice: query
            .done
            .as_deref()
            .filter(|d| *d == "rotated")
            .map(|_| "A new key is published; it signs after the rotation delay.".to_owned()),
    };
    Ok(render(&page, StatusCode::OK))
}

/// `GET /admin/keys/rotate/{alg}`: the confirmation.
pub async fn confirm_rotation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let alg: crate::tokens::Algorithm = path.parse().map_err(|_| PageError::NotFound)?;
    let here = format!("/admin/keys/rotate/{}", alg.as_str());
    let (current, me) = match gate(&req, &state, &here).await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(r) => return Ok(r),
    };
    let page = ConfirmPage {
        page: page_context(&current, &me),
        title: "Rotate the signing key?",
        explain: "A new key is published in the JWKS now and signs after the rotation delay, so verifiers fetch it first; the current key keeps verifying the tokens it signed.",
        button: "Rotate",
        danger: false,
        email: alg.as_str().to_owned(),
        action: here,
        back: "/admin/keys".to_owned(),
    };
    Ok(render(&page, StatusCode::OK))
}

/// `POST /admin/keys/rotate/{alg}`.
pub async fn rotate_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let alg: crate::tokens::Algorithm = path.parse().map_err(|_| PageError::NotFound)?;
    let (_, me) = match gate(&req, &state, "/admin/keys").await? {
        Gate::Admin(c, u) => (c, u),
        Gate::Answer(_) => return Err(PageError::Csrf),
    };
    let delay = chrono::Duration::from_std(state.settings.key_rotation_delay)
        .unwrap_or(chrono::Duration::hours(1));
    acting(
        &req,
        &me,
        crate::tokens::keys::rotate(
            &state.db,
            &state.settings.keys_dir,
            alg,
            chrono::Utc::now() + delay,
        ),
    )
    .await
    .map_err(unavailable)?;
    if let Err(e) = state.keys.refresh().await {
        tracing::warn!("key ring refresh after rotation: {e}");
    }
    Ok(see_other("/admin/keys?done=rotated"))
}
