//! Durable jobs through the real `techpack` binary, against a local fake of the OpenAI API that
//! answers each call after a fixed delay, so a test can stop a process between steps:
//! - crash: `techpack generate` is killed with SIGKILL after k finished steps, and a worker
//!   resumes the job (SQLite and PostgreSQL);
//! - several workers drain one PostgreSQL queue, each job once, the per-user cap holding;
//! - a worker paused with SIGSTOP loses its job to another and, woken, writes nothing;
//! - a cancelled job stops at the next step boundary and says so.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{Value, json};
use techpack_model::{
    FileFilter, FileStatus, Job, JobFilter, JobState, LOCAL_USER_ID, Principal, TechFile,
};
use techpack_store::test_support::TestDatabase;
use techpack_store::{SqliteStore, TechFileStore};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;
/// Steps of one job: an analysis, two close-ups (the fake analysis has two detail regions) and
/// a sketch.
const STEPS: usize = 4;

/// One test's world: a data folder, maybe a PostgreSQL database, and the fake OpenAI API.
struct World {
    dir: tempfile::TempDir,
    postgres: Option<TestDatabase>,
    server: MockServer,
    photo: PathBuf,
}

impl World {
    async fn new(postgres: bool, delay: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("front.png");
        std::fs::write(&photo, photo_png()).unwrap();
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(chat_answer().set_delay(delay))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/images/edits"))
            .respond_with(images_answer().set_delay(delay))
            .mount(&server)
            .await;
        let postgres = match postgres {
            true => Some(TestDatabase::create().await),
            false => None,
        };
        let world = Self {
            dir,
            postgres,
            server,
            photo,
        };
        if world.postgres.is_none() {
            // The embedded database is migrated on first use; do it before processes race.
            assert!(world.run(&["migrate"]).status.success());
        }
        world
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_techpack"));
        command
            .arg("--data-dir")
            .arg(self.dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("TECHPACK_USER")
            .env_remove("TECHPACK_STORAGE_URL")
            .env_remove("TECHPACK_JOB_LEASE_SECS")
            .env(
                "TECHPACK_OPENAI_BASE_URL",
                format!("{}/v1", self.server.uri()),
            )
            .env("TECHPACK_OPENAI_API_KEY", "sk-test")
            .env("TECHPACK_OPENAI_MAX_RETRIES", "0")
            .stdin(Stdio::null());
        if let Some(db) = &self.postgres {
            command.arg("--database-url").arg(&db.url);
        }
        command.args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run techpack")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start techpack")
    }

    /// `techpack generate` of one product from the fake photo, as `user`.
    fn generate_args(&self, user: Uuid, product: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--user",
            &user.to_string(),
            "generate",
            "--product",
            product,
            "--view",
            &format!("front={}", self.photo.display()),
            "--closeups",
            "2",
            "--provider",
            "openai",
            "--concurrency",
            "1",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    }

    async fn store(&self) -> Arc<dyn TechFileStore> {
        match &self.postgres {
            Some(db) => Arc::new(db.store().await.unwrap()),
            None => Arc::new(
                SqliteStore::open(&self.dir.path().join("techpack.db"))
                    .await
                    .unwrap(),
            ),
        }
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn photo_png() -> Vec<u8> {
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255]));
    for y in 8..44 {
        for x in 12..52 {
            img.put_pixel(x, y, Rgb([200, 30, 40]));
        }
    }
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn chat_answer() -> ResponseTemplate {
    let analysis = json!({
        "schema_version": 1,
        "image": { "width": WIDTH, "height": HEIGHT },
        "view": "front",
        "category": "apparel",
        "product": { "bbox": [12, 8, 52, 44], "area_share": 0.47, "aspect_ratio": 1.11, "symmetry": 0.98 },
        "colors": [{ "hex": "#c81e28", "share": 0.95, "name": "red" }],
        "materials": ["cotton jersey"],
        "measurements": {
            "scale": { "cm_per_px": 1.9444, "source": "reference", "basis": "height=70cm" },
            "points": [{ "name": "overall_height", "px": 36.0, "cm": 70.0, "from": [32.0, 8.0], "to": [32.0, 44.0] }]
        },
        "detail_regions": [
            { "name": "hem", "bbox": [12, 38, 52, 44], "score": 0.4 },
            { "name": "collar", "bbox": [24, 8, 40, 14], "score": 0.8 }
        ],
        "description": "A plain red tee.",
        "confidence": { "score": 0.82, "reasons": ["plain background"] }
    });
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": analysis.to_string(), "refusal": null },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200 }
    }))
}

fn images_answer() -> ResponseTemplate {
    let mut img = RgbImage::from_pixel(32, 32, Rgb([255, 255, 255]));
    for i in 4..28 {
        img.put_pixel(i, 4, Rgb([0, 0, 0]));
        img.put_pixel(4, i, Rgb([0, 0, 0]));
    }
    let mut png = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut png, ImageFormat::Png)
        .unwrap();
    ResponseTemplate::new(200).set_body_json(json!({
        "created": 1_700_000_000,
        "data": [{ "b64_json": STANDARD.encode(png.into_inner()) }],
        "usage": { "input_tokens": 300, "output_tokens": 4000, "total_tokens": 4300 }
    }))
}

/// Every row of a user's product: all versions of all its files.
async fn product_rows(store: &dyn TechFileStore, user: Uuid, product: &str) -> Vec<TechFile> {
    let me = Principal::User(user);
    let product = techpack_model::product_id_from_name(user, product);
    let latest = store
        .get_latest_tech_files(
            me,
            &FileFilter {
                product_idea_id: Some(product),
                limit: Some(500),
                ..FileFilter::default()
            },
        )
        .await
        .unwrap();
    let mut rows = Vec::new();
    for file in latest.files {
        rows.extend(store.get_file_history(me, file.id).await.unwrap());
    }
    rows
}

/// The generated (non-manifest) files of a product, completed.
async fn completed_steps(store: &dyn TechFileStore, user: Uuid, product: &str) -> usize {
    product_rows(store, user, product)
        .await
        .iter()
        .filter(|file| {
            file.status == FileStatus::Completed
                && file.file_type != techpack_model::FileType::CompletePack
        })
        .count()
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn only_job(store: &dyn TechFileStore, user: Uuid) -> Job {
    let jobs = store
        .list_jobs(Principal::User(user), &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    jobs.into_iter().next().unwrap()
}

/// What must hold of a finished job, whatever happened to its runners: every step has exactly
/// one file, completed and charged once; nothing is left processing; the collection's total
/// is the sum of its files; the job succeeded.
async fn assert_finished_exactly_once(store: &dyn TechFileStore, user: Uuid, product: &str) {
    let job = only_job(store, user).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    let rows = product_rows(store, user, product).await;
    assert!(
        rows.iter()
            .all(|file| file.status != FileStatus::Processing),
        "nothing is left processing: {rows:#?}"
    );
    let mut per_slot: HashMap<String, Vec<&TechFile>> = HashMap::new();
    for file in &rows {
        if file.file_type != techpack_model::FileType::CompletePack {
            per_slot
                .entry(file.metadata["slot"].as_str().unwrap().to_owned())
                .or_default()
                .push(file);
        }
    }
    assert_eq!(per_slot.len(), STEPS, "{per_slot:#?}");
    for (slot, files) in &per_slot {
        assert_eq!(
            files.len(),
            1,
            "step {slot} has exactly one file: {files:#?}"
        );
        assert_eq!(files[0].status, FileStatus::Completed);
        assert_eq!(files[0].credits_used, 1, "step {slot} charged once");
    }
    let collection_id = job.collection_id.expect("the job records its collection");
    let collection = store
        .get_collection_with_files(Principal::User(user), collection_id)
        .await
        .unwrap();
    let sum: i64 = collection
        .items
        .iter()
        .map(|(_, file)| file.credits_used)
        .sum();
    assert_eq!(collection.collection.total_credits, sum);
    assert_eq!(sum, STEPS as i64, "credits equal the generated files");
    assert_eq!(job.result.as_ref().unwrap()["status"], "completed");
}

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

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
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
    let world = World::new(postgres, Duration::from_millis(300)).await;
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
    // A worker that cannot make the job's provider (no API key here) gives the job back for
    // another worker, without counting the attempt.
    let args = world.generate_args(LOCAL_USER_ID, "keyless", &["--detach", "--json"]);
    let queued: Value = serde_json::from_slice(&world.run(&strs(&args)).stdout).unwrap();
    let keyless = queued["id"].as_str().unwrap().parse::<Uuid>().unwrap();
    let mut worker = world
        .command(&["worker", "--poll-secs", "0.1"])
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
