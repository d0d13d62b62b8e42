//! The PostgreSQL backend. Every call is one transaction that first switches to role
//! `techpack_app` with the caller's JWT claims (or to `service_role`), the way PostgREST and
//! Supabase switch to `authenticated`, so row level security — not a WHERE clause — keeps users
//! apart.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Connection, Postgres, Row};
use techpack_model::{
    Collection, CollectionItem, CollectionItemInput, CollectionProgress, CollectionWithFiles,
    FileChanges, FileFilter, FilePage, FileStatus, MonitoringReport, NewCollection, NewTechFile,
    Principal, ProductStats, TechFile, TechFileVersion,
};
use uuid::Uuid;

use crate::jobs::Fence;
use crate::jobs::events::JobEventFeed;
use crate::jobs::postgres::JobListener;
use crate::legacy::{LegacyAnalysis, NewLegacyAnalysis};
use crate::pool::{CHECK_IDLE_CONNECTION_AFTER, PoolSettings, postgres_millis};
use crate::rows::{check_owner, check_status_update, completed_row};
use crate::schema::{self, Backend, MigrationInfo, SchemaReport};
use crate::sql::{self, Bind, Dialect, Query, Table};
use crate::{
    BlobReference, BlobReferences, BlobSource, LockedBlobAction, StoreError, StoreResult,
    TechFileStore,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

const D: Dialect = Dialect::Postgres;

/// The role techpack switches to for a user's request: own rows only (row level security on the
/// JWT `sub`), with the writes techpack makes. Created by migration 20261124000000.
pub(crate) const APP_ROLE: &str = "techpack_app";

/// How long the first connection may take before the server counts as not answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection, made and closed, to report what stops connecting in words.
async fn probe(options: &PgConnectOptions) -> StoreResult<()> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(connection)) => {
            // Closing politely is a courtesy; a failure here changes nothing.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(error)) => Err(connect_error(options, error)),
        Err(_) => Err(StoreError::Unreachable(format!(
            "PostgreSQL at {} did not answer within {} s: check the host, the port and the network (a firewall that drops packets looks like this)",
            address(options),
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Where `options` connect to, as a person would write it.
fn address(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// A failure to connect, said with its cause and what to do about it.
fn connect_error(options: &PgConnectOptions, error: sqlx::Error) -> StoreError {
    let at = address(options);
    let database = options.get_database().unwrap_or("postgres");
    let user = options.get_username();
    match &error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            StoreError::Unreachable(format!(
                "PostgreSQL at {at} refused the connection: is it running, and listening on that address and port?"
            ))
        }
        sqlx::Error::Io(io) => StoreError::Unreachable(format!(
            "cannot reach PostgreSQL at {at}: {io}: check the host, the port and the network"
        )),
        sqlx::Error::PoolTimedOut => StoreError::Unreachable(format!(
            "PostgreSQL at {at} did not give a connection in time: is it overloaded, or out of connections (max_connections)?"
        )),
        sqlx::Error::Tls(tls) => StoreError::Config(format!(
            "the TLS handshake with PostgreSQL at {at} failed: {tls}: check sslmode in the URL and the server's certificate"
        )),
        sqlx::Error::Database(db) => {
            let message = db.message();
            match db.code().as_deref() {
                // invalid_catalog_name
                Some("3D000") => StoreError::Config(format!(
                    "the database {database:?} does not exist on PostgreSQL at {at}: create it (createdb {database}) or name another in the URL"
                )),
                // invalid_password
                Some("28P01") => StoreError::Config(format!(
                    "PostgreSQL at {at} refused the password of {user:?}: check the password in the URL"
                )),
                // invalid_authorization_specification: no such role, or pg_hba.conf refuses it
                Some("28000") => StoreError::Config(format!(
                    "PostgreSQL at {at} refused the login {user:?}: {message}: check the user in the URL and the server's pg_hba.conf"
                )),
                // too_many_connections, cannot_connect_now (starting up or shutting down)
                Some("53300" | "57P03") => StoreError::Unreachable(format!(
                    "PostgreSQL at {at} cannot take a connection now: {message}"
                )),
                _ => StoreError::Config(format!("cannot connect to PostgreSQL at {at}: {message}")),
            }
        }
        _ => StoreError::Config(format!("cannot connect to PostgreSQL at {at}: {error}")),
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Set on a store made by `fenced`: every write transaction first checks this lease.
    fence: Option<Fence>,
    /// The LISTEN connection of `wait_for_jobs`, made on first use and shared by clones.
    listener: JobListener,
    /// The wake-ups of job event readers, shared by clones.
    event_feed: JobEventFeed,
}

type Tx = sqlx::Transaction<'static, Postgres>;

impl PostgresStore {
    /// Connects to the database at `url` with the default [`PoolSettings`]. Does not migrate.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, &PoolSettings::default()).await
    }

    /// Connects to the database at `url`. Does not migrate. One connection is made first, on
    /// its own, so that a server that refuses, a database or role that does not exist and a
    /// wrong password are each reported at once and in words (the pool would retry them
    /// until its acquire timeout and then say only that it timed out).
    pub async fn connect_with(url: &str, settings: &PoolSettings) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Config(format!("not a PostgreSQL URL: {error}")))?;
        probe(&options).await?;
        // A process that stalls inside a transaction (paused, swapped out, stuck on I/O) would
        // keep its row locks, and with them every other worker away from its job and files,
        // for as long as it stalls: the server ends such a session instead. `SET`s rather than
        // startup options, which connection poolers may refuse.
        let session_settings = format!(
            "SET idle_in_transaction_session_timeout = '{}'; SET statement_timeout = '{}'",
            postgres_millis(Some(settings.idle_in_transaction_timeout)),
            postgres_millis(settings.statement_timeout)
        );
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(settings.idle_timeout)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_IDLE_CONNECTION_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| {
                let session_settings = session_settings.clone();
                Box::pin(async move {
                    sqlx::raw_sql(AssertSqlSafe(session_settings))
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(|error| connect_error(&options, error))?;
        Ok(Self {
            pool,
            fence: None,
            listener: JobListener::default(),
            event_feed: JobEventFeed::default(),
        })
    }

    /// The same store (pool and listener) with every write transaction fenced by `fence`.
    pub(crate) fn with_fence(&self, fence: Fence) -> Self {
        Self {
            pool: self.pool.clone(),
            fence: Some(fence),
            listener: self.listener.clone(),
            event_feed: self.event_feed.clone(),
        }
    }

    /// The wake-ups of job event readers.
    pub(crate) fn event_feed(&self) -> &JobEventFeed {
        &self.event_feed
    }

    /// The LISTEN connection `wait_for_jobs` reuses.
    pub(crate) fn job_listener(&self) -> &JobListener {
        &self.listener
    }

    /// The connection pool, for tests that inspect the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction acting as `principal`, checking the store's lease fence first when
    /// it has one (every write goes through here).
    async fn begin(&self, principal: Principal) -> StoreResult<Tx> {
        self.begin_with(principal, self.fence.as_ref()).await
    }

    /// Begins a transaction acting as `principal`: role and claims are transaction-local, so a
    /// pooled connection never carries them into the next caller's transaction. With a fence,
    /// the job row is locked and checked first (as service_role, so RLS on the job row does not
    /// depend on who acts) and the transaction fails with `LeaseLost` when the lease is gone.
    pub(crate) async fn begin_with(
        &self,
        principal: Principal,
        fence: Option<&Fence>,
    ) -> StoreResult<Tx> {
        let mut tx = self.pool.begin().await?;
        if let Some(fence) = fence {
            crate::jobs::postgres::hold_fence(&mut tx, fence).await?;
        }
        let (role, claims, sub) = match principal {
            // Not `authenticated`: Supabase API clients are that role, and it may write only
            // what a user may (20261201000010); techpack's own writes (credits, versions,
            // jobs) need techpack_app, which no API client can become. The claims stay the
            // user's, so the same own-row policies decide what the request sees.
            Principal::User(id) => (
                APP_ROLE,
                serde_json::json!({ "sub": id, "role": "authenticated" }),
                id.to_string(),
            ),
            Principal::Service => (
                "service_role",
                serde_json::json!({ "role": "service_role" }),
                String::new(),
            ),
        };
        sqlx::query(
            "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
             set_config('request.jwt.claim.sub', $3, true)",
        )
        .bind(role)
        .bind(claims.to_string())
        .bind(sub)
        .execute(&mut *tx)
        .await?;
        Ok(tx)
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        principal: Principal,
        query: Query,
    ) -> StoreResult<Vec<T>> {
        // Reads need no fence: only writes could clash with another worker's run.
        let mut tx = self.begin_with(principal, None).await?;
        let found = docs(&mut tx, query).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn read_one<T: serde::de::DeserializeOwned>(
        &self,
        principal: Principal,
        query: Query,
        entity: &'static str,
        id: impl ToString,
    ) -> StoreResult<T> {
        self.read(principal, query)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::not_found(entity, id))
    }

    async fn names(&self, sql: &'static str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql).fetch_all(&self.pool).await?)
    }
}

fn bound(query: Query) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    let mut statement = sqlx::query(AssertSqlSafe(query.sql));
    for value in query.binds {
        statement = match value {
            Bind::Uuid(id) => statement.bind(id),
            Bind::Text(text) => statement.bind(text),
            Bind::OptText(text) => statement.bind(text),
            Bind::Int(number) => statement.bind(number),
            Bind::Time(time) => statement.bind(time),
        };
    }
    statement
}

async fn docs<T: serde::de::DeserializeOwned>(
    conn: &mut PgConnection,
    query: Query,
) -> StoreResult<Vec<T>> {
    let rows = bound(query).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| sql::decode_doc(&row.try_get::<String, _>(0)?))
        .collect()
}

async fn one<T: serde::de::DeserializeOwned>(
    conn: &mut PgConnection,
    query: Query,
    entity: &'static str,
    id: impl ToString,
) -> StoreResult<T> {
    docs(conn, query)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::not_found(entity, id))
}

async fn file_in(conn: &mut PgConnection, principal: Principal, id: Uuid) -> StoreResult<TechFile> {
    one(
        conn,
        sql::doc_by_id(D, principal, Table::Files, id),
        "tech file",
        id,
    )
    .await
}

fn tuples<T: for<'r> sqlx::FromRow<'r, PgRow>>(rows: &[PgRow]) -> StoreResult<Vec<T>> {
    Ok(rows.iter().map(T::from_row).collect::<Result<_, _>>()?)
}

#[async_trait]
impl TechFileStore for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate_up(&self) -> StoreResult<Vec<i64>> {
        let before = self.migration_status().await?;
        // A statement timeout is for requests; a migration of a big table may take longer.
        // Without the limit, the connection must not serve requests again: it leaves the pool.
        let mut conn = self.pool.acquire().await?.detach();
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await?;
        let migrated = MIGRATOR.run_direct(None, &mut conn, false).await;
        // Closing politely is a courtesy; a failure here changes nothing.
        let _ = conn.close().await;
        migrated?;
        Ok(before
            .iter()
            .filter(|m| !m.applied)
            .map(|m| m.version)
            .collect())
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>> {
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM public._sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Ok(crate::sqlite::migration_infos_for(&MIGRATOR, &applied))
    }

    async fn verify_schema(&self) -> StoreResult<SchemaReport> {
        let mut report = SchemaReport::default();
        let tables = self
            .names("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .await?;
        schema::missing("table", schema::TABLES, &tables, &mut report);
        let indexes = self
            .names("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'")
            .await?;
        schema::missing("index", schema::INDEXES, &indexes, &mut report);
        let triggers = self
            .names(
                "SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND NOT t.tgisinternal",
            )
            .await?;
        schema::missing("trigger", schema::POSTGRES_TRIGGERS, &triggers, &mut report);
        let functions = self
            .names("SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'")
            .await?;
        schema::missing(
            "function",
            schema::POSTGRES_FUNCTIONS,
            &functions,
            &mut report,
        );
        let policies = self
            .names("SELECT policyname::text FROM pg_policies WHERE schemaname = 'public'")
            .await?;
        schema::missing("policy", schema::POSTGRES_POLICIES, &policies, &mut report);
        let secured = self
            .names(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity",
            )
            .await?;
        schema::missing(
            "row-level-security-on",
            schema::TABLES,
            &secured,
            &mut report,
        );
        let roles = self.names("SELECT rolname::text FROM pg_roles").await?;
        schema::missing("role", schema::POSTGRES_ROLES, &roles, &mut report);
        schema::check_postgres_privileges(&self.pool, &mut report).await?;
        Ok(report)
    }

    async fn migrate_down(&self) -> StoreResult<Vec<i64>> {
        let applied: Vec<i64> = self
            .migration_status()
            .await?
            .iter()
            .filter(|m| m.applied)
            .map(|m| m.version)
            .collect();
        MIGRATOR.undo(&self.pool, 0).await?;
        Ok(applied.into_iter().rev().collect())
    }

    async fn create_tech_file(
        &self,
        principal: Principal,
        file: NewTechFile,
    ) -> StoreResult<TechFile> {
        file.validate()?;
        check_owner(principal, file.user_id)?;
        let mut tx = self.begin(principal).await?;
        let id = Uuid::now_v7();
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO public.tech_files AS t (id, lineage_id, product_idea_id, revision_id, user_id, file_type, \
             view_type, file_category, file_url, content_sha256, content_size, mime_type, analysis_data, metadata, \
             ai_model, generation_prompt, generation_batch_id, idempotency_key, credits_used, confidence_score, \
             quality_score, status, error_message, created_by) \
             VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23) \
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING to_jsonb(t)::text",
        )
        .bind(id)
        .bind(file.product_idea_id)
        .bind(file.revision_id)
        .bind(file.user_id)
        .bind(file.file_type.as_str())
        .bind(&file.view_type)
        .bind(&file.file_category)
        .bind(&file.file_url)
        .bind(&file.content_sha256)
        .bind(file.content_size)
        .bind(&file.mime_type)
        .bind(Json(&file.analysis_data))
        .bind(Json(&file.metadata))
        .bind(&file.ai_model)
        .bind(&file.generation_prompt)
        .bind(file.generation_batch_id)
        .bind(&file.idempotency_key)
        .bind(file.credits_used)
        .bind(file.confidence_score)
        .bind(file.quality_score)
        .bind(file.status.as_str())
        .bind(&file.error_message)
        .bind(principal.user_id())
        .fetch_optional(&mut *tx)
        .await?;
        let created = match inserted {
            Some(doc) => sql::decode_doc(&doc)?,
            // The idempotency key was used before: the first row is the answer.
            None => {
                let key = file.idempotency_key.as_deref().unwrap_or_default();
                one(
                    &mut tx,
                    sql::file_by_idempotency_key(D, principal, file.user_id, key),
                    "tech file",
                    key,
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(created)
    }

    async fn get_tech_file_by_id(&self, principal: Principal, id: Uuid) -> StoreResult<TechFile> {
        self.read_one(
            principal,
            sql::doc_by_id(D, principal, Table::Files, id),
            "tech file",
            id,
        )
        .await
    }

    async fn find_by_idempotency_key(
        &self,
        principal: Principal,
        owner: Uuid,
        key: &str,
    ) -> StoreResult<Option<TechFile>> {
        Ok(self
            .read(
                principal,
                sql::file_by_idempotency_key(D, principal, owner, key),
            )
            .await?
            .into_iter()
            .next())
    }

    async fn get_latest_tech_files(
        &self,
        principal: Principal,
        filter: &FileFilter,
    ) -> StoreResult<FilePage> {
        let page_size = filter.page_size()?;
        let files = self
            .read(
                principal,
                sql::latest_files(D, principal, filter, page_size),
            )
            .await?;
        Ok(crate::page(files, page_size))
    }

    async fn update_tech_file_status(
        &self,
        principal: Principal,
        id: Uuid,
        status: FileStatus,
        error_message: Option<String>,
    ) -> StoreResult<TechFile> {
        check_status_update(status, &error_message)?;
        let mut tx = self.begin(principal).await?;
        let doc: Option<String> = sqlx::query_scalar(
            "UPDATE public.tech_files AS t SET status = $2, error_message = $3 WHERE t.id = $1 RETURNING to_jsonb(t)::text",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(error_message.filter(|_| status == FileStatus::Failed))
        .fetch_optional(&mut *tx)
        .await?;
        let file = sql::decode_doc(&doc.ok_or_else(|| StoreError::not_found("tech file", id))?)?;
        tx.commit().await?;
        Ok(file)
    }

    async fn complete_tech_file(
        &self,
        principal: Principal,
        id: Uuid,
        changes: FileChanges,
    ) -> StoreResult<TechFile> {
        let mut done = self
            .complete_tech_files(principal, vec![(id, changes)])
            .await?;
        done.pop()
            .ok_or_else(|| StoreError::not_found("tech file", id))
    }

    async fn complete_tech_files(
        &self,
        principal: Principal,
        completions: Vec<(Uuid, FileChanges)>,
    ) -> StoreResult<Vec<TechFile>> {
        for (_, changes) in &completions {
            changes.validate()?;
        }
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = completions.iter().map(|(id, _)| *id).collect();
        if ids.iter().collect::<std::collections::HashSet<_>>().len() != ids.len() {
            return Err(StoreError::Conflict(
                "a batch completes the same tech file twice; complete each file once".into(),
            ));
        }
        let mut tx = self.begin(principal).await?;
        // One statement locks every row (in id order, so two batches never wait on each other
        // in a cycle) and one writes them all: a batch costs two round trips and one pass of
        // the triggers, not two statements per file.
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT to_jsonb(t)::text FROM public.tech_files AS t WHERE t.id = ANY($1) \
             ORDER BY t.id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let current: std::collections::HashMap<Uuid, TechFile> = docs
            .iter()
            .map(|doc| sql::decode_doc::<TechFile>(doc).map(|file| (file.id, file)))
            .collect::<StoreResult<_>>()?;
        let mut rows = Vec::with_capacity(completions.len());
        for (id, changes) in &completions {
            let file = current
                .get(id)
                .ok_or_else(|| StoreError::not_found("tech file", id))?;
            rows.push(completed_row(file, changes)?);
        }
        let column = |pick: &dyn Fn(&NewTechFile) -> Option<String>| -> Vec<Option<String>> {
            rows.iter().map(pick).collect()
        };
        let docs: Vec<String> = sqlx::query_scalar(
            "UPDATE public.tech_files AS t SET view_type = v.view_type, file_category = v.file_category, \
             file_url = v.file_url, content_sha256 = v.content_sha256, content_size = v.content_size, \
             mime_type = v.mime_type, analysis_data = v.analysis_data, metadata = v.metadata, \
             ai_model = v.ai_model, generation_prompt = v.generation_prompt, \
             generation_batch_id = v.generation_batch_id, idempotency_key = v.idempotency_key, \
             credits_used = v.credits_used, confidence_score = v.confidence_score, \
             quality_score = v.quality_score, status = v.status, error_message = v.error_message \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], \
             $7::text[], $8::jsonb[], $9::jsonb[], $10::text[], $11::text[], $12::uuid[], $13::text[], \
             $14::int8[], $15::float8[], $16::float8[], $17::text[], $18::text[]) \
             AS v(id, view_type, file_category, file_url, content_sha256, content_size, mime_type, \
             analysis_data, metadata, ai_model, generation_prompt, generation_batch_id, \
             idempotency_key, credits_used, confidence_score, quality_score, status, error_message) \
             WHERE t.id = v.id RETURNING to_jsonb(t)::text",
        )
        .bind(&ids)
        .bind(column(&|row| row.view_type.clone()))
        .bind(column(&|row| row.file_category.clone()))
        .bind(column(&|row| row.file_url.clone()))
        .bind(column(&|row| row.content_sha256.clone()))
        .bind(rows.iter().map(|row| row.content_size).collect::<Vec<_>>())
        .bind(column(&|row| row.mime_type.clone()))
        .bind(rows.iter().map(|row| Json(&row.analysis_data)).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| Json(&row.metadata)).collect::<Vec<_>>())
        .bind(column(&|row| row.ai_model.clone()))
        .bind(column(&|row| row.generation_prompt.clone()))
        .bind(rows.iter().map(|row| row.generation_batch_id).collect::<Vec<_>>())
        .bind(column(&|row| row.idempotency_key.clone()))
        .bind(rows.iter().map(|row| row.credits_used).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.confidence_score).collect::<Vec<_>>())
        .bind(rows.iter().map(|row| row.quality_score).collect::<Vec<_>>())
        .bind(column(&|row| Some(row.status.as_str().to_owned())))
        .bind(column(&|row| row.error_message.clone()))
        .fetch_all(&mut *tx)
        .await?;
        let done = docs
            .iter()
            .map(|doc| sql::decode_doc::<TechFile>(doc))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await?;
        Ok(crate::in_order(&ids, done))
    }

    async fn archive_tech_file(&self, principal: Principal, id: Uuid) -> StoreResult<TechFile> {
        let mut tx = self.begin(principal).await?;
        let doc: Option<String> = sqlx::query_scalar(
            "UPDATE public.tech_files AS t SET status = 'archived' WHERE t.id = $1 RETURNING to_jsonb(t)::text",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let file = sql::decode_doc(&doc.ok_or_else(|| StoreError::not_found("tech file", id))?)?;
        tx.commit().await?;
        Ok(file)
    }

    async fn create_tech_file_version(
        &self,
        principal: Principal,
        id: Uuid,
        changes: FileChanges,
    ) -> StoreResult<TechFile> {
        changes.validate()?;
        let mut tx = self.begin(principal).await?;
        if let Some(key) = &changes.idempotency_key {
            let parent: TechFile = file_in(&mut tx, principal, id).await?;
            let existing: Vec<TechFile> = docs(
                &mut tx,
                sql::file_by_idempotency_key(D, principal, parent.user_id, key),
            )
            .await?;
            if let Some(existing) = existing.into_iter().next() {
                return Ok(existing);
            }
        }
        let mut change_json = serde_json::to_value(&changes)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if let Some(object) = change_json.as_object_mut() {
            // JSON null would replace the parent's value; an unset change keeps it.
            object.retain(|_, value| !value.is_null());
            object.insert("id".into(), serde_json::json!(Uuid::now_v7()));
            object.remove("change_description");
        }
        let doc: String = sqlx::query_scalar(
            "SELECT to_jsonb(public.create_tech_file_version($1, $2, $3))::text",
        )
        .bind(id)
        .bind(Json(&change_json))
        .bind(&changes.change_description)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        sql::decode_doc(&doc)
    }

    async fn get_tech_file_versions(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<Vec<TechFileVersion>> {
        let mut tx = self.begin(principal).await?;
        let file: TechFile = file_in(&mut tx, principal, id).await?;
        let versions = docs(
            &mut tx,
            sql::lineage_versions(D, principal, file.lineage_id),
        )
        .await?;
        tx.commit().await?;
        Ok(versions)
    }

    async fn get_file_history(&self, principal: Principal, id: Uuid) -> StoreResult<Vec<TechFile>> {
        let mut tx = self.begin(principal).await?;
        let file: TechFile = file_in(&mut tx, principal, id).await?;
        let history = docs(&mut tx, sql::lineage_files(D, principal, file.lineage_id)).await?;
        tx.commit().await?;
        Ok(history)
    }

    async fn restore_tech_file_version(
        &self,
        principal: Principal,
        id: Uuid,
        version: i32,
    ) -> StoreResult<TechFile> {
        crate::restore(self, principal, id, version).await
    }

    async fn create_tech_file_collection(
        &self,
        principal: Principal,
        collection: NewCollection,
    ) -> StoreResult<Collection> {
        collection.validate()?;
        check_owner(principal, collection.user_id)?;
        let mut tx = self.begin(principal).await?;
        let doc: String = sqlx::query_scalar(
            "INSERT INTO public.tech_file_collections AS t (id, user_id, product_idea_id, name, description, \
             collection_type, generation_batch_id, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING to_jsonb(t)::text",
        )
        .bind(Uuid::now_v7())
        .bind(collection.user_id)
        .bind(collection.product_idea_id)
        .bind(&collection.name)
        .bind(&collection.description)
        .bind(collection.collection_type.as_str())
        .bind(collection.generation_batch_id)
        .bind(Json(&collection.metadata))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        sql::decode_doc(&doc)
    }

    async fn get_collection(&self, principal: Principal, id: Uuid) -> StoreResult<Collection> {
        self.read_one(
            principal,
            sql::doc_by_id(D, principal, Table::Collections, id),
            "collection",
            id,
        )
        .await
    }

    async fn list_collections(
        &self,
        principal: Principal,
        product: Option<Uuid>,
    ) -> StoreResult<Vec<Collection>> {
        self.read(principal, sql::collections(D, principal, product))
            .await
    }

    async fn add_files_to_collection(
        &self,
        principal: Principal,
        collection_id: Uuid,
        items: Vec<CollectionItemInput>,
    ) -> StoreResult<Vec<CollectionItem>> {
        for item in &items {
            item.validate()?;
        }
        let mut tx = self.begin(principal).await?;
        // Row lock: concurrent appends to one collection get distinct positions.
        let collection: Collection = one(
            &mut tx,
            {
                let mut q = sql::doc_by_id(D, principal, Table::Collections, collection_id);
                q.push(" FOR UPDATE");
                q
            },
            "collection",
            collection_id,
        )
        .await?;
        for item in &items {
            let file: TechFile = file_in(&mut tx, principal, item.tech_file_id).await?;
            if file.user_id != collection.user_id {
                return Err(StoreError::not_found("tech file", item.tech_file_id));
            }
            sqlx::query(
                "INSERT INTO public.tech_file_collection_items (id, collection_id, tech_file_id, user_id, display_order, section) \
                 VALUES ($1, $2, $3, $4, coalesce($5, (SELECT coalesce(max(display_order) + 1, 0) \
                 FROM public.tech_file_collection_items WHERE collection_id = $2)), $6) \
                 ON CONFLICT (collection_id, tech_file_id) DO UPDATE SET display_order = excluded.display_order, \
                 section = coalesce(excluded.section, public.tech_file_collection_items.section)",
            )
            .bind(Uuid::now_v7())
            .bind(collection_id)
            .bind(item.tech_file_id)
            .bind(collection.user_id)
            .bind(item.display_order)
            .bind(&item.section)
            .execute(&mut *tx)
            .await?;
        }
        let all: Vec<CollectionItem> =
            docs(&mut tx, sql::collection_items(D, principal, collection_id)).await?;
        tx.commit().await?;
        Ok(crate::items_for(all, &items))
    }

    async fn remove_files_from_collection(
        &self,
        principal: Principal,
        collection_id: Uuid,
        file_ids: Vec<Uuid>,
    ) -> StoreResult<Vec<CollectionItem>> {
        let mut tx = self.begin(principal).await?;
        // The collection row first, as add_files_to_collection locks it: the delete trigger's
        // recount locks it too, and taking it before the item rows keeps a concurrent add and
        // remove of one collection from waiting on each other in a cycle. RLS makes another
        // user's collection not found here.
        one::<Collection>(
            &mut tx,
            {
                let mut q = sql::doc_by_id(D, principal, Table::Collections, collection_id);
                q.push(" FOR UPDATE");
                q
            },
            "collection",
            collection_id,
        )
        .await?;
        let docs: Vec<String> = sqlx::query_scalar(
            "DELETE FROM public.tech_file_collection_items AS t \
             WHERE t.collection_id = $1 AND t.tech_file_id = ANY($2) RETURNING to_jsonb(t)::text",
        )
        .bind(collection_id)
        .bind(&file_ids)
        .fetch_all(&mut *tx)
        .await?;
        let removed = docs
            .iter()
            .map(|doc| sql::decode_doc(doc))
            .collect::<StoreResult<Vec<CollectionItem>>>()?;
        tx.commit().await?;
        Ok(crate::items_of_files(removed, &file_ids))
    }

    async fn get_collection_with_files(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<CollectionWithFiles> {
        let mut tx = self.begin(principal).await?;
        let collection = one(
            &mut tx,
            sql::doc_by_id(D, principal, Table::Collections, id),
            "collection",
            id,
        )
        .await?;
        let items = docs(&mut tx, sql::collection_items(D, principal, id)).await?;
        let files = docs(&mut tx, sql::collection_files(D, principal, id)).await?;
        tx.commit().await?;
        Ok(crate::join_items(collection, items, files))
    }

    async fn update_collection_progress(
        &self,
        principal: Principal,
        id: Uuid,
        progress: CollectionProgress,
    ) -> StoreResult<Collection> {
        progress.validate()?;
        let mut tx = self.begin(principal).await?;
        let doc: Option<String> = sqlx::query_scalar(
            "UPDATE public.tech_file_collections AS t SET completion_percentage = $2, status = $3, \
             completed_at = CASE WHEN $4 THEN coalesce(t.completed_at, now()) ELSE NULL END, \
             planned_steps = coalesce($5, t.planned_steps) \
             WHERE t.id = $1 RETURNING to_jsonb(t)::text",
        )
        .bind(id)
        .bind(progress.completion_percentage)
        .bind(progress.status.as_str())
        .bind(crate::is_final(progress.status))
        .bind(progress.planned_steps)
        .fetch_optional(&mut *tx)
        .await?;
        let collection =
            sql::decode_doc(&doc.ok_or_else(|| StoreError::not_found("collection", id))?)?;
        tx.commit().await?;
        Ok(collection)
    }

    async fn update_collection_credits(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<Collection> {
        let mut tx = self.begin(principal).await?;
        let doc: Option<String> = sqlx::query_scalar(
            "UPDATE public.tech_file_collections AS t SET total_credits = coalesce((SELECT sum(f.credits_used) \
             FROM public.tech_file_collection_items AS i JOIN public.tech_files AS f ON f.id = i.tech_file_id \
             WHERE i.collection_id = t.id), 0) WHERE t.id = $1 RETURNING to_jsonb(t)::text",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let collection =
            sql::decode_doc(&doc.ok_or_else(|| StoreError::not_found("collection", id))?)?;
        tx.commit().await?;
        Ok(collection)
    }

    async fn get_batch_files(
        &self,
        principal: Principal,
        batch_id: Uuid,
    ) -> StoreResult<Vec<TechFile>> {
        self.read(principal, sql::batch_files(D, principal, batch_id))
            .await
    }

    async fn get_product_generation_stats(
        &self,
        principal: Principal,
        product_idea_id: Uuid,
    ) -> StoreResult<ProductStats> {
        let mut tx = self.begin(principal).await?;
        let rows = bound(sql::product_stats(D, principal, product_idea_id))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(crate::stats_from_groups(product_idea_id, tuples(&rows)?))
    }

    async fn monitoring_report(&self, principal: Principal) -> StoreResult<MonitoringReport> {
        let now = Utc::now();
        let mut tx = self.begin(principal).await?;
        let recent = bound(sql::recent_files(
            D,
            principal,
            now - chrono::Duration::hours(24),
        ))
        .fetch_all(&mut *tx)
        .await?;
        let credits = bound(sql::credits_by_product(
            D,
            principal,
            now - chrono::Duration::days(7),
        ))
        .fetch_all(&mut *tx)
        .await?;
        let completion = bound(sql::collection_completion(D, principal))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        crate::report_from_tuples(tuples(&recent)?, tuples(&credits)?, tuples(&completion)?)
    }

    async fn write_legacy_analysis(
        &self,
        principal: Principal,
        row: NewLegacyAnalysis,
    ) -> StoreResult<LegacyAnalysis> {
        row.validate()?;
        check_owner(principal, row.user_id)?;
        let mut tx = self.begin(principal).await?;
        let doc: String = sqlx::query_scalar(
            "INSERT INTO public.revision_vision_analysis AS t (id, user_id, product_idea_id, revision_id, view_type, \
             image_url, image_sha256, analysis_data, model_used, credits_used) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING to_jsonb(t)::text",
        )
        .bind(Uuid::now_v7())
        .bind(row.user_id)
        .bind(row.product_idea_id)
        .bind(row.revision_id)
        .bind(&row.view_type)
        .bind(&row.image_url)
        .bind(&row.image_sha256)
        .bind(Json(&row.analysis_data))
        .bind(&row.model_used)
        .bind(row.credits_used)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        sql::decode_doc(&doc)
    }

    async fn find_legacy_analysis(
        &self,
        principal: Principal,
        revision_id: Uuid,
        view_type: &str,
        image_sha256: Option<&str>,
    ) -> StoreResult<Option<LegacyAnalysis>> {
        Ok(self
            .read(
                principal,
                sql::legacy_lookup(D, principal, revision_id, view_type, image_sha256),
            )
            .await?
            .into_iter()
            .next())
    }

    async fn list_legacy_analyses(
        &self,
        principal: Principal,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<LegacyAnalysis>> {
        self.read(principal, sql::legacy_page(D, principal, after, limit))
            .await
    }

    async fn list_blob_references(
        &self,
        principal: Principal,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BlobReferences>> {
        let mut tx = self.begin(principal).await?;
        let found = blob_references(
            &mut tx,
            sql::blob_references(D, principal, after, None, limit),
        )
        .await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn with_blob_key_locked<'a>(
        &self,
        principal: Principal,
        key: &'a str,
        action: LockedBlobAction<'a>,
    ) -> StoreResult<()> {
        let mut tx = self.begin(principal).await?;
        // SHARE conflicts with the ROW EXCLUSIVE lock every INSERT/UPDATE takes: every write of
        // a row that needs a blob writes its references through a trigger, so such writers
        // wait until this transaction ends. The timeout turns a long wait (or a deadlock with a writer) into an
        // error for this key instead of a stalled cleanup.
        sqlx::query("SELECT set_config('lock_timeout', '10s', true)")
            .execute(&mut *tx)
            .await?;
        sqlx::query("LOCK TABLE public.blob_references IN SHARE MODE")
            .execute(&mut *tx)
            .await?;
        let references = blob_references(
            &mut tx,
            sql::blob_references(D, principal, None, Some(key), 1),
        )
        .await?
        .pop()
        .unwrap_or_else(|| BlobReferences::none(key));
        action(references).await;
        tx.commit().await?;
        Ok(())
    }

    async fn list_files_with_blobs(
        &self,
        principal: Principal,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<TechFile>> {
        self.read(principal, sql::files_with_blobs(D, principal, after, limit))
            .await
    }

    async fn list_live_blob_references(
        &self,
        principal: Principal,
        after: Option<&str>,
        keys: u32,
    ) -> StoreResult<Vec<BlobReference>> {
        self.read(
            principal,
            sql::live_blob_references(D, principal, after, keys),
        )
        .await
    }

    async fn blob_references_of(
        &self,
        principal: Principal,
        source: BlobSource,
        ids: &[Uuid],
    ) -> StoreResult<Vec<BlobReference>> {
        self.read(
            principal,
            sql::blob_references_of(D, principal, source.as_str(), ids),
        )
        .await
    }

    async fn database_id(&self) -> StoreResult<Uuid> {
        let mut tx = self.begin_with(Principal::Service, None).await?;
        let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM public.techpack_instance")
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        id.ok_or_else(|| {
            StoreError::Schema(
                "the database has no techpack_instance row: run `techpack migrate`".into(),
            )
        })
    }
}

async fn blob_references(
    conn: &mut PgConnection,
    query: Query,
) -> StoreResult<Vec<BlobReferences>> {
    let rows = bound(query).fetch_all(&mut *conn).await?;
    Ok(
        tuples::<(String, i64, i64, Option<chrono::DateTime<Utc>>, i64)>(&rows)?
            .into_iter()
            .map(
                |(key, live_rows, archived_rows, last_archived_at, legacy_rows)| BlobReferences {
                    key,
                    live_rows,
                    archived_rows,
                    last_archived_at,
                    legacy_rows,
                },
            )
            .collect(),
    )
}

/// The PostgreSQL migrations, for test databases made from a migrated template.
#[cfg(feature = "test-support")]
pub(crate) fn migrator() -> &'static Migrator {
    &MIGRATOR
}
