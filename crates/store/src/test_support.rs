//! Fresh PostgreSQL databases for tests (feature `test-support`): each test gets its own
//! database, copied from a template migrated once per schema version, dropped when the test
//! ends; databases left by killed runs are swept after an hour. [`TestStore`] and
//! [`on_both_backends!`](crate::on_both_backends) run one suite on SQLite and PostgreSQL.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use std::sync::Arc;

use crate::{PostgresStore, SqliteStore, StoreError, TechFileStore};

/// A migrated store under test on one backend, and what keeps its database alive.
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn TechFileStore>,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<TestDatabase>,
}

impl TestStore {
    /// A SQLite store in a fresh temporary folder.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = SqliteStore::open(&dir.path().join("techpack.db"))
            .await
            .expect("open SQLite");
        store.migrate_up().await.expect("migrate SQLite");
        Self {
            store: Arc::new(store),
            _sqlite_dir: Some(dir),
            _postgres: None,
        }
    }

    /// A PostgreSQL store on a fresh database (see [`TestDatabase::create`]).
    pub async fn postgres() -> Self {
        let db = TestDatabase::create().await;
        let store = db.store().await.expect("connect to PostgreSQL");
        Self {
            store: Arc::new(store),
            _sqlite_dir: None,
            _postgres: Some(db),
        }
    }
}

/// Declares each named `async fn(Arc<dyn TechFileStore>)` as a test on SQLite (module
/// `on_sqlite`) and on PostgreSQL (module `on_postgres`).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $crate::test_support::TestStore::sqlite().await;
                super::$name(harness.store.clone()).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $crate::test_support::TestStore::postgres().await;
                super::$name(harness.store.clone()).await;
            })*
        }
    };
}

/// The server tests use: `TECHPACK_TEST_DATABASE_URL`, else `DATABASE_URL`, else the local
/// server on 127.0.0.1:5432 as user postgres.
pub fn admin_url() -> String {
    std::env::var("TECHPACK_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    name: String,
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let server = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

impl TestDatabase {
    /// Creates a fresh, migrated database. Panics with a clear message when no server answers:
    /// run the tests through `scripts/test`, which starts one.
    pub async fn create() -> Self {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|error| {
            panic!("PostgreSQL tests need a server at {admin} ({error}); run `scripts/test`, which starts one, or set DATABASE_URL")
        });
        // Advisory locks are per database: everyone takes this one in the admin database, so
        // template creation and copying never race across test processes.
        sqlx::query("SELECT pg_advisory_lock(7364001)")
            .execute(&mut conn)
            .await
            .expect("advisory lock");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let template = template_name();
        sweep(&mut conn, now, &template).await;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut conn)
                .await
                .expect("list databases");
        if !exists {
            let building = format!("{template}_building");
            exec(&mut conn, &format!("DROP DATABASE IF EXISTS {building}")).await;
            exec(&mut conn, &format!("CREATE DATABASE {building}")).await;
            let store = PostgresStore::connect(&with_database(&admin, &building))
                .await
                .expect("connect to template");
            store
                .migrate_up()
                .await
                .expect("migrate the template database");
            store.pool().close().await;
            exec(
                &mut conn,
                &format!("ALTER DATABASE {building} RENAME TO {template}"),
            )
            .await;
        }
        let name = format!("techpack_test_{now}_{}", uuid::Uuid::new_v4().simple());
        exec(
            &mut conn,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await;
        sqlx::query("SELECT pg_advisory_unlock(7364001)")
            .execute(&mut conn)
            .await
            .expect("unlock");
        conn.close().await.ok();
        Self {
            url: with_database(&admin, &name),
            name,
        }
    }

    /// A store connected to this database.
    pub async fn store(&self) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(&self.url).await
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = admin_url();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
    }
}

fn template_name() -> String {
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in crate::postgres::migrator().iter() {
        for byte in migration.checksum.iter() {
            digest = (digest ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("techpack_template_{digest:016x}")
}

async fn exec(conn: &mut PgConnection, statement: &str) {
    sqlx::query(AssertSqlSafe(statement.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

async fn sweep(conn: &mut PgConnection, now: u64, current_template: &str) {
    // Templates of older schema versions are never used again.
    let templates: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE 'techpack\\_template\\_%' AND datname <> $1")
            .bind(current_template)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in templates {
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut *conn)
        .await;
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'techpack\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        let created: u64 = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}
