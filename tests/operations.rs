//! Health, readiness, metrics, request ids and security headers.

mod common;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = common::spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn readyz_is_ready_when_database_and_cache_answer() {
    let app = common::spawn_app().await;
    let body = app.get_json("/readyz").await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["cache"], "ok");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = common::spawn_app().await;
    app.state.db.close_by_ref().await.unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "unavailable");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_wellformed_one_is_echoed() {
    let app = common::spawn_app().await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "caller-42.abc")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "caller-42.abc");

    let hostile = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "evil value; with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(hostile.headers()["x-request-id"], "evil value; with spaces");
}

#[tokio::test]
async fn security_headers_are_on_every_response_including_errors() {
    let app = common::spawn_app().await;
    for path in ["/healthz", "/.well-known/jwks.json", "/no/such/page"] {
        let response = app.get(path).await;
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(h.get("strict-transport-security").is_none(), "{path}");
    }
}

#[tokio::test]
async fn hsts_is_sent_when_the_issuer_is_https() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_ISSUER".into(), "https://id.example.com".into());
    })
    .await;
    let response = app.get("/healthz").await;
    let hsts = response.headers()["strict-transport-security"]
        .to_str()
        .unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
}

#[tokio::test]
async fn unknown_paths_get_the_json_error_body() {
    let app = common::spawn_app().await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn a_method_a_path_does_not_take_gets_405_with_allow_and_that_paths_error_body() {
    let app = common::spawn_app().await;
    let send = |method: &str, path: &str| {
        app.client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .send()
    };
    // API paths: the one JSON error body.
    for (method, path, allow) in [
        ("GET", "/token", "POST"),
        ("DELETE", "/userinfo", "GET, POST"),
        ("PATCH", "/register/some-client", "GET, PUT, DELETE"),
        ("POST", "/.well-known/jwks.json", "GET"),
    ] {
        let response = send(method, path).await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["error"], "method_not_allowed",
            "{method} {path}: {body}"
        );
        assert!(body["error_description"].is_string(), "{body}");
    }
    // A page's form: the HTML error page, as its other refusals.
    let response = send("GET", "/account/sessions/some-session/end")
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        response.headers()
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("cannot be used that way")
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_status() {
    let app = common::spawn_app().await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/no/such/page").await;
    // A path carrying a secret, a form route behind the CSRF check, a wrong method.
    let invitation = app.get("/invitations/secret-invitation-token").await;
    let refused_form = app
        .client
        .post(app.url("/account/sessions/some-session/end"))
        .send()
        .await
        .unwrap();
    let wrong_method = app.client.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            r#"tessera_http_requests_total{method="GET",route="/healthz",status="200"} 2"#
        ),
        "{text}"
    );
    // The raw path of an unmatched request never becomes a label.
    assert!(!text.contains("/no/such/page"));
    // Every resource is counted under the pattern it was registered with.
    for (route, status) in [
        ("/invitations/{token}", invitation.status()),
        ("/account/sessions/{id}/end", refused_form.status()),
        ("/healthz", wrong_method.status()),
    ] {
        let series = format!(r#"route="{route}",status="{}"}} 1"#, status.as_u16());
        assert!(text.contains(&series), "{series} in\n{text}");
    }
    assert!(!text.contains("secret-invitation-token"), "{text}");
    assert!(
        text.contains(
            r#"tessera_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("tessera_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn made_up_methods_are_counted_together_not_one_series_each() {
    let app = common::spawn_app().await;
    for method in ["BREW", "ZAP", "X-WHATEVER"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(r#"method="OTHER""#), "{text}");
    for name in ["BREW", "ZAP", "X-WHATEVER"] {
        assert!(!text.contains(name), "{name} became a label:\n{text}");
    }
}
