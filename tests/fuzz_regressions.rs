//! Replays every input kept in `fuzz/regressions/<target>/` through the same door
//! its fuzz target uses (see `fuzz/fuzz_targets/`): inputs a fuzzer once found,
//! or that were chosen by hand as hostile, must keep getting a client error or a
//! success — never a 5xx, a dropped connection or a panic.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use tessera::oauth::clients::{GrantType, NewClient};
use tessera::oauth::registration::{Metadata, validate};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("input");
            (path, bytes)
        })
        .collect()
}

/// The fuzz targets' encoding of raw bytes into a query string.
fn query_from(data: &[u8]) -> String {
    data.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"&=%-._~+".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn registration_inputs_are_refused_or_validated_without_panicking() {
    for (path, data) in inputs("registration") {
        if let Ok(meta) = Metadata::parse(&data) {
            let _ = validate(&meta, false);
            let _ = validate(&meta, true);
        }
        eprintln!("ok: {}", path.display());
    }
}

#[tokio::test]
async fn http_inputs_never_get_a_server_error() {
    let app = common::spawn_app().await;
    let (client, secret) = tessera::store::clients::create(
        &app.state.db,
        NewClient {
            name: "Fuzz".into(),
            redirect_uris: vec!["https://app.example/callback".into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scope: "openid offline_access".into(),
            ..NewClient::default()
        },
    )
    .await
    .expect("client");
    let secret = secret.expect("confidential");
    for (path, data) in inputs("authorize") {
        let url = app.url(&format!(
            "/authorize?client_id={}&{}",
            client.client_id,
            query_from(&data)
        ));
        let status = app
            .client
            .get(url)
            .send()
            .await
            .expect("an answer")
            .status();
        assert!(status.as_u16() < 500, "{}: {status}", path.display());
    }
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", client.client_id));
    for (path, data) in inputs("token") {
        let status = app
            .client
            .post(app.url("/token"))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(data)
            .send()
            .await
            .expect("an answer")
            .status();
        assert!(status.as_u16() < 500, "{}: {status}", path.display());
    }
    let guard = tessera_guard::Guard::discover(tessera_guard::GuardConfig::new(
        app.base.clone(),
        app.base.clone(),
    ))
    .await
    .expect("guard");
    for (path, data) in inputs("guard_verify") {
        let token = String::from_utf8_lossy(&data);
        assert!(
            guard.verify(&token).await.is_err(),
            "{}: a forged token was accepted",
            path.display()
        );
    }
}
