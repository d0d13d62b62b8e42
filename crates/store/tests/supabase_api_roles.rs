//! PostgreSQL only: techpack's schema on a database shaped like a Supabase project, attacked
//! through Supabase's API roles the way PostgREST reaches it (log in as `authenticator`,
//! `set_config('role', …, true)` and the JWT claims per transaction): `anon` reaches nothing,
//! an `authenticated` user reads their own rows and performs only the documented user
//! actions, `service_role` does what techpack does and nothing more. The privilege checks read
//! the catalog, so an object added later is checked too and a failure names it. Also: the
//! roles migration on a database migrated before it existed, and on databases owned by
//! managed-style logins.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use techpack_model::{
    ClaimOptions, CollectionItemInput, CollectionType, FileChanges, FileStatus, FileType,
    JobOutcome, NewCollection, NewJob, NewTechFile, Principal,
};
use techpack_store::test_support::{OwnedDatabase, TestDatabase, TestRole, postgres_migrator};
use techpack_store::{JobStore, PostgresStore, TechFileStore};
use uuid::Uuid;

/// Who a request acts as, the way PostgREST decides it from the JWT.
#[derive(Clone, Copy, Debug)]
enum Who {
    Anon,
    User(Uuid),
    Service,
}

/// The API's side of the database: a connection as PostgREST's login where the server lets
/// the tests log in as it (else as the admin, who may switch to any role).
struct Api {
    conn: PgConnection,
    as_authenticator: bool,
}

impl Api {
    async fn connect(db: &OwnedDatabase) -> Self {
        match PgConnection::connect(&db.url_as("authenticator")).await {
            Ok(conn) => Self {
                conn,
                as_authenticator: true,
            },
            Err(_) => Self {
                conn: db.admin().await,
                as_authenticator: false,
            },
        }
    }

    async fn begin(&mut self, who: Who) -> sqlx::Transaction<'_, sqlx::Postgres> {
        let (role, claims) = match who {
            Who::Anon => ("anon", json!({ "role": "anon" })),
            Who::User(id) => (
                "authenticated",
                json!({ "sub": id, "role": "authenticated" }),
            ),
            Who::Service => ("service_role", json!({ "role": "service_role" })),
        };
        let mut tx = self.conn.begin().await.unwrap();
        sqlx::query(
            "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
             set_config('request.jwt.claim.sub', '', true)",
        )
        .bind(role)
        .bind(claims.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
        tx
    }

    /// Runs `sql` as `who` and rolls back: rows affected, or the error.
    async fn attempt(&mut self, who: Who, sql: &str) -> Result<u64, String> {
        let mut tx = self.begin(who).await;
        let result = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await
            .map(|done| done.rows_affected())
            .map_err(|error| error.to_string());
        tx.rollback().await.ok();
        result
    }

    /// Runs `sql` as `who` and commits; panics on an error.
    async fn act(&mut self, who: Who, sql: &str) -> u64 {
        let mut tx = self.begin(who).await;
        let done = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|error| panic!("{who:?} may run `{sql}`: {error}"));
        tx.commit().await.unwrap();
        done.rows_affected()
    }

    /// One value read as `who` (rolled back).
    async fn value<T>(&mut self, who: Who, sql: &str) -> Result<T, String>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        let mut tx = self.begin(who).await;
        let result = sqlx::query_scalar::<_, T>(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| error.to_string());
        tx.rollback().await.ok();
        result
    }
}

/// A forged write: refused outright, or it touched no row.
#[track_caller]
fn refused(what: &str, result: Result<u64, String>) {
    if let Ok(rows) = result {
        assert_eq!(rows, 0, "{what}: must be refused, changed {rows} rows");
    }
}

#[track_caller]
fn denied(what: &str, result: Result<u64, String>) {
    match result {
        Err(error) => assert!(
            error.contains("permission denied") || error.contains("row-level security"),
            "{what}: refused, but not by privileges or policy: {error}"
        ),
        Ok(rows) => panic!("{what}: must be refused, ran and changed {rows} rows"),
    }
}

/// What one user owns after [`seed`].
struct Seeded {
    user: Uuid,
    /// Version 1 (completed, 5 credits) of a file whose version 2 (`file`) is the latest.
    first: Uuid,
    /// The latest version: 3 credits.
    file: Uuid,
    /// Holds `file`.
    collection: Uuid,
    /// Empty.
    other_collection: Uuid,
    /// Queued.
    job: Uuid,
    /// Succeeded.
    finished_job: Uuid,
}

async fn seed(store: &PostgresStore, user: Uuid) -> Seeded {
    let me = Principal::User(user);
    let product = Uuid::new_v4();
    let mut new = NewTechFile::new(user, product, FileType::BaseView);
    new.view_type = Some("front".into());
    new.status = FileStatus::Completed;
    new.credits_used = 5;
    new.file_url = Some(format!("{user}/front.png"));
    new.metadata = json!({ "slot": "front" });
    let first = store.create_tech_file(me, new).await.unwrap();
    let file = store
        .create_tech_file_version(
            me,
            first.id,
            FileChanges {
                credits_used: Some(3),
                file_url: Some(format!("{user}/front-2.png")),
                ..FileChanges::default()
            },
        )
        .await
        .unwrap();
    let collection = store
        .create_tech_file_collection(
            me,
            NewCollection::new(user, product, "pack", CollectionType::TechPackV2),
        )
        .await
        .unwrap();
    store
        .add_files_to_collection(
            me,
            collection.id,
            vec![CollectionItemInput {
                tech_file_id: file.id,
                display_order: None,
                section: None,
            }],
        )
        .await
        .unwrap();
    let other_collection = store
        .create_tech_file_collection(
            me,
            NewCollection::new(user, product, "other", CollectionType::SketchesSet),
        )
        .await
        .unwrap();
    let finished = store
        .enqueue_job(me, NewJob::tech_pack(user, product, json!({ "n": 1 })))
        .await
        .unwrap();
    let options = ClaimOptions {
        only_job: Some(finished.id),
        ..ClaimOptions::new("worker", Duration::from_secs(60))
    };
    let (_, lease) = store
        .claim_job(Principal::Service, &options)
        .await
        .unwrap()
        .unwrap();
    store
        .finish_job(&lease, JobOutcome::succeeded(Some(json!({ "ok": true }))))
        .await
        .unwrap();
    let job = store
        .enqueue_job(me, NewJob::tech_pack(user, product, json!({ "n": 2 })))
        .await
        .unwrap();
    Seeded {
        user,
        first: first.id,
        file: file.id,
        collection: collection.id,
        other_collection: other_collection.id,
        job: job.id,
        finished_job: finished.id,
    }
}

/// The names techpack's migrations give their objects in schema public (the migration
/// 20261201000010 locks down exactly these).
fn is_techpack_name(name: &str) -> bool {
    [
        "tech_file",
        "generation_job",
        "revision_vision_analysis",
        "blob_reference",
        "techpack_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || name == "create_tech_file_version"
        || name == "restore_tech_file_version"
}

const KNOWN_TABLES: &[&str] = &[
    "tech_files",
    "tech_file_versions",
    "tech_file_collections",
    "tech_file_collection_items",
    "revision_vision_analysis",
    "generation_jobs",
    "generation_job_events",
];

/// Table-level privileges each role must hold on a known table, exactly.
fn expected_table_privileges(table: &str, role: &str) -> &'static [&'static str] {
    match (role, table) {
        ("authenticated", "tech_file_collections" | "tech_file_collection_items") => {
            &["DELETE", "SELECT"]
        }
        ("authenticated", _) => &["SELECT"],
        ("techpack_app", "tech_file_versions" | "generation_job_events") => &["SELECT"],
        // A run's events are written by its worker and go with their job.
        ("service_role", "generation_job_events") => &["DELETE", "INSERT", "SELECT"],
        ("techpack_app", "tech_file_collections" | "tech_file_collection_items") => {
            &["DELETE", "INSERT", "SELECT", "UPDATE"]
        }
        ("techpack_app", _) => &["INSERT", "SELECT", "UPDATE"],
        ("service_role", _) => &["DELETE", "INSERT", "SELECT", "UPDATE"],
        _ => &[],
    }
}

/// The columns `authenticated` may write beyond its table-level privileges: every other column
/// is the system's.
fn expected_column_privileges(table: &str) -> BTreeSet<String> {
    let list: &[(&str, &[&str])] = match table {
        "tech_files" => &[("UPDATE", &["error_message", "status"])],
        "tech_file_collections" => &[
            (
                "INSERT",
                &[
                    "collection_type",
                    "description",
                    "id",
                    "name",
                    "product_idea_id",
                    "user_id",
                ],
            ),
            ("UPDATE", &["description", "name"]),
        ],
        "tech_file_collection_items" => &[
            (
                "INSERT",
                &[
                    "collection_id",
                    "display_order",
                    "id",
                    "section",
                    "tech_file_id",
                    "user_id",
                ],
            ),
            ("UPDATE", &["collection_id", "display_order", "section"]),
        ],
        "generation_jobs" => &[("UPDATE", &["cancel_requested"])],
        _ => &[],
    };
    list.iter()
        .flat_map(|(privilege, columns)| {
            columns
                .iter()
                .map(move |column| format!("{privilege} ({column})"))
        })
        .collect()
}

/// Functions each role may execute, by `schema.name`; every other function nobody but its
/// owner executes.
fn expected_execute(function: &str, role: &str) -> bool {
    match function {
        "public.techpack_current_user_id"
        | "public.create_tech_file_version"
        | "public.restore_tech_file_version" => {
            matches!(role, "authenticated" | "techpack_app" | "service_role")
        }
        "techpack_private.create_tech_file_version_for_api" => role == "authenticated",
        "techpack_private.create_tech_file_version_as_caller" => {
            matches!(role, "techpack_app" | "service_role")
        }
        _ => false,
    }
}

/// Schema, name, signature, SECURITY DEFINER, returns trigger, settings.
type FunctionRow = (String, String, String, bool, bool, Option<Vec<String>>);

const ROLES: &[&str] = &[
    "PUBLIC",
    "anon",
    "authenticated",
    "service_role",
    "techpack_app",
];

/// Every privilege the roles hold on relations of public and techpack_private, as
/// (schema.relation, role) → {"SELECT", "UPDATE (status)", …}.
async fn relation_privileges(
    conn: &mut PgConnection,
) -> BTreeMap<(String, String, String), BTreeSet<String>> {
    let rows = sqlx::query(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text, coalesce(r.rolname::text, 'PUBLIC'), \
                a.privilege_type::text, NULL::text \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner))) a \
           LEFT JOIN pg_roles r ON r.oid = a.grantee \
          WHERE n.nspname IN ('public', 'techpack_private') AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
            AND a.grantee <> c.relowner \
         UNION ALL \
         SELECT n.nspname::text, c.relname::text, c.relkind::text, coalesce(r.rolname::text, 'PUBLIC'), \
                a.privilege_type::text, t.attname::text \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute t ON t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped \
          CROSS JOIN LATERAL aclexplode(t.attacl) a \
           LEFT JOIN pg_roles r ON r.oid = a.grantee \
          WHERE n.nspname IN ('public', 'techpack_private') AND t.attacl IS NOT NULL \
            AND a.grantee <> c.relowner",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut held: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    let relations: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname IN ('public', 'techpack_private') AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (schema, name, kind) in relations {
        for role in ROLES {
            held.entry((format!("{schema}.{name}"), kind.clone(), role.to_string()))
                .or_default();
        }
    }
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        let kind: String = row.get(2);
        let role: String = row.get(3);
        let privilege: String = row.get(4);
        let column: Option<String> = row.get(5);
        if !ROLES.contains(&role.as_str()) {
            continue;
        }
        held.entry((format!("{schema}.{name}"), kind, role))
            .or_default()
            .insert(match column {
                Some(column) => format!("{privilege} ({column})"),
                None => privilege,
            });
    }
    held
}

#[tokio::test]
async fn every_object_grants_each_api_role_exactly_what_is_documented() {
    let db = OwnedDatabase::supabase().await;
    let mut admin = db.admin().await;
    let mut problems = Vec::new();

    for ((relation, kind, role), held) in relation_privileges(&mut admin).await {
        let (schema, name) = relation.split_once('.').unwrap();
        // The migrations table and techpack_private's tables: nobody but the owner.
        let expected: BTreeSet<String> = if name == "_sqlx_migrations"
            || schema == "techpack_private"
        {
            BTreeSet::new()
        } else if !is_techpack_name(name) {
            problems.push(format!(
                "{relation} is in schema public but not named like techpack's objects: \
                 20261201000010 does not lock it down; name it like the others or revoke and grant it in its migration"
            ));
            continue;
        } else if kind == "S" {
            if matches!(role.as_str(), "techpack_app" | "service_role") {
                ["SELECT", "USAGE"].map(String::from).into()
            } else {
                BTreeSet::new()
            }
        } else if KNOWN_TABLES.contains(&name) {
            let mut expected: BTreeSet<String> = expected_table_privileges(name, &role)
                .iter()
                .map(|p| p.to_string())
                .collect();
            if role == "authenticated" {
                expected.extend(expected_column_privileges(name));
            }
            expected
        } else {
            // A table added since (blob references and the like): techpack's bookkeeping,
            // which API users neither read nor write.
            let allowed: BTreeSet<String> = ["DELETE", "INSERT", "SELECT", "UPDATE"]
                .map(String::from)
                .into();
            if matches!(role.as_str(), "techpack_app" | "service_role") {
                if !held.is_subset(&allowed) {
                    problems.push(format!(
                        "{role} holds {held:?} on {relation}: at most {allowed:?}"
                    ));
                }
                continue;
            }
            BTreeSet::new()
        };
        if held != expected {
            problems.push(format!(
                "{role} holds {held:?} on {relation}, expected {expected:?}"
            ));
        }
    }

    let functions: Vec<FunctionRow> = sqlx::query_as(
        "SELECT n.nspname::text, p.proname::text, p.oid::regprocedure::text, p.prosecdef, \
                p.prorettype = 'trigger'::regtype, p.proconfig::text[] \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE n.nspname IN ('public', 'techpack_private')",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for (schema, name, signature, definer, _trigger, config) in &functions {
        if schema == "public" && !is_techpack_name(name) {
            problems.push(format!(
                "function {signature} is in schema public but not named like techpack's: every function there is an RPC on Supabase"
            ));
        }
        if *definer
            && !config
                .iter()
                .flatten()
                .any(|setting| setting.starts_with("search_path="))
        {
            problems.push(format!(
                "SECURITY DEFINER function {signature} does not set its search_path"
            ));
        }
        for role in ROLES {
            let holds: bool = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT {} FROM pg_proc p WHERE p.oid = '{signature}'::regprocedure",
                if *role == "PUBLIC" {
                    "EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0)".to_string()
                } else {
                    format!("has_function_privilege('{role}', p.oid, 'EXECUTE')")
                }
            )))
            .fetch_one(&mut admin)
            .await
            .unwrap();
            let expected = expected_execute(&format!("{schema}.{name}"), role);
            if holds != expected {
                problems.push(format!(
                    "{role} {} execute {signature}",
                    if holds { "may" } else { "may not" }
                ));
            }
        }
    }

    // Row level security on every table, the migrations table included, and no policy for
    // everyone (PUBLIC).
    let unsecured: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname IN ('public', 'techpack_private') AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity \
           AND c.oid <> 'techpack_private.privileges_before_api_roles'::regclass",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for table in unsecured {
        problems.push(format!("{table} has row level security off"));
    }
    let public_policies: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s on %s', p.polname, p.polrelid::regclass) FROM pg_policy p \
         WHERE 0 = ANY (p.polroles)",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for policy in public_policies {
        problems.push(format!("policy {policy} applies to PUBLIC"));
    }
    // Schemas: the API roles create nothing in them.
    for schema in ["public", "techpack_private"] {
        for role in ["anon", "authenticated", "service_role", "techpack_app"] {
            let creates: bool = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT has_schema_privilege('{role}', '{schema}', 'CREATE')"
            )))
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if creates {
                problems.push(format!("{role} may create objects in schema {schema}"));
            }
        }
    }
    // techpack_app: no login, no BYPASSRLS, a member of nothing, and PostgREST's login is no
    // member of it.
    let (login, bypass, superuser, member_of): (bool, bool, bool, i64) = sqlx::query_as(
        "SELECT rolcanlogin, rolbypassrls, rolsuper, \
                (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) \
           FROM pg_roles r WHERE rolname = 'techpack_app'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    if login || bypass || superuser || member_of > 0 {
        problems.push(format!(
            "techpack_app: login {login}, bypassrls {bypass}, superuser {superuser}, member of {member_of} roles"
        ));
    }
    let reachable: bool =
        sqlx::query_scalar("SELECT pg_has_role('authenticator', 'techpack_app', 'MEMBER')")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if reachable {
        problems.push("authenticator (PostgREST's login) may switch to techpack_app".into());
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn anon_reaches_nothing() {
    let db = OwnedDatabase::supabase().await;
    let store = db.store().await.unwrap();
    let alice = seed(&store, Uuid::new_v4()).await;
    let mut api = Api::connect(&db).await;
    let mut admin = db.admin().await;

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname IN ('public', 'techpack_private') AND c.relkind IN ('r', 'p', 'v', 'm')",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "_sqlx_migrations"));
    for table in &tables {
        denied(
            &format!("anon reads {table}"),
            api.attempt(Who::Anon, &format!("SELECT * FROM {table}"))
                .await,
        );
    }
    denied(
        "anon rewrites the migrations table",
        api.attempt(Who::Anon, "UPDATE _sqlx_migrations SET checksum = ''")
            .await,
    );
    denied(
        "anon deletes the migrations table's rows",
        api.attempt(Who::Anon, "DELETE FROM _sqlx_migrations").await,
    );
    denied(
        "anon recounts someone's collection credits",
        api.attempt(
            Who::Anon,
            &format!(
                "SELECT tech_file_collections_recount_credits(ARRAY['{}'::uuid])",
                alice.collection
            ),
        )
        .await,
    );
    let functions: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname IN ('public', 'techpack_private') AND p.prorettype <> 'trigger'::regtype",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for function in functions {
        // Arguments of the right types, all NULL: the privilege check comes first.
        let (name, args) = function.split_once('(').unwrap();
        let args = args.trim_end_matches(')');
        let nulls = if args.is_empty() {
            String::new()
        } else {
            args.split(',')
                .map(|arg| format!("NULL::{}", arg.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        denied(
            &format!("anon executes {function}"),
            api.attempt(Who::Anon, &format!("SELECT {name}({nulls})"))
                .await,
        );
    }
}

#[tokio::test]
async fn a_user_cannot_forge_what_the_system_writes() {
    let db = OwnedDatabase::supabase().await;
    let store = db.store().await.unwrap();
    let alice = seed(&store, Uuid::new_v4()).await;
    let me = Who::User(alice.user);
    let mut api = Api::connect(&db).await;
    let (file, collection, job) = (alice.file, alice.collection, alice.job);

    // Billing.
    denied(
        "credits_used = 0 on one's file",
        api.attempt(
            me,
            &format!("UPDATE tech_files SET credits_used = 0 WHERE id = '{file}'"),
        )
        .await,
    );
    denied(
        "total_credits on one's collection",
        api.attempt(
            me,
            &format!(
                "UPDATE tech_file_collections SET total_credits = 0 WHERE id = '{collection}'"
            ),
        )
        .await,
    );
    denied(
        "credits of the legacy cache",
        api.attempt(me, "UPDATE revision_vision_analysis SET credits_used = 0")
            .await,
    );
    // Collection bookkeeping: status, progress, completion, the run, the recorded request.
    for (column, value) in [
        ("status", "'completed'"),
        ("completion_percentage", "100"),
        ("completed_at", "now()"),
        ("generation_batch_id", "gen_random_uuid()"),
        ("metadata", "'{\"request\": {}}'"),
        ("collection_type", "'closeups_set'"),
        ("user_id", "gen_random_uuid()"),
    ] {
        denied(
            &format!("{column} of one's collection"),
            api.attempt(
                me,
                &format!(
                    "UPDATE tech_file_collections SET {column} = {value} WHERE id = '{collection}'"
                ),
            )
            .await,
        );
    }
    denied(
        "a collection created with credits and a status",
        api.attempt(
            me,
            &format!(
                "INSERT INTO tech_file_collections (user_id, product_idea_id, name, total_credits, status) \
                 VALUES ('{}', gen_random_uuid(), 'x', 99, 'completed')",
                alice.user
            ),
        )
        .await,
    );
    // Version bookkeeping and outputs of files.
    for (column, value) in [
        ("version", "7"),
        ("is_latest", "true"),
        ("lineage_id", "gen_random_uuid()"),
        ("parent_file_id", "NULL"),
        ("idempotency_key", "'k'"),
        ("created_by", "gen_random_uuid()"),
        ("file_url", "'someone-else/key.png'"),
        ("content_sha256", "NULL"),
        ("metadata", "'{\"png_key\": \"x\"}'"),
        ("analysis_data", "'{}'"),
        ("user_id", "gen_random_uuid()"),
    ] {
        denied(
            &format!("{column} of one's file"),
            api.attempt(
                me,
                &format!("UPDATE tech_files SET {column} = {value} WHERE id = '{file}'"),
            )
            .await,
        );
    }
    denied(
        "a file inserted directly",
        api.attempt(
            me,
            &format!(
                "INSERT INTO tech_files (product_idea_id, user_id, file_type, status, credits_used) \
                 VALUES (gen_random_uuid(), '{}', 'sketch', 'completed', 0)",
                alice.user
            ),
        )
        .await,
    );
    denied(
        "a status a user may not set (completed)",
        api.attempt(
            me,
            &format!(
                "UPDATE tech_files SET status = 'completed' WHERE id = '{}'",
                alice.file
            ),
        )
        .await,
    );
    denied(
        "a snapshot forged into the history",
        api.attempt(
            me,
            &format!(
                "INSERT INTO tech_file_versions (tech_file_id, lineage_id, user_id, version, snapshot) \
                 VALUES ('{file}', '{file}', '{}', 9, '{{}}')",
                alice.user
            ),
        )
        .await,
    );
    denied(
        "one's history rewritten",
        api.attempt(me, "UPDATE tech_file_versions SET snapshot = '{}'")
            .await,
    );
    for table in KNOWN_TABLES {
        if !matches!(
            *table,
            "tech_file_collections" | "tech_file_collection_items"
        ) {
            denied(
                &format!("rows of {table} deleted"),
                api.attempt(me, &format!("DELETE FROM {table}")).await,
            );
        }
        denied(
            &format!("{table} truncated"),
            api.attempt(me, &format!("TRUNCATE {table} CASCADE")).await,
        );
        denied(
            &format!("a trigger on {table}"),
            api.attempt(
                me,
                &format!(
                    "CREATE TRIGGER forged AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION techpack_touch_updated_at()"
                ),
            )
            .await,
        );
    }
    denied(
        "a table referencing tech_files",
        api.attempt(
            me,
            "CREATE TABLE forged (id uuid REFERENCES tech_files (id))",
        )
        .await,
    );
    // The legacy cache is techpack's: poisoning it would feed the next generation.
    denied(
        "a legacy analysis inserted",
        api.attempt(
            me,
            &format!(
                "INSERT INTO revision_vision_analysis (user_id, product_idea_id, revision_id, view_type, analysis_data) \
                 VALUES ('{}', gen_random_uuid(), gen_random_uuid(), 'front', '{{}}')",
                alice.user
            ),
        )
        .await,
    );

    // Jobs: state, result, attempts, a lease, queue order, the request; and enqueueing.
    for (column, value) in [
        ("state", "'succeeded'"),
        ("result", "'{\"ok\": true}'"),
        ("attempts", "0"),
        ("max_attempts", "100"),
        ("lease_token", "gen_random_uuid()"),
        ("lease_expires_at", "now() + interval '1 day'"),
        ("worker_id", "'me'"),
        ("run_after", "'1970-01-01'"),
        ("created_at", "'1970-01-01'"),
        ("request", "'{}'"),
        ("progress", "'{}'"),
        ("last_error", "NULL"),
        ("collection_id", "gen_random_uuid()"),
    ] {
        denied(
            &format!("{column} of one's job"),
            api.attempt(
                me,
                &format!("UPDATE generation_jobs SET {column} = {value} WHERE id = '{job}'"),
            )
            .await,
        );
    }
    denied(
        "a job enqueued through the API ahead of everyone",
        api.attempt(
            me,
            &format!(
                "INSERT INTO generation_jobs (user_id, product_idea_id, kind, request, run_after) \
                 VALUES ('{}', gen_random_uuid(), 'tech_pack', '{{}}', '1970-01-01')",
                alice.user
            ),
        )
        .await,
    );
    denied("a cancellation taken back", {
        api.act(
            me,
            &format!("UPDATE generation_jobs SET cancel_requested = true WHERE id = '{job}'"),
        )
        .await;
        api.attempt(
            me,
            &format!("UPDATE generation_jobs SET cancel_requested = false WHERE id = '{job}'"),
        )
        .await
    });
    refused(
        "a finished job cancelled",
        api.attempt(
            me,
            &format!(
                "UPDATE generation_jobs SET cancel_requested = true WHERE id = '{}'",
                alice.finished_job
            ),
        )
        .await,
    );

    // Versions: no credits, no forged author, no outputs or keys.
    for changes in [
        json!({ "created_by": Uuid::new_v4() }),
        json!({ "credits_used": 99 }),
        json!({ "idempotency_key": "k" }),
        json!({ "file_url": "someone-else/key.png" }),
        json!({ "metadata": { "png_key": "someone-else/key.png" } }),
        json!({ "status": "processing" }),
        json!({ "status": "archived" }),
    ] {
        let result = api
            .attempt(
                me,
                &format!("SELECT create_tech_file_version('{file}', '{changes}')"),
            )
            .await;
        assert!(
            result.is_err(),
            "create_tech_file_version with {changes} must be refused"
        );
    }
    denied(
        "the internal version insert called directly",
        api.attempt(
            me,
            &format!(
                "SELECT techpack_private.insert_version((SELECT t FROM tech_files t WHERE id = '{file}'))"
            ),
        )
        .await,
    );
    // authenticator cannot become techpack (a JWT claiming role techpack_app).
    if api.as_authenticator {
        let switched = sqlx::query("SELECT set_config('role', 'techpack_app', false)")
            .execute(&mut api.conn)
            .await;
        assert!(
            switched
                .unwrap_err()
                .to_string()
                .contains("permission denied"),
            "PostgREST's login must not switch to techpack_app"
        );
    }

    // Nothing changed.
    let credits: i64 = api
        .value(
            Who::Service,
            &format!("SELECT total_credits FROM tech_file_collections WHERE id = '{collection}'"),
        )
        .await
        .unwrap();
    assert_eq!(credits, 3);
    let versions: i64 = api
        .value(
            Who::Service,
            &format!(
                "SELECT count(*) FROM tech_files WHERE lineage_id = (SELECT lineage_id FROM tech_files WHERE id = '{file}')"
            ),
        )
        .await
        .unwrap();
    assert_eq!(versions, 2);
}

#[tokio::test]
async fn a_user_performs_the_documented_actions() {
    let db = OwnedDatabase::supabase().await;
    let store = db.store().await.unwrap();
    let alice = seed(&store, Uuid::new_v4()).await;
    let me = Who::User(alice.user);
    let mut api = Api::connect(&db).await;

    // Reads their own rows in every table.
    for (table, rows) in [
        ("tech_files", 2),
        ("tech_file_versions", 1),
        ("tech_file_collections", 2),
        ("tech_file_collection_items", 1),
        ("generation_jobs", 2),
        ("revision_vision_analysis", 0),
    ] {
        let seen: i64 = api
            .value(me, &format!("SELECT count(*) FROM {table}"))
            .await
            .unwrap();
        assert_eq!(seen, rows, "alice reads her rows of {table}");
    }

    // A new version through the specification's function: 0 credits, created_by the caller, the same
    // outputs, and only status and error changed.
    let (version, credits, created_by, url, status, error): (
        i32,
        i64,
        Uuid,
        String,
        String,
        Option<String>,
    ) = {
        let mut tx = api.begin(me).await;
        let row = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT version, credits_used, created_by, file_url, status, error_message FROM \
             create_tech_file_version('{}', '{{\"status\": \"failed\", \"error_message\": \"wrong colour\"}}', 'rejected')",
            alice.file
        )))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        row
    };
    assert_eq!(version, 3);
    assert_eq!(credits, 0);
    assert_eq!(created_by, alice.user);
    assert_eq!(url, format!("{}/front-2.png", alice.user));
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("failed", Some("wrong colour"))
    );

    // Restore version 1: its content back, 0 credits, created_by the caller.
    let (version, credits, created_by, url, status): (i32, i64, Uuid, String, String) = {
        let mut tx = api.begin(me).await;
        let row = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT version, credits_used, created_by, file_url, status FROM restore_tech_file_version('{}', 1)",
            alice.first
        )))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        row
    };
    assert_eq!(version, 4);
    assert_eq!(credits, 0);
    assert_eq!(created_by, alice.user);
    assert_eq!(url, format!("{}/front.png", alice.user));
    assert_eq!(status, "completed");
    // techpack reads the restored version back through its own store.
    let latest = store
        .get_file_history(Principal::User(alice.user), alice.first)
        .await
        .unwrap();
    assert_eq!(latest.iter().filter(|file| file.is_latest).count(), 1);
    assert_eq!(latest.len(), 4);
    let restored = latest.iter().find(|file| file.is_latest).unwrap();
    assert_eq!(restored.metadata, json!({ "slot": "front" }));

    // Mark failed with a message, then archive.
    assert_eq!(
        api.act(
            me,
            &format!(
                "UPDATE tech_files SET status = 'failed', error_message = 'blurry' WHERE id = '{}'",
                restored.id
            ),
        )
        .await,
        1
    );
    assert_eq!(
        api.act(
            me,
            &format!(
                "UPDATE tech_files SET status = 'archived' WHERE id = '{}'",
                restored.id
            ),
        )
        .await,
        1
    );

    // Collections: create, rename, and items added, moved (both totals recounted), reordered,
    // removed; then delete an idle collection.
    let new_collection = Uuid::new_v4();
    api.act(
        me,
        &format!(
            "INSERT INTO tech_file_collections (id, user_id, product_idea_id, name, collection_type) \
             VALUES ('{new_collection}', '{}', gen_random_uuid(), 'mine', 'base_views_set')",
            alice.user
        ),
    )
    .await;
    api.act(
        me,
        &format!(
            "UPDATE tech_file_collections SET name = 'renamed', description = 'd' WHERE id = '{new_collection}'"
        ),
    )
    .await;
    let total =
        |id: Uuid| format!("SELECT total_credits FROM tech_file_collections WHERE id = '{id}'");
    api.act(
        me,
        &format!(
            "INSERT INTO tech_file_collection_items (collection_id, tech_file_id, user_id, display_order, section) \
             VALUES ('{new_collection}', '{}', '{}', 0, 'front')",
            alice.first, alice.user
        ),
    )
    .await;
    assert_eq!(
        api.value::<i64>(me, &total(new_collection)).await.unwrap(),
        5
    );
    api.act(
        me,
        &format!(
            "UPDATE tech_file_collection_items SET collection_id = '{}' WHERE tech_file_id = '{}' AND collection_id = '{}'",
            alice.other_collection, alice.file, alice.collection
        ),
    )
    .await;
    assert_eq!(
        api.value::<i64>(me, &total(alice.collection))
            .await
            .unwrap(),
        0,
        "the collection an item left is recounted"
    );
    assert_eq!(
        api.value::<i64>(me, &total(alice.other_collection))
            .await
            .unwrap(),
        3,
        "the collection an item joined is recounted"
    );
    api.act(
        me,
        &format!(
            "UPDATE tech_file_collection_items SET display_order = 7, section = 'back' WHERE collection_id = '{}'",
            alice.other_collection
        ),
    )
    .await;
    api.act(
        me,
        &format!("DELETE FROM tech_file_collection_items WHERE collection_id = '{new_collection}'"),
    )
    .await;
    assert_eq!(
        api.value::<i64>(me, &total(new_collection)).await.unwrap(),
        0
    );
    assert_eq!(
        api.act(
            me,
            &format!("DELETE FROM tech_file_collections WHERE id = '{new_collection}'"),
        )
        .await,
        1
    );
    // A collection a queued job fills stays until the job ends.
    let product: Uuid = api
        .value(
            me,
            &format!(
                "SELECT product_idea_id FROM tech_file_collections WHERE id = '{}'",
                alice.collection
            ),
        )
        .await
        .unwrap();
    let mut filling = NewJob::tech_pack(alice.user, product, json!({ "n": 3 }));
    filling.collection_id = Some(alice.collection);
    store
        .enqueue_job(Principal::User(alice.user), filling)
        .await
        .unwrap();
    refused(
        "a collection deleted while a job fills it",
        api.attempt(
            me,
            &format!(
                "DELETE FROM tech_file_collections WHERE id = '{}'",
                alice.collection
            ),
        )
        .await,
    );

    // Cancel a queued job; techpack's next claim finishes it as cancelled.
    assert_eq!(
        api.act(
            me,
            &format!(
                "UPDATE generation_jobs SET cancel_requested = true WHERE id = '{}'",
                alice.job
            ),
        )
        .await,
        1
    );
    let options = ClaimOptions {
        only_job: Some(alice.job),
        ..ClaimOptions::new("worker", Duration::from_secs(60))
    };
    assert!(
        store
            .claim_job(Principal::Service, &options)
            .await
            .unwrap()
            .is_none()
    );
    let cancelled = store
        .get_job(Principal::User(alice.user), alice.job)
        .await
        .unwrap();
    assert_eq!(cancelled.state.as_str(), "cancelled");

    // techpack's own view agrees with what the API did.
    let collection = store
        .get_collection(Principal::User(alice.user), alice.other_collection)
        .await
        .unwrap();
    assert_eq!(collection.total_credits, 3);
}

#[tokio::test]
async fn users_find_nothing_of_each_other() {
    let db = OwnedDatabase::supabase().await;
    let store = db.store().await.unwrap();
    let alice = seed(&store, Uuid::new_v4()).await;
    let bob = seed(&store, Uuid::new_v4()).await;
    let mut api = Api::connect(&db).await;
    let as_bob = Who::User(bob.user);

    for table in KNOWN_TABLES {
        let foreign: i64 = api
            .value(
                as_bob,
                &format!(
                    "SELECT count(*) FROM {table} WHERE user_id <> '{}'",
                    bob.user
                ),
            )
            .await
            .unwrap();
        assert_eq!(foreign, 0, "bob sees none of alice's rows in {table}");
    }
    let anonymous: i64 = api
        .value(Who::User(Uuid::nil()), "SELECT count(*) FROM tech_files")
        .await
        .unwrap();
    assert_eq!(anonymous, 0);

    refused(
        "alice's file archived by bob",
        api.attempt(
            as_bob,
            &format!(
                "UPDATE tech_files SET status = 'archived' WHERE id = '{}'",
                alice.file
            ),
        )
        .await,
    );
    refused(
        "alice's collection renamed by bob",
        api.attempt(
            as_bob,
            &format!(
                "UPDATE tech_file_collections SET name = 'mine' WHERE id = '{}'",
                alice.collection
            ),
        )
        .await,
    );
    refused(
        "alice's collection deleted by bob",
        api.attempt(
            as_bob,
            &format!(
                "DELETE FROM tech_file_collections WHERE id = '{}'",
                alice.other_collection
            ),
        )
        .await,
    );
    refused(
        "alice's item moved by bob",
        api.attempt(
            as_bob,
            &format!(
                "UPDATE tech_file_collection_items SET collection_id = '{}' WHERE collection_id = '{}'",
                bob.collection, alice.collection
            ),
        )
        .await,
    );
    refused(
        "alice's items removed by bob",
        api.attempt(
            as_bob,
            &format!(
                "DELETE FROM tech_file_collection_items WHERE collection_id = '{}'",
                alice.collection
            ),
        )
        .await,
    );
    refused(
        "alice's job cancelled by bob",
        api.attempt(
            as_bob,
            &format!(
                "UPDATE generation_jobs SET cancel_requested = true WHERE id = '{}'",
                alice.job
            ),
        )
        .await,
    );
    denied(
        "an item of alice's inserted by bob",
        api.attempt(
            as_bob,
            &format!(
                "INSERT INTO tech_file_collection_items (collection_id, tech_file_id, user_id) VALUES ('{}', '{}', '{}')",
                alice.collection, alice.file, alice.user
            ),
        )
        .await,
    );
    let borrowed = api
        .attempt(
            as_bob,
            &format!(
                "INSERT INTO tech_file_collection_items (collection_id, tech_file_id, user_id) VALUES ('{}', '{}', '{}')",
                bob.collection, alice.file, bob.user
            ),
        )
        .await;
    assert!(
        borrowed.unwrap_err().contains("foreign key"),
        "bob cannot put alice's file in his collection"
    );
    for call in [
        format!("SELECT create_tech_file_version('{}')", alice.file),
        format!("SELECT restore_tech_file_version('{}', 1)", alice.file),
        format!(
            "SELECT techpack_private.create_tech_file_version_for_api('{}', '{{}}', NULL)",
            alice.file
        ),
    ] {
        let result = api.attempt(as_bob, &call).await;
        assert!(
            result.as_ref().unwrap_err().contains("not found"),
            "{call} as bob: {result:?}"
        );
    }
    // Moving bob's item into alice's collection: the composite key refuses it.
    let moved = api
        .attempt(
            as_bob,
            &format!(
                "UPDATE tech_file_collection_items SET collection_id = '{}' WHERE collection_id = '{}'",
                alice.collection, bob.collection
            ),
        )
        .await;
    assert!(moved.is_err(), "bob's item cannot join alice's collection");

    // Alice's data is as it was.
    let alice_store = Principal::User(alice.user);
    assert_eq!(
        store
            .get_collection(alice_store, alice.collection)
            .await
            .unwrap()
            .total_credits,
        3
    );
    assert!(
        !store
            .get_job(alice_store, alice.job)
            .await
            .unwrap()
            .cancel_requested
    );
}

#[tokio::test]
async fn service_role_does_what_techpack_does_and_no_more() {
    let db = OwnedDatabase::supabase().await;
    let store = db.store().await.unwrap();
    let alice = seed(&store, Uuid::new_v4()).await;
    let bob = seed(&store, Uuid::new_v4()).await;
    let mut api = Api::connect(&db).await;
    let admin = Who::Service;

    let everyone: i64 = api
        .value(admin, "SELECT count(*) FROM tech_files")
        .await
        .unwrap();
    assert_eq!(everyone, 4);
    assert_eq!(
        api.act(
            admin,
            &format!(
                "UPDATE tech_files SET credits_used = 4 WHERE id = '{}'",
                alice.file
            ),
        )
        .await,
        1
    );
    assert_eq!(
        api.value::<i64>(
            admin,
            &format!(
                "SELECT total_credits FROM tech_file_collections WHERE id = '{}'",
                alice.collection
            ),
        )
        .await
        .unwrap(),
        4,
        "the database recounts the collection"
    );
    assert_eq!(
        api.act(
            admin,
            &format!(
                "DELETE FROM generation_jobs WHERE id = '{}'",
                bob.finished_job
            ),
        )
        .await,
        1
    );
    denied(
        "service_role reads the migrations table",
        api.attempt(admin, "SELECT * FROM _sqlx_migrations").await,
    );
    for table in KNOWN_TABLES {
        denied(
            &format!("service_role truncates {table}"),
            api.attempt(admin, &format!("TRUNCATE {table} CASCADE"))
                .await,
        );
    }
    denied(
        "service_role runs the internal recount",
        api.attempt(
            admin,
            &format!(
                "SELECT tech_file_collections_recount_credits(ARRAY['{}'::uuid])",
                alice.collection
            ),
        )
        .await,
    );
}

/// A database that an older release migrated (the four migrations shipped before the roles
/// migration existed) gets the lower-versioned roles migration on its next `migrate up`: sqlx
/// applies every migration it has not applied, in version order, not only those above the
/// newest applied one.
#[tokio::test]
async fn a_database_migrated_before_the_roles_migration_gets_it() {
    let db = OwnedDatabase::supabase_unmigrated().await;
    let shipped: Vec<_> = postgres_migrator()
        .iter()
        .filter(|m| (20261125000001..=20261125000004).contains(&m.version))
        .cloned()
        .collect();
    assert_eq!(shipped.len(), 8, "four shipped migrations, up and down");
    let old_release = sqlx::migrate::Migrator::with_migrations(shipped);
    let mut owner = PgConnection::connect(&db.url).await.unwrap();
    old_release.run(&mut owner).await.unwrap();
    let mut api = Api::connect(&db).await;
    // The holes the old release left on Supabase.
    assert!(
        api.attempt(Who::Anon, "SELECT * FROM _sqlx_migrations")
            .await
            .is_ok(),
        "before: anon reads the migrations table"
    );

    let store = db.store().await.unwrap();
    let applied = store.migrate_up().await.unwrap();
    assert!(
        applied.contains(&20261124000000),
        "the lower-versioned roles migration is applied: {applied:?}"
    );
    assert!(applied.contains(&20261201000010), "{applied:?}");
    let recorded: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY installed_on, version",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        recorded[..4],
        [
            20261125000001,
            20261125000002,
            20261125000003,
            20261125000004
        ]
    );
    assert!(recorded[4..].contains(&20261124000000));
    assert!(
        store
            .migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied),
        "nothing left to apply"
    );
    denied(
        "after: anon reads the migrations table",
        api.attempt(Who::Anon, "SELECT * FROM _sqlx_migrations")
            .await,
    );
    seed(&store, Uuid::new_v4()).await;
    assert!(store.verify_schema().await.unwrap().is_complete());
}

/// A managed database: the owner is no superuser and has no BYPASSRLS (it may create roles and
/// databases, as managed services allow). techpack migrates and works as it.
#[tokio::test]
async fn a_managed_database_owner_migrates_and_techpack_works() {
    let db = OwnedDatabase::create("NOSUPERUSER NOBYPASSRLS CREATEDB CREATEROLE").await;
    let store = db.store().await.unwrap();
    store.migrate_up().await.unwrap();
    assert!(
        store.verify_schema().await.unwrap().is_complete(),
        "{:?}",
        store.verify_schema().await.unwrap().missing
    );
    let alice = seed(&store, Uuid::new_v4()).await;
    let bob = seed(&store, Uuid::new_v4()).await;
    let as_alice = Principal::User(alice.user);
    assert!(
        store.get_tech_file_by_id(as_alice, bob.file).await.is_err(),
        "users stay apart"
    );
    store
        .restore_tech_file_version(as_alice, alice.file, 1)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_collections(Principal::Service, None)
            .await
            .unwrap()
            .len(),
        4
    );

    // Where service_role has no BYPASSRLS (a managed database that created it), its policies
    // let it through: a role with service_role's privileges but no BYPASSRLS sees every row.
    let service_like = TestRole::create("NOLOGIN INHERIT NOBYPASSRLS").await;
    let mut admin = db.admin().await;
    sqlx::query(AssertSqlSafe(format!(
        "GRANT service_role TO {}",
        service_like.name
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let mut tx = admin.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "SELECT set_config('role', '{}', true)",
        service_like.name
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    for (table, rows) in [
        ("tech_files", 4),
        ("tech_file_versions", 2),
        ("tech_file_collections", 4),
        ("generation_jobs", 4),
    ] {
        let seen: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(
            seen >= rows,
            "service_role without BYPASSRLS sees every row of {table}"
        );
    }
    let updated = sqlx::query(AssertSqlSafe(format!(
        "UPDATE generation_jobs SET run_after = now() WHERE user_id IN ('{}', '{}')",
        alice.user, bob.user
    )))
    .execute(&mut *tx)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(updated, 4);
    tx.rollback().await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "REVOKE service_role FROM {}",
        service_like.name
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

/// An owner that may neither create roles nor grant them: the first migration fails with the
/// statements an administrator must run, and once they ran, migrating works.
#[tokio::test]
async fn an_owner_without_createrole_is_told_what_to_ask_for() {
    // The roles exist in the cluster (any migrated database made them).
    drop(TestDatabase::create().await);
    let db = OwnedDatabase::create("NOSUPERUSER NOBYPASSRLS CREATEDB NOCREATEROLE").await;
    let store = db.store().await.unwrap();
    let error = store.migrate_up().await.unwrap_err().to_string();
    let grant = format!(
        "GRANT authenticated, service_role, techpack_app TO {}",
        db.owner
    );
    assert!(
        error.contains(&grant) && error.contains("ask an administrator"),
        "the error names what to grant: {error}"
    );
    assert!(
        store
            .migration_status()
            .await
            .unwrap()
            .iter()
            .all(|m| !m.applied),
        "nothing was applied"
    );
    // sqlx keeps its migration lock on the connection of a failed run: a new pool, as a new
    // `techpack migrate` process would have.
    store.pool().close().await;
    let mut admin = db.admin().await;
    sqlx::query(AssertSqlSafe(grant))
        .execute(&mut admin)
        .await
        .unwrap();
    let store = db.store().await.unwrap();
    store.migrate_up().await.unwrap();
    seed(&store, Uuid::new_v4()).await;
}

/// `techpack migrate verify` reports a privilege that was granted back (by hand, or by a
/// migration that forgot to revoke Supabase's defaults).
#[tokio::test]
async fn verify_reports_a_reopened_hole() {
    let db = OwnedDatabase::supabase().await;
    let store = db.store().await.unwrap();
    assert!(store.verify_schema().await.unwrap().is_complete());
    let mut admin = db.admin().await;
    for statement in [
        "GRANT SELECT ON _sqlx_migrations TO anon",
        "GRANT UPDATE (credits_used) ON tech_files TO authenticated",
        "GRANT EXECUTE ON FUNCTION tech_file_collections_recount_credits(uuid[]) TO PUBLIC",
        "GRANT TRUNCATE ON generation_jobs TO service_role",
    ] {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let missing = store.verify_schema().await.unwrap().missing;
    for expected in [
        "revoke anon on _sqlx_migrations",
        "revoke authenticated UPDATE (credits_used) on tech_files",
        "revoke PUBLIC EXECUTE on tech_file_collections_recount_credits(uuid[])",
        "revoke anon EXECUTE on tech_file_collections_recount_credits(uuid[])",
        "revoke service_role TRUNCATE, REFERENCES, TRIGGER on generation_jobs",
    ] {
        assert!(
            missing.iter().any(|m| m == expected),
            "{expected} in {missing:?}"
        );
    }
}
