//! Fresh PostgreSQL databases for tests (feature `test-support`): each test gets its own
//! database, copied from a template migrated once per schema version, dropped when the test
//! ends; databases left by killed runs are swept after an hour. [`TestStore`] and
//! [`on_both_backends!`](crate::on_both_backends) run one suite on SQLite, PostgreSQL and a
//! PostgreSQL database shaped like a Supabase project ([`OwnedDatabase::supabase`]).

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
    _owned: Option<OwnedDatabase>,
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
            _owned: None,
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
            _owned: None,
        }
    }

    /// A PostgreSQL store on a fresh database shaped like a Supabase project (see
    /// [`OwnedDatabase::supabase`]), migrated and used by its owner, as techpack runs on one.
    pub async fn supabase() -> Self {
        let db = OwnedDatabase::supabase().await;
        let store = db
            .store()
            .await
            .expect("connect to the Supabase-shaped database");
        store
            .migrate_up()
            .await
            .expect("migrate the Supabase-shaped database");
        Self {
            store: Arc::new(store),
            _sqlite_dir: None,
            _postgres: None,
            _owned: Some(db),
        }
    }
}

/// Declares each named `async fn(Arc<dyn TechFileStore>)` as a test on SQLite (module
/// `on_sqlite`), on PostgreSQL (module `on_postgres`) and on a Supabase-shaped PostgreSQL
/// database with its API roles and default privileges (module `on_supabase`).
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
        mod on_supabase {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $crate::test_support::TestStore::supabase().await;
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
    // Roles of killed runs (OwnedDatabase owners, TestRole), after their databases went.
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'techpack\\_test\\_owner\\_%' \
         OR rolname LIKE 'techpack\\_test\\_role\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in roles {
        let created: u64 = name
            .split('_')
            .nth(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS {name}")))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// The URL `url` with another user (and password) and database.
fn with_login(url: &str, user: &str, password: &str, database: &str) -> String {
    let url = with_database(url, database);
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url.as_str()));
    let host_start = match rest.find('/') {
        Some(slash) => rest[..slash].rfind('@').map_or(0, |at| at + 1),
        None => rest.rfind('@').map_or(0, |at| at + 1),
    };
    format!("{scheme}://{user}:{password}@{}", &rest[host_start..])
}

/// The password of the logins the tests create: trust authentication ignores it, password
/// authentication needs one.
const TEST_PASSWORD: &str = "techpack-test";

/// Creates Supabase's API roles where they are missing, as supabase/postgres's init scripts
/// and migrations leave them: `anon`, `authenticated`, `service_role` (BYPASSRLS) without
/// login, `authenticator` (PostgREST's login, NOINHERIT) a member of the three. Roles are
/// cluster-wide and shared by every test: existing ones are left as they are, never dropped.
pub async fn ensure_supabase_roles(conn: &mut PgConnection) {
    exec(
        conn,
        "DO $$
        DECLARE
            statement text;
        BEGIN
            FOREACH statement IN ARRAY ARRAY[
                'CREATE ROLE anon NOLOGIN INHERIT',
                'CREATE ROLE authenticated NOLOGIN INHERIT',
                'CREATE ROLE service_role NOLOGIN INHERIT BYPASSRLS',
                'CREATE ROLE authenticator LOGIN NOINHERIT']
            LOOP
                BEGIN
                    EXECUTE statement;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL; -- made by another test, now or before
                END;
            END LOOP;
            FOREACH statement IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
                IF NOT pg_has_role('authenticator', statement, 'MEMBER') THEN
                    BEGIN
                        EXECUTE format('GRANT %I TO authenticator', statement);
                    EXCEPTION WHEN unique_violation THEN
                        NULL;
                    END;
                END IF;
            END LOOP;
        END
        $$",
    )
    .await;
}

/// A fresh database owned by a login made for it alone (a unique role, dropped with the
/// database), not migrated: the shape of a managed or Supabase database, where techpack's
/// migrations run as a role that is no superuser.
#[derive(Debug)]
pub struct OwnedDatabase {
    /// The owner's connection URL.
    pub url: String,
    /// The owner's role name.
    pub owner: String,
    name: String,
}

impl OwnedDatabase {
    /// A database owned by a new login with `attributes` (e.g. `NOSUPERUSER CREATEDB
    /// CREATEROLE`), with nothing in it.
    pub async fn create(attributes: &str) -> Self {
        let mut conn = admin_connection().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let suffix = format!("{now}_{}", uuid::Uuid::new_v4().simple());
        // Named like the test databases, so the sweep of TestDatabase drops leftovers.
        let name = format!("techpack_test_{suffix}");
        let owner = format!("techpack_test_owner_{suffix}");
        exec(
            &mut conn,
            &format!("CREATE ROLE {owner} LOGIN {attributes} PASSWORD '{TEST_PASSWORD}'"),
        )
        .await;
        exec(&mut conn, &format!("CREATE DATABASE {name} OWNER {owner}")).await;
        conn.close().await.ok();
        Self {
            url: with_login(&admin_url(), &owner, TEST_PASSWORD, &name),
            owner,
            name,
        }
    }

    /// A database shaped like a Supabase project, not yet migrated: Supabase's API roles
    /// ([`ensure_supabase_roles`]); an owner like Supabase's `postgres` (no superuser, but
    /// CREATEDB, CREATEROLE, BYPASSRLS, and a member of the three API roles); `USAGE` on
    /// schema public for the API roles; and the default privileges of supabase/postgres's
    /// initial schema: ALL on every new table, function and sequence the owner creates in
    /// public goes to anon, authenticated and service_role. Default privileges are per
    /// database, so this is a fresh database, never a copy of the migrated template.
    pub async fn supabase_unmigrated() -> Self {
        let mut conn = admin_connection().await;
        ensure_supabase_roles(&mut conn).await;
        conn.close().await.ok();
        let db = Self::create("NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS").await;
        let mut conn = PgConnection::connect(&with_database(&admin_url(), &db.name))
            .await
            .expect("connect to the new database as admin");
        let owner = &db.owner;
        for statement in [
            format!("GRANT anon, authenticated, service_role TO {owner}"),
            "GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role".to_string(),
            format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role"
            ),
            format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role"
            ),
            format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role"
            ),
        ] {
            exec(&mut conn, &statement).await;
        }
        conn.close().await.ok();
        db
    }

    /// [`OwnedDatabase::supabase_unmigrated`], then techpack's migrations applied by its
    /// owner.
    pub async fn supabase() -> Self {
        let db = Self::supabase_unmigrated().await;
        let store = db.store().await.expect("connect as the owner");
        store
            .migrate_up()
            .await
            .expect("migrate the Supabase-shaped database");
        store.pool().close().await;
        db
    }

    /// A store connected as the owner.
    pub async fn store(&self) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(&self.url).await
    }

    /// The URL of this database for another login (say `authenticator`, PostgREST's), with
    /// the tests' password.
    pub fn url_as(&self, user: &str) -> String {
        with_login(&admin_url(), user, TEST_PASSWORD, &self.name)
    }

    /// A connection to this database as the cluster's admin (the server tests use), who may
    /// switch to any role.
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&with_database(&admin_url(), &self.name))
            .await
            .expect("connect to the database as admin")
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for OwnedDatabase {
    fn drop(&mut self) {
        let admin = admin_url();
        let name = self.name.clone();
        let owner = self.owner.clone();
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
                .ok()?;
                // Its objects went with the database; what is left are memberships.
                sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS {owner}")))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Creates a role only for one test (a unique name, dropped when the guard is), for tests that
/// need a role of their own in a shared cluster.
#[derive(Debug)]
pub struct TestRole {
    /// The role's name.
    pub name: String,
}

impl TestRole {
    /// A new role named `techpack_test_role_…` with `attributes` (e.g. `NOLOGIN INHERIT`).
    pub async fn create(attributes: &str) -> Self {
        let mut conn = admin_connection().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let name = format!("techpack_test_role_{now}_{}", uuid::Uuid::new_v4().simple());
        exec(&mut conn, &format!("CREATE ROLE {name} {attributes}")).await;
        conn.close().await.ok();
        Self { name }
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let admin = admin_url();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS {name}")))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn admin_connection() -> PgConnection {
    let admin = admin_url();
    PgConnection::connect(&admin).await.unwrap_or_else(|error| {
        panic!("PostgreSQL tests need a server at {admin} ({error}); run `scripts/test`, which starts one, or set DATABASE_URL")
    })
}

/// The PostgreSQL migrations techpack ships, for tests that apply only some of them (say, a
/// database as an older release left it).
pub fn postgres_migrator() -> &'static sqlx::migrate::Migrator {
    crate::postgres::migrator()
}
