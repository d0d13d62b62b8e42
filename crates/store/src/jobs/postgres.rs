//! Jobs on PostgreSQL. Lease times come from the database clock (`statement_timestamp()`), so
//! workers on several machines agree on when a lease expires. Claims lock their candidate row
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never take the same job and never wait on
//! each other's candidates, and serialize per user on a transaction-level advisory lock, so the
//! per-user cap is exact. User calls run under the caller's role and RLS; lease calls run as
//! service_role: the lease token is the capability.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgConnection, PgListener};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Postgres, Row};
use techpack_model::{
    ClaimOptions, Job, JobEvent, JobFilter, JobLease, JobOutcome, JobState, NewJob, Principal,
    ProgressEvent, check_lease, clip_job_error,
};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{
    Fence, GAVE_UP_CODE, JOBS_CHANNEL, JobEventWaker, JobStore, POSTGRES_EVENT_POLL, check_delay,
    check_event_limit, check_progress, event_docs, gave_up_message, key_reused, lease_lost,
    list_query, states_counted, worker_stopped_message,
};
use crate::rows::check_owner;
use crate::sql::{self, Bind, Dialect, Query};
use crate::{PostgresStore, StoreError, StoreResult, TechFileStore};

/// The LISTEN connection of `wait_for_jobs`: made on first use, kept (and shared by clones of
/// the store) so notifications between two waits are buffered instead of lost.
pub(crate) type JobListener = Arc<Mutex<Option<PgListener>>>;

type Tx = sqlx::Transaction<'static, Postgres>;

/// The row columns as one JSON document, the shape [`Job`] deserializes.
const JOB_DOC: &str = "to_jsonb(j)::text";

/// Locks the fenced job row and checks that it still runs under the fence's token; the first
/// statements of a fenced transaction. Runs as service_role (the caller switches to the acting
/// principal afterwards), so row level security on the job row does not depend on who acts.
/// `FOR KEY SHARE` conflicts with the `FOR UPDATE` every claim takes on its candidate, so a
/// claim cannot move the lease while this transaction is open (it skips the row, or waits
/// until it ends), yet heartbeats and progress updates of the same worker (plain UPDATEs that
/// change no key) do not wait for the write.
pub(crate) async fn hold_fence(conn: &mut PgConnection, fence: &Fence) -> StoreResult<()> {
    sqlx::query("SELECT set_config('role', 'service_role', true)")
        .execute(&mut *conn)
        .await?;
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM public.generation_jobs WHERE id = $1 AND lease_token = $2 AND state = 'running' \
         FOR KEY SHARE",
    )
    .bind(fence.job_id)
    .bind(fence.token)
    .fetch_optional(&mut *conn)
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(lease_lost(fence.job_id)),
    }
}

fn bound(query: Query) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    let mut statement = sqlx::query(AssertSqlSafe(query.sql));
    for value in query.binds {
        statement = match value {
            Bind::Uuid(id) => statement.bind(id),
            Bind::Text(text) => statement.bind(text),
            Bind::OptText(text) => statement.bind(text),
            Bind::Int(number) => statement.bind(number),
            Bind::Time(time) => statement.bind(time),
        };
    }
    statement
}

/// The job a new one is the same as: the owner's job with its idempotency key, else the owner's
/// queued or running job with its request key.
async fn same_job(conn: &mut PgConnection, new: &NewJob) -> StoreResult<Option<Job>> {
    if let Some(key) = &new.idempotency_key {
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {JOB_DOC} FROM public.generation_jobs AS j WHERE j.user_id = $1 AND j.idempotency_key = $2"
        )))
        .bind(new.user_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(doc) = doc {
            let existing: Job = sql::decode_doc(&doc)?;
            if existing.request_key != new.request_key {
                return Err(key_reused(key, &existing));
            }
            return Ok(Some(existing));
        }
    }
    if let Some(key) = &new.request_key {
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {JOB_DOC} FROM public.generation_jobs AS j WHERE j.user_id = $1 AND j.request_key = $2 \
             AND j.state IN ('queued', 'running')"
        )))
        .bind(new.user_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        return doc.map(|doc| sql::decode_doc(&doc)).transpose();
    }
    Ok(None)
}

fn job(doc: Option<String>, id: Uuid) -> StoreResult<Job> {
    sql::decode_doc(&doc.ok_or_else(|| StoreError::not_found("job", id))?)
}

/// One candidate of a claim, locked.
#[derive(sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    user_id: Uuid,
    product_idea_id: Uuid,
    state: String,
    attempts: i32,
    max_attempts: i32,
    cancel_requested: bool,
    worker_id: Option<String>,
    last_error: Option<String>,
}

/// What one claim transaction did.
enum Step {
    /// Nothing is claimable.
    Empty,
    /// A candidate was finished (given up or cancelled): look again.
    Finished,
    /// The candidate's owner is at the cap: look again without that user.
    Capped(Uuid),
    /// Another job of the candidate's product runs: look again without this job.
    ProductBusy(Uuid),
    /// Claimed.
    Claimed(Box<Job>),
}

impl PostgresStore {
    /// A transaction that acts for nobody in particular: the lease calls, whose token decides.
    async fn lease_tx(&self) -> StoreResult<Tx> {
        self.begin_with(Principal::Service, None).await
    }

    /// One claim attempt in one transaction; see `claim_job`.
    async fn claim_step(
        &self,
        principal: Principal,
        options: &ClaimOptions,
        skipped: &[Uuid],
        busy: &[Uuid],
        token: Uuid,
    ) -> StoreResult<Step> {
        let mut tx = self.begin_with(principal, None).await?;
        // The cap condition pre-filters users that are visibly full; the advisory lock below
        // makes it exact. statement_timestamp(), not now(): the lease clock must not stand
        // still for a transaction that waited on a lock.
        let candidate: Option<Candidate> = sqlx::query_as(
            "SELECT j.id, j.user_id, j.product_idea_id, j.state, j.attempts, j.max_attempts, \
             j.cancel_requested, j.worker_id, j.last_error FROM public.generation_jobs AS j \
             WHERE ((j.state = 'queued' AND j.run_after <= statement_timestamp()) \
                 OR (j.state = 'running' AND j.lease_expires_at <= statement_timestamp())) \
               AND ($1::uuid IS NULL OR j.id = $1) \
               AND NOT (j.user_id = ANY ($2::uuid[])) \
               AND NOT (j.id = ANY ($4::uuid[])) \
               AND (SELECT count(*) FROM public.generation_jobs AS r WHERE r.user_id = j.user_id \
                    AND r.state = 'running' AND r.lease_expires_at > statement_timestamp()) < $3 \
               AND NOT EXISTS (SELECT 1 FROM public.generation_jobs AS p \
                    WHERE p.user_id = j.user_id AND p.product_idea_id = j.product_idea_id \
                      AND p.state = 'running' AND p.lease_expires_at > statement_timestamp() \
                      AND p.id <> j.id) \
             ORDER BY j.run_after, j.created_at, j.id LIMIT 1 \
             FOR UPDATE OF j SKIP LOCKED",
        )
        .bind(options.only_job)
        .bind(skipped)
        .bind(i64::from(options.per_user_cap))
        .bind(busy)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(candidate) = candidate else {
            tx.commit().await?;
            return Ok(Step::Empty);
        };
        let was_running = candidate.state == JobState::Running.as_str();
        if candidate.cancel_requested {
            // Its worker died after the owner asked to cancel: do not resume it.
            sqlx::query(
                "UPDATE public.generation_jobs SET state = 'cancelled', finished_at = statement_timestamp(), \
                 lease_token = NULL, lease_expires_at = NULL WHERE id = $1",
            )
            .bind(candidate.id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Step::Finished);
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
                "UPDATE public.generation_jobs SET state = 'failed', finished_at = statement_timestamp(), \
                 lease_token = NULL, lease_expires_at = NULL, last_error = $2, error_code = $3 WHERE id = $1",
            )
            .bind(candidate.id)
            .bind(clip_job_error(&gave_up_message(
                candidate.attempts,
                &previous,
            )))
            .bind(GAVE_UP_CODE)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Step::Finished);
        }
        // One claimer per user at a time from here to commit: a claimer that waited here counts
        // again after the previous holder committed (READ COMMITTED: a new statement, a new
        // snapshot), so two claims never both see the last free slot.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('techpack:generation_jobs:user:' || $1::text, 0))")
            .bind(candidate.user_id)
            .execute(&mut *tx)
            .await?;
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM public.generation_jobs WHERE user_id = $1 AND state = 'running' \
             AND lease_expires_at > statement_timestamp() AND id <> $2",
        )
        .bind(candidate.user_id)
        .bind(candidate.id)
        .fetch_one(&mut *tx)
        .await?;
        if running >= i64::from(options.per_user_cap) {
            // Roll back: the advisory lock goes with it, so this claimer never holds two users'
            // locks (which could deadlock with a claimer taking them in the other order).
            tx.rollback().await?;
            return Ok(Step::Capped(candidate.user_id));
        }
        // The per-user lock makes the product check exact too: every claim of the product's
        // jobs holds it.
        let product_busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM public.generation_jobs WHERE user_id = $1 \
             AND product_idea_id = $2 AND state = 'running' \
             AND lease_expires_at > statement_timestamp() AND id <> $3)",
        )
        .bind(candidate.user_id)
        .bind(candidate.product_idea_id)
        .bind(candidate.id)
        .fetch_one(&mut *tx)
        .await?;
        if product_busy {
            tx.rollback().await?;
            return Ok(Step::ProductBusy(candidate.id));
        }
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE public.generation_jobs AS j SET state = 'running', attempts = j.attempts + 1, \
             worker_id = $2, lease_token = $3, \
             lease_expires_at = statement_timestamp() + make_interval(secs => $4), \
             heartbeat_at = statement_timestamp(), started_at = coalesce(j.started_at, statement_timestamp()), \
             last_error = CASE WHEN j.state = 'running' THEN $5 ELSE j.last_error END \
             WHERE j.id = $1 RETURNING {JOB_DOC}"
        )))
        .bind(candidate.id)
        .bind(&options.worker_id)
        .bind(token)
        .bind(options.lease.as_secs_f64())
        .bind(worker_stopped_message(candidate.worker_id.as_deref()))
        .fetch_optional(&mut *tx)
        .await?;
        let claimed = job(doc, candidate.id)?;
        tx.commit().await?;
        Ok(Step::Claimed(Box::new(claimed)))
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn enqueue_or_join(&self, principal: Principal, new: NewJob) -> StoreResult<(Job, bool)> {
        new.validate()?;
        check_owner(principal, new.user_id)?;
        let mut tx = self.begin_with(principal, None).await?;
        if let Some(existing) = same_job(&mut tx, &new).await? {
            tx.commit().await?;
            return Ok((existing, true));
        }
        // An identical enqueue that commits first wins the unique index; this one then waits
        // for it and reads its job.
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO public.generation_jobs AS j (id, user_id, product_idea_id, kind, request, \
             max_attempts, collection_id, request_key, idempotency_key, batch_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING {JOB_DOC}"
        )))
        .bind(Uuid::now_v7())
        .bind(new.user_id)
        .bind(new.product_idea_id)
        .bind(&new.kind)
        .bind(Json(&new.request))
        .bind(new.max_attempts)
        .bind(new.collection_id)
        .bind(&new.request_key)
        .bind(&new.idempotency_key)
        .bind(new.batch_id)
        .fetch_optional(&mut *tx)
        .await?;
        let found = match doc {
            Some(doc) => (sql::decode_doc(&doc)?, false),
            None => {
                let existing = same_job(&mut tx, &new).await?.ok_or_else(|| {
                    StoreError::Conflict(
                        "another job with the same key was queued and ended at once; send the request again".into(),
                    )
                })?;
                (existing, true)
            }
        };
        tx.commit().await?;
        Ok(found)
    }

    async fn get_job(&self, principal: Principal, id: Uuid) -> StoreResult<Job> {
        let mut tx = self.begin_with(principal, None).await?;
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {JOB_DOC} FROM public.generation_jobs AS j WHERE j.id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        job(doc, id)
    }

    async fn list_jobs(&self, principal: Principal, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let query = list_query(Dialect::Postgres, principal, filter)?;
        let mut tx = self.begin_with(principal, None).await?;
        let rows = bound(query).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| sql::decode_doc(&row.try_get::<String, _>(0)?))
            .collect()
    }

    async fn cancel_job(&self, principal: Principal, id: Uuid) -> StoreResult<Job> {
        let mut tx = self.begin_with(principal, None).await?;
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE public.generation_jobs AS j SET cancel_requested = true, \
             state = CASE WHEN j.state = 'queued' THEN 'cancelled' ELSE j.state END, \
             finished_at = CASE WHEN j.state = 'queued' THEN statement_timestamp() ELSE j.finished_at END \
             WHERE j.id = $1 AND j.state IN ('queued', 'running') RETURNING {JOB_DOC}"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match doc {
            Some(doc) => sql::decode_doc(&doc),
            // Missing, someone else's (NotFound), or already over (Conflict).
            None => {
                let current = self.get_job(principal, id).await?;
                Err(StoreError::Conflict(format!(
                    "job {id} already {}",
                    current.state
                )))
            }
        }
    }

    async fn claim_job(
        &self,
        principal: Principal,
        options: &ClaimOptions,
    ) -> StoreResult<Option<(Job, JobLease)>> {
        options.validate()?;
        let mut skipped: Vec<Uuid> = Vec::new();
        let mut busy: Vec<Uuid> = Vec::new();
        // Each step either claims, finds nothing, finishes a job for good, or rules out a
        // user or a job: the loop ends.
        loop {
            let token = Uuid::new_v4();
            match self
                .claim_step(principal, options, &skipped, &busy, token)
                .await?
            {
                Step::Empty => return Ok(None),
                Step::Finished => continue,
                Step::Capped(user) => skipped.push(user),
                Step::ProductBusy(job) => busy.push(job),
                Step::Claimed(job) => {
                    let lease = JobLease {
                        job_id: job.id,
                        worker_id: options.worker_id.clone(),
                        token,
                        attempt: job.attempts,
                        lease: options.lease,
                    };
                    return Ok(Some((*job, lease)));
                }
            }
        }
    }

    async fn heartbeat_job(&self, lease: &JobLease) -> StoreResult<Job> {
        check_lease(lease.lease)?;
        let mut tx = self.lease_tx().await?;
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE public.generation_jobs AS j SET \
             lease_expires_at = statement_timestamp() + make_interval(secs => $3), \
             heartbeat_at = statement_timestamp() \
             WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' RETURNING {JOB_DOC}"
        )))
        .bind(lease.job_id)
        .bind(lease.token)
        .bind(lease.lease.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let doc = doc.ok_or_else(|| lease_lost(lease.job_id))?;
        tx.commit().await?;
        sql::decode_doc(&doc)
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
        let mut tx = self.lease_tx().await?;
        let updated = sqlx::query(
            "UPDATE public.generation_jobs AS j SET collection_id = coalesce($3, j.collection_id), \
             progress = $4 WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running'",
        )
        .bind(lease.job_id)
        .bind(lease.token)
        .bind(collection_id)
        .bind(Json(&progress))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(lease_lost(lease.job_id));
        }
        // In the order given: identity values follow the SELECT's order.
        sqlx::query(
            "INSERT INTO public.generation_job_events (job_id, user_id, attempt, event) \
             SELECT j.id, j.user_id, j.attempts, e.event \
               FROM public.generation_jobs AS j, \
                    jsonb_array_elements($2) WITH ORDINALITY AS e(event, position) \
              WHERE j.id = $1 ORDER BY e.position",
        )
        .bind(lease.job_id)
        .bind(Json(&events))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        let mut tx = self.begin_with(principal, None).await?;
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT jsonb_build_object('id', e.id, 'job_id', e.job_id, 'attempt', e.attempt, \
                    'event', e.event, 'created_at', e.created_at)::text \
               FROM public.generation_job_events AS e \
              WHERE e.job_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3",
        )
        .bind(job_id)
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        docs.iter().map(|doc| sql::decode_doc(doc)).collect()
    }

    fn job_event_waker(&self) -> JobEventWaker {
        self.event_feed()
            .postgres_waker(self.pool(), POSTGRES_EVENT_POLL)
    }

    async fn count_jobs_by_state(&self, principal: Principal) -> StoreResult<Vec<(JobState, i64)>> {
        let mut tx = self.begin_with(principal, None).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT j.state, count(*) FROM public.generation_jobs AS j GROUP BY j.state ORDER BY j.state",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        states_counted(rows)
    }

    async fn finish_job(&self, lease: &JobLease, outcome: JobOutcome) -> StoreResult<Job> {
        outcome.validate()?;
        let mut tx = self.lease_tx().await?;
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE public.generation_jobs AS j SET state = $3, result = $4, last_error = $5, \
             error_code = $6, finished_at = statement_timestamp(), lease_token = NULL, \
             lease_expires_at = NULL \
             WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' RETURNING {JOB_DOC}"
        )))
        .bind(lease.job_id)
        .bind(lease.token)
        .bind(outcome.state.as_str())
        .bind(outcome.result.as_ref().map(Json))
        .bind(outcome.error.as_deref().map(clip_job_error))
        .bind(&outcome.error_code)
        .fetch_optional(&mut *tx)
        .await?;
        let doc = doc.ok_or_else(|| lease_lost(lease.job_id))?;
        tx.commit().await?;
        sql::decode_doc(&doc)
    }

    async fn release_job(
        &self,
        lease: &JobLease,
        reason: &str,
        delay: Duration,
        count_attempt: bool,
    ) -> StoreResult<Job> {
        check_delay(delay)?;
        let reason = clip_job_error(reason);
        let mut tx = self.lease_tx().await?;
        // Every CASE reads the row as it was before this UPDATE.
        let doc: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE public.generation_jobs AS j SET \
             state = CASE WHEN j.cancel_requested THEN 'cancelled' \
                          WHEN $3 AND j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END, \
             attempts = CASE WHEN $3 THEN j.attempts ELSE greatest(j.attempts - 1, 0) END, \
             last_error = CASE WHEN NOT j.cancel_requested AND $3 AND j.attempts >= j.max_attempts \
                               THEN format('gave up after %s attempts: %s', j.attempts, $4::text) ELSE $4 END, \
             finished_at = CASE WHEN j.cancel_requested OR ($3 AND j.attempts >= j.max_attempts) \
                                THEN statement_timestamp() END, \
             run_after = statement_timestamp() + make_interval(secs => $5), \
             lease_token = NULL, lease_expires_at = NULL \
             WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' RETURNING {JOB_DOC}"
        )))
        .bind(lease.job_id)
        .bind(lease.token)
        .bind(count_attempt)
        .bind(&reason)
        .bind(delay.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let doc = doc.ok_or_else(|| lease_lost(lease.job_id))?;
        tx.commit().await?;
        sql::decode_doc(&doc)
    }

    async fn wait_for_jobs(&self, timeout: Duration) -> StoreResult<()> {
        let listener = self.job_listener().clone();
        let pool = self.pool().clone();
        let wait = async move {
            let mut guard = listener.lock().await;
            let Some(listening) = guard.as_mut() else {
                let mut fresh = PgListener::connect_with(&pool).await?;
                fresh.listen(JOBS_CHANNEL).await?;
                *guard = Some(fresh);
                // Nothing listened before now: a job queued meanwhile sent no notification
                // anyone heard, so let the caller look once more.
                return Ok(());
            };
            match listening.try_recv().await {
                Ok(Some(_)) => {
                    // One wake-up covers every notification already here.
                    while listening.next_buffered().is_some() {}
                    Ok(())
                }
                // The connection dropped and was re-established: notifications may be lost.
                Ok(None) => Ok(()),
                Err(error) => {
                    *guard = None;
                    Err(StoreError::from(error))
                }
            }
        };
        // try_recv is cancel-safe (sqlx buffers partial reads), so a timeout loses nothing.
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_elapsed) => Ok(()),
        }
    }

    fn fenced(&self, lease: &JobLease) -> Arc<dyn TechFileStore> {
        Arc::new(self.with_fence(Fence::of(lease)))
    }
}
