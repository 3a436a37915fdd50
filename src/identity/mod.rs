//! Accounts, passwords and browser sessions: the rules, with no HTTP in sight.

pub mod account;
pub mod devices;
pub mod email;
pub mod passkeys;
pub mod password;
pub mod pats;
pub mod sessions;
pub mod throttle;
pub mod users;

/// Why an identity operation was refused; every variant is safe to show the user.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("Enter an email address such as name@example.com.")]
    InvalidEmail,
    #[error("Use at least {min} characters.", min = password::MIN_LENGTH)]
    PasswordTooShort,
    #[error("Use at most {max} characters.", max = password::MAX_LENGTH)]
    PasswordTooLong,
    #[error("This password is too common. Choose one that is harder to guess.")]
    PasswordTooCommon,
    #[error("An account with this email already exists.")]
    EmailTaken,
    #[error("The email or password is incorrect.")]
    BadCredentials,
    #[error("The current password is incorrect.")]
    WrongCurrentPassword,
    #[error("This is already your address.")]
    SameEmail,
    #[error("Enter your current password, or sign in again first.")]
    NeedsFreshSignIn,
    #[error("This account is disabled.")]
    Disabled,
    #[error("No account has this email.")]
    NoSuchUser,
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("cache: {0}")]
    Cache(#[from] crate::store::cache::CacheError),
    #[error("mail: {0}")]
    Mail(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Trims, checks the shape, and lower-cases the whole address: its canonical form,
/// stored and compared everywhere. RFC 5321 §2.4 lets a mailbox owner give the
/// local part's case a meaning, but no mail system in use does, and two accounts
/// that differ only by case would let a look-alike accept someone else's
/// invitation.
pub fn normalize_email(raw: &str) -> Result<String, IdentityError> {
    let trimmed = raw.trim();
    let (local, domain) = trimmed
        .rsplit_once('@')
        .ok_or(IdentityError::InvalidEmail)?;
    let plain = |c: char| {
        !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>' | '"' | ',' | ';' | '\\')
    };
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    let local_ok =
        !local.is_empty() && local.len() <= 64 && !local.contains('@') && local.chars().all(plain);
    if !domain_ok || !local_ok || trimmed.len() > 254 {
        return Err(IdentityError::InvalidEmail);
    }
    Ok(trimmed.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased_whole() {
        assert_eq!(
            normalize_email("  Ada.Lovelace@Example.COM ").unwrap(),
            "ada.lovelace@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@@example.com",
            "a da@example.com",
            "ada@exa mple.com",
            "ada@.example.com",
            "ada@example..com",
            "<ada>@example.com",
            &format!("{}@example.com", "a".repeat(65)),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }
}
