//! Access tokens this instance has already verified, recognised again without
//! a signature check.
//!
//! Introspection and userinfo were bounded by ES256 verification (≈ 65 µs, the
//! largest cost of either request), yet an API introspects the same token for
//! every call it serves with it. The exact token string that passed
//! verification passes again — a JWS is immutable — so its claims are kept by
//! that string; what can change is checked on every use by the caller as
//! before: expiry (here), revocation and the account's state (in
//! `oauth::tokens` and introspection). Tokens are recorded when first verified,
//! not when issued: issuing stays free of the write, and a token nobody
//! presents costs no memory.
//!
//! Bounded: past [`CAPACITY`] entries the record starts over (every token then
//! pays one verification again), so memory stays below a few MiB whatever the
//! traffic.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Map, Value};

/// Tokens remembered at most; ≈ 1.5 KiB each (the token and its claims).
pub const CAPACITY: usize = 4096;

type Claims = Arc<Map<String, Value>>;

#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<Box<str>, (i64, Claims)>>,
}

impl VerifiedTokens {
    /// The claims of `token` if it was verified here and has not expired at `now`
    /// (seconds since the epoch).
    pub fn get(&self, token: &str, now: i64) -> Option<Claims> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        match entries.get(token) {
            Some((exp, claims)) if *exp > now => Some(Arc::clone(claims)),
            _ => None,
        }
    }

    /// Records a token whose signature, type and issuer were just verified.
    pub fn insert(&self, token: &str, exp: i64, claims: Claims) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(token.into(), (exp, claims));
    }

    /// Forgets every token (a key that verified some is no longer published).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_recognised_until_it_expires_and_only_as_the_same_string() {
        let record = VerifiedTokens::default();
        let claims = Arc::new(Map::from_iter([("sub".to_owned(), Value::from("a"))]));
        record.insert("h.p.s", 100, claims);
        assert_eq!(record.get("h.p.s", 99).unwrap()["sub"], "a");
        assert!(record.get("h.p.s", 100).is_none(), "expired");
        assert!(record.get("h.p.t", 50).is_none(), "another signature");
    }

    #[test]
    fn the_record_never_grows_past_its_capacity() {
        let record = VerifiedTokens::default();
        for n in 0..CAPACITY + 10 {
            record.insert(&format!("t{n}"), i64::MAX, Arc::new(Map::new()));
        }
        assert!(record.entries.read().unwrap().len() <= CAPACITY);
        assert!(record.get(&format!("t{}", CAPACITY + 9), 0).is_some());
    }
}
