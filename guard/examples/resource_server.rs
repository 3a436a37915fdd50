//! A tiny multi-tenant API protected by `tessera-guard`.
//!
//! ```sh
//! TESSERA_ISSUER=http://localhost:8080 API_AUDIENCE=http://localhost:8080 \
//!   [API_PORT=9090] [API_CLIENT_ID=… API_CLIENT_SECRET=…] [API_INTROSPECTION_CACHE_SECS=30] \
//!   cargo run -p tessera-guard --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" -H "x-organization-id: $ORG" localhost:9090/orders
//! ```
//!
//! `GET /orders` needs any member of the organization the request names;
//! `DELETE /orders` needs an admin or owner there. `GET` and `POST
//! /organizations/{organizationId}/projects` take the organization from the path
//! and need the `projects:read` / `projects:write` scope. Personal access tokens
//! (`Authorization: Bearer tsr_pat_…` or `X-Api-Key`) are checked by
//! introspection with `API_CLIENT_ID` / `API_CLIENT_SECRET`.
//!
//! A token names one organization. A client acting in another one switches
//! without a new sign-in — a refresh naming it, then the call again:
//!
//! ```sh
//! curl -u "$CLIENT_ID:$CLIENT_SECRET" localhost:8080/token -d grant_type=refresh_token \
//!   -d refresh_token="$REFRESH_TOKEN" -d organization_id="$OTHER_ORG"
//! curl -H "Authorization: Bearer $NEW_ACCESS_TOKEN" localhost:9090/orders
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use tessera_guard::{Access, Guard, GuardConfig, GuardError, Role};

async fn list_orders(access: Access) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "organization": access.org_id.to_string(),
        "caller": access.subject,
        "role": access.role.as_str(),
        "orders": [],
    }))
}

async fn delete_orders(access: Access) -> Result<HttpResponse, GuardError> {
    access.require(Role::Admin)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_projects(access: Access) -> Result<HttpResponse, GuardError> {
    access.require_scope("projects:read")?;
    Ok(HttpResponse::Ok().json(json!({
        "organization": access.org_id.to_string(),
        "caller": format!("{:?}", access.caller),
        "projects": [],
    })))
}

async fn create_project(access: Access) -> Result<HttpResponse, GuardError> {
    access.require_scope("projects:write")?;
    Ok(HttpResponse::Created().json(json!({ "organization": access.org_id.to_string() })))
}

/// The API's routes, shared with the end-to-end test.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::get().to(list_orders))
        .route("/orders", web::delete().to(delete_orders))
        .route(
            "/organizations/{organizationId}/projects",
            web::get().to(list_projects),
        )
        .route(
            "/organizations/{organizationId}/projects",
            web::post().to(create_project),
        );
}

/// The guard's settings for this API: the organization from the path, and
/// this API's own client for personal access tokens.
pub fn config(issuer: String, audience: String) -> GuardConfig {
    let mut config = GuardConfig::new(issuer, audience);
    config.org_path_param = Some("organizationId".to_owned());
    if let (Ok(id), Ok(secret)) = (
        std::env::var("API_CLIENT_ID"),
        std::env::var("API_CLIENT_SECRET"),
    ) {
        config.introspection_client = Some((id, secret));
    }
    if let Some(secs) = std::env::var("API_INTROSPECTION_CACHE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.introspection_cache_ttl = std::time::Duration::from_secs(secs);
    }
    config
}

#[allow(dead_code)]
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let issuer = std::env::var("TESSERA_ISSUER").unwrap_or_else(|_| "http://localhost:8080".into());
    let audience = std::env::var("API_AUDIENCE").unwrap_or_else(|_| issuer.clone());
    let guard = Guard::discover(config(issuer, audience))
        .await
        .map_err(std::io::Error::other)?;
    let guard = web::Data::new(guard);
    let port = std::env::var("API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9090u16);
    HttpServer::new(move || App::new().app_data(guard.clone()).configure(routes))
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
