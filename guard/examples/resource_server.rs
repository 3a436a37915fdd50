//! A tiny multi-tenant API protected by `tessera-guard`.
//!
//! ```sh
//! TESSERA_ISSUER=http://localhost:8080 API_AUDIENCE=http://localhost:8080 \
//!   cargo run -p tessera-guard --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" -H "x-organization-id: $ORG" localhost:9090/orders
//! ```
//!
//! `GET /orders` needs any member of the organization the request names;
//! `DELETE /orders` needs an admin or owner there.

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

/// The API's routes, shared with the end-to-end test.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::get().to(list_orders))
        .route("/orders", web::delete().to(delete_orders));
}

#[allow(dead_code)]
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let issuer = std::env::var("TESSERA_ISSUER").unwrap_or_else(|_| "http://localhost:8080".into());
    let audience = std::env::var("API_AUDIENCE").unwrap_or_else(|_| issuer.clone());
    let guard = Guard::discover(GuardConfig::new(issuer, audience))
        .await
        .map_err(std::io::Error::other)?;
    let guard = web::Data::new(guard);
    HttpServer::new(move || App::new().app_data(guard.clone()).configure(routes))
        .bind(("127.0.0.1", 9090))?
        .run()
        .await
}
