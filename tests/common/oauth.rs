//! OAuth helpers: register clients, make PKCE pairs, walk the authorization flow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient};
use tessera::tokens::Algorithm;

use super::{Browser, Page, TestApp};

pub const REDIRECT: &str = "https://app.example/callback";

pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

pub fn new_client() -> NewClient {
    NewClient {
        name: "Example App".into(),
        redirect_uris: vec![REDIRECT.into()],
        auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "openid profile email offline_access api:read".into(),
        first_party: false,
        native: false,
        id_token_alg: Algorithm::Rs256,
        post_logout_redirect_uris: vec![],
        org_optional: false,
        ..NewClient::default()
    }
}

pub async fn register(app: &TestApp, new: NewClient) -> TestClient {
    let (client, secret) = tessera::store::clients::create(&app.state.db, new)
        .await
        .expect("client created");
    TestClient {
        id: client.client_id,
        secret,
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!(
        "{}-verifier-0123456789abcdefghijkl",
        uuid::Uuid::now_v7().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `/authorize?…` with the usual parameters, overridden or removed by `changes`
/// (a change with an empty value removes the parameter).
pub fn authorize_path(client_id: &str, challenge: &str, changes: &[(&str, &str)]) -> String {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in changes {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k.to_string(), v.to_string()));
        }
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/authorize?{query}")
}

/// The query parameters of a redirect to the client.
pub fn redirect_params(page: &Page) -> Vec<(String, String)> {
    let location = page.location().expect("a redirect");
    assert!(location.starts_with(REDIRECT), "redirected to {location}");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Submits the consent page shown as `page` with `decision`.
pub async fn decide(browser: &Browser, page: &Page, decision: &str) -> Page {
    assert_eq!(page.status, 200, "expected the consent page: {}", page.body);
    let mut fields = hidden_fields(&page.body);
    fields.push(("decision".into(), decision.into()));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post("/authorize/consent", &form).await
}

/// Every `<input type="hidden" name=… value=…>` of the page's main content (not
/// the header's sign-out form), HTML entities decoded — what a browser submits
/// with the page's form.
pub fn hidden_fields(body: &str) -> Vec<(String, String)> {
    let main = body.find("<main").map_or(body, |at| &body[at..]);
    let mut out = Vec::new();
    for chunk in main.split("<input type=\"hidden\" name=\"").skip(1) {
        let Some((name, rest)) = chunk.split_once('"') else {
            continue;
        };
        let Some(value) = rest
            .split("value=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
        else {
            continue;
        };
        out.push((unescape(name), unescape(value)));
    }
    out
}

/// Decodes the HTML entities a template engine may produce (named and numeric).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if entity.starts_with("#x") => u32::from_str_radix(&entity[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Signs a new user up in `browser`, then authorizes `client` (allowing consent if
/// asked) and returns the code.
pub async fn code_for(browser: &Browser, client: &TestClient, challenge: &str) -> String {
    let page = browser
        .get(&authorize_path(&client.id, challenge, &[]))
        .await;
    let page = if page.status == 200 {
        decide(browser, &page, "allow").await
    } else {
        page
    };
    let params = redirect_params(&page);
    param(&params, "code").expect("a code").to_owned()
}

/// Exchanges a code at the token endpoint with HTTP Basic client authentication.
pub async fn exchange(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    let mut request = app.client.post(app.url("/token")).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]);
    request = match &client.secret {
        Some(secret) => request.basic_auth(&client.id, Some(secret)),
        None => app.client.post(app.url("/token")).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", client.id.as_str()),
        ]),
    };
    request.send().await.expect("token request")
}

/// A `refresh_token` grant at `app`'s token endpoint with HTTP Basic client
/// authentication: the status and the JSON body (`Null` when there is none).
pub async fn refresh(app: &TestApp, client: &TestClient, token: &str) -> (u16, serde_json::Value) {
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .expect("token endpoint");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Authorizes `client_id` for `scope` in the signed-in `browser` (no consent page:
/// first-party clients) and returns the code.
pub async fn code_with_scope(
    browser: &Browser,
    client_id: &str,
    challenge: &str,
    scope: &str,
) -> String {
    let page = browser
        .get(&authorize_path(client_id, challenge, &[("scope", scope)]))
        .await;
    param(&redirect_params(&page), "code")
        .unwrap_or_else(|| panic!("no code: {} {}", page.status, page.body))
        .to_owned()
}

/// Ada signs up in a new browser; a first-party client with the refresh grant
/// gets her tokens for `openid offline_access`. The browser stays signed in.
pub async fn signed_in_with_refresh_token(
    app: &TestApp,
) -> (Browser, TestClient, serde_json::Value) {
    let browser = Browser::new(app);
    browser.sign_up("ada@example.com", super::PASSWORD).await;
    let mut new = new_client();
    new.first_party = true;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    let client = register(app, new).await;
    let (verifier, challenge) = pkce();
    let code = code_with_scope(&browser, &client.id, &challenge, "openid offline_access").await;
    let tokens = exchange(app, &client, &code, &verifier)
        .await
        .json()
        .await
        .expect("tokens");
    (browser, client, tokens)
}

/// RFC 7662 introspection of `token` by `client` (HTTP Basic): the JSON answer.
pub async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> serde_json::Value {
    app.client
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspection endpoint")
        .json()
        .await
        .expect("JSON")
}

/// The status `/userinfo` answers a bearer `token` with.
pub async fn userinfo_status(app: &TestApp, token: &str) -> u16 {
    app.client
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo endpoint")
        .status()
        .as_u16()
}
