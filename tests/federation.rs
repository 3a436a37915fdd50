//! Signing in with another identity provider (issue 23), proven against a
//! second Tessera running as its own process: a real OpenID provider on its
//! own origin, database and keys. A cookie-keeping HTTP client plays the
//! browser across both origins, as a browser would: every redirect is
//! followed by hand so each hop can be seen.

mod common;

use common::upstream::Upstream;
use common::{PASSWORD, TestApp};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tessera::store::entities::{federated_identity, user};
use url::Url;

const ADA: &str = "ada@example.com";

/// A browser across origins: one cookie jar, redirects followed by hand.
struct Web {
    client: reqwest::Client,
}

struct Page {
    url: Url,
    status: u16,
    body: String,
    location: Option<String>,
}

impl Page {
    fn csrf(&self) -> String {
        self.field("csrf")
    }

    fn field(&self, name: &str) -> String {
        common::oauth::hidden_fields(&self.body)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
}

impl Web {
    fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    async fn page(url: Url, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| url.join(l).expect("a location").to_string());
        Page {
            url,
            status,
            body: response.text().await.unwrap(),
            location,
        }
    }

    async fn get(&self, url: &str) -> Page {
        let url = Url::parse(url).unwrap();
        let response = self.client.get(url.clone()).send().await.expect("GET");
        Self::page(url, response).await
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let url = Url::parse(url).unwrap();
        let response = self
            .client
            .post(url.clone())
            .form(form)
            .send()
            .await
            .expect("POST");
        Self::page(url, response).await
    }

    /// Follows redirects from `page` until one is not a redirect.
    async fn follow(&self, mut page: Page) -> Page {
        for _ in 0..20 {
            match (&page.location, page.status) {
                (Some(next), 301..=303 | 307 | 308) => page = self.get(&next.clone()).await,
                _ => return page,
            }
        }
        panic!("too many redirects");
    }

    /// Follows redirects from `page` until the next one would go to a URL
    /// starting with `prefix`: the page that redirects there.
    async fn until(&self, mut page: Page, prefix: &str) -> Page {
        for _ in 0..20 {
            let next = page.location.clone().expect("a redirect");
            if next.starts_with(prefix) {
                return page;
            }
            page = self.get(&next).await;
        }
        panic!("never redirected to {prefix}");
    }

    /// Posts the login form of `login` (of either server), keeping its
    /// `return_to`: the answer, not followed.
    async fn post_login(&self, login: &Page, email: &str) -> Page {
        assert_eq!(login.status, 200, "a login page: {}", login.body);
        let action = format!("{}/login", login.origin());
        let return_to = login.field("return_to");
        self.post(
            &action,
            &[
                ("csrf", &login.csrf()),
                ("email", email),
                ("password", PASSWORD),
                ("return_to", &return_to),
            ],
        )
        .await
    }

    /// Signs in on a login page and follows wherever that leads.
    async fn sign_in_on(&self, login: &Page, email: &str) -> Page {
        let answer = self.post_login(login, email).await;
        self.follow(answer).await
    }

    /// Continue with the provider `id` on `app`, signing in at the provider
    /// as `email` if it asks: the page the flow ends on.
    async fn continue_with(&self, app: &TestApp, id: &str, email: &str) -> Page {
        let landed = self
            .follow(self.get(&app.url(&format!("/federation/{id}/start"))).await)
            .await;
        if landed.origin() != app.base && landed.url.path() == "/login" {
            return self.sign_in_on(&landed, email).await;
        }
        landed
    }
}

async fn accounts(app: &TestApp) -> u64 {
    user::Entity::find().count(&app.state.db).await.unwrap()
}

async fn links_of(app: &TestApp, email: &str) -> Vec<federated_identity::Model> {
    let Some(account) = user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&app.state.db)
        .await
        .unwrap()
    else {
        return Vec::new();
    };
    federated_identity::Entity::find()
        .filter(federated_identity::Column::UserId.eq(account.id))
        .all(&app.state.db)
        .await
        .unwrap()
}

/// The server under test with the upstream as provider `up` (addresses
/// trusted), and Ada known to the upstream. The two live on different hosts
/// (`localhost` and `127.0.0.1`) as they would in the world: cookies are
/// kept per host, not per port, so on one host each would overwrite the
/// other's session cookie.
async fn federated() -> (TestApp, Upstream) {
    let app = common::spawn_app_on_localhost().await;
    let upstream = Upstream::start().await;
    upstream.person(ADA);
    upstream.register_with(&app, "up", "Upstream ID", &["--trust-email"]);
    (app, upstream)
}

#[tokio::test]
async fn a_first_sign_in_makes_an_account_and_the_next_signs_in_to_it() {
    let (app, _upstream) = federated().await;
    for page in ["/login", "/signup"] {
        let shown = Web::new().get(&app.url(page)).await;
        assert!(
            shown.body.contains("Continue with Upstream ID")
                && shown.body.contains("href=\"/federation/up/start\""),
            "{page}: {}",
            shown.body
        );
    }

    let web = Web::new();
    let account = web.continue_with(&app, "up", ADA).await;
    assert_eq!(
        account.url.as_str(),
        app.url("/account"),
        "{}",
        account.body
    );
    assert_eq!(account.status, 200);
    assert!(account.body.contains(ADA));
    assert!(account.body.contains("Connected accounts"));
    assert_eq!(accounts(&app).await, 1);
    let made = tessera::identity::users::find_by_email(&app.state.db, ADA)
        .await
        .unwrap()
        .unwrap();
    assert!(made.password_hash.is_none(), "no password was set");
    assert!(
        made.email_verified_at.is_some(),
        "the provider verified it and is trusted to"
    );
    let links = links_of(&app, ADA).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].provider_id, "up");
    let first_use = links[0].last_used_at;

    // Another browser, another day: the same upstream account signs in to
    // the same account here, and nothing new is made.
    let again = Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(again.url.as_str(), app.url("/account"));
    assert_eq!(accounts(&app).await, 1);
    assert!(links_of(&app, ADA).await[0].last_used_at >= first_use);
}

#[tokio::test]
async fn an_upstream_sign_in_reaches_the_client_and_the_id_token_names_the_provider() {
    use common::oauth::{REDIRECT, authorize_path, exchange, new_client, pkce, register};
    let (app, _upstream) = federated().await;
    use tessera::oauth::clients::GrantType;
    let client = register(
        &app,
        tessera::oauth::clients::NewClient {
            first_party: true,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            ..new_client()
        },
    )
    .await;
    let (verifier, challenge) = pkce();
    let web = Web::new();
    // The client sends the person to sign in; they choose the provider.
    let authorize = app.url(&authorize_path(
        &client.id,
        &challenge,
        &[("scope", "openid offline_access")],
    ));
    let login = web.follow(web.get(&authorize).await).await;
    assert_eq!(login.url.path(), "/login");
    let start = format!(
        "{}/federation/up/start?return_to={}",
        app.base,
        urlencoding(&login.field("return_to"))
    );
    let at_upstream = web.follow(web.get(&start).await).await;
    let answer = web.post_login(&at_upstream, ADA).await;
    // The journey ends at the client's redirect URI with a code.
    let last = web.until(answer, REDIRECT).await;
    let to_client = Url::parse(last.location.as_deref().unwrap()).unwrap();
    let code = to_client
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();
    let tokens: serde_json::Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let id = common::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["idp"], "up", "{id}");
    // The session's methods are the ones the upstream reported.
    assert_eq!(id["amr"], serde_json::json!(["pwd"]), "{id}");
    // A refreshed id_token still says so (the refresh family keeps it).
    let (status, refreshed) = common::oauth::refresh(
        &app,
        &client,
        tokens["refresh_token"].as_str().expect("a refresh token"),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let again = common::jwt_claims(refreshed["id_token"].as_str().unwrap());
    assert_eq!(again["idp"], "up", "{again}");
    assert_eq!(again["amr"], serde_json::json!(["pwd"]));
    // A password sign-in says nothing of a provider.
    let holder = common::Browser::new(&app);
    holder.sign_up("pat@example.com", PASSWORD).await;
    let code = common::oauth::code_for(&holder, &client, &challenge).await;
    let own: serde_json::Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let own = common::jwt_claims(own["id_token"].as_str().unwrap());
    assert!(own.get("idp").is_none(), "{own}");
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn an_existing_account_is_connected_only_after_its_holder_signs_in() {
    let (app, _upstream) = federated().await;
    let holder = common::Browser::new(&app);
    holder.sign_up(ADA, PASSWORD).await;

    // The same address at the provider does not open the account here.
    let web = Web::new();
    let offer = web.continue_with(&app, "up", ADA).await;
    assert_eq!(offer.status, 200);
    assert!(
        offer.body.contains("already exists") && offer.body.contains("Sign in to connect"),
        "{}",
        offer.body
    );
    assert!(links_of(&app, ADA).await.is_empty(), "nothing linked yet");
    assert_ne!(
        web.get(&app.url("/account")).await.status,
        200,
        "and nobody is signed in"
    );
    assert_eq!(accounts(&app).await, 1);

    // Signing in to someone else's account does not link it to them either.
    let bob = "bob@example.com";
    common::Browser::new(&app).sign_up(bob, PASSWORD).await;
    let login = web.get(&app.url("/login")).await;
    let as_bob = web.sign_in_on(&login, bob).await;
    assert_eq!(as_bob.url.path(), "/account");
    assert!(links_of(&app, bob).await.is_empty());
    assert!(links_of(&app, ADA).await.is_empty());

    // The holder follows the offer and signs in with the password: linked.
    let web = Web::new();
    let offer = web.continue_with(&app, "up", ADA).await;
    let sign_in_link = offer
        .body
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/login?"))
        .expect("a sign-in link")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let login = web.get(&app.url(&sign_in_link)).await;
    assert!(
        login.body.contains(ADA),
        "the address is filled in: {sign_in_link} {}",
        login.body
    );
    let account = web.sign_in_on(&login, ADA).await;
    assert_eq!(account.url.path(), "/account");
    assert!(account.body.contains("Upstream ID"), "{}", account.body);
    assert_eq!(links_of(&app, ADA).await.len(), 1);

    // From now on the provider signs in to it directly.
    let direct = Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(direct.url.as_str(), app.url("/account"));
    assert!(direct.body.contains(ADA));
}

#[tokio::test]
async fn a_signed_in_person_connects_and_disconnects_but_never_their_last_way_in() {
    let (app, upstream) = federated().await;
    // Ada's account here has a password; she connects the provider from it.
    let web = Web::new();
    let signup = web.get(&app.url("/signup")).await;
    web.post(
        &app.url("/signup"),
        &[
            ("csrf", &signup.csrf()),
            ("email", ADA),
            ("password", PASSWORD),
        ],
    )
    .await;
    let account = web.get(&app.url("/account")).await;
    assert!(
        account.body.contains("Connect Upstream ID"),
        "{}",
        account.body
    );
    let at_upstream = web
        .follow(
            web.get(&app.url("/federation/up/start?connect=1&return_to=%2Faccount"))
                .await,
        )
        .await;
    let back = web.sign_in_on(&at_upstream, ADA).await;
    assert_eq!(back.url.path(), "/account", "{}", back.body);
    let links = links_of(&app, ADA).await;
    assert_eq!(links.len(), 1);
    assert!(back.body.contains("Disconnect"));

    // Disconnect: the password remains, so it may go.
    let gone = web
        .post(
            &app.url(&format!("/account/connections/{}/disconnect", links[0].id)),
            &[("csrf", &back.csrf())],
        )
        .await;
    assert_eq!(gone.status, 303);
    assert!(links_of(&app, ADA).await.is_empty());
    // Both changes are in the audit log, by Ada.
    for kind in ["provider.connected", "provider.disconnected"] {
        use tessera::store::entities::audit_event;
        let found = audit_event::Entity::find()
            .filter(audit_event::Column::Kind.eq(kind))
            .all(&app.state.db)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{kind}");
        assert_eq!(found[0].actor_type, "person");
        assert!(found[0].details.contains("\"up\""));
    }

    // An account made through the provider has no other way in: refused.
    let grace = "grace@example.com";
    upstream.person(grace);
    let other = Web::new();
    let made = other.continue_with(&app, "up", grace).await;
    assert_eq!(made.url.path(), "/account");
    let only = links_of(&app, grace).await;
    let refused = other
        .post(
            &app.url(&format!("/account/connections/{}/disconnect", only[0].id)),
            &[("csrf", &made.csrf())],
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.body.contains("only way to sign in"),
        "{}",
        refused.body
    );
    assert_eq!(links_of(&app, grace).await.len(), 1);
}

#[tokio::test]
async fn provider_errors_and_forged_callbacks_show_a_page_and_redirect_nowhere() {
    let (app, upstream) = federated().await;
    let web = Web::new();
    let start = web.get(&app.url("/federation/up/start")).await;
    assert_eq!(start.status, 303);
    let to_provider = Url::parse(start.location.as_deref().unwrap()).unwrap();
    assert!(to_provider.as_str().starts_with(&upstream.base));
    let query: std::collections::HashMap<_, _> = to_provider.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["response_type"], "code");
    assert!(query["nonce"].len() >= 43 && query["state"].len() >= 43);
    let state = &query["state"];
    let callback = |q: &str| app.url(&format!("/federation/up/callback?{q}"));

    // Another browser cannot finish this flow (the state is bound to this one).
    let stranger = Web::new()
        .get(&callback(&format!("code=x&state={state}")))
        .await;
    assert_eq!(stranger.status, 400);
    assert!(stranger.location.is_none());

    // The person cancels at the provider.
    let web = Web::new();
    let start = web.get(&app.url("/federation/up/start")).await;
    let state = Url::parse(start.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let cancelled = web
        .get(&callback(&format!("error=access_denied&state={state}")))
        .await;
    assert_eq!(cancelled.status, 400);
    assert!(
        cancelled
            .body
            .contains("You cancelled signing in with Upstream ID")
    );
    assert!(cancelled.location.is_none());
    // …and the state is spent: the same callback again is refused.
    let replayed = web
        .get(&callback(&format!("error=access_denied&state={state}")))
        .await;
    assert_eq!(replayed.status, 400);
    assert!(replayed.body.contains("expired or was already used"));

    // A real callback replayed after it signed in: refused, nothing twice.
    let web = Web::new();
    let start = web.get(&app.url("/federation/up/start")).await;
    let at_upstream = web.follow(start).await;
    assert!(at_upstream.url.as_str().starts_with(&upstream.base));
    let login_answer = web.post_login(&at_upstream, ADA).await;
    let hop = web.until(login_answer, &app.base).await;
    let callback_url = hop.location.clone().unwrap();
    assert!(
        callback_url.contains("iss="),
        "RFC 9207: the provider names itself"
    );
    let first = web.get(&callback_url).await;
    assert_eq!(first.status, 303);
    assert_eq!(
        first.location.as_deref(),
        Some(app.url("/account").as_str())
    );
    let again = web.get(&callback_url).await;
    assert_eq!(again.status, 400);
    assert_eq!(accounts(&app).await, 1);

    // Nonsense at the callback, and an unknown provider: pages, not panics.
    for q in ["", "state=", "code=a&code=b&state=s", "state=%FF%FE"] {
        let page = Web::new().get(&callback(q)).await;
        assert_eq!(page.status, 400, "{q}");
        assert!(page.location.is_none());
    }
    let unknown = Web::new().get(&app.url("/federation/nope/start")).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn an_unreachable_provider_is_shown_unavailable_and_passwords_still_work() {
    let (app, mut upstream) = federated().await;
    // (Made at the command line: a page would already have fetched the
    // provider's metadata in the background, racing the stop below.)
    let (ok, _, err) = common::cli_input(
        &app,
        &[],
        &[
            "user",
            "create",
            "--email",
            "pat@example.com",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    upstream.stop();
    // The background refresh finds it gone (run now rather than waited for).
    app.state.federation.upstreams.refresh_due().await;
    let web = Web::new();
    let login = web.get(&app.url("/login")).await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("Upstream ID is unavailable right now")
            && !login.body.contains("href=\"/federation/up/start\""),
        "{}",
        login.body
    );
    let tried = web.get(&app.url("/federation/up/start")).await;
    assert_eq!(tried.status, 503);
    assert!(tried.location.is_none());
    let signed_in = web.sign_in_on(&login, "pat@example.com").await;
    assert_eq!(signed_in.url.path(), "/account");

    // Back up: the next attempt fetches it again and the flow works.
    upstream.restart().await;
    let account = Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(
        account.url.as_str(),
        app.url("/account"),
        "{}",
        account.body
    );
    let login = Web::new().get(&app.url("/login")).await;
    assert!(login.body.contains("Continue with Upstream ID"));
}

/// A native app signs Ada in with the provider's own SDK (here: the code flow
/// at the provider as a public client), then trades the provider's id_token
/// for our tokens.
async fn native_id_token(upstream: &Upstream, client_id: &str, email: &str) -> String {
    let web = Web::new();
    let verifier = "v".repeat(64);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20email&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        upstream.base,
        urlencoding("http://127.0.0.1/native-cb"),
    );
    let login = web.follow(web.get(&authorize).await).await;
    let answer = web.post_login(&login, email).await;
    let hop = web.until(answer, "http://127.0.0.1/native-cb").await;
    let code = Url::parse(hop.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", upstream.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1/native-cb"),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["id_token"].as_str().expect("an id_token").to_owned()
}

#[tokio::test]
async fn a_native_app_exchanges_a_provider_id_token_for_our_tokens() {
    let app = common::spawn_app_on_localhost().await;
    let upstream = Upstream::start().await;
    upstream.person(ADA);
    upstream.person("eve@example.com");
    // The native app's own client at the provider, accepted as an audience.
    let (ios, _) = upstream.client(
        "http://127.0.0.1/native-cb",
        &["--public", "--native", "--first-party"],
    );
    upstream.register_with(
        &app,
        "up",
        "Upstream ID",
        &["--trust-email", "--accepted-audience", &ios],
    );
    // Ada connected the provider once in the browser.
    Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(links_of(&app, ADA).await.len(), 1);
    // The app is our client, registered for token exchange and refresh.
    let native = common::cli_json(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Native",
            "--public",
            "--grant-type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid offline_access",
            "--json",
        ],
    );
    let native_id = native["client_id"].as_str().unwrap().to_owned();
    let id_token = native_id_token(&upstream, &ios, ADA).await;
    let exchange = |client: String, token: String, extra: Vec<(&'static str, String)>| {
        let app_url = app.url("/token");
        async move {
            let mut form = vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
                ),
                ("client_id", client),
                ("subject_token", token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token".to_owned(),
                ),
                ("scope", "openid offline_access".to_owned()),
            ];
            form.extend(extra);
            let response = reqwest::Client::new()
                .post(app_url)
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };

    let (status, body) = exchange(native_id.clone(), id_token.clone(), vec![]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let ada = tessera::identity::users::find_by_email(&app.state.db, ADA)
        .await
        .unwrap()
        .unwrap();
    let access = body["access_token"].as_str().unwrap();
    let audience = common::jwt_claims(access)["aud"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = common::verify_for_audience(&app, access, &audience)
        .await
        .expect("our own access token, verifiable from our JWKS");
    assert_eq!(claims["sub"], ada.id.to_string());
    assert_eq!(claims["client_id"], native_id);
    assert!(body["refresh_token"].is_string(), "{body}");
    // The refresh token works like any other.
    let refreshed = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &native_id),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);

    // The provider named explicitly works the same.
    let (status, _) = exchange(
        native_id.clone(),
        id_token.clone(),
        vec![("provider", "up".into())],
    )
    .await;
    assert_eq!(status, 200);

    // Refusals, each a precise RFC 6749/8693 error.
    let (status, body) = exchange(native_id.clone(), format!("{id_token}x"), vec![]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("id_token")
    );
    let (status, body) = exchange(
        native_id.clone(),
        id_token.clone(),
        vec![("provider", "nope".into())],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // A client not registered for token exchange.
    let web_client = common::cli_json(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Web",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--json",
        ],
    );
    let (status, body) = exchange(
        web_client["client_id"].as_str().unwrap().to_owned(),
        id_token.clone(),
        vec![],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // A client registered for the exchange but not for refresh: no refresh
    // token, whatever it asks for.
    let no_refresh = common::cli_json(
        &app,
        &[
            "client",
            "create",
            "--name",
            "Kiosk",
            "--public",
            "--grant-type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "--scope",
            "openid offline_access",
            "--json",
        ],
    );
    let (status, body) = exchange(
        no_refresh["client_id"].as_str().unwrap().to_owned(),
        id_token.clone(),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    // An id_token for another audience (the browser flow's client at the
    // provider is accepted; a stranger app's is not).
    let (stranger, _) = upstream.client(
        "http://127.0.0.1/native-cb",
        &["--public", "--native", "--first-party"],
    );
    let foreign = native_id_token(&upstream, &stranger, ADA).await;
    let (status, body) = exchange(native_id.clone(), foreign, vec![]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["error_description"].as_str().unwrap().contains("aud"),
        "{body}"
    );
    // Eve is unknown here and her id_token carries no address (this
    // provider answers it at userinfo only): no account is made or matched.
    let eve = native_id_token(&upstream, &ios, "eve@example.com").await;
    let before = accounts(&app).await;
    let (status, body) = exchange(native_id.clone(), eve, vec![]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert_eq!(accounts(&app).await, before);
    // A disabled account gets nothing.
    tessera::identity::users::set_disabled(&app.state.db, ADA, true)
        .await
        .unwrap();
    let (status, body) = exchange(native_id, id_token, vec![]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

/// A provider that wants the secret in the body (`--token-auth
/// client_secret_post`) and signs id_tokens with ES256: both work end to end.
#[tokio::test]
async fn a_provider_taking_the_secret_in_the_body_and_signing_es256_works() {
    let app = common::spawn_app_on_localhost().await;
    let upstream = Upstream::start().await;
    upstream.person(ADA);
    upstream.register_as(
        &app,
        "up",
        "Upstream ID",
        &["--first-party", "--secret-post", "--id-token-alg", "ES256"],
        &["--trust-email", "--token-auth", "client_secret_post"],
    );
    let account = Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(
        account.url.as_str(),
        app.url("/account"),
        "{}",
        account.body
    );
    assert_eq!(links_of(&app, ADA).await.len(), 1);
}

/// A provider that cannot be reached when the server starts does not stop
/// it: the server serves, the button says unavailable.
#[tokio::test]
async fn a_provider_down_at_start_does_not_stop_the_server() {
    let backing = common::Backing::new().await;
    let env = backing.env();
    let first = common::spawn_on(&backing, env.clone()).await;
    let keys = first.keys_dir.display().to_string();
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let (ok, _, err) = common::cli_input(
        &first,
        &[("TESSERA_KEYS_DIR", &keys)],
        &[
            "provider",
            "add",
            "--id",
            "down",
            "--name",
            "Down ID",
            "--issuer",
            &dead,
            "--client-id",
            "c",
            "--client-secret-stdin",
        ],
        "s\n",
    );
    assert!(ok, "{err}");
    drop(first);
    // A new server over the same database starts with the provider listed…
    let app = common::spawn_on(&backing, env).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    // …and once its first fetch has failed, says so.
    app.state.federation.upstreams.refresh_due().await;
    let login = Web::new().get(&app.url("/login")).await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("Down ID is unavailable right now"),
        "{}",
        login.body
    );
}

/// The provider rotates its signing key: an id_token under a `kid` we do not
/// hold makes us fetch the JWKS again — but not more than every 30 s, so a
/// stream of made-up `kid`s cannot make us hammer the provider.
#[tokio::test]
async fn a_rotated_provider_key_is_fetched_on_its_first_use_at_most_every_thirty_seconds() {
    let app = common::spawn_app_on_localhost().await;
    let upstream = Upstream::start_with(&[("TESSERA_KEY_REFRESH_INTERVAL", "1s")]).await;
    upstream.person(ADA);
    upstream.register_with(&app, "up", "Upstream ID", &["--trust-email"]);
    // A first sign-in: the provider's JWKS is now held here.
    let first = Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(first.url.as_str(), app.url("/account"), "{}", first.body);
    let jwks = || async {
        reqwest::get(format!("{}/.well-known/jwks.json", upstream.base))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let before = jwks().await["keys"].as_array().unwrap().len();
    upstream.cli(&["keys", "rotate", "--alg", "RS256", "--delay", "0s"], "");
    // The provider's own key ring picks the new key up within its refresh.
    let mut published = false;
    for _ in 0..100 {
        if jwks().await["keys"].as_array().unwrap().len() > before {
            published = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(published, "the provider never published its new key");
    // Within 30 s of the last fetch, the unknown key is not fetched: refused.
    let refused = Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(refused.body.contains("a key the provider does not publish"));
    // Later, it is fetched once and the sign-in goes through.
    app.state
        .federation
        .upstreams
        .backdate_key_fetch("up", std::time::Duration::from_secs(31));
    let signed_in = Web::new().continue_with(&app, "up", ADA).await;
    assert_eq!(
        signed_in.url.as_str(),
        app.url("/account"),
        "{}",
        signed_in.body
    );
}
