//! Jobs on SQLite, the embedded default: one process (or a few on one machine) sharing one
//! file. Every job write runs under `BEGIN IMMEDIATE`, the single writer lock, so a claim reads
//! the candidates, the per-user counts and writes the claim with no other writer in between: no
//! row locks are needed for the cap or the fence to be exact. Times are the stored RFC 3339
//! text with milliseconds ([`sql::sqlite_time`]), compared as text like every other timestamp.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteArguments;
use sqlx::{AssertSqlSafe, Row, Sqlite, SqliteConnection};
use techpack_model::{
    ClaimOptions, Job, JobEvent, JobFilter, JobLease, JobOutcome, JobState, NewJob, Principal,
    ProgressEvent, ValidationError, check_lease, clip_job_error,
};
use uuid::Uuid;

use super::{
    Fence, GAVE_UP_CODE, JobEventWaker, JobStore, SQLITE_EVENT_POLL, check_delay,
    check_event_limit, check_progress, event_docs, gave_up_message, key_reused, lease_lost,
    list_query, states_counted, worker_stopped_message,
};
use crate::rows::check_owner;
use crate::sql::{self, Bind, Dialect, Query};
use crate::{SqliteStore, StoreError, StoreResult, TechFileStore};

const D: Dialect = Dialect::Sqlite;

/// Checks, inside a write transaction, that the fenced job still runs under the fence's token.
/// The transaction holds the writer lock, so no claim can move the lease before it ends.
pub(crate) async fn check_fence(conn: &mut SqliteConnection, fence: &Fence) -> StoreResult<()> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM generation_jobs WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
    )
    .bind(fence.job_id.to_string())
    .bind(fence.token.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(lease_lost(fence.job_id)),
    }
}

fn bound(query: Query) -> sqlx::query::Query<'static, Sqlite, SqliteArguments> {
    let mut statement = sqlx::query(AssertSqlSafe(query.sql));
    for value in query.binds {
        statement = match value {
            Bind::Uuid(id) => statement.bind(id.to_string()),
            Bind::Text(text) => statement.bind(text),
            Bind::OptText(text) => statement.bind(text),
            Bind::Int(number) => statement.bind(number),
            Bind::Time(time) => statement.bind(sql::sqlite_time(time)),
        };
    }
    statement
}

async fn jobs(conn: &mut SqliteConnection, query: Query) -> StoreResult<Vec<Job>> {
    let rows = bound(query).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| sql::decode_doc(&row.try_get::<String, _>(0)?))
        .collect()
}

/// One job by id, scoped to the caller.
async fn job_in(conn: &mut SqliteConnection, principal: Principal, id: Uuid) -> StoreResult<Job> {
    let mut q = Query::new(D);
    q.push("SELECT j.doc FROM generation_jobs_doc AS j WHERE j.id = ")
        .bind(Bind::Uuid(id));
    q.scope("j", principal);
    jobs(conn, q)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::not_found("job", id))
}

/// The job a new one is the same as: the owner's job with its idempotency key, else the owner's
/// queued or running job with its request key.
async fn same_job(conn: &mut SqliteConnection, new: &NewJob) -> StoreResult<Option<Job>> {
    if let Some(key) = &new.idempotency_key {
        let mut q = Query::new(D);
        q.push("SELECT j.doc FROM generation_jobs_doc AS j WHERE j.user_id = ")
            .bind(Bind::Uuid(new.user_id))
            .push(" AND j.idempotency_key = ")
            .bind(Bind::Text(key.clone()));
        if let Some(existing) = jobs(conn, q).await?.into_iter().next() {
            if existing.request_key != new.request_key {
                return Err(key_reused(key, &existing));
            }
            return Ok(Some(existing));
        }
    }
    if let Some(key) = &new.request_key {
        let mut q = Query::new(D);
        q.push("SELECT j.doc FROM generation_jobs_doc AS j WHERE j.user_id = ")
            .bind(Bind::Uuid(new.user_id))
            .push(" AND j.request_key = ")
            .bind(Bind::Text(key.clone()))
            .push(" AND j.state IN ('queued', 'running')");
        return Ok(jobs(conn, q).await?.into_iter().next());
    }
    Ok(None)
}

/// `time` from now, in the stored form.
fn after(now: DateTime<Utc>, time: Duration) -> StoreResult<String> {
    let span = chrono::Duration::from_std(time)
        .map_err(|error| ValidationError::new("duration", error.to_string()))?;
    Ok(sql::sqlite_time(now + span))
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

/// One candidate of a claim.
#[derive(sqlx::FromRow)]
struct Candidate {
    id: String,
    state: String,
    attempts: i32,
    max_attempts: i32,
    cancel_requested: bool,
    worker_id: Option<String>,
    last_error: Option<String>,
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_or_join(&self, principal: Principal, new: NewJob) -> StoreResult<(Job, bool)> {
        new.validate()?;
        check_owner(principal, new.user_id)?;
        // The writer lock holds from the look for the same job to the insert: two identical
        // enqueues never both insert.
        let mut tx = self.write_tx_with(None).await?;
        if let Some(existing) = same_job(&mut tx, &new).await? {
            tx.commit().await?;
            return Ok((existing, true));
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO generation_jobs (id, user_id, product_idea_id, kind, request, max_attempts, \
             collection_id, request_key, idempotency_key, batch_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(id.to_string())
        .bind(new.user_id.to_string())
        .bind(new.product_idea_id.to_string())
        .bind(&new.kind)
        .bind(json_text(&new.request))
        .bind(new.max_attempts)
        .bind(new.collection_id.map(|id| id.to_string()))
        .bind(&new.request_key)
        .bind(&new.idempotency_key)
        .bind(new.batch_id.map(|id| id.to_string()))
        .execute(&mut *tx)
        .await?;
        let created = job_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        Ok((created, false))
    }

    async fn get_job(&self, principal: Principal, id: Uuid) -> StoreResult<Job> {
        let mut conn = self.pool().acquire().await?;
        job_in(&mut conn, principal, id).await
    }

    async fn list_jobs(&self, principal: Principal, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let query = list_query(D, principal, filter)?;
        let mut conn = self.pool().acquire().await?;
        jobs(&mut conn, query).await
    }

    async fn cancel_job(&self, principal: Principal, id: Uuid) -> StoreResult<Job> {
        let mut tx = self.write_tx_with(None).await?;
        let mut q = Query::new(D);
        q.push(
            "UPDATE generation_jobs AS j SET cancel_requested = 1, \
             state = CASE WHEN j.state = 'queued' THEN 'cancelled' ELSE j.state END, \
             finished_at = CASE WHEN j.state = 'queued' THEN ",
        )
        .bind(Bind::Time(Utc::now()))
        .push(" ELSE j.finished_at END WHERE j.state IN ('queued', 'running') AND j.id = ")
        .bind(Bind::Uuid(id));
        q.scope("j", principal);
        let updated = bound(q).execute(&mut *tx).await?.rows_affected();
        // Missing or someone else's: NotFound; otherwise the job is read back (or was over).
        let current = job_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        self.event_feed().publish(id);
        if updated == 0 {
            return Err(StoreError::Conflict(format!(
                "job {id} already {}",
                current.state
            )));
        }
        Ok(current)
    }

    async fn claim_job(
        &self,
        principal: Principal,
        options: &ClaimOptions,
    ) -> StoreResult<Option<(Job, JobLease)>> {
        options.validate()?;
        let mut tx = self.write_tx_with(None).await?;
        // Each pass either claims, finds nothing, or finishes a candidate for good: it ends.
        loop {
            let now = Utc::now();
            let mut q = Query::new(D);
            q.push(
                "SELECT j.id, j.state, j.attempts, j.max_attempts, j.cancel_requested, j.worker_id, \
                 j.last_error FROM generation_jobs AS j WHERE ((j.state = 'queued' AND j.run_after <= ",
            )
            .bind(Bind::Time(now))
            .push(") OR (j.state = 'running' AND j.lease_expires_at <= ")
            .bind(Bind::Time(now))
            .push(
                ")) AND (SELECT count(*) FROM generation_jobs AS r WHERE r.user_id = j.user_id \
                 AND r.state = 'running' AND r.lease_expires_at > ",
            )
            .bind(Bind::Time(now))
            .push(") < ")
            .bind(Bind::Int(i64::from(options.per_user_cap)))
            .push(
                " AND NOT EXISTS (SELECT 1 FROM generation_jobs AS p WHERE p.user_id = j.user_id \
                 AND p.product_idea_id = j.product_idea_id AND p.state = 'running' AND p.id <> j.id \
                 AND p.lease_expires_at > ",
            )
            .bind(Bind::Time(now))
            .push(")");
            if let Some(only) = options.only_job {
                q.push(" AND j.id = ").bind(Bind::Uuid(only));
            }
            q.scope("j", principal);
            q.push(" ORDER BY j.run_after, j.created_at, j.id LIMIT 1");
            let candidate: Option<Candidate> = {
                let row = bound(q).fetch_optional(&mut *tx).await?;
                row.map(|row| sqlx::FromRow::from_row(&row)).transpose()?
            };
            let Some(candidate) = candidate else {
                // Persist any candidates finished on the way.
                tx.commit().await?;
                return Ok(None);
            };
            let was_running = candidate.state == JobState::Running.as_str();
            if candidate.cancel_requested {
                // Its worker died after the owner asked to cancel: do not resume it.
                sqlx::query(
                    "UPDATE generation_jobs SET state = 'cancelled', finished_at = ?2, lease_token = NULL, \
                     lease_expires_at = NULL WHERE id = ?1",
                )
                .bind(&candidate.id)
                .bind(sql::sqlite_time(now))
                .execute(&mut *tx)
                .await?;
                continue;
            }
            if candidate.attempts >= candidate.max_attempts {
                let previous = if was_running {
                    worker_stopped_message(candidate.worker_id.as_deref())
                } else {
                    candidate
                        .last_error
                        .unwrap_or_else(|| worker_stopped_message(None))
                };
                sqlx::query(
                    "UPDATE generation_jobs SET state = 'failed', finished_at = ?2, lease_token = NULL, \
                     lease_expires_at = NULL, last_error = ?3, error_code = ?4 WHERE id = ?1",
                )
                .bind(&candidate.id)
                .bind(sql::sqlite_time(now))
                .bind(clip_job_error(&gave_up_message(
                    candidate.attempts,
                    &previous,
                )))
                .bind(GAVE_UP_CODE)
                .execute(&mut *tx)
                .await?;
                continue;
            }
            let token = Uuid::new_v4();
            let last_error = if was_running {
                Some(worker_stopped_message(candidate.worker_id.as_deref()))
            } else {
                candidate.last_error
            };
            sqlx::query(
                "UPDATE generation_jobs SET state = 'running', attempts = attempts + 1, worker_id = ?2, \
                 lease_token = ?3, lease_expires_at = ?4, heartbeat_at = ?5, \
                 started_at = coalesce(started_at, ?5), last_error = ?6 WHERE id = ?1",
            )
            .bind(&candidate.id)
            .bind(&options.worker_id)
            .bind(token.to_string())
            .bind(after(now, options.lease)?)
            .bind(sql::sqlite_time(now))
            .bind(last_error)
            .execute(&mut *tx)
            .await?;
            let id = Uuid::parse_str(&candidate.id).map_err(|error| {
                StoreError::Corrupt(format!("job id {}: {error}", candidate.id))
            })?;
            let claimed = job_in(&mut tx, Principal::Service, id).await?;
            tx.commit().await?;
            self.event_feed().publish(id);
            let lease = JobLease {
                job_id: id,
                worker_id: options.worker_id.clone(),
                token,
                attempt: claimed.attempts,
                lease: options.lease,
            };
            return Ok(Some((claimed, lease)));
        }
    }

    async fn heartbeat_job(&self, lease: &JobLease) -> StoreResult<Job> {
        check_lease(lease.lease)?;
        let now = Utc::now();
        let mut tx = self.write_tx_with(None).await?;
        let updated = sqlx::query(
            "UPDATE generation_jobs SET lease_expires_at = ?3, heartbeat_at = ?4 \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .bind(after(now, lease.lease)?)
        .bind(sql::sqlite_time(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(lease_lost(lease.job_id));
        }
        let job = job_in(&mut tx, Principal::Service, lease.job_id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn record_job_progress(
        &self,
        lease: &JobLease,
        collection_id: Option<Uuid>,
        progress: Value,
        events: &[ProgressEvent],
    ) -> StoreResult<()> {
        check_progress(&progress)?;
        let events = event_docs(events)?;
        let mut tx = self.write_tx_with(None).await?;
        let updated = sqlx::query(
            "UPDATE generation_jobs SET collection_id = coalesce(?3, collection_id), progress = ?4 \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .bind(collection_id.map(|id| id.to_string()))
        .bind(json_text(&progress))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(lease_lost(lease.job_id));
        }
        // In the order given: AUTOINCREMENT ids follow the SELECT's order.
        sqlx::query(
            "INSERT INTO generation_job_events (job_id, user_id, attempt, event, created_at) \
             SELECT j.id, j.user_id, j.attempts, e.value, ?3 \
               FROM generation_jobs AS j, json_each(?2) AS e \
              WHERE j.id = ?1 ORDER BY e.key",
        )
        .bind(lease.job_id.to_string())
        .bind(json_text(&events))
        .bind(sql::sqlite_time(Utc::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.event_feed().publish(lease.job_id);
        Ok(())
    }

    async fn list_job_events(
        &self,
        principal: Principal,
        job_id: Uuid,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<JobEvent>> {
        let limit = check_event_limit(limit)?;
        let mut q = Query::new(D);
        q.push(
            "SELECT json_object('id', e.id, 'job_id', e.job_id, 'attempt', e.attempt, \
             'event', json(e.event), 'created_at', e.created_at) FROM generation_job_events AS e \
             WHERE e.job_id = ",
        )
        .bind(Bind::Uuid(job_id))
        .push(" AND e.id > ")
        .bind(Bind::Int(after.unwrap_or(0)));
        q.scope("e", principal);
        q.push(" ORDER BY e.id LIMIT ").bind(Bind::Int(limit));
        let mut conn = self.pool().acquire().await?;
        let rows = bound(q).fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|row| sql::decode_doc(&row.try_get::<String, _>(0)?))
            .collect()
    }

    fn job_event_waker(&self) -> JobEventWaker {
        self.event_feed().local_waker(SQLITE_EVENT_POLL)
    }

    async fn count_jobs_by_state(&self, principal: Principal) -> StoreResult<Vec<(JobState, i64)>> {
        let mut q = Query::new(D);
        q.push("SELECT j.state, count(*) FROM generation_jobs AS j WHERE 1 = 1");
        q.scope("j", principal);
        q.push(" GROUP BY j.state ORDER BY j.state");
        let mut conn = self.pool().acquire().await?;
        let rows = bound(q).fetch_all(&mut *conn).await?;
        let rows = rows
            .iter()
            .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        states_counted(rows)
    }

    async fn finish_job(&self, lease: &JobLease, outcome: JobOutcome) -> StoreResult<Job> {
        outcome.validate()?;
        let mut tx = self.write_tx_with(None).await?;
        let updated = sqlx::query(
            "UPDATE generation_jobs SET state = ?3, result = ?4, last_error = ?5, finished_at = ?6, \
             lease_token = NULL, lease_expires_at = NULL, error_code = ?7 \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .bind(outcome.state.as_str())
        .bind(outcome.result.as_ref().map(json_text))
        .bind(outcome.error.as_deref().map(clip_job_error))
        .bind(sql::sqlite_time(Utc::now()))
        .bind(&outcome.error_code)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(lease_lost(lease.job_id));
        }
        let job = job_in(&mut tx, Principal::Service, lease.job_id).await?;
        tx.commit().await?;
        self.event_feed().publish(lease.job_id);
        Ok(job)
    }

    async fn release_job(
        &self,
        lease: &JobLease,
        reason: &str,
        delay: Duration,
        count_attempt: bool,
    ) -> StoreResult<Job> {
        check_delay(delay)?;
        let now = Utc::now();
        let mut tx = self.write_tx_with(None).await?;
        let row: Option<(i32, i32, bool)> = sqlx::query_as(
            "SELECT attempts, max_attempts, cancel_requested FROM generation_jobs \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.token.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let (attempts, max_attempts, cancel_requested) =
            row.ok_or_else(|| lease_lost(lease.job_id))?;
        let gave_up = !cancel_requested && count_attempt && attempts >= max_attempts;
        let (state, last_error) = if cancel_requested {
            (JobState::Cancelled, clip_job_error(reason))
        } else if gave_up {
            (
                JobState::Failed,
                clip_job_error(&gave_up_message(attempts, reason)),
            )
        } else {
            (JobState::Queued, clip_job_error(reason))
        };
        let attempts = if count_attempt {
            attempts
        } else {
            (attempts - 1).max(0)
        };
        sqlx::query(
            "UPDATE generation_jobs SET state = ?2, attempts = ?3, last_error = ?4, finished_at = ?5, \
             run_after = ?6, lease_token = NULL, lease_expires_at = NULL WHERE id = ?1",
        )
        .bind(lease.job_id.to_string())
        .bind(state.as_str())
        .bind(attempts)
        .bind(last_error)
        .bind(state.is_terminal().then(|| sql::sqlite_time(now)))
        .bind(after(now, delay)?)
        .execute(&mut *tx)
        .await?;
        let job = job_in(&mut tx, Principal::Service, lease.job_id).await?;
        tx.commit().await?;
        self.event_feed().publish(lease.job_id);
        Ok(job)
    }

    async fn wait_for_jobs(&self, timeout: Duration) -> StoreResult<()> {
        // No notifications in SQLite: the caller polls at this period.
        tokio::time::sleep(timeout).await;
        Ok(())
    }

    fn fenced(&self, lease: &JobLease) -> Arc<dyn TechFileStore> {
        Arc::new(self.with_fence(Fence::of(lease)))
    }
}
