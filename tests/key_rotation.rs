//! Key rotation: a new key is published at once, signs after the delay, and the old
//! key stays published until every token it signed has expired.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use chrono::Utc;
use tessera::tokens::{Algorithm, keys};

async fn published_kids(app: &common::TestApp) -> Vec<String> {
    let jwks = app.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn signing_kid(app: &common::TestApp) -> String {
    let keys = app.state.keys.keys();
    keys.signing_key(Algorithm::Es256, Utc::now())
        .unwrap()
        .kid
        .clone()
}

#[tokio::test]
async fn rotated_key_is_published_at_once_signs_after_the_delay_and_old_tokens_keep_verifying() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_ACCESS_TOKEN_TTL".into(), "2".into());
        env.insert("TESSERA_ID_TOKEN_TTL".into(), "2".into());
    })
    .await;
    let old_kid = signing_kid(&app);
    let old_token = app
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

    let new_kid = keys::generate(
        &app.state.db,
        &app.keys_dir,
        Algorithm::Es256,
        Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    app.state.keys.refresh().await.unwrap();

    // Before the delay: both published, the old key still signs.
    let kids = published_kids(&app).await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    assert_eq!(signing_kid(&app), old_kid);

    // After it: the new key signs, the old one is still published for old tokens
    // (tokens live 2 s here).
    // The old key moves back an hour first: activation order is what makes the
    // new one its successor, and the old one activated only when the app started,
    // possibly less than 100 ms ago.
    let now = Utc::now();
    common::set_key_activation(&app.state.db, &old_kid, now - chrono::Duration::hours(1)).await;
    let passed = now - chrono::Duration::milliseconds(100);
    common::set_key_activation(&app.state.db, &new_kid, passed).await;
    app.state.keys.refresh().await.unwrap();
    assert_eq!(signing_kid(&app), new_kid);
    assert!(published_kids(&app).await.contains(&old_kid));
    let verified = common::verify_with_published_jwks(&app, &old_token).await;
    assert!(verified.is_ok(), "{verified:?}");

    // Once every token the old key signed has expired, it is withdrawn.
    let now = Utc::now();
    let expired = now - chrono::Duration::milliseconds(2100);
    common::set_key_activation(&app.state.db, &new_kid, expired).await;
    app.state.keys.refresh().await.unwrap();
    assert_eq!(published_kids(&app).await, vec![new_kid]);
}

#[tokio::test]
async fn keys_survive_a_restart_and_a_second_instance_publishes_the_same_keys() {
    let backing = common::Backing::new().await;
    let first = common::spawn_on(&backing, backing.env()).await;
    let second = common::spawn_on(&backing, backing.env()).await;
    let a = first.get_json("/.well-known/jwks.json").await;
    let b = second.get_json("/.well-known/jwks.json").await;
    assert_eq!(a, b);
    assert_eq!(signing_kid(&first), signing_kid(&second));
}

#[tokio::test]
async fn key_files_are_readable_by_the_owner_only() {
    let app = common::spawn_app().await;
    let mut files = 0;
    for entry in std::fs::read_dir(&app.keys_dir).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        files += 1;
    }
    // The ES256 and RS256 signing keys, and the secrets key that seals the
    // upstream providers' client secrets.
    assert_eq!(files, 3);
    let dir_mode = std::fs::metadata(&app.keys_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "keys directory is open to others");
}

#[tokio::test]
async fn a_key_rotated_by_another_instance_is_picked_up_by_the_periodic_refresh() {
    let backing = common::Backing::new().await;
    let mut env = backing.env();
    env.insert("TESSERA_KEY_REFRESH_INTERVAL".into(), "0".into());
    let app = common::spawn_on(&backing, env).await;
    let kid = keys::generate(
        &app.state.db,
        &app.keys_dir,
        Algorithm::Es256,
        Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    // The refresher runs at least every 100 ms; give it a few periods.
    for _ in 0..30 {
        if published_kids(&app).await.contains(&kid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rotated key {kid} was never published");
}
