//! Client authentication at the token, revocation and introspection endpoints
//! (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, or `none` for
//! public clients — each client exactly the method it registered.

use std::borrow::Cow;
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::clients::{AuthMethod, Client};
use super::params::Params;
use crate::error::ErrorCode;
use crate::store::clients::ClientCache;

/// Why a client was not authenticated, with the code it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
}

fn refuse<T>(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Result<T, Refusal> {
    Err(Refusal {
        code,
        description: description.into(),
    })
}

/// The client behind a request whose HTTP Basic credentials (already decoded,
/// RFC 6749 §2.3.1) are `basic` and whose form is `params`.
pub async fn authenticate(
    clients: &ClientCache,
    db: &DatabaseConnection,
    basic: Option<(String, Vec<u8>)>,
    params: &Params,
) -> Result<Arc<Client>, Refusal> {
    let client_id = match (&basic, params.get("client_id")) {
        (Some((id, _)), Some(body)) if id != body => {
            return refuse(
                ErrorCode::InvalidRequest,
                "client_id differs from the authenticated client",
            );
        }
        (Some((id, _)), _) => id.as_str(),
        (None, Some(id)) => id,
        (None, None) => {
            return refuse(
                ErrorCode::InvalidClient,
                "client authentication is required",
            );
        }
    };
    if basic.is_some() && params.get("client_secret").is_some() {
        return refuse(
            ErrorCode::InvalidRequest,
            "use one client authentication method, not two",
        );
    }
    let found = clients.find(db, client_id).await.map_err(|e| {
        tracing::error!("client lookup: {e}");
        Refusal {
            code: ErrorCode::TemporarilyUnavailable,
            description: "try again shortly".into(),
        }
    })?;
    let Some(client) = found else {
        return refuse(
            ErrorCode::InvalidClient,
            "unknown client or wrong credentials",
        );
    };
    let (used, secret) = match (basic, params.get("client_secret")) {
        (Some((_, secret)), _) => (AuthMethod::ClientSecretBasic, Some(secret)),
        (None, Some(secret)) => (
            AuthMethod::ClientSecretPost,
            Some(secret.as_bytes().to_vec()),
        ),
        (None, None) => (AuthMethod::None, None),
    };
    if !client.authenticates(secret.as_deref()) {
        return refuse(
            ErrorCode::InvalidClient,
            "unknown client or wrong credentials",
        );
    }
    // A secret is only as safe as the channel the client agreed to send it on
    // (RFC 7591 §2); Hydra and node-oidc-provider hold clients to it too. Checked
    // after the secret so that only the client itself learns its method.
    if used != client.auth_method {
        return refuse(
            ErrorCode::InvalidClient,
            format!(
                "this client is registered to authenticate with {}, not {used}",
                client.auth_method
            ),
        );
    }
    Ok(client)
}
