//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6) as domain services:
//! each takes an authenticated client and the request's parameters, and answers
//! the RFC 6749 §5.1 response or a [`TokenError`] that carries its §5.2 code.

use serde::Serialize;
use url::Url;
use uuid::Uuid;

use super::clients::{Client, GrantType};
use super::codes::{CodeStore, IssuedFromCode};
use super::error::TokenError;
use super::params::Params;
use super::refresh::{self, Presented, RefreshRecord};
use super::tokens::{Grant, IssuerConfig, Subject};
use super::{pkce, scope_list};
use crate::identity::pats;
use crate::identity::throttle::{Admission, Throttle};

/// RFC 6749 §5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1: what a token exchange issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// Scopes that speak of a person (their identity, their organizations): a client
/// acting for itself (client_credentials) holds none of them.
const USER_ONLY_SCOPES: &[&str] = &["openid", "offline_access", "org", "orgs"];

/// RFC 6749 §3.3: scope tokens are printable ASCII without `"` and `\`.
fn scope_param(params: &Params) -> Result<Option<&str>, TokenError> {
    let scope = params.get("scope");
    let allowed = |c: char| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\');
    match scope {
        Some(s) if !s.chars().all(allowed) => Err(TokenError::ScopeMalformed),
        other => Ok(other),
    }
}

/// Signs what `grant` stands for; a `refresh_token` goes with it when given.
fn respond(
    config: &IssuerConfig,
    client: &Client,
    grant: &Grant,
    org: &serde_json::Map<String, serde_json::Value>,
    signed: super::tokens::Signed,
    refresh_token: Option<String>,
) -> Result<TokenResponse, TokenError> {
    let id_token = config.sign_id_token(grant, &signed.token, client.id_token_alg, org)?;
    Ok(TokenResponse {
        access_token: signed.token,
        token_type: "Bearer",
        expires_in: config.settings.access_token_ttl.as_secs(),
        scope: grant.scope.clone(),
        refresh_token,
        id_token,
        issued_token_type: None,
    })
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6 and RFC 8707 §2.2: the code is taken
/// (once) before anything else about it is checked, so a failed exchange still
/// spends it.
pub async fn authorization_code(
    config: &IssuerConfig,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, TokenError> {
    let resource = config.allowed_resource(params.get("resource")).await?;
    let (Some(code), Some(redirect_uri)) = (params.get("code"), params.get("redirect_uri")) else {
        return Err(TokenError::Malformed("code and redirect_uri are required"));
    };
    let codes = CodeStore::new(config.cache.clone());
    let redeemed = codes.redeem(&config.db, code).await?;
    let granted = redeemed.grant;
    let same_uri = match (Url::parse(redirect_uri), Url::parse(&granted.redirect_uri)) {
        (Ok(asked), Ok(authorized)) => asked == authorized,
        _ => false,
    };
    if granted.client_id != client.client_id || !same_uri {
        return Err(TokenError::CodeMismatch);
    }
    pkce::verify(&granted.code_challenge, params.get("code_verifier"))?;
    // RFC 8707 §2.2: the token request may name the authorized resource, not another.
    if resource.is_some() && resource != granted.resource {
        return Err(TokenError::ResourceNotGranted);
    }
    // A code outlives the sessions ended when its account was disabled.
    config.check_account(granted.user_id).await?;
    // Back-Channel Logout: this client now holds tokens from that session.
    if client.backchannel_logout_uri.is_some() {
        crate::oidc::backchannel::record(
            &config.db,
            granted.session.session_id,
            &client.client_id,
            granted.user_id,
        )
        .await
        .map_err(|e| TokenError::unavailable("cannot record the session's client", e))?;
    }
    let grant = Grant {
        subject: Subject::User(granted.user_id),
        client_id: granted.client_id,
        scope: granted.scope,
        session: Some(granted.session),
        org: granted.org,
        resource: granted.resource,
        nonce: granted.nonce,
        pat: None,
    };
    let org = config.org_claims(&grant).await?;
    let for_token = Grant {
        scope: config.scope_for_token(&grant, &org).await?,
        ..grant.clone()
    };
    let signed = config.sign_access(&for_token, &org)?;
    let family = if refresh::wanted(client.allows_grant(GrantType::RefreshToken), &grant.scope) {
        let new = refresh::NewFamily {
            client_id: &grant.client_id,
            user_id: Some(granted.user_id),
            session: grant.session.as_ref(),
            scope: &grant.scope,
            org_id: grant.org,
            resource: grant.resource.as_deref(),
        };
        let (token, family) = refresh::issue_family(&config.db, new, config.refresh_lifetimes())
            .await
            .map_err(|e| TokenError::unavailable("cannot issue a refresh token", e))?;
        Some((token, family))
    } else {
        None
    };
    let issued = IssuedFromCode {
        jti: signed.jti.clone(),
        exp: signed.exp,
        family: family.as_ref().map(|(_, id)| *id),
    };
    codes.link(&redeemed.hash, &issued).await?;
    respond(
        config,
        client,
        &for_token,
        &org,
        signed,
        family.map(|(t, _)| t),
    )
}

/// RFC 6749 §6 with rotation (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): the presented
/// token is spent and its successor keeps the original grant; a narrower `scope`
/// narrows this access token only, and `organization_id` switches this access
/// token's organization only.
pub async fn refresh_token(
    config: &IssuerConfig,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, TokenError> {
    let resource = config.allowed_resource(params.get("resource")).await?;
    let Some(token) = params.get("refresh_token") else {
        return Err(TokenError::Malformed("refresh_token is required"));
    };
    let narrowed = scope_param(params)?;
    let switch_to = match params.get("organization_id") {
        None => None,
        Some(raw) => Some(
            Uuid::parse_str(raw)
                .map_err(|_| TokenError::Malformed("organization_id must be a UUID"))?,
        ),
    };
    let lifetimes = config.refresh_lifetimes();
    let storage = |e: refresh::RefreshError| TokenError::unavailable("refresh token", e);
    // The common case in one step: a token in order, the scope, API and
    // organization kept. Anything not in order falls through to the path that
    // tells which — and checks a named `resource` before anything is spent.
    if narrowed.is_none()
        && resource.is_none()
        && switch_to.is_none()
        && let Some((record, successor)) =
            refresh::rotate_live(&config.db, token, &client.client_id, lifetimes)
                .await
                .map_err(storage)?
    {
        let grant = grant_of(&record, record.scope.clone(), resource)?;
        return refreshed(config, client, &grant, successor).await;
    }
    let found = presented(config, client, token).await?;
    let record = found.record();
    // Checked before the rotation, so a refused request spends nothing.
    grant_of(record, String::new(), resource.clone())?;
    let scope = match narrowed {
        None => record.scope.clone(),
        Some(asked) => {
            let asked = scope_list(asked);
            let held = scope_list(&record.scope);
            if !asked.iter().all(|s| held.contains(s)) {
                return Err(TokenError::ScopeWidened);
            }
            asked.join(" ")
        }
    };
    if let Some(org) = switch_to {
        check_switch(config, record, org).await?;
    }
    let (record, successor) = match found {
        Found::Recovered { record, successor } => (record, successor),
        Found::Live(record) => {
            match refresh::rotate(&config.db, &record, token, lifetimes)
                .await
                .map_err(storage)?
            {
                Some(successor) => (record, successor),
                // Another request spent it between the lookup and now.
                None => match presented(config, client, token).await? {
                    Found::Recovered { record, successor } => (record, successor),
                    Found::Live(_) => return Err(TokenError::Unavailable),
                },
            }
        }
    };
    let mut grant = grant_of(&record, scope, resource)?;
    if switch_to.is_some() {
        grant.org = switch_to;
    }
    refreshed(config, client, &grant, successor).await
}

/// A presented refresh token that may be used: live, or spent a moment ago by
/// the same client with its successor unused (graceful rotation).
enum Found {
    Live(RefreshRecord),
    Recovered {
        record: RefreshRecord,
        successor: String,
    },
}

impl Found {
    fn record(&self) -> &RefreshRecord {
        match self {
            Found::Live(record) | Found::Recovered { record, .. } => record,
        }
    }
}

/// Switching organization on a refresh: the grant included `org` or `orgs`,
/// it is a person's, and the person is a member there now.
async fn check_switch(
    config: &IssuerConfig,
    record: &RefreshRecord,
    org: Uuid,
) -> Result<(), TokenError> {
    let Some(user) = record.user_id else {
        return Err(TokenError::SwitchNotAPerson);
    };
    if !record.scope.split(' ').any(|s| s == "org" || s == "orgs") {
        return Err(TokenError::SwitchNotGranted);
    }
    let memberships = crate::orgs::memberships_of(&config.db, user)
        .await
        .map_err(|e| TokenError::unavailable("cannot read memberships", e))?;
    if !memberships.iter().any(|m| m.id == org) {
        return Err(TokenError::SwitchNotMember);
    }
    Ok(())
}

/// The presented refresh token, if it may be used (see [`Found`]), is this
/// client's, and its grant still holds (account enabled, organization
/// membership kept). Nothing is spent here; a spent token presented again
/// outside the grace window ends its family.
async fn presented(
    config: &IssuerConfig,
    client: &Client,
    token: &str,
) -> Result<Found, TokenError> {
    let storage = |e: refresh::RefreshError| TokenError::unavailable("refresh token", e);
    let found = match refresh::find(&config.db, token).await.map_err(storage)? {
        Presented::Live(record) => Found::Live(record),
        Presented::Spent(record) => {
            let grace = config.settings.refresh_reuse_grace;
            let recovered = refresh::recover(
                &config.db,
                &record,
                token,
                &client.client_id,
                grace,
                chrono::Utc::now(),
            )
            .await
            .map_err(storage)?;
            match recovered {
                Some(successor) => Found::Recovered { record, successor },
                None => {
                    // RFC 9700 §4.14.2: reuse means the token leaked; end the family.
                    refresh::revoke_family(&config.db, record.family_id)
                        .await
                        .map_err(storage)?;
                    let mut event =
                        crate::audit::Event::new(crate::audit::Kind::RefreshFamilyRevoked)
                            .client(&record.client_id)
                            .detail("reason", "reuse_detected")
                            .detail("family", record.family_id.to_string());
                    if let Some(user) = record.user_id {
                        event = event.subject(user);
                    }
                    crate::audit::record(&config.db, event)
                        .await
                        .map_err(|e| TokenError::unavailable("audit", e))?;
                    tracing::warn!(family = %record.family_id, client = %record.client_id, "spent refresh token presented again: family revoked");
                    return Err(TokenError::RefreshReused);
                }
            }
        }
        Presented::Dead => return Err(TokenError::RefreshInvalid),
    };
    let record = found.record();
    if record.client_id != client.client_id {
        return Err(TokenError::RefreshWrongClient);
    }
    if let Some(user) = record.user_id {
        config.check_account(user).await?;
    }
    // The grant's own organization must still have the person; without the
    // membership it fails before anything is rotated.
    if let (Some(org), Some(user)) = (record.org_id, record.user_id) {
        let memberships = crate::orgs::memberships_of(&config.db, user)
            .await
            .map_err(|e| TokenError::unavailable("cannot read memberships", e))?;
        if !memberships.iter().any(|m| m.id == org) {
            return Err(TokenError::MembershipGone);
        }
    }
    Ok(found)
}

/// The grant a refresh token stands for, with this request's scope. Its API is
/// the one the grant was made for; RFC 8707 §2.2: a refresh may name that
/// resource again, not another. (A grant made before refresh tokens remembered
/// their API, or without one, may still name any API it is allowed, as then.)
fn grant_of(
    record: &RefreshRecord,
    scope: String,
    requested: Option<String>,
) -> Result<Grant, TokenError> {
    let resource = match (&record.resource, requested) {
        (Some(granted), Some(asked)) if *granted != asked => {
            return Err(TokenError::ResourceNotGranted);
        }
        (Some(granted), _) => Some(granted.clone()),
        (None, asked) => asked,
    };
    Ok(Grant {
        subject: record.user_id.map_or(Subject::Client, Subject::User),
        client_id: record.client_id.clone(),
        scope,
        session: refresh::session_of(record),
        org: record.org_id,
        resource,
        nonce: None,
        pat: None,
    })
}

async fn refreshed(
    config: &IssuerConfig,
    client: &Client,
    grant: &Grant,
    successor: String,
) -> Result<TokenResponse, TokenError> {
    let org = config.org_claims(grant).await?;
    let for_token = Grant {
        scope: config.scope_for_token(grant, &org).await?,
        ..grant.clone()
    };
    let signed = config.sign_access(&for_token, &org)?;
    respond(config, client, &for_token, &org, signed, Some(successor))
}

/// RFC 6749 §4.4: a confidential client acts for itself; `sub` is its client_id,
/// and it holds none of the scopes that speak of a person. An organization's
/// service account acts in its organization with its role: its tokens carry
/// `org_id`, `org_slug`, `org_role` and `credential: "service_account"`, and of
/// an API's scopes those its role holds.
pub async fn client_credentials(
    config: &IssuerConfig,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, TokenError> {
    // The request's `resource`, else the client's default API.
    let named = params
        .get("resource")
        .or(client.default_resource.as_deref());
    let resource = config.allowed_resource(named).await?;
    if client.is_public() {
        return Err(TokenError::PublicClientForItself);
    }
    let mut scope = match client.service {
        Some((_, role)) => service_scope(config, role, scope_param(params)?, &resource).await?,
        None => client.negotiate_scope(scope_param(params)?),
    };
    scope.retain(|s| !USER_ONLY_SCOPES.contains(&s.as_str()) && !s.starts_with("org:"));
    if scope.is_empty() {
        return Err(TokenError::NoScope);
    }
    let grant = Grant {
        subject: Subject::Client,
        client_id: client.client_id.clone(),
        scope: scope.join(" "),
        session: None,
        org: client.service.map(|(org, _)| org),
        resource,
        nonce: None,
        pat: None,
    };
    let claims = match client.service {
        Some((org, role)) => service_claims(config, org, role).await?,
        None => serde_json::Map::new(),
    };
    let signed = config.sign_access(&grant, &claims)?;
    respond(config, client, &grant, &claims, signed, None)
}

/// A service account's scopes: those asked for (all, when none are) that its
/// role holds — on the API named, or on any API.
async fn service_scope(
    config: &IssuerConfig,
    role: crate::orgs::Role,
    asked: Option<&str>,
    resource: &Option<String>,
) -> Result<Vec<String>, TokenError> {
    let unavailable = |e: crate::orgs::apis::ApiRegistryError| TokenError::unavailable("APIs", e);
    let held = match resource {
        Some(audience) => crate::orgs::apis::find(&config.db, audience)
            .await
            .map_err(unavailable)?
            .map(|api| api.held_by(role).to_vec())
            .unwrap_or_default(),
        None => crate::orgs::apis::held_scopes(&config.db, &[role])
            .await
            .map_err(unavailable)?,
    };
    Ok(match asked {
        None => held,
        Some(asked) => scope_list(asked)
            .into_iter()
            .filter(|s| held.contains(s))
            .collect(),
    })
}

/// The organization claims of a service account's token.
async fn service_claims(
    config: &IssuerConfig,
    org: uuid::Uuid,
    role: crate::orgs::Role,
) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
    let found = crate::orgs::find(&config.db, &org.to_string())
        .await
        .map_err(|e| TokenError::unavailable("cannot read an organization", e))?
        .ok_or(TokenError::MembershipGone)?;
    let mut claims = serde_json::Map::new();
    claims.insert("org_id".into(), org.to_string().into());
    claims.insert("org_slug".into(), found.slug.into());
    claims.insert("org_role".into(), role.as_str().into());
    claims.insert("credential".into(), "service_account".into());
    Ok(claims)
}

/// RFC 8693 `grant_type` of a token exchange.
pub const TOKEN_EXCHANGE: &str = GrantType::TokenExchange.as_str();
/// RFC 8693 §3: the token type of an OpenID Connect id_token (what a native
/// app sends from an upstream provider).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 §3: the token type of an access token (what a personal access token
/// is presented as, and what an exchange issues).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// RFC 8693 token exchange with a personal access token as `subject_token`: the
/// token is the credential (no client needs to authenticate), so each attempt
/// counts against the address's sign-in limit and a good one is taken back.
/// Issues a short-lived JWT with the claims a code-flow token for the person
/// would have — `sub`, `aud`, `scope`, the organization — marked
/// `credential: "personal_access_token"` with the token's `pat_id`.
pub async fn token_exchange(
    config: &IssuerConfig,
    throttle: &Throttle,
    ip: &str,
    params: &Params,
) -> Result<TokenResponse, TokenError> {
    let Some(subject) = params.get("subject_token") else {
        return Err(TokenError::Malformed("subject_token is required"));
    };
    if params.get("subject_token_type") != Some(ACCESS_TOKEN_TYPE)
        || params
            .get("requested_token_type")
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(TokenError::Malformed(
            "subject_token_type and requested_token_type must be urn:ietf:params:oauth:token-type:access_token",
        ));
    }
    if params.get("actor_token").is_some() || params.get("audience").is_some() {
        return Err(TokenError::Malformed(
            "actor_token and audience are not supported; name the API with resource",
        ));
    }
    let resource = config.allowed_resource(params.get("resource")).await?;
    let asked = scope_param(params)?;
    let attempt = match throttle.address_attempt(ip).await {
        Ok(Admission::Allowed(attempt)) => attempt,
        Ok(Admission::Refused(wait)) => return Err(TokenError::Throttled(wait.as_secs().max(1))),
        Err(e) => return Err(TokenError::unavailable("throttle", e)),
    };
    let active = pats::authenticate(&config.db, subject)
        .await
        .map_err(|e| TokenError::unavailable("personal access token", e))?
        .ok_or(TokenError::SubjectTokenInvalid)?;
    throttle
        .forgive(attempt)
        .await
        .map_err(|e| TokenError::unavailable("throttle", e))?;
    let org = exchange_organization(config, &active, params.get("organization_id")).await?;
    let scope: Vec<&str> = match asked {
        None => active.scopes.iter().map(String::as_str).collect(),
        Some(asked) => asked
            .split_whitespace()
            .filter(|s| active.scopes.iter().any(|held| held == s))
            .collect(),
    };
    let grant = Grant {
        subject: Subject::User(active.pat.user_id),
        client_id: String::new(),
        scope: scope_list(&scope.join(" ")).join(" "),
        session: None,
        org,
        resource,
        nonce: None,
        pat: Some(active.pat.id),
    };
    let claims = config.org_claims(&grant).await?;
    let for_token = Grant {
        scope: config.scope_for_token(&grant, &claims).await?,
        ..grant
    };
    let signed = config.sign_access(&for_token, &claims)?;
    Ok(TokenResponse {
        access_token: signed.token,
        token_type: "Bearer",
        expires_in: config.settings.access_token_ttl.as_secs(),
        scope: for_token.scope,
        refresh_token: None,
        id_token: None,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
    })
}

/// RFC 8693 token exchange of an upstream provider's id_token, sent by a
/// native app that signed the person in with the provider's own SDK. The
/// token is verified like the browser flow's (issuer, signature, expiry; the
/// audience one of the provider's accepted audiences) and stands for the
/// account linked to it — or a new one, by the same rules, never an existing
/// account by address. Our own access token follows, with a refresh token
/// when the client may have one.
pub async fn id_token_exchange(
    config: &IssuerConfig,
    federation: &crate::federation::Federation,
    mailer: &crate::mail::Mailer,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, TokenError> {
    use crate::federation::FlowError;
    let Some(subject) = params.get("subject_token") else {
        return Err(TokenError::Malformed("subject_token is required"));
    };
    if params
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(TokenError::Malformed(
            "requested_token_type must be urn:ietf:params:oauth:token-type:access_token",
        ));
    }
    if params.get("actor_token").is_some() || params.get("audience").is_some() {
        return Err(TokenError::Malformed(
            "actor_token and audience are not supported; name the API with resource",
        ));
    }
    let resource = config.allowed_resource(params.get("resource")).await?;
    let asked = scope_param(params)?;
    let named_org = match params.get("organization_id") {
        None => None,
        Some(raw) => Some(
            Uuid::parse_str(raw)
                .map_err(|_| TokenError::Malformed("organization_id is not an organization id"))?,
        ),
    };
    let refusal = |e: FlowError| match e {
        FlowError::UnknownProvider(_) => TokenError::UnknownProvider(
            "provider names no identity provider here, and the token's issuer is none".into(),
        ),
        FlowError::IdToken { why, .. } => TokenError::SubjectIdToken(why.to_string()),
        FlowError::NoEmail(_) | FlowError::SignupClosed(_) | FlowError::NotConnected(_) => {
            TokenError::NotConnected(e.to_string())
        }
        FlowError::Disabled => TokenError::AccountDisabled,
        other => TokenError::unavailable("federated token exchange", other),
    };
    let provider = federation
        .provider_for(params.get("provider"), subject)
        .await
        .map_err(refusal)?;
    let user = federation
        .account_for_id_token(mailer, provider, subject, config.settings.signup)
        .await
        .map_err(refusal)?;
    let org = match named_org {
        None => None,
        Some(asked) => {
            let memberships = crate::orgs::memberships_of(&config.db, user.id)
                .await
                .map_err(|e| TokenError::unavailable("cannot read memberships", e))?;
            if !memberships.iter().any(|m| m.id == asked) {
                return Err(TokenError::OrganizationNotAllowed);
            }
            Some(asked)
        }
    };
    let scope = client.negotiate_scope(asked);
    if scope.is_empty() {
        return Err(TokenError::NoScope);
    }
    let grant = Grant {
        subject: Subject::User(user.id),
        client_id: client.client_id.clone(),
        scope: scope.join(" "),
        session: None,
        org,
        resource,
        nonce: None,
        pat: None,
    };
    let claims = config.org_claims(&grant).await?;
    let for_token = Grant {
        scope: config.scope_for_token(&grant, &claims).await?,
        ..grant.clone()
    };
    let signed = config.sign_access(&for_token, &claims)?;
    let refresh_token =
        if refresh::wanted(client.allows_grant(GrantType::RefreshToken), &grant.scope) {
            let new = refresh::NewFamily {
                client_id: &grant.client_id,
                user_id: Some(user.id),
                session: None,
                scope: &grant.scope,
                org_id: grant.org,
                resource: grant.resource.as_deref(),
            };
            let (token, _) = refresh::issue_family(&config.db, new, config.refresh_lifetimes())
                .await
                .map_err(|e| TokenError::unavailable("cannot issue a refresh token", e))?;
            Some(token)
        } else {
            None
        };
    Ok(TokenResponse {
        access_token: signed.token,
        token_type: "Bearer",
        expires_in: config.settings.access_token_ttl.as_secs(),
        scope: for_token.scope,
        refresh_token,
        id_token: None,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
    })
}

/// The organization an exchanged token acts in: the token's pin (an
/// `organization_id` may only repeat it), else the one named, which must be one
/// of the person's; else none.
async fn exchange_organization(
    config: &IssuerConfig,
    active: &pats::Active,
    named: Option<&str>,
) -> Result<Option<uuid::Uuid>, TokenError> {
    let named = match named {
        None => None,
        Some(raw) => Some(
            uuid::Uuid::parse_str(raw)
                .map_err(|_| TokenError::Malformed("organization_id is not an organization id"))?,
        ),
    };
    match (active.pat.org_id, named) {
        (Some(pin), Some(asked)) if pin != asked => Err(TokenError::OrganizationNotAllowed),
        (Some(pin), _) => Ok(Some(pin)),
        (None, None) => Ok(None),
        (None, Some(asked)) => {
            let memberships = crate::orgs::memberships_of(&config.db, active.pat.user_id)
                .await
                .map_err(|e| TokenError::unavailable("cannot read memberships", e))?;
            if memberships.iter().any(|m| m.id == asked) {
                Ok(Some(asked))
            } else {
                Err(TokenError::OrganizationNotAllowed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::unique(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
        .expect("unique")
    }

    #[test]
    fn a_scope_with_characters_rfc6749_forbids_is_refused() {
        assert_eq!(
            scope_param(&params(&[("scope", "a \"b\"")])),
            Err(TokenError::ScopeMalformed)
        );
        assert_eq!(
            scope_param(&params(&[("scope", "a\\b")])),
            Err(TokenError::ScopeMalformed)
        );
        assert_eq!(
            scope_param(&params(&[("scope", "openid api:read")])),
            Ok(Some("openid api:read"))
        );
        assert_eq!(scope_param(&params(&[])), Ok(None));
    }
}
