//! Hostile input, table-driven: every row is a request an attacker or a broken
//! client could send, and the precise answer it must get — a 4xx of the right
//! shape (RFC 6749 §5.2 JSON at OAuth endpoints, an HTML page without a redirect in
//! browser flows, the one JSON error body at JSON APIs), never a 5xx, never a panic,
//! and the server still serving afterwards.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::oauth::{REDIRECT, authorize_path, code_for, exchange, new_client, pkce, register};
use common::{Browser, PASSWORD, TestApp};
use josekit::jwk::KeyPair as _;
use reqwest::Method;
use serde_json::{Value, json};
use tessera::oauth::clients::GrantType;
use tessera::tokens::Algorithm;

/// What a row must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// RFC 6749 §5.2 / RFC 7591 §3.2.2 / RFC 6750 JSON error with this code.
    OAuth(u16, &'static str),
    /// The HTML error page: no redirect, whatever the request named.
    Page(u16),
    /// RFC 7662 §2.2: an unusable token is simply inactive.
    Inactive,
    /// RFC 7009 §2.2: revoking an invalid token is not an error.
    RevokedNothing,
    /// The client and redirect URI are verified, so the error goes there
    /// (RFC 6749 §4.1.2.1).
    RedirectError(&'static str),
    /// Refused by the HTTP layer before any handler (header or URI limits).
    Status(u16),
}

struct Row {
    what: String,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    expect: Expect,
}

fn row(what: impl Into<String>, method: Method, path: impl Into<String>, expect: Expect) -> Row {
    Row {
        what: what.into(),
        method,
        path: path.into(),
        headers: Vec::new(),
        body: None,
        expect,
    }
}

impl Row {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn form(self, body: impl Into<Vec<u8>>) -> Self {
        self.body(body, "application/x-www-form-urlencoded")
    }
    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.body(body, "application/json")
    }
    fn body(mut self, body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        self.body = Some(body.into());
        self.header("content-type", content_type)
    }
    fn basic(self, id: &str, secret: &str) -> Self {
        let value = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        self.header("authorization", format!("Basic {value}"))
    }
}

async fn check(app: &TestApp, http: &reqwest::Client, row: Row) -> Result<(), String> {
    let mut request = http.request(row.method.clone(), app.url(&row.path));
    for (name, value) in &row.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = row.body {
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{}: no answer: {e}", row.what))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let location = response.headers().get("location").cloned();
    let body = response.text().await.unwrap_or_default();
    let fail = |why: &str| {
        Err(format!(
            "{}: {why} — got {status} {content_type} {}",
            row.what,
            body.chars().take(200).collect::<String>()
        ))
    };
    if status >= 500 {
        return fail("a server error");
    }
    match row.expect {
        Expect::OAuth(want, code) => {
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if status != want
                || json["error"] != code
                || !content_type.starts_with("application/json")
            {
                return fail(&format!("wanted {want} {{\"error\":\"{code}\"}}"));
            }
        }
        Expect::Page(want) => {
            if status != want || !content_type.starts_with("text/html") || location.is_some() {
                return fail(&format!("wanted an HTML {want} page without a redirect"));
            }
        }
        Expect::Inactive => {
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if status != 200 || json != json!({ "active": false }) {
                return fail("wanted 200 {\"active\":false}");
            }
        }
        Expect::RevokedNothing => {
            if status != 200 {
                return fail("wanted 200");
            }
        }
        Expect::RedirectError(code) => {
            let target = location
                .as_ref()
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default();
            let wanted = format!("error={code}");
            if status != 303 || !target.starts_with(REDIRECT) || !target.contains(&wanted) {
                return fail(&format!(
                    "wanted a redirect to the client with {wanted}: {target}"
                ));
            }
        }
        Expect::Status(want) => {
            if status != want {
                return fail(&format!("wanted {want}"));
            }
        }
    }
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn nested_json(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Tokens nobody should accept, each with a name. `access` is a real access token
/// of this server, to copy claims and kid from.
fn forged_tokens(app: &TestApp, access: &str) -> Vec<(String, String)> {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(access)
        .expect("a JWT")
        .claims;
    let kid = jsonwebtoken::decode_header(access)
        .expect("a header")
        .kid
        .expect("a kid");
    let now = chrono::Utc::now().timestamp();
    let signed = |change: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        change(&mut c);
        app.state
            .keys
            .keys()
            .sign(
                Algorithm::Es256,
                "at+jwt",
                &serde_json::to_vec(&c).expect("claims"),
                chrono::Utc::now(),
            )
            .expect("sign")
    };
    let unsigned = |header: &Value, signature: &str| {
        format!(
            "{}.{}.{signature}",
            b64(&serde_json::to_vec(header).expect("header")),
            b64(&serde_json::to_vec(&claims).expect("claims"))
        )
    };
    // The classic key-confusion attack: HMAC keyed with the public key the
    // verifier holds, in each form a verifier might hold it.
    let pem = std::fs::read(app.keys_dir.join(format!("{kid}.pem"))).expect("key file");
    let pair = josekit::jwk::alg::ec::EcKeyPair::from_pem(&pem, None).expect("EC key");
    let public_pem = pair.to_pem_public_key();
    let public_jwk = pair.to_jwk_public_key().to_string();
    let hmac = |key: &[u8]| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .expect("HS256")
    };
    let mut tampered = access.to_owned();
    let last = tampered
        .pop()
        .map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
    tampered.push(last);
    let [head, payload, signature] = access.split('.').collect::<Vec<_>>()[..] else {
        panic!("a compact JWS");
    };
    vec![
        ("garbage".into(), "not-a-jwt".into()),
        ("three dots of garbage".into(), "a.b.c".into()),
        ("two segments".into(), format!("{head}.{payload}")),
        ("four segments".into(), format!("{access}.{signature}")),
        ("invalid base64".into(), format!("{head}.!!!!.{signature}")),
        (
            "payload not JSON".into(),
            format!("{head}.{}.{signature}", b64(b"\xff\xfe not json")),
        ),
        (
            "header nested 5,000 deep".into(),
            format!(
                "{}.{payload}.{signature}",
                b64(nested_json(5_000).as_bytes())
            ),
        ),
        ("8 KiB of letters".into(), "a".repeat(8 * 1024)),
        (
            "alg none".into(),
            unsigned(&json!({"alg": "none", "typ": "at+jwt", "kid": kid}), ""),
        ),
        (
            "HS256 keyed with the public key PEM".into(),
            hmac(&public_pem),
        ),
        (
            "HS256 keyed with the public JWK".into(),
            hmac(public_jwk.as_bytes()),
        ),
        (
            "unknown kid".into(),
            unsigned(
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}),
                signature,
            ),
        ),
        ("tampered signature".into(), tampered),
        (
            "another issuer".into(),
            signed(&|c| c["iss"] = json!("https://evil.example")),
        ),
        (
            "expired by one second".into(),
            signed(&|c| c["exp"] = json!(now - 1)),
        ),
        (
            "exp not a number".into(),
            signed(&|c| c["exp"] = json!("tomorrow")),
        ),
        (
            "no exp".into(),
            signed(&|c| {
                c.as_object_mut().map(|o| o.remove("exp"));
            }),
        ),
    ]
}

#[tokio::test]
async fn hostile_requests_get_precise_client_errors_and_never_a_server_error() {
    // Open registration, so a registration body is parsed rather than refused
    // for want of an initial access token.
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_REGISTRATION".into(), "open".into());
    })
    .await;
    let browser = Browser::new(&app);
    browser.sign_up("ada@example.com", PASSWORD).await;
    let mut new = new_client();
    new.first_party = true;
    new.id_token_alg = Algorithm::Es256;
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    new.post_logout_redirect_uris = vec!["https://app.example/bye".into()];
    let client = register(&app, new).await;
    let secret = client.secret.clone().expect("confidential");
    let (verifier, challenge) = pkce();
    let code = code_for(&browser, &client, &challenge).await;
    let tokens: Value = exchange(&app, &client, &code, &verifier)
        .await
        .json()
        .await
        .expect("tokens");
    let access = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();

    let mut rows = Vec::new();

    // Every token-accepting endpoint against every forged token.
    // An empty token is a missing one: the request is malformed.
    rows.push(
        row(
            "userinfo: empty bearer",
            Method::GET,
            "/userinfo",
            Expect::OAuth(400, "invalid_request"),
        )
        .header("authorization", "Bearer "),
    );
    for endpoint in ["/introspect", "/revoke"] {
        rows.push(
            row(
                format!("{endpoint}: empty token"),
                Method::POST,
                endpoint,
                Expect::OAuth(400, "invalid_request"),
            )
            .basic(&client.id, &secret)
            .form("token="),
        );
    }
    for (what, token) in forged_tokens(&app, &access) {
        rows.push(
            row(
                format!("userinfo: {what}"),
                Method::GET,
                "/userinfo",
                Expect::OAuth(401, "invalid_token"),
            )
            .header("authorization", format!("Bearer {token}")),
        );
        rows.push(
            row(
                format!("introspection: {what}"),
                Method::POST,
                "/introspect",
                Expect::Inactive,
            )
            .basic(&client.id, &secret)
            .form(format!("token={}", urlencoding(&token))),
        );
        rows.push(
            row(
                format!("revocation: {what}"),
                Method::POST,
                "/revoke",
                Expect::RevokedNothing,
            )
            .basic(&client.id, &secret)
            .form(format!("token={}", urlencoding(&token))),
        );
        rows.push(row(
            format!("end_session id_token_hint: {what}"),
            Method::GET,
            format!(
                "/end_session?id_token_hint={}&post_logout_redirect_uri={}",
                urlencoding(&token),
                urlencoding("https://app.example/bye")
            ),
            Expect::Page(400),
        ));
    }

    // The token endpoint.
    let token_row = |what: &str, body: &[u8]| {
        row(
            format!("token: {what}"),
            Method::POST,
            "/token",
            Expect::OAuth(400, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .form(body.to_vec())
    };
    rows.push(token_row(
        "grant_type twice",
        b"grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
    ));
    rows.push(token_row("code twice", format!("grant_type=authorization_code&code=a&code=b&redirect_uri={REDIRECT}&code_verifier={verifier}").as_bytes()));
    rows.push(token_row("no grant_type", b"code=abc"));
    rows.push(token_row(
        "5,000 unknown parameters",
        (0..5_000)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&")
            .as_bytes(),
    ));
    rows.push(
        row(
            "token: JSON instead of a form",
            Method::POST,
            "/token",
            Expect::OAuth(400, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .json(r#"{"grant_type":"refresh_token","refresh_token":"x"}"#),
    );
    rows.push(
        row(
            "token: no content type",
            Method::POST,
            "/token",
            Expect::OAuth(400, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .header("content-length", "0"),
    );
    rows.push(
        row(
            "token: 1 MiB body",
            Method::POST,
            "/token",
            Expect::OAuth(413, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .form(format!(
            "grant_type=refresh_token&refresh_token={}",
            "a".repeat(1 << 20)
        )),
    );
    rows.push(
        row(
            "token: invalid UTF-8",
            Method::POST,
            "/token",
            Expect::OAuth(400, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .form(b"grant_type=refresh_token&refresh_token=%FF%FE".to_vec()),
    );
    rows.push(
        row(
            "token: raw invalid UTF-8",
            Method::POST,
            "/token",
            Expect::OAuth(400, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .form(b"grant_type=refresh_\xff\xfetoken".to_vec()),
    );
    rows.push(
        row(
            "token: 8 KiB refresh token",
            Method::POST,
            "/token",
            Expect::OAuth(400, "invalid_grant"),
        )
        .basic(&client.id, &secret)
        .form(format!(
            "grant_type=refresh_token&refresh_token={}",
            "a".repeat(8 * 1024)
        )),
    );
    rows.push(
        row("token: 8 KiB code", Method::POST, "/token", Expect::OAuth(400, "invalid_grant"))
            .basic(&client.id, &secret)
            .form(format!("grant_type=authorization_code&code={}&redirect_uri={REDIRECT}&code_verifier={verifier}", "a".repeat(8 * 1024))),
    );
    rows.push(
        row(
            "token: Basic credentials not base64",
            Method::POST,
            "/token",
            Expect::OAuth(401, "invalid_client"),
        )
        .header("authorization", "Basic !!!not base64!!!")
        .form("grant_type=refresh_token&refresh_token=x"),
    );
    rows.push(
        row(
            "token: Basic credentials not UTF-8",
            Method::POST,
            "/token",
            Expect::OAuth(401, "invalid_client"),
        )
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(b"\xff\xfe:\xff")
            ),
        )
        .form("grant_type=refresh_token&refresh_token=x"),
    );
    rows.push(
        row(
            "token: 4 KiB client_id",
            Method::POST,
            "/token",
            Expect::OAuth(401, "invalid_client"),
        )
        .basic(&"c".repeat(4096), "secret")
        .form("grant_type=refresh_token&refresh_token=x"),
    );
    rows.push(
        row(
            "introspection: token twice",
            Method::POST,
            "/introspect",
            Expect::OAuth(400, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .form(format!("token={access}&token={access}")),
    );
    rows.push(
        row(
            "revocation: token twice",
            Method::POST,
            "/revoke",
            Expect::OAuth(400, "invalid_request"),
        )
        .basic(&client.id, &secret)
        .form(format!("token={access}&token=x")),
    );
    rows.push(
        row(
            "token: two Authorization headers",
            Method::POST,
            "/token",
            Expect::OAuth(401, "invalid_client"),
        )
        .basic(&client.id, &secret)
        .basic(&client.id, "another secret")
        .form("grant_type=refresh_token&refresh_token=x"),
    );
    rows.push(
        row(
            "userinfo: two Authorization headers",
            Method::GET,
            "/userinfo",
            Expect::OAuth(400, "invalid_request"),
        )
        .header("authorization", format!("Bearer {access}"))
        .header("authorization", format!("Bearer {access}")),
    );

    // The authorization endpoint: before the client and redirect URI are verified,
    // an HTML page and never a redirect.
    let authorize = |changes: &[(&str, &str)]| authorize_path(&client.id, &challenge, changes);
    let repeated_client = format!("{}&client_id={}", authorize(&[]), client.id);
    rows.push(row(
        "authorize: client_id twice",
        Method::GET,
        repeated_client,
        Expect::Page(400),
    ));
    let repeated_redirect = format!(
        "{}&redirect_uri={}",
        authorize(&[]),
        urlencoding("https://evil.example/cb")
    );
    rows.push(row(
        "authorize: redirect_uri twice",
        Method::GET,
        repeated_redirect,
        Expect::Page(400),
    ));
    rows.push(row(
        "authorize: invalid UTF-8 in the query",
        Method::GET,
        format!("{}&state=%FF%FE", authorize(&[("state", "")])),
        Expect::Page(400),
    ));
    rows.push(row(
        "authorize: 5 KiB state",
        Method::GET,
        authorize(&[("state", &"s".repeat(5 * 1024))]),
        Expect::Page(400),
    ));
    rows.push(row(
        "authorize: 5 KiB nonce",
        Method::GET,
        authorize(&[("nonce", &"n".repeat(5 * 1024))]),
        Expect::RedirectError("invalid_request"),
    ));
    rows.push(row(
        "authorize: 14 KiB query (state over its limit)",
        Method::GET,
        authorize(&[("state", &"s".repeat(14 * 1024))]),
        Expect::Page(400),
    ));
    rows.push(row(
        "authorize: 20 KiB query",
        Method::GET,
        authorize(&[("state", &"s".repeat(20 * 1024))]),
        Expect::OAuth(414, "invalid_request"),
    ));
    // More than 32 KiB of headers, or more than actix-http's 96.
    rows.push(
        row(
            "authorize: 200 KiB header",
            Method::GET,
            authorize(&[]),
            Expect::Status(431),
        )
        .header("x-padding", "p".repeat(40 * 1024)),
    );
    let mut many = row(
        "authorize: 150 headers",
        Method::GET,
        authorize(&[]),
        Expect::Status(431),
    );
    for _ in 0..150 {
        many = many.header("x-many", "1");
    }
    rows.push(many);

    // Dynamic registration and the JSON APIs.
    rows.push(
        row(
            "register: JSON nested 7,000 deep",
            Method::POST,
            "/register",
            Expect::OAuth(400, "invalid_client_metadata"),
        )
        .json(format!(
            r#"{{"client_name":"Bomb","redirect_uris":{}}}"#,
            nested_json(7_000)
        )),
    );
    // Browser forms.
    rows.push(
        row(
            "login: 1 MiB form",
            Method::POST,
            "/login",
            Expect::Page(413),
        )
        .form(format!("email=a&password={}", "p".repeat(1 << 20))),
    );
    rows.push(
        row(
            "login: JSON body",
            Method::POST,
            "/login",
            Expect::Page(400),
        )
        .json(r#"{"email":"a"}"#),
    );

    // No connection reuse: a server may rightly close a connection after refusing
    // a request head, and the next row must not inherit that.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut failures = Vec::new();
    for r in rows {
        if let Err(why) = check(&app, &http, r).await {
            failures.push(why);
        }
    }
    // Still serving, and the real token is still good (nothing above revoked it).
    let still = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("userinfo");
    if still.status() != 200 {
        failures.push(format!(
            "the real access token stopped working: {}",
            still.status()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
