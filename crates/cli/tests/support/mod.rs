//! What the process tests share: a data folder with the real `techpack` binary, an optional
//! PostgreSQL database, and a local fake of the OpenAI API that answers each call after a fixed
//! delay (so a test can stop a process between steps), plus checks of what a finished pack must
//! look like.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::json;
use techpack_model::{FileFilter, FileStatus, Job, JobFilter, JobState, Principal, TechFile};
use techpack_store::test_support::TestDatabase;
use techpack_store::{SqliteStore, TechFileStore};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const WIDTH: u32 = 64;
pub const HEIGHT: u32 = 48;
/// Steps of one job: an analysis, two close-ups (the fake analysis has two detail regions) and
/// a sketch.
pub const STEPS: usize = 4;

/// One test's world: a data folder, maybe a PostgreSQL database, and the fake OpenAI API.
pub struct World {
    pub dir: tempfile::TempDir,
    pub postgres: Option<TestDatabase>,
    pub server: MockServer,
    pub photo: PathBuf,
}

impl World {
    pub async fn new(postgres: bool, delay: Duration) -> Self {
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

    pub fn command(&self, args: &[&str]) -> Command {
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

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run techpack")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start techpack")
    }

    /// `techpack generate` of one product from the fake photo, as `user`.
    pub fn generate_args(&self, user: Uuid, product: &str, extra: &[&str]) -> Vec<String> {
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

    pub async fn store(&self) -> Arc<dyn TechFileStore> {
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

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The fake photo in another shade of red: the same product, a different photo.
pub fn photo_png_shade(shade: u8) -> Vec<u8> {
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255]));
    for y in 8..44 {
        for x in 12..52 {
            img.put_pixel(x, y, Rgb([200u8.saturating_sub(shade), 30, 40]));
        }
    }
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

pub fn photo_png() -> Vec<u8> {
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

pub fn chat_answer() -> ResponseTemplate {
    let analysis = json!({
        "schema_version": 2,
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

pub fn images_answer() -> ResponseTemplate {
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
pub async fn product_rows(store: &dyn TechFileStore, user: Uuid, product: &str) -> Vec<TechFile> {
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
pub async fn completed_steps(store: &dyn TechFileStore, user: Uuid, product: &str) -> usize {
    product_rows(store, user, product)
        .await
        .iter()
        .filter(|file| {
            file.status == FileStatus::Completed
                && file.file_type != techpack_model::FileType::CompletePack
        })
        .count()
}

pub async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn only_job(store: &dyn TechFileStore, user: Uuid) -> Job {
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
pub async fn assert_finished_exactly_once(store: &dyn TechFileStore, user: Uuid, product: &str) {
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

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}
