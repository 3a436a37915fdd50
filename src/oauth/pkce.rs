//! RFC 7636 PKCE: required of every client, `S256` only (OAuth 2.1 §4.1.1,
//! RFC 9700 §2.1.1 — `plain` stays off).

use subtle::ConstantTimeEq;

use super::digest;
use super::error::TokenError;

/// RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks an authorization request's challenge; the refusal says what is wrong.
pub fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, &'static str> {
    let Some(challenge) = challenge else {
        return Err("code_challenge is required (PKCE with S256)");
    };
    if method != Some("S256") {
        return Err("code_challenge_method must be S256");
    }
    // S256 challenges are base64url SHA-256 digests: exactly 43 characters.
    if challenge.len() != 43 || !is_pkce_string(challenge) {
        return Err("code_challenge is not a base64url SHA-256 digest");
    }
    Ok(challenge.to_owned())
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(code_verifier)) == code_challenge`.
pub fn verify(challenge: &str, verifier: Option<&str>) -> Result<(), TokenError> {
    let verifier = verifier.ok_or(TokenError::VerifierMissing)?;
    if !is_pkce_string(verifier) {
        return Err(TokenError::VerifierMalformed);
    }
    if bool::from(digest(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(TokenError::VerifierMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_strings_follow_rfc7636() {
        assert!(is_pkce_string(&"a".repeat(43)));
        assert!(is_pkce_string(&"A-._~9".repeat(10)));
        assert!(!is_pkce_string(&"a".repeat(42)));
        assert!(!is_pkce_string(&"a".repeat(129)));
        assert!(!is_pkce_string(&format!("{}+", "a".repeat(43))));
    }

    /// RFC 7636 Appendix B.
    #[test]
    fn the_rfc_example_verifies_and_nothing_else_does() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(
            check_challenge(Some(challenge), Some("S256")).as_deref(),
            Ok(challenge)
        );
        assert_eq!(verify(challenge, Some(verifier)), Ok(()));
        let other = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            verify(challenge, Some(other)),
            Err(TokenError::VerifierMismatch)
        );
        assert_eq!(verify(challenge, None), Err(TokenError::VerifierMissing));
        assert_eq!(
            verify(challenge, Some("short")),
            Err(TokenError::VerifierMalformed)
        );
        assert!(check_challenge(Some(challenge), Some("plain")).is_err());
        assert!(check_challenge(None, Some("S256")).is_err());
        assert!(check_challenge(Some("too-short"), Some("S256")).is_err());
    }
}
