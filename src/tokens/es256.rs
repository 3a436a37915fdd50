//! ES256 signing through OpenSSL with one signing context per thread.
//!
//! josekit builds a new OpenSSL digest-sign context for every signature, and
//! OpenSSL 3 fetches the algorithm implementations from its provider each time
//! it does (≈ 9 % of a `client_credentials` request's instructions, see
//! docs/PERFORMANCE.md). Here each worker thread keeps one `EVP_PKEY_CTX` per
//! key, initialised for signing once (OpenSSL allows repeated `EVP_PKEY_sign`
//! calls on such a context), and signs the SHA-256 digest of the JWS signing
//! input with it. The cryptography is OpenSSL's; this module only frames its
//! output: the DER `ECDSA-Sig-Value` becomes the fixed 64-byte `R ‖ S` of RFC
//! 7518 §3.4, put in the compact serialization of RFC 7515 §7.1 by
//! [`crate::tokens::keys::KeySet::sign`]. josekit still verifies, and signs
//! RS256. `tests` below and `tests/token_signing.rs` check that josekit and an
//! independent implementation (`jsonwebtoken` on RustCrypto) accept the output.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;

/// A P-256 private key that signs through a per-thread context.
pub struct Es256Signer {
    /// Tells this key's contexts from another key's in the thread's list.
    id: u64,
    key: PKey<Private>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many keys' contexts a thread keeps: the active key and, around a
/// rotation, its successor — a few more cost nothing and bound the list.
const CONTEXTS_PER_THREAD: usize = 4;

thread_local! {
    static CONTEXTS: RefCell<Vec<(u64, PkeyCtx<Private>)>> = const { RefCell::new(Vec::new()) };
}

impl Es256Signer {
    /// From a PKCS#8 PEM private key; anything but a P-256 key is refused.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let key = PKey::private_key_from_pem(pem).map_err(|e| e.to_string())?;
        let curve = key
            .ec_key()
            .map_err(|_| "not an EC key".to_owned())?
            .group()
            .curve_name();
        if curve != Some(Nid::X9_62_PRIME256V1) {
            return Err("not a P-256 key".into());
        }
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            key,
        })
    }

    /// The JWS signature of `signing_input` (`BASE64URL(header) "." BASE64URL(payload)`).
    pub fn sign(&self, signing_input: &[u8]) -> Result<[u8; 64], ErrorStack> {
        // The incremental SHA-256: OpenSSL 3's one-shot `SHA256()` looks the
        // algorithm up on every call (722 ns against 373 ns for 500 bytes,
        // `cargo bench --bench tokens -- sha256`).
        let mut hasher = openssl::sha::Sha256::new();
        hasher.update(signing_input);
        let digest = hasher.finish();
        // A DER ECDSA-Sig-Value for P-256 is at most 72 bytes.
        let mut der = [0u8; 80];
        let len = CONTEXTS.with(|contexts| {
            let mut contexts = contexts.borrow_mut();
            let at = match contexts.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    let mut ctx = PkeyCtx::new(&self.key)?;
                    ctx.sign_init()?;
                    if contexts.len() == CONTEXTS_PER_THREAD {
                        contexts.remove(0);
                    }
                    contexts.push((self.id, ctx));
                    contexts.len() - 1
                }
            };
            contexts[at].1.sign(&digest, Some(&mut der))
        })?;
        let signature = EcdsaSig::from_der(&der[..len])?;
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&signature.r().to_vec_padded(32)?);
        out[32..].copy_from_slice(&signature.s().to_vec_padded(32)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn pem() -> Vec<u8> {
        let pair = josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256)
            .unwrap();
        josekit::jwk::KeyPair::to_pem_private_key(&pair)
    }

    #[test]
    fn josekit_verifies_what_the_context_signs_again_and_again() {
        let pem = pem();
        let signer = Es256Signer::from_pem(&pem).unwrap();
        let pair = josekit::jws::ES256.key_pair_from_pem(&pem).unwrap();
        let jwk = josekit::jwk::KeyPair::to_jwk_public_key(&pair);
        let verifier = josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        // The context is reused: every signature must stand on its own.
        for n in 0..50 {
            let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"n":{n}}}"#));
            let input = format!("{header}.{payload}");
            let signature = signer.sign(input.as_bytes()).unwrap();
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
            let (claims, _) = josekit::jwt::decode_with_verifier(&token, &verifier).unwrap();
            assert_eq!(claims.claim("n"), Some(&serde_json::json!(n)));
        }
    }

    #[test]
    fn a_changed_input_does_not_verify() {
        let pem = pem();
        let signer = Es256Signer::from_pem(&pem).unwrap();
        let pair = josekit::jws::ES256.key_pair_from_pem(&pem).unwrap();
        let verifier = josekit::jws::ES256
            .verifier_from_jwk(&josekit::jwk::KeyPair::to_jwk_public_key(&pair))
            .unwrap();
        let signature = signer.sign(b"a.b").unwrap();
        assert!(josekit::jws::JwsVerifier::verify(&verifier, b"a.c", &signature).is_err());
        assert!(josekit::jws::JwsVerifier::verify(&verifier, b"a.b", &signature).is_ok());
    }

    #[test]
    fn keys_of_other_kinds_are_refused() {
        let rsa = josekit::jws::RS256.generate_key_pair(2048).unwrap();
        assert!(Es256Signer::from_pem(&rsa.to_pem_private_key()).is_err());
        let p384 = josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P384)
            .unwrap();
        assert!(Es256Signer::from_pem(&josekit::jwk::KeyPair::to_pem_private_key(&p384)).is_err());
    }

    #[test]
    fn two_keys_on_one_thread_keep_their_own_contexts() {
        let (a, b) = (pem(), pem());
        let (sa, sb) = (
            Es256Signer::from_pem(&a).unwrap(),
            Es256Signer::from_pem(&b).unwrap(),
        );
        let verifier = |pem: &[u8]| {
            let pair = josekit::jws::ES256.key_pair_from_pem(pem).unwrap();
            josekit::jws::ES256
                .verifier_from_jwk(&josekit::jwk::KeyPair::to_jwk_public_key(&pair))
                .unwrap()
        };
        let (va, vb) = (verifier(&a), verifier(&b));
        for _ in 0..3 {
            let (x, y) = (sa.sign(b"x").unwrap(), sb.sign(b"x").unwrap());
            assert!(josekit::jws::JwsVerifier::verify(&va, b"x", &x).is_ok());
            assert!(josekit::jws::JwsVerifier::verify(&vb, b"x", &y).is_ok());
            assert!(josekit::jws::JwsVerifier::verify(&va, b"x", &y).is_err());
        }
    }
}
