//! Brute-force defence for sign-in: password failures are counted per account and
//! per client IP, passkey failures per client IP, in fixed windows; past a
//! threshold, sign-in is refused until the window ends.

use std::time::Duration;

use crate::store::cache::{Cache, CacheError};

#[derive(Clone)]
pub struct LoginThrottle {
    cache: Cache,
    max_per_account: u64,
    max_per_ip: u64,
    window: Duration,
}

fn account_key(email: &str) -> String {
    format!("login-failures:account:{email}")
}

fn ip_key(ip: &str) -> String {
    format!("login-failures:ip:{ip}")
}

impl LoginThrottle {
    pub fn new(cache: Cache, max_per_account: u32, max_per_ip: u32, window: Duration) -> Self {
        Self {
            cache,
            max_per_account: u64::from(max_per_account),
            max_per_ip: u64::from(max_per_ip),
            window,
        }
    }

    /// `Some(wait)` when this account or IP must wait before trying again.
    pub async fn blocked_for(&self, email: &str, ip: &str) -> Result<Option<Duration>, CacheError> {
        let account = self.cache.peek_count(&account_key(email)).await?;
        let by_ip = self.cache.peek_count(&ip_key(ip)).await?;
        let over = |count: Option<crate::store::cache::WindowCount>, max: u64| {
            count.filter(|c| c.count >= max).map(|c| c.resets_in)
        };
        Ok(over(account, self.max_per_account).max(over(by_ip, self.max_per_ip)))
    }

    pub async fn record_failure(&self, email: &str, ip: &str) -> Result<(), CacheError> {
        self.cache
            .increment(&account_key(email), self.window)
            .await?;
        self.cache.increment(&ip_key(ip), self.window).await?;
        Ok(())
    }

    /// `Some(wait)` when this address has failed too often — with passwords or with
    /// passkeys, which share its count.
    pub async fn address_blocked_for(&self, ip: &str) -> Result<Option<Duration>, CacheError> {
        let by_ip = self.cache.peek_count(&ip_key(ip)).await?;
        Ok(by_ip
            .filter(|c| c.count >= self.max_per_ip)
            .map(|c| c.resets_in))
    }

    /// A failed passkey sign-in: a signature cannot be guessed, but each attempt
    /// costs a ceremony and a verification, so an address that keeps failing waits.
    pub async fn record_address_failure(&self, ip: &str) -> Result<(), CacheError> {
        self.cache.increment(&ip_key(ip), self.window).await?;
        Ok(())
    }

    /// A successful sign-in clears the account's count (not the IP's: one good
    /// password must not reset a spray across many accounts).
    pub async fn record_success(&self, email: &str) -> Result<(), CacheError> {
        self.cache.remove(&account_key(email)).await?;
        Ok(())
    }
}
