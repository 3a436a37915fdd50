//! OpenID Connect Back-Channel Logout 1.0: when a browser session ends, every
//! client that received tokens from it (and registered a
//! `backchannel_logout_uri`) is sent a logout token, server to server.
//!
//! Which clients those are is recorded at the code exchange
//! (`session_client`). Ending a session writes one job per such client in the
//! same transaction that deletes the session (`identity::sessions`); the job
//! worker signs the logout token when it delivers it (a fresh `iat`/`exp` on
//! every try) and POSTs it with a short timeout, following no redirect.
//! Connection failures, timeouts and `5xx` are retried with the queue's
//! backoff; any other answer but `2xx` is recorded as a permanent failure.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set, SqlErr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::{self, Claimed, Failure};
use crate::store::entities::{client, session_client};
use crate::tokens::{Algorithm, KeyRing};

/// The job kind of a back-channel logout delivery.
pub const KIND: &str = "backchannel_logout";

/// §2.4: the event a logout token carries.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is valid: §2.4 wants it short-lived.
const TOKEN_TTL: i64 = 120;

/// A client's endpoint gets this long to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Records that `client_id` received tokens from the browser session
/// `session_id` of `user_id` (once; later exchanges change nothing).
pub async fn record<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    client_id: &str,
    user_id: Uuid,
) -> Result<(), DbErr> {
    let inserted = session_client::ActiveModel {
        session_id: Set(session_id),
        client_id: Set(client_id.to_owned()),
        user_id: Set(user_id),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a logout job carries; the token itself is minted at delivery.
#[derive(Debug, Serialize, Deserialize)]
struct LogoutJob {
    client_id: String,
    uri: String,
    sub: String,
    sid: String,
    alg: String,
}

/// Queues a logout token for every client that received tokens from the
/// sessions `ids` (in `db`, the transaction that ends them) and forgets those
/// records; how many were queued.
pub async fn sessions_ended<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> Result<usize, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let rows = session_client::Entity::find()
        .filter(session_client::Column::SessionId.is_in(ids.to_vec()))
        .all(db)
        .await?;
    let queued = queue(db, &rows).await?;
    session_client::Entity::delete_many()
        .filter(session_client::Column::SessionId.is_in(ids.to_vec()))
        .exec(db)
        .await?;
    Ok(queued)
}

/// Queues a logout token to `client_id` for each session of `user_id` it
/// received tokens from (the person removed the app's access), and forgets them.
pub async fn client_removed<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    client_id: &str,
) -> Result<usize, DbErr> {
    let filter = |q: sea_orm::Select<session_client::Entity>| {
        q.filter(session_client::Column::UserId.eq(user_id))
            .filter(session_client::Column::ClientId.eq(client_id))
    };
    let rows = filter(session_client::Entity::find()).all(db).await?;
    let queued = queue(db, &rows).await?;
    session_client::Entity::delete_many()
        .filter(session_client::Column::UserId.eq(user_id))
        .filter(session_client::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    Ok(queued)
}

async fn queue<C: ConnectionTrait>(db: &C, rows: &[session_client::Model]) -> Result<usize, DbErr> {
    if rows.is_empty() {
        return Ok(0);
    }
    let client_ids: Vec<String> = rows.iter().map(|r| r.client_id.clone()).collect();
    let clients = client::Entity::find()
        .filter(client::Column::ClientId.is_in(client_ids))
        .filter(client::Column::BackchannelLogoutUri.is_not_null())
        .all(db)
        .await?;
    let mut queued = 0;
    for row in rows {
        let Some(client) = clients.iter().find(|c| c.client_id == row.client_id) else {
            continue;
        };
        let Some(uri) = &client.backchannel_logout_uri else {
            continue;
        };
        let job = LogoutJob {
            client_id: row.client_id.clone(),
            uri: uri.clone(),
            sub: row.user_id.to_string(),
            sid: row.session_id.to_string(),
            alg: client.id_token_alg.clone(),
        };
        let payload = serde_json::to_value(&job).map_err(|e| DbErr::Custom(e.to_string()))?;
        jobs::enqueue(db, KIND, &payload).await?;
        queued += 1;
    }
    Ok(queued)
}

/// §2.4 logout token claims.
#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sub: &'a str,
    sid: &'a str,
    events: serde_json::Value,
}

/// Signs and sends logout tokens for the job worker.
pub struct Sender {
    keys: Arc<KeyRing>,
    issuer: String,
    http: reqwest::Client,
}

impl Sender {
    pub fn new(keys: Arc<KeyRing>, issuer: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            // §2.5 says nothing of redirects; following one would send the
            // token somewhere the client never registered.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("back-channel logout client: {e}"))?;
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            http,
        })
    }

    /// The logout token for `job`, signed now like the client's id_tokens.
    fn token(&self, job: &LogoutJob) -> Result<String, Failure> {
        let now = Utc::now();
        let claims = LogoutClaims {
            iss: &self.issuer,
            aud: &job.client_id,
            iat: now.timestamp(),
            exp: now.timestamp() + TOKEN_TTL,
            jti: Uuid::now_v7().to_string(),
            sub: &job.sub,
            sid: &job.sid,
            events: serde_json::json!({ EVENT: {} }),
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| Failure::Permanent(e.to_string()))?;
        let alg: Algorithm = job.alg.parse().unwrap_or(Algorithm::Rs256);
        self.keys
            .keys()
            .sign(alg, "logout+jwt", &payload, now)
            .map_err(|e| Failure::Temporary(format!("cannot sign a logout token: {e}")))
    }

    /// §2.5: POST `logout_token` as a form; `2xx` is done.
    pub async fn deliver(&self, job: &Claimed) -> Result<(), Failure> {
        let job: LogoutJob = serde_json::from_str(&job.payload)
            .map_err(|e| Failure::Permanent(format!("malformed logout job: {e}")))?;
        let token = self.token(&job)?;
        let answer = self
            .http
            .post(&job.uri)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await
            .map_err(|e| Failure::Temporary(format!("{}: {e}", job.uri)))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(Failure::Temporary(format!(
                "{}: answered {status}",
                job.uri
            )))
        } else if status.is_redirection() {
            Err(Failure::Permanent(format!(
                "{}: answered {status}; redirects are not followed",
                job.uri
            )))
        } else {
            Err(Failure::Permanent(format!(
                "{}: answered {status}",
                job.uri
            )))
        }
    }
}
