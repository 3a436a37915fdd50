//! Validating a provider's id_token (OIDC Core 1.0 §3.1.3.7) before anything
//! is believed of it: the signature with the provider's published key, under
//! an algorithm we chose (RS256 or ES256 — never `none`, never an HMAC keyed
//! with a public key), then issuer, audience, `azp`, expiry, issue time and
//! nonce.

use chrono::{DateTime, Utc};
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::JwsVerifier;
use serde_json::Value;

/// Clock difference tolerated between us and the provider.
const LEEWAY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the id_token is not a signed JWT")]
    Malformed,
    #[error("the id_token is signed with `{0}`; only RS256 and ES256 are accepted")]
    Algorithm(String),
    #[error("the id_token is signed with a key the provider does not publish")]
    UnknownKey,
    #[error("the id_token's signature does not verify")]
    Signature,
    #[error("the id_token was issued by `{0}`, not by this provider")]
    Issuer(String),
    #[error("the id_token is not meant for this client (aud)")]
    Audience,
    #[error("the id_token was issued to another party (azp)")]
    AuthorizedParty,
    #[error("the id_token has expired")]
    Expired,
    #[error("the id_token was issued in the future")]
    NotYetValid,
    #[error("the id_token does not carry the nonce of this sign-in")]
    Nonce,
    #[error("the id_token has no usable subject")]
    Subject,
}

/// What the id_token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    /// Audiences accepted; the token's every audience must be one of them
    /// (§3.1.3.7 item 3: no audience the client does not trust).
    pub audiences: &'a [&'a str],
    /// The nonce sent with the request, for the browser flow; `None` where no
    /// request of ours preceded the token (a native app's token exchange).
    pub nonce: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    /// The provider's `email_verified` (true only when it says so).
    pub email_verified: bool,
    pub name: Option<String>,
    /// RFC 8176 values the provider reports (`amr`), as far as it does.
    pub amr: Vec<String>,
}

/// The algorithms a provider may sign with, and the verifier each takes.
fn verifier(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    match alg {
        "RS256" => josekit::jws::RS256
            .verifier_from_jwk(jwk)
            .ok()
            .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
        "ES256" => josekit::jws::ES256
            .verifier_from_jwk(jwk)
            .ok()
            .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
        _ => None,
    }
}

/// The header's `alg` and `kid`, read before any key is chosen.
pub fn header(token: &str) -> Result<(String, Option<String>), IdTokenError> {
    let header = josekit::jwt::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    let alg = match header.claim("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(IdTokenError::Malformed),
    };
    let kid = match header.claim("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        None => None,
        Some(_) => return Err(IdTokenError::Malformed),
    };
    Ok((alg, kid))
}

/// The verified claims of `token`, signed by one of `keys`.
fn verified_claims(
    token: &str,
    keys: &JwkSet,
) -> Result<serde_json::Map<String, Value>, IdTokenError> {
    let (alg, kid) = header(token)?;
    if alg != "RS256" && alg != "ES256" {
        return Err(IdTokenError::Algorithm(alg));
    }
    let candidates = super::upstream::candidate_keys(keys, kid.as_deref());
    if candidates.is_empty() {
        return Err(IdTokenError::UnknownKey);
    }
    for jwk in candidates {
        // A token without `kid` is tried against each key; josekit would
        // insist on the key's `kid` in the header, so it is set aside.
        let mut jwk = jwk.clone();
        if kid.is_none() {
            let _ = jwk.set_parameter("kid", None);
        }
        let Some(verifier) = verifier(&alg, &jwk) else {
            continue;
        };
        if let Ok((payload, _)) = josekit::jwt::decode_with_verifier(token, verifier.as_ref()) {
            return Ok(payload.claims_set().clone());
        }
    }
    Err(IdTokenError::Signature)
}

fn string<'a>(claims: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// Validates `token` per OIDC Core §3.1.3.7 against `keys` and `expected`.
pub fn validate(
    token: &str,
    keys: &JwkSet,
    expected: &Expected<'_>,
) -> Result<UpstreamIdentity, IdTokenError> {
    let claims = verified_claims(token, keys)?;
    let iss = string(&claims, "iss").unwrap_or_default();
    if iss != expected.issuer {
        return Err(IdTokenError::Issuer(iss.chars().take(200).collect()));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::Audience),
    };
    if audiences.is_empty() || !audiences.iter().all(|a| expected.audiences.contains(a)) {
        return Err(IdTokenError::Audience);
    }
    // §3.1.3.7 items 4-5: with several audiences the party it was issued to
    // must be named, and whoever is named must be one we accept.
    match string(&claims, "azp") {
        Some(azp) if !expected.audiences.contains(&azp) => {
            return Err(IdTokenError::AuthorizedParty);
        }
        None if audiences.len() > 1 => return Err(IdTokenError::AuthorizedParty),
        _ => {}
    }
    let now = expected.now.timestamp();
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(IdTokenError::Expired)?;
    if exp + LEEWAY_SECS <= now {
        return Err(IdTokenError::Expired);
    }
    match claims.get("iat").and_then(Value::as_i64) {
        Some(iat) if iat - LEEWAY_SECS <= now => {}
        Some(_) => return Err(IdTokenError::NotYetValid),
        None => return Err(IdTokenError::Malformed),
    }
    if let Some(nonce) = expected.nonce
        && string(&claims, "nonce") != Some(nonce)
    {
        return Err(IdTokenError::Nonce);
    }
    let subject = string(&claims, "sub").unwrap_or_default();
    if subject.is_empty() || subject.len() > 255 {
        return Err(IdTokenError::Subject);
    }
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        // Some providers send the JSON string; only "true" counts.
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let amr = match claims.get("amr") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .filter(|v| is_amr_value(v))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(UpstreamIdentity {
        subject: subject.to_owned(),
        email: string(&claims, "email")
            .filter(|e| e.len() <= 254)
            .map(str::to_owned),
        email_verified,
        name: string(&claims, "name").map(|n| n.chars().take(200).collect()),
        amr,
    })
}

/// An `amr` value we pass on: a short token of the shape RFC 8176 registers.
fn is_amr_value(v: &str) -> bool {
    !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jwk::alg::rsa::RsaKeyPair;
    use josekit::jws::JwsHeader;
    use josekit::jwt::JwtPayload;

    const ISS: &str = "https://idp.example";
    const CLIENT: &str = "tessera-at-idp";

    struct Provider {
        rsa: RsaKeyPair,
        ec: EcKeyPair,
        keys: JwkSet,
    }

    fn provider() -> Provider {
        let rsa = RsaKeyPair::generate(2048).unwrap();
        let ec = EcKeyPair::generate(EcCurve::P256).unwrap();
        let mut keys = JwkSet::new();
        let mut r = rsa.to_jwk_public_key();
        r.set_key_id("r1");
        r.set_algorithm("RS256");
        keys.push_key(r);
        let mut e = ec.to_jwk_public_key();
        e.set_key_id("e1");
        keys.push_key(e);
        Provider { rsa, ec, keys }
    }

    fn claims(now: i64) -> serde_json::Value {
        serde_json::json!({
            "iss": ISS, "aud": CLIENT, "sub": "u-42", "exp": now + 300, "iat": now,
            "nonce": "n-1", "email": "ada@example.com", "email_verified": true,
            "amr": ["pwd", "mfa", "not a value"],
        })
    }

    fn sign_rs(p: &Provider, kid: Option<&str>, body: &serde_json::Value) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        if let Some(kid) = kid {
            header.set_key_id(kid);
        }
        let payload = JwtPayload::from_map(body.as_object().unwrap().clone()).unwrap();
        let signer = josekit::jws::RS256
            .signer_from_der(p.rsa.to_der_private_key())
            .unwrap();
        josekit::jwt::encode_with_signer(&payload, &header, &signer).unwrap()
    }

    fn sign_es(p: &Provider, body: &serde_json::Value) -> String {
        let mut header = JwsHeader::new();
        header.set_key_id("e1");
        let payload = JwtPayload::from_map(body.as_object().unwrap().clone()).unwrap();
        let signer = josekit::jws::ES256
            .signer_from_der(p.ec.to_der_private_key())
            .unwrap();
        josekit::jwt::encode_with_signer(&payload, &header, &signer).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn check(
        p: &Provider,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<UpstreamIdentity, IdTokenError> {
        validate(
            token,
            &p.keys,
            &Expected {
                issuer: ISS,
                audiences: &[CLIENT],
                nonce: Some("n-1"),
                now,
            },
        )
    }

    #[test]
    fn good_tokens_under_rs256_and_es256_give_the_upstream_identity() {
        let p = provider();
        let now = Utc::now();
        let body = claims(now.timestamp());
        for token in [
            sign_rs(&p, Some("r1"), &body),
            sign_es(&p, &body),
            sign_rs(&p, None, &body),
        ] {
            let who = check(&p, &token, now).unwrap();
            assert_eq!(who.subject, "u-42");
            assert_eq!(who.email.as_deref(), Some("ada@example.com"));
            assert!(who.email_verified);
            assert_eq!(who.amr, ["pwd", "mfa"]);
        }
    }

    #[test]
    fn every_id_token_rule_refuses_its_own_failure() {
        let p = provider();
        let now = Utc::now();
        let t = now.timestamp();
        let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut body = claims(t);
            change(body.as_object_mut().unwrap());
            sign_rs(&p, Some("r1"), &body)
        };
        let good = with(&|_| {});
        let header_json = |alg: &str| b64(format!(r#"{{"alg":"{alg}","kid":"r1"}}"#).as_bytes());
        let payload = b64(claims(t).to_string().as_bytes());
        // `alg: none` with no signature at all.
        let none = format!("{}.{payload}.", header_json("none"));
        // HS256 keyed with the RSA public key's bytes (the classic confusion).
        let public_der = p.rsa.to_der_public_key();
        let hs_signer = josekit::jws::HS256.signer_from_bytes(&public_der).unwrap();
        let mut hs_header = JwsHeader::new();
        hs_header.set_key_id("r1");
        let hs = josekit::jwt::encode_with_signer(
            &JwtPayload::from_map(claims(t).as_object().unwrap().clone()).unwrap(),
            &hs_header,
            &hs_signer,
        )
        .unwrap();
        // A valid signature over a different payload: tampered claims.
        let mut parts: Vec<&str> = good.split('.').collect();
        let other_payload = b64(
            serde_json::json!({"iss": ISS, "aud": CLIENT, "sub": "admin", "exp": t + 300, "iat": t, "nonce": "n-1"})
                .to_string()
                .as_bytes(),
        );
        parts[1] = &other_payload;
        let tampered = parts.join(".");
        // Signed by a key the provider does not publish, under a known kid.
        let stranger = provider();
        let foreign = sign_rs(&stranger, Some("r1"), &claims(t));

        let table: Vec<(&str, String, DateTime<Utc>, IdTokenError)> = vec![
            (
                "wrong iss",
                with(&|c| {
                    c.insert("iss".into(), "https://evil.example".into());
                }),
                now,
                IdTokenError::Issuer("https://evil.example".into()),
            ),
            (
                "wrong aud",
                with(&|c| {
                    c.insert("aud".into(), "someone-else".into());
                }),
                now,
                IdTokenError::Audience,
            ),
            (
                "extra untrusted aud",
                with(&|c| {
                    c.insert("aud".into(), serde_json::json!([CLIENT, "other"]));
                    c.insert("azp".into(), CLIENT.into());
                }),
                now,
                IdTokenError::Audience,
            ),
            (
                "azp of another party",
                with(&|c| {
                    c.insert("azp".into(), "other".into());
                }),
                now,
                IdTokenError::AuthorizedParty,
            ),
            (
                "expired",
                good.clone(),
                now + chrono::Duration::seconds(300 + LEEWAY_SECS),
                IdTokenError::Expired,
            ),
            (
                "issued in the future",
                good.clone(),
                now - chrono::Duration::seconds(LEEWAY_SECS + 5),
                IdTokenError::NotYetValid,
            ),
            (
                "missing nonce",
                with(&|c| {
                    c.remove("nonce");
                }),
                now,
                IdTokenError::Nonce,
            ),
            (
                "another nonce",
                with(&|c| {
                    c.insert("nonce".into(), "n-2".into());
                }),
                now,
                IdTokenError::Nonce,
            ),
            (
                "no sub",
                with(&|c| {
                    c.remove("sub");
                }),
                now,
                IdTokenError::Subject,
            ),
            (
                "alg none",
                none,
                now,
                IdTokenError::Algorithm("none".into()),
            ),
            (
                "HS256 with the public key",
                hs,
                now,
                IdTokenError::Algorithm("HS256".into()),
            ),
            ("tampered payload", tampered, now, IdTokenError::Signature),
            (
                "another key under a known kid",
                foreign,
                now,
                IdTokenError::Signature,
            ),
            (
                "unknown kid",
                sign_rs(&p, Some("r9"), &claims(t)),
                now,
                IdTokenError::UnknownKey,
            ),
            ("not a JWT", "abc".into(), now, IdTokenError::Malformed),
        ];
        for (case, token, at, want) in table {
            assert_eq!(check(&p, &token, at), Err(want), "{case}");
        }
        assert!(check(&p, &good, now).is_ok());
    }

    #[test]
    fn a_native_app_token_is_accepted_for_a_configured_audience_without_a_nonce() {
        let p = provider();
        let now = Utc::now();
        let mut body = claims(now.timestamp());
        body["aud"] = "ios-app".into();
        body.as_object_mut().unwrap().remove("nonce");
        let token = sign_rs(&p, Some("r1"), &body);
        let expected = |audiences: &'static [&'static str]| Expected {
            issuer: ISS,
            audiences,
            nonce: None,
            now,
        };
        assert!(validate(&token, &p.keys, &expected(&[CLIENT, "ios-app"])).is_ok());
        assert_eq!(
            validate(&token, &p.keys, &expected(&[CLIENT])),
            Err(IdTokenError::Audience)
        );
    }
}
