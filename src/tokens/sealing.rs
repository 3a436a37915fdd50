//! Authenticated encryption (AES-256-GCM through OpenSSL) for what Tessera must
//! read back but must not store in clear: a rotated refresh token's successor
//! (under a key derived from the spent token) and upstream providers' client
//! secrets (under `secrets.key` beside the signing keys, so a database dump
//! alone reveals nothing). Sealed values are base64url of nonce ‖ ciphertext ‖ tag.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

const NONCE: usize = 12;
const TAG: usize = 16;

/// Seals `plain` under `key`, bound to `aad` (what the value is for).
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<String, String> {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let mut tag = [0u8; TAG];
    let sealed = encrypt_aead(
        Cipher::aes_256_gcm(),
        key,
        Some(&nonce),
        aad,
        plain,
        &mut tag,
    )
    .map_err(|e| e.to_string())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out.extend_from_slice(&tag);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal`] sealed under the same key and `aad`; `None` otherwise.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < NONCE + TAG {
        return None;
    }
    let (nonce, rest) = bytes.split_at(NONCE);
    let (data, tag) = rest.split_at(rest.len() - TAG);
    decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), aad, data, tag).ok()
}

/// The key stored secrets are sealed under: `secrets.key` in the keys
/// directory (256 random bits, base64url, mode 0600), made on first use.
/// Blocking file I/O: call it at start-up or off the executor.
pub fn secrets_key(dir: &Path) -> Result<[u8; 32], String> {
    let path = dir.join("secrets.key");
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    if !path.exists() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| fail(&e))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(URL_SAFE_NO_PAD.encode(key).as_bytes())
                    .map_err(|e| fail(&e))?;
                return Ok(key);
            }
            // Another process made it first: read theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(&e)),
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| fail(&e))?;
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| fail(&"not a 256-bit key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_purpose() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"purpose", b"s3cret").unwrap();
        assert_eq!(
            open(&key, b"purpose", &sealed).as_deref(),
            Some(&b"s3cret"[..])
        );
        assert_eq!(open(&[8u8; 32], b"purpose", &sealed), None);
        assert_eq!(open(&key, b"other purpose", &sealed), None);
        assert_eq!(open(&key, b"purpose", "short"), None);
        assert_ne!(
            seal(&key, b"purpose", b"s3cret").unwrap(),
            sealed,
            "fresh nonce"
        );
    }

    #[test]
    fn the_secrets_key_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = secrets_key(dir.path()).unwrap();
        assert_eq!(secrets_key(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
