//! What an authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2) gets: the
//! client and redirect checks, `prompt`, `max_age`, `id_token_hint`, the
//! organization and consent — decided here, rendered by `http::oauth`.
//!
//! Until the client and its redirect URI are verified, every refusal is
//! [`Outcome::Invalid`] (an HTML page): nothing is ever sent to an unverified
//! redirect URI. After that, refusals go back to the client.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use url::Url;
use uuid::Uuid;

use super::SessionContext;
use super::clients::{Client, GrantType};
use super::codes::{CodeGrant, CodeStore};
use super::params::Params;
use super::tokens::IssuerConfig;
use super::{MAX_NONCE, consent, pkce};
use crate::error::ErrorCode;
use crate::identity::sessions::Session;
use crate::orgs::{self, Membership, OrgChoice, apis};
use crate::store::clients::ClientCache;

/// The longest `state` echoed back into the redirect. Generous for any real client
/// (node-oidc-provider and Hydra clients use a few dozen characters).
pub const MAX_STATE: usize = 2048;

/// The field our own forms use to carry the person's organization choice; a
/// client cannot make the choice by adding it to its request.
pub const ORG_CHOICE: &str = "org_choice";

/// RFC 6749 §3.1.1: the one response type this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    Code,
}

impl ResponseType {
    pub fn parse(name: Option<&str>) -> Option<Self> {
        match name {
            Some("code") => Some(ResponseType::Code),
            _ => None,
        }
    }
}

/// How the authorization response travels back (OAuth 2.0 Multiple Response Types
/// §2.1 and Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// The verified redirect URI and how to answer through it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub uri: Url,
    pub state: Option<String>,
    pub mode: ResponseMode,
    /// Errors are shown as a page with a link to the client instead of a
    /// redirect: for a self-registered client while nobody is signed in, where a
    /// redirect would make this server an open redirector to whatever URI anyone
    /// registered (RFC 9700 §4.11.2).
    pub link_only: bool,
}

/// OIDC Core §3.1.2.1 `prompt`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

impl Prompt {
    pub fn parse(raw: Option<&str>) -> Result<Self, &'static str> {
        let mut prompt = Prompt::default();
        for value in raw.unwrap_or_default().split_whitespace() {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err("prompt has an unknown value"),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values");
        }
        Ok(prompt)
    }
}

/// The person's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// What the person said on our own pages, if this request comes from one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Interaction {
    pub decision: Option<Decision>,
    pub org_choice: Option<Uuid>,
}

/// What the request gets.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing may go to the redirect URI: a page says why.
    Invalid(Cow<'static, str>),
    /// The code, to the client.
    Code { reply: Reply, code: String },
    /// RFC 6749 §4.1.2.1 / OIDC Core §3.1.2.6 error, to the client.
    Refuse {
        reply: Reply,
        code: ErrorCode,
        description: Cow<'static, str>,
    },
    /// To the sign-in page and back with `params`; `fresh` shows the form even
    /// to a signed-in browser.
    SignIn { params: Params, fresh: bool },
    /// The person picks one of their organizations.
    PickOrganization {
        reply: Reply,
        client: Arc<Client>,
        params: Params,
        memberships: Vec<Membership>,
    },
    /// `TESSERA_REQUIRE_VERIFIED_EMAIL`: the person verifies `email` first;
    /// `params` continue the request afterwards.
    VerifyEmail { email: String, params: Params },
    /// The person allows or denies `scope`.
    Consent {
        reply: Reply,
        client: Arc<Client>,
        params: Params,
        scope: String,
    },
}

/// Storage, the cache or the key ring failed; the cause is logged.
#[derive(Debug, thiserror::Error)]
#[error("authorization is unavailable")]
pub struct Unavailable;

fn unavailable(cause: impl std::fmt::Display) -> Unavailable {
    tracing::error!("authorization failed: {cause}");
    Unavailable
}

/// A refusal of the request's own parameters, answered at the redirect URI.
type Refusal = (ErrorCode, Cow<'static, str>);

fn refusal(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Refusal {
    (code, description.into())
}

/// An authorization request whose parameters are in order.
#[derive(Debug)]
pub struct Checked {
    pub mode: ResponseMode,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    /// Sorted: what the client asked for and may have.
    pub scope: Vec<String>,
    pub code_challenge: String,
    pub resource: Option<String>,
}

/// The request's `resource` (RFC 8707), looked up among the APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Absent,
    Known(String),
    Unknown,
}

impl Resource {
    /// The request's `resource`, else the client's default API.
    async fn of(
        config: &IssuerConfig,
        params: &Params,
        client: &Client,
    ) -> Result<Self, Unavailable> {
        let named = params
            .get("resource")
            .or(client.default_resource.as_deref());
        let Some(audience) = named else {
            return Ok(Resource::Absent);
        };
        let api = apis::resolve(&config.db, &config.settings.resources, audience)
            .await
            .map_err(unavailable)?;
        Ok(api.map_or(Resource::Unknown, |api| Resource::Known(api.audience)))
    }
}

/// The request's own rules, after its client and redirect URI are verified.
pub fn check_request(
    params: &Params,
    client: &Client,
    resource: Resource,
) -> Result<Checked, Refusal> {
    use ErrorCode as C;
    let mode = match params.get("response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => {
            return Err(refusal(
                C::InvalidRequest,
                "response_mode must be query or form_post",
            ));
        }
    };
    if params.get("request").is_some() {
        return Err(refusal(
            C::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.get("request_uri").is_some() {
        return Err(refusal(
            C::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    if params.get("nonce").is_some_and(|n| n.len() > MAX_NONCE) {
        return Err(refusal(
            C::InvalidRequest,
            format!("nonce is longer than {MAX_NONCE} characters"),
        ));
    }
    let prompt =
        Prompt::parse(params.get("prompt")).map_err(|why| refusal(C::InvalidRequest, why))?;
    let max_age = match params.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => {
            return Err(refusal(
                C::InvalidRequest,
                "max_age must be a whole number of seconds",
            ));
        }
    };
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(refusal(
            C::UnauthorizedClient,
            "this client may not use the authorization code flow",
        ));
    }
    let resource = match resource {
        Resource::Absent => None,
        Resource::Known(audience) => Some(audience),
        Resource::Unknown => {
            return Err(refusal(
                C::InvalidTarget,
                "the resource is not one this server issues tokens for",
            ));
        }
    };
    if ResponseType::parse(params.get("response_type")).is_none() {
        return Err(refusal(
            C::UnsupportedResponseType,
            "response_type must be code",
        ));
    }
    let requested = params.get("scope");
    let scope_char = |c: char| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\');
    if requested.is_some_and(|s| !s.chars().all(scope_char)) {
        return Err(refusal(
            C::InvalidScope,
            "the scope contains characters RFC 6749 §3.3 does not allow",
        ));
    }
    let code_challenge = pkce::check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(|why| refusal(C::InvalidRequest, why))?;
    let scope = client.negotiate_scope(requested);
    if scope.is_empty() {
        return Err(refusal(
            C::InvalidScope,
            "none of the requested scopes is available to this client",
        ));
    }
    Ok(Checked {
        mode,
        prompt,
        max_age,
        scope,
        code_challenge,
        resource,
    })
}

/// Whether the browser's session answers this request.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionVerdict {
    Use,
    /// `prompt=none` and no session that answers: `login_required`.
    LoginRequired,
    /// To the sign-in page; `fresh` when a session exists but does not answer
    /// (too old, another user, or a fresh sign-in asked for), so the sign-in
    /// page must not bounce straight back.
    SignIn {
        fresh: bool,
    },
}

/// OIDC Core §3.1.2.1: `prompt=login` asks for a fresh sign-in, a sign-in older
/// than `max_age` seconds must be redone, and `id_token_hint` names who the
/// client expects — a session of anyone else does not count.
pub fn session_verdict(
    session: Option<&Session>,
    prompt: Prompt,
    max_age: Option<i64>,
    hinted_sub: Option<&str>,
    now: DateTime<Utc>,
) -> SessionVerdict {
    let answers = |s: &Session| {
        let stale = max_age.is_some_and(|age| now - s.auth_time > chrono::Duration::seconds(age));
        let someone_else = hinted_sub.is_some_and(|sub| sub != s.user_id.to_string());
        !prompt.login && !stale && !someone_else
    };
    match session {
        Some(s) if answers(s) => SessionVerdict::Use,
        _ if prompt.none => SessionVerdict::LoginRequired,
        existing => SessionVerdict::SignIn {
            fresh: existing.is_some(),
        },
    }
}

/// Whether the person must still be asked before a code is issued.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsentVerdict {
    /// Issue the code (remembering an `Allow` first).
    Granted,
    Denied,
    Ask,
    /// `prompt=none` and consent would be asked: `consent_required`.
    Required,
}

/// First-party clients need no consent; others need it given now or remembered
/// (unless `prompt=consent` asks again).
pub fn consent_verdict(
    decision: Option<Decision>,
    first_party: bool,
    remembered: bool,
    prompt: Prompt,
) -> ConsentVerdict {
    match decision {
        Some(Decision::Deny) => ConsentVerdict::Denied,
        Some(Decision::Allow) => ConsentVerdict::Granted,
        None if first_party || (remembered && !prompt.consent) => ConsentVerdict::Granted,
        None if prompt.none => ConsentVerdict::Required,
        None => ConsentVerdict::Ask,
    }
}

/// What the organization step decided.
enum OrgStep {
    Chosen(Option<Uuid>),
    Done(Outcome),
}

fn refuse(reply: Reply, (code, description): Refusal) -> Outcome {
    Outcome::Refuse {
        reply,
        code,
        description,
    }
}

/// A request whose client, redirect URI and parameters are in order.
struct Verified {
    client: Arc<Client>,
    reply: Reply,
    params: Params,
    checked: Checked,
}

/// Decides what the authorization request `pairs` gets, for the person signed in
/// to `session` (if anyone), with what they said on our pages.
pub async fn decide(
    config: &IssuerConfig,
    clients: &ClientCache,
    pairs: Vec<(String, String)>,
    session: Option<&Session>,
    interaction: Interaction,
) -> Result<Outcome, Unavailable> {
    let params = match Params::unique(pairs) {
        Ok(p) => p,
        Err(why) => return Ok(invalid(format!("The request is malformed: {why}."))),
    };
    let (client, reply) = match verify_client(config, clients, &params, session).await? {
        Ok(verified) => verified,
        Err(why) => return Ok(Outcome::Invalid(why)),
    };
    let resource = Resource::of(config, &params, &client).await?;
    let checked = match check_request(&params, &client, resource) {
        Ok(checked) => checked,
        Err(why) => return Ok(refuse(reply, why)),
    };
    let reply = Reply {
        mode: checked.mode,
        ..reply
    };
    let hinted_sub = match hinted_subject(config, &params) {
        Ok(sub) => sub,
        Err(why) => return Ok(refuse(reply, why)),
    };
    let verdict = session_verdict(
        session,
        checked.prompt,
        checked.max_age,
        hinted_sub.as_deref(),
        Utc::now(),
    );
    let session = match (verdict, session) {
        (SessionVerdict::Use, Some(s)) => s,
        (SessionVerdict::LoginRequired, _) => {
            return Ok(refuse(
                reply,
                refusal(ErrorCode::LoginRequired, "the user is not signed in"),
            ));
        }
        (SessionVerdict::SignIn { fresh }, _) => return Ok(Outcome::SignIn { params, fresh }),
        (SessionVerdict::Use, None) => {
            return Ok(Outcome::SignIn {
                params,
                fresh: false,
            });
        }
    };
    // No code for an unverified address where the operator requires one.
    if config.settings.require_verified_email {
        let account = crate::identity::users::find(&config.db, session.user_id)
            .await
            .map_err(unavailable)?;
        if let Some(account) = account.filter(|a| a.email_verified_at.is_none()) {
            if checked.prompt.none {
                return Ok(refuse(
                    reply,
                    refusal(
                        ErrorCode::InteractionRequired,
                        "the user must verify their email address",
                    ),
                ));
            }
            return Ok(Outcome::VerifyEmail {
                email: account.email,
                params,
            });
        }
    }
    let verified = Verified {
        client,
        reply,
        params,
        checked,
    };
    decide_for(config, verified, session, interaction).await
}

/// The rest, for the person whose session answers the request: the
/// organization, consent, and the code.
async fn decide_for(
    config: &IssuerConfig,
    verified: Verified,
    session: &Session,
    interaction: Interaction,
) -> Result<Outcome, Unavailable> {
    let org = match organization(config, &verified, session, interaction).await? {
        OrgStep::Chosen(org) => org,
        OrgStep::Done(outcome) => return Ok(outcome),
    };
    let Verified {
        client,
        reply,
        params,
        checked,
    } = verified;
    // Our own forms carry the choice on to the consent page.
    let params = match org {
        Some(org) if interaction.org_choice.is_some() => params.with(ORG_CHOICE, &org.to_string()),
        _ => params,
    };
    let scope = checked.scope.join(" ");
    let remembered = interaction.decision.is_none()
        && !client.first_party
        && !checked.prompt.consent
        && consent::covers(&config.db, session.user_id, &client.client_id, &scope)
            .await
            .map_err(unavailable)?;
    let verdict = consent_verdict(
        interaction.decision,
        client.first_party,
        remembered,
        checked.prompt,
    );
    let refused = match verdict {
        ConsentVerdict::Granted => None,
        ConsentVerdict::Denied => Some((ErrorCode::AccessDenied, "the user denied the request")),
        ConsentVerdict::Required => Some((
            ErrorCode::ConsentRequired,
            "the user has not allowed this client",
        )),
        ConsentVerdict::Ask => {
            return Ok(Outcome::Consent {
                reply,
                client,
                params,
                scope,
            });
        }
    };
    if let Some((code, why)) = refused {
        return Ok(refuse(reply, refusal(code, why)));
    }
    if interaction.decision == Some(Decision::Allow) {
        consent::remember(&config.db, session.user_id, &client.client_id, &scope)
            .await
            .map_err(unavailable)?;
    }
    let grant = CodeGrant {
        user_id: session.user_id,
        client_id: client.client_id.clone(),
        scope,
        redirect_uri: params.get("redirect_uri").unwrap_or_default().to_owned(),
        code_challenge: checked.code_challenge,
        nonce: params.get("nonce").map(str::to_owned),
        resource: checked.resource,
        session: SessionContext {
            session_id: session.id,
            auth_time: session.auth_time,
            amr: session.amr.clone(),
            idp: session.idp.clone(),
        },
        org,
    };
    let code = CodeStore::new(config.cache.clone())
        .issue(&grant)
        .await
        .map_err(unavailable)?;
    Ok(Outcome::Code { reply, code })
}

fn invalid(why: impl Into<Cow<'static, str>>) -> Outcome {
    Outcome::Invalid(why.into())
}

/// The client and its redirect URI (RFC 6749 §3.1.2.3, exact match), or why the
/// request must not be answered at that URI.
async fn verify_client(
    config: &IssuerConfig,
    clients: &ClientCache,
    params: &Params,
    session: Option<&Session>,
) -> Result<Result<(Arc<Client>, Reply), Cow<'static, str>>, Unavailable> {
    let Some(client_id) = params.get("client_id") else {
        return Ok(Err(
            "The request does not say which application it is for (client_id is missing).".into(),
        ));
    };
    let Some(client) = clients
        .find(&config.db, client_id)
        .await
        .map_err(unavailable)?
    else {
        return Ok(Err(
            "The application is not registered here (unknown client_id).".into(),
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Ok(Err(
            "The request does not say where to return (redirect_uri is missing).".into(),
        ));
    };
    let Some(uri) = Url::parse(redirect_uri)
        .ok()
        .filter(|_| client.redirect_allowed(redirect_uri))
    else {
        return Ok(Err(
            "The return address is not registered for this application (redirect_uri mismatch)."
                .into(),
        ));
    };
    // A state too long to echo back safely cannot be answered at the redirect
    // URI (RFC 6749 §4.1.2.1 requires echoing it), so it gets the page.
    if params.get("state").is_some_and(|s| s.len() > MAX_STATE) {
        return Ok(Err(format!(
            "The request's state is longer than {MAX_STATE} characters."
        )
        .into()));
    }
    let reply = Reply {
        uri,
        state: params.get("state").map(str::to_owned),
        mode: ResponseMode::Query,
        link_only: client.self_registered && session.is_none(),
    };
    Ok(Ok((client, reply)))
}

/// OIDC Core §3.1.2.1: the subject of `id_token_hint`, an id_token of ours
/// (expired ones count: the hint names a person, it grants nothing).
fn hinted_subject(config: &IssuerConfig, params: &Params) -> Result<Option<String>, Refusal> {
    let Some(hint) = params.get("id_token_hint") else {
        return Ok(None);
    };
    config
        .keys
        .keys()
        .verify_ignoring_expiry(hint, "JWT", config.issuer(), Utc::now())
        .map(|claims| {
            claims
                .get("sub")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .map_err(|_| {
            refusal(
                ErrorCode::InvalidRequest,
                "id_token_hint is not an id_token of this server",
            )
        })
}

/// The organization, when the client asks for one (`org` or `org:{uuid}`).
async fn organization(
    config: &IssuerConfig,
    verified: &Verified,
    session: &Session,
    interaction: Interaction,
) -> Result<OrgStep, Unavailable> {
    let Verified {
        client,
        reply,
        params,
        checked,
    } = verified;
    if !checked
        .scope
        .iter()
        .any(|s| s == "org" || s.starts_with("org:"))
    {
        return Ok(OrgStep::Chosen(None));
    }
    let memberships = orgs::memberships_of(&config.db, session.user_id)
        .await
        .map_err(unavailable)?;
    let refused = |code, description: &'static str| {
        OrgStep::Done(refuse(reply.clone(), refusal(code, description)))
    };
    Ok(
        match orgs::choose_for_grant(
            &checked.scope,
            &memberships,
            interaction.org_choice,
            client.org_optional,
        ) {
            OrgChoice::Chosen(id) => OrgStep::Chosen(Some(id)),
            OrgChoice::Without => OrgStep::Chosen(None),
            OrgChoice::Refused(why) => refused(ErrorCode::AccessDenied, why),
            OrgChoice::InvalidScope(why) => refused(ErrorCode::InvalidScope, why),
            OrgChoice::Ask if checked.prompt.none => refused(
                ErrorCode::InteractionRequired,
                "the user must choose an organization",
            ),
            OrgChoice::Ask => OrgStep::Done(Outcome::PickOrganization {
                reply: reply.clone(),
                client: Arc::clone(client),
                params: params.clone(),
                memberships,
            }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::scope_list;

    fn client() -> Client {
        let mut client = Client::example(&["https://app.example/cb"], false);
        client.scope = scope_list("openid profile org");
        client
    }

    fn params(extra: &[(&str, &str)]) -> Params {
        let mut pairs: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", "c"),
            ("redirect_uri", "https://app.example/cb"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        for (name, value) in extra {
            pairs.retain(|(n, _)| n != name);
            pairs.push((name.to_string(), value.to_string()));
        }
        Params::unique(pairs).expect("unique")
    }

    fn refused(extra: &[(&str, &str)]) -> ErrorCode {
        let resource = match extra.iter().find(|(n, _)| *n == "resource") {
            Some(_) => Resource::Unknown,
            None => Resource::Absent,
        };
        check_request(&params(extra), &client(), resource)
            .expect_err("refused")
            .0
    }

    fn session(auth_time: DateTime<Utc>) -> Session {
        Session {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            email: "a@example.com".into(),
            created_at: auth_time,
            last_seen_at: auth_time,
            auth_time,
            amr: vec!["pwd".into()],
            ip: None,
            user_agent: None,
            idp: None,
        }
    }

    #[test]
    fn prompt_values_combine_by_the_rules() {
        assert!(Prompt::parse(Some("login consent")).is_ok());
        assert!(Prompt::parse(Some("none")).unwrap().none);
        assert!(Prompt::parse(Some("none login")).is_err());
        assert!(Prompt::parse(Some("sideways")).is_err());
        assert!(!Prompt::parse(None).unwrap().login);
    }

    #[test]
    fn a_request_in_order_gets_the_scopes_the_client_may_have() {
        let checked = check_request(
            &params(&[
                ("scope", "profile openid unknown"),
                ("response_mode", "form_post"),
            ]),
            &client(),
            Resource::Absent,
        )
        .expect("in order");
        assert_eq!(checked.scope, ["openid", "profile"]);
        assert_eq!(checked.mode, ResponseMode::FormPost);
        let all = check_request(&params(&[]), &client(), Resource::Absent).expect("in order");
        assert_eq!(
            all.scope,
            ["openid", "org", "profile"],
            "no scope asks for all"
        );
    }

    #[test]
    fn each_parameter_rule_refuses_with_its_code() {
        use ErrorCode as C;
        let cases: &[(&[(&str, &str)], ErrorCode)] = &[
            (&[("response_type", "token")], C::UnsupportedResponseType),
            (&[("response_mode", "fragment")], C::InvalidRequest),
            (&[("request", "eyJ")], C::RequestNotSupported),
            (&[("request_uri", "https://x")], C::RequestUriNotSupported),
            (&[("prompt", "none login")], C::InvalidRequest),
            (&[("max_age", "-1")], C::InvalidRequest),
            (&[("max_age", "soon")], C::InvalidRequest),
            (
                &[("resource", "https://elsewhere.example")],
                C::InvalidTarget,
            ),
            (&[("scope", "unknown")], C::InvalidScope),
            (&[("scope", "open\"id")], C::InvalidScope),
            (&[("code_challenge_method", "plain")], C::InvalidRequest),
        ];
        for (extra, code) in cases {
            assert_eq!(refused(extra), *code, "{extra:?}");
        }
        let long_nonce = "n".repeat(MAX_NONCE + 1);
        assert_eq!(refused(&[("nonce", &long_nonce)]), C::InvalidRequest);
        let mut no_code_flow = client();
        no_code_flow.grant_types = vec![GrantType::ClientCredentials];
        assert_eq!(
            check_request(&params(&[]), &no_code_flow, Resource::Absent)
                .unwrap_err()
                .0,
            C::UnauthorizedClient
        );
    }

    #[test]
    fn a_session_answers_unless_prompt_max_age_or_the_hint_say_otherwise() {
        let now = Utc::now();
        let recent = session(now - chrono::Duration::seconds(30));
        let none = Prompt::parse(Some("none")).unwrap();
        let login = Prompt::parse(Some("login")).unwrap();
        let plain = Prompt::default();
        let verdict =
            |s: Option<&Session>, p, age, hint: Option<&str>| session_verdict(s, p, age, hint, now);
        assert_eq!(
            verdict(Some(&recent), plain, None, None),
            SessionVerdict::Use
        );
        assert_eq!(
            verdict(Some(&recent), plain, Some(60), None),
            SessionVerdict::Use
        );
        assert_eq!(
            verdict(Some(&recent), plain, Some(10), None),
            SessionVerdict::SignIn { fresh: true }
        );
        assert_eq!(
            verdict(Some(&recent), login, None, None),
            SessionVerdict::SignIn { fresh: true }
        );
        let me = recent.user_id.to_string();
        assert_eq!(
            verdict(Some(&recent), plain, None, Some(&me)),
            SessionVerdict::Use
        );
        assert_eq!(
            verdict(Some(&recent), plain, None, Some("someone-else")),
            SessionVerdict::SignIn { fresh: true }
        );
        assert_eq!(
            verdict(None, plain, None, None),
            SessionVerdict::SignIn { fresh: false }
        );
        assert_eq!(
            verdict(None, none, None, None),
            SessionVerdict::LoginRequired
        );
        assert_eq!(
            verdict(Some(&recent), none, Some(10), None),
            SessionVerdict::LoginRequired
        );
    }

    #[test]
    fn consent_is_asked_unless_given_remembered_or_first_party() {
        let plain = Prompt::default();
        let again = Prompt::parse(Some("consent")).unwrap();
        let none = Prompt::parse(Some("none")).unwrap();
        use ConsentVerdict as V;
        assert_eq!(consent_verdict(None, false, false, plain), V::Ask);
        assert_eq!(consent_verdict(None, false, true, plain), V::Granted);
        assert_eq!(consent_verdict(None, false, true, again), V::Ask);
        assert_eq!(consent_verdict(None, true, false, again), V::Granted);
        assert_eq!(consent_verdict(None, false, false, none), V::Required);
        assert_eq!(
            consent_verdict(Some(Decision::Allow), false, false, plain),
            V::Granted
        );
        assert_eq!(
            consent_verdict(Some(Decision::Deny), true, true, plain),
            V::Denied
        );
    }
}
