//! Short-lived state (authorization codes, WebAuthn challenges, session copies,
//! rate-limit counters, revoked `jti`s) behind one small interface, with a Redis
//! implementation for many instances and an in-process one for a single instance.
//!
//! Both implementations pass the same suite (`tests/cache.rs`). Every operation is
//! atomic on its own: `take` is a get-and-delete, `insert_new` a set-if-absent, and
//! `increment` starts the expiry window only on the first hit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::ConnectionUrl;

/// Bounds every cache round-trip so a stalled Redis turns into an error, not a hang.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for CacheError {
    fn from(e: redis::RedisError) -> Self {
        CacheError::Unavailable(e.to_string())
    }
}

/// A counter inside its window, as returned by [`Cache::increment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: u64,
    /// Time until the window (and the count) expires.
    pub resets_in: Duration,
}

/// The cache, chosen at start from `REDIS_URL`.
#[derive(Clone)]
pub enum Cache {
    Memory(std::sync::Arc<MemoryCache>),
    Redis(RedisCache),
}

impl Cache {
    /// The in-process cache. It takes no prefix: the namespace that keeps
    /// apps apart in a shared Redis means nothing in a map one process owns.
    pub fn memory() -> Self {
        Cache::Memory(std::sync::Arc::new(MemoryCache::new()))
    }

    /// Connects to Redis and checks it answers; fails fast when it does not.
    pub async fn redis(url: &ConnectionUrl, prefix: &str) -> Result<Self, CacheError> {
        Ok(Cache::Redis(RedisCache::connect(url, prefix).await?))
    }

    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        match self {
            Cache::Memory(m) => {
                m.put(key, value, ttl);
                Ok(())
            }
            Cache::Redis(r) => r.put(key, value, ttl).await,
        }
    }

    /// Stores `value` only if `key` is absent; `true` when it was stored.
    pub async fn insert_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.insert_new(key, value, ttl)),
            Cache::Redis(r) => r.insert_new(key, value, ttl).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.get(key)),
            Cache::Redis(r) => r.get(key).await,
        }
    }

    /// Returns and removes the value in one step: of two concurrent callers, at most
    /// one gets it (single-use codes and challenges rely on this).
    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.take(key)),
            Cache::Redis(r) => r.take(key).await,
        }
    }

    /// Removes `key`; `true` when something was removed.
    pub async fn remove(&self, key: &str) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.take(key).is_some()),
            Cache::Redis(r) => r.remove(key).await,
        }
    }

    /// Adds one to a fixed-window counter; the window starts at the first increment.
    pub async fn increment(&self, key: &str, window: Duration) -> Result<WindowCount, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.increment(key, window)),
            Cache::Redis(r) => r.increment(key, window).await,
        }
    }

    /// Takes one back from a counter whose window is open (an attempt counted
    /// ahead that turned out fine); never creates a counter nor goes below zero.
    pub async fn decrement(&self, key: &str) -> Result<(), CacheError> {
        match self {
            Cache::Memory(m) => {
                m.decrement(key);
                Ok(())
            }
            Cache::Redis(r) => r.decrement(key).await,
        }
    }

    /// A counter's current state without counting; `None` when no window is open.
    pub async fn peek_count(&self, key: &str) -> Result<Option<WindowCount>, CacheError> {
        match self {
            Cache::Memory(m) => Ok(m.peek_count(key)),
            Cache::Redis(r) => r.peek_count(key).await,
        }
    }

    /// Checks the cache answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Cache::Memory(_) => Ok(()),
            Cache::Redis(r) => r.ping().await,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Cache::Memory(_) => "memory",
            Cache::Redis(_) => "redis",
        }
    }
}

/// Boxed slices, not `Vec`s: an entry is never grown, and at a few hundred
/// thousand entries (the code-replay window of a busy single instance) the
/// capacity fields alone were megabytes.
struct Entry {
    value: Box<[u8]>,
    expires_at: Instant,
}

/// The in-process cache: a map behind a mutex, swept of expired entries.
pub struct MemoryCache {
    entries: Mutex<Entries>,
    sweep_interval: Duration,
}

struct Entries {
    map: HashMap<Box<str>, Entry>,
    next_sweep: Instant,
    /// Sweep early once the map reaches this size, so a burst of short-lived
    /// entries cannot pile up for a whole interval; doubling keeps sweeps amortized
    /// O(1) per insert.
    sweep_at_len: usize,
}

/// A long-running single instance would otherwise keep every expired entry that
/// is never read again (spent codes, counters of addresses that went away).
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
const MIN_SWEEP_LEN: usize = 1024;

impl MemoryCache {
    fn new() -> Self {
        Self::with_sweep_interval(SWEEP_INTERVAL)
    }

    fn with_sweep_interval(sweep_interval: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                next_sweep: Instant::now() + sweep_interval,
                sweep_at_len: MIN_SWEEP_LEN,
            }),
            sweep_interval,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave an entry half-written, so a
        // poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, entries: &mut Entries, key: &str, value: &[u8], ttl: Duration) {
        let now = Instant::now();
        if now >= entries.next_sweep || entries.map.len() >= entries.sweep_at_len {
            entries.map.retain(|_, e| e.expires_at > now);
            let live = entries.map.len();
            // A HashMap never gives memory back by itself: after a burst, the
            // table would stay at its peak size for the life of the process.
            if entries.map.capacity() > 4 * live.max(MIN_SWEEP_LEN) {
                entries.map.shrink_to(2 * live);
            }
            entries.next_sweep = now + self.sweep_interval;
            entries.sweep_at_len = (2 * live).max(MIN_SWEEP_LEN);
        }
        let entry = Entry {
            value: value.into(),
            expires_at: now + ttl,
        };
        // Overwriting (a redeemed code's record) reuses the stored key rather
        // than allocating a new one.
        match entries.map.get_mut(key) {
            Some(existing) => *existing = entry,
            None => {
                entries.map.insert(key.into(), entry);
            }
        }
    }

    fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        self.insert(&mut self.lock(), key, value, ttl);
    }

    fn insert_new(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        let mut entries = self.lock();
        if entries
            .map
            .get(key)
            .is_some_and(|e| e.expires_at > Instant::now())
        {
            return false;
        }
        self.insert(&mut entries, key, value, ttl);
        true
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .map
            .get(key)
            .filter(|e| e.expires_at > Instant::now())
            .map(|e| e.value.to_vec())
    }

    fn take(&self, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .map
            .remove(key)
            .filter(|e| e.expires_at > Instant::now())
            .map(|e| e.value.into_vec())
    }

    fn peek_count(&self, key: &str) -> Option<WindowCount> {
        let now = Instant::now();
        self.lock()
            .map
            .get(key)
            .filter(|e| e.expires_at > now)
            .map(|e| WindowCount {
                count: decode_count(&e.value),
                resets_in: e.expires_at - now,
            })
    }

    fn decrement(&self, key: &str) {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(entry) = entries.map.get_mut(key).filter(|e| e.expires_at > now) {
            let count = decode_count(&entry.value).saturating_sub(1);
            entry.value = count.to_be_bytes().into();
        }
    }

    fn increment(&self, key: &str, window: Duration) -> WindowCount {
        let now = Instant::now();
        let mut entries = self.lock();
        let live = entries.map.get_mut(key).filter(|e| e.expires_at > now);
        match live {
            Some(entry) => {
                let count = decode_count(&entry.value).saturating_add(1);
                entry.value = count.to_be_bytes().into();
                WindowCount {
                    count,
                    resets_in: entry.expires_at - now,
                }
            }
            None => {
                self.insert(&mut entries, key, &1u64.to_be_bytes(), window);
                WindowCount {
                    count: 1,
                    resets_in: window,
                }
            }
        }
    }
}

fn decode_count(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_be_bytes)
}

/// The Redis cache: one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct RedisCache {
    prefix: String,
    connection: ConnectionManager,
}

fn millis(d: Duration) -> u64 {
    // Redis rejects a zero PX; a sub-millisecond TTL rounds up to one.
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCache {
    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    async fn connect(url: &ConnectionUrl, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url.expose())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = tokio::time::timeout(
            REDIS_TIMEOUT * 3,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| CacheError::Unavailable("timed out connecting".to_owned()))??;
        let cache = Self {
            prefix: prefix.to_owned(),
            connection,
        };
        cache.ping().await?;
        Ok(cache)
    }

    async fn bounded<T>(
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(REDIS_TIMEOUT, fut).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(CacheError::Unavailable("timed out".to_owned())),
        }
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut c = self.connection.clone();
        let opts = redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(millis(ttl)));
        Self::bounded(c.set_options::<_, _, ()>(self.key(key), value, opts)).await
    }

    async fn insert_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let mut c = self.connection.clone();
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(millis(ttl)));
        let stored: Option<String> =
            Self::bounded(c.set_options(self.key(key), value, opts)).await?;
        Ok(stored.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut c = self.connection.clone();
        Self::bounded(c.get(self.key(key))).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut c = self.connection.clone();
        Self::bounded(c.get_del(self.key(key))).await
    }

    async fn remove(&self, key: &str) -> Result<bool, CacheError> {
        let mut c = self.connection.clone();
        let removed: u64 = Self::bounded(c.del(self.key(key))).await?;
        Ok(removed > 0)
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<WindowCount, CacheError> {
        let mut c = self.connection.clone();
        let key = self.key(key);
        // MULTI/EXEC: the count, the window (set only when absent) and the time left
        // are read together, so two instances never start two windows.
        let (count, _, pttl): (u64, i64, i64) = Self::bounded(
            redis::pipe()
                .atomic()
                .incr(&key, 1u64)
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(millis(window))
                .arg("NX")
                .cmd("PTTL")
                .arg(&key)
                .query_async(&mut c),
        )
        .await?;
        let resets_in = u64::try_from(pttl).map_or(window, Duration::from_millis);
        Ok(WindowCount { count, resets_in })
    }

    async fn decrement(&self, key: &str) -> Result<(), CacheError> {
        // One script, so the check and the decrement are one step: a window that
        // closed in between is not reopened without an expiry, and no count goes
        // below zero.
        const SCRIPT: &str = "local n = tonumber(redis.call('GET', KEYS[1]) or '0') \
            if n > 0 then return redis.call('DECR', KEYS[1]) end return 0";
        let mut c = self.connection.clone();
        let _: i64 = Self::bounded(
            redis::cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(self.key(key))
                .query_async(&mut c),
        )
        .await?;
        Ok(())
    }

    async fn peek_count(&self, key: &str) -> Result<Option<WindowCount>, CacheError> {
        let mut c = self.connection.clone();
        let key = self.key(key);
        let (count, pttl): (Option<u64>, i64) = Self::bounded(
            redis::pipe()
                .get(&key)
                .cmd("PTTL")
                .arg(&key)
                .query_async(&mut c),
        )
        .await?;
        Ok(match (count, u64::try_from(pttl)) {
            (Some(count), Ok(ms)) => Some(WindowCount {
                count,
                resets_in: Duration::from_millis(ms),
            }),
            _ => None,
        })
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut c = self.connection.clone();
        let _: String = Self::bounded(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }
}

#[cfg(test)]
impl Cache {
    /// How long `key` has left in the in-process cache, for tests of lifetimes.
    pub(crate) fn memory_expires_in(&self, key: &str) -> Option<Duration> {
        let Cache::Memory(m) = self else {
            return None;
        };
        let now = Instant::now();
        m.lock()
            .map
            .get(key)
            .and_then(|e| e.expires_at.checked_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_swept_and_their_memory_given_back() {
        let cache = MemoryCache::with_sweep_interval(Duration::from_millis(20));
        // Long enough that none expires while the burst is still being written
        // (on a loaded machine a sweep mid-burst used to keep the peak small).
        for i in 0..5000 {
            cache.put(&format!("short-{i}"), b"spent", Duration::from_millis(300));
        }
        let peak_capacity = cache.lock().map.capacity();
        std::thread::sleep(Duration::from_millis(350));
        cache.put("long", b"kept", Duration::from_secs(60));
        let entries = cache.lock();
        assert_eq!(entries.map.len(), 1, "only the live entry is left");
        assert!(
            entries.map.capacity() < peak_capacity / 4,
            "capacity {} after the sweep, {peak_capacity} at the peak",
            entries.map.capacity()
        );
        drop(entries);
        assert_eq!(cache.get("long").as_deref(), Some(&b"kept"[..]));
    }

    #[test]
    fn a_burst_is_swept_before_the_interval_ends() {
        let cache = MemoryCache::with_sweep_interval(Duration::from_secs(3600));
        for i in 0..MIN_SWEEP_LEN {
            cache.put(&format!("short-{i}"), b"x", Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(5));
        for i in 0..10 {
            cache.put(&format!("live-{i}"), b"x", Duration::from_secs(60));
        }
        assert_eq!(cache.lock().map.len(), 10);
    }

    #[test]
    fn live_entries_survive_a_sweep() {
        let cache = MemoryCache::with_sweep_interval(Duration::ZERO);
        cache.put("a", b"1", Duration::from_secs(60));
        assert!(cache.insert_new("b", b"2", Duration::from_secs(60)));
        cache.increment("c", Duration::from_secs(60));
        cache.put("d", b"4", Duration::from_secs(60));
        assert_eq!(cache.get("a").as_deref(), Some(&b"1"[..]));
        assert_eq!(cache.get("b").as_deref(), Some(&b"2"[..]));
        assert_eq!(cache.peek_count("c").map(|c| c.count), Some(1));
        assert_eq!(cache.lock().map.len(), 4);
    }
}
