//! Passkeys over HTTP with a software authenticator (1Password's passkey-rs): sign-up without a password, discoverable sign-in, `amr` in
//! tokens, wrong origin, replayed and expired challenges, unknown credentials,
//! counter regression, user verification, and the removal rules.

mod common;

use ::passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use ::passkey::client::{Client, DefaultClientData};
use ::passkey::crypto::rust_crypto::RustCryptoBackend;
use ::passkey::types::ctap2::{Aaguid, Ctap2Error};
use ::passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use common::oauth::{authorize_path, exchange, new_client, param, pkce, redirect_params, register};
use common::{Browser, PASSWORD, TestApp};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use serde_json::{Value, json};
use tessera::identity::passkeys::{self, PasskeyError};
use tessera::store::entities::{passkey, user};
use url::Url;

/// The person in front of the authenticator: always present, and verified (PIN or
/// biometric) when `verifies`.
struct Owner {
    verifies: bool,
}

#[async_trait::async_trait]
impl UserValidationMethod for Owner {
    type PasskeyItem = ::passkey::types::Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Self::PasskeyItem>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence,
            verification: verification && self.verifies,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(self.verifies)
    }
}

type Key = Client<
    Option<::passkey::types::Passkey>,
    Owner,
    RustCryptoBackend,
    public_suffix::PublicSuffixList,
    (),
>;

/// A WebAuthn client with a CTAP 2 software authenticator that keeps discoverable
/// credentials (1Password's passkey-rs).
fn authenticator(verifies: bool) -> Key {
    let mut authenticator = Authenticator::new(
        Aaguid::new_empty(),
        None,
        Owner { verifies },
        RustCryptoBackend,
    );
    authenticator.set_make_credentials_with_signature_counter(true);
    Client::new(authenticator).allows_insecure_localhost(true)
}

async fn create(key: &mut Key, origin: &Url, mut options: Value, verifies: bool) -> Value {
    // An authenticator that cannot verify its user would not take a request that
    // requires it; relaxing the request on the client side lets the server's own
    // check be the one tested.
    if !verifies {
        options["publicKey"]["authenticatorSelection"]["userVerification"] = json!("discouraged");
    }
    let options: CredentialCreationOptions =
        serde_json::from_value(options).expect("creation options");
    let created = key
        .register(origin, options, DefaultClientData)
        .await
        .expect("the authenticator registers");
    wire(serde_json::to_value(created).unwrap())
}

async fn get(key: &mut Key, origin: &Url, mut options: Value) -> Value {
    // WebAuthn: an empty allowCredentials means "any discoverable credential", as
    // browsers treat it; passkey-rs reads it as "none of them", so drop it.
    if options["publicKey"]["allowCredentials"] == json!([])
        && let Some(pk) = options["publicKey"].as_object_mut()
    {
        pk.remove("allowCredentials");
    }
    let options: CredentialRequestOptions =
        serde_json::from_value(options).expect("request options");
    let asserted = key
        .authenticate(origin, options, DefaultClientData)
        .await
        .expect("the authenticator signs");
    wire(serde_json::to_value(asserted).unwrap())
}

/// passkey-rs serializes binary fields as arrays of numbers; on the wire (and in
/// our page script) they are base64url strings, as WebAuthn's JSON form has them.
fn wire(value: Value) -> Value {
    use base64::Engine;
    match value {
        Value::Array(items)
            if !items.is_empty() && items.iter().all(|v| v.as_u64().is_some_and(|n| n < 256)) =>
        {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|n| n as u8)
                .collect();
            Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(wire).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, wire(v))).collect()),
        other => other,
    }
}

/// A person with a browser (cookie jar) and an authenticator that verifies them.
struct Person {
    browser: Browser,
    key: Key,
    /// Whether the authenticator verifies its user (PIN, biometric).
    verifies: bool,
    origin: Url,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Person {
    fn new(app: &TestApp) -> Self {
        Self {
            browser: Browser::new(app),
            key: authenticator(true),
            verifies: true,
            origin: Url::parse(&app.base).unwrap(),
        }
    }

    async fn post_json(&self, path: &str, csrf: &str, body: Value) -> Answer {
        let response = self
            .browser
            .client
            .post(format!("{}{path}", self.browser.base))
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer { status, body }
    }

    async fn csrf(&self, page: &str) -> String {
        self.browser.get(page).await.csrf()
    }

    /// Starts passkey sign-up and has the authenticator answer for `origin`.
    async fn sign_up_as(&mut self, email: &str, origin: &Url) -> Answer {
        let csrf = self.csrf("/signup").await;
        let start = self
            .post_json("/passkeys/sign-up/start", &csrf, json!({ "email": email }))
            .await;
        assert_eq!(start.status, 200, "{}", start.body);
        let credential = create(&mut self.key, origin, start.body, self.verifies).await;
        self.post_json(
            "/passkeys/sign-up/finish",
            &csrf,
            json!({ "credential": credential }),
        )
        .await
    }

    async fn sign_up(&mut self, email: &str) -> Answer {
        let origin = self.origin.clone();
        self.sign_up_as(email, &origin).await
    }

    /// Options for a discoverable sign-in, then the authenticator's assertion.
    async fn assertion(&mut self, origin: &Url) -> (String, Value) {
        // `prompt=login` shows the sign-in page to a signed-in browser too.
        let csrf = self.csrf("/login?prompt=login").await;
        let start = self
            .post_json("/passkeys/sign-in/start", &csrf, json!({}))
            .await;
        assert_eq!(start.status, 200, "{}", start.body);
        let allowed = &start.body["publicKey"]["allowCredentials"];
        assert!(
            allowed.is_null() || allowed == &json!([]),
            "discoverable: the server names no credential"
        );
        let credential = get(&mut self.key, origin, start.body).await;
        (csrf, credential)
    }

    async fn sign_in_as(&mut self, origin: &Url) -> Answer {
        let (csrf, credential) = self.assertion(origin).await;
        self.finish_sign_in(&csrf, credential).await
    }

    async fn finish_sign_in(&self, csrf: &str, credential: Value) -> Answer {
        self.post_json(
            "/passkeys/sign-in/finish",
            csrf,
            json!({ "credential": credential, "return_to": "/account?welcome" }),
        )
        .await
    }

    async fn sign_in(&mut self) -> Answer {
        let origin = self.origin.clone();
        self.sign_in_as(&origin).await
    }

    async fn add_passkey(&mut self) -> Answer {
        let csrf = self.csrf("/account").await;
        let start = self
            .post_json("/account/passkeys/start", &csrf, json!({}))
            .await;
        if start.status != 200 {
            return start;
        }
        let origin = self.origin.clone();
        let credential = create(&mut self.key, &origin, start.body, self.verifies).await;
        self.post_json(
            "/account/passkeys/finish",
            &csrf,
            json!({ "credential": credential }),
        )
        .await
    }

    async fn sign_out(&self) {
        let csrf = self.csrf("/account").await;
        self.browser.post("/logout", &[("csrf", &csrf)]).await;
        assert!(!self.browser.is_signed_in().await);
    }
}

async fn passkeys_of(app: &TestApp) -> Vec<passkey::Model> {
    passkey::Entity::find().all(&app.state.db).await.unwrap()
}

fn claims(jwt: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_passkey_creates_an_account_without_a_password_and_signs_it_in_again() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    let login = ada.browser.get("/login").await;
    assert!(login.body.contains("Sign in with a passkey"));
    assert!(login.body.contains("autocomplete=\"username webauthn\""));

    let created = ada.sign_up("ada@example.com").await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["redirect"], "/account");
    let user = tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
        .await
        .unwrap()
        .expect("the account exists");
    assert!(user.password_hash.is_none(), "no password at all");
    let account = ada.browser.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("signs in with passkeys only"));
    assert!(account.body.contains("Passkey") && account.body.contains("last used never"));
    assert!(account.body.contains("Synced"), "backup state is shown");
    // A passkey sign-up proves a device, not the address: it gets a link too.
    assert!(account.body.contains("Email not verified"));
    let link = common::smtp::outbox_message(&app, "ada@example.com", "Verify your email address")
        .await
        .link(&app.url("/email/verify/"));
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);

    ada.sign_out().await;
    let signed_in = ada.sign_in().await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.body["redirect"], "/account?welcome");
    assert!(ada.browser.is_signed_in().await);
    let rows = passkeys_of(&app).await;
    assert!(rows[0].last_used_at.is_some(), "use is recorded");

    // No password sign-in exists for this account.
    ada.sign_out().await;
    let by_password = ada.browser.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(by_password.status, 401);
}

#[tokio::test]
async fn tokens_after_a_passkey_sign_in_carry_key_and_user_amr_never_pwd() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    ada.sign_out().await;
    assert_eq!(ada.sign_in().await.status, 200);

    let mut new = new_client();
    new.first_party = true;
    let client = register(&app, new).await;
    let (verifier, challenge) = pkce();
    let page = ada
        .browser
        .get(&authorize_path(&client.id, &challenge, &[]))
        .await;
    let code = param(&redirect_params(&page), "code").unwrap().to_owned();
    let tokens: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    for token in ["access_token", "id_token"] {
        let amr = claims(tokens[token].as_str().unwrap())["amr"].clone();
        // passkey-rs makes synced (backup-eligible) credentials: a software key.
        assert_eq!(amr, json!(["swk", "user"]), "{token}");
    }
}

#[tokio::test]
async fn a_ceremony_for_another_origin_is_refused() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    let mut phished = Url::parse(&app.base).unwrap();
    phished.set_host(Some("login.evil.example")).unwrap();
    let refused = ada.sign_up_as("ada@example.com", &phished).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(passkeys_of(&app).await.is_empty());
    assert!(
        tessera::identity::users::find_by_email(&app.state.db, "ada@example.com")
            .await
            .unwrap()
            .is_none(),
        "no account for a refused ceremony"
    );

    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    ada.sign_out().await;
    let elsewhere = ada.sign_in_as(&phished).await;
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.body);
    assert!(!ada.browser.is_signed_in().await);
}

#[tokio::test]
async fn a_challenge_answers_exactly_once() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    let passkeys = app.state.passkeys.as_ref().expect("passkeys are on");

    let started = passkeys.start_sign_in().await.unwrap();
    let origin = ada.origin.clone();
    let options = serde_json::to_value(&started.options).unwrap();
    let assertion: webauthn_rs::prelude::PublicKeyCredential =
        serde_json::from_value(get(&mut ada.key, &origin, options).await).unwrap();
    assert!(
        passkeys
            .finish_sign_in(&started.token, &assertion)
            .await
            .is_ok()
    );
    let replayed = passkeys.finish_sign_in(&started.token, &assertion).await;
    assert!(
        matches!(replayed, Err(PasskeyError::CeremonyExpired)),
        "a replay finds no challenge"
    );

    // Over HTTP: the finish without the browser's ceremony cookie finds nothing.
    let (csrf, credential) = ada.assertion(&ada.origin.clone()).await;
    let stranger = Person::new(&app);
    stranger.browser.get("/login").await;
    let stolen = stranger.finish_sign_in(&csrf, credential.clone()).await;
    assert_eq!(
        stolen.status, 403,
        "another browser's CSRF token: {}",
        stolen.body
    );
    let stranger_csrf = stranger.csrf("/login").await;
    let no_ceremony = stranger.finish_sign_in(&stranger_csrf, credential).await;
    assert_eq!(no_ceremony.status, 400, "{}", no_ceremony.body);
    assert!(
        no_ceremony.body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired or was already used")
    );
    assert!(!stranger.browser.is_signed_in().await);
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_TEST_ISSUER_HOST".into(), "localhost".into());
        env.insert("TESSERA_PASSKEY_CEREMONY_TTL".into(), "1".into());
    })
    .await;
    let passkeys = app.state.passkeys.as_ref().expect("passkeys are on");
    let mut key = authenticator(true);
    let origin = Url::parse(&app.base).unwrap();
    let started = passkeys.start_sign_up("ada@example.com").await.unwrap();
    let options = serde_json::to_value(&started.options).unwrap();
    let credential: webauthn_rs::prelude::RegisterPublicKeyCredential =
        serde_json::from_value(create(&mut key, &origin, options, true).await).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    // The browser still holds the token; the server has let the challenge go.
    let late = passkeys.finish_sign_up(&started.token, &credential).await;
    assert!(
        matches!(late, Err(PasskeyError::CeremonyExpired)),
        "an expired challenge is refused"
    );
    assert!(passkeys_of(&app).await.is_empty());
}

#[tokio::test]
async fn an_unknown_credential_is_refused() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    // The authenticator still holds the key; the server no longer knows it.
    passkey::Entity::delete_many()
        .exec(&app.state.db)
        .await
        .unwrap();
    ada.sign_out().await;
    let unknown = ada.sign_in().await;
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert_eq!(unknown.body["error"], "access_denied");
    assert!(!ada.browser.is_signed_in().await);
}

#[tokio::test]
async fn an_address_that_keeps_failing_passkey_sign_ins_must_wait() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_TEST_ISSUER_HOST".into(), "localhost".into());
        env.insert("TESSERA_LOGIN_MAX_FAILURES_PER_IP".into(), "2".into());
    })
    .await;
    let mut ada = Person::new(&app);
    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    passkey::Entity::delete_many()
        .exec(&app.state.db)
        .await
        .unwrap();
    ada.sign_out().await;
    assert_eq!(ada.sign_in().await.status, 401);
    // A ceremony begun while the address was still allowed...
    let origin = ada.origin.clone();
    let (csrf, pending) = ada.assertion(&origin).await;
    // ...then the last allowed failure, a password one: the count is per address.
    let wrong = Browser::new(&app)
        .sign_in("someone@example.com", "not the password at all")
        .await;
    assert_eq!(wrong.status, 401);
    // Finishing it now is refused too, before the assertion is even looked at.
    let finished = ada.finish_sign_in(&csrf, pending).await;
    assert_eq!(finished.status, 429, "{}", finished.body);
    assert_eq!(finished.body["error"], "too_many_requests");
    // Refused before any ceremony starts, with the time to wait.
    let csrf = ada.csrf("/login?prompt=login").await;
    let response = ada
        .browser
        .client
        .post(app.url("/passkeys/sign-in/start"))
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    // The same count guards passwords from that address.
    let password = Browser::new(&app)
        .sign_in("someone@example.com", PASSWORD)
        .await;
    assert_eq!(password.status, 429);
}

/// Sets every `counter` in the stored credential to `value`, as if the server had
/// already seen that count from this credential (a clone's use).
fn set_counter(value: &mut Value, counter: u64) -> bool {
    match value {
        Value::Object(map) => {
            let mut found = false;
            for (k, v) in map.iter_mut() {
                if k == "counter" && v.is_u64() {
                    *v = json!(counter);
                    found = true;
                } else {
                    found |= set_counter(v, counter);
                }
            }
            found
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |f, v| set_counter(v, counter) | f),
        _ => false,
    }
}

#[tokio::test]
async fn a_signature_counter_that_goes_backwards_is_refused() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    ada.sign_out().await;
    assert_eq!(ada.sign_in().await.status, 200);
    ada.sign_out().await;

    let row = passkeys_of(&app).await.remove(0);
    // webauthn-rs refuses a regression whether or not the credential is synced;
    // synced passkeys that count at all must count up too.
    assert!(row.backup_eligible);
    let mut stored: Value = serde_json::from_str(&row.credential).unwrap();
    assert!(set_counter(&mut stored, 1_000), "{stored}");
    let mut active = row.into_active_model();
    active.credential = Set(stored.to_string());
    active.update(&app.state.db).await.unwrap();

    let cloned = ada.sign_in().await;
    assert_eq!(cloned.status, 401, "{}", cloned.body);
    assert!(
        cloned.body["error_description"]
            .as_str()
            .unwrap()
            .contains("counter")
    );
    assert!(!ada.browser.is_signed_in().await);
}

#[tokio::test]
async fn a_passkey_without_user_verification_is_refused() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    ada.key = authenticator(false);
    ada.verifies = false;
    let unverified = ada.sign_up("ada@example.com").await;
    assert_eq!(unverified.status, 400, "{}", unverified.body);
    assert!(passkeys_of(&app).await.is_empty());
}

#[tokio::test]
async fn the_last_way_in_cannot_be_removed_and_passkeys_can_be_renamed() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    let first = passkeys_of(&app).await.remove(0).id;

    let refused = ada
        .browser
        .submit(
            "/account",
            &format!("/account/passkeys/{first}/remove"),
            &[],
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(refused.body.contains("only way to sign in"));

    // A second authenticator for the same account.
    ada.key = authenticator(true);
    let added = ada.add_passkey().await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.body["name"], "Passkey 2");
    let removed = ada
        .browser
        .submit(
            "/account",
            &format!("/account/passkeys/{first}/remove"),
            &[],
        )
        .await;
    assert_eq!(removed.status, 303);
    let second = passkeys_of(&app).await.remove(0).id;
    let last = ada
        .browser
        .submit(
            "/account",
            &format!("/account/passkeys/{second}/remove"),
            &[],
        )
        .await;
    assert_eq!(last.status, 409);

    let renamed = ada
        .browser
        .submit(
            "/account",
            &format!("/account/passkeys/{second}/rename"),
            &[("name", "Work laptop")],
        )
        .await;
    assert_eq!(renamed.status, 303);
    assert!(
        ada.browser
            .get("/account")
            .await
            .body
            .contains("Work laptop")
    );
    let blank = ada
        .browser
        .submit(
            "/account",
            &format!("/account/passkeys/{second}/rename"),
            &[("name", "  ")],
        )
        .await;
    assert_eq!(blank.status, 400);

    // Nobody renames or removes another account's passkey.
    let bob = Browser::new(&app);
    bob.sign_up("bob@example.com", PASSWORD).await;
    let foreign = bob
        .submit(
            "/account",
            &format!("/account/passkeys/{second}/remove"),
            &[],
        )
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(passkeys_of(&app).await.len(), 1);
}

#[tokio::test]
async fn removing_both_passkeys_at_once_leaves_one() {
    let app = common::spawn_app_on_localhost().await;
    let mut seen = Vec::new();
    for round in 0..6 {
        let mut person = Person::new(&app);
        let signed_up = person.sign_up(&format!("both{round}@example.com")).await;
        assert_eq!(signed_up.status, 200, "{}", signed_up.body);
        person.key = authenticator(true);
        let added = person.add_passkey().await;
        assert_eq!(added.status, 200, "{}", added.body);
        let fresh: Vec<passkey::Model> = passkeys_of(&app)
            .await
            .into_iter()
            .filter(|row| !seen.contains(&row.id))
            .collect();
        assert_eq!(fresh.len(), 2);
        seen.extend(fresh.iter().map(|row| row.id));
        let user = fresh[0].user_id;

        // Each removal alone is allowed (the other passkey remains); both at once
        // must not be.
        let (first, second) = tokio::join!(
            passkeys::remove(&app.state.db, &app.state.mail, user, fresh[0].id),
            passkeys::remove(&app.state.db, &app.state.mail, user, fresh[1].id),
        );
        let outcomes = [&first, &second];
        assert_eq!(
            outcomes.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {first:?} {second:?}"
        );
        assert!(
            outcomes
                .iter()
                .any(|r| matches!(r, Err(PasskeyError::LastWayIn))),
            "round {round}: {first:?} {second:?}"
        );
        let left = passkeys_of(&app)
            .await
            .into_iter()
            .filter(|row| row.user_id == user)
            .count();
        assert_eq!(left, 1, "round {round}");
    }
}

async fn set_password(browser: &Browser, password: &str) -> common::Page {
    browser
        .submit(
            "/account",
            "/account/password",
            &[("new_password", password)],
        )
        .await
}

#[tokio::test]
async fn a_passkey_only_account_sets_a_password_after_a_recent_sign_in() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    assert_eq!(ada.sign_up("ada@example.com").await.status, 200);
    let has_password = || async {
        user::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .iter()
            .any(|u| u.password_hash.is_some())
    };
    let account = ada.browser.get("/account").await;
    assert!(account.body.contains("Set a password"));
    assert!(
        !account.body.contains("current_password"),
        "no current password to ask a passkey-only account for"
    );

    // A session opened long ago cannot plant a password.
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    common::edit_sessions(&app, None, |row| row.auth_time = Set(long_ago)).await;
    let stale = set_password(&ada.browser, PASSWORD).await;
    assert_eq!(stale.status, 403);
    assert!(stale.body.contains("sign in again"), "{}", stale.body);
    assert!(stale.body.contains("prompt=login"));
    assert!(!has_password().await);

    // Signing in again with the passkey makes it recent.
    assert_eq!(ada.sign_in().await.status, 200);
    let short = set_password(&ada.browser, "short").await;
    assert_eq!(short.status, 400);
    assert!(!has_password().await);
    let set = set_password(&ada.browser, PASSWORD).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("Your password was set"));
    assert!(set.body.contains("Change password"));
    assert!(set.body.contains("current_password"));

    // The password is a way in now, on its own and as a reason the only passkey
    // may go.
    let elsewhere = Browser::new(&app);
    elsewhere.sign_in("ada@example.com", PASSWORD).await;
    assert!(elsewhere.is_signed_in().await);
    let id = passkeys_of(&app).await.remove(0).id;
    let removed = ada
        .browser
        .submit("/account", &format!("/account/passkeys/{id}/remove"), &[])
        .await;
    assert_eq!(removed.status, 303);
}

#[tokio::test]
async fn an_account_with_a_password_adds_a_passkey_and_may_then_remove_it() {
    let app = common::spawn_app_on_localhost().await;
    let mut bob = Person::new(&app);
    bob.browser.sign_up("bob@example.com", PASSWORD).await;
    let added = bob.add_passkey().await;
    assert_eq!(added.status, 200, "{}", added.body);
    bob.sign_out().await;
    assert_eq!(bob.sign_in().await.status, 200);
    let id = passkeys_of(&app).await.remove(0).id;
    // The password is still a way in, so the only passkey may go.
    let removed = bob
        .browser
        .submit("/account", &format!("/account/passkeys/{id}/remove"), &[])
        .await;
    assert_eq!(removed.status, 303);
    assert!(passkeys_of(&app).await.is_empty());
    // Each change of a way in is told to the account's address.
    let added = common::smtp::outbox_message(
        &app,
        "bob@example.com",
        "A passkey was added to your account",
    )
    .await;
    assert!(added.text().contains("\"Passkey 1\""), "{}", added.text());
    common::smtp::outbox_message(
        &app,
        "bob@example.com",
        "A passkey was removed from your account",
    )
    .await;
    // …and recorded in the audit log, with the passkey sign-in between.
    use sea_orm::{ColumnTrait, QueryFilter};
    use tessera::store::entities::audit_event;
    let kinds: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::Kind.is_in([
            "passkey.added",
            "passkey.removed",
            "sign_in.succeeded",
        ]))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.kind, e.details))
        .collect();
    assert!(
        kinds
            .iter()
            .any(|k| k.starts_with("passkey.added:") && k.contains("Passkey 1")),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k.starts_with("passkey.removed:")));
    assert!(
        kinds.iter().any(|k| k.starts_with("sign_in.succeeded:")
            && (k.contains("\"hwk\"") || k.contains("\"swk\""))),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn ceremonies_need_the_page_csrf_token_and_a_free_email() {
    let app = common::spawn_app_on_localhost().await;
    let mut ada = Person::new(&app);
    ada.browser.get("/login").await;
    let forged = ada
        .post_json("/passkeys/sign-in/start", "forged", json!({}))
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(forged.body["error"], "invalid_csrf_token");
    // A valid page token, but no session: adding a passkey needs one.
    let page_token = ada.csrf("/login").await;
    let anonymous_add = ada
        .post_json("/account/passkeys/start", &page_token, json!({}))
        .await;
    assert_eq!(anonymous_add.status, 401);

    Browser::new(&app)
        .sign_up("taken@example.com", PASSWORD)
        .await;
    let csrf = ada.csrf("/signup").await;
    let taken = ada
        .post_json(
            "/passkeys/sign-up/start",
            &csrf,
            json!({ "email": "taken@Example.COM" }),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    let garbage = ada
        .browser
        .client
        .post(format!("{}/passkeys/sign-up/finish", app.base))
        .header("x-csrf-token", &csrf)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let body: Value = garbage.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let _ = ada.sign_up("ada@example.com").await;
}

#[tokio::test]
async fn passkeys_are_off_when_the_issuer_is_an_ip_address() {
    let app = common::spawn_app().await;
    let browser = Browser::new(&app);
    let login = browser.get("/login").await;
    assert!(!login.body.contains("Sign in with a passkey"));
    let csrf = login.csrf();
    let response = browser
        .client
        .post(format!("{}/passkeys/sign-in/start", app.base))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "passkeys_unavailable");
}

/// Issue 18 §3: starting a passkey sign-up tells whether an email is free, so it
/// counts against the same per-address sign-up limit as the password form.
#[tokio::test]
async fn passkey_sign_up_starts_are_limited_per_address() {
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_TEST_ISSUER_HOST".into(), "localhost".into());
        env.insert("TESSERA_SIGNUP_MAX_PER_IP".into(), "2".into());
    })
    .await;
    let ada = Person::new(&app);
    let csrf = ada.csrf("/signup").await;
    for i in 0..2 {
        let started = ada
            .post_json(
                "/passkeys/sign-up/start",
                &csrf,
                json!({ "email": format!("p{i}@example.com") }),
            )
            .await;
        assert_eq!(started.status, 200, "{}", started.body);
    }
    let limited = ada
        .post_json(
            "/passkeys/sign-up/start",
            &csrf,
            json!({ "email": "p9@example.com" }),
        )
        .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.body["error"], "too_many_requests");
    // The password form shares the count.
    let form = ada.browser.sign_up("p8@example.com", PASSWORD).await;
    assert_eq!(form.status, 429);
}
