//! Durable jobs through the real `techpack` binary, against a local fake of the OpenAI API that
//! answers each call after a fixed delay, so a test can stop a process between steps:
//! - crash: `techpack generate` is killed with SIGKILL after k finished steps, and a worker
//!   resumes the job (SQLite and PostgreSQL);
//! - several workers drain one PostgreSQL queue, each job once, the per-user cap holding;
//! - a worker paused with SIGSTOP loses its job to another and, woken, writes nothing;
//! - a cancelled job stops at the next step boundary and says so.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use techpack_model::{FileStatus, JobFilter, JobState, LOCAL_USER_ID, Principal, TechFile};
use uuid::Uuid;

mod support;

use support::*;

async fn crash_after_k_steps_then_a_worker_resumes(postgres: bool) {
    for k in 1..STEPS {
        let world = World::new(postgres, Duration::from_millis(250)).await;
        let store = world.store().await;
        let user = LOCAL_USER_ID;
        let product = format!("crash-{k}");
        let args = world.generate_args(user, &product, &["--lease-secs", "1"]);
        let mut child = world.spawn(&strs(&args));
        wait_for(
            &format!("{k} finished steps"),
            Duration::from_secs(30),
            async || completed_steps(store.as_ref(), user, &product).await >= k,
        )
        .await;
        child.kill().unwrap(); // SIGKILL: no cleanup runs.
        child.wait().unwrap();
        let job = only_job(store.as_ref(), user).await;
        assert_eq!(
            job.state,
            JobState::Running,
            "the dead process still holds it"
        );
        assert!(completed_steps(store.as_ref(), user, &product).await < STEPS);

        // Once the lease has expired, a worker takes the job over and finishes it.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let worker = world.run(&[
            "worker",
            "--exit-when-idle",
            "--lease-secs",
            "1",
            "--poll-secs",
            "0.2",
        ]);
        let stderr = String::from_utf8_lossy(&worker.stderr);
        assert!(worker.status.success(), "{stderr}");
        assert!(stderr.contains("attempt 2"), "{stderr}");
        assert_finished_exactly_once(store.as_ref(), user, &product).await;
        let job = only_job(store.as_ref(), user).await;
        assert_eq!(job.attempts, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_then_resume_on_sqlite() {
    crash_after_k_steps_then_a_worker_resumes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_then_resume_on_postgres() {
    crash_after_k_steps_then_a_worker_resumes(true).await;
}

async fn workers_drain_one_queue(workers: usize) {
    let world = World::new(true, Duration::from_millis(60)).await;
    let store = world.store().await;
    let cap = 2;
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    // Most jobs belong to one user, so the cap has something to hold back.
    let owners: Vec<Uuid> = (0..20)
        .map(|index| match index % 5 {
            0 => users[1],
            1 => users[2],
            _ => users[0],
        })
        .collect();
    for (index, user) in owners.iter().enumerate() {
        let args = world.generate_args(*user, &format!("drain-{index}"), &["--detach", "--json"]);
        let output = world.run(&strs(&args));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pool = world.postgres.as_ref().unwrap().store().await.unwrap();
    let pool = pool.pool().clone();
    let mut children: Vec<Child> = (0..workers)
        .map(|index| {
            world.spawn(&[
                "worker",
                "--exit-when-idle",
                "--concurrency",
                "2",
                "--per-user-cap",
                &cap.to_string(),
                "--poll-secs",
                "0.1",
                "--worker-id",
                &format!("w{index}"),
            ])
        })
        .collect();
    // Watch the cap while they work.
    let mut most_running = 0i64;
    while children
        .iter_mut()
        .any(|child| child.try_wait().unwrap().is_none())
    {
        let running: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT user_id, count(*) FROM generation_jobs \
             WHERE state = 'running' AND lease_expires_at > now() GROUP BY user_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for (user, count) in running {
            assert!(count <= cap, "user {user} had {count} jobs running");
            most_running = most_running.max(count);
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let mut claimed = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        claimed += stderr.matches(": claimed").count();
    }
    assert_eq!(claimed, 20, "every job claimed exactly once");
    assert_eq!(
        most_running, cap,
        "the busy user ran up to the cap, not more"
    );
    let jobs = store
        .list_jobs(Principal::Service, &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 20);
    for job in &jobs {
        assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
        assert_eq!(job.attempts, 1, "ran once: {job:#?}");
        assert_eq!(job.result.as_ref().unwrap()["credits_used"], STEPS);
    }
    let calls = world.server.received_requests().await.unwrap().len();
    assert_eq!(calls, 20 * STEPS, "no step generated twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_drain_twenty_jobs_on_postgres() {
    workers_drain_one_queue(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_drain_twenty_jobs_on_postgres() {
    workers_drain_one_queue(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_loses_its_job_and_writes_nothing_when_it_wakes() {
    let world = World::new(true, Duration::from_millis(300)).await;
    let store = world.store().await;
    let user = LOCAL_USER_ID;
    let args = world.generate_args(user, "paused", &["--detach"]);
    assert!(world.run(&strs(&args)).status.success());
    let worker_args = |id: &str, idle: bool| {
        let mut args = vec![
            "worker",
            "--lease-secs",
            "1",
            "--poll-secs",
            "0.1",
            "--worker-id",
        ];
        args.push(if id == "a" { "a" } else { "b" });
        if idle {
            args.push("--exit-when-idle");
        }
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let a = world.spawn(&strs(&worker_args("a", true)));
    wait_for("a's first step", Duration::from_secs(30), async || {
        completed_steps(store.as_ref(), user, "paused").await >= 1
    })
    .await;
    signal(&a, "STOP");

    let mut b = world.spawn(&strs(&worker_args("b", false)));
    // When `a` stopped inside a transaction, the server ends that session after its idle
    // timeout (30 s), and only then can `b` lock the rows `a` held.
    wait_for("b to finish the job", Duration::from_secs(90), async || {
        only_job(store.as_ref(), user).await.state == JobState::Succeeded
    })
    .await;
    signal(&b, "TERM");
    assert!(b.wait().unwrap().success());
    let finished = product_rows(store.as_ref(), user, "paused").await;

    // Woken, `a` finds its lease gone: its step in flight is not recorded, and it leaves.
    signal(&a, "CONT");
    let output = a.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("another worker took it over"), "{stderr}");
    let after = product_rows(store.as_ref(), user, "paused").await;
    let key = |rows: &[TechFile]| {
        let mut rows: Vec<(Uuid, String, i64, String)> = rows
            .iter()
            .map(|f| {
                (
                    f.id,
                    f.status.to_string(),
                    f.credits_used,
                    f.updated_at.to_rfc3339(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(key(&after), key(&finished), "a wrote nothing after waking");
    let job = only_job(store.as_ref(), user).await;
    assert_eq!(job.worker_id.as_deref(), Some("b"));
    assert_finished_exactly_once(store.as_ref(), user, "paused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_on_generate_stops_at_a_step_boundary_and_a_rerun_finishes() {
    let world = World::new(false, Duration::from_millis(300)).await;
    let store = world.store().await;
    let user = LOCAL_USER_ID;
    let args = world.generate_args(user, "interrupted", &[]);
    let child = world.spawn(&strs(&args));
    wait_for("the first step", Duration::from_secs(30), async || {
        completed_steps(store.as_ref(), user, "interrupted").await >= 1
    })
    .await;
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("interrupted at a step boundary"),
        "{stderr}"
    );
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let job = only_job(store.as_ref(), user).await;
    assert_eq!(job.state, JobState::Cancelled);
    let rows = product_rows(store.as_ref(), user, "interrupted").await;
    assert!(rows.iter().all(|f| f.status != FileStatus::Processing));
    let done = completed_steps(store.as_ref(), user, "interrupted").await;

    let mut json_args = args.clone();
    json_args.insert(0, "--json".into());
    let again = world.run(&strs(&json_args));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["status"], "completed");
    assert_eq!(
        again["credits_used"],
        (STEPS - done) as i64,
        "only what was left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_the_job_back_and_another_worker_finishes_it() {
    let world = World::new(true, Duration::from_millis(300)).await;
    let store = world.store().await;
    let user = LOCAL_USER_ID;
    let args = world.generate_args(user, "deploy", &["--detach"]);
    assert!(world.run(&strs(&args)).status.success());
    let old = world.spawn(&["worker", "--poll-secs", "0.1", "--worker-id", "old"]);
    wait_for("the first step", Duration::from_secs(30), async || {
        completed_steps(store.as_ref(), user, "deploy").await >= 1
    })
    .await;
    signal(&old, "TERM");
    let output = old.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let job = only_job(store.as_ref(), user).await;
    assert_eq!(job.state, JobState::Queued, "given back: {job:#?}");
    assert_eq!(
        job.attempts, 0,
        "a clean shutdown does not count against the job"
    );
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("the worker shut down"),
        "{job:#?}"
    );
    let rows = product_rows(store.as_ref(), user, "deploy").await;
    assert!(rows.iter().all(|f| f.status != FileStatus::Processing));

    let new = world.run(&[
        "worker",
        "--exit-when-idle",
        "--poll-secs",
        "0.1",
        "--worker-id",
        "new",
    ]);
    assert!(
        new.status.success(),
        "{}",
        String::from_utf8_lossy(&new.stderr)
    );
    assert_finished_exactly_once(store.as_ref(), user, "deploy").await;
    assert_eq!(
        only_job(store.as_ref(), user).await.worker_id.as_deref(),
        Some("new")
    );
}

async fn a_cancelled_job_stops_at_a_step_boundary(postgres: bool) {
    // Each provider call takes long enough that the `jobs cancel` process (started after the
    // first step, on a machine busy with other tests) lands before the pack's last steps end:
    // with 300 ms the whole pack sometimes finished first.
    let world = World::new(postgres, Duration::from_secs(2)).await;
    let store = world.store().await;
    let user = LOCAL_USER_ID;
    let args = world.generate_args(user, "cancelled", &["--detach", "--json"]);
    let queued: Value = serde_json::from_slice(&world.run(&strs(&args)).stdout).unwrap();
    let job_id = queued["id"].as_str().unwrap().to_owned();
    let worker = world.spawn(&[
        "worker",
        "--exit-when-idle",
        "--lease-secs",
        "0.6",
        "--poll-secs",
        "0.1",
    ]);
    wait_for("the first step", Duration::from_secs(30), async || {
        completed_steps(store.as_ref(), user, "cancelled").await >= 1
    })
    .await;
    let cancel = world.run(&["jobs", "cancel", &job_id]);
    let said = String::from_utf8_lossy(&cancel.stdout);
    assert!(cancel.status.success(), "{said}");
    assert!(said.contains("stops at its next step boundary"), "{said}");

    let output = worker.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown = world.run(&["jobs", "show", &job_id]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("cancelled"), "{shown}");
    assert!(
        shown.contains("cancelled on request at a step boundary"),
        "{shown}"
    );
    let job = only_job(store.as_ref(), user).await;
    assert_eq!(job.state, JobState::Cancelled);
    let rows = product_rows(store.as_ref(), user, "cancelled").await;
    assert!(rows.iter().all(|f| f.status != FileStatus::Processing));
    let done = completed_steps(store.as_ref(), user, "cancelled").await;
    assert!((1..STEPS).contains(&done), "stopped part-way: {done}");
    let charged: i64 = rows.iter().map(|f| f.credits_used).sum();
    assert_eq!(charged, done as i64, "only finished steps are charged");

    // The same command again finishes the pack, reusing what was done.
    let args = world.generate_args(user, "cancelled", &["--json"]);
    let again = world.run(&strs(&args));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["status"], "completed");
    assert_eq!(again["credits_used"], (STEPS - done) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_sqlite() {
    a_cancelled_job_stops_at_a_step_boundary(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_postgres() {
    a_cancelled_job_stops_at_a_step_boundary(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_commands_list_and_refuse_what_they_cannot_do() {
    let world = World::new(false, Duration::from_millis(1)).await;
    let args = world.generate_args(LOCAL_USER_ID, "listed", &["--detach", "--json"]);
    let queued: Value = serde_json::from_slice(&world.run(&strs(&args)).stdout).unwrap();
    assert_eq!(queued["state"], "queued");
    let id = queued["id"].as_str().unwrap();
    let listed = world.run(&["--json", "jobs", "list", "--state", "queued"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], id);
    let cancelled = world.run(&["--json", "jobs", "cancel", id]);
    let cancelled: Value = serde_json::from_slice(&cancelled.stdout).unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let again = world.run(&["--json", "jobs", "cancel", id]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "cancelling twice is the caller's mistake"
    );
    let error: Value = serde_json::from_slice(&again.stderr).unwrap();
    assert_eq!(error["error"]["code"], "conflict");
    let missing = world.run(&["jobs", "show", &Uuid::new_v4().to_string()]);
    assert_eq!(missing.status.code(), Some(2));
    let other = world.run(&["--user", &Uuid::new_v4().to_string(), "jobs", "show", id]);
    assert_eq!(
        other.status.code(),
        Some(2),
        "another user's job is not found"
    );
    // A worker that cannot make the job's provider (OpenAI itself, and no API key here) gives
    // the job back for another worker, without counting the attempt. (A self-hosted endpoint
    // needs no key, so the worker is pointed at OpenAI's.)
    let args = world.generate_args(LOCAL_USER_ID, "keyless", &["--detach", "--json"]);
    let queued: Value = serde_json::from_slice(&world.run(&strs(&args)).stdout).unwrap();
    let keyless = queued["id"].as_str().unwrap().parse::<Uuid>().unwrap();
    let mut worker = world
        .command(&["worker", "--poll-secs", "0.1"])
        .env("TECHPACK_OPENAI_BASE_URL", "https://api.openai.com/v1")
        .env_remove("TECHPACK_OPENAI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let store = world.store().await;
    wait_for(
        "the job to come back",
        Duration::from_secs(20),
        async || {
            let job = store
                .get_job(Principal::User(LOCAL_USER_ID), keyless)
                .await
                .unwrap();
            job.last_error.is_some()
        },
    )
    .await;
    signal(&worker, "TERM");
    assert!(worker.wait().unwrap().success());
    let job = store
        .get_job(Principal::User(LOCAL_USER_ID), keyless)
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 0, "not the job's fault");
    let error = job.last_error.unwrap();
    assert!(error.contains("cannot run provider `openai`"), "{error}");
    store
        .cancel_job(Principal::User(LOCAL_USER_ID), keyless)
        .await
        .unwrap();

    // A worker with nothing queued exits at once with --exit-when-idle.
    let idle = world.run(&["worker", "--exit-when-idle", "--poll-secs", "0.1"]);
    assert!(idle.status.success());
    assert!(String::from_utf8_lossy(&idle.stdout).contains("0 job(s) claimed"));
    let _: &Path = world.dir.path();
}
