//! Upstream identity providers as data (issue 23, first step): `tessera
//! provider add|list|show|remove`, the client secret read from standard input
//! and stored sealed under the secrets key beside the signing keys.

mod common;

use sea_orm::EntityTrait;
use tessera::store::entities::identity_provider;

const SECRET: &str = "GOCSPX-very-secret-value";

/// `tessera provider …` against the app's database and keys directory.
fn provider(app: &common::TestApp, args: &[&str], stdin: &str) -> (bool, String, String) {
    let keys = app.keys_dir.display().to_string();
    let args: Vec<&str> = std::iter::once("provider")
        .chain(args.iter().copied())
        .collect();
    common::cli_input(app, &[("TESSERA_KEYS_DIR", &keys)], &args, stdin)
}

const GOOGLE: &[&str] = &[
    "add",
    "--id",
    "google",
    "--name",
    "Google",
    "--issuer",
    "https://accounts.google.com",
    "--client-id",
    "123.apps.googleusercontent.com",
    "--client-secret-stdin",
    "--trust-email",
    "--accepted-audience",
    "456.apps.googleusercontent.com",
    "--json",
];

#[tokio::test]
async fn an_operator_adds_lists_shows_and_removes_providers_and_the_secret_stays_sealed() {
    let app = common::spawn_app().await;
    let (ok, out, err) = provider(&app, GOOGLE, &format!("{SECRET}\n"));
    assert!(ok, "{err}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "never shown"
    );
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(added["id"], "google");
    assert_eq!(added["issuer"], "https://accounts.google.com");
    assert_eq!(added["scope"], "openid email profile");
    assert_eq!(added["trust_email"], true);
    assert_eq!(added["token_auth"], "client_secret_basic");
    assert_eq!(
        added["accepted_audiences"][0],
        "456.apps.googleusercontent.com"
    );

    // A database dump alone does not reveal it…
    let rows = identity_provider::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(!rows[0].client_secret_sealed.contains(SECRET));
    assert!(!format!("{rows:?}").contains(SECRET));
    // …the secrets key beside the signing keys opens it.
    let key = tessera::tokens::sealing::secrets_key(&app.keys_dir).unwrap();
    let opened = tessera::federation::providers::client_secret(&app.state.db, &key, "google")
        .await
        .unwrap();
    assert_eq!(opened, SECRET);
    let other_key = [0u8; 32];
    assert!(
        tessera::federation::providers::client_secret(&app.state.db, &other_key, "google")
            .await
            .is_err()
    );

    let (ok, listed, _) = provider(&app, &["list", "--json"], "");
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (ok, shown, _) = provider(&app, &["show", "--id", "google", "--json"], "");
    assert!(ok && !shown.contains(SECRET));

    let (ok, _, err) = provider(&app, GOOGLE, "another\n");
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, _, _) = provider(&app, &["remove", "--id", "google"], "");
    assert!(ok);
    let (ok, _, err) = provider(&app, &["remove", "--id", "google"], "");
    assert!(!ok && err.contains("no provider"), "{err}");
}

#[tokio::test]
async fn a_malformed_provider_is_refused_with_the_reason() {
    let app = common::spawn_app().await;
    let base = |issuer: &'static str, id: &'static str, scope: &'static str| {
        vec![
            "add",
            "--id",
            id,
            "--name",
            "X",
            "--issuer",
            issuer,
            "--client-id",
            "c",
            "--client-secret-stdin",
            "--scope",
            scope,
        ]
    };
    for (args, why) in [
        (
            base("http://idp.example", "x", "openid"),
            "must be an https URL",
        ),
        (
            base("https://idp.example", "Bad Id", "openid"),
            "provider id",
        ),
        (
            base("https://idp.example", "x", "email"),
            "must include openid",
        ),
    ] {
        let (ok, _, err) = provider(&app, &args, "s3cret\n");
        assert!(!ok && err.contains(why), "{args:?}: {err}");
    }
    let (ok, _, err) = provider(&app, &base("https://idp.example", "x", "openid"), "\n");
    assert!(
        !ok && err.contains("client secret"),
        "an empty secret: {err}"
    );
    let mut auth = base("https://idp.example", "x", "openid");
    auth.extend(["--token-auth", "private_key_jwt"]);
    let (ok, _, err) = provider(&app, &auth, "s3cret\n");
    assert!(!ok && err.contains("client_secret_basic"), "{err}");
}
