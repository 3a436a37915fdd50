//! Micro-benchmarks of what the token path costs: ES256 signing and verification
//! by each implementation we could use (josekit over OpenSSL, the pure-Rust `p256`
//! crate), RS256 id_token signing, a whole access token (claims → compact JWS through our key ring), the
//! refresh-token digest, and one argon2id hash at our default cost.
//!
//! `cargo bench --bench tokens`; `docs/PERFORMANCE.md` records the figures and why
//! the hot path signs through OpenSSL (a context per thread for ES256, josekit
//! for the rest).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

const PAYLOAD: &[u8] = br#"{"iss":"https://id.example.com","sub":"01a2049b-a4cb-77a2-89b4-a2a92fb981a9","aud":"https://id.example.com","client_id":"01a204a0-1b2c-7d3e-8f40-5a6b7c8d9e0f","scope":"openid org","iat":1795000000,"exp":1795000300,"jti":"01a204a1-0000-7000-8000-000000000000","org_id":"01a204a2-0000-7000-8000-000000000001","org_slug":"acme","org_role":"admin"}"#;

fn es256(c: &mut Criterion) {
    use josekit::jws::{ES256, JwsHeader};

    let pair = ES256.generate_key_pair().expect("key pair");
    let signer = ES256
        .signer_from_der(pair.to_der_private_key())
        .expect("signer");
    let verifier = ES256
        .verifier_from_der(pair.to_der_public_key())
        .expect("verifier");
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id("bench");
    let token = josekit::jws::serialize_compact(PAYLOAD, &header, &signer).expect("sign");

    let mut group = c.benchmark_group("es256");
    group.bench_function("sign/josekit-openssl", |b| {
        b.iter(|| josekit::jws::serialize_compact(black_box(PAYLOAD), &header, &signer))
    });
    // The path `KeySet::sign` takes for ES256 (issue 25): the signing input
    // framed as a compact JWS around one OpenSSL signature from a context kept
    // per thread. The raw sign rate the benchmark's targets refer to.
    let fast =
        tessera::tokens::es256::Es256Signer::from_pem(&pair.to_pem_private_key()).expect("signer");
    let input = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}",
            b64.encode(br#"{"alg":"ES256","typ":"at+jwt","kid":"bench"}"#),
            b64.encode(PAYLOAD)
        )
    };
    group.bench_function("sign/openssl-context-per-thread", |b| {
        b.iter(|| fast.sign(black_box(input.as_bytes())))
    });
    group.bench_function("verify/josekit-openssl", |b| {
        b.iter(|| josekit::jws::deserialize_compact(black_box(&token), &verifier))
    });

    {
        use p256::ecdsa::signature::{Signer, Verifier};
        use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
        use p256::elliptic_curve::Generate;
        let key = SigningKey::try_generate().expect("p256 key");
        let public = VerifyingKey::from(&key);
        let signature: Signature = key.sign(PAYLOAD);
        group.bench_function("sign/p256", |b| {
            b.iter(|| -> Signature { key.sign(black_box(PAYLOAD)) })
        });
        group.bench_function("verify/p256", |b| {
            b.iter(|| public.verify(black_box(PAYLOAD), &signature))
        });
    }
    group.finish();
}

/// The OIDC default id_token algorithm: one RSA-2048 signature per code exchange
/// and per refresh of a client that did not ask for ES256.
fn rs256(c: &mut Criterion) {
    use josekit::jws::{JwsHeader, RS256};

    let pair = RS256.generate_key_pair(2048).expect("key pair");
    let signer = RS256
        .signer_from_der(pair.to_der_private_key())
        .expect("signer");
    let mut header = JwsHeader::new();
    header.set_key_id("bench");
    c.bench_function("rs256/sign/josekit-openssl", |b| {
        b.iter(|| josekit::jws::serialize_compact(black_box(PAYLOAD), &header, &signer))
    });
}

fn access_token(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let ring = runtime.block_on(async {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("db");
        tessera::store::migrate(&db).await.expect("migrate");
        tessera::tokens::KeyRing::open(
            db,
            dir.path().join("keys"),
            std::time::Duration::from_secs(3600),
        )
        .await
        .expect("keys")
    });
    let keys = ring.keys();
    let now = chrono::Utc::now();
    c.bench_function("access_token/claims_to_compact_jws", |b| {
        b.iter(|| {
            let claims = serde_json::json!({
                "iss": "https://id.example.com",
                "sub": "01a2049b-a4cb-77a2-89b4-a2a92fb981a9",
                "aud": "https://id.example.com",
                "client_id": "01a204a0-1b2c-7d3e-8f40-5a6b7c8d9e0f",
                "scope": "openid org",
                "iat": now.timestamp(),
                "exp": now.timestamp() + 300,
                "jti": uuid::Uuid::now_v7().to_string(),
            });
            let payload = serde_json::to_vec(&claims).expect("claims");
            keys.sign(
                tessera::tokens::Algorithm::Es256,
                "at+jwt",
                black_box(&payload),
                now,
            )
        })
    });
    let token = keys
        .sign(tessera::tokens::Algorithm::Es256, "at+jwt", PAYLOAD, now)
        .expect("token");
    c.bench_function("access_token/verify_through_key_ring", |b| {
        b.iter(|| {
            keys.verify_ignoring_expiry(black_box(&token), "at+jwt", "https://id.example.com", now)
        })
    });
}

fn digests(c: &mut Criterion) {
    let token = "Xk3e9pQ2vW8yZ1aB4cD6eF7gH0iJ2kL5mN8oP1qR3sT";
    c.bench_function("refresh_token/sha256_digest", |b| {
        b.iter(|| tessera::oauth::digest(black_box(token)))
    });
    // The SHA-256 of a JWS signing input (≈ 500 bytes) before it is signed: the
    // one-shot `SHA256()` of OpenSSL 3 looks the algorithm up on every call.
    let input = vec![b'e'; 500];
    let mut group = c.benchmark_group("sha256/500B");
    group.bench_function("openssl-one-shot", |b| {
        b.iter(|| openssl::sha::sha256(black_box(&input)))
    });
    group.bench_function("openssl-low-level", |b| {
        b.iter(|| {
            let mut h = openssl::sha::Sha256::new();
            h.update(black_box(&input));
            h.finish()
        })
    });
    group.bench_function("sha2", |b| {
        b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(black_box(&input)))
    });
    group.finish();
}

fn argon2id(c: &mut Criterion) {
    use argon2::PasswordHasher;
    // The defaults of TESSERA_ARGON2_*: m = 19 MiB, t = 2, p = 1 (OWASP).
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("params");
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("hash/m19MiB_t2_p1", |b| {
        b.iter(|| hasher.hash_password(black_box(b"purple elephants dance")))
    });
    // What the server's hashing threads do: the same hash in memory kept between
    // hashes instead of allocated by each.
    let mut blocks = vec![argon2::Block::new(); hasher.params().block_count()];
    let mut out = [0u8; 32];
    group.bench_function("hash/m19MiB_t2_p1/reused_memory", |b| {
        b.iter(|| {
            hasher.hash_password_into_with_memory(
                black_box(b"purple elephants dance"),
                b"sixteen byte slt",
                &mut out,
                &mut blocks[..],
            )
        })
    });
    group.finish();
}

criterion_group!(benches, es256, rs256, access_token, digests, argon2id);
criterion_main!(benches);
