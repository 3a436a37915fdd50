//! Browser sessions. The cookie carries 256 random bits; the database keeps only
//! their SHA-256, and the cache keeps a short-lived copy under the same hash so most
//! requests never reach the database.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::IdentityError;
use crate::store::cache::Cache;
use crate::store::entities::{session, user};

/// A cached copy is re-read from the database at least this often, so a session
/// ended or an account disabled elsewhere stops working within this time.
const CACHE_COPY_TTL: Duration = Duration::from_secs(60);
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// A live session, as handlers see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub auth_time: DateTime<Utc>,
    /// RFC 8176 authentication method references.
    pub amr: Vec<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The upstream provider signed in through, if any.
    #[serde(default)]
    pub idp: Option<String>,
}

/// A session just started, with the cookie value to hand to the browser once.
pub struct Started {
    pub token: String,
    pub session: Session,
}

/// Creates random 256-bit tokens, base64url-encoded.
pub fn random_token() -> Result<String, IdentityError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| IdentityError::Hashing(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The digest a session is stored and cached under (its id's SHA-256).
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The cache key of a session's short-lived copy, by [`token_hash`].
pub fn cache_key(hash: &str) -> String {
    format!("session:{hash}")
}

/// A form token bound to a secret cookie value (the session token, or the
/// pre-session CSRF cookie): HMAC-SHA256(secret, "csrf").
pub fn csrf_token(secret: &str) -> String {
    csrf_mac(secret)
        .map(|mac| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

fn csrf_mac(secret: &str) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length; the error case cannot occur.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(b"csrf");
    Some(mac)
}

/// Checks a submitted form token in constant time.
pub fn csrf_matches(secret: &str, submitted: &str) -> bool {
    let Ok(submitted) = URL_SAFE_NO_PAD.decode(submitted) else {
        return false;
    };
    csrf_mac(secret).is_some_and(|mac| mac.verify_slice(&submitted).is_ok())
}

/// Session lifecycle over the database and the cache.
#[derive(Clone)]
pub struct Sessions {
    db: DatabaseConnection,
    cache: Cache,
    idle_timeout: chrono::Duration,
    lifetime: chrono::Duration,
    /// Wakes the job worker when ending sessions queued back-channel logouts.
    jobs: crate::jobs::Queue,
}

impl Sessions {
    pub fn new(
        db: DatabaseConnection,
        cache: Cache,
        idle_timeout: Duration,
        lifetime: Duration,
        jobs: crate::jobs::Queue,
    ) -> Self {
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Self {
            db,
            cache,
            idle_timeout: to_chrono(idle_timeout),
            lifetime: to_chrono(lifetime),
            jobs,
        }
    }

    /// Ends `rows` as a person or an operator asked: in one transaction the
    /// sessions go and every client that received tokens from them gets a
    /// back-channel logout job (OIDC Back-Channel Logout 1.0); then the cached
    /// copies go. (A session that merely expires is not announced.)
    async fn end_rows(&self, rows: &[session::Model]) -> Result<u64, IdentityError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        // Written first, then read: see `identity::devices`.
        let txn = self.db.begin().await?;
        let deleted = session::Entity::delete_many()
            .filter(session::Column::Id.is_in(ids.clone()))
            .exec(&txn)
            .await?;
        let queued = crate::oidc::backchannel::sessions_ended(&txn, &ids).await?;
        txn.commit().await?;
        for row in rows {
            self.cache.remove(&cache_key(&row.token_hash)).await?;
        }
        if queued > 0 {
            self.jobs.wake();
        }
        Ok(deleted.rows_affected)
    }

    /// Starts a new session (a new token at every sign-in: no fixation).
    pub async fn start(
        &self,
        user: &user::Model,
        amr: &[&str],
        idp: Option<&str>,
        ip: Option<String>,
        user_agent: Option<String>,
    ) -> Result<Started, IdentityError> {
        let token = random_token()?;
        let hash = token_hash(&token);
        let now = Utc::now();
        let user_agent = user_agent.map(|ua| ua.chars().take(256).collect::<String>());
        let ip = ip.map(|ip| ip.chars().take(64).collect::<String>());
        let row = session::ActiveModel {
            id: Set(Uuid::now_v7()),
            token_hash: Set(hash.clone()),
            user_id: Set(user.id),
            created_at: Set(now),
            last_seen_at: Set(now),
            auth_time: Set(now),
            amr: Set(amr.join(" ")),
            ip: Set(ip),
            user_agent: Set(user_agent),
            idp: Set(idp.map(str::to_owned)),
        }
        .insert(&self.db)
        .await?;
        let mut event =
            crate::audit::Event::by_person(crate::audit::Kind::SignInSucceeded, user.id)
                .detail("amr", amr.to_vec())
                .detail("session", row.id.to_string());
        if let Some(idp) = idp {
            event = event.detail("idp", idp);
        }
        crate::audit::record(&self.db, event).await?;
        let session = to_session(row, user.email.clone());
        self.cache_copy(&hash, &session).await;
        Ok(Started { token, session })
    }

    /// The live session for a cookie value, if any; expired sessions are removed.
    pub async fn resolve(&self, token: &str) -> Result<Option<Session>, IdentityError> {
        if token.len() != 43 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let cached = match self.cache.get(&cache_key(&hash)).await {
            Ok(bytes) => bytes.and_then(|b| serde_json::from_slice::<Session>(&b).ok()),
            Err(e) => {
                // The database still answers; the cache is only a fast path.
                tracing::warn!("session cache unavailable: {e}");
                None
            }
        };
        let session = match cached {
            Some(s) => s,
            None => match self.load(&hash).await? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        let now = Utc::now();
        if now - session.last_seen_at > self.idle_timeout
            || now - session.created_at > self.lifetime
        {
            self.expire(&hash, session.id).await?;
            return Ok(None);
        }
        if now - session.last_seen_at > TOUCH_EVERY {
            return Ok(Some(self.touch(&hash, session, now).await?));
        }
        Ok(Some(session))
    }

    async fn load(&self, hash: &str) -> Result<Option<Session>, IdentityError> {
        let found = session::Entity::find()
            .filter(session::Column::TokenHash.eq(hash))
            .find_also_related(user::Entity)
            .one(&self.db)
            .await?;
        let Some((row, Some(owner))) = found else {
            return Ok(None);
        };
        if owner.disabled {
            return Ok(None);
        }
        let session = to_session(row, owner.email);
        self.cache_copy(hash, &session).await;
        Ok(Some(session))
    }

    async fn touch(
        &self,
        hash: &str,
        mut session: Session,
        now: DateTime<Utc>,
    ) -> Result<Session, IdentityError> {
        session::Entity::update_many()
            .col_expr(
                session::Column::LastSeenAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(session::Column::TokenHash.eq(hash))
            .exec(&self.db)
            .await?;
        session.last_seen_at = now;
        self.cache_copy(hash, &session).await;
        Ok(session)
    }

    async fn cache_copy(&self, hash: &str, session: &Session) {
        let Ok(bytes) = serde_json::to_vec(session) else {
            return;
        };
        if let Err(e) = self
            .cache
            .put(&cache_key(hash), &bytes, CACHE_COPY_TTL)
            .await
        {
            tracing::warn!("session cache unavailable: {e}");
        }
    }

    /// Drops the cached copy of the session stored under `hash`, so the next
    /// request reads the database (after a change made to the row directly).
    pub async fn drop_cached_copy(&self, hash: &str) -> Result<(), IdentityError> {
        self.cache.remove(&cache_key(hash)).await?;
        Ok(())
    }

    /// Drops the cached copies of a user's sessions, so the next request reads
    /// them (and the account's current address) from the database.
    pub async fn refresh_for_user(&self, user_id: Uuid) -> Result<(), IdentityError> {
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?;
        for row in &rows {
            self.cache.remove(&cache_key(&row.token_hash)).await?;
        }
        Ok(())
    }

    /// Ends the session behind a cookie value.
    pub async fn end(&self, token: &str) -> Result<(), IdentityError> {
        let hash = token_hash(token);
        let rows = session::Entity::find()
            .filter(session::Column::TokenHash.eq(hash.clone()))
            .all(&self.db)
            .await?;
        self.end_rows(&rows).await?;
        // A copy may outlive a row another request already removed.
        self.cache.remove(&cache_key(&hash)).await?;
        Ok(())
    }

    /// A session found past its idle or absolute limit goes quietly: no
    /// back-channel logout (the person did not sign out), but the record of which
    /// clients it served goes with it.
    async fn expire(&self, hash: &str, id: Uuid) -> Result<(), IdentityError> {
        session::Entity::delete_many()
            .filter(session::Column::TokenHash.eq(hash))
            .exec(&self.db)
            .await?;
        crate::store::entities::session_client::Entity::delete_many()
            .filter(crate::store::entities::session_client::Column::SessionId.eq(id))
            .exec(&self.db)
            .await?;
        self.cache.remove(&cache_key(hash)).await?;
        Ok(())
    }

    /// Ends one of a user's sessions by its id; `false` when it is not theirs.
    pub async fn end_by_id(&self, user_id: Uuid, session_id: Uuid) -> Result<bool, IdentityError> {
        let row = session::Entity::find_by_id(session_id)
            .filter(session::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?;
        match row {
            Some(row) => {
                self.end_rows(&[row]).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends every session of a user ("sign out everywhere", account disabled).
    pub async fn end_all(&self, user_id: Uuid) -> Result<u64, IdentityError> {
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?;
        self.end_rows(&rows).await
    }

    /// Ends every session of a user but `keep` (after a password change).
    pub async fn end_others(&self, user_id: Uuid, keep: Uuid) -> Result<u64, IdentityError> {
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::Id.ne(keep))
            .all(&self.db)
            .await?;
        self.end_rows(&rows).await
    }

    /// A user's live sessions, most recent first.
    pub async fn list(&self, user: &user::Model) -> Result<Vec<Session>, IdentityError> {
        let now = Utc::now();
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user.id))
            .order_by_desc(session::Column::LastSeenAt)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| to_session(row, user.email.clone()))
            .filter(|s| {
                now - s.last_seen_at <= self.idle_timeout && now - s.created_at <= self.lifetime
            })
            .collect())
    }
}

fn to_session(row: session::Model, email: String) -> Session {
    Session {
        id: row.id,
        user_id: row.user_id,
        email,
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
        auth_time: row.auth_time,
        amr: row.amr.split_whitespace().map(str::to_owned).collect(),
        ip: row.ip,
        user_agent: row.user_agent,
        idp: row.idp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_bind_to_their_secret() {
        let secret = random_token().unwrap();
        let token = csrf_token(&secret);
        assert!(csrf_matches(&secret, &token));
        assert!(!csrf_matches(&random_token().unwrap(), &token));
        assert!(!csrf_matches(&secret, ""));
        assert!(!csrf_matches(&secret, "!!not base64!!"));
    }

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let a = random_token().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, random_token().unwrap());
    }
}
