//! The store queries behind cleanup and fsck, on SQLite and PostgreSQL: blob references by key,
//! the key lock that keeps writers out while a blob is deleted, and the rows fsck verifies.

use std::sync::Arc;
use std::time::Duration;

use techpack_model::{FileType, NewTechFile, Principal, TechFile};
use techpack_store::on_both_backends;
use techpack_store::{BlobReferences, NewLegacyAnalysis, TechFileStore};
use uuid::Uuid;

async fn file_at(store: &dyn TechFileStore, owner: Uuid, key: &str) -> TechFile {
    let mut file = NewTechFile::new(owner, Uuid::new_v4(), FileType::BaseView);
    file.file_url = Some(key.to_owned());
    file.content_size = Some(3);
    store
        .create_tech_file(Principal::User(owner), file)
        .await
        .unwrap()
}

async fn all_references(
    store: &dyn TechFileStore,
    principal: Principal,
    page: u32,
) -> Vec<BlobReferences> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let found = store
            .list_blob_references(principal, after.as_deref(), page)
            .await
            .unwrap();
        assert!(found.len() <= page as usize);
        after = found.last().map(|r| r.key.clone());
        let done = found.len() < page as usize;
        all.extend(found);
        if done {
            return all;
        }
    }
}

async fn references_count_live_archived_and_legacy(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let other = Uuid::new_v4();
    let me = Principal::User(owner);
    let key = |n: u8| format!("{owner}/k{n}");
    // k1: two live rows; k2: one archived; k3: one live, one archived; k4: legacy only.
    file_at(store.as_ref(), owner, &key(1)).await;
    file_at(store.as_ref(), owner, &key(1)).await;
    let archived = file_at(store.as_ref(), owner, &key(2)).await;
    let archived = store.archive_tech_file(me, archived.id).await.unwrap();
    file_at(store.as_ref(), owner, &key(3)).await;
    let archived3 = file_at(store.as_ref(), owner, &key(3)).await;
    store.archive_tech_file(me, archived3.id).await.unwrap();
    store
        .write_legacy_analysis(
            me,
            NewLegacyAnalysis {
                user_id: owner,
                product_idea_id: Uuid::new_v4(),
                revision_id: Uuid::new_v4(),
                view_type: "front".into(),
                image_url: Some(key(4)),
                image_sha256: None,
                analysis_data: serde_json::json!({}),
                model_used: None,
                credits_used: 0,
            },
        )
        .await
        .unwrap();
    // A row without a blob is no reference; another user's rows are theirs.
    store
        .create_tech_file(
            me,
            NewTechFile::new(owner, Uuid::new_v4(), FileType::Sketch),
        )
        .await
        .unwrap();
    file_at(store.as_ref(), other, &format!("{other}/theirs")).await;

    let mine = all_references(store.as_ref(), me, 2).await;
    assert_eq!(
        mine.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        (1..=4).map(key).collect::<Vec<_>>()
    );
    let by_key = |n: u8| mine.iter().find(|r| r.key == key(n)).unwrap().clone();
    assert_eq!(
        (
            by_key(1).live_rows,
            by_key(1).archived_rows,
            by_key(1).last_archived_at
        ),
        (2, 0, None)
    );
    assert_eq!((by_key(2).live_rows, by_key(2).archived_rows), (0, 1));
    // Timestamps round-trip at the store's precision (milliseconds on SQLite).
    let archived_at = by_key(2).last_archived_at.unwrap();
    assert!((archived_at - archived.updated_at).num_milliseconds().abs() <= 1);
    assert!(by_key(2).only_archived_before(archived.updated_at + chrono::Duration::seconds(1)));
    assert!(!by_key(2).only_archived_before(archived.updated_at - chrono::Duration::seconds(1)));
    assert_eq!((by_key(3).live_rows, by_key(3).archived_rows), (1, 1));
    assert!(!by_key(3).only_archived_before(chrono::Utc::now() + chrono::Duration::days(1)));
    assert_eq!((by_key(4).legacy_rows, by_key(4).live_rows), (1, 0));
    assert!(!by_key(4).is_unreferenced());

    // The service role sees every owner's keys, in one key order, page by page.
    let everyone = all_references(store.as_ref(), Principal::Service, 1).await;
    assert!(everyone.len() >= 5);
    assert!(everyone.windows(2).all(|w| w[0].key < w[1].key));
    assert!(everyone.iter().any(|r| r.key == format!("{other}/theirs")));
}

async fn key_lock_keeps_writers_out(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let key = format!("{owner}/locked");
    let writer_store = store.clone();
    let writer_key = key.clone();
    let writer = std::sync::Mutex::new(None);
    let writer_slot = &writer;
    store
        .with_blob_key_locked(
            Principal::Service,
            &key,
            Box::new(move |references| {
                Box::pin(async move {
                    assert_eq!(references, BlobReferences::none(&writer_key));
                    let handle = tokio::spawn(async move {
                        file_at(writer_store.as_ref(), owner, &writer_key).await
                    });
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    assert!(
                        !handle.is_finished(),
                        "a row was written while its key was locked"
                    );
                    *writer_slot.lock().unwrap() = Some(handle);
                })
            }),
        )
        .await
        .unwrap();
    let handle = writer.lock().unwrap().take().unwrap();
    let row = tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.file_url.as_deref(), Some(key.as_str()));

    // Once the row is in, the lock's action sees it.
    let seen = std::sync::Mutex::new(None);
    let seen_slot = &seen;
    store
        .with_blob_key_locked(
            Principal::Service,
            &key,
            Box::new(move |references| {
                Box::pin(async move {
                    *seen_slot.lock().unwrap() = Some(references);
                })
            }),
        )
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().as_ref().unwrap().live_rows, 1);
}

async fn files_with_blobs_skip_archived_and_page(store: Arc<dyn TechFileStore>) {
    let owner = Uuid::new_v4();
    let me = Principal::User(owner);
    let mut live = Vec::new();
    for n in 0..5 {
        live.push(
            file_at(store.as_ref(), owner, &format!("{owner}/f{n}"))
                .await
                .id,
        );
    }
    let archived = file_at(store.as_ref(), owner, &format!("{owner}/gone")).await;
    store.archive_tech_file(me, archived.id).await.unwrap();
    store
        .create_tech_file(
            me,
            NewTechFile::new(owner, Uuid::new_v4(), FileType::Sketch),
        )
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_files_with_blobs(me, after, 2).await.unwrap();
        after = page.last().map(|f| f.id);
        let done = page.len() < 2;
        seen.extend(page.into_iter().map(|f| f.id));
        if done {
            break;
        }
    }
    live.sort();
    assert_eq!(seen, live);
}

on_both_backends!(
    references_count_live_archived_and_legacy,
    key_lock_keeps_writers_out,
    files_with_blobs_skip_archived_and_page,
);
