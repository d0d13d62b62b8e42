//! How close the orchestrator gets to a pack's critical path, and what the local provider
//! takes for a real 3-view pack.
//!
//! `cargo bench -p techpack-pipeline --bench pack` (or, quicker to build,
//! `cargo test -p techpack-pipeline --bench pack`, which runs the same code at the dev profile).
//!
//! 1. A test provider that sleeps 100 ms per call, 3 views × (4 close-ups + 1 sketch): the
//!    critical path is analysis + the slower of a close-up and a sketch = 200 ms. Prints the
//!    wall time of the whole run (database, blobs, collection and manifest included) over that,
//!    and the speed-up over the same plan run one step at a time (concurrency 1).
//! 2. The `local` provider on the three example photos, 4 close-ups each.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use techpack_blobs::{BlobStore, BlobStoreOptions};
use techpack_generate::Provider;
use techpack_model::{CollectionStatus, ProductCategory};
use techpack_pipeline::{Pipeline, ProgressEvent, TechPackOptions, TechPackRequest, ViewInput};
use techpack_store::{SqliteStore, TechFileStore};
use uuid::Uuid;

const LATENCY: Duration = Duration::from_millis(100);

fn request(views: &[(&str, Vec<u8>)], concurrency: usize) -> TechPackRequest {
    let user = Uuid::new_v4();
    let product = Uuid::new_v4();
    TechPackRequest {
        product_idea_id: product,
        user_id: user,
        views: views
            .iter()
            .map(|(view, photo)| ViewInput {
                revision_id: techpack_model::revision_id_from_name(user, product, view),
                view: (*view).into(),
                photo: Arc::from(photo.as_slice()),
                reference: None,
            })
            .collect(),
        category: ProductCategory::Apparel,
        primary_view: None,
        options: TechPackOptions {
            closeups_per_view: 4,
            concurrency,
            ..TechPackOptions::default()
        },
    }
}

async fn timed(pipeline: &Pipeline, request: TechPackRequest) -> Duration {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let result = pipeline
        .generate(request, Some(sender))
        .await
        .expect("a pack");
    let elapsed = started.elapsed();
    // Where the time went: setup (photos, collection, index), the graph, closing (manifest).
    let mut marks = (0, 0);
    while let Ok(event) = receiver.try_recv() {
        match event {
            ProgressEvent::Started { counts, .. } => marks.0 = counts.elapsed_ms,
            ProgressEvent::StepFinished { counts, .. } => marks.1 = counts.elapsed_ms,
            _ => {}
        }
    }
    eprintln!(
        "    run: setup {} ms, last step done at {} ms, total {} ms",
        marks.0,
        marks.1,
        elapsed.as_millis()
    );
    assert_eq!(result.status, CollectionStatus::Completed);
    assert_eq!(result.closeups.len(), 12);
    elapsed
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .unwrap();
    store.migrate_up().await.unwrap();
    let store: Arc<dyn TechFileStore> = Arc::new(store);
    let blobs = BlobStore::from_url(
        &format!("file://{}", dir.path().join("blobs").display()),
        BlobStoreOptions::default(),
    )
    .unwrap();

    measure("SQLite", store.clone(), blobs.clone()).await;
    // PostgreSQL takes concurrent writers, so the orchestration overhead shows on its own.
    let database = techpack_store::test_support::TestDatabase::create().await;
    let postgres: Arc<dyn TechFileStore> = Arc::new(database.store().await.unwrap());
    measure("PostgreSQL", postgres, blobs.clone()).await;

    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/photos/");
    let real: Vec<(&str, Vec<u8>)> = [
        ("front", "polo-red-front.jpg"),
        ("back", "polo-navy-back.jpg"),
        ("side", "tshirt-black-front.jpg"),
    ]
    .into_iter()
    .map(|(view, file)| {
        (
            view,
            std::fs::read(format!("{examples}{file}")).expect("example photo"),
        )
    })
    .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let local = Pipeline::new(
        store,
        blobs,
        Arc::new(techpack_generate::local::LocalProvider::default()),
    );
    let wall = timed(&local, request(&real, cores)).await;
    println!(
        "local provider, 3 example photos x (analysis + 4 close-ups + sketch), concurrency {cores}: {:.2} s",
        wall.as_secs_f64()
    );
}

/// The test-provider plan on one store: best of three concurrent runs, then one serial run.
async fn measure(label: &str, store: Arc<dyn TechFileStore>, blobs: BlobStore) {
    let photos: Vec<(&str, Vec<u8>)> = vec![
        ("front", support::png(1)),
        ("back", support::png(2)),
        ("side", support::png(3)),
    ];
    let provider: Arc<dyn Provider> = Arc::new(support::TestProvider::with_latency(LATENCY));
    let pipeline = Pipeline::new(store, blobs, provider);
    // Warm up the connection pool and the blob folder; each run below uses a fresh product.
    timed(&pipeline, request(&photos, 16)).await;
    let mut best = Duration::MAX;
    for _ in 0..3 {
        best = best.min(timed(&pipeline, request(&photos, 16)).await);
    }
    let serial = timed(&pipeline, request(&photos, 1)).await;
    let critical = LATENCY * 2;
    println!(
        "{label}: test provider, {} ms per call, 3 views x (analysis + 4 close-ups + sketch) = 18 calls",
        LATENCY.as_millis()
    );
    println!(
        "  critical path            {:>7.0} ms",
        critical.as_secs_f64() * 1e3
    );
    println!(
        "  concurrent run (best/3)  {:>7.0} ms   wall / critical path = {:.3} (target <= 1.15)",
        best.as_secs_f64() * 1e3,
        best.as_secs_f64() / critical.as_secs_f64()
    );
    println!(
        "  one step at a time       {:>7.0} ms   speed-up = {:.1}x",
        serial.as_secs_f64() * 1e3,
        serial.as_secs_f64() / best.as_secs_f64()
    );
}
