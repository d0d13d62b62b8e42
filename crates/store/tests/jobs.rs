//! Durable generation jobs on SQLite and PostgreSQL with the same test code: enqueue, isolation,
//! claim order, leases that expire and move to another worker (and fence the first worker's
//! writes), the per-user cap, attempts, cancel, release, delays and finishing. PostgreSQL only:
//! many concurrent claimers, LISTEN/NOTIFY wake-ups and the policies for plain SQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use techpack_model::{
    ClaimOptions, CollectionStatus, FileChanges, FileType, Job, JobFilter, JobLease, JobOutcome,
    JobState, NewJob, NewTechFile, Principal, ProgressCounts, ProgressEvent, StepId, StepKind,
    StepOrigin,
};
use techpack_store::on_both_backends;
use techpack_store::test_support::TestDatabase;
use techpack_store::{JobStore, StoreError, TechFileStore};
use uuid::Uuid;

on_both_backends!(
    enqueues_reads_lists_and_isolates_users,
    bad_input_is_refused_and_nothing_is_written,
    claims_oldest_first_with_a_new_token_each_time,
    an_expired_lease_moves_to_another_worker_and_fences_the_first,
    per_user_cap_skips_a_busy_user,
    gives_up_after_max_attempts,
    cancels_queued_at_once_and_running_at_the_next_heartbeat,
    releases_with_and_without_counting_the_attempt,
    respects_the_run_after_delay,
    finishing_is_terminal_and_happens_once,
    migrations_drop_and_restore_the_jobs_table,
    records_events_in_order_per_job_and_wakes_their_readers,
);

/// Long enough that no test run, however loaded the machine, sees it expire.
const LONG: Duration = Duration::from_secs(60);
/// Short enough to expire on purpose.
const SHORT: Duration = Duration::from_millis(300);

async fn expire() {
    tokio::time::sleep(SHORT + Duration::from_millis(250)).await;
}

fn new_job(owner: Uuid) -> NewJob {
    NewJob::tech_pack(owner, Uuid::new_v4(), json!({"views": ["front"]}))
}

fn worker(name: &str, lease: Duration) -> ClaimOptions {
    ClaimOptions::new(name, lease)
}

async fn claim(store: &dyn TechFileStore, options: &ClaimOptions) -> Option<(Job, JobLease)> {
    store.claim_job(Principal::Service, options).await.unwrap()
}

fn is_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    match result {
        Err(StoreError::LeaseLost(message)) => {
            assert!(message.contains("stop this run"), "{message}");
            true
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

async fn enqueues_reads_lists_and_isolates_users(store: Arc<dyn TechFileStore>) {
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let mut first = new_job(alice);
    first.collection_id = Some(Uuid::new_v4());
    first.max_attempts = 5;
    let a1 = store
        .enqueue_job(Principal::User(alice), first.clone())
        .await
        .unwrap();
    assert_eq!(a1.state, JobState::Queued);
    assert_eq!(a1.user_id, alice);
    assert_eq!(a1.product_idea_id, first.product_idea_id);
    assert_eq!(a1.kind, "tech_pack");
    assert_eq!(a1.request, first.request);
    assert_eq!(a1.attempts, 0);
    assert_eq!(a1.max_attempts, 5);
    assert_eq!(a1.collection_id, first.collection_id);
    assert_eq!(a1.progress, json!({}));
    assert_eq!(a1.result, None);
    assert!(!a1.cancel_requested);
    assert!(a1.lease_token.is_none() && a1.worker_id.is_none() && a1.started_at.is_none());
    assert!(a1.run_after <= a1.updated_at + chrono::Duration::seconds(1));
    let a2 = store
        .enqueue_job(Principal::Service, new_job(alice))
        .await
        .unwrap();
    let b1 = store
        .enqueue_job(Principal::User(bob), new_job(bob))
        .await
        .unwrap();

    assert_eq!(
        store.get_job(Principal::User(alice), a1.id).await.unwrap(),
        a1
    );
    let hidden = store
        .get_job(Principal::User(bob), a1.id)
        .await
        .unwrap_err();
    assert!(
        matches!(hidden, StoreError::NotFound { entity: "job", .. }),
        "{hidden}"
    );
    let cancel = store
        .cancel_job(Principal::User(bob), a1.id)
        .await
        .unwrap_err();
    assert!(matches!(cancel, StoreError::NotFound { .. }), "{cancel}");
    assert_eq!(
        store
            .get_job(Principal::Service, a1.id)
            .await
            .unwrap()
            .state,
        JobState::Queued
    );

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|job| job.id).collect::<Vec<_>>();
    let mine = store
        .list_jobs(Principal::User(alice), &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(ids(mine), vec![a2.id, a1.id], "newest first, own only");
    let all = store
        .list_jobs(Principal::Service, &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(ids(all), vec![b1.id, a2.id, a1.id]);
    let by_product = store
        .list_jobs(
            Principal::Service,
            &JobFilter {
                product_idea_id: Some(first.product_idea_id),
                ..JobFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(by_product), vec![a1.id]);
    let limited = store
        .list_jobs(
            Principal::Service,
            &JobFilter {
                limit: Some(2),
                ..JobFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(limited), vec![b1.id, a2.id]);

    // A user claims only their own jobs; the state filter sees the claim.
    let (claimed, _) = store
        .claim_job(Principal::User(bob), &worker("bob-laptop", LONG))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, b1.id);
    assert!(
        store
            .claim_job(Principal::User(bob), &worker("bob-laptop", LONG))
            .await
            .unwrap()
            .is_none()
    );
    let running = store
        .list_jobs(
            Principal::Service,
            &JobFilter {
                state: Some(JobState::Running),
                ..JobFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(running), vec![b1.id]);
    let alice_running = store
        .list_jobs(
            Principal::User(alice),
            &JobFilter {
                state: Some(JobState::Running),
                ..JobFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(alice_running.is_empty());
}

async fn bad_input_is_refused_and_nothing_is_written(store: Arc<dyn TechFileStore>) {
    let alice = Uuid::new_v4();
    let me = Principal::User(alice);
    let invalid = |error: StoreError, field: &str| match error {
        StoreError::Invalid(error) => assert_eq!(error.field, field),
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    let mut job = new_job(alice);
    job.request = json!(["not", "an", "object"]);
    invalid(store.enqueue_job(me, job).await.unwrap_err(), "request");
    let mut job = new_job(alice);
    job.max_attempts = 0;
    invalid(
        store.enqueue_job(me, job).await.unwrap_err(),
        "max_attempts",
    );
    let mut job = new_job(alice);
    job.max_attempts = 101;
    invalid(
        store.enqueue_job(me, job).await.unwrap_err(),
        "max_attempts",
    );
    let mut job = new_job(alice);
    job.kind = String::new();
    invalid(store.enqueue_job(me, job).await.unwrap_err(), "kind");
    let mut job = new_job(alice);
    job.kind = "k".repeat(65);
    invalid(store.enqueue_job(me, job).await.unwrap_err(), "kind");
    let forbidden = store
        .enqueue_job(me, new_job(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert!(matches!(forbidden, StoreError::Forbidden(_)), "{forbidden}");
    assert_eq!(forbidden.code(), "forbidden");
    invalid(
        store
            .list_jobs(
                me,
                &JobFilter {
                    limit: Some(0),
                    ..JobFilter::default()
                },
            )
            .await
            .unwrap_err(),
        "limit",
    );
    let mut options = worker("w", LONG);
    options.per_user_cap = 0;
    invalid(
        store
            .claim_job(Principal::Service, &options)
            .await
            .unwrap_err(),
        "per_user_cap",
    );
    invalid(
        store
            .claim_job(Principal::Service, &worker("w", Duration::ZERO))
            .await
            .unwrap_err(),
        "lease",
    );
    assert!(
        store
            .list_jobs(Principal::Service, &JobFilter::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing was written"
    );

    // Lease calls check their input before the lease.
    store.enqueue_job(me, new_job(alice)).await.unwrap();
    let (_, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    invalid(
        store
            .record_job_progress(&lease, None, json!([1]), &[])
            .await
            .unwrap_err(),
        "progress",
    );
    let running = JobOutcome {
        state: JobState::Running,
        result: None,
        error: None,
        error_code: None,
    };
    invalid(
        store.finish_job(&lease, running).await.unwrap_err(),
        "state",
    );
    let lost = store.get_job(me, lease.job_id).await.unwrap();
    assert_eq!(lost.state, JobState::Running, "the job is untouched");
    assert_eq!(
        StoreError::LeaseLost("x".into()).code(),
        "lease_lost",
        "a stable code for the API"
    );
}

async fn claims_oldest_first_with_a_new_token_each_time(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(
            store
                .enqueue_job(Principal::User(owner), new_job(owner))
                .await
                .unwrap(),
        );
    }
    let mut tokens = HashSet::new();
    for expected in &queued {
        let (job, lease) = claim(store.as_ref(), &worker("w1", LONG)).await.unwrap();
        assert_eq!(job.id, expected.id, "oldest first");
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.attempts, 1);
        assert_eq!(lease.attempt, 1);
        assert_eq!(lease.job_id, job.id);
        assert_eq!(lease.worker_id, "w1");
        assert_eq!(lease.lease, LONG);
        assert_eq!(job.lease_token, Some(lease.token));
        assert_eq!(job.worker_id.as_deref(), Some("w1"));
        let heartbeat = job.heartbeat_at.unwrap();
        let expires = job.lease_expires_at.unwrap();
        assert!(
            expires >= heartbeat + chrono::Duration::seconds(59),
            "{heartbeat} {expires}"
        );
        assert_eq!(job.started_at, Some(heartbeat));
        assert!(tokens.insert(lease.token), "a new token per claim");
    }
    assert!(claim(store.as_ref(), &worker("w1", LONG)).await.is_none());

    // `only_job` claims that job or nothing.
    let a = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    let b = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    let mut only = worker("cli", LONG);
    only.only_job = Some(b.id);
    let (job, _) = claim(store.as_ref(), &only).await.unwrap();
    assert_eq!(job.id, b.id);
    assert!(claim(store.as_ref(), &only).await.is_none());
    let (job, _) = claim(store.as_ref(), &worker("w1", LONG)).await.unwrap();
    assert_eq!(job.id, a.id);
}

async fn an_expired_lease_moves_to_another_worker_and_fences_the_first(
    store: Arc<dyn TechFileStore>,
) {
    let owner = Uuid::new_v4();
    let me = Principal::User(owner);
    let queued = store.enqueue_job(me, new_job(owner)).await.unwrap();
    let (_, first) = claim(store.as_ref(), &worker("w1", SHORT)).await.unwrap();
    let stale = store.fenced(&first);
    // While the lease holds, the fenced store writes and the heartbeat renews.
    let early = stale
        .create_tech_file(
            me,
            NewTechFile::new(owner, queued.product_idea_id, FileType::BaseView),
        )
        .await
        .unwrap();
    let renewed = store.heartbeat_job(&first).await.unwrap();
    assert_eq!(renewed.lease_token, Some(first.token));
    store
        .record_job_progress(&first, None, json!({"done": 1, "total": 4}), &[])
        .await
        .unwrap();
    let mut still_mine = worker("w2", LONG);
    still_mine.only_job = Some(queued.id);
    assert!(
        claim(store.as_ref(), &still_mine).await.is_none(),
        "an unexpired lease is not claimable"
    );

    expire().await;
    let (taken, second) = claim(store.as_ref(), &worker("w2", LONG)).await.unwrap();
    assert_eq!(taken.id, queued.id);
    assert_eq!(taken.attempts, 2);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.token, first.token);
    assert_eq!(taken.worker_id.as_deref(), Some("w2"));
    assert_eq!(
        taken.started_at, renewed.started_at,
        "started_at is the first claim"
    );
    assert_eq!(
        taken.progress,
        json!({"done": 1, "total": 4}),
        "progress survives"
    );
    assert!(
        taken.last_error.as_deref().unwrap().contains("w1"),
        "{:?}",
        taken.last_error
    );

    // The first worker's job calls fail …
    assert!(is_lease_lost(store.heartbeat_job(&first).await));
    assert!(is_lease_lost(
        store
            .record_job_progress(&first, None, json!({"done": 2}), &[])
            .await
    ));
    assert!(is_lease_lost(
        store.finish_job(&first, JobOutcome::succeeded(None)).await
    ));
    assert!(is_lease_lost(
        store
            .release_job(&first, "shutting down", Duration::ZERO, false)
            .await
    ));
    // … and so do its fenced store's writes, while the new owner's succeed.
    let fresh = store.fenced(&second);
    assert!(is_lease_lost(
        stale
            .create_tech_file(
                me,
                NewTechFile::new(owner, queued.product_idea_id, FileType::Sketch)
            )
            .await
    ));
    assert!(is_lease_lost(
        stale
            .complete_tech_file(me, early.id, FileChanges::default())
            .await
    ));
    assert!(is_lease_lost(
        stale
            .create_tech_file(
                Principal::Service,
                NewTechFile::new(owner, queued.product_idea_id, FileType::Sketch)
            )
            .await
    ));
    assert_eq!(
        stale.get_tech_file_by_id(me, early.id).await.unwrap().id,
        early.id,
        "reads are not fenced"
    );
    let completed = fresh
        .complete_tech_file(me, early.id, FileChanges::default())
        .await
        .unwrap();
    assert_eq!(completed.status, techpack_model::FileStatus::Completed);
    fresh
        .create_tech_file(
            me,
            NewTechFile::new(owner, queued.product_idea_id, FileType::Sketch),
        )
        .await
        .unwrap();
    // The new owner's job calls work; once it finished, its fence is gone too.
    store
        .record_job_progress(
            &second,
            Some(Uuid::new_v4()),
            json!({"done": 4, "total": 4}),
            &[],
        )
        .await
        .unwrap();
    let done = store
        .finish_job(&second, JobOutcome::succeeded(Some(json!({"files": 2}))))
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert!(is_lease_lost(
        fresh
            .create_tech_file(
                me,
                NewTechFile::new(owner, queued.product_idea_id, FileType::Sketch)
            )
            .await
    ));
}

async fn per_user_cap_skips_a_busy_user(store: Arc<dyn TechFileStore>) {
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let a1 = store
        .enqueue_job(Principal::User(alice), new_job(alice))
        .await
        .unwrap();
    let a2 = store
        .enqueue_job(Principal::User(alice), new_job(alice))
        .await
        .unwrap();
    let b1 = store
        .enqueue_job(Principal::User(bob), new_job(bob))
        .await
        .unwrap();
    let mut capped = worker("w", LONG);
    capped.per_user_cap = 1;
    let (first, first_lease) = claim(store.as_ref(), &capped).await.unwrap();
    assert_eq!(first.id, a1.id);
    let (second, _) = claim(store.as_ref(), &capped).await.unwrap();
    assert_eq!(
        second.id, b1.id,
        "alice is at her cap: bob's job goes first"
    );
    assert!(claim(store.as_ref(), &capped).await.is_none());
    let mut only = capped.clone();
    only.only_job = Some(a2.id);
    assert!(
        claim(store.as_ref(), &only).await.is_none(),
        "the cap holds for only_job too"
    );
    // A higher cap lets the second job run beside the first.
    let mut two = capped.clone();
    two.per_user_cap = 2;
    let (third, third_lease) = claim(store.as_ref(), &two).await.unwrap();
    assert_eq!(third.id, a2.id);
    store
        .release_job(&third_lease, "make room", Duration::ZERO, false)
        .await
        .unwrap();
    assert!(claim(store.as_ref(), &capped).await.is_none());
    // When her running job ends, her next one is claimable under cap 1.
    store
        .finish_job(&first_lease, JobOutcome::succeeded(None))
        .await
        .unwrap();
    let (next, _) = claim(store.as_ref(), &capped).await.unwrap();
    assert_eq!(next.id, a2.id);
}

async fn gives_up_after_max_attempts(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let queued = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    assert_eq!(queued.max_attempts, 3);
    for attempt in 1..=3 {
        let (job, lease) = claim(store.as_ref(), &worker(&format!("w{attempt}"), SHORT))
            .await
            .unwrap();
        assert_eq!(job.id, queued.id);
        assert_eq!(lease.attempt, attempt);
        expire().await;
    }
    let other = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    let (next, _) = claim(store.as_ref(), &worker("w4", LONG)).await.unwrap();
    assert_eq!(
        next.id, other.id,
        "the dead job is given up and the next one claimed"
    );
    let failed = store
        .get_job(Principal::User(owner), queued.id)
        .await
        .unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempts, 3);
    let message = failed.last_error.unwrap();
    assert!(
        message.starts_with("gave up after 3 attempts: ") && message.contains("w3"),
        "{message}"
    );
    assert!(failed.finished_at.is_some());
    assert!(failed.lease_token.is_none() && failed.lease_expires_at.is_none());
    assert!(claim(store.as_ref(), &worker("w5", LONG)).await.is_none());
}

async fn cancels_queued_at_once_and_running_at_the_next_heartbeat(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let me = Principal::User(owner);
    let queued = store.enqueue_job(me, new_job(owner)).await.unwrap();
    let cancelled = store.cancel_job(me, queued.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    let again = store.cancel_job(me, queued.id).await.unwrap_err();
    match again {
        StoreError::Conflict(message) => {
            assert!(message.contains("already cancelled"), "{message}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(claim(store.as_ref(), &worker("w", LONG)).await.is_none());

    let running = store.enqueue_job(me, new_job(owner)).await.unwrap();
    let (_, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    let requested = store.cancel_job(me, running.id).await.unwrap();
    assert_eq!(requested.state, JobState::Running);
    assert!(requested.cancel_requested);
    assert!(requested.finished_at.is_none());
    assert!(
        store
            .cancel_job(me, running.id)
            .await
            .unwrap()
            .cancel_requested,
        "asking twice is fine"
    );
    let seen = store.heartbeat_job(&lease).await.unwrap();
    assert!(seen.cancel_requested, "the runner sees the request");
    let stopped = store
        .finish_job(&lease, JobOutcome::cancelled())
        .await
        .unwrap();
    assert_eq!(stopped.state, JobState::Cancelled);
    let over = store.cancel_job(me, running.id).await.unwrap_err();
    assert!(matches!(over, StoreError::Conflict(_)), "{over}");

    // A running job whose worker died after the request is not resumed.
    let orphan = store.enqueue_job(me, new_job(owner)).await.unwrap();
    claim(store.as_ref(), &worker("w", SHORT)).await.unwrap();
    store
        .cancel_job(Principal::Service, orphan.id)
        .await
        .unwrap();
    expire().await;
    assert!(claim(store.as_ref(), &worker("w2", LONG)).await.is_none());
    let orphan = store.get_job(me, orphan.id).await.unwrap();
    assert_eq!(orphan.state, JobState::Cancelled);
    assert!(orphan.lease_token.is_none() && orphan.finished_at.is_some());

    // Giving back a job whose owner asked to cancel ends it.
    let released = store.enqueue_job(me, new_job(owner)).await.unwrap();
    let (_, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    store.cancel_job(me, released.id).await.unwrap();
    let ended = store
        .release_job(&lease, "shutting down", Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(ended.state, JobState::Cancelled);
}

async fn releases_with_and_without_counting_the_attempt(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let queued = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    let (_, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    let back = store
        .release_job(&lease, "worker shutting down", Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(back.state, JobState::Queued);
    assert_eq!(back.attempts, 0, "a clean shutdown refunds the attempt");
    assert_eq!(back.last_error.as_deref(), Some("worker shutting down"));
    assert!(back.lease_token.is_none() && back.lease_expires_at.is_none());
    assert!(back.finished_at.is_none());
    assert!(is_lease_lost(store.heartbeat_job(&lease).await));

    for attempt in 1..=2 {
        let (job, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
        assert_eq!(job.id, queued.id);
        assert_eq!(lease.attempt, attempt);
        let back = store
            .release_job(&lease, "rate limited", Duration::ZERO, true)
            .await
            .unwrap();
        assert_eq!(back.state, JobState::Queued);
        assert_eq!(back.attempts, attempt);
    }
    let (_, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    assert_eq!(lease.attempt, 3);
    let failed = store
        .release_job(&lease, "rate limited", Duration::ZERO, true)
        .await
        .unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("gave up after 3 attempts: rate limited")
    );
    assert!(failed.finished_at.is_some());
    assert!(claim(store.as_ref(), &worker("w", LONG)).await.is_none());
}

async fn respects_the_run_after_delay(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    let (_, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    let delay = Duration::from_millis(700);
    let back = store
        .release_job(&lease, "backing off", delay, true)
        .await
        .unwrap();
    assert!(back.run_after > back.updated_at + chrono::Duration::milliseconds(500));
    assert!(
        claim(store.as_ref(), &worker("w", LONG)).await.is_none(),
        "not before run_after"
    );
    tokio::time::sleep(delay + Duration::from_millis(200)).await;
    let (job, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    assert_eq!(job.id, back.id);
    assert_eq!(lease.attempt, 2);
}

async fn finishing_is_terminal_and_happens_once(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let queued = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    let (_, lease) = claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    let collection = Uuid::new_v4();
    store
        .record_job_progress(
            &lease,
            Some(collection),
            json!({"done": 3, "total": 5, "failed": 1}),
            &[],
        )
        .await
        .unwrap();
    store
        .record_job_progress(
            &lease,
            None,
            json!({"done": 5, "total": 5, "failed": 1}),
            &[],
        )
        .await
        .unwrap();
    let long_error = "x".repeat(100_000);
    let finished = store
        .finish_job(
            &lease,
            JobOutcome {
                state: JobState::Partial,
                result: Some(json!({"failed_steps": ["sketch:back"]})),
                error: Some(long_error),
                error_code: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(finished.id, queued.id);
    assert_eq!(finished.state, JobState::Partial);
    assert!(finished.state.is_terminal());
    assert_eq!(
        finished.collection_id,
        Some(collection),
        "kept when not given again"
    );
    assert_eq!(
        finished.progress,
        json!({"done": 5, "total": 5, "failed": 1})
    );
    assert_eq!(
        finished.result,
        Some(json!({"failed_steps": ["sketch:back"]}))
    );
    assert!(finished.last_error.unwrap().len() <= techpack_model::MAX_TEXT_BYTES);
    assert!(finished.finished_at.is_some());
    assert!(finished.lease_token.is_none() && finished.lease_expires_at.is_none());
    assert!(is_lease_lost(
        store
            .finish_job(&lease, JobOutcome::failed("again", "internal_error"))
            .await
    ));
    assert!(is_lease_lost(store.heartbeat_job(&lease).await));
    assert!(claim(store.as_ref(), &worker("w", LONG)).await.is_none());
    let read = store
        .get_job(Principal::User(owner), queued.id)
        .await
        .unwrap();
    assert_eq!(read.state, JobState::Partial);
}

async fn migrations_drop_and_restore_the_jobs_table(store: Arc<dyn TechFileStore>) {
    let report = store.verify_schema().await.unwrap();
    assert!(report.is_complete(), "{:?}", report.missing);
    let owner = Uuid::new_v4();
    store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    claim(store.as_ref(), &worker("w", LONG)).await.unwrap();
    store.migrate_down().await.unwrap();
    let missing = store.verify_schema().await.unwrap().missing;
    for object in [
        "table generation_jobs",
        "index generation_jobs_claim_idx",
        "trigger generation_jobs_touch_updated_at",
    ] {
        assert!(missing.iter().any(|m| m == object), "{object}: {missing:?}");
    }
    if store.backend() == techpack_store::Backend::Postgres {
        assert!(
            missing
                .iter()
                .any(|m| m == "function generation_jobs_notify")
        );
    }
    assert!(!store.migrate_up().await.unwrap().is_empty());
    assert!(store.verify_schema().await.unwrap().is_complete());
    let job = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_jobs(Principal::Service, &JobFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|job| job.id)
            .collect::<Vec<_>>(),
        vec![job.id]
    );
}

// PostgreSQL only -------------------------------------------------------------------------------

/// Eight claimers on two stores (two "machines") drain 40 jobs of four users with a per-user cap
/// of two: every job is claimed exactly once, and right after every claim the user has at most
/// two running jobs in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_claim_each_job_once_within_the_cap() {
    const USERS: usize = 4;
    const PER_USER: usize = 10;
    const CAP: i64 = 2;
    let db = TestDatabase::create().await;
    let machines = [
        Arc::new(db.store().await.unwrap()),
        Arc::new(db.store().await.unwrap()),
    ];
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::new_v4()).collect();
    for round in 0..PER_USER {
        for user in &users {
            let mut job = new_job(*user);
            job.request = json!({"round": round});
            machines[0]
                .enqueue_job(Principal::User(*user), job)
                .await
                .unwrap();
        }
    }
    let total = USERS * PER_USER;
    let claimed = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let peaks = Arc::new(std::sync::Mutex::new(HashMap::<Uuid, i64>::new()));
    let finished = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = machines[n % 2].clone();
        let claimed = claimed.clone();
        let peaks = peaks.clone();
        let finished = finished.clone();
        tasks.push(tokio::spawn(async move {
            let mut options = ClaimOptions::new(format!("worker-{n}"), LONG);
            options.per_user_cap = CAP as u32;
            while finished.load(Ordering::SeqCst) < total {
                assert!(Instant::now() < deadline, "the claimers stalled");
                let Some((job, lease)) =
                    store.claim_job(Principal::Service, &options).await.unwrap()
                else {
                    store
                        .wait_for_jobs(Duration::from_millis(50))
                        .await
                        .unwrap();
                    continue;
                };
                let running: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM generation_jobs WHERE user_id = $1 AND state = 'running'",
                )
                .bind(job.user_id)
                .fetch_one(store.pool())
                .await
                .unwrap();
                assert!(
                    running <= CAP,
                    "user {} has {running} running jobs",
                    job.user_id
                );
                {
                    let mut peaks = peaks.lock().unwrap();
                    let peak = peaks.entry(job.user_id).or_default();
                    *peak = (*peak).max(running);
                }
                assert!(
                    claimed.lock().unwrap().insert(job.id),
                    "job {} claimed twice",
                    job.id
                );
                assert_eq!(job.attempts, 1);
                tokio::time::sleep(Duration::from_millis(5 + (n as u64 * 3) % 11)).await;
                store
                    .finish_job(&lease, JobOutcome::succeeded(Some(json!({"by": n}))))
                    .await
                    .unwrap();
                finished.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(claimed.lock().unwrap().len(), total);
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM generation_jobs GROUP BY state ORDER BY state")
            .fetch_all(machines[0].pool())
            .await
            .unwrap();
    assert_eq!(states, vec![("succeeded".to_string(), total as i64)]);
    let peaks = peaks.lock().unwrap();
    assert!(
        peaks.values().any(|peak| *peak == CAP),
        "the cap was reached at least once, so it was tested: {peaks:?}"
    );
}

/// `wait_for_jobs` returns as soon as another connection (another machine) queues a job, and
/// after the timeout when nothing happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_jobs_wakes_up_when_another_connection_enqueues() {
    let db = TestDatabase::create().await;
    let waiter = db.store().await.unwrap();
    let other = db.store().await.unwrap();
    // The first wait starts listening and returns at once.
    let started = Instant::now();
    waiter.wait_for_jobs(Duration::from_secs(20)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));

    let started = Instant::now();
    waiter
        .wait_for_jobs(Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "nothing happened: the timeout"
    );

    let owner = Uuid::new_v4();
    let enqueue = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        other
            .enqueue_job(Principal::User(owner), new_job(owner))
            .await
            .unwrap()
    });
    let started = Instant::now();
    waiter.wait_for_jobs(Duration::from_secs(30)).await.unwrap();
    let waited = started.elapsed();
    let queued = enqueue.await.unwrap();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
        "woke after {waited:?}"
    );
    let (job, lease) = waiter
        .claim_job(Principal::Service, &worker("w", LONG))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, queued.id);

    // Finishing frees a slot of the owner's cap: that wakes waiters too. The notification
    // arrives between two waits and is kept for the next one.
    waiter
        .finish_job(&lease, JobOutcome::succeeded(None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    waiter.wait_for_jobs(Duration::from_secs(30)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The policies hold for plain SQL as role `authenticated` (a Supabase client): another user
/// sees nothing, and a user can queue only a fresh job of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_keep_plain_sql_users_to_their_own_fresh_jobs() {
    use sqlx::Connection;
    let db = TestDatabase::create().await;
    let store = db.store().await.unwrap();
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let job = store
        .enqueue_job(Principal::User(alice), new_job(alice))
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let as_user =
        |user: Uuid| serde_json::json!({ "sub": user, "role": "authenticated" }).to_string();
    let set_user = "SELECT set_config('role', 'authenticated', true), \
                    set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', '', true)";

    let mut tx = conn.begin().await.unwrap();
    sqlx::query(set_user)
        .bind(as_user(bob))
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM generation_jobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let cancelled = sqlx::query("UPDATE generation_jobs SET cancel_requested = true WHERE id = $1")
        .bind(job.id)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(cancelled, 0);
    tx.rollback().await.unwrap();

    let mut tx = conn.begin().await.unwrap();
    sqlx::query(set_user)
        .bind(as_user(alice))
        .execute(&mut *tx)
        .await
        .unwrap();
    let forged = sqlx::query(
        "INSERT INTO generation_jobs (user_id, product_idea_id, kind, request, state, lease_token, \
         lease_expires_at, worker_id) VALUES ($1, $2, 'tech_pack', '{}', 'running', gen_random_uuid(), now(), 'me')",
    )
    .bind(alice)
    .bind(Uuid::new_v4())
    .execute(&mut *tx)
    .await;
    // Refused by privileges before row level security is asked (20261201000010).
    let refused = forged.unwrap_err().to_string();
    assert!(
        refused.contains("permission denied") || refused.contains("row-level security"),
        "a user cannot insert a running job: {refused}"
    );
    tx.rollback().await.unwrap();

    let mut tx = conn.begin().await.unwrap();
    sqlx::query(set_user)
        .bind(as_user(alice))
        .execute(&mut *tx)
        .await
        .unwrap();
    // Even a fresh queued job is enqueued only through techpack, which checks the request
    // (its photos and provider) first: plain SQL may only ask for a cancellation.
    let fresh = sqlx::query(
        "INSERT INTO generation_jobs (user_id, product_idea_id, kind, request) VALUES ($1, $2, 'tech_pack', '{}')",
    )
    .bind(alice)
    .bind(Uuid::new_v4())
    .execute(&mut *tx)
    .await;
    assert!(
        fresh.unwrap_err().to_string().contains("permission denied"),
        "jobs are enqueued through techpack"
    );
    tx.rollback().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(set_user)
        .bind(as_user(alice))
        .execute(&mut *tx)
        .await
        .unwrap();
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM generation_jobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(mine, 1);
    let cancelled = sqlx::query("UPDATE generation_jobs SET cancel_requested = true WHERE id = $1")
        .bind(job.id)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(cancelled, 1, "alice may ask her own job to stop");
    tx.commit().await.unwrap();
}

/// The fence's row lock: while a fenced write transaction is open, another worker's claim skips
/// the job (its lease cannot move under the write), yet the same worker's heartbeat does not
/// wait for the write. `with_blob_key_locked` keeps a write transaction open while its action
/// runs, which makes the interleaving deterministic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_fenced_write_holds_off_claims_but_not_heartbeats() {
    let db = TestDatabase::create().await;
    let store: Arc<dyn TechFileStore> = Arc::new(db.store().await.unwrap());
    let owner = Uuid::new_v4();
    let queued = store
        .enqueue_job(Principal::User(owner), new_job(owner))
        .await
        .unwrap();
    let (_, first) = claim(store.as_ref(), &worker("w1", SHORT)).await.unwrap();
    expire().await;
    let stale = store.fenced(&first);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let (inner_store, inner_seen, inner_lease) = (store.clone(), seen.clone(), first.clone());
    stale
        .with_blob_key_locked(
            Principal::Service,
            "any/key",
            Box::new(move |_references| {
                Box::pin(async move {
                    let claimed = claim(inner_store.as_ref(), &worker("w2", LONG)).await;
                    let heartbeat = tokio::time::timeout(
                        Duration::from_secs(10),
                        inner_store.heartbeat_job(&inner_lease),
                    )
                    .await;
                    *inner_seen.lock().unwrap() =
                        Some((claimed.is_none(), matches!(heartbeat, Ok(Ok(_)))));
                })
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some((true, true)),
        "(the claim skipped the fenced job, the heartbeat went through)"
    );
    expire().await;
    let (taken, _) = claim(store.as_ref(), &worker("w2", LONG)).await.unwrap();
    assert_eq!(taken.id, queued.id);
    assert!(is_lease_lost(
        stale
            .with_blob_key_locked(
                Principal::Service,
                "any/key",
                Box::new(|_| Box::pin(async {}))
            )
            .await
    ));
}

fn counts(done: usize, credits_used: i64) -> ProgressCounts {
    ProgressCounts {
        done,
        failed: 0,
        total: 3,
        credits_used,
        elapsed_ms: 10,
    }
}

fn step(view: &str) -> StepId {
    StepId {
        view: view.into(),
        kind: StepKind::Analysis,
    }
}

async fn records_events_in_order_per_job_and_wakes_their_readers(store: Arc<dyn TechFileStore>) {
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let job = store
        .enqueue_job(Principal::User(alice), new_job(alice))
        .await
        .unwrap();
    let other = store
        .enqueue_job(Principal::User(bob), new_job(bob))
        .await
        .unwrap();
    let (_, lease) = claim(store.as_ref(), &worker("w1", LONG)).await.unwrap();
    assert_eq!(lease.job_id, job.id);
    let (_, other_lease) = claim(store.as_ref(), &worker("w2", LONG)).await.unwrap();
    assert_eq!(other_lease.job_id, other.id);
    let mut waker = store.job_event_waker();

    let started = ProgressEvent::StepStarted {
        step: step("front"),
        counts: counts(0, 0),
    };
    let finished = ProgressEvent::StepFinished {
        step: step("front"),
        origin: StepOrigin::Generated,
        credits: 2,
        elapsed_ms: 5,
        counts: counts(1, 2),
    };
    // A provider's error text with a NUL is kept, the NUL replaced.
    let failed = ProgressEvent::StepFailed {
        step: step("back"),
        error: "bad\0byte".into(),
        counts: counts(1, 2),
    };
    let reader = {
        let store = store.clone();
        let job_id = job.id;
        tokio::spawn(async move {
            let begun = Instant::now();
            loop {
                if !store
                    .list_job_events(Principal::User(alice), job_id, None, 10)
                    .await
                    .unwrap()
                    .is_empty()
                {
                    return begun.elapsed();
                }
                waker.wait(job_id).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .record_job_progress(
            &lease,
            None,
            json!({"done": 0}),
            &[started.clone(), finished.clone()],
        )
        .await
        .unwrap();
    // Woken by the write, not by the poll (2 s on PostgreSQL, 250 ms on SQLite).
    let waited = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the reader saw the events")
        .unwrap();
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    store
        .record_job_progress(
            &other_lease,
            None,
            json!({"done": 0}),
            std::slice::from_ref(&started),
        )
        .await
        .unwrap();
    store
        .record_job_progress(&lease, None, json!({"done": 1}), &[failed])
        .await
        .unwrap();

    let events = store
        .list_job_events(Principal::User(alice), job.id, None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert!(events.iter().all(|e| e.job_id == job.id && e.attempt == 1));
    assert_eq!(events[0].event, started);
    assert_eq!(events[1].event, finished);
    match &events[2].event {
        ProgressEvent::StepFailed { error, .. } => assert_eq!(error, "bad\u{FFFD}byte"),
        other => panic!("expected a failed step, got {other:?}"),
    }
    // After an id: only the later ones.
    let later = store
        .list_job_events(Principal::User(alice), job.id, Some(events[0].id), 10)
        .await
        .unwrap();
    assert_eq!(later, events[1..].to_vec());
    let page = store
        .list_job_events(Principal::Service, job.id, None, 2)
        .await
        .unwrap();
    assert_eq!(page, events[..2].to_vec());
    // Bob sees none of Alice's; the service sees both jobs'.
    assert!(
        store
            .list_job_events(Principal::User(bob), job.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_job_events(Principal::Service, other.id, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        store
            .list_job_events(Principal::Service, job.id, None, 0)
            .await,
        Err(StoreError::Invalid(_))
    ));
    // A stale lease writes no events.
    let end = ProgressEvent::Finished {
        status: CollectionStatus::Completed,
        counts: counts(3, 2),
    };
    store
        .finish_job(&lease, JobOutcome::succeeded(None))
        .await
        .unwrap();
    assert!(is_lease_lost(
        store
            .record_job_progress(&lease, None, json!({"done": 3}), &[end])
            .await
    ));
    assert_eq!(
        store
            .list_job_events(Principal::Service, job.id, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );

    let by_state = store.count_jobs_by_state(Principal::Service).await.unwrap();
    assert_eq!(
        by_state,
        vec![(JobState::Running, 1), (JobState::Succeeded, 1)]
    );
    assert_eq!(
        store
            .count_jobs_by_state(Principal::User(bob))
            .await
            .unwrap(),
        vec![(JobState::Running, 1)]
    );
}
