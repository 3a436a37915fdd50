//! The **API tokens** section of `/account`: personal access tokens created,
//! shown once, listed and revoked (rules in `identity::pats`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use super::account::{AccountExtras, account_page};
use super::browser::{PageError, require_session, see_other, unavailable};
use super::form::PageForm;
use crate::identity::pats::{self, NewPat, PatError};
use crate::orgs::{self, apis};
use crate::state::AppState;

/// One row of the list.
pub struct TokenRow {
    pub id: Uuid,
    pub name: String,
    pub organization: String,
    pub scopes: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
}

/// What the section shows: the tokens, and the choices of the form.
pub struct ApiTokensSection {
    pub tokens: Vec<TokenRow>,
    /// Organizations a token may be pinned to: (id, name).
    pub orgs: Vec<(Uuid, String)>,
    /// API scopes the person holds in any organization.
    pub scopes: Vec<String>,
    /// Whether "Never" is offered (`TESSERA_PAT_MAX_LIFETIME=unlimited`).
    pub never_allowed: bool,
    /// A token just created: shown this once.
    pub created: Option<String>,
    pub error: Option<String>,
}

fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The section for `user`.
pub(super) async fn section(
    state: &AppState,
    user: Uuid,
    created: Option<String>,
    error: Option<String>,
) -> Result<ApiTokensSection, PageError> {
    let memberships = orgs::memberships_of(&state.db, user)
        .await
        .map_err(unavailable)?;
    let roles: Vec<orgs::Role> = memberships.iter().map(|m| m.role).collect();
    let scopes = apis::held_scopes(&state.db, &roles)
        .await
        .map_err(unavailable)?;
    let name_of = |org: Option<Uuid>| match org {
        None => "Any of my organizations".to_owned(),
        Some(id) => memberships
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| "an organization you left".to_owned(), |m| m.name.clone()),
    };
    let tokens = pats::list(&state.db, user)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            organization: name_of(t.org_id),
            scopes: t.scopes.join(" "),
            created: day(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".to_owned(), day),
            expires: t.expires_at.map_or_else(|| "never".to_owned(), day),
            name: t.name,
        })
        .collect();
    Ok(ApiTokensSection {
        tokens,
        orgs: memberships.iter().map(|m| (m.id, m.name.clone())).collect(),
        scopes,
        never_allowed: state.settings.pat_max_lifetime.is_none(),
        created,
        error,
    })
}

/// `expires`: `7d`, `30d`, `90d`, `never`, or `date` with `expires_on` (YYYY-MM-DD).
fn lifetime(
    expires: Option<&str>,
    on: Option<&str>,
) -> Result<Option<chrono::Duration>, &'static str> {
    match expires.unwrap_or("30d") {
        "7d" => Ok(Some(chrono::Duration::days(7))),
        "30d" => Ok(Some(chrono::Duration::days(30))),
        "90d" => Ok(Some(chrono::Duration::days(90))),
        "never" => Ok(None),
        "date" => {
            let date = on
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or("Choose the date the token expires.")?;
            let end = date
                .and_hms_opt(23, 59, 59)
                .ok_or("Choose the date the token expires.")?
                .and_utc();
            let left = end - chrono::Utc::now();
            if left <= chrono::Duration::zero() {
                return Err("The expiry date is in the past.");
            }
            Ok(Some(left))
        }
        _ => Err("Choose how long the token lives."),
    }
}

/// **Create token**: the form's fields are `name`, `org` (`any` or an id),
/// `scope` (repeated), `expires` and `expires_on`.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    PageForm(pairs): PageForm,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let org_id = match field("org") {
        None | Some("any") => None,
        Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| PageError::BadForm("org".into()))?),
    };
    let user = current.session.user_id;
    let refused = |why: String| AccountExtras {
        api_token_error: Some(why),
        ..AccountExtras::default()
    };
    let lifetime = match lifetime(field("expires"), field("expires_on")) {
        Ok(l) => l,
        Err(why) => {
            let extras = refused(why.to_owned());
            return account_page(&state, &current, extras, StatusCode::BAD_REQUEST).await;
        }
    };
    let new = NewPat {
        user_id: user,
        name: field("name").unwrap_or_default(),
        org_id,
        scopes: &scopes,
        lifetime,
    };
    match pats::create(&state.db, state.settings.pat_max_lifetime(), new).await {
        Ok((_, token)) => {
            let extras = AccountExtras {
                new_api_token: Some(token),
                ..AccountExtras::default()
            };
            account_page(&state, &current, extras, StatusCode::OK).await
        }
        Err(PatError::Storage(e)) => Err(unavailable(e)),
        Err(e) => {
            let extras = refused(format!("{}.", e.to_string().trim_end_matches('.')));
            account_page(&state, &current, extras, StatusCode::BAD_REQUEST).await
        }
    }
}

/// **Revoke** on a token of the list.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let current = require_session(&req, &state).await?;
    match pats::revoke(&state.db, Some(current.session.user_id), path.into_inner()).await {
        Ok(()) | Err(PatError::NotFound) => Ok(see_other("/account#api-tokens")),
        Err(e) => Err(unavailable(e)),
    }
}
