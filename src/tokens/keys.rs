//! The key ring: ES256 keys for access tokens plus one RS256 key, because OIDC Core
//! §15.1 requires every provider to be able to sign id_tokens with RS256.
//!
//! Private keys are PKCS#8 PEM files `{kid}.pem` (mode 0600) in the keys directory;
//! the database holds each key's metadata so every instance agrees on which key
//! signs. A key is published from the moment it exists, signs from `activates_at`
//! until a newer key of its algorithm activates, and stays published for the longest
//! token lifetime after that, so no token it signed ever fails to verify.
//!
//! Keys are generated and used through josekit/OpenSSL, whose ES256 signing is
//! several times faster than the pure-Rust implementation on the token hot path.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::es256::Es256Signer;
use crate::store::entities::signing_key;

/// RSA modulus size for the RS256 key (RFC 7518 §3.3: at least 2048 bits).
const RSA_BITS: u32 = 2048;

/// A JWS algorithm Tessera signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Es256,
    Rs256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Es256, Algorithm::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(Algorithm::Es256),
            "RS256" => Ok(Algorithm::Rs256),
            other => Err(format!("unsupported algorithm `{other}` (ES256 or RS256)")),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys directory {path}: {reason}")]
    Directory { path: PathBuf, reason: String },
    #[error("cannot read key file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("cannot write key file {path}: {reason}")]
    Unwritable { path: PathBuf, reason: String },
    #[error("key file {path} does not match its recorded kid {kid}")]
    Mismatch { path: PathBuf, kid: String },
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("key metadata: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("no {0} key is active")]
    NoActiveKey(Algorithm),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// One loaded key: its metadata, its signer and its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    signer: Signer,
    verifier: Box<dyn JwsVerifier>,
    /// Public members only, already in JWKS form (`kid`, `alg`, `use` included).
    public_jwk: serde_json::Map<String, serde_json::Value>,
    /// `BASE64URL(protected header)` of an access token (`typ: at+jwt`), the
    /// token signed most: made once instead of serialized and encoded per token.
    access_token_header: String,
}

/// RFC 9068 §2.1: the `typ` of a JWT access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `BASE64URL(UTF8(JWS Protected Header))` of RFC 7515 §7.1.
fn encoded_header(alg: Algorithm, typ: &str, kid: &str) -> Result<String, KeyError> {
    let header = serde_json::to_vec(&Header {
        alg: alg.as_str(),
        typ,
        kid,
    })
    .map_err(|e| KeyError::Sign(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(header))
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// ES256 signs through a context kept per thread ([`super::es256`]), the token
/// hot path; RS256 (id_tokens for clients that ask for it) through josekit.
enum Signer {
    Es256(Es256Signer),
    Josekit(Box<dyn JwsSigner>),
}

/// The JOSE header of a token this server signs (RFC 7515 §4.1).
#[derive(serde::Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

/// Where a key is in its life, at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published, not yet signing.
    Pending,
    /// Published and signing.
    Active,
    /// Published so tokens it signed still verify; no longer signing.
    Retiring { published_until: DateTime<Utc> },
    /// No longer published.
    Expired,
}

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyStatus::Pending => f.write_str("pending"),
            KeyStatus::Active => f.write_str("active"),
            KeyStatus::Retiring { published_until } => {
                write!(
                    f,
                    "retiring (published until {})",
                    published_until.to_rfc3339()
                )
            }
            KeyStatus::Expired => f.write_str("expired"),
        }
    }
}

/// Lifecycle rules over key metadata alone, shared by the server and `keys list`.
pub fn key_status(
    activates_at: DateTime<Utc>,
    successor_activates_at: Option<DateTime<Utc>>,
    longest_token_ttl: Duration,
    now: DateTime<Utc>,
) -> KeyStatus {
    if activates_at > now {
        return KeyStatus::Pending;
    }
    match successor_activates_at {
        Some(next) if next <= now => {
            let published_until = next + chrono_duration(longest_token_ttl);
            if published_until > now {
                KeyStatus::Retiring { published_until }
            } else {
                KeyStatus::Expired
            }
        }
        _ => KeyStatus::Active,
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// For each key (by index), the activation time of the next key of its algorithm.
fn successors<'a>(
    keys: impl Iterator<Item = (Algorithm, DateTime<Utc>, &'a str)> + Clone,
) -> Vec<Option<DateTime<Utc>>> {
    keys.clone()
        .map(|(alg, at, kid)| {
            keys.clone()
                .filter(|(a, t, k)| *a == alg && (*t, *k) > (at, kid))
                .map(|(_, t, _)| t)
                .min()
        })
        .collect()
}

/// The published JWK Set, serialized once per refresh.
#[derive(Debug, Clone)]
pub struct JwksDocument {
    /// Shared with every response that sends it (no copy per request).
    pub body: bytes::Bytes,
    /// Strong validator over the body (RFC 9110 §8.8.3), quoted.
    pub etag: bytes::Bytes,
}

/// An immutable view of the ring; requests hold one for their whole duration.
#[derive(Debug)]
pub struct KeySet {
    /// Sorted by (alg, activates_at, kid).
    keys: Vec<Arc<SigningKey>>,
    longest_token_ttl: Duration,
    jwks: JwksDocument,
}

impl KeySet {
    fn new(
        mut keys: Vec<Arc<SigningKey>>,
        longest_token_ttl: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        keys.sort_by(|a, b| (a.alg, a.activates_at, &a.kid).cmp(&(b.alg, b.activates_at, &b.kid)));
        let mut set = Self {
            keys,
            longest_token_ttl,
            jwks: JwksDocument {
                body: bytes::Bytes::new(),
                etag: bytes::Bytes::new(),
            },
        };
        set.jwks = set.render_jwks(now);
        set
    }

    /// Each key with its status at `now`.
    pub fn statuses(&self, now: DateTime<Utc>) -> Vec<(&SigningKey, KeyStatus)> {
        let next = successors(
            self.keys
                .iter()
                .map(|k| (k.alg, k.activates_at, k.kid.as_str())),
        );
        self.keys
            .iter()
            .zip(next)
            .map(|(k, next)| {
                (
                    k.as_ref(),
                    key_status(k.activates_at, next, self.longest_token_ttl, now),
                )
            })
            .collect()
    }

    /// The key that signs for `alg` at `now`: the most recently activated one.
    pub fn signing_key(&self, alg: Algorithm, now: DateTime<Utc>) -> Option<&SigningKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.alg == alg && k.activates_at <= now)
            .map(Arc::as_ref)
    }

    /// Keys a verifier must be able to find at `now`.
    pub fn published(&self, now: DateTime<Utc>) -> impl Iterator<Item = &SigningKey> {
        self.statuses(now)
            .into_iter()
            .filter(|(_, s)| *s != KeyStatus::Expired)
            .map(|(k, _)| k)
    }

    pub fn jwks(&self) -> &JwksDocument {
        &self.jwks
    }

    fn render_jwks(&self, now: DateTime<Utc>) -> JwksDocument {
        let keys: Vec<_> = self.published(now).map(|k| &k.public_jwk).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "keys": keys }))
            .unwrap_or_else(|_| b"{\"keys\":[]}".to_vec());
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
        JwksDocument {
            body: body.into(),
            etag: etag.into(),
        }
    }

    /// Signs `payload` (JSON claims) as a compact JWS with the active key for `alg`,
    /// setting `kid` and the given `typ` (`at+jwt` for access tokens, RFC 9068 §2.1).
    pub fn sign(
        &self,
        alg: Algorithm,
        typ: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        let key = self
            .signing_key(alg, now)
            .ok_or(KeyError::NoActiveKey(alg))?;
        let signer = match &key.signer {
            Signer::Es256(signer) => signer,
            Signer::Josekit(signer) => {
                let mut header = JwsHeader::new();
                header.set_token_type(typ);
                header.set_key_id(&key.kid);
                return josekit::jws::serialize_compact(payload, &header, signer.as_ref())
                    .map_err(|e| KeyError::Sign(e.to_string()));
            }
        };
        // RFC 7515 §7.1: BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature).
        let other;
        let header = if typ == ACCESS_TOKEN_TYP {
            &key.access_token_header
        } else {
            other = encoded_header(key.alg, typ, &key.kid)?;
            &other
        };
        let mut token = String::with_capacity(header.len() + (payload.len() + 64) * 4 / 3 + 4);
        token.push_str(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = signer
            .sign(token.as_bytes())
            .map_err(|e| KeyError::Sign(e.to_string()))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// Why a token presented to us was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was not signed by a key of this server")]
    UnknownKey,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the token was issued by another server")]
    WrongIssuer,
    #[error("the token has expired")]
    Expired,
}

impl KeySet {
    /// Verifies a JWS signed by one of our published keys and returns its claims,
    /// refusing expired tokens.
    pub fn verify(
        &self,
        token: &str,
        typ: &str,
        issuer: &str,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TokenRejection> {
        let claims = self.verify_ignoring_expiry(token, typ, issuer, now)?;
        match claims.get("exp").and_then(serde_json::Value::as_i64) {
            Some(exp) if exp > now.timestamp() => Ok(claims),
            Some(_) => Err(TokenRejection::Expired),
            None => Err(TokenRejection::Malformed),
        }
    }

    /// As [`KeySet::verify`], but an expired token passes: id_token hints are
    /// accepted after they expire (OIDC RP-Initiated Logout §2). The algorithm is
    /// the one our key record says, never the token's own claim, so `alg: none` or
    /// an HMAC keyed with a public key cannot pass.
    pub fn verify_ignoring_expiry(
        &self,
        token: &str,
        typ: &str,
        issuer: &str,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TokenRejection> {
        if token.len() > 8192 || token.split('.').count() != 3 {
            return Err(TokenRejection::Malformed);
        }
        let published: Vec<&SigningKey> = self.published(now).collect();
        let known_key = std::cell::Cell::new(false);
        let verified = josekit::jws::deserialize_compact_with_selector(token, |header| {
            let key = header
                .key_id()
                .and_then(|kid| published.iter().find(|k| k.kid == kid));
            Ok(key.and_then(|k| {
                known_key.set(true);
                (header.algorithm() == Some(k.alg.as_str())).then_some(k.verifier.as_ref())
            }))
        });
        let (payload, header) = match verified {
            Ok(v) => v,
            Err(_) if !known_key.get() => return Err(TokenRejection::UnknownKey),
            Err(_) => return Err(TokenRejection::BadSignature),
        };
        if header.token_type() != Some(typ) {
            return Err(TokenRejection::WrongType);
        }
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&payload).map_err(|_| TokenRejection::Malformed)?;
        if claims.get("iss").and_then(|v| v.as_str()) != Some(issuer) {
            return Err(TokenRejection::WrongIssuer);
        }
        Ok(claims)
    }
}

/// The shared, refreshable ring of signing keys.
pub struct KeyRing {
    db: DatabaseConnection,
    dir: PathBuf,
    longest_token_ttl: Duration,
    current: RwLock<Arc<KeySet>>,
    /// Access tokens verified before, recognised without a signature check.
    verified: super::verified::VerifiedTokens,
}

impl KeyRing {
    /// Loads every key recorded in the database, generating the first ES256 and RS256
    /// keys when none exist. Fails when a recorded key's file cannot be read.
    pub async fn open(
        db: DatabaseConnection,
        dir: PathBuf,
        longest_token_ttl: Duration,
    ) -> Result<Self, KeyError> {
        ensure_dir(&dir).await?;
        for alg in Algorithm::ALL {
            let rows = signing_key::Entity::find().all(&db).await?;
            if !rows.iter().any(|r| r.alg == alg.as_str()) {
                // The very first key has no verifier to warn ahead of time.
                let kid = generate(&db, &dir, alg, Utc::now()).await?;
                tracing::info!(%alg, %kid, "generated the first signing key");
            }
        }
        let ring = Self {
            db,
            dir,
            longest_token_ttl,
            current: RwLock::new(Arc::new(KeySet::new(
                Vec::new(),
                longest_token_ttl,
                Utc::now(),
            ))),
            verified: Default::default(),
        };
        ring.reload(true).await?;
        Ok(ring)
    }

    /// The current view; cheap (one `Arc` clone).
    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// An access token (`typ` `at+jwt`) of this issuer, unexpired at `now`: a
    /// token verified here before is recognised by its exact string
    /// ([`super::verified`]); any other is verified by signature and recorded.
    /// Revocation is the caller's check, on every use.
    pub fn verify_access_token(
        &self,
        token: &str,
        issuer: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<serde_json::Map<String, serde_json::Value>>, TokenRejection> {
        if let Some(claims) = self.verified.get(token, now.timestamp()) {
            return Ok(claims);
        }
        let claims = Arc::new(self.keys().verify(token, ACCESS_TOKEN_TYP, issuer, now)?);
        if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64) {
            self.verified.insert(token, exp, Arc::clone(&claims));
        }
        Ok(claims)
    }

    /// Re-reads key metadata so keys rotated in by any instance or by the CLI are
    /// published, and the JWKS reflects keys whose publication ended.
    pub async fn refresh(&self) -> Result<(), KeyError> {
        self.reload(false).await
    }

    async fn reload(&self, strict: bool) -> Result<(), KeyError> {
        let now = Utc::now();
        let rows = signing_key::Entity::find()
            .order_by_asc(signing_key::Column::ActivatesAt)
            .all(&self.db)
            .await?;
        let current = self.keys();
        let loaded: HashMap<&str, &Arc<SigningKey>> =
            current.keys.iter().map(|k| (k.kid.as_str(), k)).collect();

        let parsed: Vec<(Algorithm, &signing_key::Model)> = rows
            .iter()
            .filter_map(|r| match r.alg.parse::<Algorithm>() {
                Ok(alg) => Some((alg, r)),
                Err(e) => {
                    tracing::warn!(kid = %r.kid, "skipping key: {e}");
                    None
                }
            })
            .collect();
        let next = successors(
            parsed
                .iter()
                .map(|(alg, r)| (*alg, r.activates_at, r.kid.as_str())),
        );

        let mut keys = Vec::with_capacity(parsed.len());
        for ((alg, row), next) in parsed.iter().zip(next) {
            if key_status(row.activates_at, next, self.longest_token_ttl, now) == KeyStatus::Expired
            {
                continue;
            }
            // A key whose activation moved in the database (an operator brought a
            // rotation forward or put it off) is loaded again with the new time.
            if let Some(existing) = loaded
                .get(row.kid.as_str())
                .filter(|k| k.activates_at == row.activates_at)
            {
                keys.push(Arc::clone(existing));
                continue;
            }
            match load(&self.dir, *alg, row).await {
                Ok(key) => keys.push(Arc::new(key)),
                // At start-up a missing key is fatal; later, keep serving with what
                // we have and say so, rather than stop verifiers from working.
                Err(e) if !strict => tracing::error!("{e}"),
                Err(e) => return Err(e),
            }
        }
        // A key no longer published (its time ran out, or an operator withdrew
        // it) vouches for nothing: forget what it verified.
        if loaded
            .keys()
            .any(|kid| !keys.iter().any(|k| k.kid.as_str() == *kid))
        {
            self.verified.clear();
        }
        let set = Arc::new(KeySet::new(keys, self.longest_token_ttl, now));
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
        Ok(())
    }

    /// Refreshes every `interval` until the returned task is dropped.
    pub fn spawn_refresher(self: &Arc<Self>, interval: Duration) -> RefreshTask {
        let ring = Arc::clone(self);
        RefreshTask(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = ring.refresh().await {
                    tracing::warn!("key refresh failed, keeping the previous keys: {e}");
                }
            }
        }))
    }
}

/// The background refresh of a [`KeyRing`]; stops when dropped.
pub struct RefreshTask(tokio::task::JoinHandle<()>);

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let fail = |reason: String| KeyError::Directory {
            path: dir.clone(),
            reason,
        };
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => tighten(&dir, &m).map_err(|e| fail(e.to_string())),
            Ok(_) => Err(fail("exists and is not a directory".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(&dir).map_err(|e| fail(e.to_string()))
            }
            Err(e) => Err(fail(e.to_string())),
        }
    })
    .await
    .map_err(|e| KeyError::Generate(e.to_string()))?
}

/// An existing keys directory others can read or enter is closed to its owner:
/// the private keys inside are each 0600, but a listing or a later file must not
/// leak either.
fn tighten(dir: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            tracing::warn!(
                dir = %dir.display(),
                from = format!("{mode:o}"),
                "keys directory was open to others: tightened to 700"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, meta);
    Ok(())
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

async fn load(
    dir: &Path,
    alg: Algorithm,
    row: &signing_key::Model,
) -> Result<SigningKey, KeyError> {
    let path = key_path(dir, &row.kid);
    let pem = tokio::fs::read(&path)
        .await
        .map_err(|e| KeyError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let material = KeyMaterial::from_pem(alg, &pem).map_err(|reason| KeyError::Unreadable {
        path: path.clone(),
        reason,
    })?;
    if material.kid != row.kid {
        return Err(KeyError::Mismatch {
            path,
            kid: row.kid.clone(),
        });
    }
    Ok(material.into_signing_key(row.created_at, row.activates_at))
}

/// A parsed private key with its derived kid and public JWK.
struct KeyMaterial {
    alg: Algorithm,
    kid: String,
    signer: Signer,
    verifier: Box<dyn JwsVerifier>,
    public_jwk: serde_json::Map<String, serde_json::Value>,
}

impl KeyMaterial {
    fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, String> {
        let err = |e: josekit::JoseError| format!("not a valid {alg} PKCS#8 key ({e})");
        type Pair = (Jwk, Signer, Box<dyn JwsVerifier>);
        let (jwk, signer, verifier): Pair = match alg {
            Algorithm::Es256 => {
                let pair = josekit::jws::ES256.key_pair_from_pem(pem).map_err(err)?;
                let jwk = josekit::jwk::KeyPair::to_jwk_public_key(&pair);
                let verifier = josekit::jws::ES256.verifier_from_jwk(&jwk).map_err(err)?;
                let signer = Es256Signer::from_pem(pem)?;
                (jwk, Signer::Es256(signer), Box::new(verifier))
            }
            Algorithm::Rs256 => {
                let pair = josekit::jws::RS256.key_pair_from_pem(pem).map_err(err)?;
                if pair.key_len() * 8 < RSA_BITS {
                    return Err(format!("RSA key is shorter than {RSA_BITS} bits"));
                }
                let jwk = josekit::jwk::KeyPair::to_jwk_public_key(&pair);
                let verifier = josekit::jws::RS256.verifier_from_jwk(&jwk).map_err(err)?;
                let signer = josekit::jws::RS256.signer_from_pem(pem).map_err(err)?;
                (jwk, Signer::Josekit(Box::new(signer)), Box::new(verifier))
            }
        };
        let members: &[&str] = match alg {
            Algorithm::Es256 => &["crv", "kty", "x", "y"],
            Algorithm::Rs256 => &["e", "kty", "n"],
        };
        let mut public_jwk = serde_json::Map::new();
        for name in members {
            let value = jwk
                .parameter(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("public key lacks `{name}`"))?;
            public_jwk.insert((*name).to_owned(), value.into());
        }
        let kid = thumbprint(&public_jwk);
        public_jwk.insert("kid".into(), kid.clone().into());
        public_jwk.insert("alg".into(), alg.as_str().into());
        public_jwk.insert("use".into(), "sig".into());
        Ok(Self {
            alg,
            kid,
            signer,
            verifier,
            public_jwk,
        })
    }

    fn into_signing_key(
        self,
        created_at: DateTime<Utc>,
        activates_at: DateTime<Utc>,
    ) -> SigningKey {
        SigningKey {
            // Serializing three short strings cannot fail; an empty header would
            // make every access token this key signs unverifiable, never wrong.
            access_token_header: encoded_header(self.alg, ACCESS_TOKEN_TYP, &self.kid)
                .unwrap_or_default(),
            kid: self.kid,
            alg: self.alg,
            created_at,
            activates_at,
            signer: self.signer,
            verifier: self.verifier,
            public_jwk: self.public_jwk,
        }
    }
}

/// RFC 7638 §3: SHA-256 over the required members, in lexicographic order, with no
/// white space. `members` holds exactly those members, so a sorted map serializes
/// to the canonical form (the values are base64url and curve names: nothing to escape
/// differently).
fn thumbprint(members: &serde_json::Map<String, serde_json::Value>) -> String {
    let sorted: std::collections::BTreeMap<_, _> = members.iter().collect();
    let canonical = serde_json::to_vec(&sorted).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
}

/// A new private key as PKCS#8 PEM.
fn generate_pem(alg: Algorithm) -> Result<Vec<u8>, KeyError> {
    match alg {
        Algorithm::Es256 => {
            let pair =
                josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
            Ok(josekit::jwk::KeyPair::to_pem_private_key(&pair))
        }
        Algorithm::Rs256 => {
            let pair = josekit::jwk::alg::rsa::RsaKeyPair::generate(RSA_BITS)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            Ok(josekit::jwk::KeyPair::to_pem_private_key(&pair))
        }
    }
}

/// Rotates: a new `alg` key, published now and signing from `activates_at`
/// (after which the previous key only verifies); recorded in the audit log.
pub async fn rotate(
    db: &DatabaseConnection,
    dir: &Path,
    alg: Algorithm,
    activates_at: DateTime<Utc>,
) -> Result<String, KeyError> {
    let kid = generate(db, dir, alg, activates_at).await?;
    crate::audit::record(
        db,
        crate::audit::Event::new(crate::audit::Kind::KeyRotated)
            .detail("alg", alg.as_str())
            .detail("kid", kid.clone())
            .detail("activates_at", activates_at.to_rfc3339()),
    )
    .await?;
    Ok(kid)
}

/// Creates a key, writes `{kid}.pem` (0600, never overwriting) and records it.
/// Returns its kid. The key is published at once and signs from `activates_at`.
pub async fn generate(
    db: &DatabaseConnection,
    dir: &Path,
    alg: Algorithm,
    activates_at: DateTime<Utc>,
) -> Result<String, KeyError> {
    ensure_dir(dir).await?;
    let dir_owned = dir.to_path_buf();
    // RSA generation and file writes block; keep them off the async workers.
    let kid = tokio::task::spawn_blocking(move || -> Result<String, KeyError> {
        let pem = generate_pem(alg)?;
        let material = KeyMaterial::from_pem(alg, &pem).map_err(KeyError::Generate)?;
        let path = key_path(&dir_owned, &material.kid);
        write_private(&path, &pem).map_err(|e| KeyError::Unwritable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(material.kid)
    })
    .await
    .map_err(|e| KeyError::Generate(e.to_string()))??;

    let now = Utc::now();
    signing_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        kid: Set(kid.clone()),
        alg: Set(alg.as_str().to_owned()),
        created_at: Set(now),
        activates_at: Set(activates_at.max(now)),
    }
    .insert(db)
    .await?;
    Ok(kid)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Key metadata with statuses, for `tessera keys list`.
pub async fn list(
    db: &DatabaseConnection,
    longest_token_ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(signing_key::Model, KeyStatus)>, KeyError> {
    let rows = signing_key::Entity::find()
        .order_by_asc(signing_key::Column::Alg)
        .order_by_asc(signing_key::Column::ActivatesAt)
        .all(db)
        .await?;
    let next = successors(rows.iter().filter_map(|r| {
        Some((
            r.alg.parse::<Algorithm>().ok()?,
            r.activates_at,
            r.kid.as_str(),
        ))
    }));
    // Rows with an unknown alg were skipped above; align by filtering the same way.
    let known: Vec<_> = rows
        .into_iter()
        .filter(|r| r.alg.parse::<Algorithm>().is_ok())
        .collect();
    Ok(known
        .into_iter()
        .zip(next)
        .map(|(row, next)| {
            let status = key_status(row.activates_at, next, longest_token_ttl, now);
            (row, status)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn a_rotated_key_signs_only_after_its_delay_and_the_old_one_stays_published() {
        // Old key active since 0; new key added at 100, activating at 3700.
        let old_next = Some(t(3700));
        assert_eq!(key_status(t(0), old_next, TTL, t(100)), KeyStatus::Active);
        assert_eq!(key_status(t(3700), None, TTL, t(100)), KeyStatus::Pending);
        assert_eq!(
            key_status(t(0), old_next, TTL, t(3700)),
            KeyStatus::Retiring {
                published_until: t(4300)
            }
        );
        assert_eq!(key_status(t(3700), None, TTL, t(3700)), KeyStatus::Active);
        assert_eq!(
            key_status(t(0), old_next, TTL, t(4299)),
            KeyStatus::Retiring {
                published_until: t(4300)
            }
        );
        assert_eq!(key_status(t(0), old_next, TTL, t(4300)), KeyStatus::Expired);
    }

    #[test]
    fn successors_are_per_algorithm() {
        let keys = [
            (Algorithm::Es256, t(0), "a"),
            (Algorithm::Rs256, t(10), "b"),
            (Algorithm::Es256, t(20), "c"),
        ];
        let next = successors(keys.iter().copied());
        assert_eq!(next, vec![Some(t(20)), None, None]);
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let mut members = serde_json::Map::new();
        members.insert("e".into(), "AQAB".into());
        members.insert("kty".into(), "RSA".into());
        members.insert("n".into(), "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into());
        assert_eq!(
            thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_parse_back_with_matching_kid_and_no_private_members() {
        for alg in Algorithm::ALL {
            let pem = generate_pem(alg).unwrap();
            let a = KeyMaterial::from_pem(alg, &pem).unwrap();
            let b = KeyMaterial::from_pem(alg, &pem).unwrap();
            assert_eq!(a.kid, b.kid);
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(!a.public_jwk.contains_key(private), "{alg} leaks {private}");
            }
        }
    }

    #[test]
    fn every_token_names_its_own_type_whether_its_header_was_made_once_or_per_token() {
        // The access token's header is made when the key is loaded, the others
        // per token: both must say what the token is and which key signed it.
        for alg in Algorithm::ALL {
            let pem = generate_pem(alg).unwrap();
            let key = KeyMaterial::from_pem(alg, &pem)
                .unwrap()
                .into_signing_key(t(0), t(0));
            let kid = key.kid.clone();
            let set = KeySet::new(vec![Arc::new(key)], TTL, t(1));
            for typ in [ACCESS_TOKEN_TYP, "JWT", "logout+jwt"] {
                let token = set.sign(alg, typ, br#"{"sub":"a"}"#, t(1)).unwrap();
                let header = token.split('.').next().unwrap();
                let header: serde_json::Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
                assert_eq!(
                    header,
                    serde_json::json!({ "alg": alg.as_str(), "typ": typ, "kid": kid }),
                    "{alg} {typ}"
                );
            }
        }
    }

    #[test]
    fn a_key_of_the_wrong_algorithm_is_refused() {
        let ec = generate_pem(Algorithm::Es256).unwrap();
        assert!(KeyMaterial::from_pem(Algorithm::Rs256, &ec).is_err());
        assert!(KeyMaterial::from_pem(Algorithm::Es256, b"garbage").is_err());
    }
}
