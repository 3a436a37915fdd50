//! Authorization codes: 256 random bits, kept only in the cache under their SHA-256
//! for 60 seconds, and taken atomically so a code is redeemed at most once even
//! across instances. A second use finds the code spent and revokes every token
//! issued from it (RFC 6749 §4.1.2, RFC 9700 §4.2.4).

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::TokenError;
use super::{SessionContext, digest};
use crate::identity::sessions::random_token;
use crate::store::cache::Cache;

/// OAuth 2.1 §4.1.2: a short lifetime; 60 s covers any honest client.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a redeemed code is remembered, with what it issued, so that a second
/// presentation revokes those tokens: as long as the code could still have been
/// valid. It dies `CODE_TTL` after it was issued, and its redemption came after
/// its issue, so every presentation of a live code falls within `CODE_TTL` of
/// the redemption —
/// node-oidc-provider and Keycloak likewise forget a consumed code when it would
/// have expired. (Twice that, kept before issue 25, doubled what a busy single
/// instance holds in memory for no presentation the code could have survived;
/// a day, once, held ~600 B per code flow.)
pub const REPLAY_WINDOW: Duration = CODE_TTL;

/// The longest code looked up; ours are 43 characters.
const MAX_CODE: usize = 128;

/// Everything the person allowed at `/authorize`, as the code stands for it until
/// the client redeems it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CodeGrant {
    pub user_id: Uuid,
    pub client_id: String,
    /// Sorted, space-separated.
    pub scope: String,
    /// Exactly as the authorization request sent it; the token request must
    /// repeat it (RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// RFC 7636 `S256` challenge.
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// RFC 8707 resource authorized, already checked as one of ours.
    pub resource: Option<String>,
    pub session: SessionContext,
    /// The organization chosen for this grant.
    pub org: Option<Uuid>,
}

/// What a code produced, remembered so a replay can revoke it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedFromCode {
    pub jti: String,
    pub exp: i64,
    pub family: Option<Uuid>,
}

/// Tag of the compact form of [`IssuedFromCode`]; the JSON form starts with `{`
/// and the not-yet-issued marker is `1`. (Tag 1, with a 64-bit `exp`, was
/// stored under the previous key prefix, which this version no longer reads.)
const COMPACT: u8 = 2;

impl IssuedFromCode {
    /// 21 or 37 bytes (tag, `jti`, `exp` as 32-bit seconds, family) where the
    /// JSON took about 100: a busy single instance holds one per code flow of
    /// the replay window, and at these sizes each takes glibc's 32- or 48-byte
    /// chunk (25 and 41 bytes took 48 and 64). A `jti` that is not a UUID in
    /// its lower-case hyphenated form (none of ours), or an `exp` outside
    /// 1970–2106, falls back to JSON, so it always reads back as it was written.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = Uuid::encode_buffer();
        let compact = Uuid::try_parse(&self.jti)
            .ok()
            .filter(|jti| *jti.hyphenated().encode_lower(&mut text) == *self.jti)
            .zip(u32::try_from(self.exp).ok());
        let Some((jti, exp)) = compact else {
            return serde_json::to_vec(self).unwrap_or_default();
        };
        let mut out = Vec::with_capacity(37);
        out.push(COMPACT);
        out.extend_from_slice(jti.as_bytes());
        out.extend_from_slice(&exp.to_be_bytes());
        if let Some(family) = self.family {
            out.extend_from_slice(family.as_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [COMPACT, rest @ ..] if rest.len() == 20 || rest.len() == 36 => {
                let jti = Uuid::from_slice(&rest[..16]).ok()?;
                let exp = u32::from_be_bytes(rest[16..20].try_into().ok()?);
                let family = match &rest[20..] {
                    [] => None,
                    id => Some(Uuid::from_slice(id).ok()?),
                };
                Some(Self {
                    jti: jti.to_string(),
                    exp: i64::from(exp),
                    family,
                })
            }
            json => serde_json::from_slice(json).ok(),
        }
    }
}

/// A code taken from the store: its grant, and its digest, under which what it
/// issues is recorded.
pub struct Redeemed {
    pub grant: CodeGrant,
    pub hash: String,
}

/// Codes over the cache.
#[derive(Clone)]
pub struct CodeStore {
    cache: Cache,
}

fn code_key(hash: &str) -> String {
    format!("oauth-code:{hash}")
}

/// A redeemed code: `1` from its redemption until its tokens are issued, then
/// the tokens it issued ([`IssuedFromCode::encode`]), for revocation on replay.
/// One entry, not a marker and a list: half the memory the in-process cache
/// holds per code flow, and one write fewer per exchange.
///
/// Keyed by 126 bits of the code's digest (21 of its 43 characters), under a
/// short prefix: the key is much of what such an entry costs in process
/// memory, and at 24 bytes it takes glibc's 32-byte chunk (26 took 48); 2^63
/// codes would be needed before two shared one. (The previous version's
/// `ocs:` keys are not read: a code redeemed by it and presented again to this
/// one, within the minute of a deploy, is refused as unknown rather than as
/// replayed — refused either way, its tokens left to expire.)
fn spent_key(hash: &str) -> String {
    format!("oc:{}", hash.get(..21).unwrap_or(hash))
}

/// A revoked access token's `jti`, kept until the token would have expired.
pub fn revoked_jti_key(jti: &str) -> String {
    format!("revoked-jti:{jti}")
}

impl CodeStore {
    pub fn new(cache: Cache) -> Self {
        Self { cache }
    }

    /// Stores `grant` for [`CODE_TTL`] and returns the code that stands for it.
    pub async fn issue(&self, grant: &CodeGrant) -> Result<String, TokenError> {
        let code = random_token().map_err(|e| TokenError::unavailable("code", e))?;
        let stored = serde_json::to_vec(grant).map_err(|e| TokenError::unavailable("code", e))?;
        self.cache
            .put(&code_key(&digest(&code)), &stored, CODE_TTL)
            .await
            .map_err(|e| TokenError::unavailable("cannot store authorization code", e))?;
        Ok(code)
    }

    /// Takes `code` out of the store. A code already taken is a replay: the
    /// tokens it issued (see [`CodeStore::link`]) are revoked, in `db` too.
    pub async fn redeem(
        &self,
        db: &sea_orm::DatabaseConnection,
        code: &str,
    ) -> Result<Redeemed, TokenError> {
        if code.len() > MAX_CODE {
            return Err(TokenError::CodeInvalid);
        }
        let hash = digest(code);
        let unavailable = |e| TokenError::unavailable("cannot read authorization code", e);
        let Some(bytes) = self
            .cache
            .take(&code_key(&hash))
            .await
            .map_err(unavailable)?
        else {
            let spent = self
                .cache
                .get(&spent_key(&hash))
                .await
                .map_err(unavailable)?;
            let Some(spent) = spent else {
                return Err(TokenError::CodeInvalid);
            };
            self.revoke_issued(db, &hash, &spent).await;
            return Err(TokenError::CodeReplayed);
        };
        self.cache
            .put(&spent_key(&hash), b"1", REPLAY_WINDOW)
            .await
            .map_err(unavailable)?;
        // A code stored by another version of this server reads as unknown.
        let grant = serde_json::from_slice(&bytes).map_err(|_| TokenError::CodeInvalid)?;
        Ok(Redeemed { grant, hash })
    }

    /// Records what the code `hash` produced, for revocation if it is replayed.
    pub async fn link(&self, hash: &str, issued: &IssuedFromCode) -> Result<(), TokenError> {
        self.cache
            .put(&spent_key(hash), &issued.encode(), REPLAY_WINDOW)
            .await
            .map_err(|e| TokenError::unavailable("cannot link tokens to their code", e))
    }

    /// `spent` is the code's entry: `1` while its tokens were not issued yet
    /// (nothing to revoke), else what they were.
    async fn revoke_issued(&self, db: &sea_orm::DatabaseConnection, hash: &str, spent: &[u8]) {
        let Some(issued) = IssuedFromCode::decode(spent) else {
            return;
        };
        let now = Utc::now().timestamp();
        let ttl = Duration::from_secs(u64::try_from(issued.exp - now).unwrap_or(0).max(1));
        if let Err(e) = self
            .cache
            .put(&revoked_jti_key(&issued.jti), b"1", ttl)
            .await
        {
            tracing::error!("cannot revoke token {} of a replayed code: {e}", issued.jti);
        }
        if let Some(family) = issued.family
            && let Err(e) = super::refresh::revoke_family(db, family).await
        {
            tracing::error!("cannot revoke refresh family {family} of a replayed code: {e}");
        }
        tracing::warn!(code = %hash, "authorization code replayed: tokens issued from it revoked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> CodeGrant {
        CodeGrant {
            user_id: Uuid::new_v4(),
            client_id: "client".into(),
            scope: "openid".into(),
            redirect_uri: "https://app.example/cb".into(),
            code_challenge: "x".repeat(43),
            nonce: None,
            resource: None,
            session: SessionContext {
                session_id: Uuid::new_v4(),
                auth_time: Utc::now(),
                amr: vec!["pwd".into()],
                idp: None,
            },
            org: None,
        }
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_and_remembered_for_the_replay_window_only() {
        let db = sea_orm::DatabaseConnection::default();
        let cache = Cache::memory();
        let store = CodeStore::new(cache.clone());
        let code = store.issue(&grant()).await.expect("code");
        let redeemed = store.redeem(&db, &code).await.expect("redeemed");
        assert_eq!(redeemed.grant, grant_with(&redeemed.grant));
        let marker = cache
            .memory_expires_in(&spent_key(&redeemed.hash))
            .expect("a spent marker");
        assert!(marker <= REPLAY_WINDOW, "marker kept for {marker:?}");
        assert!(marker > REPLAY_WINDOW - Duration::from_secs(5));

        assert_eq!(
            store.redeem(&db, &code).await.err(),
            Some(TokenError::CodeReplayed)
        );
        assert_eq!(
            store.redeem(&db, "never-issued").await.err(),
            Some(TokenError::CodeInvalid)
        );
        assert_eq!(
            store.redeem(&db, &"a".repeat(MAX_CODE + 1)).await.err(),
            Some(TokenError::CodeInvalid)
        );
    }

    /// The fixture's random parts taken from `redeemed`, the rest as issued.
    fn grant_with(redeemed: &CodeGrant) -> CodeGrant {
        CodeGrant {
            user_id: redeemed.user_id,
            session: redeemed.session.clone(),
            ..grant()
        }
    }

    #[test]
    fn what_a_code_issued_reads_back_from_either_form() {
        let with_family = IssuedFromCode {
            jti: Uuid::now_v7().to_string(),
            exp: 1_800_000_000,
            family: Some(Uuid::new_v4()),
        };
        let without = IssuedFromCode {
            family: None,
            ..with_family.clone()
        };
        let foreign = IssuedFromCode {
            jti: "not-a-uuid".into(),
            ..with_family.clone()
        };
        let upper = IssuedFromCode {
            jti: with_family.jti.to_uppercase(),
            ..with_family.clone()
        };
        let far = IssuedFromCode {
            exp: i64::from(u32::MAX) + 1,
            ..with_family.clone()
        };
        for issued in [&with_family, &without, &foreign, &upper, &far] {
            let back = IssuedFromCode::decode(&issued.encode()).expect("decodes");
            assert_eq!(
                (back.jti.as_str(), back.exp, back.family),
                (issued.jti.as_str(), issued.exp, issued.family)
            );
        }
        assert_eq!(with_family.encode().len(), 37);
        assert_eq!(without.encode().len(), 21);
        assert_eq!(far.encode()[0], b'{');
        assert_eq!(spent_key(&digest("a code")).len(), 24);
        // Written by an earlier version: JSON.
        let json = serde_json::to_vec(&with_family).unwrap();
        assert_eq!(IssuedFromCode::decode(&json).unwrap().jti, with_family.jti);
        assert!(IssuedFromCode::decode(b"1").is_none());
    }
}
