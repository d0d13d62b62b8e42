//! The orchestrator end to end on SQLite and PostgreSQL with a deterministic test provider:
//! files, sections, versions, credits, progress, cache, failures and retries, interruption,
//! legacy cache, dual write and import.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use support::{TestProvider, png, test_analysis};
use techpack_blobs::{BlobStore, BlobStoreOptions};
use techpack_generate::{GenerateError, ViewPhoto};
use techpack_model::{ClaimOptions, Job, JobState};
use techpack_model::{
    CollectionStatus, FileFilter, FileStatus, FileType, Principal, ProductCategory,
};
use techpack_pipeline::jobs::{
    EnqueueOptions, JobControl, JobEnvironment, JobRun, JobRunEnd, enqueue_tech_pack,
    run_claimed_job,
};
use techpack_pipeline::{
    LEGACY_LINK_FIELD, Pipeline, ProgressEvent, SECTION_BASE_VIEWS, SECTION_CLOSEUPS,
    SECTION_MANIFEST, SECTION_SKETCHES, StepOrigin, TechPackOptions, TechPackRequest,
    TechPackResult, ViewInput, export_tech_pack, files_in_section, find_tech_pack,
    import_legacy_analyses,
};
use techpack_store::test_support::TestDatabase;
use techpack_store::{NewLegacyAnalysis, SqliteStore, TechFileStore};
use uuid::Uuid;

struct Harness {
    store: Arc<dyn TechFileStore>,
    blobs: BlobStore,
    user: Uuid,
    product: Uuid,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<TestDatabase>,
}

impl Harness {
    fn pipeline(&self, provider: &Arc<TestProvider>) -> Pipeline {
        Pipeline::new(self.store.clone(), self.blobs.clone(), provider.clone())
    }

    fn principal(&self) -> Principal {
        Principal::User(self.user)
    }

    fn request(&self, photos: &[(&str, u8)], closeups: usize) -> TechPackRequest {
        TechPackRequest {
            product_idea_id: self.product,
            user_id: self.user,
            views: photos
                .iter()
                .map(|(view, seed)| ViewInput {
                    revision_id: techpack_model::revision_id_from_name(
                        self.user,
                        self.product,
                        view,
                    ),
                    view: (*view).into(),
                    photo: Arc::from(png(*seed).as_slice()),
                    reference: None,
                })
                .collect(),
            category: ProductCategory::Apparel,
            primary_view: None,
            options: TechPackOptions {
                closeups_per_view: closeups,
                concurrency: 4,
                ..TechPackOptions::default()
            },
        }
    }

    /// Every row of the product, every version, newest first per lineage.
    async fn all_versions(&self) -> Vec<techpack_model::TechFile> {
        let latest = self
            .store
            .get_latest_tech_files(
                self.principal(),
                &FileFilter {
                    product_idea_id: Some(self.product),
                    limit: Some(500),
                    ..FileFilter::default()
                },
            )
            .await
            .unwrap();
        let mut all = Vec::new();
        for file in latest.files {
            all.extend(
                self.store
                    .get_file_history(self.principal(), file.id)
                    .await
                    .unwrap(),
            );
        }
        all
    }
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("techpack.db"))
        .await
        .unwrap();
    store.migrate_up().await.unwrap();
    harness(Arc::new(store), Some(dir), None)
}

async fn postgres() -> Harness {
    let db = TestDatabase::create().await;
    let store = db.store().await.unwrap();
    harness(Arc::new(store), None, Some(db))
}

fn harness(
    store: Arc<dyn TechFileStore>,
    dir: Option<tempfile::TempDir>,
    db: Option<TestDatabase>,
) -> Harness {
    Harness {
        store,
        blobs: BlobStore::from_url("memory://", BlobStoreOptions::default()).unwrap(),
        user: Uuid::new_v4(),
        product: Uuid::new_v4(),
        _sqlite_dir: dir,
        _postgres: db,
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::sqlite().await).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::postgres().await).await;
            })*
        }
    };
}

on_both_backends!(
    makes_a_whole_pack_with_sections_versions_credits_and_progress,
    an_identical_rerun_is_free_and_creates_nothing,
    a_changed_photo_versions_only_that_views_files,
    failures_make_a_partial_pack_that_retry_failed_completes,
    a_rerun_after_an_interruption_reuses_finished_steps,
    a_legacy_analysis_is_a_cache_hit,
    legacy_import_is_idempotent_and_skips_our_mirrors,
    a_stopped_run_finishes_steps_in_flight_and_records_the_rest_as_cancelled,
    a_forced_run_resumed_in_its_batch_redoes_only_what_is_unfinished,
    a_job_runs_the_pack_and_records_progress_and_result,
    a_job_that_keeps_failing_is_given_up_with_its_last_error,
    a_provider_error_no_retry_can_change_fails_the_job_at_once,
    a_job_rate_limited_for_long_waits_as_long_as_the_provider_asked,
    a_failed_regeneration_leaves_its_version_without_the_parents_output,
    retry_failed_leaves_one_manifest_in_the_collection,
);

async fn generate(
    h: &Harness,
    provider: &Arc<TestProvider>,
    request: TechPackRequest,
) -> (TechPackResult, Vec<ProgressEvent>) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let result = h
        .pipeline(provider)
        .generate(request, Some(sender))
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    (result, events)
}

async fn makes_a_whole_pack_with_sections_versions_credits_and_progress(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let (result, events) =
        generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 3)).await;

    assert_eq!(result.status, CollectionStatus::Completed);
    assert_eq!(result.completion_percentage, 100);
    assert_eq!(
        (
            result.base_views.len(),
            result.closeups.len(),
            result.sketches.len()
        ),
        (2, 6, 2)
    );
    assert!(
        result
            .steps()
            .all(|s| s.origin == StepOrigin::Generated && s.attempts == 1 && s.credits == 1)
    );
    assert_eq!(result.credits_used, 10);
    assert_eq!(provider.total_calls(), 10);
    assert!(!result.resumed_collection);

    // The collection: sections in display order, every file version 1 and completed.
    let pack = h
        .store
        .get_collection_with_files(h.principal(), result.collection_id)
        .await
        .unwrap();
    assert_eq!(pack.collection.status, CollectionStatus::Completed);
    assert_eq!(pack.collection.completion_percentage, 100);
    assert_eq!(pack.collection.generation_batch_id, Some(result.batch_id));
    let sections: Vec<_> = pack
        .items
        .iter()
        .map(|(item, _)| item.section.clone().unwrap())
        .collect();
    let mut sorted = sections.clone();
    let rank = |s: &String| {
        [
            SECTION_BASE_VIEWS,
            SECTION_CLOSEUPS,
            SECTION_SKETCHES,
            SECTION_MANIFEST,
        ]
        .iter()
        .position(|x| x == s)
        .unwrap()
    };
    sorted.sort_by_key(rank);
    assert_eq!(sections, sorted, "sections in display order");
    let base: Vec<_> = files_in_section(&pack, SECTION_BASE_VIEWS).collect();
    assert_eq!(
        base.iter()
            .map(|f| f.view_type.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["front", "back"]
    );
    assert!(
        base.iter()
            .all(|f| f.file_type == FileType::BaseView
                && f.mime_type.as_deref() == Some("image/png"))
    );
    let closeups: Vec<_> = files_in_section(&pack, SECTION_CLOSEUPS).collect();
    assert_eq!(
        closeups
            .iter()
            .map(|f| f.file_category.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["collar", "cuff", "hem", "collar", "cuff", "hem"]
    );
    let sketches: Vec<_> = files_in_section(&pack, SECTION_SKETCHES).collect();
    assert!(
        sketches
            .iter()
            .all(|f| f.mime_type.as_deref() == Some("image/svg+xml"))
    );
    assert!(
        sketches
            .iter()
            .all(|f| f.analysis_data["callouts"].is_array())
    );
    let png_key = sketches[0].metadata["png_key"].as_str().unwrap();
    assert!(
        h.blobs
            .get_bytes(png_key)
            .await
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    for file in base.iter().chain(&closeups).chain(&sketches) {
        assert_eq!(
            (file.version, file.status, file.credits_used),
            (1, FileStatus::Completed, 1)
        );
        assert_eq!(file.generation_batch_id, Some(result.batch_id));
        assert_eq!(file.ai_model.as_deref(), Some("test-model/1"));
        assert!(
            file.idempotency_key
                .as_deref()
                .unwrap()
                .starts_with(&result.batch_id.to_string())
        );
        let stored = h
            .blobs
            .get_bytes(file.file_url.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(stored.len() as i64, file.content_size.unwrap());
    }
    // The manifest lists the pack's files.
    let manifest: Vec<_> = files_in_section(&pack, SECTION_MANIFEST).collect();
    assert_eq!(manifest.len(), 1);
    assert_eq!(manifest[0].file_type, FileType::CompletePack);
    let listing: serde_json::Value = serde_json::from_slice(
        &h.blobs
            .get_bytes(manifest[0].file_url.as_deref().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(listing["files"].as_array().unwrap().len(), 10);
    assert_eq!(listing["total_credits"], 10);

    // Credits: files = collection = product stats.
    let files_sum: i64 = h.all_versions().await.iter().map(|f| f.credits_used).sum();
    let stats = h
        .store
        .get_product_generation_stats(h.principal(), h.product)
        .await
        .unwrap();
    assert_eq!(files_sum, 10);
    assert_eq!(pack.collection.total_credits, 10);
    assert_eq!(stats.total_credits_used, 10);
    assert_eq!(result.collection_credits, 10);

    // Progress: started, one start and finish per step, finished at 100 %.
    assert!(matches!(
        events.first(),
        Some(ProgressEvent::Started { .. })
    ));
    let finished = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::StepFinished { .. }))
        .count();
    assert_eq!(finished, 10);
    let last = events.last().unwrap();
    assert!(matches!(
        last,
        ProgressEvent::Finished {
            status: CollectionStatus::Completed,
            ..
        }
    ));
    assert_eq!(
        (
            last.counts().done,
            last.counts().total,
            last.counts().credits_used
        ),
        (10, 10, 10)
    );
    assert_eq!(last.counts().percentage(), 100);
    let done: Vec<_> = events.iter().map(|e| e.counts().done).collect();
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back"
    );

    // Legacy dual write: each analysis mirrored, linked to its file.
    let front = &result.base_views[0];
    let legacy = h
        .store
        .find_legacy_analysis(
            h.principal(),
            front.file.as_ref().unwrap().revision_id.unwrap(),
            "front",
            None,
        )
        .await
        .unwrap()
        .expect("dual write");
    assert_eq!(
        legacy.analysis_data[LEGACY_LINK_FIELD],
        serde_json::json!(front.file.as_ref().unwrap().id)
    );
    assert_eq!(
        legacy.image_sha256,
        front.file.as_ref().unwrap().content_sha256
    );

    // Reading it back by product and exporting it.
    let by_product = find_tech_pack(h.store.as_ref(), h.principal(), h.product)
        .await
        .unwrap();
    assert_eq!(by_product.collection.id, result.collection_id);
    let out = tempfile::tempdir().unwrap();
    let export = export_tech_pack(
        h.store.as_ref(),
        &h.blobs,
        h.principal(),
        result.collection_id,
        out.path(),
        false,
    )
    .await
    .unwrap();
    for path in [
        "base_views/front.png",
        "base_views/front-analysis.json",
        "closeups/back-03-hem.png",
        "sketches/back.svg",
        "sketches/back.png",
        "manifest.json",
        "export.json",
    ] {
        assert!(out.path().join(path).is_file(), "{path} exported");
    }
    assert!(export.skipped.is_empty());
}

async fn an_identical_rerun_is_free_and_creates_nothing(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let (first, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 2)).await;
    let rows_before = h.all_versions().await;
    let collections_before = h
        .store
        .list_collections(h.principal(), Some(h.product))
        .await
        .unwrap();
    provider.reset_calls();

    let (second, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 2)).await;
    assert_eq!(provider.total_calls(), 0);
    assert_eq!(second.credits_used, 0);
    assert_eq!(second.status, CollectionStatus::Completed);
    assert!(
        second
            .steps()
            .all(|s| s.origin == StepOrigin::Cached && s.credits == 0)
    );
    assert_eq!(second.collection_id, first.collection_id);
    assert!(second.resumed_collection);
    assert_eq!(
        second.manifest.as_ref().unwrap().id,
        first.manifest.as_ref().unwrap().id
    );
    assert_eq!(
        h.all_versions().await,
        rows_before,
        "no row created or changed"
    );
    assert_eq!(
        h.store
            .list_collections(h.principal(), Some(h.product))
            .await
            .unwrap()
            .len(),
        collections_before.len()
    );
    let stats = h
        .store
        .get_product_generation_stats(h.principal(), h.product)
        .await
        .unwrap();
    assert_eq!(stats.total_credits_used, first.credits_used);

    // --force regenerates everything as new versions of the same files.
    provider.reset_calls();
    let mut forced = h.request(&[("front", 1), ("back", 2)], 2);
    forced.options.force = true;
    let (third, _) = generate(&h, &provider, forced).await;
    assert_eq!(provider.total_calls(), 8);
    assert_ne!(third.collection_id, first.collection_id);
    for (old, new) in first.steps().zip(third.steps()) {
        let (old, new) = (old.file.as_ref().unwrap(), new.file.as_ref().unwrap());
        assert_eq!(
            (new.lineage_id, new.version, new.parent_file_id),
            (old.lineage_id, 2, Some(old.id))
        );
    }
}

async fn a_changed_photo_versions_only_that_views_files(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let (first, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 2)).await;
    provider.reset_calls();

    let (second, _) = generate(&h, &provider, h.request(&[("front", 9), ("back", 2)], 2)).await;
    assert_eq!(provider.calls("front:analysis"), 1);
    assert_eq!(provider.calls("back:analysis"), 0);
    assert_eq!(
        provider.total_calls(),
        4,
        "front analysis, 2 close-ups, sketch"
    );
    assert_eq!(second.credits_used, 4);
    assert_ne!(second.collection_id, first.collection_id);
    for step in second.steps() {
        let file = step.file.as_ref().unwrap();
        let before = first
            .steps()
            .find(|s| s.step == step.step)
            .unwrap()
            .file
            .as_ref()
            .unwrap();
        assert_eq!(
            file.lineage_id, before.lineage_id,
            "same lineage for {}",
            step.step
        );
        if step.step.view == "front" {
            assert_eq!((file.version, step.origin), (2, StepOrigin::Generated));
            let history = h
                .store
                .get_tech_file_versions(h.principal(), file.id)
                .await
                .unwrap();
            assert_eq!(history.len(), 1, "version 1 kept in history");
        } else {
            assert_eq!(
                (file.id, file.version, step.origin),
                (before.id, 1, StepOrigin::Cached)
            );
        }
    }
    // The manifest is one file, now at version 2.
    assert_eq!(second.manifest.as_ref().unwrap().version, 2);
    let stats = h
        .store
        .get_product_generation_stats(h.principal(), h.product)
        .await
        .unwrap();
    assert_eq!(stats.total_credits_used, 8 + 4);
}

async fn failures_make_a_partial_pack_that_retry_failed_completes(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    provider.fail("back:closeup:cuff");
    provider.fail("front:sketch");
    provider.fail("side:analysis");
    let (result, _) = generate(
        &h,
        &provider,
        h.request(&[("front", 1), ("back", 2), ("side", 3)], 2),
    )
    .await;

    assert_eq!(result.status, CollectionStatus::Partial);
    assert_eq!(
        provider.calls("front:sketch"),
        1,
        "called once: the provider owns the retries"
    );
    let failed: Vec<_> = result.failed_steps().collect();
    assert_eq!(
        failed.len(),
        6,
        "2 failed steps + side analysis + its 3 blocked steps"
    );
    for step in result.steps().filter(|s| s.origin == StepOrigin::Failed) {
        let file = step.file.as_ref().unwrap();
        assert_eq!((file.status, file.credits_used), (FileStatus::Failed, 0));
        assert!(
            file.error_message
                .as_deref()
                .unwrap()
                .contains("injected failure"),
            "{:?}",
            file.error_message
        );
    }
    assert_eq!(result.blocked.len(), 3);
    assert_eq!(
        result.credits_used, 6,
        "front: 3 of 4 steps, back: 3 of 4, side: none"
    );
    let collection = h
        .store
        .get_collection(h.principal(), result.collection_id)
        .await
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Partial);
    assert_eq!(collection.total_credits, 6);
    assert_eq!(collection.completion_percentage, 50);

    provider.heal();
    provider.reset_calls();
    let retried = h
        .pipeline(&provider)
        .retry_failed(
            h.user,
            result.collection_id,
            h.request(&[], 0).options,
            None,
        )
        .await
        .unwrap();
    assert_eq!(retried.collection_id, result.collection_id);
    assert_eq!(retried.status, CollectionStatus::Completed);
    assert_eq!(retried.completion_percentage, 100);
    assert_eq!(retried.credits_used, 6);
    assert_eq!(
        provider.total_calls(),
        6,
        "only the failed and blocked steps"
    );
    assert_eq!(provider.calls("front:analysis"), 0);
    // Failed rows were filled in place: same ids, still version 1.
    for step in result.steps().filter(|s| s.origin == StepOrigin::Failed) {
        let before = step.file.as_ref().unwrap();
        let after = h
            .store
            .get_tech_file_by_id(h.principal(), before.id)
            .await
            .unwrap();
        assert_eq!(
            (after.status, after.version, after.credits_used),
            (FileStatus::Completed, 1, 1)
        );
    }
    let collection = h
        .store
        .get_collection(h.principal(), result.collection_id)
        .await
        .unwrap();
    assert_eq!(
        (
            collection.status,
            collection.completion_percentage,
            collection.total_credits
        ),
        (CollectionStatus::Completed, 100, 12)
    );
    let stats = h
        .store
        .get_product_generation_stats(h.principal(), h.product)
        .await
        .unwrap();
    assert_eq!(stats.total_credits_used, 12);
}

async fn a_rerun_after_an_interruption_reuses_finished_steps(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    provider.hang("back:sketch");
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let pipeline = h.pipeline(&provider);
    let request = h.request(&[("front", 1), ("back", 2)], 2);
    let run = tokio::spawn(async move { pipeline.generate(request, Some(sender)).await });
    // Wait until everything but the hanging step has finished, then interrupt.
    loop {
        let event = receiver.recv().await.unwrap();
        if event.counts().done == 7 {
            break;
        }
    }
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let interrupted = h
        .store
        .list_collections(h.principal(), Some(h.product))
        .await
        .unwrap();
    assert_eq!(interrupted[0].status, CollectionStatus::InProgress);

    provider.heal();
    provider.reset_calls();
    let (result, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 2)).await;
    assert_eq!(provider.total_calls(), 1, "only the interrupted step");
    assert_eq!(provider.calls("back:sketch"), 1);
    assert_eq!(result.collection_id, interrupted[0].id);
    assert_eq!(result.status, CollectionStatus::Completed);
    assert_eq!(result.credits_used, 1);
    let sketch = result
        .sketches
        .iter()
        .find(|s| s.step.view == "back")
        .unwrap()
        .file
        .as_ref()
        .unwrap();
    assert_eq!(sketch.version, 1, "the processing row was filled in place");
    let stats = h
        .store
        .get_product_generation_stats(h.principal(), h.product)
        .await
        .unwrap();
    assert_eq!((stats.total_credits_used, stats.total_files), (8, 9));
}

async fn a_stopped_run_finishes_steps_in_flight_and_records_the_rest_as_cancelled(h: Harness) {
    let provider = Arc::new(TestProvider::with_latency(Duration::from_millis(40)));
    let stop = techpack_pipeline::CancellationToken::new();
    let mut request = h.request(&[("front", 1), ("back", 2)], 2);
    request.options.concurrency = 1;
    request.options.stop = Some(stop.clone());
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let pipeline = h.pipeline(&provider);
    let run = tokio::spawn(async move { pipeline.generate(request, Some(sender)).await });
    loop {
        if let ProgressEvent::StepFinished { .. } = receiver.recv().await.unwrap() {
            stop.cancel();
            break;
        }
    }
    let result = run.await.unwrap().unwrap();
    let cancelled: Vec<_> = result
        .steps()
        .filter(|step| step.origin == StepOrigin::Cancelled)
        .collect();
    assert!(!cancelled.is_empty(), "{result:#?}");
    assert!(
        cancelled.iter().all(
            |step| step.credits == 0 && step.error.as_deref().unwrap().starts_with("cancelled")
        )
    );
    let generated = result
        .steps()
        .filter(|step| step.origin == StepOrigin::Generated)
        .count();
    assert!(generated >= 1);
    assert_eq!(result.status, CollectionStatus::Partial);
    assert_eq!(result.credits_used, generated as i64);
    let rows = h.all_versions().await;
    assert!(
        rows.iter()
            .all(|file| file.status != FileStatus::Processing),
        "a stopped run leaves nothing processing"
    );
    assert!(rows.iter().any(|file| {
        file.status == FileStatus::Failed
            && file
                .error_message
                .as_deref()
                .is_some_and(|e| e.starts_with("cancelled"))
            || file.status == FileStatus::Completed
    }));

    // The same command again finishes the pack and charges only what it makes now.
    provider.reset_calls();
    let (again, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 2)).await;
    assert_eq!(again.collection_id, result.collection_id);
    assert_eq!(again.status, CollectionStatus::Completed);
    assert_eq!(
        again.credits_used as usize,
        provider.total_calls(),
        "one credit per call made now"
    );
    assert_eq!(again.credits_used as usize + generated, 8);
    assert_eq!(again.collection_credits, 8);
}

async fn a_forced_run_resumed_in_its_batch_redoes_only_what_is_unfinished(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let (first, _) = generate(&h, &provider, h.request(&[("front", 1)], 2)).await;
    assert_eq!(first.status, CollectionStatus::Completed);

    // A forced run in a job's batch is interrupted: its sketch hangs.
    let batch = Uuid::now_v7();
    let forced = |h: &Harness| {
        let mut request = h.request(&[("front", 1)], 2);
        request.options.force = true;
        request.options.batch_id = Some(batch);
        request
    };
    provider.hang("front:sketch");
    provider.reset_calls();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let pipeline = h.pipeline(&provider);
    let request = forced(&h);
    let run = tokio::spawn(async move { pipeline.generate(request, Some(sender)).await });
    loop {
        if receiver.recv().await.unwrap().counts().done == 3 {
            break;
        }
    }
    run.abort();
    let _ = run.await;

    // The job's next attempt: same batch, still forced. It continues the batch's collection
    // and redoes only the sketch, where a plain forced run would redo everything.
    provider.heal();
    provider.reset_calls();
    let (resumed, _) = generate(&h, &provider, forced(&h)).await;
    assert_eq!(provider.total_calls(), 1, "only the unfinished sketch");
    assert_eq!(resumed.batch_id, batch);
    assert_ne!(resumed.collection_id, first.collection_id);
    assert_eq!(resumed.status, CollectionStatus::Completed);
    assert!(
        resumed
            .steps()
            .all(|step| step.file.as_ref().unwrap().version == 2),
        "forced: every file is a new version of the first run's"
    );
    let collections = h
        .store
        .list_collections(h.principal(), Some(h.product))
        .await
        .unwrap();
    assert_eq!(collections.len(), 2, "one collection per batch");
}

fn job_environment(h: &Harness, provider: &Arc<TestProvider>) -> JobEnvironment {
    let provider = provider.clone();
    JobEnvironment {
        store: h.store.clone(),
        blobs: h.blobs.clone(),
        providers: Arc::new(move |name: &str| match name {
            "test" => Ok(provider.clone() as Arc<dyn techpack_generate::Provider>),
            other => Err(format!("no provider `{other}` in this test")),
        }),
    }
}

/// Claims `job` as an in-process run does and runs it to its end.
async fn run_job(h: &Harness, provider: &Arc<TestProvider>, job: &Job) -> JobRun {
    let claim = ClaimOptions {
        only_job: Some(job.id),
        ..ClaimOptions::new("test-runner", Duration::from_secs(10))
    };
    let (job, lease) = h
        .store
        .claim_job(h.principal(), &claim)
        .await
        .unwrap()
        .expect("the job is claimable");
    run_claimed_job(
        &job_environment(h, provider),
        job,
        lease,
        JobControl::default(),
    )
    .await
}

fn attempts(max_attempts: i32) -> EnqueueOptions {
    EnqueueOptions {
        max_attempts: Some(max_attempts),
        ..EnqueueOptions::default()
    }
}

fn ended(run: &JobRun) -> &Job {
    match &run.end {
        JobRunEnd::Ended(job) => job,
        JobRunEnd::LeaseLost => panic!("the lease was lost"),
        JobRunEnd::Unrecorded { error, .. } => panic!("the end was not recorded: {error}"),
    }
}

async fn a_job_runs_the_pack_and_records_progress_and_result(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let request = h.request(&[("front", 1), ("back", 2)], 2);
    let queued = enqueue_tech_pack(h.store.as_ref(), &h.blobs, &request, "test", attempts(3))
        .await
        .unwrap()
        .job;
    assert_eq!(queued.state, JobState::Queued);
    let run = run_job(&h, &provider, &queued).await;
    let job = ended(&run);
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(job.attempts, 1);
    let result = run.result.as_ref().unwrap();
    assert_eq!(job.collection_id, Some(result.collection_id));
    assert_eq!(job.progress["percentage"], 100);
    assert_eq!(job.progress["done"], 8);
    let summary = job.result.as_ref().unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["credits_used"], 8);
    assert_eq!(summary["steps"]["generated"], 8);
    assert_eq!(summary["batch_id"], json!(result.batch_id));
    assert!(job.lease_token.is_none() && job.finished_at.is_some());

    // The photos came back from the blob store: the same request again reuses everything.
    let again = enqueue_tech_pack(h.store.as_ref(), &h.blobs, &request, "test", attempts(3))
        .await
        .unwrap()
        .job;
    let run = run_job(&h, &provider, &again).await;
    let summary = ended(&run).result.clone().unwrap();
    assert_eq!(summary["credits_used"], 0);
    assert_eq!(summary["steps"]["reused"], 8);
    assert_eq!(summary["collection_id"], json!(result.collection_id));
}

async fn a_job_that_keeps_failing_is_given_up_with_its_last_error(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    provider.fail("front:analysis");
    let request = h.request(&[("front", 1)], 1);
    let queued = enqueue_tech_pack(h.store.as_ref(), &h.blobs, &request, "test", attempts(2))
        .await
        .unwrap()
        .job;
    let first = run_job(&h, &provider, &queued).await;
    let job = ended(&first);
    assert_eq!(job.state, JobState::Queued, "tried again later: {job:#?}");
    assert_eq!(job.attempts, 1);
    assert!(job.run_after > chrono::Utc::now(), "after a backoff");
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("injected failure of front:analysis"),
        "{job:#?}"
    );
    let nothing = ClaimOptions {
        only_job: Some(job.id),
        ..ClaimOptions::new("test-runner", Duration::from_secs(10))
    };
    assert!(
        h.store
            .claim_job(h.principal(), &nothing)
            .await
            .unwrap()
            .is_none(),
        "not before its backoff"
    );
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(2100)).await;
    let second = run_job(&h, &provider, &queued).await;
    let job = ended(&second);
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    assert_eq!(job.attempts, 2);
    let error = job.last_error.as_deref().unwrap();
    assert!(
        error.starts_with("gave up after 2 attempts") && error.contains("front:analysis"),
        "{error}"
    );
    let rows = h.all_versions().await;
    assert!(
        rows.iter()
            .all(|file| file.status != FileStatus::Processing)
    );
    assert_eq!(rows.iter().map(|file| file.credits_used).sum::<i64>(), 0);
}

async fn a_provider_error_no_retry_can_change_fails_the_job_at_once(h: Harness) {
    use techpack_generate::Refusal;
    let refusals = [
        (
            GenerateError::Refused {
                reason: Refusal::Unauthorized,
                status: 401,
                url: "POST http://127.0.0.1:9/v1/chat/completions".into(),
                message: "Incorrect API key provided".into(),
            },
            "config_error",
        ),
        (
            GenerateError::Refused {
                reason: Refusal::QuotaExceeded,
                status: 429,
                url: "POST http://127.0.0.1:9/v1/chat/completions".into(),
                message: "You exceeded your current quota".into(),
            },
            "config_error",
        ),
        (
            GenerateError::ModelRefused("I can't help with that.".into()),
            "invalid_input",
        ),
        (
            GenerateError::InvalidAnswer("the analysis does not follow the schema".into()),
            "internal_error",
        ),
    ];
    for (index, (error, code)) in refusals.into_iter().enumerate() {
        let provider = Arc::new(TestProvider::new());
        provider.fail_with("front:analysis", error.clone());
        let request = h.request(&[("front", index as u8 + 40)], 1);
        let queued = enqueue_tech_pack(h.store.as_ref(), &h.blobs, &request, "test", attempts(3))
            .await
            .unwrap()
            .job;
        let run = run_job(&h, &provider, &queued).await;
        let job = ended(&run);
        assert_eq!(
            job.state,
            JobState::Failed,
            "not re-queued for {error}: {job:#?}"
        );
        assert_eq!(job.attempts, 1);
        assert_eq!(job.error_code.as_deref(), Some(code), "{error}");
        assert!(
            job.last_error
                .as_deref()
                .unwrap()
                .contains(&error.to_string()),
            "{job:#?}"
        );
        assert_eq!(provider.calls("front:analysis"), 1, "called once: {error}");
    }
}

async fn a_job_rate_limited_for_long_waits_as_long_as_the_provider_asked(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let wait = Duration::from_secs(300);
    provider.fail_with(
        "front:analysis",
        GenerateError::RetryLater {
            wait,
            ceiling: Duration::from_secs(120),
            until: "Tue, 01 Dec 2026 16:00:00 GMT".into(),
        },
    );
    let request = h.request(&[("front", 1)], 1);
    let queued = enqueue_tech_pack(h.store.as_ref(), &h.blobs, &request, "test", attempts(3))
        .await
        .unwrap()
        .job;
    let before = chrono::Utc::now();
    let run = run_job(&h, &provider, &queued).await;
    let job = ended(&run);
    assert_eq!(job.state, JobState::Queued, "{job:#?}");
    assert!(
        job.run_after >= before + chrono::Duration::seconds(299),
        "not before the provider's 300 s: {job:#?}"
    );
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("try again after Tue, 01 Dec 2026 16:00:00 GMT"),
        "{job:#?}"
    );
    assert_eq!(provider.calls("front:analysis"), 1);
}

async fn a_legacy_analysis_is_a_cache_hit(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let request = h.request(&[("front", 1)], 1);
    let view = &request.views[0];
    let photo = ViewPhoto {
        bytes: view.photo.clone(),
        view: "front".into(),
        category: ProductCategory::Apparel,
        reference: None,
    };
    h.store
        .write_legacy_analysis(
            h.principal(),
            NewLegacyAnalysis {
                user_id: h.user,
                product_idea_id: h.product,
                revision_id: view.revision_id,
                view_type: "front".into(),
                image_url: None,
                image_sha256: Some(hex::encode(Sha256::digest(&view.photo[..]))),
                analysis_data: serde_json::to_value(test_analysis(&photo)).unwrap(),
                model_used: Some("legacy-model".into()),
                credits_used: 1,
            },
        )
        .await
        .unwrap();
    let (result, _) = generate(&h, &provider, request).await;
    assert_eq!(provider.calls("front:analysis"), 0);
    assert_eq!(result.base_views[0].origin, StepOrigin::LegacyCache);
    let file = result.base_views[0].file.as_ref().unwrap();
    assert_eq!(
        (file.credits_used, file.status, file.ai_model.as_deref()),
        (0, FileStatus::Completed, Some("legacy-model"))
    );
    assert_eq!(result.credits_used, 2, "close-up and sketch only");
    assert_eq!(result.status, CollectionStatus::Completed);
}

async fn legacy_import_is_idempotent_and_skips_our_mirrors(h: Harness) {
    for view in ["front", "back"] {
        h.store
            .write_legacy_analysis(
                h.principal(),
                NewLegacyAnalysis {
                    user_id: h.user,
                    product_idea_id: h.product,
                    revision_id: Uuid::new_v4(),
                    view_type: view.into(),
                    image_url: Some(format!("https://legacy.example/{view}.jpg")),
                    image_sha256: None,
                    analysis_data: serde_json::json!({ "colors": ["red"] }),
                    model_used: Some("gpt-4-vision".into()),
                    credits_used: 1,
                },
            )
            .await
            .unwrap();
    }
    // A generated analysis is dual-written; the import must not copy it back.
    let provider = Arc::new(TestProvider::new());
    generate(&h, &provider, h.request(&[("side", 1)], 0)).await;

    let first = import_legacy_analyses(h.store.as_ref(), h.principal())
        .await
        .unwrap();
    assert_eq!(
        (
            first.scanned,
            first.imported,
            first.already_imported,
            first.mirrors_skipped
        ),
        (3, 2, 0, 1)
    );
    let second = import_legacy_analyses(h.store.as_ref(), h.principal())
        .await
        .unwrap();
    assert_eq!(
        (
            second.imported,
            second.already_imported,
            second.mirrors_skipped
        ),
        (0, 2, 1)
    );
    let base_views = h
        .store
        .get_latest_tech_files(
            h.principal(),
            &FileFilter {
                product_idea_id: Some(h.product),
                file_type: Some(FileType::BaseView),
                ..FileFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(base_views.files.len(), 3);
    let imported = base_views
        .files
        .iter()
        .find(|f| f.view_type.as_deref() == Some("front"))
        .unwrap();
    assert_eq!(
        (
            imported.status,
            imported.credits_used,
            imported.ai_model.as_deref()
        ),
        (FileStatus::Completed, 1, Some("gpt-4-vision"))
    );
    assert_eq!(imported.analysis_data["colors"][0], "red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_bad_requests_before_writing() {
    let h = sqlite().await;
    let provider = Arc::new(TestProvider::new());
    let pipeline = h.pipeline(&provider);
    let mut twice = h.request(&[("front", 1), ("front", 2)], 1);
    assert!(
        pipeline
            .generate(twice.clone(), None)
            .await
            .unwrap_err()
            .is_caller_error()
    );
    twice.views.clear();
    assert!(
        pipeline
            .generate(twice, None)
            .await
            .unwrap_err()
            .is_caller_error()
    );
    let mut text = h.request(&[("front", 1)], 1);
    text.views[0].photo = Arc::from(&b"not an image at all"[..]);
    assert!(
        pipeline
            .generate(text, None)
            .await
            .unwrap_err()
            .is_caller_error()
    );
    assert!(
        h.store
            .list_collections(h.principal(), None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The real local provider on one sample photo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_provider_makes_a_pack_from_a_sample_photo() {
    let h = sqlite().await;
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/photos/polo-red-front.jpg"
    ))
    .unwrap();
    let mut request = h.request(&[("front", 1)], 2);
    request.views[0].photo = Arc::from(photo.as_slice());
    let pipeline = Pipeline::new(
        h.store.clone(),
        h.blobs.clone(),
        Arc::new(techpack_generate::local::LocalProvider::default()),
    );
    let result = pipeline.generate(request.clone(), None).await.unwrap();
    assert_eq!(
        result.status,
        CollectionStatus::Completed,
        "{:?}",
        result.failed_steps().collect::<Vec<_>>()
    );
    assert_eq!(result.closeups.len(), 2);
    assert_eq!(result.credits_used, 4);
    let sketch = result.sketches[0].file.as_ref().unwrap();
    assert_eq!(sketch.mime_type.as_deref(), Some("image/svg+xml"));
    assert!(
        sketch
            .ai_model
            .as_deref()
            .unwrap()
            .starts_with("techpack-local")
    );
    let again = pipeline.generate(request, None).await.unwrap();
    assert_eq!(again.credits_used, 0);
}

async fn a_failed_regeneration_leaves_its_version_without_the_parents_output(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    let (first, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 1)).await;
    assert_eq!(first.status, CollectionStatus::Completed);
    let before = first
        .sketches
        .iter()
        .find(|s| s.step.view == "front")
        .unwrap()
        .file
        .clone()
        .unwrap();
    assert!(before.file_url.is_some());

    // A new front photo: its sketch is regenerated as version 2, and that generation fails.
    provider.fail("front:sketch");
    let (second, _) = generate(&h, &provider, h.request(&[("front", 9), ("back", 2)], 1)).await;
    assert_eq!(second.status, CollectionStatus::Partial);
    let step = second
        .sketches
        .iter()
        .find(|s| s.step.view == "front")
        .unwrap();
    assert_eq!(step.origin, StepOrigin::Failed);
    let reported = step.file.as_ref().unwrap();
    let failed = h
        .store
        .get_tech_file_by_id(h.principal(), reported.id)
        .await
        .unwrap();
    assert_eq!(&failed, reported);
    assert_eq!(
        (failed.lineage_id, failed.version, failed.parent_file_id),
        (before.lineage_id, 2, Some(before.id))
    );
    assert_eq!(
        (failed.status, failed.credits_used),
        (FileStatus::Failed, 0)
    );
    assert!(
        failed
            .error_message
            .as_deref()
            .unwrap()
            .contains("injected failure of front:sketch"),
        "{:?}",
        failed.error_message
    );
    assert_eq!(
        (
            &failed.file_url,
            &failed.content_sha256,
            failed.content_size,
            &failed.mime_type
        ),
        (&None, &None, None, &None),
        "the failed version has no blob, least of all version 1's"
    );
    assert_eq!(failed.analysis_data, serde_json::json!({}));
    assert_eq!(
        (
            &failed.ai_model,
            &failed.generation_prompt,
            failed.confidence_score
        ),
        (&None, &None, None)
    );
    assert_eq!(failed.generation_batch_id, Some(second.batch_id));
    assert_eq!(failed.view_type.as_deref(), Some("front"));
    assert_eq!(failed.metadata["slot"], before.metadata["slot"]);
    // Version 1 keeps its output.
    let v1 = h
        .store
        .get_tech_file_by_id(h.principal(), before.id)
        .await
        .unwrap();
    assert_eq!(
        (v1.file_url, v1.content_sha256, v1.status),
        (
            before.file_url,
            before.content_sha256,
            FileStatus::Completed
        )
    );
    // The pack lists the failed version in its sketches, without content.
    let pack = h
        .store
        .get_collection_with_files(h.principal(), second.collection_id)
        .await
        .unwrap();
    let sketch = files_in_section(&pack, SECTION_SKETCHES)
        .find(|f| f.view_type.as_deref() == Some("front"))
        .unwrap();
    assert_eq!((sketch.id, &sketch.file_url), (failed.id, &None));
}

async fn retry_failed_leaves_one_manifest_in_the_collection(h: Harness) {
    let provider = Arc::new(TestProvider::new());
    provider.fail("front:sketch");
    let (result, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 1)).await;
    assert_eq!(result.status, CollectionStatus::Partial);
    let first_manifest = result.manifest.clone().unwrap();

    provider.heal();
    let retried = h
        .pipeline(&provider)
        .retry_failed(
            h.user,
            result.collection_id,
            h.request(&[], 0).options,
            None,
        )
        .await
        .unwrap();
    assert_eq!(retried.status, CollectionStatus::Completed);
    let manifest = retried.manifest.clone().unwrap();
    assert_eq!(
        (manifest.lineage_id, manifest.version),
        (first_manifest.lineage_id, 2),
        "the manifest was rewritten as a new version"
    );

    let manifests_of = |pack: &techpack_model::CollectionWithFiles| {
        files_in_section(pack, SECTION_MANIFEST)
            .map(|f| f.id)
            .collect::<Vec<_>>()
    };
    let pack = h
        .store
        .get_collection_with_files(h.principal(), result.collection_id)
        .await
        .unwrap();
    assert_eq!(
        manifests_of(&pack),
        vec![manifest.id],
        "only the newest manifest"
    );
    let newest = h
        .store
        .get_file_history(h.principal(), manifest.id)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.is_latest)
        .unwrap();
    assert_eq!(newest.id, manifest.id);
    assert_eq!(
        pack.collection.total_credits, 6,
        "three steps per view at one credit each; manifests cost nothing"
    );
    // The old version still exists, only outside the collection.
    assert_eq!(
        h.store
            .get_tech_file_by_id(h.principal(), first_manifest.id)
            .await
            .unwrap()
            .version,
        1
    );
    // What `pack show` reads, by collection and by product.
    for id in [result.collection_id, h.product] {
        let shown = find_tech_pack(h.store.as_ref(), h.principal(), id)
            .await
            .unwrap();
        assert_eq!(manifests_of(&shown), vec![manifest.id]);
    }

    // A retry with nothing left to do, and a rerun of the same request, keep it at one.
    let again = h
        .pipeline(&provider)
        .retry_failed(
            h.user,
            result.collection_id,
            h.request(&[], 0).options,
            None,
        )
        .await
        .unwrap();
    assert_eq!(again.manifest.as_ref().unwrap().id, manifest.id);
    let (rerun, _) = generate(&h, &provider, h.request(&[("front", 1), ("back", 2)], 1)).await;
    assert_eq!(rerun.collection_id, result.collection_id);
    let pack = h
        .store
        .get_collection_with_files(h.principal(), result.collection_id)
        .await
        .unwrap();
    assert_eq!(manifests_of(&pack), vec![manifest.id]);
}
