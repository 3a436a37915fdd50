//! One suite, two implementations: the in-process cache and Redis must behave the
//! same, since the rest of the server cannot tell which one it has.
//! The Redis half runs when `TESSERA_TEST_REDIS_URL` is set (CI sets it).

mod common;

use std::time::Duration;

use tessera::config::{CliOverrides, Settings, Sources};
use tessera::store::cache::Cache;

async fn redis_cache(prefix: &str) -> Option<Cache> {
    let url = std::env::var("TESSERA_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let settings = Settings::from_sources(Sources {
        config_file: None,
        env: [("REDIS_URL".to_owned(), url)].into(),
        cli: CliOverrides::default(),
    })
    .unwrap();
    let url = settings.redis_url.unwrap();
    Some(Cache::redis(&url, prefix).await.expect("Redis reachable"))
}

macro_rules! cache_suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let prefix = super::common::unique_prefix();
                    super::$name(tessera::store::cache::Cache::memory(), &prefix).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let prefix = super::common::unique_prefix();
                    match super::redis_cache(&prefix).await {
                        Some(cache) => {
                            assert_eq!(cache.kind(), "redis");
                            super::$name(cache, &prefix).await
                        }
                        None => super::common::skip("TESSERA_TEST_REDIS_URL is not set"),
                    }
                }
            )*
        }
    };
}

cache_suite!(
    put_then_get_returns_the_value,
    values_expire_after_their_ttl,
    put_replaces_the_value,
    take_returns_the_value_exactly_once,
    concurrent_takes_have_exactly_one_winner,
    insert_new_refuses_a_live_key_and_accepts_an_expired_one,
    concurrent_insert_new_has_exactly_one_winner,
    remove_reports_whether_something_was_removed,
    increment_counts_within_a_window_and_restarts_after_it,
    peek_count_reads_a_counter_without_counting,
    decrement_takes_one_back_and_never_creates_a_counter,
    binary_values_round_trip,
    prefixes_keep_deployments_apart,
    ping_answers,
);

const LONG: Duration = Duration::from_secs(60);

async fn put_then_get_returns_the_value(cache: Cache, _: &str) {
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.put("k", b"v", LONG).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    // get does not consume
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

async fn values_expire_after_their_ttl(cache: Cache, _: &str) {
    cache
        .put("short", b"v", Duration::from_millis(150))
        .await
        .unwrap();
    assert!(cache.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get("short").await.unwrap(), None);
    assert_eq!(cache.take("short").await.unwrap(), None);
}

async fn put_replaces_the_value(cache: Cache, _: &str) {
    cache.put("k", b"one", LONG).await.unwrap();
    cache.put("k", b"two", LONG).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"two"[..]));
}

async fn take_returns_the_value_exactly_once(cache: Cache, _: &str) {
    cache.put("code", b"grant", LONG).await.unwrap();
    assert_eq!(
        cache.take("code").await.unwrap().as_deref(),
        Some(&b"grant"[..])
    );
    assert_eq!(cache.take("code").await.unwrap(), None);
    assert_eq!(cache.get("code").await.unwrap(), None);
}

async fn concurrent_takes_have_exactly_one_winner(cache: Cache, _: &str) {
    cache.put("code", b"grant", LONG).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.take("code").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn insert_new_refuses_a_live_key_and_accepts_an_expired_one(cache: Cache, _: &str) {
    assert!(
        cache
            .insert_new("nonce", b"a", Duration::from_millis(150))
            .await
            .unwrap()
    );
    assert!(!cache.insert_new("nonce", b"b", LONG).await.unwrap());
    assert_eq!(
        cache.get("nonce").await.unwrap().as_deref(),
        Some(&b"a"[..])
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cache.insert_new("nonce", b"c", LONG).await.unwrap());
    assert_eq!(
        cache.get("nonce").await.unwrap().as_deref(),
        Some(&b"c"[..])
    );
}

async fn concurrent_insert_new_has_exactly_one_winner(cache: Cache, _: &str) {
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.insert_new("jti", &[i], LONG).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn remove_reports_whether_something_was_removed(cache: Cache, _: &str) {
    cache.put("session", b"s", LONG).await.unwrap();
    assert!(cache.remove("session").await.unwrap());
    assert!(!cache.remove("session").await.unwrap());
    assert_eq!(cache.get("session").await.unwrap(), None);
}

async fn increment_counts_within_a_window_and_restarts_after_it(cache: Cache, _: &str) {
    let window = Duration::from_millis(400);
    let first = cache.increment("login:ip", window).await.unwrap();
    assert_eq!(first.count, 1);
    assert!(first.resets_in <= window && first.resets_in > Duration::ZERO);
    let second = cache.increment("login:ip", window).await.unwrap();
    assert_eq!(second.count, 2);
    // The window does not slide with each hit.
    assert!(second.resets_in <= first.resets_in);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let fresh = cache.increment("login:ip", window).await.unwrap();
    assert_eq!(fresh.count, 1);
}

async fn peek_count_reads_a_counter_without_counting(cache: Cache, _: &str) {
    assert_eq!(cache.peek_count("fails").await.unwrap(), None);
    cache.increment("fails", LONG).await.unwrap();
    cache.increment("fails", LONG).await.unwrap();
    let peeked = cache.peek_count("fails").await.unwrap().unwrap();
    assert_eq!(peeked.count, 2);
    assert!(peeked.resets_in > Duration::from_secs(50) && peeked.resets_in <= LONG);
    assert_eq!(cache.peek_count("fails").await.unwrap().unwrap().count, 2);
}

async fn decrement_takes_one_back_and_never_creates_a_counter(cache: Cache, _: &str) {
    cache.decrement("attempts").await.unwrap();
    assert_eq!(cache.peek_count("attempts").await.unwrap(), None);
    cache.increment("attempts", LONG).await.unwrap();
    cache.increment("attempts", LONG).await.unwrap();
    cache.decrement("attempts").await.unwrap();
    let peeked = cache.peek_count("attempts").await.unwrap().unwrap();
    assert_eq!(peeked.count, 1);
    // The window keeps its end.
    assert!(peeked.resets_in > Duration::from_secs(50));
    cache.decrement("attempts").await.unwrap();
    cache.decrement("attempts").await.unwrap();
    assert_eq!(
        cache.peek_count("attempts").await.unwrap().unwrap().count,
        0
    );
    assert_eq!(cache.increment("attempts", LONG).await.unwrap().count, 1);
}

async fn binary_values_round_trip(cache: Cache, _: &str) {
    let bytes: Vec<u8> = (0..=255).collect();
    cache.put("bin", &bytes, LONG).await.unwrap();
    assert_eq!(cache.take("bin").await.unwrap(), Some(bytes));
}

async fn prefixes_keep_deployments_apart(cache: Cache, prefix: &str) {
    let other_prefix = format!("{prefix}other:");
    let other = match &cache {
        Cache::Memory(_) => return, // separate processes never share memory anyway
        Cache::Redis(_) => redis_cache(&other_prefix).await.unwrap(),
    };
    cache.put("k", b"mine", LONG).await.unwrap();
    assert_eq!(other.get("k").await.unwrap(), None);
}

async fn ping_answers(cache: Cache, _: &str) {
    cache.ping().await.unwrap();
}
