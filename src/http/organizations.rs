//! Organizations as their members manage them: invitations, roles, removal.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::browser::{
    PageContext, PageError, SignedIn, asset_version, render, require_session, see_other, signed_in,
    unavailable,
};
use crate::state::AppState;

use super::account::{AccountExtras, account_page};

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// An owner or admin invites someone: the link is mailed to them, and shown on
/// the page once (to pass on by other means). Only owners may invite owners.
pub async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::invitations::{self, InvitationError};
    let current = require_session(&req, &state).await?;
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
    let extras = match invitations::invite_as(
        &state.db,
        &state.mail,
        current.session.user_id,
        org,
        &form.email,
        role,
    )
    .await
    {
        Ok(token) => {
            // The link itself is a credential: shown to the inviter, never logged.
            tracing::info!(%org, role = role.as_str(), "invitation created");
            AccountExtras {
                notice: Some(format!(
                    "Invitation sent to {}. The link, if you want to pass it on yourself:",
                    form.email.trim()
                )),
                invite_link: Some(state.settings.endpoint(&format!("/invitations/{token}"))),
                ..AccountExtras::default()
            }
        }
        Err(InvitationError::NotAllowed) => return Err(PageError::Forbidden),
        Err(e @ (InvitationError::InvalidEmail | InvitationError::RoleNotGrantable)) => refuse(e),
        Err(e) => return Err(unavailable(e)),
    };
    account_page(&state, &current, extras, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct MemberRoleForm {
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
    let current = require_session(&req, &state).await?;
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
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
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
            admin: false,
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
) -> Result<HttpResponse, PageError> {
    use crate::orgs::invitations::{self, InvitationError};
    let current = require_session(&req, &state).await?;
    let token = path.into_inner();
    match invitations::accept(&state.db, &token, current.session.user_id).await {
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
                    admin: false,
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

#[derive(Deserialize)]
pub struct ServiceAccountForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// The account page after a service-account change: its new secret shown once,
/// or why nothing changed.
async fn after_service_change(
    state: &AppState,
    current: &super::browser::SignedIn,
    result: Result<(String, String), crate::orgs::service_accounts::ServiceAccountError>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::service_accounts::ServiceAccountError as E;
    let (extras, status) = match result {
        Ok(secret) => (
            AccountExtras {
                new_service_secret: Some(secret),
                ..AccountExtras::default()
            },
            StatusCode::OK,
        ),
        Err(E::NotAllowed) => return Err(PageError::Forbidden),
        Err(E::Storage(e)) => return Err(unavailable(e)),
        Err(e) => (
            AccountExtras {
                notice: Some(format!("{}.", e.to_string().trim_end_matches('.'))),
                ..AccountExtras::default()
            },
            StatusCode::BAD_REQUEST,
        ),
    };
    account_page(state, current, extras, status).await
}

/// **Create service account** in an organization's part of the account page.
pub async fn create_service_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    form: web::Form<ServiceAccountForm>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::service_accounts;
    let current = require_session(&req, &state).await?;
    let Ok(role) = form.role.parse::<crate::orgs::Role>() else {
        return Err(PageError::BadForm("role".into()));
    };
    let result = service_accounts::create(
        &state.db,
        current.session.user_id,
        path.into_inner(),
        &form.name,
        role,
    )
    .await
    .map(|(client, secret)| (client.client_id, secret));
    after_service_change(&state, &current, result).await
}

/// **Rotate secret**: a new secret, shown once; the old one works 24 hours more.
pub async fn rotate_service_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::service_accounts;
    let current = require_session(&req, &state).await?;
    let (org, client_id) = path.into_inner();
    let result = service_accounts::rotate(&state.db, current.session.user_id, org, &client_id)
        .await
        .map(|(client, secret)| (client.client_id, secret));
    state.clients.forget(&client_id);
    after_service_change(&state, &current, result).await
}

/// **Delete**: the account's tokens stop working at once.
pub async fn delete_service_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, PageError> {
    use crate::orgs::service_accounts::{self, ServiceAccountError as E};
    let current = require_session(&req, &state).await?;
    let (org, client_id) = path.into_inner();
    match service_accounts::delete(&state.db, current.session.user_id, org, &client_id).await {
        Ok(()) | Err(E::NotFound) => {
            state.clients.forget(&client_id);
            Ok(see_other("/account"))
        }
        Err(E::NotAllowed | E::OwnersOnly) => Err(PageError::Forbidden),
        Err(e) => Err(unavailable(e)),
    }
}
