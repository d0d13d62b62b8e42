//! PostgreSQL only: row level security holds for plain SQL as role `authenticated`, the way a
//! Supabase client reaches the tables, and `migrate verify` reports a dropped index.

use sqlx::{Connection, PgConnection};
use techpack_model::{FileType, NewTechFile, Principal};
use techpack_store::TechFileStore;
use techpack_store::test_support::TestDatabase;
use uuid::Uuid;

async fn as_user(conn: &mut PgConnection, user: Uuid) -> sqlx::Transaction<'_, sqlx::Postgres> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true), \
         set_config('request.jwt.claim.sub', '', true)",
    )
    .bind(serde_json::json!({ "sub": user, "role": "authenticated" }).to_string())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx
}

#[tokio::test]
async fn plain_sql_as_another_user_sees_and_changes_nothing() {
    let db = TestDatabase::create().await;
    let store = db.store().await.unwrap();
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let mut file = NewTechFile::new(alice, Uuid::new_v4(), FileType::BaseView);
    file.credits_used = 1;
    let file = store
        .create_tech_file(Principal::User(alice), file)
        .await
        .unwrap();

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let mut tx = as_user(&mut conn, bob).await;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM tech_files")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        seen, 0,
        "bob sees none of alice's rows (claims read from request.jwt.claims)"
    );
    let updated = sqlx::query("UPDATE tech_files SET status = 'failed' WHERE id = $1")
        .bind(file.id)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 0);
    let versioned = sqlx::query("SELECT create_tech_file_version($1)")
        .bind(file.id)
        .execute(&mut *tx)
        .await;
    assert!(versioned.unwrap_err().to_string().contains("not found"));
    tx.rollback().await.unwrap();

    let mut tx = as_user(&mut conn, bob).await;
    let forged = sqlx::query(
        "INSERT INTO tech_files (product_idea_id, user_id, file_type) VALUES ($1, $2, 'sketch')",
    )
    .bind(Uuid::new_v4())
    .bind(alice)
    .execute(&mut *tx)
    .await;
    // Refused before row level security is even asked: API users insert no files at all
    // (20261201000010), theirs or anyone's.
    let refused = forged.unwrap_err().to_string();
    assert!(
        refused.contains("permission denied") || refused.contains("row-level security"),
        "{refused}"
    );
    tx.rollback().await.unwrap();

    let mut tx = as_user(&mut conn, bob).await;
    let deleted = sqlx::query("DELETE FROM tech_files")
        .execute(&mut *tx)
        .await;
    assert!(
        deleted.is_err(),
        "users cannot delete files at all: they archive them"
    );
    tx.rollback().await.unwrap();

    // Alice, through plain SQL, sees her file and can version it with the database function.
    let mut tx = as_user(&mut conn, alice).await;
    let version: i32 =
        sqlx::query_scalar("SELECT (create_tech_file_version($1, '{}'::jsonb, 'via sql')).version")
            .bind(file.id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(version, 2);
    let snapshots: i64 = sqlx::query_scalar("SELECT count(*) FROM tech_file_versions")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        snapshots, 1,
        "the trigger archived version 1 despite RLS on the versions table"
    );
    let flipped = sqlx::query("UPDATE tech_files SET is_latest = true WHERE version = 1")
        .execute(&mut *tx)
        .await;
    assert!(
        flipped.is_err(),
        "is_latest changes only through a new version"
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn verify_reports_a_dropped_index() {
    let db = TestDatabase::create().await;
    let store = db.store().await.unwrap();
    assert!(store.verify_schema().await.unwrap().is_complete());
    sqlx::query("DROP INDEX tech_files_status_idx")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DROP POLICY tech_files_update_own ON tech_files")
        .execute(store.pool())
        .await
        .unwrap();
    let report = store.verify_schema().await.unwrap();
    assert_eq!(
        report.missing,
        vec![
            "index tech_files_status_idx".to_string(),
            "policy tech_files_update_own".to_string()
        ]
    );
}
