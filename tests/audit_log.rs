//! The audit log (issue 24, first step): each security event is recorded by
//! the action that causes it, with who acted, about whom, from where and why;
//! the person sees their own on the account page; old events are pruned.

mod common;

use common::smtp;
use common::{Browser, PASSWORD, TestApp, cli, cli_json};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::Value;
use tessera::store::entities::audit_event;

const ADA: &str = "ada@example.com";

async fn events(app: &TestApp, kind: &str) -> Vec<audit_event::Model> {
    audit_event::Entity::find()
        .filter(audit_event::Column::Kind.eq(kind))
        .all(&app.state.db)
        .await
        .unwrap()
}

fn details(event: &audit_event::Model) -> Value {
    serde_json::from_str(&event.details).unwrap()
}

/// The one event of `kind` whose details have `key` = `value`.
async fn one(app: &TestApp, kind: &str, key: &str, value: &str) -> audit_event::Model {
    let found: Vec<_> = events(app, kind)
        .await
        .into_iter()
        .filter(|e| details(e)[key] == value)
        .collect();
    assert_eq!(found.len(), 1, "{kind} with {key}={value}: {found:?}");
    found.into_iter().next().unwrap()
}

async fn user_id(app: &TestApp, email: &str) -> uuid::Uuid {
    tessera::identity::users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn sign_ins_and_failed_sign_ins_are_recorded_with_who_where_and_why() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let browser = Browser::new(&app);
    browser.sign_up(ADA, PASSWORD).await;
    let ada = user_id(&app, ADA).await;

    let created = one(&app, "account.created", "method", "password").await;
    assert_eq!(created.subject_user_id, Some(ada));
    assert_eq!(created.actor_type, "person");
    let signed_in = events(&app, "sign_in.succeeded").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(signed_in[0].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(details(&signed_in[0])["amr"], serde_json::json!(["pwd"]));

    // Failures, each with its reason (the person hears the same answer).
    Browser::new(&app).sign_in(ADA, "not the password").await;
    let wrong = one(&app, "sign_in.failed", "reason", "wrong_password").await;
    assert_eq!(wrong.subject_user_id, Some(ada));
    Browser::new(&app)
        .sign_in("nobody@example.com", PASSWORD)
        .await;
    let unknown = one(&app, "sign_in.failed", "reason", "unknown_account").await;
    assert_eq!(unknown.subject_user_id, None);

    // Disabled by the operator (the command line is an administrator).
    let (ok, _, err) = cli(&app, &["user", "disable", "--email", ADA]);
    assert!(ok, "{err}");
    let disabled = events(&app, "account.disabled").await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].actor_type, "admin");
    assert_eq!(disabled[0].subject_user_id, Some(ada));
    assert_eq!(details(&disabled[0])["sessions"], 1);
    Browser::new(&app).sign_in(ADA, PASSWORD).await;
    one(&app, "sign_in.failed", "reason", "disabled").await;
    let (ok, _, err) = cli(&app, &["user", "enable", "--email", ADA]);
    assert!(ok, "{err}");
    assert_eq!(events(&app, "account.enabled").await[0].actor_type, "admin");

    // The limit (three failures, two counted already): refused attempts are
    // recorded as throttled — once while the limit holds, however many come.
    let before = events(&app, "sign_in.failed").await.len();
    let mut last = 0;
    for _ in 0..6 {
        last = Browser::new(&app).sign_in(ADA, "still wrong").await.status;
    }
    assert_eq!(last, 429);
    let failed = events(&app, "sign_in.failed").await;
    assert_eq!(
        failed.len(),
        before + 2,
        "one checked attempt, one throttled row"
    );
    let throttled = failed
        .iter()
        .filter(|e| details(e)["reason"] == "throttled")
        .count();
    assert_eq!(throttled, 1, "five refusals, one row");
}

#[tokio::test]
async fn changes_to_an_account_are_recorded_and_shown_to_the_person() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    browser.sign_up(ADA, PASSWORD).await;
    let ada = user_id(&app, ADA).await;
    smtp::verify_address(&app, ADA).await;
    assert_eq!(
        events(&app, "email.verified").await[0].subject_user_id,
        Some(ada)
    );

    let new_password = "violet giraffes sing loudly";
    let changed = browser
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .await;
    assert!(changed.status < 400, "{}", changed.body);
    one(&app, "password.changed", "how", "changed").await;

    // A second browser, ended from the first; then sign out everywhere.
    let other = Browser::new(&app);
    other.sign_in(ADA, new_password).await;
    let account = browser.get("/account").await;
    let end_form = account
        .body
        .split("action=\"/account/sessions/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .find(|path| path.ends_with("/end"))
        .expect("an End button for the other session");
    browser
        .post(
            &format!("/account/sessions/{end_form}"),
            &[("csrf", &account.csrf())],
        )
        .await;
    assert_eq!(events(&app, "session.ended").await.len(), 1);
    browser
        .submit("/account", "/account/sessions/end-all", &[])
        .await;
    assert_eq!(events(&app, "session.signed_out_everywhere").await.len(), 1);

    // Password reset by a mailed link; then a plain sign-out.
    let forgotten = Browser::new(&app);
    forgotten
        .submit("/password/forgot", "/password/forgot", &[("email", ADA)])
        .await;
    let link = smtp::outbox_message(&app, ADA, "Reset your password")
        .await
        .link(&app.url("/password/reset/"));
    let path = link.strip_prefix(&app.base).unwrap().to_owned();
    let form = forgotten.get(&path).await;
    forgotten
        .post(&path, &[("csrf", &form.csrf()), ("new_password", PASSWORD)])
        .await;
    assert_eq!(
        events(&app, "password.reset").await[0].subject_user_id,
        Some(ada)
    );
    forgotten.submit("/account", "/logout", &[]).await;
    assert_eq!(events(&app, "session.signed_out").await.len(), 1);

    // Email change, confirmed from the new address.
    let browser = Browser::new(&app);
    browser.sign_in(ADA, PASSWORD).await;
    browser
        .submit(
            "/account",
            "/account/email",
            &[
                ("new_email", "ada@new.example"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    let confirm = smtp::outbox_message(&app, "ada@new.example", "Confirm your new email address")
        .await
        .link(&app.url("/email/verify/"));
    app.client.get(&confirm).send().await.unwrap();
    let moved = one(&app, "email.changed", "to", "ada@new.example").await;
    assert_eq!(details(&moved)["from"], ADA);

    // The person reads their own recent activity.
    let page = browser.get("/account").await;
    assert!(
        page.body.contains("Recent security activity"),
        "{}",
        page.body
    );
    for line in ["Email changed", "Password reset", "Signed in"] {
        assert!(page.body.contains(line), "{line}: {}", page.body);
    }
    assert!(page.body.contains("from 127.0.0.1"));
}

#[tokio::test]
async fn app_token_client_key_organization_and_admin_events_are_recorded() {
    use common::oauth;
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "open".into());
        env.insert("TESSERA_REFRESH_REUSE_GRACE".into(), "0".into());
    })
    .await;
    let browser = Browser::new(&app);
    browser.sign_up(ADA, PASSWORD).await;
    let ada = user_id(&app, ADA).await;

    // Consent, a refresh token replayed (reuse), access removed.
    let mut new = oauth::new_client();
    new.grant_types = vec![
        tessera::oauth::clients::GrantType::AuthorizationCode,
        tessera::oauth::clients::GrantType::RefreshToken,
    ];
    let client = oauth::register(&app, new).await;
    let (verifier, challenge) = oauth::pkce();
    let page = browser
        .get(&oauth::authorize_path(
            &client.id,
            &challenge,
            &[("scope", "openid offline_access")],
        ))
        .await;
    let allowed = oauth::decide(&browser, &page, "allow").await;
    let code = oauth::param(&oauth::redirect_params(&allowed), "code")
        .unwrap()
        .to_owned();
    let given = events(&app, "consent.given").await;
    assert_eq!(given.len(), 1);
    assert_eq!(given[0].client_id.as_deref(), Some(client.id.as_str()));
    let tokens: Value = oauth::exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let first = tokens["refresh_token"].as_str().unwrap();
    let (_, second) = oauth::refresh(&app, &client, first).await;
    oauth::refresh(&app, &client, second["refresh_token"].as_str().unwrap()).await;
    let (status, _) = oauth::refresh(&app, &client, first).await;
    assert_eq!(status, 400);
    let reuse = one(
        &app,
        "refresh_token.family_revoked",
        "reason",
        "reuse_detected",
    )
    .await;
    assert_eq!(reuse.subject_user_id, Some(ada));
    assert_eq!(reuse.actor_type, "system");
    let account = browser.get("/account").await;
    browser
        .post(
            &format!("/account/apps/{}/remove", client.id),
            &[("csrf", &account.csrf())],
        )
        .await;
    assert_eq!(events(&app, "consent.removed").await.len(), 1);

    // Clients, at the command line and by dynamic registration.
    let made = cli_json(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Billing",
            "--redirect-uri",
            "https://billing.example/cb",
            "--json",
        ],
    );
    let billing = made["client_id"].as_str().unwrap();
    let created = one(&app, "client.created", "name", "Billing").await;
    assert_eq!(created.actor_type, "admin");
    assert_eq!(created.client_id.as_deref(), Some(billing));
    let (ok, _, err) = cli(&app, &["client", "rotate-secret", "--client-id", billing]);
    assert!(ok, "{err}");
    assert_eq!(events(&app, "client.secret_rotated").await.len(), 1);
    let (ok, _, err) = cli(&app, &["client", "delete", "--client-id", billing]);
    assert!(ok, "{err}");
    assert_eq!(events(&app, "client.deleted").await.len(), 1);
    let registered: Value = app
        .client
        .post(app.url("/register"))
        .json(&serde_json::json!({
            "client_name": "Self-made",
            "redirect_uris": ["https://self.example/cb"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let own_id = registered["client_id"].as_str().unwrap();
    one(&app, "client.created", "via", "dynamic_registration").await;
    let updated = app
        .client
        .put(app.url(&format!("/register/{own_id}")))
        .bearer_auth(registered["registration_access_token"].as_str().unwrap())
        .json(&serde_json::json!({
            "client_id": own_id,
            "client_name": "Self-made, renamed",
            "redirect_uris": ["https://self.example/cb"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let changed = events(&app, "client.updated").await;
    assert_eq!(changed[0].actor_type, "service");
    assert_eq!(changed[0].actor_id.as_deref(), Some(own_id));

    // Keys, organizations, administrators, API tokens.
    let (ok, _, err) = cli(&app, &["keys", "rotate", "--alg", "ES256"]);
    assert!(ok, "{err}");
    one(&app, "key.rotated", "alg", "ES256").await;
    cli_json(
        &app,
        &[
            "org", "create", "--name", "Acme", "--slug", "acme", "--json",
        ],
    );
    // An API whose scope members hold, for an API token below.
    cli_json(
        &app,
        &[
            "api",
            "create",
            "--name",
            "Projects",
            "--audience",
            "https://projects.example",
            "--scope",
            "projects:read",
            "--json",
        ],
    );
    for args in [
        &[
            "api",
            "grant",
            "--api",
            "https://projects.example",
            "--role",
            "member",
            "--scope",
            "projects:read",
        ][..],
        &[
            "org",
            "add-member",
            "--org",
            "acme",
            "--email",
            ADA,
            "--role",
            "member",
        ][..],
    ] {
        let (ok, _, err) = cli(&app, args);
        assert!(ok, "{err}");
    }
    assert_eq!(
        events(&app, "membership.added").await[0].subject_user_id,
        Some(ada)
    );
    let (ok, _, err) = cli(&app, &["user", "set-admin", "--email", ADA]);
    assert!(ok, "{err}");
    assert_eq!(
        events(&app, "admin.granted").await[0].subject_user_id,
        Some(ada)
    );
    let (ok, _, err) = cli(&app, &["user", "set-admin", "--email", ADA, "--revoke"]);
    assert!(ok, "{err}");
    assert_eq!(events(&app, "admin.revoked").await.len(), 1);
    let account = browser.get("/account").await;
    browser
        .post(
            "/account/api-tokens",
            &[
                ("csrf", &account.csrf()),
                ("name", "ci"),
                ("org", "any"),
                ("scope", "projects:read"),
                ("expires", "30d"),
            ],
        )
        .await;
    let pats = events(&app, "personal_access_token.created").await;
    assert_eq!(pats.len(), 1);
    assert_eq!(pats[0].actor_type, "person");
    let token_id = details(&pats[0])["token"].as_str().unwrap().to_owned();
    let (ok, _, err) = cli(&app, &["token", "revoke", &token_id]);
    assert!(ok, "{err}");
    let revoked = events(&app, "personal_access_token.revoked").await;
    assert_eq!(revoked[0].actor_type, "admin");
    assert_eq!(revoked[0].subject_user_id, Some(ada));
    let (ok, _, err) = cli(
        &app,
        &[
            "org", "set-role", "--org", "acme", "--email", ADA, "--role", "admin",
        ],
    );
    assert!(ok, "{err}");
    one(&app, "membership.role_changed", "to", "admin").await;
    let (ok, _, err) = cli(
        &app,
        &["org", "remove-member", "--org", "acme", "--email", ADA],
    );
    assert!(ok, "{err}");
    assert_eq!(events(&app, "membership.removed").await.len(), 1);
}

#[tokio::test]
async fn events_older_than_the_retention_are_pruned() {
    let app = common::spawn_app().await;
    Browser::new(&app).sign_up(ADA, PASSWORD).await;
    let all = audit_event::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(all.len() >= 2);
    // Age one event past the 90-day default, as if time had passed.
    let mut old = all[0].clone().into_active_model();
    old.at = Set(chrono::Utc::now() - chrono::Duration::days(91));
    old.update(&app.state.db).await.unwrap();
    let retention = chrono::Duration::from_std(app.state.settings.audit_retention).unwrap();
    let pruned = tessera::audit::prune(&app.state.db, chrono::Utc::now() - retention)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left = audit_event::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(left.len(), all.len() - 1);
}

/// The same events go to the log, one JSON object per line with
/// `TESSERA_LOG_FORMAT=json`, for shipping to a SIEM.
#[tokio::test]
async fn each_event_is_also_one_structured_log_line() {
    use std::process::{Command, Stdio};
    let backing = common::Backing::new().await;
    let log_path = backing.path().join("stderr.log");
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(backing.env())
        .env("TESSERA_BIND", format!("127.0.0.1:{port}"))
        .env("TESSERA_ISSUER", &base)
        .env("TESSERA_LOG_FORMAT", "json")
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let web = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..300 {
        if web
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server never became ready");
    let login = web
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start = login.find(marker).unwrap() + marker.len();
    let csrf = &login[start..start + login[start..].find('"').unwrap()];
    let failed = web
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf),
            ("email", "nobody@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let request_id = failed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // A verifier's JWKS fetch is not an access line at the default level.
    web.get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let mut found = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["target"] == "tessera::audit" && l["kind"] == "sign_in.failed");
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Stopped as an operator stops it, so that every line logged has been
    // written (lines below WARN are written in batches) when the log is read.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let line = found.expect("an audit line in the JSON log");
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.contains("\"answered\""),
        "other requests keep their access line"
    );
    assert!(!text.contains("jwks"), "JWKS fetches are debug: {text}");
    // A line logged while a request runs names that request.
    assert_eq!(line["request_id"], request_id.as_str(), "{line}");
    assert_eq!(line["method"], "POST", "{line}");
    let access = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "answered" && l["request_id"] == request_id.as_str())
        .expect("the sign-in's access line");
    assert_eq!(access["route"], "/login", "{access}");
    assert_eq!(access["status"], 401, "{access}");
    assert!(access["elapsed_us"].is_u64(), "{access}");
    assert_eq!(line["actor_type"], "system");
    assert_eq!(line["ip"], "127.0.0.1");
    assert!(
        line["details"]
            .as_str()
            .unwrap()
            .contains("unknown_account"),
        "{line}"
    );
}
