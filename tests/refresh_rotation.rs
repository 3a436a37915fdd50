//! Refresh tokens: issued for offline_access, rotated on every use, reuse revokes
//! the family, concurrent use has one winner, scope narrows but never widens.

mod common;

use common::oauth::{
    TestClient, authorize_path, decide, exchange, new_client, param, pkce, redirect_params,
    register,
};
use common::{Browser, PASSWORD, TestApp};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, TransactionTrait,
};
use serde_json::Value;
use tessera::oauth::clients::{AuthMethod, GrantType};
use tessera::oauth::refresh::ROTATE_LIVE_SQL;
use tessera::store::entities::refresh_token;

const SCOPE: &str = "openid offline_access profile";

async fn refreshing_client(app: &TestApp, public: bool) -> TestClient {
    let mut new = new_client();
    new.first_party = true;
    if public {
        new.auth_method = AuthMethod::None;
    }
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    register(app, new).await
}

/// Runs the code flow for `client` with `scope` and returns the token response.
async fn first_tokens(app: &TestApp, browser: &Browser, client: &TestClient, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", scope)]))
        .await;
    let page = if page.status == 200 {
        decide(browser, &page, "allow").await
    } else {
        page
    };
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let response = exchange(app, client, &code, &verifier).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refresh(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let request = app.client.post(app.url("/token"));
    let request = match &client.secret {
        Some(secret) => request.basic_auth(&client.id, Some(secret)),
        None => {
            form.push(("client_id", client.id.as_str()));
            request
        }
    };
    request.form(&form).send().await.unwrap()
}

async fn signed_in(app: &TestApp) -> Browser {
    let browser = Browser::new(app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    browser
}

#[tokio::test]
async fn offline_access_brings_a_refresh_token_that_rotates_on_every_use() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, false).await;
    let first = first_tokens(&app, &browser, &client, SCOPE).await;
    let r1 = first["refresh_token"].as_str().expect("a refresh token");
    assert!(r1.len() >= 43, "at least 256 bits");

    let response = refresh(&app, &client, r1, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: Value = response.json().await.unwrap();
    let r2 = second["refresh_token"]
        .as_str()
        .expect("a new refresh token");
    assert_ne!(r1, r2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert_eq!(second["scope"], "offline_access openid profile");
    // A refreshed id_token carries no nonce (OIDC Core §12.2).
    let id_token = second["id_token"].as_str().expect("an id_token");
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(id_token)
        .unwrap()
        .claims;
    assert!(claims.get("nonce").is_none());
    assert!(claims["auth_time"].is_i64());

    let third = refresh(&app, &client, r2, None).await;
    assert_eq!(third.status(), 200);
}

#[tokio::test]
async fn presenting_a_spent_refresh_token_revokes_the_whole_family() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, false).await;
    let first = first_tokens(&app, &browser, &client, SCOPE).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let second: Value = refresh(&app, &client, r1, None).await.json().await.unwrap();
    let r2 = second["refresh_token"].as_str().unwrap();
    // Replayed later than a retry would come (the grace window, tests/refresh_grace.rs).
    spent_a_minute_ago(&app).await;

    let reuse = refresh(&app, &client, r1, None).await;
    assert_eq!(reuse.status(), 400);
    let body: Value = reuse.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    // The legitimate holder's newer token died with the family.
    let descendant = refresh(&app, &client, r2, None).await;
    assert_eq!(
        descendant.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

/// Strict rotation (`TESSERA_REFRESH_REUSE_GRACE=0`): of concurrent refreshes with
/// one token exactly one succeeds. (With the default grace window they all get
/// the one successor: tests/refresh_grace.rs.)
#[tokio::test]
async fn without_a_grace_window_two_concurrent_refreshes_with_one_token_cannot_both_succeed() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REFRESH_REUSE_GRACE".into(), "0".into());
    })
    .await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, false).await;
    let first = first_tokens(&app, &browser, &client, SCOPE).await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (http, url, id, secret, token) = (
                app.client.clone(),
                app.url("/token"),
                client.id.clone(),
                client.secret.clone(),
                r1.clone(),
            );
            tokio::spawn(async move {
                http.post(url)
                    .basic_auth(id, secret)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn scope_can_be_narrowed_on_refresh_but_never_widened() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, false).await;
    let first = first_tokens(&app, &browser, &client, SCOPE).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let wider = refresh(
        &app,
        &client,
        r1,
        Some("openid offline_access profile email"),
    )
    .await;
    assert_eq!(
        wider.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let narrower: Value = refresh(&app, &client, r1, Some("openid offline_access"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(narrower["scope"], "offline_access openid", "{narrower}");
    // RFC 6749 §6: the narrower scope is the access token's; the new refresh
    // token keeps the original grant, so a later refresh may ask for it all.
    let full: Value = refresh(
        &app,
        &client,
        narrower["refresh_token"].as_str().unwrap(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(full["scope"], first["scope"], "{full}");
}

#[tokio::test]
async fn a_refresh_token_only_works_for_its_own_client() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let owner = refreshing_client(&app, false).await;
    let thief = refreshing_client(&app, false).await;
    let public_thief = refreshing_client(&app, true).await;
    let first = first_tokens(&app, &browser, &owner, SCOPE).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    for client in [&thief, &public_thief] {
        let stolen = refresh(&app, client, r1, None).await;
        assert_eq!(
            stolen.json::<Value>().await.unwrap()["error"],
            "invalid_grant"
        );
    }
    assert_eq!(
        refresh(&app, &owner, r1, None).await.status(),
        200,
        "still the owner's"
    );
}

#[tokio::test]
async fn a_public_client_refreshes_without_a_secret_and_rotates() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, true).await;
    let first = first_tokens(&app, &browser, &client, SCOPE).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let second: Value = refresh(&app, &client, r1, None).await.json().await.unwrap();
    assert_ne!(second["refresh_token"].as_str().unwrap(), r1);
    // A retry at once gets the same successor; a replay later is reuse.
    let retried: Value = refresh(&app, &client, r1, None).await.json().await.unwrap();
    assert_eq!(retried["refresh_token"], second["refresh_token"]);
    spent_a_minute_ago(&app).await;
    assert_eq!(refresh(&app, &client, r1, None).await.status(), 400);
}

/// Every spent refresh token was spent a minute ago: past the grace window.
async fn spent_a_minute_ago(app: &common::TestApp) {
    use sea_orm::{ColumnTrait, QueryFilter};
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::SpentAt,
            sea_orm::sea_query::Expr::value(Some(
                chrono::Utc::now() - chrono::Duration::minutes(1),
            )),
        )
        .filter(refresh_token::Column::SpentAt.is_not_null())
        .exec(&app.state.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn no_refresh_token_without_offline_access_or_the_refresh_grant() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let refreshing = refreshing_client(&app, false).await;
    let without_offline = first_tokens(&app, &browser, &refreshing, "openid profile").await;
    assert!(without_offline.get("refresh_token").is_none());

    let mut new = new_client();
    new.first_party = true;
    let code_only = register(&app, new).await;
    let tokens = first_tokens(&app, &browser, &code_only, SCOPE).await;
    assert!(tokens.get("refresh_token").is_none());
    let refused = refresh(&app, &code_only, "anything", None).await;
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, false).await;
    let first = first_tokens(&app, &browser, &client, SCOPE).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.state.db)
        .await
        .unwrap();
    let expired = refresh(&app, &client, r1, None).await;
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_digests() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, false).await;
    let first = first_tokens(&app, &browser, &client, SCOPE).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let rows = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(r1))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert_eq!(
        refresh_token::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn replaying_a_code_also_revokes_the_refresh_tokens_it_issued() {
    let app = common::spawn_app().await;
    let browser = signed_in(&app).await;
    let client = refreshing_client(&app, false).await;
    let (verifier, challenge) = pkce();
    let page = browser
        .get(&authorize_path(&client.id, &challenge, &[("scope", SCOPE)]))
        .await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let first: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let r1 = first["refresh_token"].as_str().unwrap();
    assert_eq!(
        exchange(&app, &client, &code, &verifier).await.status(),
        400
    );
    let after = refresh(&app, &client, r1, None).await;
    assert_eq!(
        after.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

/// A new deployment's PostgreSQL knows nothing of the table yet; the one-step
/// rotation must still find the token by its digest. A plan through the client's
/// index walks every token of the client, each refresh dearer than the last.
#[tokio::test]
async fn the_one_step_rotation_finds_the_token_by_its_digest_on_a_new_table() {
    let app = common::spawn_app().await;
    if app.state.db.get_database_backend() != DbBackend::Postgres {
        common::skip("the one-statement rotation is PostgreSQL's");
        return;
    }
    // One connection for SET, PREPARE and EXPLAIN; the generic plan is the one a
    // pooled connection settles on after five executions.
    let txn = app.state.db.begin().await.unwrap();
    txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    txn.execute_unprepared(&format!("PREPARE rotate_live AS {ROTATE_LIVE_SQL}"))
        .await
        .unwrap();
    let rows = txn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "EXPLAIN EXECUTE rotate_live(now(), 'digest', 'client', gen_random_uuid(), \
             'successor', now(), 'sealed')",
        ))
        .await
        .unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using refresh_token_token_hash_key"),
        "{plan}"
    );
    assert!(!plan.contains("refresh_token_client"), "{plan}");
}
