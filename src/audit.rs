//! The audit log: an append-only record of security events — who did what to
//! which account, from where — kept in the database for people and
//! administrators to read, and written as one structured log line each for a
//! SIEM.
//!
//! Where a request came from (client address, user agent) and who acts when
//! that is not the account's holder (an administrator, a service, the command
//! line) are set once per request or command in a task-local [`Context`], so
//! the domain code that records an event needs no HTTP types and no extra
//! parameters: the change and its event are written together, in the same
//! transaction where there is one.

use std::future::Future;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::store::entities::audit_event as row;

pub use row::Model as Recorded;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The account's holder, on their own account.
    Person(Uuid),
    /// An administrator: an account, or `None` for an operator at the command
    /// line.
    Admin(Option<Uuid>),
    /// A client acting for itself (client id).
    Service(String),
    /// Tessera itself (expiry, reuse detection, sweeps).
    System,
}

impl Actor {
    fn parts(&self) -> (&'static str, Option<String>) {
        match self {
            Actor::Person(id) => ("person", Some(id.to_string())),
            Actor::Admin(id) => ("admin", id.map(|id| id.to_string())),
            Actor::Service(client) => ("service", Some(client.clone())),
            Actor::System => ("system", None),
        }
    }
}

/// Where the current request or command came from, and who acts in it when
/// that is not whoever the event names.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Overrides the actor of every event recorded in this context.
    pub actor: Option<Actor>,
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Runs `f` with `context` as the audit context of every event it records.
pub async fn within<F: Future>(context: Context, f: F) -> F::Output {
    CONTEXT.scope(context, f).await
}

fn current() -> Context {
    CONTEXT.try_with(Context::clone).unwrap_or_default()
}

/// Every kind of event, named `area.what`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SignInSucceeded,
    SignInFailed,
    SignedOut,
    SessionEnded,
    SignedOutEverywhere,
    PasswordChanged,
    PasswordReset,
    PasswordResetSent,
    PasskeyAdded,
    PasskeyRemoved,
    EmailVerified,
    EmailChanged,
    RefreshFamilyRevoked,
    ConsentGiven,
    ConsentRemoved,
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientSecretRotated,
    KeyRotated,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    PatCreated,
    PatRevoked,
    AccountCreated,
    AccountDisabled,
    AccountEnabled,
    AccountDeleted,
    AdminGranted,
    AdminRevoked,
    ProviderConnected,
    ProviderDisconnected,
    OrganizationCreated,
    ApiCreated,
    ApiGranted,
    ApiDeleted,
    ProviderAdded,
    ProviderRemoved,
}

impl Kind {
    pub const ALL: &[Kind] = &[
        Kind::SignInSucceeded,
        Kind::SignInFailed,
        Kind::SignedOut,
        Kind::SessionEnded,
        Kind::SignedOutEverywhere,
        Kind::PasswordChanged,
        Kind::PasswordReset,
        Kind::PasswordResetSent,
        Kind::PasskeyAdded,
        Kind::PasskeyRemoved,
        Kind::EmailVerified,
        Kind::EmailChanged,
        Kind::RefreshFamilyRevoked,
        Kind::ConsentGiven,
        Kind::ConsentRemoved,
        Kind::ClientCreated,
        Kind::ClientUpdated,
        Kind::ClientDeleted,
        Kind::ClientSecretRotated,
        Kind::KeyRotated,
        Kind::MemberAdded,
        Kind::MemberRoleChanged,
        Kind::MemberRemoved,
        Kind::PatCreated,
        Kind::PatRevoked,
        Kind::AccountCreated,
        Kind::AccountDisabled,
        Kind::AccountEnabled,
        Kind::AccountDeleted,
        Kind::AdminGranted,
        Kind::AdminRevoked,
        Kind::ProviderConnected,
        Kind::ProviderDisconnected,
        Kind::OrganizationCreated,
        Kind::ApiCreated,
        Kind::ApiGranted,
        Kind::ApiDeleted,
        Kind::ProviderAdded,
        Kind::ProviderRemoved,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::SignInSucceeded => "sign_in.succeeded",
            Kind::SignInFailed => "sign_in.failed",
            Kind::SignedOut => "session.signed_out",
            Kind::SessionEnded => "session.ended",
            Kind::SignedOutEverywhere => "session.signed_out_everywhere",
            Kind::PasswordChanged => "password.changed",
            Kind::PasswordReset => "password.reset",
            Kind::PasswordResetSent => "password.reset_sent",
            Kind::PasskeyAdded => "passkey.added",
            Kind::PasskeyRemoved => "passkey.removed",
            Kind::EmailVerified => "email.verified",
            Kind::EmailChanged => "email.changed",
            Kind::RefreshFamilyRevoked => "refresh_token.family_revoked",
            Kind::ConsentGiven => "consent.given",
            Kind::ConsentRemoved => "consent.removed",
            Kind::ClientCreated => "client.created",
            Kind::ClientUpdated => "client.updated",
            Kind::ClientDeleted => "client.deleted",
            Kind::ClientSecretRotated => "client.secret_rotated",
            Kind::KeyRotated => "key.rotated",
            Kind::MemberAdded => "membership.added",
            Kind::MemberRoleChanged => "membership.role_changed",
            Kind::MemberRemoved => "membership.removed",
            Kind::PatCreated => "personal_access_token.created",
            Kind::PatRevoked => "personal_access_token.revoked",
            Kind::AccountCreated => "account.created",
            Kind::AccountDisabled => "account.disabled",
            Kind::AccountEnabled => "account.enabled",
            Kind::AccountDeleted => "account.deleted",
            Kind::AdminGranted => "admin.granted",
            Kind::AdminRevoked => "admin.revoked",
            Kind::ProviderConnected => "provider.connected",
            Kind::ProviderDisconnected => "provider.disconnected",
            Kind::OrganizationCreated => "organization.created",
            Kind::ApiCreated => "api.created",
            Kind::ApiGranted => "api.scopes_granted",
            Kind::ApiDeleted => "api.deleted",
            Kind::ProviderAdded => "identity_provider.added",
            Kind::ProviderRemoved => "identity_provider.removed",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// How the account page names it to the person.
    pub const fn describe(self) -> &'static str {
        match self {
            Kind::SignInSucceeded => "Signed in",
            Kind::SignInFailed => "Failed sign-in",
            Kind::SignedOut => "Signed out",
            Kind::SessionEnded => "Session ended",
            Kind::SignedOutEverywhere => "Signed out everywhere",
            Kind::PasswordChanged => "Password changed",
            Kind::PasswordReset => "Password reset",
            Kind::PasswordResetSent => "Password reset link sent",
            Kind::PasskeyAdded => "Passkey added",
            Kind::PasskeyRemoved => "Passkey removed",
            Kind::EmailVerified => "Email verified",
            Kind::EmailChanged => "Email changed",
            Kind::RefreshFamilyRevoked => "App access revoked",
            Kind::ConsentGiven => "App allowed",
            Kind::ConsentRemoved => "App access removed",
            Kind::ClientCreated => "Client created",
            Kind::ClientUpdated => "Client updated",
            Kind::ClientDeleted => "Client deleted",
            Kind::ClientSecretRotated => "Client secret rotated",
            Kind::KeyRotated => "Signing key rotated",
            Kind::MemberAdded => "Joined an organization",
            Kind::MemberRoleChanged => "Organization role changed",
            Kind::MemberRemoved => "Left an organization",
            Kind::PatCreated => "API token created",
            Kind::PatRevoked => "API token revoked",
            Kind::AccountCreated => "Account created",
            Kind::AccountDisabled => "Account disabled",
            Kind::AccountEnabled => "Account enabled",
            Kind::AccountDeleted => "Account deleted",
            Kind::AdminGranted => "Made an administrator",
            Kind::AdminRevoked => "No longer an administrator",
            Kind::ProviderConnected => "Account connected",
            Kind::ProviderDisconnected => "Account disconnected",
            Kind::OrganizationCreated => "Organization created",
            Kind::ApiCreated => "API registered",
            Kind::ApiGranted => "API scopes granted to a role",
            Kind::ApiDeleted => "API deleted",
            Kind::ProviderAdded => "Identity provider added",
            Kind::ProviderRemoved => "Identity provider removed",
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct Event {
    kind: Kind,
    actor: Actor,
    subject: Option<Uuid>,
    client_id: Option<String>,
    org_id: Option<Uuid>,
    details: Map<String, Value>,
}

impl Event {
    /// An event by Tessera itself, about nobody yet.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            actor: Actor::System,
            subject: None,
            client_id: None,
            org_id: None,
            details: Map::new(),
        }
    }

    /// An event about `user`'s account, done by them.
    pub fn by_person(kind: Kind, user: Uuid) -> Self {
        Self::new(kind).actor(Actor::Person(user)).subject(user)
    }

    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    pub fn subject(mut self, user: Uuid) -> Self {
        self.subject = Some(user);
        self
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.chars().take(64).collect());
        self
    }

    pub fn org(mut self, org: Uuid) -> Self {
        self.org_id = Some(org);
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// Writes `event` (in `db`'s transaction, if it is one) and logs it as one
/// structured line (`target: tessera::audit`).
pub async fn record<C: ConnectionTrait>(db: &C, event: Event) -> Result<(), DbErr> {
    let context = current();
    let actor = context.actor.unwrap_or(event.actor);
    let (actor_type, actor_id) = actor.parts();
    let details = Value::Object(event.details).to_string();
    let ip = context.ip.map(|ip| ip.chars().take(64).collect::<String>());
    let user_agent = context
        .user_agent
        .map(|ua| ua.chars().take(256).collect::<String>());
    tracing::info!(
        target: "tessera::audit",
        kind = event.kind.as_str(),
        actor_type,
        actor_id = actor_id.as_deref().unwrap_or(""),
        subject = %event.subject.map(|s| s.to_string()).unwrap_or_default(),
        client_id = event.client_id.as_deref().unwrap_or(""),
        org_id = %event.org_id.map(|o| o.to_string()).unwrap_or_default(),
        ip = ip.as_deref().unwrap_or(""),
        details = %details,
        "audit event"
    );
    row::ActiveModel {
        id: Set(Uuid::now_v7()),
        at: Set(Utc::now()),
        kind: Set(event.kind.as_str().to_owned()),
        actor_type: Set(actor_type.to_owned()),
        actor_id: Set(actor_id),
        subject_user_id: Set(event.subject),
        client_id: Set(event.client_id),
        org_id: Set(event.org_id),
        ip: Set(ip),
        user_agent: Set(user_agent),
        details: Set(details),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// [`record`] for an event with no change to go with (a failed sign-in): a
/// failure to write it is logged, and does not change the answer.
pub async fn record_alone(db: &DatabaseConnection, event: Event) {
    let kind = event.kind;
    if let Err(e) = record(db, event).await {
        tracing::error!(kind = kind.as_str(), "audit event not recorded: {e}");
    }
}

/// [`record_alone`], at most once per `key` within `window`: for events an
/// attacker can repeat at will (refused, throttled attempts), so a flood
/// writes one row per window, not one per request.
pub async fn record_once(
    db: &DatabaseConnection,
    cache: &crate::store::cache::Cache,
    key: &str,
    window: std::time::Duration,
    event: Event,
) {
    match cache
        .insert_new(&format!("audit-once:{key}"), b"1", window)
        .await
    {
        Ok(true) => record_alone(db, event).await,
        Ok(false) => {}
        // Without the cache the event is still worth one row.
        Err(_) => record_alone(db, event).await,
    }
}

/// The latest `limit` events about `user`, newest first.
pub async fn recent_for(
    db: &DatabaseConnection,
    user: Uuid,
    limit: u64,
) -> Result<Vec<Recorded>, DbErr> {
    row::Entity::find()
        .filter(row::Column::SubjectUserId.eq(user))
        .order_by_desc(row::Column::At)
        .order_by_desc(row::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Deletes events older than `before`; how many.
pub async fn prune(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(row::Entity::delete_many()
        .filter(row::Column::At.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_distinct_name_that_parses_back() {
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(*kind));
            assert!(kind.as_str().len() <= 64);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
    }

    #[tokio::test]
    async fn the_context_names_the_actor_and_the_place() {
        let context = Context {
            ip: Some("192.0.2.1".into()),
            user_agent: None,
            actor: Some(Actor::Admin(None)),
        };
        let seen = within(context, async { current() }).await;
        assert_eq!(seen.ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(seen.actor, Some(Actor::Admin(None)));
        assert!(current().ip.is_none(), "outside, nothing");
    }
}
