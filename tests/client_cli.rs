//! `tessera client create`: prints the client_id and, once, a secret that works.

mod common;

use std::process::Command;

use common::oauth::{
    REDIRECT, TestClient, authorize_path, decide, exchange, param, pkce, redirect_params,
};
use common::{Browser, PASSWORD};
use sea_orm::EntityTrait;
use serde_json::Value;
use tessera::store::entities::client;

fn tessera(app: &common::TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url);
    cmd.args(args).output().expect("run tessera")
}

#[tokio::test]
async fn a_client_created_on_the_command_line_completes_the_code_flow() {
    let app = common::spawn_app().await;
    let out = tessera(
        &app,
        &[
            "client",
            "create",
            "--name",
            "CLI App",
            "--redirect-uri",
            REDIRECT,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid offline_access",
            "--id-token-alg",
            "ES256",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = printed["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "256 bits");
    assert_eq!(printed["id_token_signed_response_alg"], "ES256");
    assert_eq!(printed["org_optional"], false);
    assert_eq!(printed["token_endpoint_auth_method"], "client_secret_basic");
    let rows = client::Entity::find().all(&app.state.db).await.unwrap();
    assert_ne!(
        rows[0].secret_hash.as_deref(),
        Some(secret.as_str()),
        "only a digest is stored"
    );

    let registered = TestClient {
        id: printed["client_id"].as_str().unwrap().to_owned(),
        secret: Some(secret),
    };
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let (verifier, challenge) = pkce();
    let consent = browser
        .get(&authorize_path(
            &registered.id,
            &challenge,
            &[("scope", "openid offline_access")],
        ))
        .await;
    assert!(consent.body.contains("Allow CLI App?"));
    let code = param(
        &redirect_params(&decide(&browser, &consent, "allow").await),
        "code",
    )
    .unwrap()
    .to_owned();
    let tokens: Value = exchange(&app, &registered, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert!(tokens["refresh_token"].is_string());
    let header = jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(format!("{:?}", header.alg), "ES256");
}

#[tokio::test]
async fn client_create_refuses_bad_metadata_and_public_clients_get_no_secret() {
    let app = common::spawn_app().await;
    let public = tessera(
        &app,
        &[
            "client",
            "create",
            "--name",
            "SPA",
            "--redirect-uri",
            REDIRECT,
            "--public",
            "--org-optional",
            "--json",
        ],
    );
    assert!(public.status.success());
    let printed: Value = serde_json::from_slice(&public.stdout).unwrap();
    assert!(printed["client_secret"].is_null());
    assert_eq!(printed["org_optional"], true);
    assert_eq!(printed["token_endpoint_auth_method"], "none");

    let post = tessera(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Body secret",
            "--redirect-uri",
            REDIRECT,
            "--secret-post",
            "--json",
        ],
    );
    assert!(post.status.success());
    let printed: Value = serde_json::from_slice(&post.stdout).unwrap();
    assert_eq!(printed["token_endpoint_auth_method"], "client_secret_post");
    assert!(printed["client_secret"].is_string());

    for (args, message) in [
        (vec!["--redirect-uri", "http://app.example/cb"], "https"),
        (
            vec!["--redirect-uri", "https://app.example/cb#x"],
            "fragment",
        ),
        (vec![], "at least one redirect URI"),
        (
            vec!["--redirect-uri", REDIRECT, "--grant-type", "password"],
            "unsupported grant type",
        ),
    ] {
        let mut all = vec!["client", "create", "--name", "Bad"];
        all.extend(args);
        let out = tessera(&app, &all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{err}");
    }
}

#[tokio::test]
async fn an_initial_access_token_from_the_command_line_registers_a_client_once() {
    let app = common::spawn_app().await;
    let out = tessera(
        &app,
        &[
            "client",
            "initial-token",
            "create",
            "--expires",
            "1h",
            "--uses",
            "1",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = printed["initial_access_token"].as_str().unwrap();
    assert!(printed["expires_at"].is_string());
    let register = || {
        app.client
            .post(app.url("/register"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "redirect_uris": [REDIRECT] }))
            .send()
    };
    assert_eq!(register().await.unwrap().status(), 201);
    assert_eq!(register().await.unwrap().status(), 401, "one use only");

    let bad = tessera(
        &app,
        &["client", "initial-token", "create", "--expires", "soon"],
    );
    assert!(!bad.status.success());
}
