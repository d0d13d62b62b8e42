//! One conformance suite, run against SQLite and PostgreSQL with the same test code: every
//! store operation, its filters and paging, versioning under concurrency, isolation, bad input.

use std::sync::Arc;

use serde_json::json;
use techpack_model::{
    CollectionItemInput, CollectionProgress, CollectionStatus, CollectionType, FileChanges,
    FileFilter, FileStatus, FileType, MAX_JSON_BYTES, NewCollection, NewTechFile, Principal,
};
use techpack_store::on_both_backends;
use techpack_store::{NewLegacyAnalysis, StoreError, TechFileStore};
use uuid::Uuid;

on_both_backends!(
    creates_and_reads_back_every_field,
    idempotency_key_returns_the_first_row,
    lists_latest_files_with_filters_and_keyset_pages,
    updates_status_completes_in_place_and_archives,
    completes_a_batch_in_one_transaction_all_or_none,
    versions_keep_history_and_snapshots,
    versioning_a_superseded_version_is_a_conflict,
    restores_an_earlier_version_as_a_new_one,
    a_processing_version_starts_without_outputs_until_completed,
    a_version_of_another_status_inherits_the_outputs,
    concurrent_versioning_keeps_one_latest_and_no_gaps,
    collections_keep_order_sections_progress_and_credits,
    removing_files_from_a_collection_recounts_credits_and_is_idempotent,
    batch_files_and_product_stats,
    monitoring_report_counts_recent_activity,
    users_are_isolated_from_each_other,
    bad_input_is_refused_and_nothing_is_written,
    legacy_analyses_round_trip,
    migrations_go_down_and_up_again_and_verify,
);

fn user() -> Uuid {
    Uuid::new_v4()
}

fn new_file(owner: Uuid, product: Uuid, file_type: FileType) -> NewTechFile {
    let mut file = NewTechFile::new(owner, product, file_type);
    file.view_type = Some("front".into());
    file
}

async fn creates_and_reads_back_every_field(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let mut file = new_file(owner, Uuid::new_v4(), FileType::Closeup);
    file.revision_id = Some(Uuid::new_v4());
    file.file_category = Some("collar".into());
    file.file_url = Some(format!("{owner}/ab/{}", "ab".repeat(32)));
    file.content_sha256 = Some("ab".repeat(32));
    file.content_size = Some(12345);
    file.mime_type = Some("image/png".into());
    file.analysis_data =
        json!({"colors": [{"hex": "#ff0000", "share": 0.5}], "nested": {"a": [1, 2, 3]}});
    file.metadata = json!({"source": "test"});
    file.ai_model = Some("techpack-local/1.0".into());
    file.generation_prompt = Some("crop collar".into());
    file.generation_batch_id = Some(Uuid::new_v4());
    file.credits_used = 1;
    file.confidence_score = Some(0.75);
    file.quality_score = Some(0.5);
    file.status = FileStatus::Completed;
    let created = store.create_tech_file(me, file.clone()).await.unwrap();
    assert_eq!(created.version, 1);
    assert!(created.is_latest);
    assert_eq!(created.lineage_id, created.id);
    assert_eq!(created.parent_file_id, None);
    assert_eq!(created.created_by, Some(owner));
    assert_eq!(created.file_category.as_deref(), Some("collar"));
    assert_eq!(created.analysis_data, file.analysis_data);
    assert_eq!(created.metadata, file.metadata);
    assert_eq!(created.content_size, Some(12345));
    assert_eq!(created.confidence_score, Some(0.75));
    assert_eq!(created.generation_batch_id, file.generation_batch_id);
    assert_eq!(created.revision_id, file.revision_id);
    let read = store.get_tech_file_by_id(me, created.id).await.unwrap();
    assert_eq!(read, created);
    let missing = store
        .get_tech_file_by_id(me, Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            StoreError::NotFound {
                entity: "tech file",
                ..
            }
        ),
        "{missing}"
    );
}

async fn idempotency_key_returns_the_first_row(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let mut file = new_file(owner, Uuid::new_v4(), FileType::BaseView);
    file.idempotency_key = Some("batch-1:analysis:front".into());
    file.credits_used = 1;
    let first = store.create_tech_file(me, file.clone()).await.unwrap();
    let second = store.create_tech_file(me, file.clone()).await.unwrap();
    assert_eq!(first.id, second.id);
    let found = store
        .find_by_idempotency_key(me, owner, "batch-1:analysis:front")
        .await
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(first.id));
    let stats = store
        .get_product_generation_stats(me, file.product_idea_id)
        .await
        .unwrap();
    assert_eq!(stats.total_files, 1);
    assert_eq!(
        stats.total_credits_used, 1,
        "a retried step is not charged twice"
    );
    // The same key for another user is that user's own.
    let other = user();
    let mut theirs = file.clone();
    theirs.user_id = other;
    let theirs = store
        .create_tech_file(Principal::User(other), theirs)
        .await
        .unwrap();
    assert_ne!(theirs.id, first.id);
}

async fn lists_latest_files_with_filters_and_keyset_pages(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let product = Uuid::new_v4();
    let revision = Uuid::new_v4();
    let batch = Uuid::new_v4();
    let mut ids = Vec::new();
    for index in 0..7 {
        let file_type = if index % 2 == 0 {
            FileType::Closeup
        } else {
            FileType::Sketch
        };
        let mut file = new_file(owner, product, file_type);
        file.revision_id = Some(revision);
        file.view_type = Some(if index < 4 { "front" } else { "back" }.into());
        file.generation_batch_id = (index < 3).then_some(batch);
        file.status = if index == 6 {
            FileStatus::Failed
        } else {
            FileStatus::Completed
        };
        ids.push(store.create_tech_file(me, file).await.unwrap().id);
    }
    // Another product's file is not listed under this product.
    store
        .create_tech_file(me, new_file(owner, Uuid::new_v4(), FileType::Closeup))
        .await
        .unwrap();
    // A superseded version is not listed; its successor is.
    let v2 = store
        .create_tech_file_version(
            me,
            ids[0],
            FileChanges {
                change_description: Some("again".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let all = FileFilter {
        product_idea_id: Some(product),
        limit: Some(3),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut filter = all.clone();
    let mut pages = 0;
    loop {
        let page = store.get_latest_tech_files(me, &filter).await.unwrap();
        assert!(page.files.len() <= 3);
        seen.extend(page.files.iter().map(|f| (f.created_at, f.id)));
        pages += 1;
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen.len(),
        7,
        "7 latest files: 6 originals + the new version of the first"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no duplicates across pages");
    assert!(seen.iter().any(|(_, id)| *id == v2.id));
    assert!(!seen.iter().any(|(_, id)| *id == ids[0]));

    let count = |filter: FileFilter| {
        let store = store.clone();
        async move {
            store
                .get_latest_tech_files(me, &filter)
                .await
                .unwrap()
                .files
                .len()
        }
    };
    let base = FileFilter {
        product_idea_id: Some(product),
        ..Default::default()
    };
    assert_eq!(
        count(FileFilter {
            file_type: Some(FileType::Closeup),
            ..base.clone()
        })
        .await,
        4
    );
    assert_eq!(
        count(FileFilter {
            view_type: Some("back".into()),
            ..base.clone()
        })
        .await,
        3
    );
    assert_eq!(
        count(FileFilter {
            status: Some(FileStatus::Failed),
            ..base.clone()
        })
        .await,
        1
    );
    assert_eq!(
        count(FileFilter {
            generation_batch_id: Some(batch),
            ..base.clone()
        })
        .await,
        3
    );
    assert_eq!(
        count(FileFilter {
            revision_id: Some(revision),
            ..base.clone()
        })
        .await,
        7
    );
    assert_eq!(count(FileFilter::default()).await, 8);
    let too_big = store
        .get_latest_tech_files(
            me,
            &FileFilter {
                limit: Some(10_000),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(too_big, Err(StoreError::Invalid(ref e)) if e.field == "limit"));
}

async fn completes_a_batch_in_one_transaction_all_or_none(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let product = Uuid::new_v4();
    let mut files = Vec::new();
    for file_type in [FileType::Closeup, FileType::Sketch, FileType::Closeup] {
        files.push(
            store
                .create_tech_file(me, new_file(owner, product, file_type))
                .await
                .unwrap(),
        );
    }
    let collection = store
        .create_tech_file_collection(
            me,
            NewCollection::new(owner, product, "batch", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    store
        .add_files_to_collection(
            me,
            collection.id,
            files
                .iter()
                .map(|file| CollectionItemInput {
                    tech_file_id: file.id,
                    display_order: None,
                    section: None,
                })
                .collect(),
        )
        .await
        .unwrap();
    let done_with = |credits: i64| FileChanges {
        file_url: Some(format!("{owner}/out/{credits}.png")),
        credits_used: Some(credits),
        ..Default::default()
    };
    // Given out of id order: the answer keeps the order given.
    let done = store
        .complete_tech_files(
            me,
            vec![(files[2].id, done_with(3)), (files[0].id, done_with(1))],
        )
        .await
        .unwrap();
    assert_eq!(
        done.iter()
            .map(|f| (f.id, f.credits_used))
            .collect::<Vec<_>>(),
        vec![(files[2].id, 3), (files[0].id, 1)]
    );
    assert!(done.iter().all(|f| f.status == FileStatus::Completed));
    assert_eq!(
        store
            .get_collection(me, collection.id)
            .await
            .unwrap()
            .total_credits,
        4,
        "the collection total follows a batch too"
    );

    // A batch with one file that is already completed changes nothing at all.
    let refused = store
        .complete_tech_files(
            me,
            vec![(files[1].id, done_with(5)), (files[0].id, done_with(7))],
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused}");
    let untouched = store.get_tech_file_by_id(me, files[1].id).await.unwrap();
    assert_eq!(untouched.status, FileStatus::Processing);
    assert_eq!(untouched.credits_used, 0);
    assert_eq!(
        store
            .get_tech_file_by_id(me, files[0].id)
            .await
            .unwrap()
            .credits_used,
        1
    );
    // The same file twice in one batch is refused, and nothing is written.
    let twice = store
        .complete_tech_files(
            me,
            vec![(files[1].id, done_with(1)), (files[1].id, done_with(2))],
        )
        .await
        .unwrap_err();
    assert!(matches!(twice, StoreError::Conflict(_)), "{twice}");
    assert_eq!(
        store
            .get_tech_file_by_id(me, files[1].id)
            .await
            .unwrap()
            .status,
        FileStatus::Processing
    );
    // Invalid input is refused before anything is written.
    let invalid = store
        .complete_tech_files(
            me,
            vec![(
                files[1].id,
                FileChanges {
                    credits_used: Some(-1),
                    ..Default::default()
                },
            )],
        )
        .await
        .unwrap_err();
    assert!(matches!(invalid, StoreError::Invalid(_)), "{invalid}");
    // Another user's file is not found, and the batch writes nothing.
    let stranger = Principal::User(user());
    let hidden = store
        .complete_tech_files(stranger, vec![(files[1].id, done_with(2))])
        .await
        .unwrap_err();
    assert!(matches!(hidden, StoreError::NotFound { .. }), "{hidden}");
    assert_eq!(
        store
            .get_tech_file_by_id(me, files[1].id)
            .await
            .unwrap()
            .status,
        FileStatus::Processing
    );
    assert!(
        store
            .complete_tech_files(me, Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn updates_status_completes_in_place_and_archives(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let product = Uuid::new_v4();
    let file = store
        .create_tech_file(me, new_file(owner, product, FileType::Sketch))
        .await
        .unwrap();
    assert_eq!(file.status, FileStatus::Processing);
    let failed = store
        .update_tech_file_status(
            me,
            file.id,
            FileStatus::Failed,
            Some("provider timed out".into()),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, FileStatus::Failed);
    assert_eq!(failed.error_message.as_deref(), Some("provider timed out"));
    assert!(failed.updated_at >= file.updated_at);
    let done = store
        .complete_tech_file(
            me,
            file.id,
            FileChanges {
                file_url: Some("u/sketch.svg".into()),
                credits_used: Some(1),
                analysis_data: Some(json!({"callouts": []})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, FileStatus::Completed);
    assert_eq!(done.error_message, None);
    assert_eq!(done.credits_used, 1);
    assert_eq!(
        done.version, 1,
        "completing a processing file does not make a version"
    );
    let again = store
        .complete_tech_file(me, file.id, FileChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
    let archived = store.archive_tech_file(me, file.id).await.unwrap();
    assert_eq!(archived.status, FileStatus::Archived);
    let listed = store
        .get_latest_tech_files(
            me,
            &FileFilter {
                product_idea_id: Some(product),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        listed.files.is_empty(),
        "archived files are hidden from latest listings"
    );
    let listed = store
        .get_latest_tech_files(
            me,
            &FileFilter {
                product_idea_id: Some(product),
                status: Some(FileStatus::Archived),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.files.len(), 1);
    let refused = store
        .update_tech_file_status(me, file.id, FileStatus::Archived, None)
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Invalid(_)));
}

async fn versions_keep_history_and_snapshots(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let mut file = new_file(owner, Uuid::new_v4(), FileType::BaseView);
    file.analysis_data = json!({"v": 1});
    file.credits_used = 1;
    file.status = FileStatus::Completed;
    let v1 = store.create_tech_file(me, file).await.unwrap();
    let v2 = store
        .create_tech_file_version(
            me,
            v1.id,
            FileChanges {
                analysis_data: Some(json!({"v": 2})),
                credits_used: Some(1),
                change_description: Some("new photo".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (v2.version, v2.lineage_id, v2.parent_file_id),
        (2, v1.id, Some(v1.id))
    );
    assert_eq!(
        v2.view_type.as_deref(),
        Some("front"),
        "unchanged fields carry over"
    );
    assert_eq!(v2.change_description.as_deref(), Some("new photo"));
    let v3 = store
        .create_tech_file_version(me, v2.id, FileChanges::default())
        .await
        .unwrap();
    assert_eq!(
        v3.credits_used, 0,
        "a version made by hand costs nothing unless it says so"
    );
    let history = store.get_file_history(me, v1.id).await.unwrap();
    assert_eq!(
        history.iter().map(|f| f.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(history.iter().filter(|f| f.is_latest).count(), 1);
    assert!(history[2].is_latest);
    let snapshots = store.get_tech_file_versions(me, v3.id).await.unwrap();
    assert_eq!(
        snapshots.iter().map(|s| s.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(snapshots[0].tech_file_id, v1.id);
    assert_eq!(snapshots[0].snapshot["analysis_data"], json!({"v": 1}));
    assert_eq!(
        snapshots[0].change_description.as_deref(),
        Some("new photo")
    );
    assert_eq!(snapshots[0].created_by, Some(owner));
    assert_eq!(snapshots[1].snapshot["analysis_data"], json!({"v": 2}));
}

async fn versioning_a_superseded_version_is_a_conflict(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let v1 = store
        .create_tech_file(me, new_file(owner, Uuid::new_v4(), FileType::Sketch))
        .await
        .unwrap();
    store
        .create_tech_file_version(me, v1.id, FileChanges::default())
        .await
        .unwrap();
    let error = store
        .create_tech_file_version(me, v1.id, FileChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    assert_eq!(
        store.get_file_history(me, v1.id).await.unwrap().len(),
        2,
        "nothing written"
    );
}

async fn restores_an_earlier_version_as_a_new_one(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let mut file = new_file(owner, Uuid::new_v4(), FileType::Sketch);
    file.file_url = Some("k/one".into());
    file.analysis_data = json!({"callouts": [1]});
    file.status = FileStatus::Completed;
    let v1 = store.create_tech_file(me, file).await.unwrap();
    let v2 = store
        .create_tech_file_version(
            me,
            v1.id,
            FileChanges {
                file_url: Some("k/two".into()),
                analysis_data: Some(json!({"callouts": [2]})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v3 = store.restore_tech_file_version(me, v2.id, 1).await.unwrap();
    assert_eq!(v3.version, 3);
    assert!(v3.is_latest);
    assert_eq!(v3.file_url.as_deref(), Some("k/one"));
    assert_eq!(v3.analysis_data, json!({"callouts": [1]}));
    assert_eq!(
        v3.change_description.as_deref(),
        Some("restored from version 1")
    );
    let latest = store
        .restore_tech_file_version(me, v1.id, 3)
        .await
        .unwrap_err();
    assert!(matches!(latest, StoreError::Invalid(_)), "{latest}");
    let missing = store
        .restore_tech_file_version(me, v1.id, 9)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
}

/// A completed sketch with every output set, as a generation step leaves it.
async fn completed_sketch(store: &Arc<dyn TechFileStore>, owner: Uuid) -> techpack_model::TechFile {
    let mut file = new_file(owner, Uuid::new_v4(), FileType::Sketch);
    file.revision_id = Some(Uuid::new_v4());
    file.file_category = Some("outline".into());
    file.file_url = Some(format!("{owner}/ab/{}", "ab".repeat(32)));
    file.content_sha256 = Some("ab".repeat(32));
    file.content_size = Some(2048);
    file.mime_type = Some("image/svg+xml".into());
    file.analysis_data = json!({"callouts": [{"number": 1}]});
    file.metadata = json!({"slot": "sketch", "cache_key": "one"});
    file.ai_model = Some("model/1".into());
    file.generation_prompt = Some("draw the front".into());
    file.generation_batch_id = Some(Uuid::new_v4());
    file.credits_used = 1;
    file.confidence_score = Some(0.9);
    file.quality_score = Some(0.8);
    file.status = FileStatus::Completed;
    store
        .create_tech_file(Principal::User(owner), file)
        .await
        .unwrap()
}

async fn a_processing_version_starts_without_outputs_until_completed(
    store: Arc<dyn TechFileStore>,
) {
    let owner = user();
    let me = Principal::User(owner);
    let v1 = completed_sketch(&store, owner).await;
    let batch = Uuid::new_v4();
    let v2 = store
        .create_tech_file_version(
            me,
            v1.id,
            FileChanges {
                generation_batch_id: Some(batch),
                status: Some(FileStatus::Processing),
                change_description: Some("regenerated: the photo changed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((v2.version, v2.status), (2, FileStatus::Processing));
    assert_eq!(
        (
            &v2.file_url,
            &v2.content_sha256,
            v2.content_size,
            &v2.mime_type
        ),
        (&None, &None, None, &None),
        "no blob of the parent's"
    );
    assert_eq!(v2.analysis_data, json!({}));
    assert_eq!((&v2.ai_model, &v2.generation_prompt), (&None, &None));
    assert_eq!((v2.confidence_score, v2.quality_score), (None, None));
    assert_eq!((&v2.error_message, v2.credits_used), (&None, 0));
    // What names the file is inherited.
    assert_eq!(
        (
            v2.lineage_id,
            v2.product_idea_id,
            v2.revision_id,
            v2.user_id,
            v2.file_type
        ),
        (
            v1.lineage_id,
            v1.product_idea_id,
            v1.revision_id,
            v1.user_id,
            v1.file_type
        )
    );
    assert_eq!(
        (&v2.view_type, &v2.file_category, &v2.metadata),
        (&v1.view_type, &v1.file_category, &v1.metadata)
    );
    assert_eq!(v2.generation_batch_id, Some(batch));
    // The superseded version keeps its outputs, in the table and in its snapshot.
    let history = store.get_file_history(me, v2.id).await.unwrap();
    assert_eq!(history[0].file_url, v1.file_url);
    let snapshots = store.get_tech_file_versions(me, v2.id).await.unwrap();
    assert_eq!(snapshots[0].snapshot["file_url"], json!(v1.file_url));

    // Outputs the changes give are kept, and an unset status of a processing parent makes
    // a processing version too.
    let v3 = store
        .create_tech_file_version(
            me,
            v2.id,
            FileChanges {
                mime_type: Some("image/png".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v3.status, FileStatus::Processing);
    assert_eq!(
        (v3.mime_type.as_deref(), &v3.file_url),
        (Some("image/png"), &None)
    );

    // The generation finishes: the row gets its own outputs in place.
    let done = store
        .complete_tech_file(
            me,
            v3.id,
            FileChanges {
                file_url: Some(format!("{owner}/cd/{}", "cd".repeat(32))),
                content_sha256: Some("cd".repeat(32)),
                content_size: Some(4096),
                analysis_data: Some(json!({"callouts": [{"number": 2}]})),
                ai_model: Some("model/2".into()),
                generation_prompt: Some("draw it again".into()),
                confidence_score: Some(0.7),
                credits_used: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((done.id, done.version), (v3.id, 3));
    assert_eq!(done.status, FileStatus::Completed);
    assert_eq!(
        done.file_url,
        Some(format!("{owner}/cd/{}", "cd".repeat(32)))
    );
    assert_eq!(done.content_sha256, Some("cd".repeat(32)));
    assert_eq!(done.content_size, Some(4096));
    assert_eq!(
        done.mime_type.as_deref(),
        Some("image/png"),
        "what the version was given at creation stays"
    );
    assert_eq!(done.analysis_data, json!({"callouts": [{"number": 2}]}));
    assert_eq!(
        (done.ai_model.as_deref(), done.generation_prompt.as_deref()),
        (Some("model/2"), Some("draw it again"))
    );
    assert_eq!(
        (done.confidence_score, done.quality_score),
        (Some(0.7), None)
    );
    assert_eq!(done.credits_used, 1);

    // A processing version whose generation fails shows its error and no output.
    let v4 = store
        .create_tech_file_version(
            me,
            done.id,
            FileChanges {
                status: Some(FileStatus::Processing),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let failed = store
        .complete_tech_file(
            me,
            v4.id,
            FileChanges {
                status: Some(FileStatus::Failed),
                error_message: Some("provider timed out".into()),
                credits_used: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            failed.status,
            failed.error_message.as_deref(),
            &failed.file_url,
            &failed.content_sha256
        ),
        (FileStatus::Failed, Some("provider timed out"), &None, &None)
    );
    assert_eq!(failed.analysis_data, json!({}));
}

async fn a_version_of_another_status_inherits_the_outputs(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let v1 = completed_sketch(&store, owner).await;
    let outputs = |file: &techpack_model::TechFile| {
        (
            file.file_url.clone(),
            file.content_sha256.clone(),
            file.content_size,
            file.mime_type.clone(),
            file.analysis_data.clone(),
            file.ai_model.clone(),
            file.generation_prompt.clone(),
            file.confidence_score,
            file.quality_score,
        )
    };
    let v2 = store
        .create_tech_file_version(
            me,
            v1.id,
            FileChanges {
                metadata: Some(json!({"slot": "sketch", "note": "renamed"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v2.status, FileStatus::Completed);
    assert_eq!(
        outputs(&v2),
        outputs(&v1),
        "a completed version copies them"
    );
    let v3 = store
        .create_tech_file_version(
            me,
            v2.id,
            FileChanges {
                status: Some(FileStatus::Failed),
                error_message: Some("flagged by review".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (v3.status, v3.error_message.as_deref()),
        (FileStatus::Failed, Some("flagged by review"))
    );
    assert_eq!(outputs(&v3), outputs(&v1), "a failed version copies them");
    // An empty processing version, then a restore of version 1: everything comes back.
    let v4 = store
        .create_tech_file_version(
            me,
            v3.id,
            FileChanges {
                status: Some(FileStatus::Processing),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v4.file_url, None);
    let restored = store.restore_tech_file_version(me, v4.id, 1).await.unwrap();
    assert_eq!(
        (restored.version, restored.status),
        (5, FileStatus::Completed)
    );
    assert_eq!(outputs(&restored), outputs(&v1));
    assert_eq!(restored.metadata, v1.metadata);
}

async fn concurrent_versioning_keeps_one_latest_and_no_gaps(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let v1 = store
        .create_tech_file(me, new_file(owner, Uuid::new_v4(), FileType::BaseView))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for task in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            loop {
                let latest = store
                    .get_file_history(me, v1.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|f| f.is_latest)
                    .unwrap();
                let changes = FileChanges {
                    metadata: Some(json!({ "task": task })),
                    ..Default::default()
                };
                match store.create_tech_file_version(me, latest.id, changes).await {
                    Ok(created) => return (created.version, conflicts),
                    Err(StoreError::Conflict(_)) => conflicts += 1,
                    Err(other) => panic!("task {task}: unexpected error {other}"),
                }
            }
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().0);
    }
    versions.sort();
    assert_eq!(
        versions,
        (2..=33).collect::<Vec<_>>(),
        "every task made exactly one version"
    );
    let history = store.get_file_history(me, v1.id).await.unwrap();
    assert_eq!(
        history.iter().map(|f| f.version).collect::<Vec<_>>(),
        (1..=33).collect::<Vec<_>>()
    );
    assert_eq!(history.iter().filter(|f| f.is_latest).count(), 1);
    assert_eq!(history.last().unwrap().version, 33);
    assert_eq!(
        store.get_tech_file_versions(me, v1.id).await.unwrap().len(),
        32
    );
}

async fn collections_keep_order_sections_progress_and_credits(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let product = Uuid::new_v4();
    let collection = store
        .create_tech_file_collection(
            me,
            NewCollection::new(owner, product, "Winter 2025", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            collection.status,
            collection.completion_percentage,
            collection.total_credits
        ),
        (CollectionStatus::Pending, 0, 0)
    );
    let mut files = Vec::new();
    for (file_type, credits) in [
        (FileType::BaseView, 1),
        (FileType::Closeup, 1),
        (FileType::Sketch, 2),
    ] {
        let mut file = new_file(owner, product, file_type);
        file.credits_used = credits;
        files.push(store.create_tech_file(me, file).await.unwrap());
    }
    let added = store
        .add_files_to_collection(
            me,
            collection.id,
            vec![
                CollectionItemInput {
                    tech_file_id: files[0].id,
                    display_order: None,
                    section: Some("base_views".into()),
                },
                CollectionItemInput {
                    tech_file_id: files[1].id,
                    display_order: None,
                    section: Some("closeups".into()),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        added.iter().map(|i| i.display_order).collect::<Vec<_>>(),
        vec![0, 1]
    );
    store
        .add_files_to_collection(
            me,
            collection.id,
            vec![CollectionItemInput {
                tech_file_id: files[2].id,
                display_order: None,
                section: Some("sketches".into()),
            }],
        )
        .await
        .unwrap();
    let full = store
        .get_collection_with_files(me, collection.id)
        .await
        .unwrap();
    assert_eq!(full.items.len(), 3);
    assert_eq!(
        full.items
            .iter()
            .map(|(item, file)| (item.display_order, item.section.clone().unwrap(), file.id))
            .collect::<Vec<_>>(),
        vec![
            (0, "base_views".into(), files[0].id),
            (1, "closeups".into(), files[1].id),
            (2, "sketches".into(), files[2].id)
        ]
    );
    assert_eq!(
        full.collection.total_credits, 4,
        "the database keeps the total equal to its files' credits"
    );
    // Completing a file with more credits updates the total by itself.
    store
        .complete_tech_file(
            me,
            files[1].id,
            FileChanges {
                credits_used: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_collection(me, collection.id)
            .await
            .unwrap()
            .total_credits,
        6
    );
    assert_eq!(
        store
            .update_collection_credits(me, collection.id)
            .await
            .unwrap()
            .total_credits,
        6
    );
    let progress = store
        .update_collection_progress(
            me,
            collection.id,
            CollectionProgress {
                completion_percentage: 50,
                status: CollectionStatus::InProgress,
                planned_steps: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (progress.completion_percentage, progress.completed_at),
        (50, None)
    );
    let done = store
        .update_collection_progress(
            me,
            collection.id,
            CollectionProgress {
                completion_percentage: 100,
                status: CollectionStatus::Completed,
                planned_steps: None,
            },
        )
        .await
        .unwrap();
    assert!(done.completed_at.is_some());
    let bad = store
        .update_collection_progress(
            me,
            collection.id,
            CollectionProgress {
                completion_percentage: 101,
                status: CollectionStatus::Completed,
                planned_steps: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::Invalid(ref e) if e.field == "completion_percentage"));
    let listed = store.list_collections(me, Some(product)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        store
            .list_collections(me, Some(Uuid::new_v4()))
            .await
            .unwrap()
            .is_empty()
    );
    let unknown = store
        .add_files_to_collection(
            me,
            collection.id,
            vec![CollectionItemInput {
                tech_file_id: Uuid::new_v4(),
                display_order: None,
                section: None,
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(unknown, StoreError::NotFound { .. }));
}

async fn removing_files_from_a_collection_recounts_credits_and_is_idempotent(
    store: Arc<dyn TechFileStore>,
) {
    let alice = user();
    let bob = user();
    let (a, b) = (Principal::User(alice), Principal::User(bob));
    let product = Uuid::new_v4();
    let collection = store
        .create_tech_file_collection(
            a,
            NewCollection::new(alice, product, "pack", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    let mut files = Vec::new();
    for credits in [1, 2, 4] {
        let mut file = new_file(alice, product, FileType::Closeup);
        file.credits_used = credits;
        files.push(store.create_tech_file(a, file).await.unwrap());
    }
    store
        .add_files_to_collection(
            a,
            collection.id,
            files
                .iter()
                .map(|file| CollectionItemInput {
                    tech_file_id: file.id,
                    display_order: None,
                    section: Some("closeups".into()),
                })
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_collection(a, collection.id)
            .await
            .unwrap()
            .total_credits,
        7
    );

    // A file that is not in the collection is skipped; the removed items come back in the
    // order given.
    let not_in = Uuid::new_v4();
    let removed = store
        .remove_files_from_collection(a, collection.id, vec![files[2].id, not_in, files[0].id])
        .await
        .unwrap();
    assert_eq!(
        removed
            .iter()
            .map(|item| (item.tech_file_id, item.collection_id, item.section.clone()))
            .collect::<Vec<_>>(),
        vec![
            (files[2].id, collection.id, Some("closeups".into())),
            (files[0].id, collection.id, Some("closeups".into()))
        ]
    );
    let left = store
        .get_collection_with_files(a, collection.id)
        .await
        .unwrap();
    assert_eq!(
        left.items
            .iter()
            .map(|(_, file)| file.id)
            .collect::<Vec<_>>(),
        vec![files[1].id]
    );
    assert_eq!(
        left.collection.total_credits, 2,
        "the database recounts the total"
    );
    // The files themselves stay.
    assert_eq!(
        store.get_tech_file_by_id(a, files[0].id).await.unwrap(),
        files[0]
    );

    // Removing again changes nothing.
    let again = store
        .remove_files_from_collection(a, collection.id, vec![files[2].id, files[0].id])
        .await
        .unwrap();
    assert!(again.is_empty());
    assert!(
        store
            .remove_files_from_collection(a, collection.id, Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_collection(a, collection.id)
            .await
            .unwrap()
            .total_credits,
        2
    );

    // Bob cannot take files out of Alice's collection, and her files are not in his.
    let refused = store
        .remove_files_from_collection(b, collection.id, vec![files[1].id])
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::NotFound {
                entity: "collection",
                ..
            }
        ),
        "{refused}"
    );
    let bobs = store
        .create_tech_file_collection(
            b,
            NewCollection::new(bob, product, "bob's", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    assert!(
        store
            .remove_files_from_collection(b, bobs.id, vec![files[1].id])
            .await
            .unwrap()
            .is_empty()
    );
    let unchanged = store
        .get_collection_with_files(a, collection.id)
        .await
        .unwrap();
    assert_eq!(unchanged.items.len(), 1);
    assert_eq!(unchanged.collection.total_credits, 2);
    let missing = store
        .remove_files_from_collection(a, Uuid::new_v4(), vec![files[1].id])
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");

    // The service role may tidy anyone's collection.
    let by_service = store
        .remove_files_from_collection(Principal::Service, collection.id, vec![files[1].id])
        .await
        .unwrap();
    assert_eq!(by_service.len(), 1);
    assert_eq!(
        store
            .get_collection(a, collection.id)
            .await
            .unwrap()
            .total_credits,
        0
    );
}

async fn batch_files_and_product_stats(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let product = Uuid::new_v4();
    let batch = Uuid::new_v4();
    let mut made = Vec::new();
    for (file_type, status, credits) in [
        (FileType::BaseView, FileStatus::Completed, 1),
        (FileType::Closeup, FileStatus::Completed, 1),
        (FileType::Closeup, FileStatus::Failed, 0),
        (FileType::Sketch, FileStatus::Completed, 1),
    ] {
        let mut file = new_file(owner, product, file_type);
        file.status = status;
        file.credits_used = credits;
        file.generation_batch_id = Some(batch);
        made.push(store.create_tech_file(me, file).await.unwrap().id);
    }
    store
        .create_tech_file_version(
            me,
            made[0],
            FileChanges {
                credits_used: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let batch_files = store.get_batch_files(me, batch).await.unwrap();
    assert_eq!(batch_files.len(), 5, "the new version keeps its batch");
    assert_eq!(
        batch_files.iter().take(4).map(|f| f.id).collect::<Vec<_>>(),
        made
    );
    let stats = store
        .get_product_generation_stats(me, product)
        .await
        .unwrap();
    assert_eq!(stats.total_files, 5);
    assert_eq!(stats.latest_files, 4);
    assert_eq!(stats.total_credits_used, 4);
    assert_eq!(stats.files_by_type.get("closeup"), Some(&2));
    assert_eq!(stats.files_by_type.get("base_view"), Some(&2));
    assert_eq!(stats.files_by_status.get("failed"), Some(&1));
    assert_eq!(stats.files_by_status.get("completed"), Some(&4));
    let empty = store
        .get_product_generation_stats(me, Uuid::new_v4())
        .await
        .unwrap();
    assert_eq!(empty.total_files, 0);
}

async fn monitoring_report_counts_recent_activity(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let product = Uuid::new_v4();
    for credits in [1, 2] {
        let mut file = new_file(owner, product, FileType::Closeup);
        file.credits_used = credits;
        file.status = FileStatus::Completed;
        store.create_tech_file(me, file).await.unwrap();
    }
    let collection = store
        .create_tech_file_collection(
            me,
            NewCollection::new(owner, product, "pack", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    store
        .update_collection_progress(
            me,
            collection.id,
            CollectionProgress {
                completion_percentage: 40,
                status: CollectionStatus::InProgress,
                planned_steps: None,
            },
        )
        .await
        .unwrap();
    let report = store.monitoring_report(me).await.unwrap();
    assert_eq!(report.recent_files.len(), 1);
    assert_eq!(
        (
            report.recent_files[0].file_type.as_str(),
            report.recent_files[0].status.as_str(),
            report.recent_files[0].count
        ),
        ("closeup", "completed", 2)
    );
    assert_eq!(report.credits_by_product.len(), 1);
    assert_eq!(
        (
            report.credits_by_product[0].product_idea_id,
            report.credits_by_product[0].total_credits,
            report.credits_by_product[0].file_count
        ),
        (product, 3, 2)
    );
    assert_eq!(report.collection_completion.len(), 1);
    assert_eq!(report.collection_completion[0].status, "in_progress");
    assert!((report.collection_completion[0].avg_completion - 40.0).abs() < 1e-9);
    // Another user's report is empty: the queries are scoped like everything else.
    let theirs = store
        .monitoring_report(Principal::User(user()))
        .await
        .unwrap();
    assert!(
        theirs.recent_files.is_empty()
            && theirs.credits_by_product.is_empty()
            && theirs.collection_completion.is_empty()
    );
    // The service role sees everyone's.
    assert!(
        !store
            .monitoring_report(Principal::Service)
            .await
            .unwrap()
            .recent_files
            .is_empty()
    );
}

async fn users_are_isolated_from_each_other(store: Arc<dyn TechFileStore>) {
    let alice = user();
    let bob = user();
    let (a, b) = (Principal::User(alice), Principal::User(bob));
    let product = Uuid::new_v4();
    let mut file = new_file(alice, product, FileType::BaseView);
    file.credits_used = 1;
    file.generation_batch_id = Some(Uuid::new_v4());
    let file = store.create_tech_file(a, file).await.unwrap();
    let collection = store
        .create_tech_file_collection(
            a,
            NewCollection::new(alice, product, "alice's", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    let not_found =
        |result: Result<_, StoreError>| matches!(result, Err(StoreError::NotFound { .. }));
    assert!(not_found(
        store.get_tech_file_by_id(b, file.id).await.map(|_| ())
    ));
    assert!(
        store
            .get_latest_tech_files(b, &FileFilter::default())
            .await
            .unwrap()
            .files
            .is_empty()
    );
    assert!(not_found(
        store
            .update_tech_file_status(b, file.id, FileStatus::Failed, None)
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        store
            .create_tech_file_version(b, file.id, FileChanges::default())
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        store.archive_tech_file(b, file.id).await.map(|_| ())
    ));
    assert!(not_found(
        store
            .complete_tech_file(b, file.id, FileChanges::default())
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        store.get_file_history(b, file.id).await.map(|_| ())
    ));
    assert!(not_found(
        store.get_collection(b, collection.id).await.map(|_| ())
    ));
    assert!(store.list_collections(b, None).await.unwrap().is_empty());
    assert!(
        store
            .get_batch_files(b, file.generation_batch_id.unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_product_generation_stats(b, product)
            .await
            .unwrap()
            .total_files,
        0
    );
    // Bob cannot put Alice's file into his own collection, nor touch hers.
    let bobs = store
        .create_tech_file_collection(
            b,
            NewCollection::new(bob, product, "bob's", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    let item = CollectionItemInput {
        tech_file_id: file.id,
        display_order: None,
        section: None,
    };
    assert!(not_found(
        store
            .add_files_to_collection(b, bobs.id, vec![item.clone()])
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        store
            .add_files_to_collection(b, collection.id, vec![item])
            .await
            .map(|_| ())
    ));
    assert!(not_found(
        store
            .update_collection_progress(
                b,
                collection.id,
                CollectionProgress {
                    completion_percentage: 1,
                    status: CollectionStatus::Failed,
                    planned_steps: None,
                }
            )
            .await
            .map(|_| ())
    ));
    // Bob cannot create rows in Alice's name.
    let forged = store
        .create_tech_file(b, new_file(alice, product, FileType::BaseView))
        .await
        .unwrap_err();
    assert!(matches!(forged, StoreError::Forbidden(_)), "{forged}");
    // Nothing of Alice's changed.
    let unchanged = store.get_tech_file_by_id(a, file.id).await.unwrap();
    assert_eq!(unchanged, file);
    assert_eq!(
        store.get_collection(a, collection.id).await.unwrap().status,
        CollectionStatus::Pending
    );
    // The service role sees both.
    assert_eq!(
        store
            .get_tech_file_by_id(Principal::Service, file.id)
            .await
            .unwrap()
            .id,
        file.id
    );
}

async fn bad_input_is_refused_and_nothing_is_written(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let product = Uuid::new_v4();
    let field_of = |error: StoreError| match error {
        StoreError::Invalid(error) => error.field,
        other => panic!("expected invalid input, got {other}"),
    };
    let mut negative = new_file(owner, product, FileType::BaseView);
    negative.credits_used = -1;
    assert_eq!(
        field_of(store.create_tech_file(me, negative).await.unwrap_err()),
        "credits_used"
    );
    let mut score = new_file(owner, product, FileType::BaseView);
    score.confidence_score = Some(1.5);
    assert_eq!(
        field_of(store.create_tech_file(me, score).await.unwrap_err()),
        "confidence_score"
    );
    let mut empty_url = new_file(owner, product, FileType::BaseView);
    empty_url.file_url = Some(String::new());
    assert_eq!(
        field_of(store.create_tech_file(me, empty_url).await.unwrap_err()),
        "file_url"
    );
    let mut huge = new_file(owner, product, FileType::BaseView);
    huge.analysis_data = json!({ "blob": "x".repeat(MAX_JSON_BYTES + 1) });
    assert_eq!(
        field_of(store.create_tech_file(me, huge).await.unwrap_err()),
        "analysis_data"
    );
    let unknown: Result<FileType, _> = "pdf".parse();
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("expected one of base_view")
    );
    let v1 = store
        .create_tech_file(me, new_file(owner, product, FileType::BaseView))
        .await
        .unwrap();
    let bad_version = FileChanges {
        quality_score: Some(-0.1),
        ..Default::default()
    };
    assert_eq!(
        field_of(
            store
                .create_tech_file_version(me, v1.id, bad_version)
                .await
                .unwrap_err()
        ),
        "quality_score"
    );
    let empty_name = NewCollection::new(owner, product, "  ", CollectionType::TechPackV2);
    assert_eq!(
        field_of(
            store
                .create_tech_file_collection(me, empty_name)
                .await
                .unwrap_err()
        ),
        "name"
    );
    let unknown_id = store
        .create_tech_file_version(me, Uuid::new_v4(), FileChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(unknown_id, StoreError::NotFound { .. }));
    let stats = store
        .get_product_generation_stats(me, product)
        .await
        .unwrap();
    assert_eq!(stats.total_files, 1, "only the one valid file was written");
    assert_eq!(store.get_file_history(me, v1.id).await.unwrap().len(), 1);
}

async fn legacy_analyses_round_trip(store: Arc<dyn TechFileStore>) {
    let owner = user();
    let me = Principal::User(owner);
    let revision = Uuid::new_v4();
    let mut rows = Vec::new();
    for (hash, value) in [("aa", 1), ("bb", 2)] {
        rows.push(
            store
                .write_legacy_analysis(
                    me,
                    NewLegacyAnalysis {
                        user_id: owner,
                        product_idea_id: Uuid::new_v4(),
                        revision_id: revision,
                        view_type: "front".into(),
                        image_url: Some("legacy/front.jpg".into()),
                        image_sha256: Some(hash.repeat(32)),
                        analysis_data: json!({ "value": value }),
                        model_used: Some("gpt-4o".into()),
                        credits_used: 1,
                    },
                )
                .await
                .unwrap(),
        );
    }
    let newest = store
        .find_legacy_analysis(me, revision, "front", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newest.id, rows[1].id);
    let by_hash = store
        .find_legacy_analysis(me, revision, "front", Some(&"aa".repeat(32)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_hash.analysis_data, json!({"value": 1}));
    assert!(
        store
            .find_legacy_analysis(me, revision, "back", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_legacy_analysis(Principal::User(user()), revision, "front", None)
            .await
            .unwrap()
            .is_none()
    );
    let first_page = store.list_legacy_analyses(me, None, 1).await.unwrap();
    assert_eq!(
        first_page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rows[0].id]
    );
    let second_page = store
        .list_legacy_analyses(me, Some(rows[0].id), 10)
        .await
        .unwrap();
    assert_eq!(
        second_page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rows[1].id]
    );
}

async fn migrations_go_down_and_up_again_and_verify(store: Arc<dyn TechFileStore>) {
    assert!(store.verify_schema().await.unwrap().is_complete());
    // Rollback works with data in place, versions referencing their parents included.
    let owner = user();
    let me = Principal::User(owner);
    let v1 = store
        .create_tech_file(me, new_file(owner, Uuid::new_v4(), FileType::Sketch))
        .await
        .unwrap();
    store
        .create_tech_file_version(me, v1.id, FileChanges::default())
        .await
        .unwrap();
    assert!(
        store.migrate_up().await.unwrap().is_empty(),
        "applying twice is a no-op"
    );
    assert!(
        store
            .migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied)
    );
    let reverted = store.migrate_down().await.unwrap();
    assert!(!reverted.is_empty());
    let report = store.verify_schema().await.unwrap();
    assert!(
        report.missing.iter().any(|m| m == "table tech_files"),
        "{:?}",
        report.missing
    );
    assert!(
        store
            .migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| !m.applied)
    );
    assert!(!store.migrate_up().await.unwrap().is_empty());
    assert!(store.verify_schema().await.unwrap().is_complete());
    store
        .create_tech_file(
            Principal::User(owner),
            new_file(owner, Uuid::new_v4(), FileType::Sketch),
        )
        .await
        .unwrap();
}
