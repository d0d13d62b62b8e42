//! PostgreSQL only: the pool settings reach every connection — the statement and
//! idle-in-transaction timeouts are the server's own settings on each session, a statement
//! past its limit is cancelled, migrations are not limited, and a connection the server ended
//! while it sat in the pool is replaced instead of failing the next request.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use techpack_model::{FileFilter, Principal};
use techpack_store::test_support::{OwnedDatabase, TestDatabase};
use techpack_store::{PoolSettings, PostgresStore, StoreError, TechFileStore};
use uuid::Uuid;

fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: 3,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Some(Duration::from_millis(300)),
        idle_in_transaction_timeout: Duration::from_secs(7),
        idle_timeout: None,
    }
}

#[tokio::test]
async fn every_session_carries_the_timeouts_and_a_slow_statement_is_cancelled() {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect_with(&db.url, &settings())
        .await
        .unwrap();
    let (statement, idle): (String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!((statement.as_str(), idle.as_str()), ("300ms", "7s"));

    let error = sqlx::query("SELECT pg_sleep(3)")
        .execute(store.pool())
        .await
        .unwrap_err();
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "{error}");
    // The pool holds at most three connections: a fourth request waits for one back.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(store.pool().acquire().await.unwrap());
    }
    let fourth = tokio::time::timeout(Duration::from_millis(300), store.pool().acquire()).await;
    assert!(fourth.is_err(), "a fourth connection was handed out");
    drop(held);
    store.pool().acquire().await.unwrap();
}

#[tokio::test]
async fn migrations_are_not_limited_by_the_statement_timeout() {
    let db = OwnedDatabase::supabase_unmigrated().await;
    let strict = PoolSettings {
        statement_timeout: Some(Duration::from_millis(1)),
        ..settings()
    };
    let store = PostgresStore::connect_with(&db.url, &strict).await.unwrap();
    let applied = store.migrate_up().await.unwrap();
    assert!(!applied.is_empty());
    // The pool's connections keep the limit.
    let statement: String = sqlx::query_scalar("SELECT current_setting('statement_timeout')")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(statement, "1ms");
}

#[tokio::test]
async fn a_connection_ended_by_the_server_while_idle_is_replaced() {
    let db = TestDatabase::create().await;
    let store = PostgresStore::connect_with(&db.url, &settings())
        .await
        .unwrap();
    let user = Uuid::new_v4();
    let filter = FileFilter::default();
    let list = || store.get_latest_tech_files(Principal::User(user), &filter);
    list().await.unwrap();
    // What a server restart does to the pool's idle connections.
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(ended >= 1);
    // Idle for longer than the check interval: the dead connection is found and replaced.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let page = list().await.map_err(|e: StoreError| e.to_string()).unwrap();
    assert!(page.files.is_empty());
}
