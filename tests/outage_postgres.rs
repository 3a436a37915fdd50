//! A PostgreSQL outage mid-run: the server answers promptly with 503s while the
//! database is down, and its pool reconnects by itself when it is back — no
//! restart, nothing durable lost.
//!
//! This stops the machine's PostgreSQL cluster, so it runs only when
//! `TESSERA_TEST_PG_CLUSTER` names it (e.g. `15 main`; `.ci/run` sets it on the
//! PostgreSQL pass, where it is the only test binary running). It is a file of its
//! own so no other test shares the outage. The cluster is started again however
//! the test ends.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::Value;

/// Runs `pg_ctlcluster <cluster> <action>`, letting `pg_ctl` wait up to five
/// minutes (its default is one): a cluster that has just served a whole test
/// run holds hundreds of test databases, and its shutdown checkpoint has been
/// seen to take two minutes on a slow disk.
fn pg_ctl(cluster: &str, action: &str) {
    let mut args = vec!["--skip-systemctl-redirect"];
    args.extend(cluster.split_whitespace());
    args.extend([action, "--", "-t", "300"]);
    let status = Command::new("pg_ctlcluster")
        .args(&args)
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {args:?} failed");
}

/// Starts the cluster again when dropped, so a failing assertion cannot leave the
/// machine without its database.
struct Restore<'a>(&'a str);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = Command::new("pg_ctlcluster")
            .arg("--skip-systemctl-redirect")
            .args(self.0.split_whitespace())
            .args(["start", "--", "-t", "300"])
            .status();
    }
}

/// Acquiring a connection is bounded at 5 s; an answer may wait for one of them.
const PROMPT: Duration = Duration::from_secs(7);

/// A refresh grant and how long its answer took.
async fn refresh(
    app: &TestApp,
    client: &common::oauth::TestClient,
    token: &str,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = common::oauth::refresh(app, client, token).await;
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_answered_with_503s_and_the_pool_reconnects() {
    let Ok(cluster) = std::env::var("TESSERA_TEST_PG_CLUSTER") else {
        common::skip(
            "set TESSERA_TEST_PG_CLUSTER (e.g. \"15 main\") to let this test stop PostgreSQL",
        );
        return;
    };
    if std::env::var("TESSERA_TEST_DATABASE_URL").is_err() {
        common::skip("needs TESSERA_TEST_DATABASE_URL");
        return;
    }
    let app = common::spawn_app().await;
    let (browser, client, tokens) = common::oauth::signed_in_with_refresh_token(&app).await;
    let mut refresh_token = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();

    // Write dirty pages out now, so stopping is quick and the outage starts
    // when the test says.
    sea_orm::ConnectionTrait::execute_unprepared(&app.state.db, "CHECKPOINT")
        .await
        .expect("checkpoint");
    let restore = Restore(&cluster);
    pg_ctl(&cluster, "stop");

    let started = Instant::now();
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(ready.status(), 503);
    assert!(
        started.elapsed() < PROMPT,
        "/readyz took {:?}",
        started.elapsed()
    );
    let (status, body, took) = refresh(&app, &client, &refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    assert!(took < PROMPT, "the token endpoint took {took:?}");
    let started = Instant::now();
    let account = browser.get("/account").await;
    assert!(
        started.elapsed() < PROMPT,
        "/account took {:?}",
        started.elapsed()
    );
    assert_eq!(account.status, 503, "{}", account.body);

    pg_ctl(&cluster, "start");
    drop(restore);

    // The pool finds its way back: ready again, then every request succeeds.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("an answer");
        if ready.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready again after PostgreSQL returned"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Connections opened before the restart may fail once each as they are found
    // dead; after that, nothing.
    let mut failures_while_settling = 0;
    for _ in 0..40 {
        let (status, body, _) = refresh(&app, &client, &refresh_token).await;
        if status == 200 {
            refresh_token = body["refresh_token"].as_str().expect("rotated").to_owned();
            break;
        }
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        failures_while_settling += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        failures_while_settling < 40,
        "the refresh token from before the outage never worked again"
    );
    for i in 0..30 {
        let (status, body, _) = refresh(&app, &client, &refresh_token).await;
        assert_eq!(status, 200, "request {i} after recovery: {body}");
        refresh_token = body["refresh_token"].as_str().expect("rotated").to_owned();
    }
    assert!(
        browser.is_signed_in().await,
        "the session did not survive the restart"
    );
    eprintln!("requests refused while the pool settled: {failures_while_settling}");
}
