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
async fn another_organization_is_403_and_a_malformed_one_400() {
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
    let malformed = call(&w, reqwest::Method::GET, Some(&w.token), Some("acme")).await;
    assert_eq!(malformed.status(), 400);
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
