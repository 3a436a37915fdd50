//! Passkeys: WebAuthn registration and discoverable sign-in through webauthn-rs.
//!
//! A ceremony's server state lives in the cache under a random token that only the
//! browser which started it holds (a cookie), and is *taken* — read and deleted in
//! one step — when it finishes, so a challenge answers exactly once.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, Credential, DiscoverableAuthentication,
    Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::normalize_email;
use super::sessions::random_token;
use super::users::{self, User};
use crate::config::WebauthnSettings;
use crate::oauth::digest;
use crate::store::cache::Cache;
use crate::store::entities::{passkey, user};

/// How old a password sign-in may be for the account to add a passkey without
/// signing in again.
pub const FRESH_SIGN_IN: Duration = Duration::from_secs(5 * 60);

const MAX_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("This passkey request expired or was already used. Try again.")]
    CeremonyExpired,
    #[error("The passkey could not be verified: {0}.")]
    Rejected(String),
    #[error("This passkey is not registered here. Sign in another way, or create an account.")]
    UnknownCredential,
    #[error(
        "This passkey reported a signature counter lower than before; it may be cloned, so it was refused."
    )]
    CounterRegression,
    #[error("Your device did not verify you (PIN or biometric), which passkey sign-in requires.")]
    NotVerified,
    #[error("This account is disabled.")]
    Disabled,
    #[error(
        "An account with this email already exists. Sign in, then add a passkey on your account page."
    )]
    EmailTaken,
    #[error("Enter an email address such as name@example.com.")]
    InvalidEmail,
    #[error("A passkey name is 1 to 64 characters.")]
    InvalidName,
    #[error(
        "This is your only way to sign in. Add another passkey, a password or a connected account first."
    )]
    LastWayIn,
    #[error("No such passkey.")]
    NotFound,
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("cache: {0}")]
    Cache(#[from] crate::store::cache::CacheError),
    #[error("webauthn: {0}")]
    Internal(String),
}

impl From<super::IdentityError> for PasskeyError {
    fn from(e: super::IdentityError) -> Self {
        match e {
            super::IdentityError::Storage(e) => PasskeyError::Storage(e),
            super::IdentityError::Cache(e) => PasskeyError::Cache(e),
            super::IdentityError::EmailTaken => PasskeyError::EmailTaken,
            super::IdentityError::InvalidEmail => PasskeyError::InvalidEmail,
            other => PasskeyError::Internal(other.to_string()),
        }
    }
}

/// A ceremony in progress, as kept in the cache between start and finish.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    /// A new account with a passkey and no password; the user id is chosen up front
    /// because it is the WebAuthn user handle.
    SignUp {
        user_id: Uuid,
        email: String,
        state: PasskeyRegistration,
    },
    /// Another passkey for a signed-in account.
    Add {
        user_id: Uuid,
        state: PasskeyRegistration,
    },
    /// Discoverable sign-in: the authenticator names the account.
    SignIn { state: DiscoverableAuthentication },
}

/// A started ceremony: the options for `navigator.credentials` and the token the
/// browser must bring back (set as a cookie).
pub struct Started<T> {
    pub options: T,
    pub token: String,
}

/// A passkey as the account page shows it.
#[derive(Debug, Clone)]
pub struct PasskeySummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub backup_eligible: bool,
    pub backed_up: bool,
}

/// The outcome of a passkey sign-in: who, and the RFC 8176 `amr` values.
pub struct SignedIn {
    pub user: User,
    pub amr: Vec<&'static str>,
}

#[derive(Clone)]
pub struct Passkeys {
    webauthn: Arc<Webauthn>,
    /// How long a started ceremony may take: enough for a person to find their phone.
    ceremony_ttl: Duration,
    db: DatabaseConnection,
    cache: Cache,
    /// Sign-up's verification link; notices of passkeys added and removed.
    mailer: crate::mail::Mailer,
}

impl Passkeys {
    /// Builds the relying party from the issuer's origin and the RP id.
    pub fn new(
        settings: &WebauthnSettings,
        issuer: &Url,
        db: DatabaseConnection,
        cache: Cache,
        mailer: crate::mail::Mailer,
    ) -> Result<Self, String> {
        let origin = Url::parse(&issuer.origin().ascii_serialization())
            .map_err(|e| format!("the issuer has no usable origin: {e}"))?;
        let webauthn = WebauthnBuilder::new(&settings.rp_id, &origin)
            .map_err(|e| format!("`{}` cannot be the RP id of {origin}: {e}", settings.rp_id))?
            .rp_name(&settings.rp_name)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            webauthn: Arc::new(webauthn),
            ceremony_ttl: settings.ceremony_ttl,
            db,
            cache,
            mailer,
        })
    }

    pub fn ceremony_ttl(&self) -> Duration {
        self.ceremony_ttl
    }

    fn key(token: &str) -> String {
        format!("webauthn:{}", digest(token))
    }

    async fn remember(&self, ceremony: &Ceremony) -> Result<String, PasskeyError> {
        let token = random_token().map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let bytes =
            serde_json::to_vec(ceremony).map_err(|e| PasskeyError::Internal(e.to_string()))?;
        self.cache
            .put(&Self::key(&token), &bytes, self.ceremony_ttl)
            .await?;
        Ok(token)
    }

    /// Takes the ceremony behind `token`; a second call finds nothing.
    async fn take(&self, token: &str) -> Result<Ceremony, PasskeyError> {
        if token.is_empty() || token.len() > 64 {
            return Err(PasskeyError::CeremonyExpired);
        }
        let bytes = self
            .cache
            .take(&Self::key(token))
            .await?
            .ok_or(PasskeyError::CeremonyExpired)?;
        serde_json::from_slice(&bytes).map_err(|_| PasskeyError::CeremonyExpired)
    }

    fn registration_options(
        &self,
        user_id: Uuid,
        email: &str,
        exclude: Vec<webauthn_rs::prelude::CredentialID>,
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), PasskeyError> {
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(user_id, email, email, Some(exclude))
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        // Sign-in names no account, so the credential must be discoverable: ask the
        // authenticator to keep it (WebAuthn §5.4.6). The server-side state does not
        // depend on this choice.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok((options, state))
    }

    /// Starts sign-up with a passkey for `email` (which must be free).
    pub async fn start_sign_up(
        &self,
        email: &str,
    ) -> Result<Started<CreationChallengeResponse>, PasskeyError> {
        let email = normalize_email(email).map_err(|_| PasskeyError::InvalidEmail)?;
        if users::find_by_email(&self.db, &email).await?.is_some() {
            return Err(PasskeyError::EmailTaken);
        }
        let user_id = Uuid::now_v7();
        let (options, state) = self.registration_options(user_id, &email, Vec::new())?;
        let token = self
            .remember(&Ceremony::SignUp {
                user_id,
                email,
                state,
            })
            .await?;
        Ok(Started { options, token })
    }

    /// Starts adding a passkey to `user`'s account.
    pub async fn start_add(
        &self,
        user: &User,
    ) -> Result<Started<CreationChallengeResponse>, PasskeyError> {
        // The authenticator refuses to make a second credential for this account.
        let exclude = self
            .credentials_of(user.id)
            .await?
            .iter()
            .map(|(_, key)| key.cred_id().clone())
            .collect();
        let (options, state) = self.registration_options(user.id, &user.email, exclude)?;
        let token = self
            .remember(&Ceremony::Add {
                user_id: user.id,
                state,
            })
            .await?;
        Ok(Started { options, token })
    }

    /// Finishes sign-up: creates the account (no password) with its first passkey.
    pub async fn finish_sign_up(
        &self,
        token: &str,
        response: &RegisterPublicKeyCredential,
    ) -> Result<SignedIn, PasskeyError> {
        let mailer = &self.mailer;
        let Ceremony::SignUp {
            user_id,
            email,
            state,
        } = self.take(token).await?
        else {
            return Err(PasskeyError::CeremonyExpired);
        };
        let key = self.verify_registration(response, &state)?;
        let txn = self.db.begin().await?;
        let now = Utc::now();
        let account = user::ActiveModel {
            id: Set(user_id),
            email: Set(email),
            password_hash: Set(None),
            disabled: Set(false),
            email_verified_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            is_admin: Set(false),
        }
        .insert(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => PasskeyError::EmailTaken,
            _ => PasskeyError::Storage(e),
        })?;
        let row = insert(&txn, user_id, &key, "Passkey").await?;
        crate::audit::record(
            &txn,
            crate::audit::Event::by_person(crate::audit::Kind::AccountCreated, user_id)
                .detail("method", "passkey"),
        )
        .await?;
        crate::identity::email::queue_verification(&txn, mailer, user_id, &account.email).await?;
        txn.commit().await?;
        mailer.wake();
        let verified = Credential::from(key).user_verified;
        Ok(SignedIn {
            user: account,
            amr: amr(row.backup_eligible, verified),
        })
    }

    /// Finishes adding a passkey to the account that started the ceremony.
    pub async fn finish_add(
        &self,
        token: &str,
        signed_in_user: Uuid,
        response: &RegisterPublicKeyCredential,
    ) -> Result<PasskeySummary, PasskeyError> {
        let Ceremony::Add { user_id, state } = self.take(token).await? else {
            return Err(PasskeyError::CeremonyExpired);
        };
        // A ceremony started by one account cannot be finished by another session.
        if user_id != signed_in_user {
            return Err(PasskeyError::CeremonyExpired);
        }
        let key = self.verify_registration(response, &state)?;
        let txn = self.db.begin().await?;
        // Write first (see `remove`): SQLite cannot upgrade a reading transaction
        // while another connection writes.
        user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::col(user::Column::UpdatedAt))
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
        let count = passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id))
            .count(&txn)
            .await?;
        let row = insert(&txn, user_id, &key, &format!("Passkey {}", count + 1)).await?;
        let email = user::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .map(|u| u.email)
            .ok_or(PasskeyError::NotFound)?;
        crate::audit::record(
            &txn,
            crate::audit::Event::by_person(crate::audit::Kind::PasskeyAdded, user_id)
                .detail("name", row.name.clone()),
        )
        .await?;
        let notice = crate::mail::Notice::PasskeyAdded {
            name: row.name.clone(),
        };
        self.mailer
            .notice(&txn, &email, notice)
            .await
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        txn.commit().await?;
        self.mailer.wake();
        Ok(summary(row))
    }

    fn verify_registration(
        &self,
        response: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, PasskeyError> {
        self.webauthn
            .finish_passkey_registration(response, state)
            .map_err(rejected)
    }

    /// Starts a discoverable sign-in (the browser offers the person's passkeys).
    pub async fn start_sign_in(&self) -> Result<Started<RequestChallengeResponse>, PasskeyError> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let token = self.remember(&Ceremony::SignIn { state }).await?;
        Ok(Started { options, token })
    }

    /// Finishes a discoverable sign-in: finds the passkey the authenticator named,
    /// verifies the assertion, and records the new counter and backup state.
    pub async fn finish_sign_in(
        &self,
        token: &str,
        response: &PublicKeyCredential,
    ) -> Result<SignedIn, PasskeyError> {
        let Ceremony::SignIn { state } = self.take(token).await? else {
            return Err(PasskeyError::CeremonyExpired);
        };
        let (user_handle, credential_id) = self
            .webauthn
            .identify_discoverable_authentication(response)
            .map_err(rejected)?;
        let row = passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(URL_SAFE_NO_PAD.encode(credential_id)))
            .one(&self.db)
            .await?
            .filter(|row| row.user_id == user_handle)
            .ok_or(PasskeyError::UnknownCredential)?;
        let mut key: Passkey = serde_json::from_str(&row.credential)
            .map_err(|e| PasskeyError::Internal(format!("stored passkey {}: {e}", row.id)))?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(response, state, &key)
            .map_err(|e| match e {
                WebauthnError::CredentialPossibleCompromise => {
                    tracing::warn!(
                        passkey = %row.id,
                        user = %row.user_id,
                        "passkey sign-in refused: the signature counter went backwards"
                    );
                    PasskeyError::CounterRegression
                }
                other => rejected(other),
            })?;
        if !result.user_verified() {
            return Err(PasskeyError::NotVerified);
        }
        let account = users::find(&self.db, row.user_id)
            .await?
            .ok_or(PasskeyError::UnknownCredential)?;
        if account.disabled {
            return Err(PasskeyError::Disabled);
        }
        key.update_credential(&result);
        self.record_use(row, &key, &result).await?;
        Ok(SignedIn {
            user: account,
            amr: amr(result.backup_eligible(), result.user_verified()),
        })
    }

    async fn record_use(
        &self,
        row: passkey::Model,
        key: &Passkey,
        result: &AuthenticationResult,
    ) -> Result<(), PasskeyError> {
        let credential =
            serde_json::to_string(key).map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let mut active = row.into_active_model();
        active.credential = Set(credential);
        active.backup_eligible = Set(result.backup_eligible());
        active.backed_up = Set(result.backup_state());
        active.last_used_at = Set(Some(Utc::now()));
        active.update(&self.db).await?;
        Ok(())
    }

    async fn credentials_of(&self, user: Uuid) -> Result<Vec<(Uuid, Passkey)>, PasskeyError> {
        let rows = passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some((row.id, serde_json::from_str(&row.credential).ok()?)))
            .collect())
    }
}

/// RFC 8176: a passkey is a proof of possession of a key — `hwk` when it is bound
/// to one device, `swk` when it may be synced between devices (its key then also
/// lives in software) — and `user` for the user verification WebAuthn requires.
fn amr(backup_eligible: bool, user_verified: bool) -> Vec<&'static str> {
    let key = if backup_eligible { "swk" } else { "hwk" };
    if user_verified {
        vec![key, "user"]
    } else {
        vec![key]
    }
}

fn rejected(e: WebauthnError) -> PasskeyError {
    PasskeyError::Rejected(e.to_string())
}

async fn insert(
    db: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    key: &Passkey,
    name: &str,
) -> Result<passkey::Model, PasskeyError> {
    let credential =
        serde_json::to_string(key).map_err(|e| PasskeyError::Internal(e.to_string()))?;
    let internals = Credential::from(key.clone());
    passkey::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        credential_id: Set(URL_SAFE_NO_PAD.encode(key.cred_id())),
        name: Set(name.to_owned()),
        credential: Set(credential),
        backup_eligible: Set(internals.backup_eligible),
        backed_up: Set(internals.backup_state),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        // The same authenticator credential registered twice.
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            PasskeyError::Rejected("it is already registered".to_owned())
        }
        _ => PasskeyError::Storage(e),
    })
}

fn summary(row: passkey::Model) -> PasskeySummary {
    PasskeySummary {
        id: row.id,
        name: row.name,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        backup_eligible: row.backup_eligible,
        backed_up: row.backed_up,
    }
}

/// The account's passkeys, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    user: Uuid,
) -> Result<Vec<PasskeySummary>, PasskeyError> {
    Ok(passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user))
        .order_by_asc(passkey::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(summary)
        .collect())
}

async fn owned(
    db: &impl sea_orm::ConnectionTrait,
    user: Uuid,
    id: Uuid,
) -> Result<passkey::Model, PasskeyError> {
    passkey::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|row| row.user_id == user)
        .ok_or(PasskeyError::NotFound)
}

pub async fn rename(
    db: &DatabaseConnection,
    user: Uuid,
    id: Uuid,
    name: &str,
) -> Result<(), PasskeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(PasskeyError::InvalidName);
    }
    let mut active = owned(db, user, id).await?.into_active_model();
    active.name = Set(name.to_owned());
    active.update(db).await?;
    Ok(())
}

/// Removes a passkey unless it is the account's last way in (no password and no
/// other passkey).
pub async fn remove(
    db: &DatabaseConnection,
    mailer: &crate::mail::Mailer,
    user: Uuid,
    id: Uuid,
) -> Result<(), PasskeyError> {
    let txn = db.begin().await?;
    // Two removals at once must not each count the other's passkey and leave the
    // account with none. A no-op write to the account row serializes them on
    // every backend: PostgreSQL holds its row lock until commit, SQLite takes its
    // write lock here rather than failing the later upgrade from a read.
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::col(user::Column::UpdatedAt))
        .filter(user::Column::Id.eq(user))
        .exec(&txn)
        .await?;
    let row = owned(&txn, user, id).await?;
    let account = user::Entity::find_by_id(user)
        .one(&txn)
        .await?
        .ok_or(PasskeyError::NotFound)?;
    // A password, each passkey and each connected provider is a way in.
    let ways_in = crate::federation::links::ways_in(&txn, user)
        .await
        .map_err(|e| PasskeyError::Internal(e.to_string()))?;
    if ways_in <= 1 {
        return Err(PasskeyError::LastWayIn);
    }
    passkey::Entity::delete_by_id(row.id).exec(&txn).await?;
    crate::audit::record(
        &txn,
        crate::audit::Event::by_person(crate::audit::Kind::PasskeyRemoved, user)
            .detail("name", row.name.clone()),
    )
    .await?;
    let notice = crate::mail::Notice::PasskeyRemoved { name: row.name };
    mailer
        .notice(&txn, &account.email, notice)
        .await
        .map_err(|e| PasskeyError::Internal(e.to_string()))?;
    txn.commit().await?;
    mailer.wake();
    Ok(())
}

/// Whether `user` must sign in again before adding a passkey: accounts with a
/// password, whose sign-in is older than [`FRESH_SIGN_IN`] (a borrowed session must
/// not be able to plant a lasting way in).
pub fn needs_fresh_sign_in(user: &User, auth_time: DateTime<Utc>) -> bool {
    user.password_hash.is_some() && !signed_in_recently(auth_time)
}

/// Whether a session's sign-in is within [`FRESH_SIGN_IN`]: what adding a way into
/// an account asks of a session (a passkey to a password account, a password to
/// a passkey-only one).
pub fn signed_in_recently(auth_time: DateTime<Utc>) -> bool {
    let fresh = chrono::Duration::from_std(FRESH_SIGN_IN).unwrap_or(chrono::Duration::minutes(5));
    Utc::now() - auth_time <= fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(password: bool) -> User {
        let now = Utc::now();
        User {
            id: Uuid::now_v7(),
            email: "ada@example.com".into(),
            password_hash: password.then(|| "$argon2id$…".to_owned()),
            disabled: false,
            email_verified_at: None,
            created_at: now,
            updated_at: now,
            is_admin: false,
        }
    }

    #[test]
    fn adding_a_passkey_to_a_password_account_needs_a_recent_sign_in() {
        let recent = Utc::now() - chrono::Duration::minutes(2);
        let old = Utc::now() - chrono::Duration::minutes(30);
        assert!(!needs_fresh_sign_in(&account(true), recent));
        assert!(needs_fresh_sign_in(&account(true), old));
        // A passkey-only session was itself opened with a key the person holds.
        assert!(!needs_fresh_sign_in(&account(false), old));
    }

    #[test]
    fn amr_names_the_kind_of_key_and_user_verification() {
        assert_eq!(amr(false, true), ["hwk", "user"]);
        assert_eq!(amr(true, true), ["swk", "user"]);
        assert_eq!(amr(false, false), ["hwk"]);
    }
}
