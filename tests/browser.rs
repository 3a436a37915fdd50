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
            panic!(
                "webdriver {method} {path}: {error} {}",
                response["value"]["message"]
            );
        }
        response["value"].clone()
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

    async fn click_button(&self, text: &str) {
        let button = self
            .find(&format!("//button[normalize-space()='{text}']"))
            .await;
        self.call("POST", &format!("/element/{button}/click"), json!({}))
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
    )
    .await
    .unwrap();
    orgs::add_member(&app.state.db, acme, linus.id, Role::Member)
        .await
        .unwrap();

    // An invitation, accepted in the browser.
    let initech = orgs::create(&app.state.db, "Initech", None).await.unwrap();
    let token =
        orgs::invitations::invite(&app.state.db, initech.id, "grace@example.com", Role::Admin)
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
    let admin_option = browser
        .find("//select[@id=//label[normalize-space()='Role of linus@example.com']/@for]/option[@value='admin']")
        .await;
    browser
        .call("POST", &format!("/element/{admin_option}/click"), json!({}))
        .await;
    let change = browser
        .find("//button[@aria-label='Change role of linus@example.com']")
        .await;
    browser
        .call("POST", &format!("/element/{change}/click"), json!({}))
        .await;
    browser
        .wait_for_text("The role was changed to admin.")
        .await;
    let roles = orgs::memberships_of(&app.state.db, linus.id).await.unwrap();
    assert_eq!(roles[0].role, Role::Admin);

    // A loopback redirect on the test server itself, so the browser can land there.
    let callback = app.url("/healthz");
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
    let globex = browser
        .find("//button[.//span[normalize-space()='Globex']]")
        .await;
    browser
        .call("POST", &format!("/element/{globex}/click"), json!({}))
        .await;
    browser.wait_for_text("Allow Orders Dashboard?").await;
    browser.screenshots("consent").await;
    browser.click_button("Allow").await;
    // The browser leaves for the client's (unreachable) redirect URI with a code.
    let started = Instant::now();
    loop {
        let url = browser.call("GET", "/url", json!({})).await;
        let url = url.as_str().unwrap_or_default().to_owned();
        if url.starts_with(&callback) {
            assert!(
                url.contains("code=") && url.contains("state=st-123"),
                "{url}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never left for the client: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let callback = app.url("/healthz");
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
    let started = Instant::now();
    let code = loop {
        let url = browser.call("GET", "/url", json!({})).await;
        let url = url.as_str().unwrap_or_default().to_owned();
        if url.starts_with(&callback) {
            let parsed = url::Url::parse(&url).unwrap();
            let code = parsed
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned());
            break code.expect("a code");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never left for the client: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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
