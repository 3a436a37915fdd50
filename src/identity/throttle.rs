//! Every per-account and per-address limit, in one place: sign-in attempts
//! (brute-force defence), sign-ups and client registrations, each counted in a
//! fixed window in the shared cache; past a threshold, the request is refused
//! until the window ends.
//!
//! Every attempt is counted *before* the credential is checked (an atomic
//! increment in the cache), and refused when the count it got is over the limit.
//! Counting after the check let parallel guesses all pass the check before any of
//! them was counted. A successful attempt is taken back, so only failures use up
//! the allowance.

use std::time::Duration;

use crate::store::cache::{Cache, CacheError, WindowCount};

#[derive(Clone)]
pub struct Throttle {
    cache: Cache,
    max_per_account: u64,
    max_per_ip: u64,
    window: Duration,
    max_signups_per_ip: u64,
    max_registrations_per_ip: u64,
}

/// Sign-ups and client registrations are counted per hour.
const HOURLY: Duration = Duration::from_secs(3600);

/// Messages of one kind a person may ask for per hour (verification, reset).
pub const MAILS_PER_HOUR: u64 = 5;

/// Password-reset requests per client address per hour, whatever the address.
pub const RESETS_PER_IP_HOUR: u64 = 30;

/// The limits, as settings give them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub failures_per_account: u32,
    pub failures_per_ip: u32,
    /// The window sign-in failures are counted in.
    pub window: Duration,
    pub signups_per_ip: u32,
    pub registrations_per_ip: u32,
}

fn account_key(email: &str) -> String {
    format!("login-failures:account:{email}")
}

fn ip_key(ip: &str) -> String {
    format!("login-failures:ip:{ip}")
}

/// An attempt already counted; hand it back with [`Throttle::succeeded`]
/// when the credential was right. A failed attempt needs nothing more.
#[must_use = "a successful attempt must be handed back"]
pub struct Attempt {
    account: Option<String>,
    ip: String,
}

/// How a counted attempt came out against the limits.
pub enum Admission {
    /// Within the limits: check the credential.
    Allowed(Attempt),
    /// Over a limit: refuse without checking, and tell the caller how long to wait.
    Refused(Duration),
}

impl Throttle {
    pub fn new(cache: Cache, limits: Limits) -> Self {
        Self {
            cache,
            max_per_account: u64::from(limits.failures_per_account),
            max_per_ip: u64::from(limits.failures_per_ip),
            window: limits.window,
            max_signups_per_ip: u64::from(limits.signups_per_ip),
            max_registrations_per_ip: u64::from(limits.registrations_per_ip),
        }
    }

    /// Counts a dynamic client registration (RFC 7591) from `ip`; `Some(wait)`
    /// when it is over the hourly limit.
    pub async fn registration_attempt(&self, ip: &str) -> Result<Option<Duration>, CacheError> {
        let count = self
            .cache
            .increment(&format!("register-ip:{ip}"), HOURLY)
            .await?;
        Ok(Self::over(count, self.max_registrations_per_ip))
    }

    /// Counts a sign-up attempt (password, or the start of a passkey sign-up)
    /// from `ip`; `Some(wait)` when it is over the hourly limit. Sign-ups are not
    /// taken back: each one, successful or not, tells whether an email is taken.
    pub async fn signup_attempt(&self, ip: &str) -> Result<Option<Duration>, CacheError> {
        let count = self
            .cache
            .increment(&format!("signups:ip:{ip}"), HOURLY)
            .await?;
        Ok(Self::over(count, self.max_signups_per_ip))
    }

    /// Counts a message a person asked to be mailed (`what`: verification,
    /// reset…) to the account or address `to`; `Some(wait)` past
    /// [`MAILS_PER_HOUR`] in the hour. Each asked-for message lands in someone's
    /// inbox, so this bounds what a stranger can make us send to a victim.
    pub async fn mail_attempt(&self, what: &str, to: &str) -> Result<Option<Duration>, CacheError> {
        let count = self
            .cache
            .increment(&format!("mail:{what}:{to}"), HOURLY)
            .await?;
        Ok(Self::over(count, MAILS_PER_HOUR))
    }

    /// Counts a password-reset request for `email` from `ip`: at most
    /// [`MAILS_PER_HOUR`] an hour per address (the same whether or not it has an
    /// account, so the limit tells nothing) and [`RESETS_PER_IP_HOUR`] per client.
    pub async fn reset_attempt(
        &self,
        email: &str,
        ip: &str,
    ) -> Result<Option<Duration>, CacheError> {
        let by_address = self.mail_attempt("reset", email).await?;
        let by_ip = self
            .cache
            .increment(&format!("mail:reset-ip:{ip}"), HOURLY)
            .await?;
        Ok(by_address.max(Self::over(by_ip, RESETS_PER_IP_HOUR)))
    }

    /// `Some(wait)` when the address is already over its limit: for steps that
    /// are not attempts themselves (starting a passkey ceremony).
    pub async fn address_blocked_for(&self, ip: &str) -> Result<Option<Duration>, CacheError> {
        let by_ip = self.cache.peek_count(&ip_key(ip)).await?;
        Ok(by_ip
            .filter(|c| c.count >= self.max_per_ip)
            .map(|c| c.resets_in.max(Duration::from_secs(1))))
    }

    fn over(count: WindowCount, max: u64) -> Option<Duration> {
        (count.count > max).then_some(count.resets_in.max(Duration::from_secs(1)))
    }

    /// Counts a password attempt for `email` from `ip`, then decides.
    pub async fn password_attempt(&self, email: &str, ip: &str) -> Result<Admission, CacheError> {
        let account = self
            .cache
            .increment(&account_key(email), self.window)
            .await?;
        let by_ip = self.cache.increment(&ip_key(ip), self.window).await?;
        let wait =
            Self::over(account, self.max_per_account).max(Self::over(by_ip, self.max_per_ip));
        Ok(match wait {
            Some(wait) => Admission::Refused(wait),
            None => Admission::Allowed(Attempt {
                account: Some(email.to_owned()),
                ip: ip.to_owned(),
            }),
        })
    }

    /// Counts a passkey attempt from `ip` (it shares the address's count with
    /// passwords): a signature cannot be guessed, but each attempt costs a
    /// ceremony and a verification.
    pub async fn address_attempt(&self, ip: &str) -> Result<Admission, CacheError> {
        let by_ip = self.cache.increment(&ip_key(ip), self.window).await?;
        Ok(match Self::over(by_ip, self.max_per_ip) {
            Some(wait) => Admission::Refused(wait),
            None => Admission::Allowed(Attempt {
                account: None,
                ip: ip.to_owned(),
            }),
        })
    }

    /// The attempt does not count against the limits: it succeeded (the account's
    /// count is cleared), or failed for a reason that is not a guess (an expired
    /// ceremony). Only this attempt is taken back from the address, not its
    /// earlier failures: one good password must not reset a spray across many
    /// accounts.
    pub async fn forgive(&self, attempt: Attempt) -> Result<(), CacheError> {
        if let Some(account) = &attempt.account {
            self.cache.remove(&account_key(account)).await?;
        }
        self.cache.decrement(&ip_key(&attempt.ip)).await
    }
}
