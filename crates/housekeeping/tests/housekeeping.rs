//! Cleanup, concurrent uploads during cleanup, and fsck, on SQLite and PostgreSQL with blobs in
//! a local folder (so tests can age and corrupt them on disk).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration as StdDuration, SystemTime};

use bytes::Bytes;
use chrono::{Duration, Utc};
use techpack_blobs::{BlobStore, BlobStoreOptions};
use techpack_housekeeping::upload::{UploadRequest, UploadSource, store_file};
use techpack_housekeeping::{CleanupOptions, CleanupReason, FsckProblem, cleanup, fsck};
use techpack_model::{FileType, Principal};
use techpack_store::test_support::TestDatabase;
use techpack_store::{NewLegacyAnalysis, SqliteStore, TechFileStore};
use uuid::Uuid;

/// A store, a file:// blob store, and what keeps them alive.
struct Harness {
    store: Arc<dyn TechFileStore>,
    blobs: BlobStore,
    blob_dir: PathBuf,
    _dir: tempfile::TempDir,
    _postgres: Option<TestDatabase>,
}

async fn harness(postgres: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let (store, db): (Arc<dyn TechFileStore>, _) = if postgres {
        let db = TestDatabase::create().await;
        (Arc::new(db.store().await.unwrap()), Some(db))
    } else {
        let store = SqliteStore::open(&dir.path().join("techpack.db"))
            .await
            .unwrap();
        store.migrate_up().await.unwrap();
        (Arc::new(store), None)
    };
    let blob_dir = dir.path().join("blobs");
    let blobs = BlobStore::from_url(
        &format!("file://{}", blob_dir.display()),
        BlobStoreOptions::default(),
    )
    .unwrap();
    Harness {
        store,
        blobs,
        blob_dir,
        _dir: dir,
        _postgres: db,
    }
}

fn request(owner: Uuid) -> UploadRequest {
    UploadRequest {
        owner,
        product_idea_id: Uuid::new_v4(),
        revision_id: None,
        file_type: FileType::BaseView,
        view_type: Some("front".into()),
        file_category: None,
    }
}

/// Distinct small JSON documents (a type the blob store accepts).
fn content(label: &str) -> UploadSource {
    UploadSource::Bytes(Bytes::from(format!(
        "{{\"label\": \"{label}\", \"pad\": \"{}\"}}",
        Uuid::new_v4()
    )))
}

/// Sets a blob's modification time `days` into the past, as if written then.
fn age(blob_dir: &Path, key: &str, days: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(blob_dir.join(key))
        .unwrap();
    file.set_modified(SystemTime::now() - StdDuration::from_secs(days * 86_400))
        .unwrap();
}

async fn exists(blobs: &BlobStore, key: &str) -> bool {
    blobs.exists(key).await.unwrap()
}

async fn cleanup_rules(h: Harness) {
    let owner = Uuid::new_v4();
    let me = Principal::User(owner);
    let store = h.store.as_ref();

    // Archived long ago: goes.
    let old = store_file(store, &h.blobs, me, &content("old"), request(owner))
        .await
        .unwrap();
    let old_archived = store.archive_tech_file(me, old.id).await.unwrap();
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    // Archived recently: stays.
    let recent = store_file(store, &h.blobs, me, &content("recent"), request(owner))
        .await
        .unwrap();
    let recent_archived = store.archive_tech_file(me, recent.id).await.unwrap();
    assert!(old_archived.updated_at < recent_archived.updated_at);
    // One blob, two rows: the archived one must not take the live one's blob along.
    let shared_source = content("shared");
    let shared_a = store_file(store, &h.blobs, me, &shared_source, request(owner))
        .await
        .unwrap();
    let shared_b = store_file(store, &h.blobs, me, &shared_source, request(owner))
        .await
        .unwrap();
    assert_eq!(shared_a.file_url, shared_b.file_url);
    store.archive_tech_file(me, shared_a.id).await.unwrap();
    // Only a legacy analysis row points at this one.
    let legacy_key = h
        .blobs
        .put_bytes(owner, Bytes::from_static(b"{\"legacy\": true}"))
        .await
        .unwrap()
        .key;
    store
        .write_legacy_analysis(
            me,
            NewLegacyAnalysis {
                user_id: owner,
                product_idea_id: Uuid::new_v4(),
                revision_id: Uuid::new_v4(),
                view_type: "front".into(),
                image_url: Some(legacy_key.clone()),
                image_sha256: None,
                analysis_data: serde_json::json!({}),
                model_used: None,
                credits_used: 0,
            },
        )
        .await
        .unwrap();
    // Orphans: one old, one young; and an abandoned temporary upload.
    let orphan_old = h
        .blobs
        .put_bytes(owner, Bytes::from_static(b"{\"orphan\": \"old\"}"))
        .await
        .unwrap();
    let orphan_young = h
        .blobs
        .put_bytes(owner, Bytes::from_static(b"{\"orphan\": \"young\"}"))
        .await
        .unwrap();
    let temp_key = format!("{owner}/tmp/{}", Uuid::new_v4());
    std::fs::create_dir_all(h.blob_dir.join(format!("{owner}/tmp"))).unwrap();
    std::fs::write(h.blob_dir.join(&temp_key), b"half an upload").unwrap();

    let old_key = old.file_url.clone().unwrap();
    let recent_key = recent.file_url.clone().unwrap();
    let shared_key = shared_a.file_url.clone().unwrap();
    for key in [
        &old_key,
        &recent_key,
        &shared_key,
        &legacy_key,
        &orphan_old.key,
        &temp_key,
    ] {
        age(&h.blob_dir, key, 2);
    }

    // "Now" sits 30 days after a moment between the two archive times, so with a 30-day
    // threshold one archive is old and the other recent; a grace just over 30 days makes the
    // blobs aged by two days old and the untouched one young.
    let between =
        old_archived.updated_at + (recent_archived.updated_at - old_archived.updated_at) / 2;
    let options = CleanupOptions {
        archived_older_than: Duration::days(30),
        orphan_grace: Duration::days(30) + Duration::hours(1),
        dry_run: true,
        now: between + Duration::days(30),
    };
    let expected_keys = {
        let mut keys = vec![old_key.clone(), orphan_old.key.clone(), temp_key.clone()];
        keys.sort();
        keys
    };
    let expected_bytes =
        old.content_size.unwrap() as u64 + orphan_old.size + b"half an upload".len() as u64;

    let dry = cleanup(store, &h.blobs, &options).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        dry.deleted
            .iter()
            .map(|item| item.key.clone())
            .collect::<Vec<_>>(),
        expected_keys
    );
    assert_eq!(dry.bytes_freed, expected_bytes);
    for key in &expected_keys {
        assert!(exists(&h.blobs, key).await, "dry run deleted {key}");
    }

    let report = cleanup(
        store,
        &h.blobs,
        &CleanupOptions {
            dry_run: false,
            ..options.clone()
        },
    )
    .await
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        report
            .deleted
            .iter()
            .map(|item| item.key.clone())
            .collect::<Vec<_>>(),
        expected_keys
    );
    assert_eq!(report.bytes_freed, expected_bytes);
    let reason = |key: &str| {
        report
            .deleted
            .iter()
            .find(|item| item.key == key)
            .unwrap()
            .reason
    };
    assert_eq!(reason(&old_key), CleanupReason::ArchivedFile);
    assert_eq!(reason(&orphan_old.key), CleanupReason::Orphan);
    assert_eq!(reason(&temp_key), CleanupReason::StaleUpload);
    assert_eq!(
        report.kept_referenced, 3,
        "recent archive, shared and legacy blobs"
    );
    assert_eq!(report.kept_recent, 1, "the young orphan");
    for key in &expected_keys {
        assert!(!exists(&h.blobs, key).await, "{key} survived");
    }
    for key in [&recent_key, &shared_key, &legacy_key, &orphan_young.key] {
        assert!(exists(&h.blobs, key).await, "{key} was deleted");
    }
    // The live rows are intact.
    assert!(fsck(store, &h.blobs).await.unwrap().is_clean());
}

/// Uploads run while cleanup sweeps repeatedly. Half the contents being re-uploaded had old
/// archived rows and aged blobs, i.e. were due for deletion the moment the uploads began.
async fn concurrent_uploads_keep_their_blobs(h: Harness) {
    let owner = Uuid::new_v4();
    let me = Principal::User(owner);
    let store = h.store.clone();
    let mut due = Vec::new();
    for n in 0..16 {
        let source = content(&format!("due-{n}"));
        let file = store_file(store.as_ref(), &h.blobs, me, &source, request(owner))
            .await
            .unwrap();
        store.archive_tech_file(me, file.id).await.unwrap();
        age(&h.blob_dir, file.file_url.as_deref().unwrap(), 2);
        due.push((source, file.file_url.unwrap()));
    }
    let options = CleanupOptions {
        archived_older_than: Duration::zero(),
        orphan_grace: Duration::hours(1),
        dry_run: false,
        now: Utc::now(),
    };

    let blobs = h.blobs.clone();
    let uploads: Vec<_> = (0..4)
        .map(|worker| {
            let store = store.clone();
            let blobs = blobs.clone();
            let sources: Vec<UploadSource> = due
                .iter()
                .enumerate()
                .filter(|(n, _)| n % 2 == 0 && (n / 2) % 4 == worker)
                .map(|(_, (source, _))| source.clone())
                .chain((0..6).map(|n| content(&format!("new-{worker}-{n}"))))
                .collect();
            tokio::spawn(async move {
                let mut rows = Vec::new();
                for source in sources {
                    rows.push(
                        store_file(store.as_ref(), &blobs, me, &source, request(owner))
                            .await
                            .unwrap(),
                    );
                }
                rows
            })
        })
        .collect();
    let sweeper = {
        let store = store.clone();
        let blobs = blobs.clone();
        let options = options.clone();
        tokio::spawn(async move {
            let mut deleted = 0;
            for _ in 0..5 {
                let report = cleanup(
                    store.as_ref(),
                    &blobs,
                    &CleanupOptions {
                        now: Utc::now(),
                        ..options.clone()
                    },
                )
                .await
                .unwrap();
                assert!(report.failed.is_empty(), "{:?}", report.failed);
                deleted += report.deleted.len();
            }
            deleted
        })
    };
    let mut rows = Vec::new();
    for upload in uploads {
        rows.extend(upload.await.unwrap());
    }
    sweeper.await.unwrap();
    // One more sweep after the uploads: whatever is still due goes now.
    cleanup(
        store.as_ref(),
        &blobs,
        &CleanupOptions {
            now: Utc::now(),
            ..options.clone()
        },
    )
    .await
    .unwrap();

    assert_eq!(rows.len(), 8 + 24);
    for row in &rows {
        let key = row.file_url.as_deref().unwrap();
        assert!(
            exists(&blobs, key).await,
            "live row {} lost its blob {key}",
            row.id
        );
    }
    for (n, (_, key)) in due.iter().enumerate() {
        assert_eq!(
            exists(&blobs, key).await,
            n % 2 == 0,
            "due blob {n} ({key})"
        );
    }
    let report = fsck(store.as_ref(), &blobs).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.rows_checked, rows.len() as u64);
}

/// The worst interleaving, forced: cleanup holds the key's lock, has decided to delete, and the
/// upload's put lands just before the delete. The upload's row waits for the lock and its check
/// after the row puts the blob back.
async fn upload_repairs_blob_deleted_before_its_row(h: Harness) {
    let owner = Uuid::new_v4();
    let me = Principal::User(owner);
    let source = content("raced");
    let UploadSource::Bytes(bytes) = &source else {
        unreachable!()
    };
    let key = h.blobs.put_bytes(owner, bytes.clone()).await.unwrap().key;
    age(&h.blob_dir, &key, 2);
    let aged = h.blobs.head(&key).await.unwrap().last_modified;

    let store = h.store.clone();
    let blobs = h.blobs.clone();
    let upload_source = source.clone();
    let upload = std::sync::Mutex::new(None);
    let upload_slot = &upload;
    let key_ref = key.as_str();
    let blobs_ref = &h.blobs;
    h.store
        .with_blob_key_locked(
            Principal::Service,
            key_ref,
            Box::new(move |references| {
                Box::pin(async move {
                    assert!(references.is_unreferenced());
                    let handle = tokio::spawn(async move {
                        store_file(store.as_ref(), &blobs, me, &upload_source, request(owner)).await
                    });
                    // Wait for the upload's put (it rewrites the blob), then delete as a cleanup
                    // that looked at the blob a moment earlier would.
                    for _ in 0..1000 {
                        if blobs_ref.head(key_ref).await.unwrap().last_modified != aged {
                            break;
                        }
                        tokio::time::sleep(StdDuration::from_millis(10)).await;
                    }
                    assert_ne!(
                        blobs_ref.head(key_ref).await.unwrap().last_modified,
                        aged,
                        "the upload never put"
                    );
                    blobs_ref.delete(key_ref).await.unwrap();
                    tokio::time::sleep(StdDuration::from_millis(200)).await;
                    assert!(
                        !handle.is_finished(),
                        "the row went in while the key was locked"
                    );
                    *upload_slot.lock().unwrap() = Some(handle);
                })
            }),
        )
        .await
        .unwrap();
    let handle = upload.lock().unwrap().take().unwrap();
    let row = handle.await.unwrap().unwrap();
    assert_eq!(row.file_url.as_deref(), Some(key.as_str()));
    assert!(
        exists(&h.blobs, &key).await,
        "the upload did not put its blob back"
    );
    assert!(fsck(h.store.as_ref(), &h.blobs).await.unwrap().is_clean());
}

async fn fsck_finds_missing_and_corrupt_blobs(h: Harness) {
    let owner = Uuid::new_v4();
    let me = Principal::User(owner);
    let store = h.store.as_ref();
    let intact = store_file(store, &h.blobs, me, &content("intact"), request(owner))
        .await
        .unwrap();
    let deleted = store_file(store, &h.blobs, me, &content("deleted"), request(owner))
        .await
        .unwrap();
    let corrupt = store_file(store, &h.blobs, me, &content("corrupt"), request(owner))
        .await
        .unwrap();
    let archived = store_file(store, &h.blobs, me, &content("archived"), request(owner))
        .await
        .unwrap();
    store.archive_tech_file(me, archived.id).await.unwrap();
    assert!(fsck(store, &h.blobs).await.unwrap().is_clean());

    h.blobs
        .delete(deleted.file_url.as_deref().unwrap())
        .await
        .unwrap();
    // An archived row's blob may be gone on purpose (cleanup): not a finding.
    h.blobs
        .delete(archived.file_url.as_deref().unwrap())
        .await
        .unwrap();
    // Same size, different bytes: only the hash can tell.
    let corrupt_path = h.blob_dir.join(corrupt.file_url.as_deref().unwrap());
    let mut bytes = std::fs::read(&corrupt_path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    std::fs::write(&corrupt_path, &bytes).unwrap();

    let report = fsck(store, &h.blobs).await.unwrap();
    assert_eq!(report.rows_checked, 3);
    assert_eq!(report.findings.len(), 2, "{:?}", report.findings);
    let finding = |id: Uuid| {
        report
            .findings
            .iter()
            .find(|f| f.file_id == id)
            .map(|f| f.problem.clone())
    };
    assert_eq!(finding(deleted.id), Some(FsckProblem::Missing));
    match finding(corrupt.id) {
        Some(FsckProblem::WrongHash { recorded, actual }) => {
            assert_eq!(Some(recorded), corrupt.content_sha256);
            assert_ne!(actual, corrupt.content_sha256.unwrap());
        }
        other => panic!("expected a wrong hash, got {other:?}"),
    }
    assert_eq!(finding(intact.id), None);

    // A truncated blob is a wrong size.
    std::fs::write(&corrupt_path, &bytes[..bytes.len() - 1]).unwrap();
    let report = fsck(store, &h.blobs).await.unwrap();
    assert!(matches!(
        finding_of(&report, corrupt.id),
        Some(FsckProblem::WrongSize { recorded, actual }) if recorded as u64 == actual + 1
    ));
}

fn finding_of(report: &techpack_housekeeping::FsckReport, id: Uuid) -> Option<FsckProblem> {
    report
        .findings
        .iter()
        .find(|f| f.file_id == id)
        .map(|f| f.problem.clone())
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(super::harness(false).await).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(super::harness(true).await).await;
            })*
        }
    };
}

on_both_backends!(
    cleanup_rules,
    concurrent_uploads_keep_their_blobs,
    upload_repairs_blob_deleted_before_its_row,
    fsck_finds_missing_and_corrupt_blobs,
);
