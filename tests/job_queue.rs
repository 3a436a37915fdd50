//! The durable job queue (issue 21): a message is written with the change that
//! caused it and survives an SMTP outage and a restart; two processes sharing
//! one queue deliver each message once; failures back off, then are recorded.

mod common;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use common::{Backing, Browser, PASSWORD, smtp};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};
use tessera::config::{CliOverrides, Sources};
use tessera::jobs::{self, Claimed, Deliver, Failure};
use tessera::mail::{Letter, Mailer};
use tessera::store::entities::job;

const SUBJECT: &str = "Verify your email address";

async fn jobs_of(db: &DatabaseConnection) -> Vec<job::Model> {
    job::Entity::find().all(db).await.unwrap()
}

/// Polls (at most 20 s) until `done` holds for the job rows.
async fn wait_for_jobs(
    db: &DatabaseConnection,
    done: impl Fn(&[job::Model]) -> bool,
) -> Vec<job::Model> {
    for _ in 0..400 {
        let rows = jobs_of(db).await;
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("jobs never got there: {:?}", jobs_of(db).await);
}

/// Makes every pending job due now (instead of waiting out its backoff).
async fn age_jobs(db: &DatabaseConnection) {
    job::Entity::update_many()
        .col_expr(
            job::Column::RunAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(job::Column::State.eq("pending"))
        .exec(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn mail_waits_out_an_smtp_outage_and_is_delivered_when_the_server_is_back() {
    let Some(mut smtp) = smtp::start().await else {
        return;
    };
    smtp.stop();
    let app = common::spawn_app_with(|env| {
        env.insert("TESSERA_SMTP_URL".into(), smtp.url());
    })
    .await;
    let browser = Browser::new(&app);
    // The request does not wait on SMTP: sign-up answers while the server is down.
    assert_eq!(
        browser.sign_up("ada@example.com", PASSWORD).await.status,
        303
    );
    let rows = wait_for_jobs(&app.state.db, |rows| {
        rows.len() == 1 && rows[0].attempts >= 1 && rows[0].last_error.is_some()
    })
    .await;
    assert_eq!(
        rows[0].state, "pending",
        "a refused connection is temporary"
    );
    assert!(
        rows[0].run_at > Utc::now() + chrono::Duration::seconds(20),
        "the retry waits (first backoff 30 s): {:?}",
        rows[0].run_at
    );

    smtp.resume().await;
    age_jobs(&app.state.db).await;
    app.state.jobs.wake();
    let message = smtp.message_to("ada@example.com", SUBJECT).await;
    assert!(message.text().contains("/email/verify/"));
    let rows = wait_for_jobs(&app.state.db, |rows| rows[0].state == "done").await;
    assert!(rows[0].finished_at.is_some());
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_message_queued_while_no_server_runs_is_delivered_by_the_next_one() {
    let Some(smtp) = smtp::start().await else {
        return;
    };
    let backing = Backing::new().await;
    let mut env = backing.env();
    env.insert("TESSERA_SMTP_URL".into(), smtp.url());
    // Start (and migrate) once, then stop: nothing runs when the CLI queues mail.
    drop(common::spawn_on(&backing, env.clone()).await);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &backing.database_url)
        .env("TESSERA_ARGON2_MEMORY_KIB", "1024")
        .env("TESSERA_ARGON2_ITERATIONS", "1")
        .args([
            "user",
            "create",
            "--email",
            "late@example.com",
            "--password-stdin",
            "--unverified",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(smtp.messages().is_empty());
    let _app = common::spawn_on(&backing, env).await;
    smtp.message_to("late@example.com", SUBJECT).await;
}

/// One `tessera serve` process; killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(env: &HashMap<String, String>) -> Process {
    let port = common::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .env("TESSERA_BIND", format!("127.0.0.1:{port}"))
        .env("TESSERA_ISSUER", format!("http://127.0.0.1:{port}"))
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tessera serve");
    let process = Process(child);
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == 200
        {
            return process;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("tessera serve on {port} never became ready");
}

#[tokio::test]
async fn two_processes_sharing_one_queue_deliver_each_message_once() {
    let Some(smtp) = smtp::start().await else {
        return;
    };
    let backing = Backing::new().await;
    let mut env = backing.env();
    env.insert("TESSERA_SMTP_URL".into(), smtp.url());
    env.insert("TESSERA_JOB_POLL_INTERVAL".into(), "1".into());
    let _first = serve(&env).await;
    let _second = serve(&env).await;

    // Thirty messages appear at once, as one transaction commits them.
    let settings = tessera::Settings::from_sources(Sources {
        config_file: None,
        env: env.clone(),
        cli: CliOverrides::default(),
    })
    .unwrap();
    let db = tessera::store::connect(&settings.database_url)
        .await
        .unwrap();
    let mailer = Mailer::new(&settings, jobs::Queue::default()).unwrap();
    let txn = db.begin().await.unwrap();
    for i in 0..30 {
        let letter = Letter::VerifyEmail {
            link: format!("http://example.com/{i}"),
        };
        mailer
            .enqueue(&txn, &format!("user{i}@example.com"), &letter)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();

    let rows = wait_for_jobs(&db, |rows| rows.iter().all(|r| r.state == "done")).await;
    assert_eq!(rows.len(), 30);
    // Each job was claimed exactly once (a second claim would count a second attempt)…
    assert!(rows.iter().all(|r| r.attempts == 1), "{rows:?}");
    // …and each message arrived once.
    let messages = smtp.wait_for(30).await;
    assert_eq!(messages.len(), 30);
    let recipients: HashSet<String> = messages.iter().map(|m| m.to()).collect();
    assert_eq!(recipients.len(), 30);
}

/// A delivery whose outcome the test decides, counting its calls.
struct Scripted {
    outcome: Failure,
    calls: Mutex<u32>,
}

impl Deliver for Scripted {
    fn deliver<'a>(
        &'a self,
        _job: &'a Claimed,
    ) -> Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>> {
        *self.calls.lock().unwrap() += 1;
        let outcome = self.outcome.clone();
        Box::pin(async move { Err(outcome) })
    }
}

/// A migrated database with no server (and so no worker) of its own.
async fn queue_only() -> (Backing, DatabaseConnection) {
    let backing = Backing::new().await;
    let url = tessera::Settings::from_sources(Sources {
        config_file: None,
        env: backing.env(),
        cli: CliOverrides::default(),
    })
    .unwrap()
    .database_url;
    let db = tessera::store::connect(&url).await.unwrap();
    tessera::store::migrate(&db).await.unwrap();
    (backing, db)
}

fn payload() -> serde_json::Value {
    serde_json::json!({"to": "ada@example.com", "subject": "Hi", "body": "a secret link"})
}

#[tokio::test]
async fn a_permanent_failure_is_recorded_once_and_never_retried() {
    let (_backing, db) = queue_only().await;
    jobs::enqueue(&db, jobs::MAIL, &payload()).await.unwrap();
    let rejecting = Scripted {
        outcome: Failure::Permanent("550 no such mailbox".into()),
        calls: Mutex::new(0),
    };
    let day = Duration::from_secs(86_400);
    assert_eq!(jobs::run_due(&db, &rejecting, day).await.unwrap(), 1);
    let row = &jobs_of(&db).await[0];
    assert_eq!(row.state, "failed");
    assert_eq!(row.last_error.as_deref(), Some("550 no such mailbox"));
    assert!(
        !row.payload.contains("secret"),
        "the body goes when the job ends"
    );
    age_jobs(&db).await;
    assert_eq!(jobs::run_due(&db, &rejecting, day).await.unwrap(), 0);
    assert_eq!(*rejecting.calls.lock().unwrap(), 1);
}

#[tokio::test]
async fn temporary_failures_back_off_then_give_up_after_the_retry_window() {
    let (_backing, db) = queue_only().await;
    jobs::enqueue(&db, jobs::MAIL, &payload()).await.unwrap();
    let down = Scripted {
        outcome: Failure::Temporary("connection refused".into()),
        calls: Mutex::new(0),
    };
    let window = Duration::from_secs(3600);
    let mut waits = Vec::new();
    loop {
        let before = Utc::now();
        assert_eq!(jobs::run_due(&db, &down, window).await.unwrap(), 1);
        let row = jobs_of(&db).await.remove(0);
        if row.state == "failed" {
            assert!(
                row.last_error
                    .as_deref()
                    .unwrap()
                    .starts_with("gave up after"),
                "{row:?}"
            );
            break;
        }
        assert_eq!(row.state, "pending");
        waits.push((row.run_at - before).num_seconds());
        // Time passes: the job is due again, and older by its wait.
        let aged = row.created_at - (row.run_at - before);
        job::Entity::update_many()
            .col_expr(job::Column::RunAt, Expr::value(Utc::now()))
            .col_expr(job::Column::CreatedAt, Expr::value(aged))
            .exec(&db)
            .await
            .unwrap();
        assert!(waits.len() < 20, "never gave up: {waits:?}");
    }
    // 30 s, 60 s, 120 s, … doubling, within one hour in all.
    assert!(waits.len() >= 3, "{waits:?}");
    for pair in waits.windows(2) {
        assert!((pair[1] - 2 * pair[0]).abs() <= 2, "{waits:?}");
    }
    assert!((waits[0] - 30).abs() <= 2, "{waits:?}");
    assert!(waits.iter().sum::<i64>() <= 3600);
}

/// Records which jobs it delivered.
#[derive(Default)]
struct Recording {
    delivered: Mutex<Vec<uuid::Uuid>>,
}

impl Deliver for Recording {
    fn deliver<'a>(
        &'a self,
        job: &'a Claimed,
    ) -> Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>> {
        self.delivered.lock().unwrap().push(job.id);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_claiming_at_the_same_moment_never_take_the_same_job() {
    let (_backing, db) = queue_only().await;
    let txn = db.begin().await.unwrap();
    for _ in 0..200 {
        jobs::enqueue(&txn, jobs::MAIL, &payload()).await.unwrap();
    }
    txn.commit().await.unwrap();
    let recording = std::sync::Arc::new(Recording::default());
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (db, recording, start) = (db.clone(), recording.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let day = Duration::from_secs(86_400);
                loop {
                    match jobs::run_due(&db, recording.as_ref(), day).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        // SQLite may answer "busy" to a writer that lost the race.
                        Err(e) if e.to_string().contains("locked") => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let delivered = recording.delivered.lock().unwrap().clone();
    let distinct: HashSet<_> = delivered.iter().collect();
    assert_eq!(distinct.len(), 200, "every job delivered");
    assert_eq!(delivered.len(), 200, "no job delivered twice");
    assert!(
        jobs_of(&db)
            .await
            .iter()
            .all(|r| r.state == "done" && r.attempts == 1)
    );
}

#[tokio::test]
async fn ended_jobs_are_kept_thirty_days_then_deleted() {
    let (_backing, db) = queue_only().await;
    for _ in 0..3 {
        jobs::enqueue(&db, jobs::MAIL, &payload()).await.unwrap();
    }
    let rejecting = Scripted {
        outcome: Failure::Permanent("550".into()),
        calls: Mutex::new(0),
    };
    let day = Duration::from_secs(86_400);
    jobs::run_due(&db, &rejecting, day).await.unwrap();
    let ended = jobs_of(&db).await;
    // One ended 31 days ago, one 29 days ago; the third is still pending.
    for (row, age) in ended.iter().zip([31, 29]) {
        job::Entity::update_many()
            .col_expr(
                job::Column::FinishedAt,
                Expr::value(Some(Utc::now() - chrono::Duration::days(age))),
            )
            .filter(job::Column::Id.eq(row.id))
            .exec(&db)
            .await
            .unwrap();
    }
    job::Entity::update_many()
        .col_expr(job::Column::State, Expr::value("pending"))
        .col_expr(
            job::Column::FinishedAt,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(job::Column::Id.eq(ended[2].id))
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(jobs::sweep(&db, Utc::now()).await.unwrap(), 1);
    let left: Vec<_> = jobs_of(&db).await.into_iter().map(|r| r.id).collect();
    assert_eq!(left, vec![ended[1].id, ended[2].id]);
}
