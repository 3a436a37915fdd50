//! The durable job queue: every outbound delivery that must not be lost (mail
//! now, back-channel logout later) is a row written in the same transaction as
//! the change that caused it, and delivered by a worker in each instance.
//!
//! Claiming pushes a job's `run_at` one lease ahead (on PostgreSQL under
//! `FOR UPDATE SKIP LOCKED`, so two instances never take the same row; the
//! update is also conditional, which keeps SQLite safe). A worker that dies
//! mid-delivery leaves the job due again when the lease runs out: delivery is
//! at least once, and exactly once unless a process dies between handing a
//! message to the server and recording it. Temporary failures are retried with
//! exponential backoff for `TESSERA_JOB_RETRY_FOR`; permanent ones are recorded.
//! A job that ends keeps its row (what, when, how it ended) but loses its
//! payload's `body`, which may carry a single-use link.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::entities::job;

/// A mail message (`mail::Mailer` writes it, `mail::Transport` delivers it).
pub const MAIL: &str = "mail";

const PENDING: &str = "pending";
const DONE: &str = "done";
const FAILED: &str = "failed";

/// How long a claimed job is someone's: longer than any one delivery may take
/// (the SMTP transport's timeouts are well under it).
pub const LEASE: Duration = Duration::from_secs(120);

/// Ended jobs are kept this long (what was sent, when, how it ended), then deleted.
const KEEP_ENDED: chrono::Duration = chrono::Duration::days(30);

/// How often a worker deletes ended jobs past [`KEEP_ENDED`].
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Jobs taken per claim; each is delivered before the next claim.
const BATCH: u64 = 10;

/// The first retry waits this long, each next one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Wakes this instance's worker when a job is written (other instances find it
/// on their next poll). Cheap to clone.
#[derive(Clone, Default)]
pub struct Queue {
    notify: Arc<Notify>,
}

impl Queue {
    /// Call after the transaction that wrote a job commits.
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// Writes a job due now, in `db` — the caller's transaction, so the job exists
/// exactly when the change that caused it does.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    kind: &str,
    payload: &serde_json::Value,
) -> Result<Uuid, DbErr> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    job::ActiveModel {
        id: Set(id),
        kind: Set(kind.to_owned()),
        payload: Set(payload.to_string()),
        state: Set(PENDING.to_owned()),
        attempts: Set(0),
        run_at: Set(now),
        created_at: Set(now),
        finished_at: Set(None),
        last_error: Set(None),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// A job this worker holds for one lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// Including this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again later (connection refused, 4xx reply, timeout).
    Temporary(String),
    /// Will never work (5xx reply, malformed payload).
    Permanent(String),
}

/// Delivers one kind of job (or several); the worker calls it with each claimed job.
pub trait Deliver: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        job: &'a Claimed,
    ) -> Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;
}

/// Takes up to [`BATCH`] due jobs for one lease.
pub async fn claim(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Vec<Claimed>, DbErr> {
    let due = job::Entity::find()
        .filter(job::Column::State.eq(PENDING))
        .filter(job::Column::RunAt.lte(now))
        .order_by_asc(job::Column::RunAt)
        .limit(BATCH);
    if db.get_database_backend() == DatabaseBackend::Postgres {
        // Rows another instance is claiming are skipped, not waited for.
        let txn = db.begin().await?;
        let rows = due
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        let claimed = take(&txn, rows, now).await?;
        txn.commit().await?;
        Ok(claimed)
    } else {
        // SQLite has no row locks, and a transaction that reads before it writes
        // cannot take the write lock while another connection writes: each
        // claim is its own conditional update instead.
        let rows = due.all(db).await?;
        take(db, rows, now).await
    }
}

/// Pushes each row's `run_at` one lease ahead — only if it is still as read, so
/// of two workers that read the same row, one takes it.
async fn take<C: ConnectionTrait>(
    db: &C,
    rows: Vec<job::Model>,
    now: DateTime<Utc>,
) -> Result<Vec<Claimed>, DbErr> {
    let until = now + lease();
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let taken = job::Entity::update_many()
            .col_expr(job::Column::RunAt, Expr::value(until))
            .col_expr(job::Column::Attempts, Expr::value(row.attempts + 1))
            .filter(job::Column::Id.eq(row.id))
            .filter(job::Column::State.eq(PENDING))
            .filter(job::Column::RunAt.eq(row.run_at))
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            claimed.push(Claimed {
                id: row.id,
                kind: row.kind,
                payload: row.payload,
                attempts: row.attempts + 1,
                created_at: row.created_at,
            });
        }
    }
    Ok(claimed)
}

fn lease() -> chrono::Duration {
    chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::MAX)
}

/// When the next try of a job that failed its `attempts`-th try is due.
pub fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// The payload without its `body` (the part that may hold a secret link).
fn receipt(payload: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("body");
            serde_json::Value::Object(fields).to_string()
        }
        _ => String::new(),
    }
}

/// Records how a delivery came out: done, due again later, or failed for good.
pub async fn finish(
    db: &DatabaseConnection,
    job: &Claimed,
    outcome: Result<(), Failure>,
    retry_for: Duration,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let update = job::Entity::update_many().filter(job::Column::Id.eq(job.id));
    let end = |update: sea_orm::UpdateMany<job::Entity>, state: &str, error: Option<String>| {
        update
            .col_expr(job::Column::State, Expr::value(state))
            .col_expr(job::Column::Payload, Expr::value(receipt(&job.payload)))
            .col_expr(job::Column::FinishedAt, Expr::value(Some(now)))
            .col_expr(job::Column::LastError, Expr::value(error))
    };
    let update = match outcome {
        Ok(()) => end(update, DONE, None),
        Err(Failure::Permanent(error)) => {
            tracing::warn!(job = %job.id, kind = %job.kind, %error, "job failed for good");
            end(update, FAILED, Some(error))
        }
        Err(Failure::Temporary(error)) => {
            let next = now + chrono::Duration::from_std(backoff(job.attempts)).unwrap_or_default();
            let give_up_at =
                job.created_at + chrono::Duration::from_std(retry_for).unwrap_or_default();
            if next > give_up_at {
                let error = format!("gave up after {} attempts: {error}", job.attempts);
                tracing::warn!(job = %job.id, kind = %job.kind, %error, "job failed for good");
                end(update, FAILED, Some(error))
            } else {
                tracing::info!(job = %job.id, kind = %job.kind, attempts = job.attempts, %error, retry_at = %next, "job will be retried");
                update
                    .col_expr(job::Column::RunAt, Expr::value(next))
                    .col_expr(job::Column::LastError, Expr::value(Some(error)))
            }
        }
    };
    update.exec(db).await?;
    Ok(())
}

/// The background worker of one instance; stops when dropped.
pub struct Worker(tokio::task::JoinHandle<()>);

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the worker: it delivers what is due, then sleeps until woken or
/// `poll` has passed.
pub fn spawn(
    db: DatabaseConnection,
    queue: Queue,
    deliver: Arc<dyn Deliver>,
    poll: Duration,
    retry_for: Duration,
    audit_retention: Duration,
) -> Worker {
    Worker(tokio::spawn(async move {
        let mut swept = tokio::time::Instant::now();
        loop {
            if swept.elapsed() >= SWEEP_EVERY {
                swept = tokio::time::Instant::now();
                if let Err(e) = sweep(&db, Utc::now()).await {
                    tracing::warn!("job queue: cannot delete old jobs: {e}");
                }
                // The same sweep keeps the audit log within its retention.
                let before = chrono::Duration::from_std(audit_retention)
                    .ok()
                    .and_then(|keep| Utc::now().checked_sub_signed(keep));
                if let Some(before) = before
                    && let Err(e) = crate::audit::prune(&db, before).await
                {
                    tracing::warn!("audit log: cannot prune old events: {e}");
                }
            }
            match run_due(&db, deliver.as_ref(), retry_for).await {
                // A full batch: there may be more due right now.
                Ok(n) if n as u64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!("job queue: cannot read due jobs: {e}"),
            }
            tokio::select! {
                () = queue.notify.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }))
}

/// Deletes jobs that ended more than [`KEEP_ENDED`] before `now`; how many.
pub async fn sweep(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let deleted = job::Entity::delete_many()
        .filter(job::Column::State.ne(PENDING))
        .filter(job::Column::FinishedAt.lt(now - KEEP_ENDED))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

/// Claims and delivers the jobs due now; how many it claimed.
pub async fn run_due(
    db: &DatabaseConnection,
    deliver: &dyn Deliver,
    retry_for: Duration,
) -> Result<usize, DbErr> {
    let jobs = claim(db, Utc::now()).await?;
    for job in &jobs {
        let outcome = deliver.deliver(job).await;
        finish(db, job, outcome, retry_for, Utc::now()).await?;
    }
    Ok(jobs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_thirty_seconds_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(1000), Duration::from_secs(3600));
        assert_eq!(backoff(0), Duration::from_secs(30));
    }

    #[test]
    fn an_ended_job_keeps_everything_but_its_body() {
        let kept = receipt(r#"{"to":"a@example.com","subject":"Hi","body":"secret link"}"#);
        let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"to": "a@example.com", "subject": "Hi"})
        );
        assert_eq!(receipt("not json"), "");
    }
}
