//! A real browser (Debian's headless Chromium, driven through ChromeDriver's W3C
//! WebDriver API) signs up, signs out, signs in and sees the account page, finding
//! every field and button by the label a person reads.
//!
//! Skipped when `chromedriver` is not installed, unless `TESSERA_TEST_REQUIRE_BROWSER`
//! is set (CI sets it). With `TESSERA_SCREENSHOTS_DIR` set, it also saves each page
//! at 1280 px and 390 px wide there.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn find_binary(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Driver {
    async fn start() -> Option<Driver> {
        let required = std::env::var_os("TESSERA_TEST_REQUIRE_BROWSER").is_some();
        let driver = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chromium = find_binary(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(
                !required,
                "chromium and chromedriver are required but not installed"
            );
            eprintln!("skipped: chromium/chromedriver not installed");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut driver = Driver {
            process,
            http,
            base,
            session: String::new(),
            _profile: profile,
        };
        let created = driver.call("POST", "/session", capabilities).await;
        driver.session = created["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        Some(driver)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err((error, message)) => panic!("webdriver {method} {path}: {error} {message}"),
        }
    }

    /// The WebDriver answer, or its `(error, message)`.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Value,
    ) -> Result<Value, (String, String)> {
        let url = if path == "/session" {
            format!("{}/session", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let response: Value = request
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        if let Some(error) = response["value"].get("error") {
            return Err((
                error.as_str().unwrap_or_default().to_owned(),
                response["value"]["message"].to_string(),
            ));
        }
        Ok(response["value"].clone())
    }

    /// Clicks the element `xpath` finds. A click on an element that went stale
    /// (the page it was found on was replaced in between) did not happen, so it
    /// is found again on the page now shown and clicked there.
    async fn click(&self, xpath: &str) {
        for _ in 0..20 {
            let element = self.find(xpath).await;
            match self
                .try_call("POST", &format!("/element/{element}/click"), json!({}))
                .await
            {
                Ok(_) => return,
                Err((error, _)) if error == "stale element reference" => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err((error, message)) => panic!("webdriver click {xpath}: {error} {message}"),
            }
        }
        panic!("{xpath} stayed stale");
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn current_path(&self) -> String {
        let url = self.call("GET", "/url", json!({})).await;
        let url = url::Url::parse(url.as_str().unwrap()).unwrap();
        url.path().to_owned()
    }

    async fn find(&self, xpath: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({ "using": "xpath", "value": xpath }),
            )
            .await;
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {xpath}: {found}"))
            .to_owned()
    }

    /// Types into the field whose `<label>` reads `label`, as a person would find it.
    async fn fill(&self, label: &str, text: &str) {
        let label_el = self
            .find(&format!("//label[normalize-space()='{label}']"))
            .await;
        let target = self
            .call(
                "GET",
                &format!("/element/{label_el}/attribute/for"),
                json!({}),
            )
            .await;
        let field = self
            .find(&format!(
                "//*[@id='{}']",
                target.as_str().expect("label has for=")
            ))
            .await;
        self.call("POST", &format!("/element/{field}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{field}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click_link(&self, text: &str) {
        self.click(&format!("//a[normalize-space()='{text}']"))
            .await;
    }

    async fn click_button(&self, text: &str) {
        self.click(&format!("//button[normalize-space()='{text}']"))
            .await;
    }

    async fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        while self.current_path().await != path {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never reached {path}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the browser is at a URL starting with `prefix` (another
    /// origin, after a redirect).
    async fn wait_for_url(&self, prefix: &str) {
        let started = Instant::now();
        loop {
            let url = self.call("GET", "/url", json!({})).await;
            if url.as_str().unwrap_or_default().starts_with(prefix) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never reached {prefix}: at {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page shows `text` (a submitted form may still be loading).
    async fn wait_for_text(&self, text: &str) {
        let started = Instant::now();
        loop {
            let source = self.call("GET", "/source", json!({})).await;
            if source.as_str().unwrap_or_default().contains(text) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "page never showed {text:?}: {source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the page at a URL containing `part`: after a GET form is
    /// submitted the old page still holds matching text for a moment, and an
    /// element found on it goes stale when the new page replaces it.
    async fn wait_for_url_containing(&self, part: &str) {
        let started = Instant::now();
        loop {
            let url = self.call("GET", "/url", json!({})).await;
            if url.as_str().unwrap_or_default().contains(part) {
                let state = self
                    .call(
                        "POST",
                        "/execute/sync",
                        json!({ "script": "return document.readyState", "args": [] }),
                    )
                    .await;
                if state == "complete" {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never reached a URL with {part:?}: {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshots(&self, name: &str) {
        let Some(dir) = std::env::var_os("TESSERA_SCREENSHOTS_DIR") else {
            return;
        };
        std::fs::create_dir_all(&dir).unwrap();
        for (width, height, suffix) in [(1280, 900, "desktop"), (390, 844, "mobile")] {
            self.call(
                "POST",
                "/window/rect",
                json!({ "width": width, "height": height }),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let png = self.call("GET", "/screenshot", json!({})).await;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().unwrap())
                .unwrap();
            std::fs::write(
                PathBuf::from(&dir).join(format!("{name}-{suffix}.png")),
                bytes,
            )
            .unwrap();
        }
        self.call(
            "POST",
            "/window/rect",
            json!({ "width": 1280, "height": 900 }),
        )
        .await;
    }
}

#[tokio::test]
async fn a_person_signs_up_signs_out_signs_in_and_sees_their_account() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = common::spawn_app().await;

    browser.goto(&app.url("/signup")).await;
    browser.screenshots("signup").await;
    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", "short").await;
    browser.click_button("Create account").await;
    browser.wait_for_text("Use at least 12 characters.").await;
    browser.screenshots("signup-error").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Create account").await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("Your account").await;
    browser.wait_for_text("grace@example.com").await;
    browser.wait_for_text("This device").await;
    browser.screenshots("account").await;

    // The header's sign-out comes first in the page.
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    browser.screenshots("login").await;

    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", "not the right password").await;
    browser.click_button("Sign in").await;
    browser
        .wait_for_text("The email or password is incorrect.")
        .await;
    browser.screenshots("login-error").await;

    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("grace@example.com").await;

    browser.call("DELETE", "", json!({})).await;
}

#[tokio::test]
async fn a_person_picks_an_organization_and_allows_an_application_in_the_browser() {
    use tessera::orgs::{self, Role};
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = common::spawn_app().await;
    browser.goto(&app.url("/signup")).await;
    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Create account").await;
    browser.wait_for_path("/account").await;
    // Accepting an invitation needs the address verified: the mailed link.
    common::smtp::verify_address(&app, "grace@example.com").await;

    let grace = tessera::identity::users::find_by_email(&app.state.db, "grace@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut acme = None;
    for (name, role) in [("Acme Corp", Role::Owner), ("Globex", Role::Member)] {
        let org = orgs::create(&app.state.db, name, None).await.unwrap();
        orgs::add_member(&app.state.db, org.id, grace, role)
            .await
            .unwrap();
        acme.get_or_insert(org.id);
    }
    let acme = acme.unwrap();
    let linus = tessera::identity::users::create(
        &app.state.db,
        &app.state.passwords,
        "linus@example.com",
        common::PASSWORD,
        tessera::identity::users::NewAddress::Verified,
    )
    .await
    .unwrap();
    orgs::add_member(&app.state.db, acme, linus.id, Role::Member)
        .await
        .unwrap();

    // An invitation, accepted in the browser.
    let initech = orgs::create(&app.state.db, "Initech", None).await.unwrap();
    let token = orgs::invitations::invite(
        &app.state.db,
        &app.state.mail,
        initech.id,
        "grace@example.com",
        Role::Admin,
    )
    .await
    .unwrap();
    browser
        .goto(&app.url(&format!("/invitations/{token}")))
        .await;
    browser.wait_for_text("Join Initech").await;
    browser.screenshots("invitation").await;
    browser.click_button("Accept invitation").await;
    browser.wait_for_text("You joined Initech.").await;

    // The owner makes Linus an admin from the account page.
    browser.goto(&app.url("/account")).await;
    browser.wait_for_text("Members of Acme Corp").await;
    browser.screenshots("account-organizations").await;
    browser.click("//select[@id=//label[normalize-space()='Role of linus@example.com']/@for]/option[@value='admin']").await;
    browser
        .click("//button[@aria-label='Change role of linus@example.com']")
        .await;
    browser
        .wait_for_text("The role was changed to admin.")
        .await;
    let roles = orgs::memberships_of(&app.state.db, linus.id).await.unwrap();
    assert_eq!(roles[0].role, Role::Admin);

    // The client on another origin, listening for real.
    let listener = common::ClientListener::start().await;
    let callback = listener.url("/cb");
    let mut new = common::oauth::new_client();
    new.name = "Orders Dashboard".into();
    new.scope = "openid profile email org".into();
    new.redirect_uris = vec![callback.clone()];
    let client = common::oauth::register(&app, new).await;
    let (_, challenge) = common::oauth::pkce();
    let changes = [
        ("scope", "openid email org"),
        ("redirect_uri", callback.as_str()),
    ];
    browser
        .goto(&app.url(&common::oauth::authorize_path(
            &client.id, &challenge, &changes,
        )))
        .await;
    browser.wait_for_text("Choose an organization").await;
    browser.screenshots("organization-picker").await;
    browser
        .click("//button[.//span[normalize-space()='Globex']]")
        .await;
    browser.wait_for_text("Allow Orders Dashboard?").await;
    browser.screenshots("consent").await;
    browser.click_button("Allow").await;
    // The browser arrives at the client with a code.
    listener.code(1).await;
    browser.call("DELETE", "", json!({})).await;
}

#[tokio::test]
async fn a_person_signs_up_and_in_with_a_passkey_and_authorizes_an_application_with_it() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    // WebAuthn needs a domain: the server calls itself localhost.
    let app = common::spawn_app_on_localhost().await;
    browser.goto(&app.url("/signup")).await;
    // A platform authenticator that keeps discoverable credentials and verifies
    // its user, as a phone or laptop does (WebAuthn §11, WebDriver extension).
    browser
        .call(
            "POST",
            "/webauthn/authenticator",
            json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserConsenting": true,
                "isUserVerified": true,
            }),
        )
        .await;
    browser.wait_for_text("Create account with a passkey").await;
    browser.fill("Email", "hedy@example.com").await;
    browser.screenshots("signup-passkey").await;
    browser.click_button("Create account with a passkey").await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("Passkeys").await;
    browser.wait_for_text("signs in with passkeys only").await;
    browser.screenshots("account-passkeys").await;
    let user = tessera::identity::users::find_by_email(&app.state.db, "hedy@example.com")
        .await
        .unwrap()
        .expect("the account exists");
    assert!(user.password_hash.is_none());

    // The account page offers a passkey-only account a password as a second way in.
    browser.fill("New password", common::PASSWORD).await;
    browser.click_button("Set password").await;
    browser.wait_for_text("Your password was set").await;
    browser.wait_for_text("Change password").await;
    let user = tessera::identity::users::find_by_email(&app.state.db, "hedy@example.com")
        .await
        .unwrap()
        .expect("the account exists");
    assert!(user.password_hash.is_some());

    // Passkey autofill (conditional mediation): the virtual authenticator answers
    // the Email field's offer at once, as a person picking it from the list would.
    browser.click_button("Sign out").await;
    let first_use = passkey_used_after(&app, None).await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("hedy@example.com").await;

    // Without autofill support, the button does it.
    browser
        .call(
            "POST",
            "/goog/cdp/execute",
            json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);" },
            }),
        )
        .await;
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    browser.wait_for_text("Sign in with a passkey").await;
    browser.screenshots("login-passkey").await;
    browser.click_button("Sign in with a passkey").await;
    passkey_used_after(&app, Some(first_use)).await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("hedy@example.com").await;

    // Signed out again, an application sends Hedy to sign in; the passkey does it.
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    // The client on another origin (127.0.0.1 while the server is localhost).
    let listener = common::ClientListener::start().await;
    let callback = listener.url("/cb");
    let mut new = common::oauth::new_client();
    new.name = "Orders Dashboard".into();
    new.redirect_uris = vec![callback.clone()];
    let client = common::oauth::register(&app, new).await;
    let (verifier, challenge) = common::oauth::pkce();
    browser
        .goto(&app.url(&common::oauth::authorize_path(
            &client.id,
            &challenge,
            &[("redirect_uri", callback.as_str())],
        )))
        .await;
    browser.wait_for_path("/login").await;
    browser.wait_for_text("Sign in with a passkey").await;
    browser.click_button("Sign in with a passkey").await;
    browser.wait_for_text("Allow Orders Dashboard?").await;
    browser.click_button("Allow").await;
    let answer = listener.code(1).await;
    let code = common::oauth::param(&answer, "code")
        .expect("a code")
        .to_owned();
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let id_token =
        jsonwebtoken::dangerous::insecure_decode::<Value>(tokens["id_token"].as_str().unwrap())
            .unwrap()
            .claims;
    // A device-bound platform key, verified user; no password was involved.
    assert_eq!(id_token["amr"], json!(["hwk", "user"]));

    // A browser without WebAuthn is told so instead of offered a dead button.
    browser
        .call(
            "POST",
            "/goog/cdp/execute",
            json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": "delete window.PublicKeyCredential;" },
            }),
        )
        .await;
    browser.goto(&app.url("/login?prompt=login")).await;
    browser
        .wait_for_text("This browser cannot use passkeys.")
        .await;
    browser.call("DELETE", "", json!({})).await;
}

/// Waits until the (only) passkey's last use is later than `after`: proof that a
/// passkey sign-in happened, not just that a page is showing.
async fn passkey_used_after(
    app: &common::TestApp,
    after: Option<chrono::DateTime<chrono::Utc>>,
) -> chrono::DateTime<chrono::Utc> {
    use sea_orm::EntityTrait;
    let started = Instant::now();
    loop {
        let rows = tessera::store::entities::passkey::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap();
        if let Some(used) = rows.first().and_then(|r| r.last_used_at)
            && after.is_none_or(|a| used > a)
        {
            return used;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no passkey sign-in happened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 18 §1: Chromium applies `form-action` to the redirects after a form, so
/// every form that can end at a client must name the client's origin. The client
/// here is on another origin with a real listener, as in the world.
#[tokio::test]
async fn an_application_on_another_origin_gets_every_answer_in_the_browser() {
    use tessera::orgs::{self, Role};
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = common::spawn_app().await;
    let listener = common::ClientListener::start().await;
    let callback = listener.url("/cb");
    let mut new = common::oauth::new_client();
    new.name = "Orders Dashboard".into();
    new.scope = "openid profile email org".into();
    new.redirect_uris = vec![callback.clone()];
    new.post_logout_redirect_uris = vec![listener.url("/signed-out")];
    let client = common::oauth::register(&app, new).await;
    let grace = tessera::identity::users::create(
        &app.state.db,
        &app.state.passwords,
        "grace@example.com",
        common::PASSWORD,
        tessera::identity::users::NewAddress::Verified,
    )
    .await
    .unwrap();
    let (_, challenge) = common::oauth::pkce();
    let authorize = |changes: &[(&str, &str)]| {
        let mut all = vec![("redirect_uri", callback.as_str())];
        all.extend_from_slice(changes);
        app.url(&common::oauth::authorize_path(&client.id, &challenge, &all))
    };

    // First sign-in with a password, then consent: Allow.
    browser.goto(&authorize(&[("scope", "openid email")])).await;
    browser.wait_for_path("/login").await;
    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.wait_for_text("Allow Orders Dashboard?").await;
    browser.click_button("Allow").await;
    let answer = listener.code(1).await;
    assert_eq!(
        common::oauth::param(&answer, "iss"),
        Some(app.state.settings.issuer_str())
    );

    // Deny: the error goes to the client.
    browser
        .goto(&authorize(&[
            ("scope", "openid email"),
            ("prompt", "consent"),
        ]))
        .await;
    browser.wait_for_text("Allow Orders Dashboard?").await;
    browser.click_button("Deny").await;
    let answer = listener.wait_for("/cb", 2).await;
    assert_eq!(
        common::oauth::param(&answer, "error"),
        Some("access_denied")
    );
    assert_eq!(common::oauth::param(&answer, "state"), Some("st-123"));

    // A returning person whose consent is remembered: the sign-in form itself
    // ends at the client (POST /login → 303 /authorize → 303 client).
    browser.goto(&app.url("/account")).await;
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    browser.goto(&authorize(&[("scope", "openid email")])).await;
    browser.wait_for_path("/login").await;
    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    listener.code(3).await;

    // The organization picker: with consent already given for the scope, the
    // choice itself ends at the client.
    for (name, role) in [("Acme Corp", Role::Owner), ("Globex", Role::Member)] {
        let org = orgs::create(&app.state.db, name, None).await.unwrap();
        orgs::add_member(&app.state.db, org.id, grace.id, role)
            .await
            .unwrap();
    }
    tessera::oauth::consent::remember(&app.state.db, grace.id, &client.id, "openid org")
        .await
        .unwrap();
    browser.goto(&authorize(&[("scope", "openid org")])).await;
    browser.wait_for_text("Choose an organization").await;
    browser
        .click("//button[.//span[normalize-space()='Globex']]")
        .await;
    listener.code(4).await;

    // RP-initiated logout without an id_token_hint: the person confirms, then
    // lands on the client's registered post-logout URI with its state.
    let logout = format!(
        "/end_session?client_id={}&post_logout_redirect_uri={}&state=bye",
        client.id,
        url::form_urlencoded::byte_serialize(listener.url("/signed-out").as_bytes())
            .collect::<String>()
    );
    browser.goto(&app.url(&logout)).await;
    browser.wait_for_text("asks to sign you out").await;
    browser
        .click("//form[@action='/end_session/confirm']//button[normalize-space()='Sign out']")
        .await;
    let answer = listener.wait_for("/signed-out", 1).await;
    assert_eq!(common::oauth::param(&answer, "state"), Some("bye"));
    assert_eq!(listener.count("/cb"), 4);
    browser.call("DELETE", "", json!({})).await;
}

#[tokio::test]
async fn a_person_creates_copies_and_revokes_an_api_token_on_the_account_page() {
    use tessera::orgs::{self, Role, apis};
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = common::spawn_app().await;
    let scopes = ["projects:read".to_owned(), "projects:write".to_owned()];
    apis::create(
        &app.state.db,
        "Projects API",
        "https://projects.example.com",
        &scopes,
    )
    .await
    .unwrap();
    apis::grant(
        &app.state.db,
        "https://projects.example.com",
        Role::Member,
        &scopes[..1],
    )
    .await
    .unwrap();
    browser.goto(&app.url("/signup")).await;
    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Create account").await;
    browser.wait_for_path("/account").await;
    let grace = tessera::identity::users::find_by_email(&app.state.db, "grace@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let acme = orgs::create(&app.state.db, "Acme Corp", None)
        .await
        .unwrap();
    orgs::add_member(&app.state.db, acme.id, grace, Role::Member)
        .await
        .unwrap();

    browser.goto(&app.url("/account")).await;
    browser.wait_for_text("API tokens").await;
    browser.fill("Name", "nightly export").await;
    browser
        .click("//input[@name='scope' and @value='projects:read']")
        .await;
    browser.click_button("Create token").await;
    browser.wait_for_text("Copy your new token now").await;
    browser
        .call(
            "POST",
            "/execute/sync",
            json!({ "script": "document.getElementById('api-tokens').scrollIntoView()", "args": [] }),
        )
        .await;
    browser.screenshots("account-api-tokens").await;
    let field = browser.find("//input[@id='new-api-token']").await;
    let token = browser
        .call(
            "GET",
            &format!("/element/{field}/property/value"),
            json!({}),
        )
        .await;
    let token = token.as_str().expect("the token").to_owned();
    assert!(token.starts_with("tsr_pat_"), "{token}");
    browser.click_button("Copy").await;
    browser.wait_for_text("nightly export").await;
    let active = tessera::identity::pats::authenticate(&app.state.db, &token)
        .await
        .unwrap()
        .expect("the token works");
    assert_eq!(active.scopes, ["projects:read"]);

    browser
        .click("//button[@aria-label='Revoke nightly export']")
        .await;
    let started = Instant::now();
    loop {
        let source = browser.call("GET", "/source", json!({})).await;
        if !source
            .as_str()
            .unwrap_or_default()
            .contains("nightly export")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never revoked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tessera::identity::pats::authenticate(&app.state.db, &token)
            .await
            .unwrap()
            .is_none()
    );
}

/// Everything mail carries, followed in the browser as a person would: the
/// messages come through a real SMTP server (aiosmtpd), the links are taken
/// from them.
#[tokio::test]
async fn a_person_follows_mailed_links_to_verify_reset_and_join() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let Some(smtp) = common::smtp::start().await else {
        return;
    };
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SMTP_URL".into(), smtp.url());
        env.insert(
            "TESSERA_MAIL_FROM".into(),
            "Tessera <id@example.com>".into(),
        );
    })
    .await;

    // Sign-up → the verification message → its link.
    browser.goto(&app.url("/signup")).await;
    browser.fill("Email", "grace@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Create account").await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("Email not verified").await;
    browser.wait_for_text("Resend verification email").await;
    browser.screenshots("account-unverified").await;
    let message = smtp
        .message_to("grace@example.com", "Verify your email address")
        .await;
    // The message as a mail client shows it.
    let rendered = tempfile::Builder::new().suffix(".html").tempfile().unwrap();
    std::fs::write(rendered.path(), message.part("text/html").unwrap()).unwrap();
    browser
        .goto(&format!("file://{}", rendered.path().display()))
        .await;
    browser.wait_for_text("Verify email").await;
    browser.screenshots("mail-verify-email").await;
    browser
        .goto(&message.link(&app.url("/email/verify/")))
        .await;
    browser.wait_for_text("Email verified").await;
    browser.screenshots("email-verified").await;
    browser.goto(&app.url("/account")).await;
    browser.wait_for_text("Verified").await;

    // Forgot password → the reset message → a new password → signed in.
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    browser.click_link("Forgot password?").await;
    browser.wait_for_path("/password/forgot").await;
    browser.fill("Email", "grace@example.com").await;
    browser.click_button("Send reset link").await;
    browser
        .wait_for_text("If an account exists for that address, we sent a link")
        .await;
    browser.screenshots("forgot-password").await;
    let reset = smtp
        .message_to("grace@example.com", "Reset your password")
        .await;
    browser
        .goto(&reset.link(&app.url("/password/reset/")))
        .await;
    browser.wait_for_text("Set a new password").await;
    browser.screenshots("reset-password").await;
    browser
        .fill("New password", "violet giraffes sing loudly")
        .await;
    browser.click_button("Set new password").await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("grace@example.com").await;
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    browser.fill("Email", "grace@example.com").await;
    browser
        .fill("Password", "violet giraffes sing loudly")
        .await;
    browser.click_button("Sign in").await;
    browser.wait_for_path("/account").await;

    // An invitation by mail, accepted by the invited (verified) person.
    let grace = tessera::identity::users::find_by_email(&app.state.db, "grace@example.com")
        .await
        .unwrap()
        .unwrap();
    let org = tessera::orgs::create(&app.state.db, "Initech", None)
        .await
        .unwrap();
    tessera::orgs::add_member(&app.state.db, org.id, grace.id, tessera::orgs::Role::Owner)
        .await
        .unwrap();
    browser.goto(&app.url("/account")).await;
    browser.fill("Invite by email", "linus@example.com").await;
    browser.click_button("Invite").await;
    browser
        .wait_for_text("Invitation sent to linus@example.com")
        .await;
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    let invitation = smtp
        .message_to("linus@example.com", "You are invited to join Initech")
        .await;
    browser
        .goto(&invitation.link(&app.url("/invitations/")))
        .await;
    browser.wait_for_path("/login").await;
    browser.click_link("Create an account").await;
    browser.wait_for_path("/signup").await;
    browser.fill("Email", "linus@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Create account").await;
    browser.wait_for_text("Join Initech").await;
    browser.click_button("Accept invitation").await;
    browser
        .wait_for_text("Verify your address linus@example.com first")
        .await;
    let verify = smtp
        .message_to("linus@example.com", "Verify your email address")
        .await;
    browser.goto(&verify.link(&app.url("/email/verify/"))).await;
    browser.wait_for_text("Email verified").await;
    browser
        .goto(&invitation.link(&app.url("/invitations/")))
        .await;
    browser.wait_for_text("Join Initech").await;
    browser.click_button("Accept invitation").await;
    browser.wait_for_text("You joined Initech.").await;

    browser.call("DELETE", "", json!({})).await;
}

/// `TESSERA_REQUIRE_VERIFIED_EMAIL`: an application on another origin gets no
/// code until the person has followed the mailed link; then "continue" resumes
/// the same request and the code arrives.
#[tokio::test]
async fn an_unverified_person_verifies_before_an_application_gets_a_code() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REQUIRE_VERIFIED_EMAIL".into(), "true".into());
    })
    .await;
    let listener = common::ClientListener::start().await;
    let callback = listener.url("/cb");
    let mut new = common::oauth::new_client();
    new.first_party = true;
    new.redirect_uris = vec![callback.clone()];
    let client = common::oauth::register(&app, new).await;
    let (_, challenge) = common::oauth::pkce();
    let authorize = app.url(&common::oauth::authorize_path(
        &client.id,
        &challenge,
        &[("redirect_uri", callback.as_str()), ("scope", "openid")],
    ));

    browser.goto(&authorize).await;
    browser.wait_for_path("/login").await;
    browser.click_link("Create an account").await;
    browser.wait_for_path("/signup").await;
    browser.fill("Email", "ada@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Create account").await;
    browser.wait_for_text("Verify your email to continue").await;
    browser.screenshots("verify-email-first").await;
    assert_eq!(listener.count("/cb"), 0, "no code before verification");

    browser.click_button("Resend verification email").await;
    browser
        .wait_for_text("We sent a new verification link")
        .await;
    let link = common::smtp::outbox_message(&app, "ada@example.com", "Verify your email address")
        .await
        .link(&app.url("/email/verify/"));
    // Opened from the mailbox on another device; this browser continues.
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);
    browser
        .click_link("I have verified my address — continue")
        .await;
    listener.code(1).await;

    browser.call("DELETE", "", json!({})).await;
}

/// Issue 23 in a real browser: a second Tessera process on another host is
/// the upstream provider; an application on a third origin asks for a code.
/// Chromium signs up through the provider (consent at both servers, each
/// form ending on another origin), signs in again, is refused silent linking
/// and links by signing in, disconnects, and finds the login page working —
/// the button saying unavailable — with the provider down.
#[tokio::test]
async fn people_sign_in_with_another_provider_in_chromium() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    // Cookies are per host, not per port: the provider lives on 127.0.0.1,
    // this server on localhost, as two sites would.
    let app = common::spawn_app_on_localhost().await;
    let mut upstream = common::upstream::Upstream::start().await;
    upstream.person("ada@example.com");
    upstream.person("bob@example.com");
    upstream.register_as(&app, "up", "Upstream ID", &[], &["--trust-email"]);
    let listener = common::ClientListener::start().await;
    let callback = listener.url("/cb");
    let mut new = common::oauth::new_client();
    new.name = "Orders Dashboard".into();
    new.redirect_uris = vec![callback.clone()];
    let client = common::oauth::register(&app, new).await;
    let (_, challenge) = common::oauth::pkce();
    let authorize = app.url(&common::oauth::authorize_path(
        &client.id,
        &challenge,
        &[
            ("redirect_uri", callback.as_str()),
            ("scope", "openid email"),
        ],
    ));
    let at = |base: &str, path: &str| format!("{base}{path}");

    // First sign-in: an account is made from the provider's account.
    browser.goto(&authorize).await;
    browser.wait_for_path("/login").await;
    browser.wait_for_text("Continue with Upstream ID").await;
    browser.screenshots("login-providers").await;
    browser.click_link("Continue with Upstream ID").await;
    browser.wait_for_url(&at(&upstream.base, "/login")).await;
    browser.fill("Email", "ada@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    // The provider's consent form ends at this server's callback (another
    // origin), which ends at this server's consent for the application.
    browser.wait_for_text("Allow Downstream?").await;
    browser.click_button("Allow").await;
    browser.wait_for_text("Allow Orders Dashboard?").await;
    browser.click_button("Allow").await;
    listener.code(1).await;
    let ada = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .expect("an account was made");
    assert!(ada.password_hash.is_none() && ada.email_verified_at.is_some());

    // Signed out here, still signed in at the provider: one click back in.
    browser.goto(&app.url("/account")).await;
    browser.wait_for_text("Connected accounts").await;
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    browser.goto(&authorize).await;
    browser.wait_for_path("/login").await;
    browser.click_link("Continue with Upstream ID").await;
    listener.code(2).await;

    // Bob has a password account here; the provider's same address does not
    // open it. He signs in to it once, and the provider is connected.
    tessera::identity::users::create(
        &app.state.db,
        &app.state.passwords,
        "bob@example.com",
        common::PASSWORD,
        tessera::identity::users::NewAddress::Verified,
    )
    .await
    .unwrap();
    browser.goto(&app.url("/account")).await;
    browser.click_button("Sign out").await;
    // (The sign-out's redirect must land before the next navigation.)
    browser.wait_for_path("/login").await;
    browser.goto(&at(&upstream.base, "/account")).await;
    browser.wait_for_text("Sign out").await;
    browser.click_button("Sign out").await;
    browser.wait_for_url(&at(&upstream.base, "/login")).await;
    browser.goto(&app.url("/login")).await;
    browser.click_link("Continue with Upstream ID").await;
    browser.wait_for_url(&at(&upstream.base, "/login")).await;
    browser.fill("Email", "bob@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.wait_for_text("Allow Downstream?").await;
    browser.click_button("Allow").await;
    browser
        .wait_for_text("Connect Upstream ID to your account")
        .await;
    browser.screenshots("connect-provider").await;
    browser.click_link("Sign in to connect").await;
    browser.wait_for_path("/login").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.wait_for_path("/account").await;
    browser.wait_for_text("Disconnect").await;
    browser
        .call(
            "POST",
            "/execute/sync",
            json!({ "script": "document.getElementById('connections-heading').scrollIntoView()", "args": [] }),
        )
        .await;
    browser.screenshots("account-connected").await;

    // Disconnect (the password stays); the account page offers to connect.
    browser
        .click("//button[normalize-space()='Disconnect']")
        .await;
    browser.wait_for_text("Connect Upstream ID").await;

    // The provider goes down: the button says so, passwords still work.
    browser.click_button("Sign out").await;
    browser.wait_for_path("/login").await;
    upstream.stop();
    app.state.federation.upstreams.refresh_due().await;
    browser.goto(&app.url("/login")).await;
    browser
        .wait_for_text("Upstream ID is unavailable right now")
        .await;
    browser.screenshots("login-provider-unavailable").await;
    browser.fill("Email", "bob@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.wait_for_path("/account").await;
    browser.call("DELETE", "", json!({})).await;
}

/// Issue 24 in a real browser: an administrator follows the header's link,
/// finds a person, disables them after confirming, and reads it in the audit
/// log — on desktop and phone widths.
#[tokio::test]
async fn an_administrator_finds_disables_and_audits_in_chromium() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = common::spawn_app().await;
    for (email, admin) in [
        ("root@example.com", true),
        ("grace@example.com", false),
        ("grant@example.com", false),
        ("ada@example.com", false),
    ] {
        common::account(&app, email, admin);
    }
    // Grace has signed in (and failed once) before.
    common::Browser::new(&app)
        .sign_in("grace@example.com", "not her password")
        .await;
    common::Browser::new(&app)
        .sign_in("grace@example.com", common::PASSWORD)
        .await;

    browser.goto(&app.url("/login")).await;
    browser.fill("Email", "root@example.com").await;
    browser.fill("Password", common::PASSWORD).await;
    browser.click_button("Sign in").await;
    browser.wait_for_path("/account").await;
    browser.click_link("Administration").await;
    browser.wait_for_path("/admin/users").await;
    browser.fill("Search by email", "gra").await;
    browser.click_button("Search").await;
    browser.wait_for_url_containing("search=gra").await;
    browser.wait_for_text("grant@example.com").await;
    let found = browser.call("GET", "/source", json!({})).await;
    assert!(
        !found.as_str().unwrap().contains("ada@example.com"),
        "the search lists only matching accounts"
    );
    browser.screenshots("admin-users").await;
    browser.click_link("grace@example.com").await;
    browser.wait_for_text("Recent events").await;
    browser.screenshots("admin-user").await;
    browser.click_link("Disable").await;
    browser.wait_for_text("Disable this account?").await;
    browser.screenshots("admin-confirm").await;
    browser.click_button("Disable").await;
    browser.wait_for_text("The account is disabled.").await;
    browser.click_link("Audit log").await;
    browser.wait_for_path("/admin/audit").await;
    browser
        .fill("Account (email or id)", "grace@example.com")
        .await;
    browser.click_button("Filter").await;
    browser.wait_for_url_containing("user=grace").await;
    browser.wait_for_text("Account disabled").await;
    browser.wait_for_text("by admin root@example.com").await;
    browser.wait_for_text("reason: wrong_password").await;
    browser.screenshots("admin-audit").await;
    browser.click_link("Keys").await;
    browser.wait_for_text("Signing keys").await;
    browser.screenshots("admin-keys").await;
    let grace = tessera::identity::users::find_by_email(&app.state.db, "grace@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(grace.disabled);
    browser.call("DELETE", "", json!({})).await;
}
