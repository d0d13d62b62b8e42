//! What a migrated database must contain, for `techpack migrate verify` (the specification's
//! apply-tech-files-migration check), and migration status.

use serde::{Deserialize, Serialize};

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// PostgreSQL (or Supabase).
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
}

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationInfo {
    /// Version (a timestamp).
    pub version: i64,
    /// Description from the file name.
    pub description: String,
    /// Whether it is applied.
    pub applied: bool,
}

/// The result of a schema check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReport {
    /// How many objects were checked.
    pub checked: usize,
    /// The objects that are missing, as `kind name` (e.g. `index tech_files_status_idx`).
    pub missing: Vec<String>,
}

impl SchemaReport {
    /// Whether nothing is missing.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

pub(crate) const TABLES: &[&str] = &[
    "tech_files",
    "tech_file_versions",
    "tech_file_collections",
    "tech_file_collection_items",
    "revision_vision_analysis",
    "generation_jobs",
    "blob_references",
    "techpack_instance",
    "generation_job_events",
];

pub(crate) const INDEXES: &[&str] = &[
    "tech_files_product_revision_idx",
    "tech_files_user_id_idx",
    "tech_files_file_type_idx",
    "tech_files_product_latest_idx",
    "tech_files_user_latest_idx",
    "tech_files_generation_batch_idx",
    "tech_files_status_idx",
    "tech_files_created_at_idx",
    "tech_files_parent_file_idx",
    "tech_files_file_url_idx",
    "tech_files_one_latest_per_lineage",
    "tech_files_user_idempotency_key",
    "tech_file_versions_user_id_idx",
    "tech_file_collections_user_product_idx",
    "tech_file_collections_status_idx",
    "tech_file_collection_items_user_id_idx",
    "tech_file_collection_items_file_idx",
    "tech_file_collection_items_order_idx",
    "revision_vision_analysis_lookup_idx",
    "revision_vision_analysis_user_id_idx",
    "generation_jobs_claim_idx",
    "generation_jobs_user_running_idx",
    "generation_jobs_user_created_idx",
    "blob_references_key_idx",
    "blob_references_user_idx",
    "generation_jobs_active_request_key",
    "generation_jobs_user_idempotency_key",
    "generation_jobs_product_running_idx",
    "generation_jobs_batch_idx",
    "generation_job_events_job_idx",
    "generation_job_events_user_idx",
];

pub(crate) const POSTGRES_TRIGGERS: &[&str] = &[
    "tech_files_before_insert",
    "tech_files_guard_update",
    "tech_files_touch_updated_at",
    "tech_files_after_credits_change",
    "tech_file_collections_touch_updated_at",
    "tech_file_collection_items_after_change",
    "revision_vision_analysis_touch_updated_at",
    "generation_jobs_touch_updated_at",
    "generation_jobs_notify",
    "tech_files_blob_references",
    "tech_file_collections_blob_references",
    "generation_jobs_blob_references",
    "revision_vision_analysis_blob_references",
    "tech_file_collection_items_one_version",
    "tech_files_after_status_change",
    "generation_jobs_after_end",
    "tech_file_collection_items_after_move",
    "generation_job_events_notify",
    "generation_jobs_notify_event_readers",
];

pub(crate) const SQLITE_TRIGGERS: &[&str] = &[
    "tech_files_before_insert",
    "tech_files_before_insert_first_version",
    "tech_files_guard_update",
    "tech_files_touch_updated_at",
    "tech_files_after_credits_change",
    "tech_file_collection_items_after_insert",
    "tech_file_collection_items_after_delete",
    "tech_file_collections_touch_updated_at",
    "revision_vision_analysis_touch_updated_at",
    "generation_jobs_touch_updated_at",
    "tech_files_blob_references_insert",
    "tech_files_blob_references_update",
    "tech_files_blob_references_delete",
    "tech_file_collections_blob_references_insert",
    "tech_file_collections_blob_references_update",
    "tech_file_collections_blob_references_delete",
    "generation_jobs_blob_references_insert",
    "generation_jobs_blob_references_update",
    "generation_jobs_blob_references_delete",
    "revision_vision_analysis_blob_references_insert",
    "revision_vision_analysis_blob_references_update",
    "revision_vision_analysis_blob_references_delete",
    "tech_file_collection_items_one_version",
    "tech_file_collection_items_one_version_move",
    "tech_files_after_status_change",
    "generation_jobs_after_end",
];

pub(crate) const POSTGRES_FUNCTIONS: &[&str] = &[
    "techpack_current_user_id",
    "techpack_touch_updated_at",
    "tech_files_before_insert",
    "tech_files_guard_update",
    "tech_file_collections_recount_credits",
    "tech_file_collection_items_after_change",
    "tech_files_after_credits_change",
    "tech_files_after_credits_change_statement",
    "create_tech_file_version",
    "generation_jobs_notify",
    "techpack_blob_entries",
    "techpack_view_photo_entries",
    "techpack_file_blob_entries",
    "techpack_collection_blob_entries",
    "techpack_job_blob_entries",
    "techpack_replace_blob_references",
    "techpack_tech_files_blob_references",
    "techpack_collections_blob_references",
    "techpack_jobs_blob_references",
    "techpack_legacy_blob_references",
    "techpack_one_version_per_collection",
    "techpack_recount_collection_progress",
    "techpack_tech_files_after_status_change",
    "techpack_generation_jobs_after_end",
    "restore_tech_file_version",
];

pub(crate) const SQLITE_VIEWS: &[&str] = &[
    "tech_files_doc",
    "tech_file_versions_doc",
    "tech_file_collections_doc",
    "tech_file_collection_items_doc",
    "revision_vision_analysis_doc",
    "generation_jobs_doc",
    "tech_files_blob_entries",
    "tech_file_collections_blob_entries",
    "generation_jobs_blob_entries",
    "tech_file_collections_progress",
    "blob_references_doc",
];

pub(crate) const POSTGRES_POLICIES: &[&str] = &[
    "tech_files_select_own",
    "tech_files_insert_own",
    "tech_files_update_own",
    "tech_file_versions_select_own",
    "tech_file_collections_select_own",
    "tech_file_collections_insert_own",
    "tech_file_collections_update_own",
    "tech_file_collections_delete_own",
    "tech_file_collection_items_select_own",
    "tech_file_collection_items_insert_own",
    "tech_file_collection_items_update_own",
    "tech_file_collection_items_delete_own",
    "revision_vision_analysis_select_own",
    "revision_vision_analysis_insert_own",
    "revision_vision_analysis_update_own",
    "generation_jobs_select_own",
    "generation_jobs_insert_own",
    "generation_jobs_update_own",
    // 20261201000010: techpack's own role and the service role on every table, and what
    // narrows a Supabase API user to the user actions.
    "tech_files_techpack_app",
    "tech_file_versions_techpack_app",
    "tech_file_collections_techpack_app",
    "tech_file_collection_items_techpack_app",
    "revision_vision_analysis_techpack_app",
    "generation_jobs_techpack_app",
    "tech_files_service_role",
    "tech_file_versions_service_role",
    "tech_file_collections_service_role",
    "tech_file_collection_items_service_role",
    "revision_vision_analysis_service_role",
    "generation_jobs_service_role",
    "tech_files_api_status_change",
    "tech_file_collections_api_delete_idle",
    "generation_jobs_api_cancel_only",
    "generation_job_events_select_own",
    "generation_job_events_service_role",
];

/// The roles the PostgreSQL migrations create where missing and techpack switches to.
pub(crate) const POSTGRES_ROLES: &[&str] = &["authenticated", "service_role", "techpack_app"];

/// What 20261201000010 grants and revokes, checked in the catalog: one row per check, with a
/// name that says what must hold (`grant …`, `revoke …`, `membership …`) and whether it does.
/// Roles that do not exist (anon and authenticator off Supabase) are skipped, not missing.
const POSTGRES_PRIVILEGE_CHECKS: &str = r#"
WITH techpack_relations AS (
    SELECT c.oid, c.relname::text AS name
      FROM pg_catalog.pg_class AS c
     WHERE c.relnamespace = 'public'::regnamespace
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND (c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
            OR c.relname = '_sqlx_migrations')
), techpack_functions AS (
    SELECT p.oid, p.oid::regprocedure::text AS name, p.proname::text AS proname
      FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace IN ('public'::regnamespace, coalesce(to_regnamespace('techpack_private'), 0))
       AND (p.pronamespace <> 'public'::regnamespace
            OR p.proname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_|create_tech_file_version$|restore_tech_file_version$)')
), roles AS (
    SELECT rolname::text AS role FROM pg_catalog.pg_roles
     WHERE rolname IN ('anon', 'authenticated', 'service_role', 'techpack_app')
), system_columns (tbl, col) AS (VALUES
    ('tech_files', 'credits_used'), ('tech_files', 'version'), ('tech_files', 'is_latest'),
    ('tech_files', 'lineage_id'), ('tech_files', 'parent_file_id'), ('tech_files', 'idempotency_key'),
    ('tech_files', 'created_by'), ('tech_files', 'file_url'), ('tech_files', 'metadata'),
    ('tech_file_collections', 'total_credits'), ('tech_file_collections', 'status'),
    ('tech_file_collections', 'completion_percentage'), ('tech_file_collections', 'metadata'),
    ('generation_jobs', 'state'), ('generation_jobs', 'result'), ('generation_jobs', 'attempts'),
    ('generation_jobs', 'lease_token'), ('generation_jobs', 'lease_expires_at'),
    ('generation_jobs', 'run_after'), ('generation_jobs', 'worker_id')
), app_grants (tbl, privileges) AS (VALUES
    ('tech_files', 'SELECT, INSERT, UPDATE'), ('tech_file_versions', 'SELECT'),
    ('tech_file_collections', 'SELECT, INSERT, UPDATE, DELETE'),
    ('tech_file_collection_items', 'SELECT, INSERT, UPDATE, DELETE'),
    ('revision_vision_analysis', 'SELECT, INSERT, UPDATE'),
    ('generation_jobs', 'SELECT, INSERT, UPDATE')
)
SELECT format('membership %s for %s', r, current_user),
       EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r)
       AND pg_catalog.pg_has_role(current_user, r,
               CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END)
  FROM unnest(ARRAY['authenticated', 'service_role', 'techpack_app']) AS r
UNION ALL
SELECT 'role-attribute techpack_app NOLOGIN NOSUPERUSER NOBYPASSRLS',
       coalesce((SELECT NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls
                   FROM pg_catalog.pg_roles WHERE rolname = 'techpack_app'), false)
UNION ALL
SELECT 'revoke techpack_app from authenticator',
       NOT pg_catalog.pg_has_role('authenticator', 'techpack_app', 'MEMBER')
  FROM pg_catalog.pg_roles WHERE rolname = 'authenticator'
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'techpack_app')
UNION ALL
SELECT format('grant techpack_app %s on %s', g.privileges, g.tbl),
       pg_catalog.has_table_privilege('techpack_app', c.oid, g.privileges)
  FROM app_grants AS g JOIN techpack_relations AS c ON c.name = g.tbl
 WHERE EXISTS (SELECT 1 FROM roles WHERE role = 'techpack_app')
UNION ALL
SELECT format('revoke anon on %s', c.name),
       NOT pg_catalog.has_table_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
       AND NOT pg_catalog.has_any_column_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
  FROM techpack_relations AS c
 WHERE EXISTS (SELECT 1 FROM roles WHERE role = 'anon')
UNION ALL
SELECT format('revoke %s on _sqlx_migrations', r.role),
       NOT pg_catalog.has_any_column_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
       AND NOT pg_catalog.has_table_privilege(r.role, c.oid, 'DELETE, TRUNCATE, TRIGGER')
  FROM roles AS r JOIN techpack_relations AS c ON c.name = '_sqlx_migrations'
UNION ALL
SELECT format('revoke %s TRUNCATE, REFERENCES, TRIGGER on %s', r.role, c.name),
       NOT pg_catalog.has_table_privilege(r.role, c.oid, 'TRUNCATE, REFERENCES, TRIGGER')
  FROM roles AS r CROSS JOIN techpack_relations AS c
UNION ALL
SELECT format('revoke authenticated INSERT on %s', c.name),
       NOT pg_catalog.has_any_column_privilege('authenticated', c.oid, 'INSERT')
  FROM techpack_relations AS c
 WHERE c.name IN ('tech_files', 'tech_file_versions', 'revision_vision_analysis', 'generation_jobs')
   AND EXISTS (SELECT 1 FROM roles WHERE role = 'authenticated')
UNION ALL
SELECT format('revoke authenticated UPDATE (%s) on %s', s.col, s.tbl),
       NOT pg_catalog.has_column_privilege('authenticated', c.oid, s.col, 'UPDATE')
  FROM system_columns AS s JOIN techpack_relations AS c ON c.name = s.tbl
 WHERE EXISTS (SELECT 1 FROM roles WHERE role = 'authenticated')
UNION ALL
SELECT format('revoke PUBLIC EXECUTE on %s', f.name),
       NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc AS p
                    CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
                    WHERE p.oid = f.oid AND a.grantee = 0)
  FROM techpack_functions AS f
UNION ALL
SELECT format('revoke %s EXECUTE on %s', r.role, f.name),
       NOT pg_catalog.has_function_privilege(r.role, f.oid, 'EXECUTE')
  FROM roles AS r CROSS JOIN techpack_functions AS f
 WHERE NOT (f.proname IN ('techpack_current_user_id', 'create_tech_file_version', 'restore_tech_file_version')
            AND r.role IN ('authenticated', 'service_role', 'techpack_app'))
   AND NOT (f.proname = 'create_tech_file_version_for_api' AND r.role = 'authenticated')
   AND NOT (f.proname = 'create_tech_file_version_as_caller' AND r.role IN ('service_role', 'techpack_app'))
"#;

/// Checks what each role may do on a PostgreSQL database (`migrate verify`): the roles'
/// memberships and attributes, techpack_app's grants, and that the API roles and PUBLIC hold
/// nothing migration 20261201000010 revoked. Each failed check is reported as missing.
pub(crate) async fn check_postgres_privileges(
    pool: &sqlx::PgPool,
    report: &mut SchemaReport,
) -> Result<(), crate::StoreError> {
    let checks: Vec<(String, bool)> = sqlx::query_as(POSTGRES_PRIVILEGE_CHECKS)
        .fetch_all(pool)
        .await?;
    for (check, holds) in checks {
        report.checked += 1;
        if !holds {
            report.missing.push(check);
        }
    }
    Ok(())
}

/// Compares what exists with what must, kind by kind.
pub(crate) fn missing(
    kind: &str,
    expected: &[&str],
    present: &[String],
    report: &mut SchemaReport,
) {
    for name in expected {
        report.checked += 1;
        if !present.iter().any(|p| p == name) {
            report.missing.push(format!("{kind} {name}"));
        }
    }
}
