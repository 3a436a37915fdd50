//! The browser flow against an upstream provider: authorization code with
//! PKCE (S256), `state` and `nonce` (RFC 9700 §2.1, OIDC Core §3.1), the
//! callback checked (state bound to the browser that began, RFC 9207 `iss`),
//! the code redeemed at the provider and its id_token validated; then the
//! rules of who signs in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use url::Url;
use uuid::Uuid;

use super::id_token::{self, Expected, IdTokenError, UpstreamIdentity};
use super::links::{self, Link, LinkError};
use super::providers::{self, Provider, ProviderError, TokenAuth};
use super::upstream::{self, FetchError, Upstreams};
use crate::identity::users::{self, User};
use crate::oauth::digest;
use crate::store::cache::Cache;

/// How long a person may take at the provider.
const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a "sign in to connect" offer waits for the sign-in.
const PENDING_LINK_TTL: Duration = Duration::from_secs(10 * 60);

/// Why a federated sign-in did not happen, in words for the person.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("There is no sign-in provider `{0}`.")]
    UnknownProvider(String),
    #[error("{0} cannot be reached right now. Try again later, or sign in another way.")]
    Unavailable(String),
    #[error("You cancelled signing in with {0}.")]
    Denied(String),
    #[error("{provider} refused the sign-in ({code}).")]
    Refused { provider: String, code: String },
    #[error(
        "This sign-in link has expired or was already used. Start again from the sign-in page."
    )]
    StateInvalid,
    #[error("{provider} sent a sign-in we cannot accept: {why}")]
    IdToken { provider: String, why: IdTokenError },
    #[error("{0} did not share an email address, which a new account needs.")]
    NoEmail(String),
    #[error("Sign-up is closed: there is no account for this {0} sign-in.")]
    SignupClosed(String),
    #[error("This account is disabled.")]
    Disabled,
    #[error(
        "an account with this address exists but is not connected to {0}: sign in to it in the browser once to connect it"
    )]
    NotConnected(String),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("internal: {0}")]
    Internal(String),
}

impl FlowError {
    fn internal(e: impl std::fmt::Display) -> Self {
        FlowError::Internal(e.to_string())
    }
}

impl From<ProviderError> for FlowError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::NotFound(id) => FlowError::UnknownProvider(id),
            other => FlowError::Internal(other.to_string()),
        }
    }
}

/// What is remembered between sending the person to the provider and their
/// return, under the digest of `state`.
#[derive(Serialize, Deserialize)]
struct FlowState {
    provider: String,
    nonce: String,
    verifier: String,
    /// Digest of the browser-binding cookie set when the flow began.
    binding: String,
    return_to: Option<String>,
    /// Set when a signed-in person connects the provider from their account.
    connect: Option<Uuid>,
}

/// A flow begun: where to send the browser, and the cookie binding it.
pub struct Begun {
    pub location: Url,
    pub binding: String,
}

/// The provider's answer at the callback (RFC 6749 §4.1.2, RFC 9207).
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

/// A callback that checked out: who the provider says signed in.
pub struct Finished {
    pub provider: Provider,
    pub identity: UpstreamIdentity,
    pub return_to: Option<String>,
    pub connect: Option<Uuid>,
}

/// What the callback leads to.
pub enum Decision {
    /// Sign in as the linked account.
    SignIn { user: User },
    /// Linked to the signed-in account now.
    Connected { user: User },
    /// An account has this address: whoever holds it signs in once to link.
    ConfirmBySignIn { user_id: Uuid, email: String },
    /// A new account, linked.
    Created { user: User },
}

/// What the provider's token endpoint answered.
struct Redeemed {
    id_token: String,
    access_token: Option<String>,
}

/// A "sign in to connect" offer, held until the sign-in.
#[derive(Serialize, Deserialize)]
struct PendingLink {
    provider: String,
    provider_name: String,
    identity: UpstreamIdentity,
    user_id: Uuid,
}

/// Random 256-bit URL-safe value.
fn random() -> Result<String, FlowError> {
    crate::identity::sessions::random_token().map_err(FlowError::internal)
}

fn flow_key(state: &str) -> String {
    format!("federation:flow:{}", digest(state))
}

fn link_key(token: &str) -> String {
    format!("federation:link:{}", digest(token))
}

/// The federation service: providers' servers, the secrets key their client
/// secrets are sealed under, and the short-lived flow state.
#[derive(Clone)]
pub struct Federation {
    pub upstreams: Upstreams,
    secrets_key: [u8; 32],
    cache: Cache,
    db: DatabaseConnection,
    issuer: String,
}

impl Federation {
    pub fn new(
        db: DatabaseConnection,
        cache: Cache,
        secrets_key: [u8; 32],
        issuer: &str,
    ) -> Result<Self, String> {
        Ok(Self {
            upstreams: Upstreams::new(db.clone())?,
            secrets_key,
            cache,
            db,
            issuer: issuer.to_owned(),
        })
    }

    /// The redirect URI to register at provider `id`.
    pub fn redirect_uri(&self, id: &str) -> String {
        format!("{}/federation/{id}/callback", self.issuer)
    }

    /// Every provider with what the login page should say of it.
    pub async fn buttons(&self) -> Result<Vec<(Provider, upstream::Status)>, FlowError> {
        let all = providers::list(&self.db).await?;
        Ok(all
            .into_iter()
            .map(|p| {
                let status = self.upstreams.status(&p);
                (p, status)
            })
            .collect())
    }

    /// Starts a sign-in (or, with `connect`, a link) at provider `id`.
    pub async fn begin(
        &self,
        id: &str,
        return_to: Option<String>,
        connect: Option<Uuid>,
    ) -> Result<Begun, FlowError> {
        let provider = providers::find(&self.db, id).await?;
        let discovered = self
            .upstreams
            .ready(&provider)
            .await
            .map_err(|_| FlowError::Unavailable(provider.name.clone()))?;
        let state = random()?;
        let nonce = random()?;
        let verifier = random()?;
        let binding = random()?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let flow = FlowState {
            provider: provider.id.clone(),
            nonce: nonce.clone(),
            verifier,
            binding: digest(&binding),
            return_to,
            connect,
        };
        let value = serde_json::to_vec(&flow).map_err(FlowError::internal)?;
        self.cache
            .put(&flow_key(&state), &value, FLOW_TTL)
            .await
            .map_err(FlowError::internal)?;
        let mut location = discovered.metadata.authorization_endpoint.clone();
        location
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", &self.redirect_uri(&provider.id))
            .append_pair("scope", &provider.scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(Begun { location, binding })
    }

    /// Checks the callback at provider `id` and redeems its code: the
    /// identity the provider vouches for. `binding` is the cookie the flow set.
    pub async fn finish(
        &self,
        id: &str,
        callback: &Callback,
        binding: Option<&str>,
    ) -> Result<Finished, FlowError> {
        // The state is taken (single use) before anything else: a replayed
        // callback finds nothing, whatever else it carries.
        let Some(state) = callback.state.as_deref().filter(|s| s.len() <= 200) else {
            return Err(FlowError::StateInvalid);
        };
        let taken = self
            .cache
            .take(&flow_key(state))
            .await
            .map_err(FlowError::internal)?;
        let flow: FlowState = taken
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(FlowError::StateInvalid)?;
        let bound = binding.is_some_and(|b| digest(b) == flow.binding);
        if flow.provider != id || !bound {
            return Err(FlowError::StateInvalid);
        }
        let provider = providers::find(&self.db, id).await?;
        // RFC 9207: a provider that names itself must be the one we sent the
        // person to (mix-up defence).
        if callback
            .iss
            .as_deref()
            .is_some_and(|iss| iss != provider.issuer)
        {
            return Err(FlowError::StateInvalid);
        }
        if let Some(error) = callback.error.as_deref() {
            return Err(if error == "access_denied" {
                FlowError::Denied(provider.name.clone())
            } else {
                FlowError::Refused {
                    provider: provider.name.clone(),
                    code: error.chars().take(64).collect(),
                }
            });
        }
        let Some(code) = callback.code.as_deref() else {
            return Err(FlowError::StateInvalid);
        };
        let tokens = self.redeem(&provider, code, &flow.verifier).await?;
        let mut identity = self
            .validate(
                &provider,
                &tokens.id_token,
                &[provider.client_id.as_str()],
                Some(&flow.nonce),
            )
            .await?;
        if identity.email.is_none()
            && let Some(access_token) = &tokens.access_token
        {
            self.userinfo(&provider, access_token, &mut identity)
                .await?;
        }
        Ok(Finished {
            provider,
            identity,
            return_to: flow.return_to,
            connect: flow.connect,
        })
    }

    /// Validates a provider's id_token against its published keys.
    pub async fn validate(
        &self,
        provider: &Provider,
        token: &str,
        audiences: &[&str],
        nonce: Option<&str>,
    ) -> Result<UpstreamIdentity, FlowError> {
        let id_token_error = |why| FlowError::IdToken {
            provider: provider.name.clone(),
            why,
        };
        let (_, kid) = id_token::header(token).map_err(id_token_error)?;
        let keys = self
            .upstreams
            .keys_for(provider, kid.as_deref())
            .await
            .map_err(|_| FlowError::Unavailable(provider.name.clone()))?;
        id_token::validate(
            token,
            &keys,
            &Expected {
                issuer: &provider.issuer,
                audiences,
                nonce,
                now: Utc::now(),
            },
        )
        .map_err(id_token_error)
    }

    /// OIDC Core §5.4: a provider may leave the address out of the id_token
    /// and answer it at userinfo. The answer counts only for the same `sub`
    /// (§5.3.2); a provider without userinfo, or one that fails, just leaves
    /// the address unknown.
    async fn userinfo(
        &self,
        provider: &Provider,
        access_token: &str,
        identity: &mut UpstreamIdentity,
    ) -> Result<(), FlowError> {
        let Some(endpoint) = self
            .upstreams
            .ready(provider)
            .await
            .ok()
            .and_then(|d| d.metadata.userinfo_endpoint.clone())
        else {
            return Ok(());
        };
        let answer = async {
            let mut response = self
                .upstreams
                .http()
                .get(endpoint)
                .bearer_auth(access_token)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status().as_u16()));
            }
            let body = upstream::read_limited(&mut response).await?;
            serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| e.to_string())
        }
        .await;
        let claims = match answer {
            Ok(claims) => claims,
            Err(why) => {
                tracing::warn!(provider = %provider.id, "userinfo failed: {why}");
                return Ok(());
            }
        };
        if claims.get("sub").and_then(|s| s.as_str()) != Some(identity.subject.as_str()) {
            return Err(FlowError::IdToken {
                provider: provider.name.clone(),
                why: IdTokenError::Subject,
            });
        }
        identity.email = claims
            .get("email")
            .and_then(|e| e.as_str())
            .filter(|e| e.len() <= 254)
            .map(str::to_owned);
        identity.email_verified = matches!(
            claims.get("email_verified"),
            Some(serde_json::Value::Bool(true))
        ) || claims.get("email_verified").and_then(|v| v.as_str())
            == Some("true");
        if identity.name.is_none() {
            identity.name = claims
                .get("name")
                .and_then(|n| n.as_str())
                .map(|n| n.chars().take(200).collect());
        }
        Ok(())
    }

    /// The code redeemed at the provider's token endpoint.
    async fn redeem(
        &self,
        provider: &Provider,
        code: &str,
        verifier: &str,
    ) -> Result<Redeemed, FlowError> {
        let unavailable = |why: String| {
            tracing::warn!(provider = %provider.id, "token request failed: {why}");
            self.upstreams.failed(provider, &why);
            FlowError::Unavailable(provider.name.clone())
        };
        let discovered = self
            .upstreams
            .ready(provider)
            .await
            .map_err(|e: FetchError| unavailable(e.to_string()))?;
        let secret = providers::client_secret(&self.db, &self.secrets_key, &provider.id).await?;
        let redirect_uri = self.redirect_uri(&provider.id);
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self
            .upstreams
            .http()
            .post(discovered.metadata.token_endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match provider.token_auth {
            TokenAuth::ClientSecretBasic => {
                // RFC 6749 §2.3.1: each part form-encoded before Basic.
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", encode(&provider.client_id), encode(&secret));
                let basic = base64::engine::general_purpose::STANDARD.encode(pair);
                request = request.header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"));
            }
            TokenAuth::ClientSecretPost => {
                form.push(("client_id", provider.client_id.as_str()));
                form.push(("client_secret", secret.as_str()));
            }
        }
        let mut response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let body = upstream::read_limited(&mut response)
            .await
            .map_err(unavailable)?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
            access_token: Option<String>,
            error: Option<String>,
        }
        let answer: Option<TokenAnswer> = serde_json::from_slice(&body).ok();
        if status.is_server_error() {
            return Err(unavailable(format!("HTTP {}", status.as_u16())));
        }
        match answer {
            Some(TokenAnswer {
                id_token: Some(id_token),
                access_token,
                ..
            }) if status.is_success() => Ok(Redeemed {
                id_token,
                access_token,
            }),
            Some(TokenAnswer {
                error: Some(code), ..
            }) => Err(FlowError::Refused {
                provider: provider.name.clone(),
                code: code.chars().take(64).collect(),
            }),
            _ => Err(FlowError::Refused {
                provider: provider.name.clone(),
                code: format!("HTTP {} without an id_token", status.as_u16()),
            }),
        }
    }

    /// Who signs in after a checked callback; `current` is the account
    /// signed in in this browser, if any.
    pub async fn decide(
        &self,
        mailer: &crate::mail::Mailer,
        finished: &Finished,
        current: Option<Uuid>,
        signup_open: bool,
    ) -> Result<Decision, FlowError> {
        let provider = &finished.provider;
        let identity = &finished.identity;
        if finished.connect.is_some() && finished.connect != current {
            // Signed out (or in as someone else) since the link began.
            return Err(FlowError::StateInvalid);
        }
        if let Some(link) = links::find(&self.db, &provider.id, &identity.subject).await? {
            if let Some(connecting) = finished.connect
                && link.user_id != connecting
            {
                return Err(LinkError::LinkedElsewhere(provider.name.clone()).into());
            }
            let user = self.account(link.user_id).await?;
            links::used(&self.db, &link, identity).await?;
            return Ok(Decision::SignIn { user });
        }
        if let Some(holder) = current {
            let user = self.account(holder).await?;
            links::connect(&self.db, &provider.id, &provider.name, holder, identity).await?;
            return Ok(Decision::Connected { user });
        }
        let Some(email) = identity.email.clone() else {
            return Err(FlowError::NoEmail(provider.name.clone()));
        };
        if let Some(existing) = users::find_by_email(&self.db, &email)
            .await
            .map_err(FlowError::internal)?
        {
            return Ok(Decision::ConfirmBySignIn {
                user_id: existing.id,
                email: existing.email,
            });
        }
        if !signup_open {
            return Err(FlowError::SignupClosed(provider.name.clone()));
        }
        let verified = identity.email_verified && provider.trust_email;
        let (user, _) = links::create_account(
            &self.db,
            mailer,
            &provider.id,
            &provider.name,
            identity,
            &email,
            verified,
        )
        .await
        .map_err(|e| match e {
            LinkError::Identity(crate::identity::IdentityError::InvalidEmail) => {
                FlowError::NoEmail(provider.name.clone())
            }
            other => other.into(),
        })?;
        Ok(Decision::Created { user })
    }

    /// The provider an id_token sent by a native app is from: the one named
    /// (`provider`), else the one whose issuer the token's unverified `iss`
    /// names — only a choice of whose keys to check it with.
    pub async fn provider_for(
        &self,
        named: Option<&str>,
        token: &str,
    ) -> Result<Provider, FlowError> {
        if let Some(id) = named {
            return Ok(providers::find(&self.db, id).await?);
        }
        let iss = token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|claims| {
                claims
                    .get("iss")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .ok_or_else(|| FlowError::UnknownProvider(String::new()))?;
        providers::list(&self.db)
            .await?
            .into_iter()
            .find(|p| p.issuer == iss)
            .ok_or(FlowError::UnknownProvider(iss))
    }

    /// The account a native app's id_token from `provider` stands for, by the
    /// browser flow's rules: a linked account, or a new one when the address
    /// is nobody's — never an existing account by address alone.
    pub async fn account_for_id_token(
        &self,
        mailer: &crate::mail::Mailer,
        provider: Provider,
        token: &str,
        signup_open: bool,
    ) -> Result<User, FlowError> {
        let mut audiences: Vec<&str> = provider
            .accepted_audiences
            .iter()
            .map(String::as_str)
            .collect();
        audiences.push(&provider.client_id);
        let identity = self.validate(&provider, token, &audiences, None).await?;
        let finished = Finished {
            provider,
            identity,
            return_to: None,
            connect: None,
        };
        match self.decide(mailer, &finished, None, signup_open).await? {
            Decision::SignIn { user } | Decision::Created { user } => Ok(user),
            Decision::ConfirmBySignIn { .. } | Decision::Connected { .. } => {
                Err(FlowError::NotConnected(finished.provider.name.clone()))
            }
        }
    }

    /// An account that may sign in.
    async fn account(&self, id: Uuid) -> Result<User, FlowError> {
        let user = users::find(&self.db, id)
            .await
            .map_err(FlowError::internal)?
            .ok_or(FlowError::StateInvalid)?;
        if user.disabled {
            return Err(FlowError::Disabled);
        }
        Ok(user)
    }

    /// Adds a provider, its client secret sealed under this server's secrets
    /// key (what `tessera provider add` does).
    pub async fn add_provider(
        &self,
        new: providers::NewProvider<'_>,
    ) -> Result<Provider, ProviderError> {
        providers::add(&self.db, &self.secrets_key, new).await
    }

    /// Holds a "sign in to connect" offer; the token goes in a cookie.
    pub async fn hold_link(&self, finished: &Finished, user_id: Uuid) -> Result<String, FlowError> {
        let token = random()?;
        let pending = PendingLink {
            provider: finished.provider.id.clone(),
            provider_name: finished.provider.name.clone(),
            identity: finished.identity.clone(),
            user_id,
        };
        let value = serde_json::to_vec(&pending).map_err(FlowError::internal)?;
        self.cache
            .put(&link_key(&token), &value, PENDING_LINK_TTL)
            .await
            .map_err(FlowError::internal)?;
        Ok(token)
    }

    /// After a password or passkey sign-in as `user`: the held offer, if it
    /// was for this account, becomes a link. Whoever signs in to another
    /// account gets nothing linked.
    pub async fn complete_link(&self, token: &str, user: Uuid) -> Result<Option<Link>, FlowError> {
        let taken = self
            .cache
            .take(&link_key(token))
            .await
            .map_err(FlowError::internal)?;
        let Some(pending) = taken.and_then(|raw| serde_json::from_slice::<PendingLink>(&raw).ok())
        else {
            return Ok(None);
        };
        if pending.user_id != user {
            return Ok(None);
        }
        let link = links::connect(
            &self.db,
            &pending.provider,
            &pending.provider_name,
            user,
            &pending.identity,
        )
        .await?;
        Ok(Some(link))
    }
}
