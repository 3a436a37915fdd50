//! `/userinfo` (OIDC Core §5.3), a bearer-token resource (RFC 6750).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::oauth::tokens::{BearerError, verify_access_token};
use crate::oidc::userinfo;
use crate::state::AppState;

/// RFC 6750 §3: a challenge, with an error code only when a token was presented.
fn bearer_challenge(status: StatusCode, error: Option<(&str, &str)>) -> HttpResponse {
    let challenge = match error {
        None => "Bearer realm=\"tessera\"".to_owned(),
        Some((code, description)) => {
            format!(
                "Bearer realm=\"tessera\", error=\"{code}\", error_description=\"{description}\""
            )
        }
    };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match error {
        Some((code, description)) => {
            response.json(json!({ "error": code, "error_description": description }))
        }
        None => response.finish(),
    }
}

/// The token from `Authorization: Bearer`, or (POST only) the `access_token` form
/// field (RFC 6750 §2.2); presenting both is an invalid request.
fn bearer_token(req: &HttpRequest, body: Option<&[u8]>) -> Result<Option<String>, &'static str> {
    let header_token = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| "malformed Authorization header")?;
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or("the Authorization header must use the Bearer scheme")?;
            Some(token.trim().to_owned())
        }
    };
    let form_token = body.and_then(|b| {
        url::form_urlencoded::parse(b)
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    match (header_token, form_token) {
        (Some(_), Some(_)) => Err("the token was sent in more than one way"),
        (Some(t), None) | (None, Some(t)) => Ok(Some(t)),
        (None, None) => Ok(None),
    }
}

pub async fn userinfo_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    userinfo(&req, &state, None).await
}

pub async fn userinfo_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    userinfo(&req, &state, is_form.then_some(&body[..])).await
}

async fn userinfo(req: &HttpRequest, state: &AppState, body: Option<&[u8]>) -> HttpResponse {
    let token = match bearer_token(req, body) {
        Ok(Some(t)) => t,
        Ok(None) => return bearer_challenge(StatusCode::UNAUTHORIZED, None),
        Err(why) => {
            return bearer_challenge(StatusCode::BAD_REQUEST, Some(("invalid_request", why)));
        }
    };
    let claims = match verify_access_token(
        &state.keys,
        &state.cache,
        state.settings.issuer_str(),
        &token,
    )
    .await
    {
        Ok(c) => c,
        Err(BearerError::Unavailable(e)) => {
            tracing::error!("userinfo: {e}");
            return HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .json(json!({"error": "temporarily_unavailable", "error_description": "try again shortly"}));
        }
        Err(e) => {
            return bearer_challenge(
                StatusCode::UNAUTHORIZED,
                Some(("invalid_token", &e.to_string())),
            );
        }
    };
    let scope = claims
        .get("scope")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !scope.split_whitespace().any(|s| s == "openid") {
        return bearer_challenge(
            StatusCode::FORBIDDEN,
            Some((
                "insufficient_scope",
                "the token was not granted the openid scope",
            )),
        );
    }
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    match userinfo::claims(&state.db, sub, scope).await {
        Ok(Some(info)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(info),
        Ok(None) => bearer_challenge(
            StatusCode::UNAUTHORIZED,
            Some((
                "invalid_token",
                "the account behind the token no longer exists",
            )),
        ),
        Err(e) => {
            tracing::error!("userinfo: {e}");
            HttpResponse::ServiceUnavailable().finish()
        }
    }
}
