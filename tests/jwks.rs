//! RFC 7517 JWK Set: what resource servers fetch to verify Tessera's tokens.

mod common;

use chrono::Utc;
use jsonwebtoken::jwk::{JwkSet, ThumbprintHash};
use serde_json::json;
use tessera::tokens::Algorithm;

#[tokio::test]
async fn jwks_publishes_one_es256_and_one_rs256_key_with_kid_alg_and_use() {
    let app = common::spawn_app().await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 2, "{jwks}");
    let es = keys
        .iter()
        .find(|k| k["alg"] == "ES256")
        .expect("ES256 key");
    assert_eq!(es["kty"], "EC");
    assert_eq!(es["crv"], "P-256");
    assert!(es["x"].is_string() && es["y"].is_string());
    let rs = keys
        .iter()
        .find(|k| k["alg"] == "RS256")
        .expect("RS256 key");
    assert_eq!(rs["kty"], "RSA");
    assert_eq!(rs["e"], "AQAB");
    // RFC 7518 §3.3: at least 2048 bits, i.e. a 256-byte modulus (342 base64url chars).
    assert!(rs["n"].as_str().unwrap().len() >= 342);
    for key in keys {
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].is_string());
    }
}

#[tokio::test]
async fn jwks_never_contains_a_private_parameter() {
    let app = common::spawn_app().await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    for key in jwks["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(key.get(private).is_none(), "{private} published in {key}");
        }
    }
}

#[tokio::test]
async fn kid_is_the_rfc7638_thumbprint_as_an_independent_library_computes_it() {
    let app = common::spawn_app().await;
    let jwks: JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    for jwk in &jwks.keys {
        let kid = jwk.common.key_id.as_deref().expect("kid");
        assert_eq!(kid, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
    }
}

#[tokio::test]
async fn jwks_is_cacheable_and_answers_if_none_match_with_304() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_JWKS_MAX_AGE".into(), "120".into());
    })
    .await;
    let first = app.get("/.well-known/jwks.json").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "public, max-age=120");
    assert_eq!(first.headers()["content-type"], "application/json");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let again = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());

    let stale = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn a_token_signed_by_the_server_verifies_against_the_published_jwk() {
    let app = common::spawn_app().await;
    for alg in Algorithm::ALL {
        let token = app
            .state
            .keys
            .keys()
            .sign(alg, "at+jwt", &common::claims(&app), Utc::now())
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg.as_str());
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let verified = common::verify_with_published_jwks(&app, &token).await;
        assert_eq!(verified.unwrap()["sub"], "user-1", "{alg}");
    }
}

/// ES256 signs through an OpenSSL context each thread keeps and reuses
/// (issue 25): signatures made one after another, on several threads, each
/// verify with an independent library (jsonwebtoken on RustCrypto) and with
/// our own josekit verifier.
#[tokio::test]
async fn reused_signing_contexts_make_signatures_others_verify() {
    let app = common::spawn_app().await;
    let keys = app.state.keys.keys();
    let claims = common::claims(&app);
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    (0..40)
                        .map(|_| {
                            keys.sign(Algorithm::Es256, "at+jwt", &claims, Utc::now())
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(tokens.len(), 120);
    for token in &tokens {
        let verified = common::verify_with_published_jwks(&app, token).await;
        assert_eq!(verified.unwrap()["sub"], "user-1");
        keys.verify(token, "at+jwt", app.state.settings.issuer_str(), Utc::now())
            .expect("josekit verifies it too");
    }
}

/// A token verified once is recognised again without its signature being
/// checked (issue 25) — but only while the key that signed it is published:
/// a key withdrawn from the database takes what it vouched for with it.
#[tokio::test]
async fn a_withdrawn_key_is_not_vouched_for_by_tokens_it_verified_before() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use tessera::store::entities::signing_key;

    let app = common::spawn_app().await;
    let issuer = app.state.settings.issuer_str();
    let token = app
        .state
        .keys
        .keys()
        .sign(
            Algorithm::Es256,
            "at+jwt",
            &common::claims(&app),
            Utc::now(),
        )
        .unwrap();
    for _ in 0..2 {
        let claims = app
            .state
            .keys
            .verify_access_token(&token, issuer, Utc::now())
            .expect("our own token");
        assert_eq!(claims["sub"], "user-1");
    }
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    signing_key::Entity::delete_many()
        .filter(signing_key::Column::Kid.eq(kid))
        .exec(&app.state.db)
        .await
        .unwrap();
    app.state.keys.refresh().await.unwrap();
    assert_eq!(
        app.state
            .keys
            .verify_access_token(&token, issuer, Utc::now())
            .unwrap_err(),
        tessera::tokens::keys::TokenRejection::UnknownKey
    );
}

#[tokio::test]
async fn a_tampered_token_does_not_verify() {
    let app = common::spawn_app().await;
    let token = app
        .state
        .keys
        .keys()
        .sign(
            Algorithm::Es256,
            "at+jwt",
            &common::claims(&app),
            Utc::now(),
        )
        .unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = base64_url(&serde_json::to_vec(&json!({"sub": "admin"})).unwrap());
    parts[1] = &forged_payload;
    let forged = parts.join(".");
    assert!(
        common::verify_with_published_jwks(&app, &forged)
            .await
            .is_err()
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
