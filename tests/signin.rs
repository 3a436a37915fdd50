//! Browser sign-in over HTTP: sign-up, sign-in, lockout, CSRF, sessions, sign-out,
//! password change, cookie flags.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Browser, PASSWORD};
use sea_orm::EntityTrait;
use tessera::store::entities::{session, user};

async fn user_count(app: &common::TestApp) -> usize {
    user::Entity::find().all(&app.state.db).await.unwrap().len()
}

#[tokio::test]
async fn signup_creates_the_account_signs_in_and_lands_on_the_account_page() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let form = browser.get("/signup").await;
    assert_eq!(form.status, 200);
    for label in [
        "<label for=\"email\">Email</label>",
        "<label for=\"password\">Password</label>",
        "Create account</button>",
    ] {
        assert!(form.body.contains(label), "missing {label}");
    }
    let done = browser.sign_up("  Ada@Example.COM ", PASSWORD).await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), Some("/account"));
    let account = browser.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(
        account.body.contains("ada@example.com"),
        "email normalised: trimmed and lower-cased"
    );
}

#[tokio::test]
async fn signup_refuses_weak_passwords_bad_emails_and_taken_addresses() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let cases = [
        ("ada@example.com", "short", 400, "at least 12"),
        ("ada@example.com", "password1234", 400, "too common"),
        ("not-an-email", PASSWORD, 400, "email address"),
    ];
    for (email, password, status, message) in cases {
        let page = browser.sign_up(email, password).await;
        assert_eq!(page.status, status, "{email} / {password}");
        assert!(page.body.contains(message), "{message} not in page");
        // The typed email is kept, the password never echoed.
        assert!(
            !page.body.contains(password)
                || password == "short" && !page.body.contains("value=\"short\"")
        );
    }
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(
        browser.sign_up("ada@example.com", PASSWORD).await.status,
        303
    );
    let other = Browser::new(&app);
    let taken = other.sign_up("ada@EXAMPLE.com", PASSWORD).await;
    assert_eq!(taken.status, 409);
    assert!(taken.body.contains("already exists"));
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn signup_can_be_switched_off() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SIGNUP".into(), "closed".into());
    })
    .await;
    let browser = Browser::new(&app);
    let page = browser.get("/signup").await;
    assert!(page.body.contains("Sign-up is closed"));
    assert!(!page.body.contains("Create account</button>"));
    // A hand-made POST is refused too.
    let login = browser.get("/login").await;
    let refused = browser
        .post(
            "/signup",
            &[
                ("csrf", &login.csrf()),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn sign_in_with_the_right_password_starts_a_session() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    let form = browser.get("/login").await;
    for label in [
        "<label for=\"email\">Email</label>",
        "<label for=\"password\">Password</label>",
        "Sign in</button>",
    ] {
        assert!(form.body.contains(label), "missing {label}");
    }
    let done = browser.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(done.status, 303);
    assert!(browser.is_signed_in().await);
    let rows = session::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.amr == "pwd"));
}

/// The page with its per-request token removed, for comparing two answers.
fn without_csrf(body: &str) -> String {
    body.split('\n')
        .filter(|line| !line.contains("name=\"csrf\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    let wrong = browser
        .sign_in("ada@example.com", "not the password at all")
        .await;
    let unknown = browser
        .sign_in("bob@example.com", "not the password at all")
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert!(wrong.body.contains("The email or password is incorrect."));
    assert_eq!(
        without_csrf(&wrong.body).replace("ada@example.com", "X"),
        without_csrf(&unknown.body).replace("bob@example.com", "X")
    );
    assert!(!browser.is_signed_in().await);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_with_retry_after() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_LOGIN_MAX_FAILURES".into(), "3".into());
        env.insert("TESSERA_LOGIN_LOCKOUT".into(), "10m".into());
    })
    .await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    for _ in 0..3 {
        assert_eq!(
            browser
                .sign_in("ada@example.com", "wrong password here")
                .await
                .status,
            401
        );
    }
    let locked = browser.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(locked.status, 429, "even the right password waits");
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    assert!(locked.body.contains("Too many failed attempts"));
    assert!(!browser.is_signed_in().await);
    // Another account from elsewhere is unaffected by this account's lock.
    Browser::new(&app)
        .sign_up("bob@example.com", PASSWORD)
        .await;
}

/// Issue 18 §3: attempts are counted before the password is checked, so parallel
/// guesses cannot all slip under the limit.
#[tokio::test]
async fn parallel_wrong_passwords_get_at_most_the_limit_of_answers() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let limit = app.state.settings.login_max_failures as usize;
    let browser = Browser::new(&app);
    let csrf = browser.get("/login").await.csrf();
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..30 {
        // The same browser (one cookie jar), thirty requests at once.
        let same = Browser {
            client: browser.client.clone(),
            base: browser.base.clone(),
        };
        let csrf = csrf.clone();
        attempts.spawn(async move {
            same.post(
                "/login",
                &[
                    ("csrf", csrf.as_str()),
                    ("email", "ada@example.com"),
                    ("password", "wrong password here"),
                ],
            )
            .await
        });
    }
    let pages = attempts.join_all().await;
    let refused = pages.iter().filter(|p| p.status == 401).count();
    let limited: Vec<_> = pages.iter().filter(|p| p.status == 429).collect();
    assert!(refused <= limit, "{refused} wrong passwords were checked");
    assert_eq!(refused + limited.len(), 30);
    assert!(
        limited
            .iter()
            .all(|p| p.headers.contains_key("retry-after"))
    );
}

/// Issue 18 §3: sign-up answers tell whether an email has an account, so they are
/// limited per address (password and passkey sign-up alike).
#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SIGNUP_MAX_PER_IP".into(), "3".into());
    })
    .await;
    let browser = Browser::new(&app);
    for i in 0..3 {
        let page = browser
            .sign_up(&format!("user{i}@example.com"), "short")
            .await;
        assert_eq!(page.status, 400);
    }
    let limited = browser.sign_up("user9@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.body.contains("Too many sign-ups"));
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_account_failure_count() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let browser = Browser::new(&app);
    for _ in 0..2 {
        browser
            .sign_in("ada@example.com", "wrong password here")
            .await;
    }
    assert_eq!(
        browser.sign_in("ada@example.com", PASSWORD).await.status,
        303
    );
    let other = Browser::new(&app);
    for _ in 0..2 {
        other
            .sign_in("ada@example.com", "wrong password here")
            .await;
    }
    assert_eq!(other.sign_in("ada@example.com", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn a_missing_wrong_or_cross_site_csrf_token_is_refused_and_changes_nothing() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let page = browser.get("/signup").await;
    let fields = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
        ]
    };
    assert_eq!(browser.post("/signup", &fields("")).await.status, 403);
    assert_eq!(browser.post("/signup", &fields("forged")).await.status, 403);
    let cross_site = browser
        .client
        .post(format!("{}/signup", app.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("csrf", page.csrf().as_str()),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let body = cross_site.text().await.unwrap();
    assert!(body.contains("<html"), "an HTML error page");
    assert_eq!(user_count(&app).await, 0);

    // A signed-in user's form token does not work for another session.
    browser.sign_up("ada@example.com", PASSWORD).await;
    let other = Browser::new(&app);
    other.sign_up("bob@example.com", PASSWORD).await;
    let bob_token = other.get("/account").await.csrf();
    assert_eq!(
        browser
            .post("/logout", &[("csrf", &bob_token)])
            .await
            .status,
        403
    );
    assert!(browser.is_signed_in().await);
}

fn token_hash(cookie_value: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(cookie_value.as_bytes()))
}

fn session_cookie_value(page: &common::Page) -> String {
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("tessera_session="))
        .expect("session cookie");
    cookie["tessera_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn age_session(
    app: &common::TestApp,
    cookie_value: &str,
    created_ago: chrono::Duration,
    seen_ago: chrono::Duration,
) {
    let now = chrono::Utc::now();
    common::edit_sessions(app, Some(&token_hash(cookie_value)), |row| {
        row.created_at = sea_orm::Set(now - created_ago);
        row.last_seen_at = sea_orm::Set(now - seen_ago);
    })
    .await;
}

#[tokio::test]
async fn a_session_ends_after_the_idle_timeout() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SESSION_IDLE_TIMEOUT".into(), "30m".into());
    })
    .await;
    let browser = Browser::new(&app);
    let cookie = session_cookie_value(&browser.sign_up("ada@example.com", PASSWORD).await);
    age_session(
        &app,
        &cookie,
        chrono::Duration::minutes(29),
        chrono::Duration::minutes(29),
    )
    .await;
    assert!(browser.is_signed_in().await, "29 idle minutes are fine");
    age_session(
        &app,
        &cookie,
        chrono::Duration::minutes(31),
        chrono::Duration::minutes(31),
    )
    .await;
    let page = browser.get("/account").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/login?return_to=%2Faccount"));
    assert!(
        session::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .is_empty(),
        "expired row removed"
    );
}

#[tokio::test]
async fn a_session_ends_after_its_absolute_lifetime_however_active() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SESSION_LIFETIME".into(), "12h".into());
    })
    .await;
    let browser = Browser::new(&app);
    let cookie = session_cookie_value(&browser.sign_up("ada@example.com", PASSWORD).await);
    age_session(
        &app,
        &cookie,
        chrono::Duration::hours(13),
        chrono::Duration::seconds(1),
    )
    .await;
    assert!(!browser.is_signed_in().await);
}

#[tokio::test]
async fn a_session_is_found_in_the_database_when_the_cache_has_lost_it() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let cookie = session_cookie_value(&browser.sign_up("ada@example.com", PASSWORD).await);
    let key = tessera::identity::sessions::cache_key(&token_hash(&cookie));
    assert!(
        app.state.cache.get(&key).await.unwrap().is_some(),
        "cached at sign-in"
    );
    app.state.cache.remove(&key).await.unwrap();
    assert!(browser.is_signed_in().await);
    assert!(
        app.state.cache.get(&key).await.unwrap().is_some(),
        "cached again"
    );
}

#[tokio::test]
async fn only_a_hash_of_the_session_id_is_stored() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let cookie = session_cookie_value(&browser.sign_up("ada@example.com", PASSWORD).await);
    let rows = session::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(rows[0].token_hash, token_hash(&cookie));
    assert_ne!(rows[0].token_hash, cookie);
}

#[tokio::test]
async fn sign_out_ends_the_session_and_the_old_cookie_is_worthless() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let cookie = session_cookie_value(&browser.sign_up("ada@example.com", PASSWORD).await);
    let done = browser.submit("/account", "/logout", &[]).await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), Some("/login"));
    assert!(
        done.set_cookies()
            .iter()
            .any(|c| c.starts_with("tessera_session=;")),
        "{:?}",
        done.set_cookies()
    );
    assert!(!browser.is_signed_in().await);
    let replay = app
        .client
        .get(app.url("/account"))
        .header("cookie", format!("tessera_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_user() {
    let app = common::spawn_app().await;
    let laptop = Browser::new(&app);
    laptop.sign_up("ada@example.com", PASSWORD).await;
    let phone = Browser::new(&app);
    phone.sign_in("ada@example.com", PASSWORD).await;
    let bob = Browser::new(&app);
    bob.sign_up("bob@example.com", PASSWORD).await;
    assert!(phone.is_signed_in().await);
    let done = laptop
        .submit("/account", "/account/sessions/end-all", &[])
        .await;
    assert_eq!(done.status, 303);
    assert!(!laptop.is_signed_in().await);
    assert!(!phone.is_signed_in().await);
    assert!(bob.is_signed_in().await, "other users are untouched");
}

#[tokio::test]
async fn one_other_session_can_be_signed_out_from_the_account_page() {
    let app = common::spawn_app().await;
    let laptop = Browser::new(&app);
    laptop.sign_up("ada@example.com", PASSWORD).await;
    let phone = Browser::new(&app);
    phone.sign_in("ada@example.com", PASSWORD).await;
    let page = laptop.get("/account").await;
    assert!(page.body.contains("This device"));
    let rows = session::Entity::find().all(&app.state.db).await.unwrap();
    let phone_id = rows.iter().map(|r| r.id).max().unwrap(); // UUIDv7: the later sign-in
    let done = laptop
        .post(
            &format!("/account/sessions/{phone_id}/end"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(laptop.is_signed_in().await);
    assert!(!phone.is_signed_in().await);

    // Someone else's session id is not ours to end.
    let bob = Browser::new(&app);
    bob.sign_up("bob@example.com", PASSWORD).await;
    let ada_session = session::Entity::find().all(&app.state.db).await.unwrap()[0].id;
    let bob_page = bob.get("/account").await;
    bob.post(
        &format!("/account/sessions/{ada_session}/end"),
        &[("csrf", &bob_page.csrf())],
    )
    .await;
    assert!(laptop.is_signed_in().await);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_other_sessions() {
    let app = common::spawn_app().await;
    let laptop = Browser::new(&app);
    laptop.sign_up("ada@example.com", PASSWORD).await;
    let phone = Browser::new(&app);
    phone.sign_in("ada@example.com", PASSWORD).await;
    let new_password = "quiet harbour lanterns";

    let wrong = laptop
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", new_password),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("current password is incorrect"));

    let weak = laptop
        .submit(
            "/account",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(weak.status, 400);

    let done = laptop
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .await;
    assert_eq!(done.status, 200);
    assert!(done.body.contains("Your password was changed"));
    assert!(laptop.is_signed_in().await);
    assert!(!phone.is_signed_in().await);

    let fresh = Browser::new(&app);
    assert_eq!(fresh.sign_in("ada@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        fresh.sign_in("ada@example.com", new_password).await.status,
        303
    );
}

#[tokio::test]
async fn a_new_session_id_is_issued_at_every_sign_in() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let first = session_cookie_value(&browser.sign_up("ada@example.com", PASSWORD).await);
    browser.submit("/account", "/logout", &[]).await;
    let second = session_cookie_value(&browser.sign_in("ada@example.com", PASSWORD).await);
    assert_ne!(first, second);
}

#[tokio::test]
async fn session_cookie_flags_on_http_and_https_issuers() {
    let app = common::spawn_app().await;
    let page = Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("tessera_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");

    let https = common::spawn_app_with(|env| {
        env.insert("TESSERA_ISSUER".into(), "https://id.example.com".into());
    })
    .await;
    let page = Browser::new(&https)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-tessera="))
        .expect("__Host- cookie");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn return_to_only_returns_to_this_server() {
    let app = common::spawn_app().await;
    Browser::new(&app)
        .sign_up("ada@example.com", PASSWORD)
        .await;
    for (return_to, expected) in [
        ("/account?tab=sessions", "/account?tab=sessions"),
        ("https://evil.example/", "/account"),
        ("//evil.example/", "/account"),
        ("/\\evil.example", "/account"),
    ] {
        let browser = Browser::new(&app);
        let page = browser
            .submit(
                "/login",
                "/login",
                &[
                    ("email", "ada@example.com"),
                    ("password", PASSWORD),
                    ("return_to", return_to),
                ],
            )
            .await;
        assert_eq!(page.location(), Some(expected), "{return_to}");
    }
}

#[tokio::test]
async fn pages_have_a_strict_csp_and_are_not_cached() {
    let app = common::spawn_app().await;
    let page = Browser::new(&app).get("/login").await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(!page.body.contains("<script"), "no inline script");
    let css = Browser::new(&app).get("/static/tessera.css").await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn a_malformed_form_gets_an_html_error_page() {
    let app = common::spawn_app().await;
    let response = app
        .client
        .post(app.url("/login"))
        .header("content-type", "application/json")
        .body("{\"email\": \"ada@example.com\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("<html"));
    let huge = "a".repeat(64 * 1024);
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[("email", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("<html"));
}

#[tokio::test]
async fn a_weaker_password_hash_is_upgraded_at_the_next_sign_in() {
    let app = common::spawn_app().await;
    let weak = tessera::identity::password::PasswordHasher::new(tessera::config::Argon2Settings {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    tessera::identity::users::create(
        &app.state.db,
        &weak,
        "ada@example.com",
        PASSWORD,
        tessera::identity::users::NewAddress::Verified,
    )
    .await
    .unwrap();
    let before = user::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(before.password_hash.as_deref().unwrap().contains("m=256,"));
    assert_eq!(
        Browser::new(&app)
            .sign_in("ada@example.com", PASSWORD)
            .await
            .status,
        303
    );
    let after = user::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        after
            .password_hash
            .as_deref()
            .unwrap()
            .contains("m=1024,t=1,p=1$"),
        "{:?}",
        after.password_hash
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        Browser::new(&app)
            .sign_in("ada@example.com", PASSWORD)
            .await
            .status,
        303
    );
}

/// Issue 18 §4: an address means one person whatever its case — one account, and
/// sign-in in any case reaches it.
#[tokio::test]
async fn an_email_in_another_case_is_the_same_account() {
    let app = common::spawn_app().await;
    assert_eq!(
        Browser::new(&app)
            .sign_up("Alice@Example.com", PASSWORD)
            .await
            .status,
        303
    );
    let taken = Browser::new(&app)
        .sign_up("alice@example.com", PASSWORD)
        .await;
    assert_eq!(taken.status, 409);
    assert_eq!(user_count(&app).await, 1);
    assert_eq!(
        Browser::new(&app)
            .sign_in("ALICE@EXAMPLE.COM", PASSWORD)
            .await
            .status,
        303
    );
    let stored = user::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(stored[0].email, "alice@example.com");
}

/// Issue 18 §6: the server's root answers a person, not with a JSON 404.
#[tokio::test]
async fn the_root_sends_a_person_to_their_account() {
    let app = common::spawn_app().await;
    let root = Browser::new(&app).get("/").await;
    assert_eq!(root.status, 303);
    assert_eq!(root.location(), Some("/account"));
}
