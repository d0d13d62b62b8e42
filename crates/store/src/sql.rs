//! SQL shared by both backends. Reads are written once: a [`Dialect`] supplies the few places
//! where PostgreSQL and SQLite differ (placeholders, how a row becomes JSON, and scoping —
//! PostgreSQL scopes rows by RLS, SQLite by an explicit owner condition).

use chrono::{DateTime, Utc};
use techpack_model::{FileFilter, Principal};
use uuid::Uuid;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Uuid(Uuid),
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Time(DateTime<Utc>),
}

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// A table that has a JSON document form.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Table {
    Files,
    Versions,
    Collections,
    Items,
    Legacy,
    BlobReferences,
}

impl Table {
    fn postgres(self) -> &'static str {
        match self {
            Table::Files => "public.tech_files",
            Table::Versions => "public.tech_file_versions",
            Table::Collections => "public.tech_file_collections",
            Table::Items => "public.tech_file_collection_items",
            Table::Legacy => "public.revision_vision_analysis",
            Table::BlobReferences => "public.blob_references",
        }
    }

    fn sqlite_doc_view(self) -> &'static str {
        match self {
            Table::Files => "tech_files_doc",
            Table::Versions => "tech_file_versions_doc",
            Table::Collections => "tech_file_collections_doc",
            Table::Items => "tech_file_collection_items_doc",
            Table::Legacy => "revision_vision_analysis_doc",
            Table::BlobReferences => "blob_references_doc",
        }
    }
}

/// Builds one statement with numbered placeholders.
#[derive(Debug)]
pub(crate) struct Query {
    pub dialect: Dialect,
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Query {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            sql: String::new(),
            binds: Vec::new(),
        }
    }

    /// Appends raw SQL.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        let n = self.binds.len();
        match self.dialect {
            Dialect::Postgres => self.sql.push_str(&format!("${n}")),
            Dialect::Sqlite => self.sql.push_str(&format!("?{n}")),
        }
        self
    }

    /// `SELECT <doc> AS doc FROM <table> AS <alias>`: one JSON text column per row.
    pub fn select_docs(&mut self, table: Table, alias: &str) -> &mut Self {
        match self.dialect {
            Dialect::Postgres => self.push(&format!(
                "SELECT to_jsonb({alias})::text AS doc FROM {} AS {alias}",
                table.postgres()
            )),
            Dialect::Sqlite => self.push(&format!(
                "SELECT {alias}.doc AS doc FROM {} AS {alias}",
                table.sqlite_doc_view()
            )),
        }
    }

    /// The table's name for a FROM clause without documents.
    pub fn table(&mut self, table: Table, alias: &str) -> &mut Self {
        match self.dialect {
            Dialect::Postgres => self.push(&format!("{} AS {alias}", table.postgres())),
            Dialect::Sqlite => self.push(&format!("{} AS {alias}", table.sqlite_doc_view())),
        }
    }

    /// ` AND <alias>.user_id = <caller>` where the backend has no RLS and the caller is a user.
    pub fn scope(&mut self, alias: &str, principal: Principal) -> &mut Self {
        if let (Dialect::Sqlite, Principal::User(user)) = (self.dialect, principal) {
            self.push(&format!(" AND {alias}.user_id = "));
            self.bind(Bind::Uuid(user));
        }
        self
    }

    /// The predicate "is the latest version".
    pub fn is_latest(&mut self, alias: &str) -> &mut Self {
        match self.dialect {
            Dialect::Postgres => self.push(&format!("{alias}.is_latest")),
            Dialect::Sqlite => self.push(&format!("{alias}.is_latest = 1")),
        }
    }
}

/// The page query of `get_latest_tech_files`: only the filters given become conditions, so
/// each combination can use its index. Fetches one row more than the page to know if there
/// is a next page.
pub(crate) fn latest_files(
    dialect: Dialect,
    principal: Principal,
    filter: &FileFilter,
    page_size: u32,
) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Files, "t")
        .push(" WHERE ")
        .is_latest("t");
    q.scope("t", principal);
    if let Some(product) = filter.product_idea_id {
        q.push(" AND t.product_idea_id = ")
            .bind(Bind::Uuid(product));
    }
    if let Some(revision) = filter.revision_id {
        q.push(" AND t.revision_id = ").bind(Bind::Uuid(revision));
    }
    if let Some(file_type) = filter.file_type {
        q.push(" AND t.file_type = ")
            .bind(Bind::Text(file_type.as_str().into()));
    }
    if let Some(view) = &filter.view_type {
        q.push(" AND t.view_type = ").bind(Bind::Text(view.clone()));
    }
    match filter.status {
        Some(status) => {
            q.push(" AND t.status = ")
                .bind(Bind::Text(status.as_str().into()));
        }
        None => {
            q.push(" AND t.status <> 'archived'");
        }
    }
    if let Some(batch) = filter.generation_batch_id {
        q.push(" AND t.generation_batch_id = ")
            .bind(Bind::Uuid(batch));
    }
    if let Some(after) = filter.after {
        q.push(" AND (t.created_at, t.id) < (")
            .bind(Bind::Time(after.created_at))
            .push(", ")
            .bind(Bind::Uuid(after.id))
            .push(")");
    }
    q.push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
        .bind(Bind::Int(i64::from(page_size) + 1));
    q
}

/// One row by id.
pub(crate) fn doc_by_id(dialect: Dialect, principal: Principal, table: Table, id: Uuid) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(table, "t")
        .push(" WHERE t.id = ")
        .bind(Bind::Uuid(id));
    q.scope("t", principal);
    q
}

/// Every row of a lineage, oldest version first.
pub(crate) fn lineage_files(dialect: Dialect, principal: Principal, lineage_id: Uuid) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Files, "t")
        .push(" WHERE t.lineage_id = ")
        .bind(Bind::Uuid(lineage_id));
    q.scope("t", principal);
    q.push(" ORDER BY t.version");
    q
}

/// The archived snapshots of a lineage, oldest first.
pub(crate) fn lineage_versions(dialect: Dialect, principal: Principal, lineage_id: Uuid) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Versions, "t")
        .push(" WHERE t.lineage_id = ")
        .bind(Bind::Uuid(lineage_id));
    q.scope("t", principal);
    q.push(" ORDER BY t.version");
    q
}

/// The files of a generation run, in creation order.
pub(crate) fn batch_files(dialect: Dialect, principal: Principal, batch: Uuid) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Files, "t")
        .push(" WHERE t.generation_batch_id = ")
        .bind(Bind::Uuid(batch));
    q.scope("t", principal);
    q.push(" ORDER BY t.created_at, t.id");
    q
}

/// A file by its idempotency key.
pub(crate) fn file_by_idempotency_key(
    dialect: Dialect,
    principal: Principal,
    owner: Uuid,
    key: &str,
) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Files, "t")
        .push(" WHERE t.user_id = ")
        .bind(Bind::Uuid(owner))
        .push(" AND t.idempotency_key = ")
        .bind(Bind::Text(key.into()));
    q.scope("t", principal);
    q
}

/// Collections, newest first, optionally of one product.
pub(crate) fn collections(dialect: Dialect, principal: Principal, product: Option<Uuid>) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Collections, "t").push(" WHERE 1 = 1");
    q.scope("t", principal);
    if let Some(product) = product {
        q.push(" AND t.product_idea_id = ")
            .bind(Bind::Uuid(product));
    }
    q.push(" ORDER BY t.created_at DESC, t.id DESC");
    q
}

/// A collection's items in display order.
pub(crate) fn collection_items(dialect: Dialect, principal: Principal, collection: Uuid) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Items, "t")
        .push(" WHERE t.collection_id = ")
        .bind(Bind::Uuid(collection));
    q.scope("t", principal);
    q.push(" ORDER BY t.display_order, t.created_at, t.id");
    q
}

/// The files that a collection's items point to.
pub(crate) fn collection_files(dialect: Dialect, principal: Principal, collection: Uuid) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Files, "t")
        .push(" WHERE t.id IN (SELECT i.tech_file_id FROM ");
    q.table(Table::Items, "i")
        .push(" WHERE i.collection_id = ")
        .bind(Bind::Uuid(collection));
    q.scope("i", principal);
    q.push(")");
    q.scope("t", principal);
    q
}

/// `getProductGenerationStats`: (file_type, status, rows, credits, latest rows).
pub(crate) fn product_stats(dialect: Dialect, principal: Principal, product: Uuid) -> Query {
    let mut q = Query::new(dialect);
    q.push(
        "SELECT t.file_type, t.status, CAST(count(*) AS BIGINT), CAST(coalesce(sum(t.credits_used), 0) AS BIGINT), \
         CAST(sum(CASE WHEN t.is_latest THEN 1 ELSE 0 END) AS BIGINT) FROM ",
    );
    q.table(Table::Files, "t")
        .push(" WHERE t.product_idea_id = ")
        .bind(Bind::Uuid(product));
    q.scope("t", principal);
    q.push(" GROUP BY t.file_type, t.status ORDER BY t.file_type, t.status");
    q
}

/// Monitoring: files created since `since` by type and status.
pub(crate) fn recent_files(dialect: Dialect, principal: Principal, since: DateTime<Utc>) -> Query {
    let mut q = Query::new(dialect);
    q.push("SELECT t.file_type, t.status, CAST(count(*) AS BIGINT) FROM ");
    q.table(Table::Files, "t")
        .push(" WHERE t.created_at > ")
        .bind(Bind::Time(since));
    q.scope("t", principal);
    q.push(" GROUP BY t.file_type, t.status ORDER BY t.file_type, t.status");
    q
}

/// Monitoring: credits by product since `since`, most first.
pub(crate) fn credits_by_product(
    dialect: Dialect,
    principal: Principal,
    since: DateTime<Utc>,
) -> Query {
    let mut q = Query::new(dialect);
    q.push(
        "SELECT CAST(t.product_idea_id AS TEXT), CAST(coalesce(sum(t.credits_used), 0) AS BIGINT), CAST(count(*) AS BIGINT) FROM ",
    );
    q.table(Table::Files, "t")
        .push(" WHERE t.created_at > ")
        .bind(Bind::Time(since));
    q.scope("t", principal);
    q.push(" GROUP BY t.product_idea_id ORDER BY 2 DESC, 1");
    q
}

/// Monitoring: collection completion by status.
pub(crate) fn collection_completion(dialect: Dialect, principal: Principal) -> Query {
    let mut q = Query::new(dialect);
    q.push(
        "SELECT t.status, CAST(avg(t.completion_percentage) AS DOUBLE PRECISION), CAST(count(*) AS BIGINT) FROM ",
    );
    q.table(Table::Collections, "t").push(" WHERE 1 = 1");
    q.scope("t", principal);
    q.push(" GROUP BY t.status ORDER BY t.status");
    q
}

/// SQLite stores timestamps as RFC 3339 text with milliseconds; comparisons must use the same
/// form as the stored values.
pub(crate) fn sqlite_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Decodes a JSON document column.
pub(crate) fn decode_doc<T: serde::de::DeserializeOwned>(
    doc: &str,
) -> Result<T, crate::StoreError> {
    serde_json::from_str(doc)
        .map_err(|error| crate::StoreError::Corrupt(format!("{error} in {doc:.200}")))
}

/// The newest legacy analysis of a revision's view (of one image, when a hash is given).
pub(crate) fn legacy_lookup(
    dialect: Dialect,
    principal: Principal,
    revision_id: Uuid,
    view_type: &str,
    image_sha256: Option<&str>,
) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Legacy, "t")
        .push(" WHERE t.revision_id = ")
        .bind(Bind::Uuid(revision_id))
        .push(" AND t.view_type = ")
        .bind(Bind::Text(view_type.into()));
    if let Some(hash) = image_sha256 {
        q.push(" AND t.image_sha256 = ")
            .bind(Bind::Text(hash.into()));
    }
    q.scope("t", principal);
    q.push(" ORDER BY t.created_at DESC, t.id DESC LIMIT 1");
    q
}

/// Legacy rows in creation order after the row `after`.
pub(crate) fn legacy_page(
    dialect: Dialect,
    principal: Principal,
    after: Option<Uuid>,
    limit: u32,
) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Legacy, "t").push(" WHERE 1 = 1");
    q.scope("t", principal);
    if let Some(after) = after {
        q.push(" AND (t.created_at, t.id) > (SELECT a.created_at, a.id FROM ");
        q.table(Table::Legacy, "a")
            .push(" WHERE a.id = ")
            .bind(Bind::Uuid(after))
            .push(")");
    }
    q.push(" ORDER BY t.created_at, t.id LIMIT ")
        .bind(Bind::Int(i64::from(
            limit.clamp(1, techpack_model::MAX_PAGE_SIZE),
        )));
    q
}

/// The references of blob keys: one row per key — (key, live rows, archived rows, last
/// archive time, legacy rows) — in key order, after `after` or of exactly `key`.
pub(crate) fn blob_references(
    dialect: Dialect,
    principal: Principal,
    after: Option<&str>,
    key: Option<&str>,
    limit: u32,
) -> Query {
    let mut q = Query::new(dialect);
    // `live` is a boolean on PostgreSQL and 0/1 on SQLite: CASE reads both.
    q.push(
        "SELECT r.blob_key, \
         CAST(sum(CASE WHEN r.source <> 'legacy' AND r.live THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(sum(CASE WHEN r.live THEN 0 ELSE 1 END) AS BIGINT), \
         max(CASE WHEN r.live THEN NULL ELSE r.changed_at END), \
         CAST(sum(CASE WHEN r.source = 'legacy' THEN 1 ELSE 0 END) AS BIGINT) FROM ",
    );
    q.table(Table::BlobReferences, "r").push(" WHERE 1 = 1");
    q.scope("r", principal);
    blob_key_condition(&mut q, "r.blob_key", after, key);
    q.push(" GROUP BY r.blob_key ORDER BY r.blob_key LIMIT ")
        .bind(Bind::Int(i64::from(limit.max(1))));
    q
}

/// The live references of the first `keys` blob keys after `after`, in key order: what fsck
/// verifies, each key once with every row that needs it.
pub(crate) fn live_blob_references(
    dialect: Dialect,
    principal: Principal,
    after: Option<&str>,
    keys: u32,
) -> Query {
    let mut q = Query::new(dialect);
    let live = match dialect {
        Dialect::Postgres => "live",
        Dialect::Sqlite => "live = 1",
    };
    q.select_docs(Table::BlobReferences, "r")
        .push(&format!(" WHERE r.{live}"));
    q.scope("r", principal);
    q.push(" AND r.blob_key IN (SELECT k.blob_key FROM ");
    q.table(Table::BlobReferences, "k")
        .push(&format!(" WHERE k.{live}"));
    q.scope("k", principal);
    blob_key_condition(&mut q, "k.blob_key", after, None);
    q.push(" GROUP BY k.blob_key ORDER BY k.blob_key LIMIT ")
        .bind(Bind::Int(i64::from(keys.max(1))));
    q.push(") ORDER BY r.blob_key, r.source, r.source_id, r.name");
    q
}

/// The references of some rows of one source, in (row, name) order.
pub(crate) fn blob_references_of(
    dialect: Dialect,
    principal: Principal,
    source: &str,
    ids: &[Uuid],
) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::BlobReferences, "r")
        .push(" WHERE r.source = ")
        .bind(Bind::Text(source.into()));
    q.scope("r", principal);
    q.push(" AND r.source_id IN (");
    for (index, id) in ids.iter().enumerate() {
        if index > 0 {
            q.push(", ");
        }
        q.bind(Bind::Uuid(*id));
    }
    if ids.is_empty() {
        q.push("NULL");
    }
    q.push(") ORDER BY r.source_id, r.name");
    q
}

fn blob_key_condition(q: &mut Query, column: &str, after: Option<&str>, key: Option<&str>) {
    if let Some(after) = after {
        q.push(&format!(" AND {column} > "))
            .bind(Bind::Text(after.into()));
    }
    if let Some(key) = key {
        q.push(&format!(" AND {column} = "))
            .bind(Bind::Text(key.into()));
    }
}

/// Non-archived rows with a blob, in id order after `after`.
pub(crate) fn files_with_blobs(
    dialect: Dialect,
    principal: Principal,
    after: Option<Uuid>,
    limit: u32,
) -> Query {
    let mut q = Query::new(dialect);
    q.select_docs(Table::Files, "t")
        .push(" WHERE t.file_url IS NOT NULL AND t.status <> 'archived'");
    q.scope("t", principal);
    if let Some(after) = after {
        // SQLite keeps ids as text; comparing the canonical lower-case strings orders them
        // the same way as PostgreSQL's uuid comparison.
        q.push(" AND t.id > ").bind(Bind::Uuid(after));
    }
    q.push(" ORDER BY t.id LIMIT ")
        .bind(Bind::Int(i64::from(limit.max(1))));
    q
}
