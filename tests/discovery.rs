//! OIDC Discovery 1.0 and RFC 8414 metadata: correct, consistent, and advertising
//! nothing that does not work.

mod common;

#[tokio::test]
async fn both_metadata_documents_are_served_and_identical() {
    let app = common::spawn_app().await;
    let oidc = app.get_json("/.well-known/openid-configuration").await;
    let oauth = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(oidc, oauth);
}

#[tokio::test]
async fn issuer_is_exactly_the_configured_issuer() {
    // OIDC Discovery §4.3 / RFC 8414 §3.3: clients compare it as a string.
    let app = common::spawn_app_with(|env| {
        env.insert(
            "TESSERA_ISSUER".into(),
            "https://id.example.com/tenant/".into(),
        );
    })
    .await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], "https://id.example.com/tenant");
    assert_eq!(
        doc["jwks_uri"],
        "https://id.example.com/tenant/.well-known/jwks.json"
    );
}

#[tokio::test]
async fn required_fields_are_present() {
    let app = common::spawn_app().await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], app.base.as_str());
    assert!(doc["response_types_supported"].is_array());
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    // OIDC Core §15.1: RS256 must be supported for id_tokens.
    let algs = doc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.iter().any(|a| a == "RS256"));
    assert!(algs.iter().any(|a| a == "ES256"));
}

#[tokio::test]
async fn every_advertised_endpoint_answers() {
    let app = common::spawn_app().await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    let mut checked = 0;
    for (name, value) in doc.as_object().unwrap() {
        if !(name.ends_with("_endpoint") || name.ends_with("_uri")) {
            continue;
        }
        let url = value.as_str().unwrap();
        let path = url
            .strip_prefix(&app.base)
            .expect("endpoint under the issuer");
        let status = app.get(path).await.status();
        assert_ne!(status, 404, "{name} = {url} is advertised but missing");
        checked += 1;
    }
    assert!(checked >= 1);
}

#[tokio::test]
async fn discovery_is_cacheable_with_an_etag() {
    let app = common::spawn_app().await;
    let first = app.get("/.well-known/openid-configuration").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        first.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    let again = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .header("if-none-match", format!("W/{etag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}
