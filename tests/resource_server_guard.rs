//! End to end: a person signs in and picks an organization; the example API
//! (guard/examples/resource_server.rs), protected by `tessera-guard`, decides
//! 401 / 403 / 200 from the access token alone.

mod common;

#[path = "../guard/examples/resource_server.rs"]
#[allow(dead_code)]
mod example;

use std::net::TcpListener;

use actix_web::{App, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::oauth::{
    authorize_path, exchange, hidden_fields, new_client, param, pkce, redirect_params, register,
};
use common::{Browser, PASSWORD, TestApp};
use serde_json::{Value, json};
use tessera::orgs::{self, Role};
use tessera::tokens::Algorithm;
use tessera_guard::{Guard, GuardConfig};
use uuid::Uuid;

struct World {
    app: TestApp,
    api: String,
    token: String,
    acme: Uuid,
    globex: Uuid,
    initech: Uuid,
    /// Ada's browser, still signed in.
    ada: Browser,
}

async fn start_api(app: &TestApp, refetch_secs: u64) -> String {
    let mut config = GuardConfig::new(app.base.clone(), app.base.clone());
    config.refetch_interval = std::time::Duration::from_secs(refetch_secs);
    let guard = web::Data::new(
        Guard::discover(config)
            .await
            .expect("guard discovers Tessera"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(guard.clone())
            .configure(example::routes)
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://{addr}")
}

/// Ada: admin of acme, member of globex; Bob owns initech. Ada signs in, picks
/// acme, and her token also lists every membership (`orgs`).
async fn world(refetch_secs: u64) -> World {
    let app = common::spawn_app().await;
    let ada = Browser::new(&app);
    ada.sign_up("ada@example.com", PASSWORD).await;
    Browser::new(&app)
        .sign_up("bob@example.com", PASSWORD)
        .await;
    let id = |email: &'static str| {
        let db = app.state.db.clone();
        async move {
            tessera::identity::users::find_by_email(&db, email)
                .await
                .unwrap()
                .unwrap()
                .id
        }
    };
    let (ada_id, bob_id) = (id("ada@example.com").await, id("bob@example.com").await);
    let org = |slug: &'static str, user: Uuid, role: Role| {
        let db = app.state.db.clone();
        async move {
            let org = orgs::create(&db, slug, Some(slug)).await.unwrap();
            orgs::add_member(&db, org.id, user, role).await.unwrap();
            org.id
        }
    };
    let acme = org("acme", ada_id, Role::Admin).await;
    let globex = org("globex", ada_id, Role::Member).await;
    let initech = org("initech", bob_id, Role::Owner).await;

    let mut new = new_client();
    new.first_party = true;
    new.scope = "openid org orgs".into();
    let client = register(&app, new).await;
    let (verifier, challenge) = pkce();
    let picker = ada
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid org orgs")],
        ))
        .await;
    assert!(picker.body.contains("Choose an organization"));
    let mut fields = hidden_fields(&picker.body);
    fields.push(("org_choice".into(), acme.to_string()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = ada.post("/authorize/org", &form).await;
    let code = param(&redirect_params(&done), "code").unwrap().to_owned();
    let body: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let api = start_api(&app, refetch_secs).await;
    World {
        app,
        api,
        token,
        acme,
        globex,
        initech,
        ada,
    }
}

async fn call(
    w: &World,
    method: reqwest::Method,
    token: Option<&str>,
    org: Option<&str>,
) -> reqwest::Response {
    let mut request = w.app.client.request(method, format!("{}/orders", w.api));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(o) = org {
        request = request.header("x-organization-id", o);
    }
    request.send().await.unwrap()
}

fn resign(w: &World, change: impl FnOnce(&mut Value)) -> String {
    let mut claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&w.token)
        .unwrap()
        .claims;
    change(&mut claims);
    w.app
        .state
        .keys
        .keys()
        .sign(
            Algorithm::Es256,
            "at+jwt",
            &serde_json::to_vec(&claims).unwrap(),
            chrono::Utc::now(),
        )
        .unwrap()
}

#[tokio::test]
async fn members_get_200_in_their_organizations_and_roles_are_enforced() {
    let w = world(10).await;
    let get = reqwest::Method::GET;
    let del = reqwest::Method::DELETE;

    let own = call(&w, get.clone(), Some(&w.token), None).await;
    assert_eq!(own.status(), 200);
    let body: Value = own.json().await.unwrap();
    assert_eq!(
        body["organization"],
        w.acme.to_string(),
        "the token's organization by default"
    );
    assert_eq!(body["role"], "admin");

    let named = call(&w, get.clone(), Some(&w.token), Some(&w.globex.to_string())).await;
    assert_eq!(named.status(), 200, "another membership listed under orgs");
    assert_eq!(named.json::<Value>().await.unwrap()["role"], "member");

    assert_eq!(
        call(&w, del.clone(), Some(&w.token), Some(&w.acme.to_string()))
            .await
            .status(),
        204
    );
    let too_low = call(&w, del, Some(&w.token), Some(&w.globex.to_string())).await;
    assert_eq!(too_low.status(), 403);
    assert!(
        too_low.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    assert!(
        too_low.json::<Value>().await.unwrap()["error_description"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
}

#[tokio::test]
async fn another_organization_or_a_malformed_one_is_403() {
    let w = world(10).await;
    let foreign = call(
        &w,
        reqwest::Method::GET,
        Some(&w.token),
        Some(&w.initech.to_string()),
    )
    .await;
    assert_eq!(foreign.status(), 403);
    let body: Value = foreign.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not a member")
    );
    // The APIs' contract: an organization id that is not one is refused like
    // one the caller is not in.
    let malformed = call(&w, reqwest::Method::GET, Some(&w.token), Some("acme")).await;
    assert_eq!(malformed.status(), 403);
}

/// A multi-organization app: its token names one organization (`org`, not
/// `orgs`); to act in another, it refreshes with `organization_id` — no new
/// sign-in — and the API follows the token.
#[tokio::test]
async fn a_client_switches_organization_by_refreshing_and_the_api_follows() {
    let w = world(10).await;
    let mut new = new_client();
    new.first_party = true;
    new.scope = "openid org offline_access".into();
    new.grant_types = vec![
        tessera::oauth::clients::GrantType::AuthorizationCode,
        tessera::oauth::clients::GrantType::RefreshToken,
    ];
    let client = register(&w.app, new).await;
    let (verifier, challenge) = pkce();
    let picker = w
        .ada
        .get(&authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid org offline_access")],
        ))
        .await;
    let mut fields = hidden_fields(&picker.body);
    fields.push(("org_choice".into(), w.acme.to_string()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = w.ada.post("/authorize/org", &form).await;
    let code = param(&redirect_params(&done), "code").unwrap().to_owned();
    let tokens: Value = exchange(&w.app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let in_acme = tokens["access_token"].as_str().unwrap();
    let globex = w.globex.to_string();
    let refused = call(&w, reqwest::Method::GET, Some(in_acme), Some(&globex)).await;
    assert_eq!(refused.status(), 403, "the token is Acme's");

    let switched: Value = w
        .app
        .client
        .post(w.app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("organization_id", &globex),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let in_globex = switched["access_token"].as_str().unwrap();
    let answered = call(&w, reqwest::Method::GET, Some(in_globex), None).await;
    assert_eq!(answered.status(), 200);
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["organization"], globex);
    assert_eq!(body["role"], "member");
}

#[tokio::test]
async fn every_bad_token_is_401_with_a_bearer_challenge() {
    let w = world(10).await;
    let none = call(&w, reqwest::Method::GET, None, None).await;
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");

    let expired = resign(&w, |c| {
        c["exp"] = json!(chrono::Utc::now().timestamp() - 60)
    });
    let not_yet = resign(&w, |c| {
        c["nbf"] = json!(chrono::Utc::now().timestamp() + 600)
    });
    let other_audience = resign(&w, |c| c["aud"] = json!("https://other.example/api"));
    let other_issuer = resign(&w, |c| c["iss"] = json!("https://evil.example"));
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&w.token)
        .unwrap()
        .claims;
    let kid = jsonwebtoken::decode_header(&w.token).unwrap().kid.unwrap();
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let alg_none = format!(
        "{}.{}.",
        enc(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        enc(&claims)
    );
    let hs256 = format!(
        "{}.{}.c2ln",
        enc(&json!({"alg": "HS256", "typ": "at+jwt", "kid": kid})),
        enc(&claims)
    );
    let id_token_typed = w
        .app
        .state
        .keys
        .keys()
        .sign(
            Algorithm::Es256,
            "JWT",
            &serde_json::to_vec(&claims).unwrap(),
            chrono::Utc::now(),
        )
        .unwrap();
    let mut tampered = w.token.clone();
    tampered.insert(tampered.len() - 3, 'x');
    for (what, token) in [
        ("garbage", "garbage".to_owned()),
        ("expired", expired),
        ("not yet valid", not_yet),
        ("another audience", other_audience),
        ("another issuer", other_issuer),
        ("alg none", alg_none),
        ("HS256", hs256),
        ("an id_token", id_token_typed),
        ("tampered", tampered),
    ] {
        let response = call(&w, reqwest::Method::GET, Some(&token), None).await;
        assert_eq!(response.status(), 401, "{what}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_token",
            "{what}"
        );
    }
}

async fn jwks_fetches(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("tessera_http_requests_total")
                && l.contains("jwks.json")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_first_sight_and_made_up_kids_cost_one_fetch() {
    let w = world(0).await;
    tessera::tokens::keys::generate(
        &w.app.state.db,
        &w.app.keys_dir,
        Algorithm::Es256,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    w.app.state.keys.refresh().await.unwrap();
    let rotated = resign(&w, |_| {});
    assert_ne!(
        jsonwebtoken::decode_header(&rotated).unwrap().kid,
        jsonwebtoken::decode_header(&w.token).unwrap().kid,
        "signed by the new key"
    );
    assert_eq!(
        call(&w, reqwest::Method::GET, Some(&rotated), None)
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&w, reqwest::Method::GET, Some(&w.token), None)
            .await
            .status(),
        200,
        "old key still published"
    );

    // With a long refetch interval, a burst of unknown kids fetches the JWKS once.
    let limited = start_api(&w.app, 60).await;
    let before = jwks_fetches(&w.app).await;
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&w.token)
        .unwrap()
        .claims;
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    for i in 0..5 {
        let fake = format!(
            "{}.{}.c2ln",
            enc(&json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("made-up-{i}")})),
            enc(&claims)
        );
        let response = w
            .app
            .client
            .get(format!("{limited}/orders"))
            .bearer_auth(&fake)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let after = jwks_fetches(&w.app).await;
    assert!(
        after - before <= 1,
        "{} fetches for 5 unknown kids",
        after - before
    );
}

/// The Projects API (members read, admins also write) served by the example, in
/// a process of its own, with its own introspection client; Ada is an admin of
/// acme and a member of globex.
struct Scripts {
    app: TestApp,
    api: String,
    acme: Uuid,
    globex: Uuid,
    _process: ApiProcess,
}

const PROJECTS: &str = "https://projects.example.com";

async fn scripts() -> Scripts {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_CLIENT_CACHE_TTL".into(), "0".into());
    })
    .await;
    common::cli_json(
        &app,
        &[
            "api",
            "create",
            "--name",
            "Projects",
            "--audience",
            PROJECTS,
            "--scope",
            "projects:read",
            "--scope",
            "projects:write",
            "--json",
        ],
    );
    common::cli_json(
        &app,
        &[
            "api",
            "grant",
            "--api",
            PROJECTS,
            "--role",
            "member",
            "--scope",
            "projects:read",
            "--json",
        ],
    );
    common::cli_json(
        &app,
        &[
            "api",
            "grant",
            "--api",
            PROJECTS,
            "--role",
            "admin",
            "--scope",
            "projects:read",
            "--scope",
            "projects:write",
            "--json",
        ],
    );
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let ada = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let acme = orgs::create(&app.state.db, "acme", Some("acme"))
        .await
        .unwrap()
        .id;
    orgs::add_member(&app.state.db, acme, ada, Role::Admin)
        .await
        .unwrap();
    let globex = orgs::create(&app.state.db, "globex", Some("globex"))
        .await
        .unwrap()
        .id;
    orgs::add_member(&app.state.db, globex, ada, Role::Member)
        .await
        .unwrap();
    let server = common::cli_json(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Projects API server",
            "--grant-type",
            "client_credentials",
            "--introspect-for",
            PROJECTS,
            "--json",
        ],
    );
    // The example API runs as its own process, as an API of ours would.
    let port = common::free_port();
    let api = ApiProcess::start(&[
        ("TESSERA_ISSUER", app.base.as_str()),
        ("API_AUDIENCE", PROJECTS),
        ("API_PORT", &port.to_string()),
        ("API_CLIENT_ID", server["client_id"].as_str().unwrap()),
        (
            "API_CLIENT_SECRET",
            server["client_secret"].as_str().unwrap(),
        ),
        // Every call asks again, so a revocation shows at once (the cache time
        // is what a deployment trades against introspection calls).
        ("API_INTROSPECTION_CACHE_SECS", "0"),
    ])
    .await;
    Scripts {
        app,
        api: format!("http://127.0.0.1:{port}"),
        acme,
        globex,
        _process: api,
    }
}

/// `guard/examples/resource_server.rs` as a process of its own; `cargo test`
/// builds the workspace's examples beside the test binaries. Killed on drop.
struct ApiProcess(std::process::Child);

impl ApiProcess {
    async fn start(env: &[(&str, &str)]) -> Self {
        let exe = std::env::current_exe().expect("the test binary");
        let binary = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(|dir| dir.join("examples").join("resource_server"))
            .expect("the target directory");
        assert!(
            binary.exists(),
            "{} is missing: run the tests with `cargo test --workspace`",
            binary.display()
        );
        let child = std::process::Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the example API starts");
        let mut process = ApiProcess(child);
        let port = env
            .iter()
            .find(|(k, _)| *k == "API_PORT")
            .map(|(_, v)| *v)
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/orders");
        let started = std::time::Instant::now();
        // Up when it answers (401: no credential).
        loop {
            let answer = reqwest::get(&url).await.map(|r| r.status().as_u16());
            if matches!(answer, Ok(401)) {
                break;
            }
            if let Ok(Some(status)) = process.0.try_wait() {
                panic!(
                    "the example API exited ({status}); is {} current?",
                    binary.display()
                );
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the example API never answered: {answer:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        process
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

enum Cred<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

async fn projects(s: &Scripts, method: reqwest::Method, org: &str, cred: Cred<'_>) -> (u16, Value) {
    let request = s
        .app
        .client
        .request(method, format!("{}/organizations/{org}/projects", s.api));
    let request = match cred {
        Cred::Bearer(t) => request.bearer_auth(t),
        Cred::ApiKey(k) => request.header("x-api-key", k),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn pat(s: &Scripts, scopes: &[&str], org: Option<&str>) -> String {
    let mut args = vec![
        "token",
        "create",
        "--email",
        "ada@example.com",
        "--name",
        "ci",
        "--json",
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    if let Some(org) = org {
        args.extend(["--org", org]);
    }
    common::cli_json(&s.app, &args)["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn scripts_and_services_get_exactly_the_statuses_the_api_promises() {
    use reqwest::Method;
    let s = scripts().await;
    let (acme, globex) = (s.acme.to_string(), s.globex.to_string());
    let pinned = pat(&s, &["projects:read", "projects:write"], Some("acme"));

    // A PAT as Bearer and as X-Api-Key.
    let (status, body) = projects(&s, Method::GET, &acme, Cred::Bearer(&pinned)).await;
    assert_eq!(
        (status, body["caller"].as_str()),
        (200, Some("PersonalAccessToken")),
        "{body}"
    );
    assert_eq!(
        projects(&s, Method::GET, &acme, Cred::ApiKey(&pinned))
            .await
            .0,
        200
    );
    assert_eq!(
        projects(&s, Method::POST, &acme, Cred::ApiKey(&pinned))
            .await
            .0,
        201
    );
    // Pinned to acme: globex is 403; a malformed id is 403.
    assert_eq!(
        projects(&s, Method::GET, &globex, Cred::Bearer(&pinned))
            .await
            .0,
        403
    );
    assert_eq!(
        projects(&s, Method::GET, "not-an-id", Cred::Bearer(&pinned))
            .await
            .0,
        403
    );

    // Unpinned: works in each of Ada's organizations, with what the token holds.
    let read_only = pat(&s, &["projects:read"], None);
    assert_eq!(
        projects(&s, Method::GET, &globex, Cred::Bearer(&read_only))
            .await
            .0,
        200
    );
    let (status, body) = projects(&s, Method::POST, &acme, Cred::Bearer(&read_only)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    // …and in each only what her role there holds: an admin of acme writes there,
    // a member of globex does not.
    let unpinned = pat(&s, &["projects:read", "projects:write"], None);
    let (status, _) = projects(&s, Method::POST, &acme, Cred::Bearer(&unpinned)).await;
    assert_eq!(status, 201);
    let (status, _) = projects(&s, Method::POST, &globex, Cred::Bearer(&unpinned)).await;
    assert_eq!(status, 403, "a member of globex");

    // Exchanged for a JWT: the same API accepts it.
    let exchanged: Value = s
        .app
        .client
        .post(s.app.url("/token"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", pinned.as_str()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("resource", PROJECTS),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = exchanged["access_token"].as_str().expect("a JWT");
    let (status, body) = projects(&s, Method::POST, &acme, Cred::Bearer(jwt)).await;
    assert_eq!(status, 201, "{body}");

    // A service account of acme (member: read only).
    let service = common::cli_json(
        &s.app,
        &[
            "client",
            "create",
            "--name",
            "sync",
            "--org",
            "acme",
            "--role",
            "member",
            "--grant-type",
            "client_credentials",
            "--json",
        ],
    );
    let token: Value = s
        .app
        .client
        .post(s.app.url("/token"))
        .basic_auth(
            service["client_id"].as_str().unwrap(),
            service["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials"), ("resource", PROJECTS)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let service_jwt = token["access_token"].as_str().expect("a token");
    let (status, body) = projects(&s, Method::GET, &acme, Cred::Bearer(service_jwt)).await;
    assert_eq!(
        (status, body["caller"].as_str()),
        (200, Some("ServiceAccount")),
        "{body}"
    );
    assert_eq!(
        projects(&s, Method::POST, &acme, Cred::Bearer(service_jwt))
            .await
            .0,
        403
    );
    assert_eq!(
        projects(&s, Method::GET, &globex, Cred::Bearer(service_jwt))
            .await
            .0,
        403
    );

    // Revoked, unknown, or a JWT-looking key: 401 with a challenge.
    let listed = common::cli_json(
        &s.app,
        &["token", "list", "--email", "ada@example.com", "--json"],
    );
    for t in listed.as_array().unwrap() {
        let (ok, _, err) = common::cli(&s.app, &["token", "revoke", t["id"].as_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let response = s
        .app
        .client
        .get(format!("{}/organizations/{acme}/projects", s.api))
        .bearer_auth(&pinned)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(
        projects(&s, Method::GET, &acme, Cred::ApiKey("tsr_pat_unknown"))
            .await
            .0,
        401
    );
    assert_eq!(
        projects(&s, Method::GET, &acme, Cred::ApiKey("not-a-pat"))
            .await
            .0,
        401
    );
}
