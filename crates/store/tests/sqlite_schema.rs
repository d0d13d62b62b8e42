//! SQLite only: verify reports a dropped index, and the database itself refuses what the
//! store would never send (a second latest version, a forged version number).

use techpack_model::{FileType, NewTechFile, Principal};
use techpack_store::{SqliteStore, TechFileStore};
use uuid::Uuid;

#[tokio::test]
async fn verify_reports_a_dropped_index_and_triggers_guard_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("nested/dir/t.db"))
        .await
        .unwrap();
    store.migrate_up().await.unwrap();
    let owner = Uuid::new_v4();
    let file = store
        .create_tech_file(
            Principal::User(owner),
            NewTechFile::new(owner, Uuid::new_v4(), FileType::Sketch),
        )
        .await
        .unwrap();
    let forged = sqlx::query(
        "INSERT INTO tech_files (id, lineage_id, product_idea_id, user_id, file_type, version, parent_file_id) \
         VALUES (?1, ?2, ?3, ?4, 'sketch', 5, ?2)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(file.id.to_string())
    .bind(file.product_idea_id.to_string())
    .bind(owner.to_string())
    .execute(store.pool())
    .await;
    assert!(
        forged
            .unwrap_err()
            .to_string()
            .contains("techpack:conflict")
    );
    let revived = sqlx::query("UPDATE tech_files SET version = 2")
        .execute(store.pool())
        .await;
    assert!(
        revived
            .unwrap_err()
            .to_string()
            .contains("techpack:invalid")
    );

    sqlx::query("DROP INDEX tech_files_status_idx")
        .execute(store.pool())
        .await
        .unwrap();
    let report = store.verify_schema().await.unwrap();
    assert_eq!(
        report.missing,
        vec!["index tech_files_status_idx".to_string()]
    );
}

#[tokio::test]
async fn unknown_database_schemes_are_refused() {
    let error = techpack_store::open_store("mysql://localhost/db")
        .await
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("unsupported database URL scheme 'mysql'")
    );
}
