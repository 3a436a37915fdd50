//! The test server: the real app on a random loopback port, speaking HTTP.
//!
//! Backends follow the environment so the same suite proves both setups:
//! - `TESSERA_TEST_DATABASE_URL=postgres://…` → a fresh PostgreSQL database per test
//!   (created through that URL); otherwise a fresh SQLite file per test.
//! - `TESSERA_TEST_REDIS_URL=redis://…` → Redis with a key prefix unique to the test;
//!   otherwise the in-process cache.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

pub mod logout_listener;
pub mod oauth;
pub mod rp;
pub mod smtp;
pub mod upstream;
use tessera::config::{CliOverrides, Sources};
use tessera::{AppState, Settings};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub keys_dir: PathBuf,
    pub database_url: String,
    pub env: HashMap<String, String>,
    _refresher: tessera::tokens::keys::RefreshTask,
    _worker: tessera::jobs::Worker,
    _upstreams: tessera::federation::upstream::RefreshTask,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("not JSON")
    }
}

/// A place for a test's files and a fresh database URL.
pub struct Backing {
    pub dir: std::sync::Arc<tempfile::TempDir>,
    pub database_url: String,
}

impl Backing {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match std::env::var("TESSERA_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => fresh_postgres_database(&admin_url).await,
            _ => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("tessera.db").display()
            ),
        };
        Self {
            dir: std::sync::Arc::new(dir),
            database_url,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment a server over this backing gets, before a test's own changes.
    pub fn env(&self) -> HashMap<String, String> {
        let mut env = HashMap::from([
            ("DATABASE_URL".to_owned(), self.database_url.clone()),
            (
                "TESSERA_KEYS_DIR".to_owned(),
                self.path().join("keys").display().to_string(),
            ),
            ("TESSERA_WORKERS".to_owned(), "1".to_owned()),
            // The file outbox (the default transport) writes inside the test's directory.
            (
                "TESSERA_MAIL_DIR".to_owned(),
                self.path().join("mail").display().to_string(),
            ),
            // Cheap hashes keep the suite fast; the cost parameters have tests of their own.
            ("TESSERA_ARGON2_MEMORY_KIB".to_owned(), "1024".to_owned()),
            ("TESSERA_ARGON2_ITERATIONS".to_owned(), "1".to_owned()),
        ]);
        if let Ok(redis) = std::env::var("TESSERA_TEST_REDIS_URL")
            && !redis.is_empty()
        {
            env.insert("REDIS_URL".to_owned(), redis);
            env.insert("TESSERA_CACHE_PREFIX".to_owned(), unique_prefix());
        }
        env
    }
}

/// Reports a test that cannot run here. Under `TESSERA_TEST_REQUIRE_SERVICES`
/// (CI's PostgreSQL + Redis pass sets it) that is a failure, not a silent skip:
/// the services it needs are there, so a skip would hide a broken set-up.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("TESSERA_TEST_REQUIRE_SERVICES").is_none(),
        "required but skipped: {why}"
    );
    eprintln!("skipped: {why}");
}

/// A loopback port nothing listens on right now.
/// A JWT's claims, unverified: for reading what a token says (verification is
/// [`verify_for_audience`]'s).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(jwt)
        .expect("a JWT")
        .claims
}

/// The `tessera` command line against `app`'s database, with `env` added:
/// whether it succeeded, its stdout and its stderr.
pub fn cli_with(app: &TestApp, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    cli_input(app, env, args, "")
}

/// [`cli_with`], with `stdin` written to the command's standard input (secrets
/// and passwords are read from there, never from flags).
pub fn cli_input(
    app: &TestApp,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tessera binary");
    if let Some(mut input) = child.stdin.take() {
        // A command that exits before reading closes the pipe; that is its answer.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("the tessera binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An account made at the command line with [`PASSWORD`] (an administrator
/// when `admin`), its address vouched for.
pub fn account(app: &TestApp, email: &str, admin: bool) {
    let mut args = vec!["user", "create", "--email", email, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let (ok, _, err) = cli_input(app, &[], &args, &format!("{PASSWORD}\n"));
    assert!(ok, "{err}");
}

/// [`cli_with`] without extra environment.
pub fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    cli_with(app, &[], args)
}

/// A command that must succeed and print JSON (`--json`).
pub fn cli_json(app: &TestApp, args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = cli(app, args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Moves the activation of signing key `kid` to `activates_at`, as if its
/// rotation delay had passed (or not yet): the key ring reads it on its next
/// refresh. Tests age the row instead of sleeping through the delay.
pub async fn set_key_activation(
    db: &sea_orm::DatabaseConnection,
    kid: &str,
    activates_at: chrono::DateTime<chrono::Utc>,
) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use tessera::store::entities::signing_key;
    let moved = signing_key::Entity::update_many()
        .col_expr(signing_key::Column::ActivatesAt, Expr::value(activates_at))
        .filter(signing_key::Column::Kid.eq(kid))
        .exec(db)
        .await
        .expect("move a key's activation");
    assert_eq!(moved.rows_affected, 1, "no key {kid}");
}

/// Changes stored sessions — all, or the one whose token hashes to `token_hash` —
/// and drops their cached copies, so the server sees the change on the next
/// request (it reads a session from the cache first).
pub async fn edit_sessions(
    app: &TestApp,
    token_hash: Option<&str>,
    edit: impl Fn(&mut tessera::store::entities::session::ActiveModel),
) {
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
    use tessera::store::entities::session;
    let mut rows = session::Entity::find();
    if let Some(hash) = token_hash {
        rows = rows.filter(session::Column::TokenHash.eq(hash));
    }
    for row in rows.all(&app.state.db).await.expect("read sessions") {
        let hash = row.token_hash.clone();
        let mut active = row.into_active_model();
        edit(&mut active);
        active.update(&app.state.db).await.expect("edit a session");
        app.state
            .sessions
            .drop_cached_copy(&hash)
            .await
            .expect("drop the cached copy");
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn unique_prefix() -> String {
    format!("tessera-test:{}:", uuid::Uuid::now_v7().simple())
}

async fn fresh_postgres_database(admin_url: &str) -> String {
    let name = format!("tessera_t_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to TESSERA_TEST_DATABASE_URL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let mut url = url::Url::parse(admin_url).expect("TESSERA_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server whose issuer is `http://localhost:{port}`, so passkeys work.
pub async fn spawn_app_on_localhost() -> TestApp {
    spawn_app_with(|env| {
        env.insert("TESSERA_TEST_ISSUER_HOST".into(), "localhost".into());
    })
    .await
}

/// Starts a server whose environment `customize` may change.
pub async fn spawn_app_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let backing = Backing::new().await;
    let mut env = backing.env();
    customize(&mut env);
    spawn_on(&backing, env).await
}

/// Starts a server over an existing backing (several servers may share one).
pub async fn spawn_on(backing: &Backing, mut env: HashMap<String, String>) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    // WebAuthn needs a domain, not an IP address: tests of passkeys name the
    // loopback `localhost` (TESSERA_TEST_ISSUER_HOST).
    let base = match env.get("TESSERA_TEST_ISSUER_HOST") {
        Some(host) => format!("http://{host}:{}", addr.port()),
        None => format!("http://{addr}"),
    };
    env.entry("TESSERA_ISSUER".to_owned())
        .or_insert_with(|| base.clone());
    env.insert("TESSERA_BIND".to_owned(), addr.to_string());
    let settings = Settings::from_sources(Sources {
        config_file: None,
        env: env.clone(),
        cli: CliOverrides::default(),
    })
    .expect("test settings are valid");
    let keys_dir = settings.keys_dir.clone();
    let state = tessera::start(settings).await.expect("server starts");
    let tessera::Running {
        server,
        refresher,
        worker,
        upstreams,
    } = tessera::serve(state.clone(), listener).expect("serve");
    tokio::spawn(server);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        base,
        client,
        state,
        keys_dir,
        database_url: backing.database_url.clone(),
        env,
        _refresher: refresher,
        _worker: worker,
        _upstreams: upstreams,
        _dir: backing.dir.clone(),
    }
}

/// Verifies `token` as a resource server would: fetch the JWKS, pick the key by the
/// token's `kid`, verify with the `jsonwebtoken` crate.
pub async fn verify_with_published_jwks(
    app: &TestApp,
    token: &str,
) -> Result<serde_json::Value, String> {
    verify_for_audience(app, token, "https://api.example").await
}

/// Verifies `token` as a resource server for `audience` would: the published
/// keys (jsonwebtoken, not our code), `iss`, `aud`, `exp`.
pub async fn verify_for_audience(
    app: &TestApp,
    token: &str,
    audience: &str,
) -> Result<serde_json::Value, String> {
    let jwks: JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or(format!("kid {kid} not published"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.state.settings.issuer_str()]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

pub fn claims(app: &TestApp) -> Vec<u8> {
    let now = Utc::now().timestamp();
    serde_json::to_vec(&json!({
        "iss": app.state.settings.issuer_str(),
        "aud": "https://api.example",
        "sub": "user-1",
        "iat": now,
        "exp": now + 300,
    }))
    .unwrap()
}

/// A browser-like client: its own cookie jar, no automatic redirects.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("page has a csrf field") + marker.len();
        let end = self.body[start..].find('"').expect("closing quote");
        self.body[start..start + end].to_owned()
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.base.clone(),
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::page(
            self.client
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// Fetches `form_page`, then posts `fields` with its CSRF token to `action`.
    pub async fn submit(&self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    pub async fn sign_up(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/signup",
            "/signup",
            &[("email", email), ("password", password)],
        )
        .await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// Signs in on `login_page` (a page the server sent the browser to), keeping
    /// its `return_to`, and returns the answer — a redirect back where it came from.
    pub async fn sign_in_on(&self, login_page: &Page, email: &str, password: &str) -> Page {
        let return_to = oauth::hidden_fields(&login_page.body)
            .into_iter()
            .find(|(k, _)| k == "return_to")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let csrf = login_page.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
                ("return_to", &return_to),
            ],
        )
        .await
    }

    pub async fn is_signed_in(&self) -> bool {
        self.get("/account").await.status == 200
    }
}

pub const PASSWORD: &str = "purple elephants dance";

/// A client application's redirect endpoint on another origin (its own port), as
/// the world runs it: a real listener that records every request target it gets
/// and answers with a small page.
pub struct ClientListener {
    pub base: String,
    hits: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientListener {
    pub async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the client listener");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    if let Some(target) = head.split_whitespace().nth(1) {
                        recorded.lock().unwrap().push(target.to_owned());
                    }
                    let body = "<!doctype html><title>Client</title><p>callback received</p>";
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { base, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many requests for `path` arrived so far.
    pub fn count(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.split('?').next() == Some(path))
            .count()
    }

    /// Waits for callback number `nth` at `/cb`, asserts it brings a code and the
    /// test's `state`, and returns its parameters.
    pub async fn code(&self, nth: usize) -> Vec<(String, String)> {
        let answer = self.wait_for("/cb", nth).await;
        assert!(oauth::param(&answer, "code").is_some(), "{answer:?}");
        assert_eq!(oauth::param(&answer, "state"), Some("st-123"));
        answer
    }

    /// Waits (up to 10 s) for request number `nth` (from 1) for `path`, and returns
    /// its query parameters.
    pub async fn wait_for(&self, path: &str, nth: usize) -> Vec<(String, String)> {
        let started = std::time::Instant::now();
        loop {
            let found = self
                .hits
                .lock()
                .unwrap()
                .iter()
                .filter(|t| t.split('?').next() == Some(path))
                .nth(nth - 1)
                .cloned();
            if let Some(target) = found {
                let url = url::Url::parse(&format!("http://client{target}")).expect("target");
                return url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "the client never received request {nth} for {path}: {:?}",
                self.hits.lock().unwrap()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
