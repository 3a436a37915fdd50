//! The endpoints an authenticated client posts forms to: `/token` (RFC 6749 §3.2),
//! `/revoke` (RFC 7009) and `/introspect` (RFC 7662). Client authentication
//! (RFC 6749 §2.3) happens here; what a grant issues is decided in
//! `oauth::grants`, and every refusal is an [`OAuthError`] (RFC 6749 §5.2).

use std::borrow::Cow;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;

use super::client::ClientIp;
use super::error::OAuthError;
use super::form::Body;
use crate::error::ErrorCode;
use crate::oauth::client_auth;
use crate::oauth::clients::{Client, GRANT_TYPES, GrantType};
use crate::oauth::grants;
use crate::oauth::params::Params;
use crate::oauth::revocation::{self, RevocationError};
use crate::state::AppState;

/// An RFC 6749 §5.2 refusal (see [`OAuthError`] for how it is answered).
fn refuse<T>(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Result<T, OAuthError> {
    Err(OAuthError::new(code, description))
}

/// `client_secret_basic`: RFC 6749 §2.3.1 — both halves are form-urlencoded.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, Vec<u8>)>, &'static str> {
    let Some(value) = super::authorization_header(req)? else {
        return Ok(None);
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return Err("only Basic client authentication is accepted here");
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "malformed Basic credentials")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "malformed Basic credentials")?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or("malformed Basic credentials")?;
    let unescape = |s: &str| {
        // Most ids and secrets have nothing escaped in them.
        if !s.contains(['%', '+']) {
            return s.to_owned();
        }
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret).into_bytes())))
}

/// A form-encoded request from an authenticated client (token, revocation and
/// introspection endpoints all start here).
struct ClientRequest {
    client: std::sync::Arc<Client>,
    params: Params,
}

/// The form of a request to these endpoints, and its HTTP Basic credentials.
fn form_request(req: &HttpRequest, body: &[u8]) -> Result<(Params, Basic), OAuthError> {
    if !super::form::is_form(req) {
        return refuse(
            ErrorCode::InvalidRequest,
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let pairs = super::form::strict_pairs(body)
        .map_err(|why| OAuthError::new(ErrorCode::InvalidRequest, why.to_owned()))?;
    let params =
        Params::unique(pairs).map_err(|why| OAuthError::new(ErrorCode::InvalidRequest, why))?;
    let basic = basic_credentials(req)
        .map_err(|why| OAuthError::new(ErrorCode::InvalidClient, why.to_owned()))?;
    Ok((params, basic))
}

type Basic = Option<(String, Vec<u8>)>;

async fn authenticated(
    state: &AppState,
    params: Params,
    basic: Basic,
) -> Result<ClientRequest, OAuthError> {
    let client = client_auth::authenticate(&state.clients, &state.db, basic, &params)
        .await
        .map_err(|refusal| OAuthError::new(refusal.code, refusal.description))?;
    Ok(ClientRequest { client, params })
}

async fn authenticated_request(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<ClientRequest, OAuthError> {
    let (params, basic) = form_request(req, body)?;
    authenticated(state, params, basic).await
}

/// RFC 6749 §5.1: tokens are never cached (`no-store` is the default of every
/// response; `Pragma` is for HTTP/1.0 caches).
fn token_response(response: &grants::TokenResponse) -> Result<HttpResponse, OAuthError> {
    // Sized for the tokens up front: growing from serde_json's default buffer
    // took three reallocations per response.
    let tokens = response.access_token.len()
        + response.id_token.as_ref().map_or(0, String::len)
        + response.refresh_token.as_ref().map_or(0, String::len);
    let mut body = Vec::with_capacity(tokens + response.scope.len() + 160);
    serde_json::to_writer(&mut body, response).map_err(|e| {
        tracing::error!("token response: {e}");
        OAuthError::unavailable()
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::CONTENT_TYPE, super::JSON))
        .body(body))
}

/// RFC 6749 §3.2: the grant named by `grant_type`, for a client registered for
/// it; or an RFC 8693 exchange of a personal access token, which is its own
/// credential (a client that authenticates anyway must do so correctly).
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthError> {
    let (params, basic) = form_request(&req, &body)?;
    // A personal access token is its own credential; a provider's id_token
    // proves the person, not the app, so that exchange goes through client
    // authentication and the client's registered grants below.
    let pat_exchange = params.get("grant_type") == Some(grants::TOKEN_EXCHANGE)
        && params.get("subject_token_type") != Some(grants::ID_TOKEN_TYPE);
    if pat_exchange {
        if basic.is_some() || params.get("client_id").is_some() {
            authenticated(&state, params.clone(), basic).await?;
        }
        let config = state.issuer_config();
        // Only this grant is throttled by client address (no client is
        // authenticated); the others need not work it out.
        let ip = ClientIp::of(&req);
        let response =
            grants::token_exchange(&config, &state.throttle, ip.as_str(), &params).await?;
        return token_response(&response);
    }
    let ClientRequest { client, params } = authenticated(&state, params, basic).await?;
    let Some(grant_type) = params.get("grant_type") else {
        return refuse(ErrorCode::InvalidRequest, "grant_type is required");
    };
    let Some(grant_type) = GrantType::parse(grant_type) else {
        return refuse(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type must be one of {}", GRANT_TYPES.join(", ")),
        );
    };
    if !client.allows_grant(grant_type) {
        return refuse(
            ErrorCode::UnauthorizedClient,
            "this client may not use this grant type",
        );
    }
    let config = state.issuer_config();
    let response = match grant_type {
        GrantType::AuthorizationCode => grants::authorization_code(&config, &client, &params).await,
        GrantType::RefreshToken => grants::refresh_token(&config, &client, &params).await,
        GrantType::ClientCredentials => grants::client_credentials(&config, &client, &params).await,
        GrantType::TokenExchange => {
            grants::id_token_exchange(&config, &state.federation, &state.mail, &client, &params)
                .await
        }
    }?;
    token_response(&response)
}

/// RFC 7009 revocation: 200 with an empty body for every token the client may
/// revoke, known or not.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthError> {
    let request = authenticated_request(&req, &state, &body).await?;
    let Some(token) = request.params.get("token") else {
        return refuse(ErrorCode::InvalidRequest, "token is required");
    };
    let hint = request.params.get("token_type_hint");
    match revocation::revoke(
        &state.issuer_config(),
        &request.client.client_id,
        token,
        hint,
    )
    .await
    {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(RevocationError::NotOwner) => refuse(
            ErrorCode::UnauthorizedClient,
            "the token was issued to another client",
        ),
        Err(RevocationError::Storage(e)) => {
            tracing::error!("revocation: {e}");
            Err(OAuthError::unavailable())
        }
    }
}

/// RFC 7662 introspection for authenticated confidential clients: a public client
/// proves nothing but its id, so it may not inspect tokens.
pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthError> {
    let request = authenticated_request(&req, &state, &body).await?;
    if request.client.is_public() {
        return refuse(
            ErrorCode::InvalidClient,
            "introspection needs a confidential client",
        );
    }
    let Some(token) = request.params.get("token") else {
        return refuse(ErrorCode::InvalidRequest, "token is required");
    };
    let hint = request.params.get("token_type_hint");
    match revocation::introspect(&state.issuer_config(), &request.client, token, hint).await {
        Ok(answer) => Ok(HttpResponse::Ok().json(answer)),
        Err(e) => {
            tracing::error!("introspection: {e}");
            Err(OAuthError::unavailable())
        }
    }
}
