//! What Tessera knows of each upstream provider's server: its discovery
//! document (OIDC Discovery 1.0) and its keys (JWKS), kept in memory.
//!
//! Both are fetched at start and refreshed in the background when their
//! `Cache-Control: max-age` runs out (bounded to 5 min … 24 h), and the keys
//! again when an id_token names a `kid` we do not hold (at most once per
//! [`KEY_REFETCH_EVERY`], so garbage tokens cannot make us hammer the
//! provider). Fetches time out and follow redirects only on the same origin.
//! A provider that cannot be reached is `Unavailable`: its button says so and
//! start-up never waits for it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use josekit::jwk::{Jwk, JwkSet};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use url::Url;

use super::providers::{self, Provider};

/// Connect and whole-request timeout of every call to a provider.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document, JWKS or token response read.
const MAX_BODY: usize = 256 * 1024;
/// Refresh bounds, whatever `Cache-Control` says.
const MIN_FRESH: Duration = Duration::from_secs(5 * 60);
const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);
/// Without `Cache-Control: max-age`.
const DEFAULT_FRESH: Duration = Duration::from_secs(3600);
/// After a failed fetch, the background loop tries again this soon.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// The JWKS is fetched again for an unknown `kid` at most this often.
pub const KEY_REFETCH_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
}

/// The endpoints Tessera uses, from the provider's discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    /// Where claims the id_token leaves out (often `email`) are read.
    pub userinfo_endpoint: Option<Url>,
}

/// A provider's server as last fetched.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub metadata: Metadata,
    pub keys: JwkSet,
}

/// Whether a provider's server can be used, as the login page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not fetched yet (a provider added since start): tried when used.
    Unknown,
    Available,
    /// The last fetch failed; why (for the log and the CLI, not for pages).
    Unavailable(String),
}

struct Entry {
    /// The issuer the discovery was for (a provider re-added with another
    /// issuer under the same id must not reuse it).
    issuer: String,
    discovered: Option<Arc<Discovered>>,
    status: Status,
    refresh_at: Instant,
    keys_fetched_at: Instant,
}

struct Inner {
    http: reqwest::Client,
    db: DatabaseConnection,
    entries: RwLock<HashMap<String, Entry>>,
}

/// The in-memory view of every provider's server; cheap to clone.
#[derive(Clone)]
pub struct Upstreams {
    inner: Arc<Inner>,
}

/// Follows a redirect only within the origin it started from, and at most 3.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > 3 {
            attempt.stop()
        } else if first.as_ref() == Some(&attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The outbound HTTP client for providers: timeouts, same-origin redirects.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(same_origin_redirects())
        .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("provider HTTP client: {e}"))
}

/// How long a response may be used, from its `Cache-Control` (RFC 9111 §5.2.2).
pub fn freshness(cache_control: Option<&str>) -> Duration {
    let Some(value) = cache_control else {
        return DEFAULT_FRESH;
    };
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_FRESH;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            max_age = secs.trim_matches('"').parse::<u64>().ok();
        }
    }
    max_age
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_FRESH)
        .clamp(MIN_FRESH, MAX_FRESH)
}

/// GETs `url` as JSON: its body (at most [`MAX_BODY`]) and freshness.
async fn get_json(http: &reqwest::Client, url: &Url) -> Result<(Vec<u8>, Duration), FetchError> {
    let unreachable = |e: reqwest::Error| FetchError::Unreachable(format!("{url}: {e}"));
    let mut response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(FetchError::Unreachable(format!(
            "{url}: HTTP {}",
            response.status().as_u16()
        )));
    }
    let fresh = freshness(
        response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
    );
    let body = read_limited(&mut response)
        .await
        .map_err(|e| FetchError::Unreachable(format!("{url}: {e}")))?;
    Ok((body, fresh))
}

/// A response body, refused beyond [`MAX_BODY`] bytes.
pub async fn read_limited(response: &mut reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the response is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
}

/// An endpoint of the provider: https, or http when the issuer itself is a
/// loopback http URL (a test or development provider).
fn endpoint(raw: &str, issuer: &Url, name: &str) -> Result<Url, FetchError> {
    let bad = || FetchError::Invalid(format!("{name} `{raw}` is not a usable URL"));
    let url = Url::parse(raw).map_err(|_| bad())?;
    let ok = url.scheme() == "https" || (url.scheme() == "http" && issuer.scheme() == "http");
    if !ok || url.fragment().is_some() || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(url)
}

/// Reads a discovery document for `issuer`: OIDC Discovery §4.3 requires the
/// `issuer` it names to be exactly the one it was fetched for.
pub fn parse_discovery(issuer: &str, body: &[u8]) -> Result<Metadata, FetchError> {
    let doc: DiscoveryDocument = serde_json::from_slice(body)
        .map_err(|e| FetchError::Invalid(format!("the discovery document is not valid: {e}")))?;
    if doc.issuer != issuer {
        return Err(FetchError::Invalid(format!(
            "the discovery document names the issuer `{}`, not `{issuer}`",
            doc.issuer
        )));
    }
    let base = Url::parse(issuer).map_err(|_| FetchError::Invalid("bad issuer".into()))?;
    Ok(Metadata {
        authorization_endpoint: endpoint(
            &doc.authorization_endpoint,
            &base,
            "authorization_endpoint",
        )?,
        token_endpoint: endpoint(&doc.token_endpoint, &base, "token_endpoint")?,
        jwks_uri: endpoint(&doc.jwks_uri, &base, "jwks_uri")?,
        userinfo_endpoint: doc
            .userinfo_endpoint
            .as_deref()
            .map(|u| endpoint(u, &base, "userinfo_endpoint"))
            .transpose()?,
    })
}

fn parse_keys(body: &[u8]) -> Result<JwkSet, FetchError> {
    JwkSet::from_bytes(body).map_err(|e| FetchError::Invalid(format!("the JWKS is not valid: {e}")))
}

/// The discovery URL of an issuer (OIDC Discovery §4: the path is appended).
fn discovery_url(issuer: &str) -> Result<Url, FetchError> {
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|_| FetchError::Invalid(format!("bad issuer `{issuer}`")))
}

impl Upstreams {
    pub fn new(db: DatabaseConnection) -> Result<Self, String> {
        Ok(Self {
            inner: Arc::new(Inner {
                http: http_client()?,
                db,
                entries: RwLock::new(HashMap::new()),
            }),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The status of provider `id` as last seen (`Unknown` before any fetch).
    pub fn status(&self, provider: &Provider) -> Status {
        let entries = self.inner.entries.read().expect("upstreams lock");
        match entries.get(&provider.id) {
            Some(e) if e.issuer == provider.issuer => e.status.clone(),
            _ => Status::Unknown,
        }
    }

    /// Whether the caller should fetch a provider never fetched yet: true
    /// once per provider (a placeholder marks it taken), so a burst of page
    /// views starts one background fetch, not one each.
    pub fn first_fetch(&self, provider: &Provider) -> bool {
        let mut entries = self.inner.entries.write().expect("upstreams lock");
        if entries
            .get(&provider.id)
            .is_some_and(|e| e.issuer == provider.issuer)
        {
            return false;
        }
        let now = Instant::now();
        entries.insert(
            provider.id.clone(),
            Entry {
                issuer: provider.issuer.clone(),
                discovered: None,
                status: Status::Unknown,
                refresh_at: now + RETRY_AFTER_FAILURE,
                keys_fetched_at: now,
            },
        );
        true
    }

    /// Fetches discovery and keys for `provider` now and records the outcome.
    pub async fn fetch(&self, provider: &Provider) -> Result<Arc<Discovered>, FetchError> {
        let outcome: Result<_, FetchError> = async {
            let (body, fresh_doc) =
                get_json(&self.inner.http, &discovery_url(&provider.issuer)?).await?;
            let metadata = parse_discovery(&provider.issuer, &body)?;
            let (body, fresh_keys) = get_json(&self.inner.http, &metadata.jwks_uri).await?;
            let keys = parse_keys(&body)?;
            Ok((
                Arc::new(Discovered { metadata, keys }),
                fresh_doc.min(fresh_keys),
            ))
        }
        .await;
        let now = Instant::now();
        let mut entries = self.inner.entries.write().expect("upstreams lock");
        match outcome {
            Ok((discovered, fresh)) => {
                entries.insert(
                    provider.id.clone(),
                    Entry {
                        issuer: provider.issuer.clone(),
                        discovered: Some(discovered.clone()),
                        status: Status::Available,
                        refresh_at: now + fresh,
                        keys_fetched_at: now,
                    },
                );
                Ok(discovered)
            }
            Err(e) => {
                tracing::warn!(provider = %provider.id, "provider unavailable: {e}");
                let entry = entries.entry(provider.id.clone()).or_insert(Entry {
                    issuer: provider.issuer.clone(),
                    discovered: None,
                    status: Status::Unknown,
                    refresh_at: now,
                    keys_fetched_at: now,
                });
                if entry.issuer != provider.issuer {
                    entry.issuer = provider.issuer.clone();
                    entry.discovered = None;
                }
                entry.status = Status::Unavailable(e.to_string());
                entry.refresh_at = now + RETRY_AFTER_FAILURE;
                Err(e)
            }
        }
    }

    /// Marks a provider unavailable after a failed call to it (its token
    /// endpoint), so the login page says so until a fetch succeeds again.
    pub fn failed(&self, provider: &Provider, why: &str) {
        let mut entries = self.inner.entries.write().expect("upstreams lock");
        if let Some(e) = entries.get_mut(&provider.id) {
            e.status = Status::Unavailable(why.to_owned());
            e.refresh_at = Instant::now() + RETRY_AFTER_FAILURE;
        }
    }

    /// The provider's server for a flow that needs it now: the copy in
    /// memory while fresh, else fetched.
    pub async fn ready(&self, provider: &Provider) -> Result<Arc<Discovered>, FetchError> {
        {
            let entries = self.inner.entries.read().expect("upstreams lock");
            if let Some(e) = entries.get(&provider.id)
                && e.issuer == provider.issuer
                && e.status == Status::Available
                && e.refresh_at > Instant::now()
                && let Some(d) = &e.discovered
            {
                return Ok(d.clone());
            }
        }
        self.fetch(provider).await
    }

    /// The provider's key `kid`: from memory, else (an unknown key may be a
    /// new one after the provider rotated) from a fresh JWKS, at most once per
    /// [`KEY_REFETCH_EVERY`].
    pub async fn keys_for(
        &self,
        provider: &Provider,
        kid: Option<&str>,
    ) -> Result<JwkSet, FetchError> {
        let discovered = self.ready(provider).await?;
        let known = |keys: &JwkSet| match kid {
            Some(kid) => !keys.get(kid).is_empty(),
            None => true,
        };
        if known(&discovered.keys) {
            return Ok(discovered.keys.clone());
        }
        let due = {
            let entries = self.inner.entries.read().expect("upstreams lock");
            entries
                .get(&provider.id)
                .is_none_or(|e| e.keys_fetched_at.elapsed() >= KEY_REFETCH_EVERY)
        };
        if !due {
            return Ok(discovered.keys.clone());
        }
        let (body, _) = get_json(&self.inner.http, &discovered.metadata.jwks_uri).await?;
        let keys = parse_keys(&body)?;
        let mut entries = self.inner.entries.write().expect("upstreams lock");
        if let Some(e) = entries.get_mut(&provider.id) {
            e.keys_fetched_at = Instant::now();
            e.discovered = Some(Arc::new(Discovered {
                metadata: discovered.metadata.clone(),
                keys: keys.clone(),
            }));
        }
        Ok(keys)
    }

    /// Makes the last fetch of `id`'s keys look `by` older, as if time had
    /// passed (tests of the refetch limit move this clock instead of sleeping).
    #[doc(hidden)]
    pub fn backdate_key_fetch(&self, id: &str, by: Duration) {
        let mut entries = self.inner.entries.write().expect("upstreams lock");
        if let Some(e) = entries.get_mut(id)
            && let Some(earlier) = e.keys_fetched_at.checked_sub(by)
        {
            e.keys_fetched_at = earlier;
        }
    }

    /// One pass of the background loop: every provider whose copy is due is
    /// fetched again; providers removed from the database are forgotten.
    pub async fn refresh_due(&self) {
        let providers = match providers::list(&self.inner.db).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot list identity providers: {e}");
                return;
            }
        };
        {
            let mut entries = self.inner.entries.write().expect("upstreams lock");
            entries.retain(|id, _| providers.iter().any(|p| &p.id == id));
        }
        let now = Instant::now();
        for provider in providers {
            let due = {
                let entries = self.inner.entries.read().expect("upstreams lock");
                entries
                    .get(&provider.id)
                    .is_none_or(|e| e.issuer != provider.issuer || e.refresh_at <= now)
            };
            if due {
                let _ = self.fetch(&provider).await;
            } else {
                self.probe(&provider).await;
            }
        }
    }

    /// Between refreshes, whether the provider still answers: its copy stays
    /// in use (it is fresh by its `Cache-Control`), but a provider that went
    /// down is shown unavailable within a pass of the loop rather than when
    /// its copy runs out, and people are not sent to a dead sign-in page.
    async fn probe(&self, provider: &Provider) {
        let Ok(url) = discovery_url(&provider.issuer) else {
            return;
        };
        let answer = self
            .inner
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => self.failed(provider, &format!("HTTP {}", r.status().as_u16())),
            Err(e) => self.failed(provider, &e.to_string()),
        }
    }

    /// Runs [`Self::refresh_due`] now and then every `every` until dropped.
    pub fn spawn_refresher(&self, every: Duration) -> RefreshTask {
        let me = self.clone();
        RefreshTask(tokio::spawn(async move {
            loop {
                me.refresh_due().await;
                tokio::time::sleep(every).await;
            }
        }))
    }
}

/// Any key of the set fits when the token names none; else the named one.
pub fn candidate_keys<'a>(keys: &'a JwkSet, kid: Option<&str>) -> Vec<&'a Jwk> {
    match kid {
        Some(kid) => keys.get(kid),
        None => keys.keys(),
    }
}

/// The background refresh; stops when dropped.
pub struct RefreshTask(tokio::task::JoinHandle<()>);

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_sets_how_long_a_copy_is_used_within_bounds() {
        assert_eq!(freshness(None), DEFAULT_FRESH);
        assert_eq!(
            freshness(Some("public, max-age=21600")),
            Duration::from_secs(21600)
        );
        assert_eq!(freshness(Some("max-age=10")), MIN_FRESH);
        assert_eq!(freshness(Some("max-age=9999999")), MAX_FRESH);
        assert_eq!(freshness(Some("no-cache")), MIN_FRESH);
        assert_eq!(freshness(Some("private")), DEFAULT_FRESH);
    }

    #[test]
    fn a_discovery_document_must_name_the_issuer_it_was_fetched_for() {
        let doc = |issuer: &str, token: &str| {
            serde_json::json!({
                "issuer": issuer,
                "authorization_endpoint": "https://idp.example/auth",
                "token_endpoint": token,
                "jwks_uri": "https://idp.example/jwks",
            })
            .to_string()
        };
        let ok = parse_discovery(
            "https://idp.example",
            doc("https://idp.example", "https://idp.example/token").as_bytes(),
        )
        .unwrap();
        assert_eq!(ok.token_endpoint.as_str(), "https://idp.example/token");
        assert!(matches!(
            parse_discovery(
                "https://idp.example",
                doc("https://evil.example", "https://idp.example/token").as_bytes()
            ),
            Err(FetchError::Invalid(_))
        ));
        // A trailing slash is a different issuer (string comparison).
        assert!(
            parse_discovery(
                "https://idp.example",
                doc("https://idp.example/", "https://idp.example/token").as_bytes()
            )
            .is_err()
        );
        // Plain http endpoints only for an http (loopback) issuer.
        assert!(
            parse_discovery(
                "https://idp.example",
                doc("https://idp.example", "http://idp.example/token").as_bytes()
            )
            .is_err()
        );
        assert!(parse_discovery("https://idp.example", b"{}").is_err());
    }
}
