//! Outages: with Redis gone mid-run the server answers at once and honestly — 503
//! at `/readyz`, a "temporarily unavailable" page where a page needs the cache,
//! `temporarily_unavailable` at the token endpoint where a grant needs it — loses
//! nothing durable, and recovers by itself when Redis returns.
//!
//! The test runs its own `redis-server` on a free port, so stopping it disturbs
//! nothing else; the database is the suite's (SQLite, or PostgreSQL on the second
//! CI pass). A PostgreSQL restart is exercised by `.ci/outage-postgres` against the
//! machine's cluster, which it may stop.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::oauth::{code_for, exchange, pkce};
use common::{Browser, PASSWORD};
use serde_json::Value;

/// A private Redis; killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The answer to a request, and how long it took.
async fn timed(request: reqwest::RequestBuilder) -> (u16, String, String, Duration) {
    let started = Instant::now();
    let response = request.send().await.expect("an answer, not a hang-up");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    (status, content_type, body, started.elapsed())
}

/// Redis calls are bounded at 2 s (connect and response); an answer may wait for
/// at most a couple of them.
const PROMPT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_mid_run_is_answered_promptly_and_survived() {
    let port = common::free_port();
    let Some(redis) = Redis::start(port) else {
        common::skip("no redis-server on this machine (.ci/run installs it)");
        return;
    };
    let backing = common::Backing::new().await;
    let mut env = backing.env();
    env.insert("REDIS_URL".into(), redis.url());
    env.insert("TESSERA_CACHE_PREFIX".into(), common::unique_prefix());
    let app = common::spawn_on(&backing, env).await;

    // Before: a signed-in person, a client with a refresh token.
    let (browser, client, tokens) = common::oauth::signed_in_with_refresh_token(&app).await;
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    // A code issued just before the outage, redeemed during it.
    let (late_verifier, late_challenge) = pkce();
    let late_code = code_for(&browser, &client, &late_challenge).await;

    drop(redis);

    let (status, _, body, took) = timed(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, 503, "{body}");
    assert!(took < PROMPT, "/readyz took {took:?}");
    let readiness: Value = serde_json::from_str(&body).expect("readiness JSON");
    assert_eq!(readiness["cache"], "unavailable");
    assert_eq!(readiness["database"], "ok");

    // A grant that lives in the cache: the code exchange says so in RFC 6749 terms.
    let (status, content_type, body, took) = timed(
        app.client
            .post(app.url("/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", late_code.as_str()),
                ("redirect_uri", common::oauth::REDIRECT),
                ("code_verifier", late_verifier.as_str()),
            ]),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON")["error"],
        "temporarily_unavailable"
    );
    assert!(took < PROMPT, "the code exchange took {took:?}");

    // A page that needs the cache (the authorization page stores codes there).
    let started = Instant::now();
    let page = browser
        .get(&common::oauth::authorize_path(&client.id, &pkce().1, &[]))
        .await;
    assert!(
        started.elapsed() < PROMPT,
        "authorize took {:?}",
        started.elapsed()
    );
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(
        page.body.contains("Temporarily unavailable"),
        "{}",
        page.body
    );
    assert!(page.location().is_none());

    // Sign-in counts failures in the cache: a clear page, not a hang or a 500.
    let started = Instant::now();
    let signin = Browser::new(&app)
        .sign_in("ada@example.com", PASSWORD)
        .await;
    assert!(
        started.elapsed() < PROMPT * 2,
        "sign-in took {:?}",
        started.elapsed()
    );
    assert_eq!(signin.status, 503, "{}", signin.body);

    // Redis returns on the same port: the server recovers without a restart.
    let redis = Redis::start(port).expect("redis restarts");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, ..) = timed(app.client.get(app.url("/readyz"))).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready again after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing durable was lost: the refresh token from before rotates, the account
    // signs in, and a new code flow works end to end.
    let (status, body) = common::oauth::refresh(&app, &client, &refresh_token).await;
    assert_eq!(status, 200, "{body}");
    let again = Browser::new(&app);
    let page = again.sign_in("ada@example.com", PASSWORD).await;
    assert!(page.status < 400, "{}", page.body);
    assert!(again.is_signed_in().await);
    let (verifier, challenge) = pkce();
    let code = code_for(&again, &client, &challenge).await;
    assert_eq!(
        exchange(&app, &client, &code, &verifier).await.status(),
        200
    );
    drop(redis);
}
