//! Refresh tokens: 256 random bits handed out once, stored as SHA-256 digests.
//!
//! Every use rotates (RFC 9700 §4.14.2): the presented token is marked spent and a
//! new one of the same family issued, in one transaction. The spend is a
//! conditional update, so of two concurrent refreshes with one token exactly one
//! wins. Presenting a spent token is reuse: the whole family is revoked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, Set, Statement, TransactionTrait,
};
use uuid::Uuid;

use super::SessionContext;
use super::digest;
use crate::identity::sessions::random_token;
use crate::store::entities::refresh_token;

pub use refresh_token::Model as RefreshRecord;

/// How long refresh tokens live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A token unused this long expires.
    pub idle: Duration,
    /// A family ends this long after the original grant, however active.
    pub absolute: Duration,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What a new family is bound to.
pub struct NewFamily<'a> {
    pub client_id: &'a str,
    pub user_id: Option<Uuid>,
    pub session: Option<&'a SessionContext>,
    pub scope: &'a str,
    pub org_id: Option<Uuid>,
    pub resource: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("randomness: {0}")]
    Random(String),
}

/// Starts a family; returns the token (shown to the client once) and the family id.
pub async fn issue_family(
    db: &DatabaseConnection,
    new: NewFamily<'_>,
    lifetimes: Lifetimes,
) -> Result<(String, Uuid), RefreshError> {
    let token = random_token().map_err(|e| RefreshError::Random(e.to_string()))?;
    let now = Utc::now();
    let family_id = Uuid::now_v7();
    let family_expires_at = now + chrono(lifetimes.absolute);
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        token_hash: Set(digest(&token)),
        family_id: Set(family_id),
        client_id: Set(new.client_id.to_owned()),
        user_id: Set(new.user_id),
        session_id: Set(new.session.map(|s| s.session_id)),
        scope: Set(new.scope.to_owned()),
        auth_time: Set(new.session.map(|s| s.auth_time)),
        amr: Set(new.session.map(|s| s.amr.join(" ")).unwrap_or_default()),
        created_at: Set(now),
        expires_at: Set((now + chrono(lifetimes.idle)).min(family_expires_at)),
        family_expires_at: Set(family_expires_at),
        spent_at: Set(None),
        revoked_at: Set(None),
        org_id: Set(new.org_id),
        resource: Set(new.resource.map(str::to_owned)),
        successor_sealed: Set(None),
        idp: Set(new.session.and_then(|s| s.idp.clone())),
    }
    .insert(db)
    .await?;
    Ok((token, family_id))
}

/// What a presented refresh token turned out to be.
#[derive(Debug)]
pub enum Presented {
    Live(RefreshRecord),
    /// Already rotated: reuse.
    Spent(RefreshRecord),
    /// Unknown, expired or revoked.
    Dead,
}

pub async fn find(db: &DatabaseConnection, token: &str) -> Result<Presented, RefreshError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(Presented::Dead);
    }
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(digest(token)))
        .one(db)
        .await?;
    let now = Utc::now();
    Ok(match row {
        None => Presented::Dead,
        Some(r) if r.revoked_at.is_some() => Presented::Dead,
        Some(r) if r.spent_at.is_some() => Presented::Spent(r),
        Some(r) if r.expires_at <= now || r.family_expires_at <= now => Presented::Dead,
        Some(r) => Presented::Live(r),
    })
}

/// PostgreSQL's statement behind [`rotate_live`], with its parameters: `$1` now, `$2` the
/// presented digest, `$3` the client, `$4` the successor's id, `$5` its digest,
/// `$6` its idle expiry, `$7` the successor sealed for [`recover`].
///
/// Of two concurrent rotations the second waits on the row lock, re-reads the
/// row, finds `spent_at` set and matches nothing; the insert selects from the
/// update's result, so it happens exactly when the spend did.
///
/// `IS NOT DISTINCT FROM` for the client (never NULL, so it means `=`): no index
/// serves it, which leaves the planner only the unique digest index. With `=`,
/// a table whose statistics are young (a new deployment, or the benchmark's
/// fresh database) got a plan through the client's index that walks every token
/// of the client: 3.5× the database CPU per refresh, growing with the table.
pub const ROTATE_LIVE_SQL: &str = "WITH spent AS (
        UPDATE refresh_token SET spent_at = $1, successor_sealed = $7
        WHERE token_hash = $2 AND client_id IS NOT DISTINCT FROM $3
            AND spent_at IS NULL AND revoked_at IS NULL
            AND expires_at > $1 AND family_expires_at > $1
            AND (org_id IS NULL OR EXISTS (
                SELECT 1 FROM membership
                WHERE membership.organization_id = refresh_token.org_id
                    AND membership.user_id = refresh_token.user_id))
            AND NOT EXISTS (SELECT 1 FROM \"user\"
                WHERE \"user\".id = refresh_token.user_id AND \"user\".disabled)
        RETURNING *
    ), successor AS (
        INSERT INTO refresh_token (id, token_hash, family_id, client_id, user_id,
            session_id, scope, auth_time, amr, created_at, expires_at,
            family_expires_at, spent_at, revoked_at, org_id, resource, idp)
        SELECT $4, $5, family_id, client_id, user_id, session_id, scope, auth_time,
            amr, $1, LEAST($6, family_expires_at), family_expires_at, NULL, NULL, org_id,
            resource, idp
        FROM spent
    )
    SELECT * FROM spent";

/// Spends the live token `token` of `client_id` and issues its successor with the
/// same scope, without looking it up first: what a refresh without a `scope`
/// parameter needs when everything about the token is in order. Returns the spent record and the
/// successor. `None` means "not in order, or not on this backend": the caller then
/// takes the two-step path ([`find`], its checks, [`rotate`]), which tells unknown
/// from spent (reuse) from another client's token from a lost membership — so
/// every condition of that path is repeated in the statement's `WHERE`.
///
/// On PostgreSQL the lookup by digest was a round trip of its own, ≈ a third of
/// the database's CPU per refresh. SQLite has no data-modifying CTEs, so there it
/// is a transaction of three statements instead of four plus the lookup: every
/// statement is a hop to the driver's worker thread and back.
pub async fn rotate_live(
    db: &DatabaseConnection,
    token: &str,
    client_id: &str,
    lifetimes: Lifetimes,
) -> Result<Option<(RefreshRecord, String)>, RefreshError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let successor = random_token().map_err(|e| RefreshError::Random(e.to_string()))?;
    let sealed = seal(token, &successor)?;
    let now = Utc::now();
    let new = Successor {
        token: &successor,
        sealed: &sealed,
    };
    let spent = match db.get_database_backend() {
        DbBackend::Postgres => {
            spend_in_one_statement(db, token, client_id, &new, now, lifetimes).await?
        }
        DbBackend::Sqlite => {
            spend_in_a_transaction(db, token, client_id, &new, now, lifetimes).await?
        }
        _ => None,
    };
    Ok(spent.map(|record| (record, successor)))
}

/// A successor token and its sealed form (kept on the spent row).
struct Successor<'a> {
    token: &'a str,
    sealed: &'a str,
}

/// Spends `token` and inserts `successor` in [`ROTATE_LIVE_SQL`]; the spent record.
async fn spend_in_one_statement(
    db: &DatabaseConnection,
    token: &str,
    client_id: &str,
    successor: &Successor<'_>,
    now: DateTime<Utc>,
    lifetimes: Lifetimes,
) -> Result<Option<RefreshRecord>, RefreshError> {
    let values: [sea_orm::Value; 7] = [
        now.into(),
        digest(token).into(),
        client_id.into(),
        Uuid::now_v7().into(),
        digest(successor.token).into(),
        (now + chrono(lifetimes.idle)).into(),
        successor.sealed.into(),
    ];
    Ok(refresh_token::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            ROTATE_LIVE_SQL,
            values,
        ))
        .one(db)
        .await?)
}

/// SQLite's [`ROTATE_LIVE_SQL`]: the spend, with the same conditions except the
/// expiry (timestamps are text there, so they are compared here, after the spend,
/// and an expired token rolls the spend back). SQLite has one writer, so no
/// concurrent rotation can come between the spend and the insert.
const SPEND_LIVE_SQLITE: &str = "UPDATE refresh_token SET spent_at = ?1, successor_sealed = ?4
    WHERE token_hash = ?2 AND client_id = ?3 AND spent_at IS NULL AND revoked_at IS NULL
        AND (org_id IS NULL OR EXISTS (
            SELECT 1 FROM membership
            WHERE membership.organization_id = refresh_token.org_id
                AND membership.user_id = refresh_token.user_id))
        AND NOT EXISTS (SELECT 1 FROM \"user\"
            WHERE \"user\".id = refresh_token.user_id AND \"user\".disabled)
    RETURNING *";

async fn spend_in_a_transaction(
    db: &DatabaseConnection,
    token: &str,
    client_id: &str,
    successor: &Successor<'_>,
    now: DateTime<Utc>,
    lifetimes: Lifetimes,
) -> Result<Option<RefreshRecord>, RefreshError> {
    let values: [sea_orm::Value; 4] = [
        now.into(),
        digest(token).into(),
        client_id.into(),
        successor.sealed.into(),
    ];
    let txn = db.begin().await?;
    let spent = refresh_token::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            SPEND_LIVE_SQLITE,
            values,
        ))
        .one(&txn)
        .await?;
    let Some(record) = spent.filter(|r| r.expires_at > now && r.family_expires_at > now) else {
        txn.rollback().await?;
        return Ok(None);
    };
    let new = successor_of(&record, successor.token, now, lifetimes);
    refresh_token::Entity::insert(refresh_token::ActiveModel::from(new))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(record))
}

/// The token that replaces `old`: the same grant (RFC 6749 §6 — a refresh that
/// narrows `scope` narrows the access token only), with a fresh idle expiry.
fn successor_of(
    old: &RefreshRecord,
    token: &str,
    now: DateTime<Utc>,
    lifetimes: Lifetimes,
) -> refresh_token::Model {
    refresh_token::Model {
        id: Uuid::now_v7(),
        token_hash: digest(token),
        family_id: old.family_id,
        client_id: old.client_id.clone(),
        user_id: old.user_id,
        session_id: old.session_id,
        scope: old.scope.clone(),
        auth_time: old.auth_time,
        amr: old.amr.clone(),
        created_at: now,
        expires_at: (now + chrono(lifetimes.idle)).min(old.family_expires_at),
        family_expires_at: old.family_expires_at,
        spent_at: None,
        revoked_at: None,
        org_id: old.org_id,
        resource: old.resource.clone(),
        idp: old.idp.clone(),
        successor_sealed: None,
    }
}

/// Spends `old` (presented as `old_token`) and issues its successor (same
/// grant). `None` when another request spent it first: the caller then asks
/// [`recover`] whether that was the same client within the grace window.
pub async fn rotate(
    db: &DatabaseConnection,
    old: &RefreshRecord,
    old_token: &str,
    lifetimes: Lifetimes,
) -> Result<Option<String>, RefreshError> {
    let token = random_token().map_err(|e| RefreshError::Random(e.to_string()))?;
    let sealed = seal(old_token, &token)?;
    let successor = successor_of(old, &token, Utc::now(), lifetimes);
    let rotated = match db.get_database_backend() {
        DbBackend::Postgres => rotate_in_one_statement(db, old.id, &successor, &sealed).await?,
        _ => rotate_in_a_transaction(db, old.id, successor, &sealed).await?,
    };
    Ok(rotated.then_some(token))
}

/// PostgreSQL: the spend and the insert as one statement — one round trip and one
/// commit instead of five round trips (BEGIN, UPDATE, INSERT, COMMIT). The insert
/// selects from the update's result, so it happens exactly when the spend did; of
/// two concurrent rotations the second waits on the row lock, finds `spent_at`
/// set, spends nothing and inserts nothing.
async fn rotate_in_one_statement(
    db: &DatabaseConnection,
    old_id: Uuid,
    new: &refresh_token::Model,
    sealed: &str,
) -> Result<bool, RefreshError> {
    const SQL: &str = "WITH spent AS (
            UPDATE refresh_token SET spent_at = $1, successor_sealed = $16
            WHERE id = $2 AND spent_at IS NULL AND revoked_at IS NULL
            RETURNING id
        )
        INSERT INTO refresh_token (id, token_hash, family_id, client_id, user_id,
            session_id, scope, auth_time, amr, created_at, expires_at,
            family_expires_at, spent_at, revoked_at, org_id, resource, idp)
        SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $1, $12, $13, NULL, NULL, $14, $15, $17
        FROM spent";
    let values: [sea_orm::Value; 17] = [
        new.created_at.into(),
        old_id.into(),
        new.id.into(),
        new.token_hash.clone().into(),
        new.family_id.into(),
        new.client_id.clone().into(),
        new.user_id.into(),
        new.session_id.into(),
        new.scope.clone().into(),
        new.auth_time.into(),
        new.amr.clone().into(),
        new.expires_at.into(),
        new.family_expires_at.into(),
        new.org_id.into(),
        new.resource.clone().into(),
        sealed.into(),
        new.idp.clone().into(),
    ];
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            SQL,
            values,
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// SQLite has no data-modifying CTEs; its round trips stay in-process.
async fn rotate_in_a_transaction(
    db: &DatabaseConnection,
    old_id: Uuid,
    new: refresh_token::Model,
    sealed: &str,
) -> Result<bool, RefreshError> {
    let txn = db.begin().await?;
    let spent = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::SpentAt, Expr::value(new.created_at))
        .col_expr(refresh_token::Column::SuccessorSealed, Expr::value(sealed))
        .filter(refresh_token::Column::Id.eq(old_id))
        .filter(refresh_token::Column::SpentAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    refresh_token::Entity::insert(refresh_token::ActiveModel::from(new))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(true)
}

/// The key a successor is sealed under: derived from the spent token, which
/// has 256 random bits and is never stored (only its digest is), so the sealed
/// successor opens for whoever presents the spent token and for no one else.
fn successor_key(spent_token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(b"tessera refresh successor v1\0")
        .chain_update(spent_token.as_bytes())
        .finalize()
        .into()
}

const SEAL_AAD: &[u8] = b"tessera refresh successor";

/// The successor sealed under [`successor_key`]`(spent_token)` (`tokens::sealing`).
fn seal(spent_token: &str, successor: &str) -> Result<String, RefreshError> {
    crate::tokens::sealing::seal(&successor_key(spent_token), SEAL_AAD, successor.as_bytes())
        .map_err(RefreshError::Random)
}

/// Opens what [`seal`] sealed; `None` for anything else.
fn open(spent_token: &str, sealed: &str) -> Option<String> {
    let plain = crate::tokens::sealing::open(&successor_key(spent_token), SEAL_AAD, sealed)?;
    String::from_utf8(plain).ok()
}

/// Graceful rotation (`TESSERA_REFRESH_REUSE_GRACE`): a spent token presented
/// again by the client it belongs to, within `grace` of its spending, while its
/// successor is still live and unused, gets that same successor back — two tabs
/// or a retried request are not an attack. Anything else is reuse (`None`).
pub async fn recover(
    db: &DatabaseConnection,
    spent: &RefreshRecord,
    spent_token: &str,
    client_id: &str,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<Option<String>, RefreshError> {
    let (Some(spent_at), Some(sealed)) = (spent.spent_at, spent.successor_sealed.as_deref()) else {
        return Ok(None);
    };
    if grace.is_zero() || spent.client_id != client_id || now - spent_at > chrono(grace) {
        return Ok(None);
    }
    let Some(successor) = open(spent_token, sealed) else {
        return Ok(None);
    };
    Ok(match find(db, &successor).await? {
        Presented::Live(next) if next.family_id == spent.family_id => Some(successor),
        _ => None,
    })
}

/// Revokes every token of a family (on reuse, code replay, or revocation).
pub async fn revoke_family(db: &DatabaseConnection, family_id: Uuid) -> Result<u64, RefreshError> {
    let now = Utc::now();
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Revokes the refresh tokens granted during a browser session: all of them
/// (RP-initiated logout ends what the session started), or with `keep_offline`
/// all but the families granted `offline_access`, which the person gave to keep
/// working after they leave (plain sign-out of one browser).
pub async fn revoke_for_session(
    db: &DatabaseConnection,
    session_id: Uuid,
    keep_offline: bool,
) -> Result<u64, RefreshError> {
    let mut revoke = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::SessionId.eq(session_id))
        .filter(refresh_token::Column::RevokedAt.is_null());
    if keep_offline {
        let live = refresh_token::Entity::find()
            .filter(refresh_token::Column::SessionId.eq(session_id))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .all(db)
            .await?;
        let offline: std::collections::HashSet<Uuid> = live
            .iter()
            .filter(|r| r.scope.split_whitespace().any(|s| s == "offline_access"))
            .map(|r| r.family_id)
            .collect();
        let ended: Vec<Uuid> = live
            .iter()
            .map(|r| r.family_id)
            .filter(|f| !offline.contains(f))
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        if ended.is_empty() {
            return Ok(0);
        }
        revoke = revoke.filter(refresh_token::Column::FamilyId.is_in(ended));
    }
    Ok(revoke.exec(db).await?.rows_affected)
}

/// Revokes every refresh token of a user, for every client, `offline_access`
/// included: what "sign out everywhere", a password change and disabling the
/// account promise. Nothing brings them back.
pub async fn revoke_for_user(db: &DatabaseConnection, user_id: Uuid) -> Result<u64, RefreshError> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The session context recorded with a refresh token, for the tokens it mints.
pub fn session_of(record: &RefreshRecord) -> Option<SessionContext> {
    Some(SessionContext {
        session_id: record.session_id?,
        auth_time: record.auth_time?,
        amr: record.amr.split_whitespace().map(str::to_owned).collect(),
        idp: record.idp.clone(),
    })
}

/// Whether a refresh token is issued for `scope`: the client must be registered for
/// the refresh_token grant, and an OpenID Connect request must have been granted
/// `offline_access` (OIDC Core §11).
pub fn wanted(client_allows_refresh: bool, scope: &str) -> bool {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    client_allows_refresh && (scopes.contains(&"offline_access") || !scopes.contains(&"openid"))
}

/// Absolute expiry for display or introspection.
pub fn expires(record: &RefreshRecord) -> DateTime<Utc> {
    record.expires_at.min(record.family_expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_successor_opens_only_with_the_spent_token() {
        let spent = random_token().unwrap();
        let successor = random_token().unwrap();
        let sealed = seal(&spent, &successor).unwrap();
        assert!(!sealed.contains(&successor));
        assert_eq!(open(&spent, &sealed).as_deref(), Some(successor.as_str()));
        assert_eq!(open(&random_token().unwrap(), &sealed), None);
        let mut tampered = sealed.clone().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(open(&spent, &String::from_utf8(tampered).unwrap()), None);
        assert_eq!(open(&spent, "short"), None);
        // A fresh nonce each time: the same pair never seals the same way twice.
        assert_ne!(seal(&spent, &successor).unwrap(), sealed);
    }

    #[test]
    fn refresh_tokens_follow_offline_access_for_oidc_requests() {
        assert!(wanted(true, "openid offline_access"));
        assert!(!wanted(true, "openid profile"));
        assert!(wanted(true, "api:read"));
        assert!(!wanted(false, "openid offline_access"));
    }
}
