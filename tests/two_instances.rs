//! Two Tessera processes sharing one PostgreSQL database, one Redis and one
//! `keys/` directory behave as one server behind a load balancer: sessions, codes,
//! refresh families, revocations and keys are shared state, not per process.
//!
//! Needs `TESSERA_TEST_DATABASE_URL` and `TESSERA_TEST_REDIS_URL` (`.ci/run` sets
//! both on its second pass); without them there is nothing to share and the test
//! says so and returns.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Browser;
use common::oauth::{REDIRECT, code_with_scope, pkce};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const EMAIL: &str = "shared@example.com";
const PASSWORD: &str = "correct horse battery";

/// One `tessera serve` process; killed when dropped.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(env: &HashMap<String, String>, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .args(args);
    cmd
}

fn run(env: &HashMap<String, String>, args: &[&str], stdin: &str) -> String {
    let mut child = command(env, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("tessera output");
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn start(env: &HashMap<String, String>, port: u16) -> Instance {
    let child = command(env, &["serve"])
        .env("TESSERA_BIND", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tessera serve");
    let instance = Instance {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = reqwest::get(format!("{}/readyz", instance.base)).await
            && r.status() == 200
        {
            return instance;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never became ready", instance.base);
}

/// A browser whose cookie jar is shared with `other` but which talks to `base`:
/// the same person, sent to another instance by the load balancer.
fn same_browser_at(other: &Browser, base: &str) -> Browser {
    Browser {
        client: other.client.clone(),
        base: base.to_owned(),
    }
}

struct Client {
    id: String,
    secret: String,
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    client: &Client,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = http
        .post(format!("{base}/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn refresh(
    http: &reqwest::Client,
    base: &str,
    client: &Client,
    refresh_token: &str,
) -> (u16, Value) {
    token(
        http,
        base,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Authorizes at the browser's instance and redeems the code at `redeem_at`.
async fn tokens_through(
    browser: &Browser,
    redeem_at: &str,
    client: &Client,
    http: &reqwest::Client,
) -> Value {
    let (verifier, challenge) = pkce();
    let code = code_with_scope(browser, &client.id, &challenge, "openid offline_access").await;
    let (status, body) = token(
        http,
        redeem_at,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn introspect(http: &reqwest::Client, base: &str, client: &Client, token: &str) -> Value {
    http.post(format!("{base}/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspection")
        .json()
        .await
        .expect("introspection JSON")
}

async fn published_kids(http: &reqwest::Client, base: &str) -> Vec<String> {
    let jwks: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks JSON");
    jwks["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt)
        .expect("a JWS")
        .kid
        .expect("a kid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_database_cache_and_keys_act_as_one_server() {
    let shared = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    if shared("TESSERA_TEST_DATABASE_URL").is_none() || shared("TESSERA_TEST_REDIS_URL").is_none() {
        common::skip("two instances need TESSERA_TEST_DATABASE_URL and TESSERA_TEST_REDIS_URL");
        return;
    }
    let backing = common::Backing::new().await;
    let (port_a, port_b) = (common::free_port(), common::free_port());
    let mut env = backing.env();
    // One public name for both, as behind a load balancer.
    env.insert(
        "TESSERA_ISSUER".into(),
        format!("http://127.0.0.1:{port_a}"),
    );
    env.insert("TESSERA_KEY_REFRESH_INTERVAL".into(), "0".into());
    env.insert("TESSERA_LOG".into(), "warn".into());

    run(&env, &["migrate"], "");
    run(
        &env,
        &["user", "create", "--email", EMAIL, "--password-stdin"],
        PASSWORD,
    );
    let created: Value = serde_json::from_str(&run(
        &env,
        &[
            "client",
            "create",
            "--name",
            "Shared App",
            "--first-party",
            "--json",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            "openid offline_access",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--id-token-alg",
            "ES256",
        ],
        "",
    ))
    .expect("client JSON");
    let client = Client {
        id: created["client_id"].as_str().expect("client_id").to_owned(),
        secret: created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    };

    let a = start(&env, port_a).await;
    let b = start(&env, port_b).await;
    let http = reqwest::Client::new();

    // A session made on A is valid on B.
    let at_a = Browser {
        client: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser"),
        base: a.base.clone(),
    };
    let at_b = same_browser_at(&at_a, &b.base);
    assert!(!at_b.is_signed_in().await);
    at_a.sign_in(EMAIL, PASSWORD).await;
    assert!(
        at_b.is_signed_in().await,
        "the session made on A is unknown to B"
    );

    // A code issued by A is redeemed at B, exactly once (A then refuses it).
    let (verifier, challenge) = pkce();
    let code = code_with_scope(&at_a, &client.id, &challenge, "openid offline_access").await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, first) = token(&http, &b.base, &client, &exchange).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = token(&http, &a.base, &client, &exchange).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // The replay at A also revoked what B issued for the code.
    let from_replayed = first["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh(&http, &a.base, &client, from_replayed).await.0, 400);

    // A refresh token rotated at A and retried at B (a second tab, another
    // instance) gets the same successor; once that successor has been used at
    // A, the old token replayed at B revokes the family.
    let second = tokens_through(&at_a, &b.base, &client, &http).await;
    let original = second["refresh_token"].as_str().expect("refresh token");
    let (status, rotated) = refresh(&http, &a.base, &client, original).await;
    assert_eq!(status, 200, "{rotated}");
    let successor = rotated["refresh_token"].as_str().expect("rotated token");
    let (status, retried) = refresh(&http, &b.base, &client, original).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["refresh_token"].as_str(), Some(successor));
    let (status, next) = refresh(&http, &a.base, &client, successor).await;
    assert_eq!(status, 200, "{next}");
    let (status, replay) = refresh(&http, &b.base, &client, original).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let newest = next["refresh_token"].as_str().expect("rotated token");
    let (status, _) = refresh(&http, &a.base, &client, newest).await;
    assert_eq!(
        status, 400,
        "the family survived a replay at the other instance"
    );

    // A token revoked at A is inactive at B's introspection.
    let fresh = tokens_through(&at_b, &a.base, &client, &http).await;
    let access = fresh["access_token"].as_str().expect("access token");
    assert_eq!(
        introspect(&http, &b.base, &client, access).await["active"],
        true
    );
    let revoked = http
        .post(format!("{}/revoke", a.base))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", access), ("token_type_hint", "access_token")])
        .send()
        .await
        .expect("revocation");
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        introspect(&http, &b.base, &client, access).await["active"],
        false
    );

    // Concurrent refreshes of one token split across A and B (tabs behind a
    // load balancer): one rotation, and every request gets its successor.
    let contested = fresh["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let (http, client, token) = (
                http.clone(),
                Client {
                    id: client.id.clone(),
                    secret: client.secret.clone(),
                },
                contested.clone(),
            );
            tokio::spawn(async move { refresh(&http, &base, &client, &token).await })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.expect("racer"));
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let successors: std::collections::HashSet<&str> = answers
        .iter()
        .filter_map(|(_, body)| body["refresh_token"].as_str())
        .collect();
    assert_eq!(successors.len(), 1, "{answers:?}");

    // A key rotated with the CLI is published by both at once and signs on both
    // once its delay has passed (the row is aged rather than waited for).
    let before = kid_of(fresh["access_token"].as_str().expect("access token"));
    let published_before = published_kids(&http, &a.base).await;
    run(
        &env,
        &["keys", "rotate", "--alg", "ES256", "--delay", "1h"],
        "",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_kid = loop {
        let on_a = published_kids(&http, &a.base).await;
        let on_b = published_kids(&http, &b.base).await;
        let new: Vec<_> = on_a
            .iter()
            .filter(|k| !published_before.contains(k))
            .cloned()
            .collect();
        if let [kid] = new.as_slice()
            && on_b.contains(kid)
            && published_before
                .iter()
                .all(|k| on_a.contains(k) && on_b.contains(k))
        {
            break kid.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key was not published by both: {on_a:?} / {on_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Still the old key until the delay has passed.
    let early = tokens_through(&at_a, &b.base, &client, &http).await;
    assert_eq!(
        kid_of(early["access_token"].as_str().expect("token")),
        before
    );
    let db = sea_orm::Database::connect(&backing.database_url)
        .await
        .expect("database");
    common::set_key_activation(&db, &new_kid, chrono::Utc::now()).await;
    // Each instance picks the change up on its next refresh (every 100 ms here).
    let deadline = Instant::now() + Duration::from_secs(10);
    for (browser, redeem_at) in [(&at_a, &b.base), (&at_b, &a.base)] {
        loop {
            let late = tokens_through(browser, redeem_at, &client, &http).await;
            let kids = [
                kid_of(late["access_token"].as_str().expect("token")),
                kid_of(late["id_token"].as_str().expect("id_token")),
            ];
            if kids == [new_kid.clone(), new_kid.clone()] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{redeem_at} still signs with {kids:?}, not {new_kid}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
