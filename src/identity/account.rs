//! What a change of an account's state does to every credential it backs: its
//! browser sessions and the refresh tokens granted through them. Handlers and the
//! CLI call these, never the pieces, so no path ends sessions and forgets tokens.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::IdentityError;
use super::pats;
use super::sessions::Sessions;
use super::users::{self, User};
use crate::audit::{self, Event, Kind};
use crate::oauth::refresh::{self, RefreshError};

/// Records that `count` refresh tokens of `user` were revoked, and why
/// (`sign_out`, `password_changed`, `disabled`…), when there were any.
async fn families_revoked(
    db: &DatabaseConnection,
    event: Event,
    count: u64,
    reason: &str,
) -> Result<(), IdentityError> {
    if count > 0 {
        audit::record(db, event.detail("reason", reason).detail("tokens", count)).await?;
    }
    Ok(())
}

impl From<RefreshError> for IdentityError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Storage(e) => IdentityError::Storage(e),
            RefreshError::Random(e) => IdentityError::Hashing(e),
        }
    }
}

/// What a change ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub sessions: u64,
    pub refresh_tokens: u64,
    /// Personal access tokens revoked.
    pub api_tokens: u64,
}

/// Disables an account: it cannot sign in, its sessions end, and every refresh
/// token it holds is revoked for good (re-enabling brings none back). The flag is
/// set first, so a refresh racing with this is refused by the flag itself.
pub async fn disable(
    db: &DatabaseConnection,
    sessions: &Sessions,
    email: &str,
) -> Result<(User, Ended), IdentityError> {
    let user = users::set_disabled(db, email, true).await?;
    let refresh_tokens = refresh::revoke_for_user(db, user.id).await?;
    let api_tokens = pats::revoke_for_user(db, user.id)
        .await
        .map_err(|e| IdentityError::Storage(sea_orm::DbErr::Custom(e.to_string())))?;
    let sessions = sessions.end_all(user.id).await?;
    let ended = Ended {
        sessions,
        refresh_tokens,
        api_tokens,
    };
    // Who disabled it is the context's actor (the command line, an admin).
    audit::record(
        db,
        Event::new(Kind::AccountDisabled)
            .subject(user.id)
            .detail("sessions", sessions)
            .detail("refresh_tokens", refresh_tokens)
            .detail("api_tokens", api_tokens),
    )
    .await?;
    let revoked = Event::new(Kind::RefreshFamilyRevoked).subject(user.id);
    families_revoked(db, revoked, refresh_tokens, "account_disabled").await?;
    Ok((user, ended))
}

/// "Sign out everywhere": every session and every refresh token of the user, for
/// every client, `offline_access` included — what a person does when a token
/// leaked. Personal access tokens go too when the person ticks "also revoke API
/// tokens" (`api_tokens`): scripts keep working otherwise.
pub async fn sign_out_everywhere(
    db: &DatabaseConnection,
    sessions: &Sessions,
    user_id: Uuid,
    api_tokens: bool,
) -> Result<Ended, IdentityError> {
    let refresh_tokens = refresh::revoke_for_user(db, user_id).await?;
    let api_tokens = if api_tokens {
        pats::revoke_for_user(db, user_id)
            .await
            .map_err(|e| IdentityError::Storage(sea_orm::DbErr::Custom(e.to_string())))?
    } else {
        0
    };
    let sessions = sessions.end_all(user_id).await?;
    audit::record(
        db,
        Event::by_person(Kind::SignedOutEverywhere, user_id)
            .detail("sessions", sessions)
            .detail("api_tokens", api_tokens),
    )
    .await?;
    let revoked = Event::by_person(Kind::RefreshFamilyRevoked, user_id);
    families_revoked(db, revoked, refresh_tokens, "sign_out_everywhere").await?;
    Ok(Ended {
        sessions,
        refresh_tokens,
        api_tokens,
    })
}

/// After a password change: whoever else knew the old password loses their
/// sessions and every refresh token; the session that made the change stays.
pub async fn password_changed(
    db: &DatabaseConnection,
    sessions: &Sessions,
    user_id: Uuid,
    keep_session: Uuid,
) -> Result<Ended, IdentityError> {
    let refresh_tokens = refresh::revoke_for_user(db, user_id).await?;
    let sessions = sessions.end_others(user_id, keep_session).await?;
    let revoked = Event::by_person(Kind::RefreshFamilyRevoked, user_id);
    families_revoked(db, revoked, refresh_tokens, "password_changed").await?;
    Ok(Ended {
        sessions,
        refresh_tokens,
        api_tokens: 0,
    })
}

/// Plain sign-out of one browser session (by its cookie value): the session ends
/// with the refresh tokens granted through it, except those granted
/// `offline_access`, which the person gave to outlive the session.
pub async fn sign_out(
    db: &DatabaseConnection,
    sessions: &Sessions,
    token: &str,
    session: &super::sessions::Session,
) -> Result<(), IdentityError> {
    let revoked = refresh::revoke_for_session(db, session.id, true).await?;
    sessions.end(token).await?;
    let by = Event::by_person(Kind::SignedOut, session.user_id)
        .detail("session", session.id.to_string());
    audit::record(db, by).await?;
    let tokens = Event::by_person(Kind::RefreshFamilyRevoked, session.user_id);
    families_revoked(db, tokens, revoked, "sign_out").await
}

/// RP-initiated logout (OIDC RP-Initiated Logout 1.0): the browser session ends
/// with every refresh token granted through it — the application asked to end
/// what the session started, `offline_access` included.
pub async fn end_browser_session(
    db: &DatabaseConnection,
    sessions: &Sessions,
    token: &str,
    session: &super::sessions::Session,
) -> Result<(), IdentityError> {
    let revoked = refresh::revoke_for_session(db, session.id, false).await?;
    sessions.end(token).await?;
    let by = Event::by_person(Kind::SignedOut, session.user_id)
        .detail("session", session.id.to_string())
        .detail("via", "rp_initiated_logout");
    audit::record(db, by).await?;
    let tokens = Event::by_person(Kind::RefreshFamilyRevoked, session.user_id);
    families_revoked(db, tokens, revoked, "sign_out").await
}

/// Ends one of the user's sessions from the account page, under the same rule as
/// [`sign_out`]; `false` when the session is not theirs.
pub async fn end_session(
    db: &DatabaseConnection,
    sessions: &Sessions,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<bool, IdentityError> {
    let ended = sessions.end_by_id(user_id, session_id).await?;
    if ended {
        let revoked = refresh::revoke_for_session(db, session_id, true).await?;
        let by =
            Event::by_person(Kind::SessionEnded, user_id).detail("session", session_id.to_string());
        audit::record(db, by).await?;
        let tokens = Event::by_person(Kind::RefreshFamilyRevoked, user_id);
        families_revoked(db, tokens, revoked, "session_ended").await?;
    }
    Ok(ended)
}
