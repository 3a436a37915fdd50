//! The admin API (issue 24): bearer tokens with `tessera:admin` of an
//! administrator (code flow, first-party client) or of a service client made
//! with `--admin-api`; accounts listed, searched, paged and managed with
//! `If-Match`; the audit log read; the OpenAPI document matches the routes.

mod common;

use common::oauth::{code_with_scope, exchange, new_client, pkce, register};
use common::{Browser, PASSWORD, TestApp, account, cli_json};
use serde_json::Value;

const ROOT: &str = "root@example.com";

/// `email`'s access token for `scope` through a first-party client.
async fn token_of(app: &TestApp, email: &str, scope: &str) -> String {
    token_for(app, email, scope, None).await
}

/// As [`token_of`], through a client whose tokens are for the API `resource`
/// (RFC 8707) when one is given.
async fn token_for(app: &TestApp, email: &str, scope: &str, resource: Option<&str>) -> String {
    let mut new = new_client();
    new.first_party = true;
    new.scope = "openid tessera:admin".into();
    new.default_resource = resource.map(str::to_owned);
    let client = register(app, new).await;
    let browser = Browser::new(app);
    browser.sign_in(email, PASSWORD).await;
    let (verifier, challenge) = pkce();
    let code = code_with_scope(&browser, &client.id, &challenge, scope).await;
    let tokens: Value = exchange(app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn service_token(app: &TestApp) -> String {
    let made = cli_json(
        app,
        &[
            "client",
            "create",
            "--name",
            "Ops bot",
            "--admin-api",
            "--json",
        ],
    );
    let tokens: Value = app
        .client
        .post(app.url("/token"))
        .basic_auth(
            made["client_id"].as_str().unwrap(),
            made["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "tessera:admin"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().expect("a token").to_owned()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    if_match: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(tag) = if_match {
        request = request.header("If-Match", tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = call(app, reqwest::Method::GET, path, Some(token), None).await;
    (status, body)
}

#[tokio::test]
async fn only_administrators_and_admin_services_may_call_it() {
    let app = common::spawn_app().await;
    account(&app, ROOT, true);
    account(&app, "pat@example.com", false);
    let path = "/admin/api/v1/users";

    let (status, headers, _) = call(&app, reqwest::Method::GET, path, None, None).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, body) = call(&app, reqwest::Method::GET, path, Some("nonsense"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // Not an administrator, whatever the token's scope says.
    let pat = token_of(&app, "pat@example.com", "openid tessera:admin").await;
    let (status, body) = get(&app, path, &pat).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    // An administrator's token without the scope.
    let plain = token_of(&app, ROOT, "openid").await;
    assert_eq!(get(&app, path, &plain).await.0, 403);

    let root = token_of(&app, ROOT, "openid tessera:admin").await;
    assert_eq!(get(&app, path, &root).await.0, 200);
    // An administrator's token for an API (RFC 8707) is that API's: the API
    // cannot replay it here.
    let (ok, _, err) = common::cli(
        &app,
        &[
            "api",
            "create",
            "--name",
            "Reports",
            "--audience",
            "https://reports.example",
        ],
    );
    assert!(ok, "{err}");
    let replayed = token_for(
        &app,
        ROOT,
        "openid tessera:admin",
        Some("https://reports.example"),
    )
    .await;
    assert_eq!(
        common::jwt_claims(&replayed)["aud"],
        "https://reports.example"
    );
    let (status, body) = get(&app, path, &replayed).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let service = service_token(&app).await;
    assert_eq!(get(&app, path, &service).await.0, 200);

    // Taking the role away works at once, on tokens already issued.
    let (ok, _, err) = common::cli(&app, &["user", "set-admin", "--email", ROOT, "--revoke"]);
    assert!(ok, "{err}");
    assert_eq!(get(&app, path, &root).await.0, 403);
}

#[tokio::test]
async fn accounts_are_searched_paged_and_managed_by_version() {
    let app = common::spawn_app().await;
    account(&app, ROOT, true);
    for name in ["ada", "bob", "cyd", "dee", "bobby"] {
        account(&app, &format!("{name}@example.com"), false);
    }
    let root = token_of(&app, ROOT, "openid tessera:admin").await;

    // Pages of two, in creation order, until the last.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/admin/api/v1/users?limit=2".to_owned(),
            Some(c) => format!("/admin/api/v1/users?limit=2&after={c}"),
        };
        let (status, page) = get(&app, &path, &root).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0], ROOT);
    let (_, found) = get(&app, "/admin/api/v1/users?search=BOB", &root).await;
    let emails: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["bob@example.com", "bobby@example.com"]);
    let (_, none) = get(&app, "/admin/api/v1/users?search=%25", &root).await;
    assert!(none["items"].as_array().unwrap().is_empty(), "% is literal");

    // Show, then change by version: a stale version is refused.
    let bob = found["items"][0]["id"].as_str().unwrap().to_owned();
    let user_path = format!("/admin/api/v1/users/{bob}");
    let (status, headers, shown) =
        call(&app, reqwest::Method::GET, &user_path, Some(&root), None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["email"], "bob@example.com");
    assert_eq!(shown["disabled"], false);
    let tag = headers["etag"].to_str().unwrap().to_owned();
    let disable = format!("{user_path}/disable");
    let (status, _, body) = call(
        &app,
        reqwest::Method::POST,
        &disable,
        Some(&root),
        Some("\"stale\""),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (412, Some("precondition_failed"))
    );
    let (status, headers, body) = call(
        &app,
        reqwest::Method::POST,
        &disable,
        Some(&root),
        Some(&tag),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], true);
    let newer = headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(newer, tag);
    // The old version no longer matches anything.
    let enable = format!("{user_path}/enable");
    let (status, _, _) = call(
        &app,
        reqwest::Method::POST,
        &enable,
        Some(&root),
        Some(&tag),
    )
    .await;
    assert_eq!(status, 412);
    let (status, _, body) = call(
        &app,
        reqwest::Method::POST,
        &enable,
        Some(&root),
        Some(&newer),
    )
    .await;
    assert_eq!((status, &body["disabled"]), (200, &Value::Bool(false)));

    // Sign out everywhere, a reset link, delete.
    let (status, _, ended) = call(
        &app,
        reqwest::Method::POST,
        &format!("{user_path}/sign-out-everywhere?api_tokens=true"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(ended["sessions"].is_u64());
    let (status, _, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("{user_path}/password-reset"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 202);
    common::smtp::outbox_message(&app, "bob@example.com", "Reset your password").await;
    let (status, _, _) = call(&app, reqwest::Method::DELETE, &user_path, Some(&root), None).await;
    assert_eq!(status, 204);
    assert_eq!(get(&app, &user_path, &root).await.0, 404);
    assert!(
        tessera::identity::users::find_by_email(&app.state.db, "bob@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // Every change is in the audit log, by this administrator.
    let root_id = tessera::identity::users::find_by_email(&app.state.db, ROOT)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let (status, log) = get(
        &app,
        &format!("/admin/api/v1/audit-events?user={bob}"),
        &root,
    )
    .await;
    assert_eq!(status, 200);
    let by_kind = |kind: &str| {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in {log}"))
    };
    for kind in [
        "account.disabled",
        "account.enabled",
        "session.signed_out_everywhere",
        "password.reset_sent",
        "account.deleted",
    ] {
        let event = by_kind(kind);
        assert_eq!(event["actor"]["type"], "admin", "{event}");
        assert_eq!(event["actor"]["id"], root_id.as_str(), "{event}");
        assert_eq!(event["ip"], "127.0.0.1");
    }
    // Newest first.
    assert_eq!(log["items"][0]["kind"], "account.deleted");
}

#[tokio::test]
async fn the_audit_log_is_filtered_and_paged() {
    let app = common::spawn_app().await;
    account(&app, ROOT, true);
    for _ in 0..3 {
        Browser::new(&app).sign_in(ROOT, "wrong password").await;
    }
    let service = service_token(&app).await;
    let (status, page) = get(
        &app,
        "/admin/api/v1/audit-events?kind=sign_in.failed&limit=2",
        &service,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let before = page["next_cursor"].as_str().expect("a next page");
    let (_, rest) = get(
        &app,
        &format!("/admin/api/v1/audit-events?kind=sign_in.failed&limit=2&before={before}"),
        &service,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest.get("next_cursor").is_none());
    assert_eq!(rest["items"][0]["details"]["reason"], "wrong_password");
    let (status, body) = get(&app, "/admin/api/v1/audit-events?kind=nope", &service).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, later) = get(
        &app,
        &format!("/admin/api/v1/audit-events?since={future}"),
        &service,
    )
    .await;
    assert!(later["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_admin_routes() {
    let app = common::spawn_app().await;
    let doc = app.get_json("/admin/api/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert_eq!(doc["info"]["title"], "Tessera admin API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let documented: std::collections::BTreeSet<String> =
        doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routed: std::collections::BTreeSet<String> = tessera::http::csrf_protections()
        .into_iter()
        .map(|(path, _)| path.to_owned())
        .filter(|p| p.starts_with("/admin/api/v1/"))
        .collect();
    assert_eq!(
        documented, routed,
        "every route documented, every documented route served"
    );
    // Each operation answers something, names its security, and each schema
    // it refers to exists.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ["get", "post", "put", "patch", "delete"].contains(&method.as_str()),
                "{path} {method}"
            );
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            assert_eq!(op["security"][0]["bearer"][0], "tessera:admin", "{path}");
            // The method is the one the server answers.
            let concrete = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "01a2363b-b9ef-77e3-98cb-4f3d5bc901b2"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let answer = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            assert_eq!(
                answer.status(),
                401,
                "{method} {path} is served (and guarded)"
            );
        }
    }
}

#[tokio::test]
async fn a_client_cannot_register_itself_for_the_admin_scope() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "open".into());
    })
    .await;
    let answer = app
        .client
        .post(app.url("/register"))
        .json(&serde_json::json!({
            "client_name": "Sneaky",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "scope": "tessera:admin",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("tessera:admin"),
        "refused for the scope: {body}"
    );
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn organizations_clients_keys_sessions_and_tokens_are_managed() {
    use reqwest::Method;
    let app = common::spawn_app().await;
    account(&app, ROOT, true);
    let service = service_token(&app).await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let ada = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;

    // Organizations and members: add, change, the last owner stays.
    let (status, org) = send(
        &app,
        Method::POST,
        "/admin/api/v1/organizations",
        &service,
        Some(serde_json::json!({"name": "Acme Corp"})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    assert_eq!(org["slug"], "acme-corp");
    let (status, _) = send(
        &app,
        Method::POST,
        "/admin/api/v1/organizations",
        &service,
        Some(serde_json::json!({"name": "Again", "slug": "acme-corp"})),
    )
    .await;
    assert_eq!(status, 409);
    let member = format!(
        "/admin/api/v1/organizations/{}/members/{ada}",
        org["id"].as_str().unwrap()
    );
    let owner = Some(serde_json::json!({"role": "owner"}));
    assert_eq!(
        send(&app, Method::PUT, &member, &service, owner.clone())
            .await
            .0,
        201
    );
    assert_eq!(
        send(&app, Method::PUT, &member, &service, owner).await.0,
        204
    );
    let (status, body) = send(
        &app,
        Method::PUT,
        &member,
        &service,
        Some(serde_json::json!({"role": "member"})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let (status, members) = send(
        &app,
        Method::GET,
        &format!(
            "/admin/api/v1/organizations/{}/members",
            org["id"].as_str().unwrap()
        ),
        &service,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(members[0]["role"], "owner");
    assert_eq!(
        send(&app, Method::DELETE, &member, &service, None).await.0,
        409
    );

    // Clients: register, read, rotate, delete — the secret shown once.
    let (status, made) = send(
        &app,
        Method::POST,
        "/admin/api/v1/clients",
        &service,
        Some(serde_json::json!({
            "name": "Billing",
            "redirect_uris": ["https://billing.example/cb"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert!(made["client_secret"].is_string());
    let client_path = format!(
        "/admin/api/v1/clients/{}",
        made["client_id"].as_str().unwrap()
    );
    let (status, shown) = send(&app, Method::GET, &client_path, &service, None).await;
    assert_eq!(status, 200);
    assert!(shown.get("client_secret").is_none());
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_basic");
    let (status, rotated) = send(
        &app,
        Method::POST,
        &format!("{client_path}/rotate-secret"),
        &service,
        Some(serde_json::json!({"grace_seconds": 0})),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["client_secret"], made["client_secret"]);
    let (status, bad) = send(
        &app,
        Method::POST,
        "/admin/api/v1/clients",
        &service,
        Some(serde_json::json!({"name": "No URI"})),
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(
        send(&app, Method::DELETE, &client_path, &service, None)
            .await
            .0,
        204
    );
    assert_eq!(
        send(&app, Method::GET, &client_path, &service, None)
            .await
            .0,
        404
    );
    let (_, all) = send(&app, Method::GET, "/admin/api/v1/clients", &service, None).await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "Ops bot")
    );

    // Keys: a rotation now is published at once.
    let (status, key) = send(
        &app,
        Method::POST,
        "/admin/api/v1/keys/rotate",
        &service,
        Some(serde_json::json!({"alg": "ES256", "delay_seconds": 3600})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let (_, keys) = send(&app, Method::GET, "/admin/api/v1/keys", &service, None).await;
    let listed = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == key["kid"])
        .expect("listed");
    assert_eq!(listed["status"], "pending");
    let jwks = app.get_json("/.well-known/jwks.json").await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == key["kid"])
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/admin/api/v1/keys/rotate",
        &service,
        Some(serde_json::json!({"alg": "HS256"})),
    )
    .await;
    assert_eq!(status, 400);

    // Sessions and API tokens of a person.
    let (status, sessions) = send(
        &app,
        Method::GET,
        &format!("/admin/api/v1/users/{ada}/sessions"),
        &service,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let session = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &format!("/admin/api/v1/users/{ada}/sessions/{session}"),
            &service,
            None
        )
        .await
        .0,
        204
    );
    assert!(!browser.is_signed_in().await);
    let (status, tokens) = send(
        &app,
        Method::GET,
        &format!("/admin/api/v1/users/{ada}/api-tokens"),
        &service,
        None,
    )
    .await;
    assert_eq!((status, tokens.as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            "/admin/api/v1/api-tokens/01a2363b-b9ef-77e3-98cb-4f3d5bc901b2",
            &service,
            None
        )
        .await
        .0,
        404
    );
    let (status, providers) = send(
        &app,
        Method::GET,
        "/admin/api/v1/identity-providers",
        &service,
        None,
    )
    .await;
    assert_eq!((status, providers.as_array().map(Vec::len)), (200, Some(0)));

    // Each change is recorded with the service as its actor.
    let (_, log) = send(
        &app,
        Method::GET,
        "/admin/api/v1/audit-events?kind=client.secret_rotated",
        &service,
        None,
    )
    .await;
    assert_eq!(log["items"][0]["actor"]["type"], "service", "{log}");
    let (_, log) = send(
        &app,
        Method::GET,
        &format!("/admin/api/v1/audit-events?user={ada}&kind=membership.added"),
        &service,
        None,
    )
    .await;
    assert_eq!(log["items"][0]["actor"]["type"], "service", "{log}");
}

#[tokio::test]
async fn clients_change_by_version_and_apis_grant_scopes_to_roles() {
    use reqwest::Method;
    let app = common::spawn_app().await;
    let service = service_token(&app).await;
    let (_, made) = send(
        &app,
        Method::POST,
        "/admin/api/v1/clients",
        &service,
        Some(serde_json::json!({
            "name": "Billing",
            "redirect_uris": ["https://billing.example/cb"],
        })),
    )
    .await;
    let path = format!(
        "/admin/api/v1/clients/{}",
        made["client_id"].as_str().unwrap()
    );
    let read = app
        .client
        .get(app.url(&path))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    let tag = read
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    // GET carries no ETag for clients; the version is the one PATCH returns
    // or the digest of what GET shows — read it through a no-op change.
    let patch = |tag: Option<String>, body: Value| {
        let request = app
            .client
            .patch(app.url(&path))
            .bearer_auth(&service)
            .json(&body);
        let request = match tag {
            Some(t) => request.header("If-Match", t),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let etag = response
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                status,
                etag,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let _ = tag;
    let read = app
        .client
        .get(app.url(&path))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    let read_tag = read.headers()["etag"].to_str().unwrap().to_owned();
    let (status, first, renamed) =
        patch(Some(read_tag), serde_json::json!({"name": "Billing v2"})).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "Billing v2");
    let first = first.expect("an ETag");
    // Another administrator changes it meanwhile…
    let (status, second, _) = patch(
        Some(first.clone()),
        serde_json::json!({"redirect_uris": ["https://billing.example/cb2"]}),
    )
    .await;
    assert_eq!(status, 200);
    // …so a change made against the first version is refused.
    let (status, _, body) = patch(Some(first), serde_json::json!({"name": "Mine"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (412, Some("precondition_failed"))
    );
    let (status, _, _) = patch(second, serde_json::json!({"name": "Mine"})).await;
    assert_eq!(status, 200);
    let (status, _, body) = patch(None, serde_json::json!({"redirect_uris": []})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (_, log) = send(
        &app,
        Method::GET,
        "/admin/api/v1/audit-events?kind=client.updated",
        &service,
        None,
    )
    .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 3);

    // APIs: register, grant a scope to members, list, delete.
    let (status, api) = send(
        &app,
        Method::POST,
        "/admin/api/v1/apis",
        &service,
        Some(serde_json::json!({
            "name": "Projects",
            "audience": "https://projects.example",
            "scopes": ["projects:read", "projects:write"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{api}");
    let (status, granted) = send(
        &app,
        Method::POST,
        "/admin/api/v1/apis/grant",
        &service,
        Some(serde_json::json!({
            "audience": "https://projects.example",
            "role": "member",
            "scopes": ["projects:read"],
        })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        granted["member_scopes"],
        serde_json::json!(["projects:read"])
    );
    let (status, _) = send(
        &app,
        Method::POST,
        "/admin/api/v1/apis/grant",
        &service,
        Some(serde_json::json!({
            "audience": "https://projects.example",
            "role": "member",
            "scopes": ["projects:delete"],
        })),
    )
    .await;
    assert_eq!(status, 400);
    // No API may define this server's own admin scope.
    let (status, _) = send(
        &app,
        Method::POST,
        "/admin/api/v1/apis",
        &service,
        Some(serde_json::json!({
            "name": "Sneaky",
            "audience": "https://sneaky.example",
            "scopes": ["tessera:admin"],
        })),
    )
    .await;
    assert_eq!(status, 400);
    let (_, apis) = send(&app, Method::GET, "/admin/api/v1/apis", &service, None).await;
    assert_eq!(apis[0]["audience"], "https://projects.example");
    let gone = "/admin/api/v1/apis?audience=https%3A%2F%2Fprojects.example";
    assert_eq!(
        send(&app, Method::DELETE, gone, &service, None).await.0,
        204
    );
    assert_eq!(
        send(&app, Method::DELETE, gone, &service, None).await.0,
        404
    );
}

#[tokio::test]
async fn accounts_and_identity_providers_are_added_and_every_route_refuses_a_non_administrator() {
    use reqwest::Method;
    let app = common::spawn_app().await;
    account(&app, "pat@example.com", false);
    let service = service_token(&app).await;
    // An account with a password, usable at once; one without, told by mail.
    let (status, made) = send(
        &app,
        Method::POST,
        "/admin/api/v1/users",
        &service,
        Some(
            serde_json::json!({"email": "Kim@Example.com", "password": PASSWORD, "verified": true}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["email"].as_str(), &made["email_verified"]),
        (Some("kim@example.com"), &Value::Bool(true))
    );
    assert!(
        Browser::new(&app)
            .sign_in("kim@example.com", PASSWORD)
            .await
            .status
            < 400
    );
    let (status, lee) = send(
        &app,
        Method::POST,
        "/admin/api/v1/users",
        &service,
        Some(serde_json::json!({"email": "lee@example.com"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(lee["has_password"], false);
    common::smtp::outbox_message(&app, "lee@example.com", "Reset your password").await;
    common::smtp::outbox_message(&app, "lee@example.com", "Verify your email address").await;
    for (body, want) in [
        (
            serde_json::json!({"email": "kim@example.com", "password": PASSWORD}),
            409,
        ),
        (serde_json::json!({"email": "not an address"}), 400),
        (
            serde_json::json!({"email": "short@example.com", "password": "short"}),
            400,
        ),
    ] {
        let (status, _) = send(
            &app,
            Method::POST,
            "/admin/api/v1/users",
            &service,
            Some(body),
        )
        .await;
        assert_eq!(status, want);
    }
    let (_, log) = send(
        &app,
        Method::GET,
        "/admin/api/v1/audit-events?kind=account.created",
        &service,
        None,
    )
    .await;
    let by_service = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["type"] == "service")
        .count();
    assert_eq!(by_service, 2, "kim and lee, by the service; {log}");

    // Identity providers: the secret goes in, never out.
    let (status, added) = send(
        &app,
        Method::POST,
        "/admin/api/v1/identity-providers",
        &service,
        Some(serde_json::json!({
            "id": "google",
            "name": "Google",
            "issuer": "https://accounts.google.com",
            "client_id": "123.apps.googleusercontent.com",
            "client_secret": "GOCSPX-secret",
            "trust_email": true,
        })),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert!(!added.to_string().contains("GOCSPX"));
    let (_, listed) = send(
        &app,
        Method::GET,
        "/admin/api/v1/identity-providers",
        &service,
        None,
    )
    .await;
    assert_eq!(listed[0]["id"], "google");
    assert!(!listed.to_string().contains("GOCSPX"));
    let (status, _) = send(
        &app,
        Method::POST,
        "/admin/api/v1/identity-providers",
        &service,
        Some(serde_json::json!({
            "id": "bad", "name": "Bad", "issuer": "http://idp.example",
            "client_id": "c", "client_secret": "s",
        })),
    )
    .await;
    assert_eq!(status, 400, "http issuers only on loopback");
    let google = "/admin/api/v1/identity-providers/google";
    assert_eq!(
        send(&app, Method::DELETE, google, &service, None).await.0,
        204
    );
    assert_eq!(
        send(&app, Method::DELETE, google, &service, None).await.0,
        404
    );
    for kind in ["identity_provider.added", "identity_provider.removed"] {
        let (_, log) = send(
            &app,
            Method::GET,
            &format!("/admin/api/v1/audit-events?kind={kind}"),
            &service,
            None,
        )
        .await;
        assert_eq!(log["items"].as_array().unwrap().len(), 1, "{kind}");
    }

    // Every documented operation refuses a person who is not an administrator,
    // whatever their token's scope.
    let pat = token_of(&app, "pat@example.com", "openid tessera:admin").await;
    let doc = app.get_json("/admin/api/openapi.json").await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "01a2363b-b9ef-77e3-98cb-4f3d5bc901b2"
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let (status, body) = send(
                &app,
                method.to_uppercase().parse().unwrap(),
                &concrete,
                &pat,
                Some(serde_json::json!({})),
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("insufficient_scope")),
                "{method} {path}"
            );
        }
    }
}
