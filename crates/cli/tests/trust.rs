//! What a team running billing on techpack must be able to trust, through the real binary:
//! - cleanup never deletes a blob that a pack, a queued job or a live file needs, on a local
//!   folder and on S3, and refuses a blob store another database also writes to;
//! - identical requests at once make one job and one charge; different requests for one
//!   product run one after another, each output the next version of its one lineage;
//! - killed runs of one pack end, after a worker, with the credits of one clean run;
//! - a retry keeps its own pack's versions; a file marked failed makes its pack partial;
//! - processes that first use a data folder at the same moment all succeed.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::*;
use techpack_blobs::test_support::{BUCKET, S3Server};
use techpack_model::{FileType, JobState, LOCAL_USER_ID, Principal, TechFile};
use uuid::Uuid;

fn example_photo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/photos")
        .join(name)
}

/// A data folder used with the local provider, on a local blob folder or on S3.
struct Local<'a> {
    dir: tempfile::TempDir,
    s3: Option<&'a S3Server>,
}

impl<'a> Local<'a> {
    fn new(s3: Option<&'a S3Server>) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            s3,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_techpack"));
        command
            .arg("--data-dir")
            .arg(self.dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("TECHPACK_USER")
            .env_remove("TECHPACK_STORAGE_URL");
        if let Some(s3) = self.s3 {
            command
                .arg("--storage-url")
                .arg(format!("s3://{BUCKET}/{}", Uuid::nil()));
            command.envs(s3.environment());
        }
        command.args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run techpack")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "techpack {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        serde_json::from_slice(&self.ok(&with_json).stdout).expect("JSON on stdout")
    }
}

fn front(photo: &Path) -> String {
    format!("front={}", photo.display())
}

/// Generate, then cleanup with no grace at all: the pack exports, fsck is clean, a queued
/// job's photo survives for its worker, and a rerun is free and exports again.
async fn cleanup_keeps_what_a_pack_needs(s3: Option<&S3Server>) {
    let world = Local::new(s3);
    let polo = example_photo("polo-red-front.jpg");
    let tee = example_photo("tshirt-black-front.jpg");
    let view = front(&polo);
    let pack = world.json(&[
        "generate",
        "--product",
        "polo",
        "--view",
        &view,
        "--closeups",
        "1",
    ]);
    assert_eq!(pack["status"], "completed", "{pack:#}");
    let credits = pack["credits_used"].as_i64().unwrap();
    assert!(credits > 0);
    let tee_view = front(&tee);
    let queued = world.json(&[
        "generate",
        "--product",
        "tee",
        "--view",
        &tee_view,
        "--closeups",
        "1",
        "--detach",
    ]);
    let job_id = queued["id"].as_str().unwrap().to_owned();

    let report = world.json(&[
        "cleanup",
        "--orphan-grace",
        "0",
        "--archived-older-than",
        "0",
    ]);
    assert_eq!(
        report["deleted"].as_array().unwrap().len(),
        0,
        "nothing a pack or a queued job needs is deleted: {report:#}"
    );

    let out = world.dir.path().join("export");
    let export = world.json(&["pack", "export", "polo", "-o", out.to_str().unwrap()]);
    let written: Vec<&str> = export["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["path"].as_str().unwrap())
        .collect();
    for expected in [
        "base_views/front.jpg",
        "sketches/front.svg",
        "sketches/front.png",
        "manifest.json",
    ] {
        assert!(written.contains(&expected), "{expected} in {written:?}");
        assert!(out.join(expected).is_file());
    }
    let fsck = world.json(&["fsck"]);
    assert_eq!(fsck["findings"].as_array().unwrap().len(), 0, "{fsck:#}");

    world.ok(&["worker", "--exit-when-idle", "--poll-secs", "0.1"]);
    let job = world.json(&["jobs", "show", &job_id]);
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let again = world.json(&[
        "generate",
        "--product",
        "polo",
        "--view",
        &view,
        "--closeups",
        "1",
    ]);
    assert_eq!(again["credits_used"], 0, "a rerun reuses every output");
    assert_eq!(again["collection_id"], pack["collection_id"]);
    let refused = world.run(&["pack", "export", "polo", "-o", out.to_str().unwrap()]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a non-empty folder is refused"
    );
    world.ok(&[
        "pack",
        "export",
        "polo",
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.join("sketches/front.png").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_keeps_what_a_pack_needs_on_a_local_folder() {
    cleanup_keeps_what_a_pack_needs(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_keeps_what_a_pack_needs_on_s3() {
    let root = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(root.path()).await;
    cleanup_keeps_what_a_pack_needs(Some(&s3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_reports_a_missing_sketch_png_and_a_rerun_restores_it() {
    let world = Local::new(None);
    let polo = example_photo("polo-red-front.jpg");
    let view = front(&polo);
    let args = [
        "generate",
        "--product",
        "polo",
        "--view",
        &view,
        "--closeups",
        "1",
    ];
    let pack = world.json(&args);
    let sketch = pack["sketches"][0]["file"].clone();
    let png_key = sketch["metadata"]["png_key"].as_str().unwrap();
    std::fs::remove_file(world.dir.path().join("blobs").join(png_key)).unwrap();

    let broken = world.run(&["--json", "fsck"]);
    assert_eq!(broken.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&broken.stdout).unwrap();
    let finding = &report["findings"][0];
    assert_eq!(finding["name"], "png", "{report:#}");
    assert_eq!(finding["source"], "tech_file");
    assert_eq!(finding["file_id"], sketch["id"]);
    assert_eq!(finding["problem"]["kind"], "missing");

    // The cache does not reuse an output whose blob is gone: the sketch is made again, once.
    let again = world.json(&args);
    assert_eq!(again["credits_used"], 1, "{again:#}");
    assert_eq!(again["sketches"][0]["file"]["version"], 2);
    let fsck = world.json(&["fsck"]);
    assert_eq!(fsck["findings"].as_array().unwrap().len(), 0, "{fsck:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_shared_by_an_archived_and_a_live_file_is_kept() {
    let world = Local::new(None);
    let photo = example_photo("polo-red-front.jpg");
    let put = |product: &str| {
        world.json(&[
            "files",
            "put",
            photo.to_str().unwrap(),
            "--product",
            product,
            "--type",
            "base_view",
        ])
    };
    let live = put("live");
    let archived = put("archived");
    assert_eq!(
        live["file_url"], archived["file_url"],
        "one content, one blob"
    );
    world.ok(&["files", "archive", archived["id"].as_str().unwrap()]);
    let clean = [
        "cleanup",
        "--orphan-grace",
        "0",
        "--archived-older-than",
        "0",
    ];
    let report = world.json(&clean);
    assert_eq!(report["deleted"].as_array().unwrap().len(), 0, "{report:#}");
    let blob = world
        .dir
        .path()
        .join("blobs")
        .join(live["file_url"].as_str().unwrap());
    assert!(blob.is_file());

    world.ok(&["files", "archive", live["id"].as_str().unwrap()]);
    let report = world.json(&clean);
    let deleted = report["deleted"].as_array().unwrap();
    assert_eq!(deleted.len(), 1, "{report:#}");
    assert_eq!(deleted[0]["reason"], "archived_file");
    assert!(!blob.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_refuses_a_blob_store_that_another_database_writes_to() {
    let world = Local::new(None);
    let shared = world.dir.path().join("shared-blobs");
    let storage = format!("file://{}", shared.display());
    let other = format!("sqlite://{}", world.dir.path().join("other.db").display());
    world.ok(&["--storage-url", &storage, "files", "list"]);
    world.ok(&[
        "--database-url",
        &other,
        "--storage-url",
        &storage,
        "files",
        "list",
    ]);
    let refused = world.run(&["--json", "--storage-url", &storage, "cleanup"]);
    assert_eq!(refused.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&refused.stderr).unwrap();
    assert_eq!(error["error"]["code"], "shared_blob_store", "{error:#}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("its own storage URL"), "{message}");

    // A database of its own: the default storage follows the database, so no sharing.
    world.ok(&["--database-url", &other, "files", "list"]);
    world.json(&["--database-url", &other, "cleanup"]);
}

/// `n` identical `techpack generate` at once: all succeed, with one job, one pack and the
/// credits of a single clean run.
async fn identical_requests_at_once_make_one_pack(postgres: bool, n: usize) {
    let world = World::new(postgres, Duration::from_millis(150)).await;
    let store = world.store().await;
    let user = LOCAL_USER_ID;
    let args = world.generate_args(user, "twins", &["--lease-secs", "2"]);
    let children: Vec<_> = (0..n).map(|_| world.spawn(&strs(&args))).collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "every identical request succeeds:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_finished_exactly_once(store.as_ref(), user, "twins").await;
    let collections = store
        .list_collections(Principal::User(user), None)
        .await
        .unwrap();
    assert_eq!(collections.len(), 1, "{collections:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_identical_requests_at_once_on_sqlite() {
    identical_requests_at_once_make_one_pack(false, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_identical_requests_at_once_on_postgres() {
    identical_requests_at_once_make_one_pack(true, 16).await;
}

/// `n` requests for one product with different photos, at once: all succeed, one after
/// another, and each step's files are one lineage with versions 1..n, one of them latest.
async fn different_requests_for_one_product_run_in_turn(postgres: bool, n: usize) {
    let world = World::new(postgres, Duration::from_millis(60)).await;
    let store = world.store().await;
    let user = LOCAL_USER_ID;
    let photos: Vec<PathBuf> = (0..n)
        .map(|index| {
            let path = world.dir.path().join(format!("front-{index}.png"));
            std::fs::write(&path, photo_png_shade(index as u8)).unwrap();
            path
        })
        .collect();
    let children: Vec<_> = photos
        .iter()
        .map(|photo| {
            let mut args = world.generate_args(user, "restyled", &[]);
            let view = args.iter().position(|arg| arg == "--view").unwrap() + 1;
            args[view] = format!("front={}", photo.display());
            world.spawn(&strs(&args))
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let jobs = store
        .list_jobs(Principal::User(user), &Default::default())
        .await
        .unwrap();
    assert_eq!(jobs.len(), n);
    assert!(
        jobs.iter().all(|job| job.state == JobState::Succeeded),
        "{jobs:#?}"
    );
    let rows = product_rows(store.as_ref(), user, "restyled").await;
    let mut lineages: HashMap<String, HashMap<Uuid, Vec<&TechFile>>> = HashMap::new();
    for file in rows
        .iter()
        .filter(|f| f.file_type != FileType::CompletePack)
    {
        lineages
            .entry(file.metadata["slot"].as_str().unwrap().to_owned())
            .or_default()
            .entry(file.lineage_id)
            .or_default()
            .push(file);
    }
    assert_eq!(lineages.len(), STEPS, "{lineages:#?}");
    for (slot, by_lineage) in &lineages {
        assert_eq!(by_lineage.len(), 1, "step {slot} is one lineage");
        let versions = by_lineage.values().next().unwrap();
        let mut numbers: Vec<i32> = versions.iter().map(|f| f.version).collect();
        numbers.sort();
        assert_eq!(numbers, (1..=n as i32).collect::<Vec<_>>(), "step {slot}");
        assert_eq!(versions.iter().filter(|f| f.is_latest).count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_requests_for_one_product_on_sqlite() {
    different_requests_for_one_product_run_in_turn(false, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_requests_for_one_product_on_postgres() {
    different_requests_for_one_product_run_in_turn(true, 6).await;
}

/// Several runs of one pack killed part-way, one after another, then a worker: the pack
/// ends with the credits of one clean run and no job failed.
async fn killed_runs_of_one_pack_end_as_one_clean_run(postgres: bool) {
    let world = World::new(postgres, Duration::from_millis(250)).await;
    let store = world.store().await;
    let user = LOCAL_USER_ID;
    let args = world.generate_args(user, "killed", &["--lease-secs", "0.5"]);
    for round in 1..=2 {
        let mut children: Vec<_> = (0..3).map(|_| world.spawn(&strs(&args))).collect();
        wait_for(
            &format!("{round} finished step(s)"),
            Duration::from_secs(30),
            async || completed_steps(store.as_ref(), user, "killed").await >= round,
        )
        .await;
        for child in &mut children {
            child.kill().unwrap(); // SIGKILL: no cleanup runs.
            child.wait().unwrap();
        }
    }
    // The last run's lease has not run out yet: the worker waits for it and takes the job over.
    let worker = world.run(&["worker", "--exit-when-idle", "--poll-secs", "0.1"]);
    assert!(
        worker.status.success(),
        "{}",
        String::from_utf8_lossy(&worker.stderr)
    );
    assert_finished_exactly_once(store.as_ref(), user, "killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_of_one_pack_on_sqlite() {
    killed_runs_of_one_pack_end_as_one_clean_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_of_one_pack_on_postgres() {
    killed_runs_of_one_pack_end_as_one_clean_run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_keeps_its_own_pack_and_a_failed_file_makes_the_pack_partial() {
    let world = Local::new(None);
    let polo = example_photo("polo-red-front.jpg");
    let view = front(&polo);
    let args = [
        "generate",
        "--product",
        "polo",
        "--view",
        &view,
        "--closeups",
        "1",
    ];
    let first = world.json(&args);
    let first_id = first["collection_id"].as_str().unwrap().to_owned();
    let credits = first["collection_credits"].as_i64().unwrap();
    let mut forced_args = args.to_vec();
    forced_args.push("--force");
    let forced = world.json(&forced_args);
    assert_ne!(forced["collection_id"], first["collection_id"]);
    let retried = world.json(&["generate", "--retry-failed", &first_id]);
    assert_eq!(retried["credits_used"], 0);

    let pack = world.json(&["collections", "show", &first_id]);
    assert_eq!(pack["collection"]["total_credits"], credits, "{pack:#}");
    let items = pack["items"].as_array().unwrap();
    let mut lineages = std::collections::HashSet::new();
    for item in items {
        let file = &item[1];
        assert!(
            lineages.insert(file["lineage_id"].as_str().unwrap().to_owned()),
            "one version of each file: {pack:#}"
        );
        if file["file_type"] != "complete_pack" {
            assert_eq!(file["version"], 1, "the first pack keeps its own versions");
        }
    }
    let out = world.dir.path().join("first");
    let export = world.json(&["pack", "export", &first_id, "-o", out.to_str().unwrap()]);
    let paths: Vec<&str> = export["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<_> = paths.iter().collect();
    assert_eq!(unique.len(), paths.len(), "no file written over another");

    let closeup = first["closeups"][0]["file"]["id"].as_str().unwrap();
    world.ok(&["files", "status", closeup, "failed", "--error", "blurry"]);
    let pack = world.json(&["collections", "show", &first_id]);
    assert_eq!(pack["collection"]["status"], "partial", "{pack:#}");
    assert!(
        pack["collection"]["completion_percentage"]
            .as_i64()
            .unwrap()
            < 100
    );
}

#[test]
fn many_processes_first_using_one_data_folder_all_succeed() {
    let data = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_techpack"))
                .arg("--data-dir")
                .arg(data.path())
                .args(["files", "list"])
                .env_remove("DATABASE_URL")
                .env_remove("TECHPACK_STORAGE_URL")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
