//! Operational endpoints: liveness, readiness, metrics.

use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// A dependency that takes longer than this to answer counts as down.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("ok")
}

/// Ready when the database and the cache both answer; 503 otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = match tokio::time::timeout(READINESS_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let cache = match tokio::time::timeout(READINESS_TIMEOUT, state.cache.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let verdict = |r: &Result<(), String>| match r {
        Ok(()) => "ok",
        Err(_) => "unavailable",
    };
    for (name, result) in [("database", &database), ("cache", &cache)] {
        if let Err(e) = result {
            tracing::warn!(dependency = name, "not ready: {e}");
        }
    }
    let ready = database.is_ok() && cache.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": verdict(&database),
        "cache": verdict(&cache),
    });
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.json(body)
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .insert_header((
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ))
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
