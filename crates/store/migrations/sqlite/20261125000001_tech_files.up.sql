-- techpack: the tech files system on SQLite. Same tables, checks and invariants as the
-- PostgreSQL migration; UUIDs are TEXT, JSON is TEXT checked with json_valid, timestamps are
-- RFC 3339 TEXT in UTC. Isolation is done by the store scoping every statement to the caller.

CREATE TABLE tech_files (
    id TEXT PRIMARY KEY NOT NULL,
    lineage_id TEXT NOT NULL,
    product_idea_id TEXT NOT NULL,
    revision_id TEXT,
    user_id TEXT NOT NULL,
    file_type TEXT NOT NULL
        CHECK (file_type IN ('base_view', 'closeup', 'sketch', 'category', 'complete_pack')),
    view_type TEXT CHECK (view_type IS NULL OR length(trim(view_type)) > 0),
    file_category TEXT CHECK (file_category IS NULL OR length(trim(file_category)) > 0),
    file_url TEXT CHECK (file_url IS NULL OR length(trim(file_url)) > 0),
    content_sha256 TEXT CHECK (content_sha256 IS NULL OR (length(content_sha256) = 64 AND content_sha256 NOT GLOB '*[^0-9a-f]*')),
    content_size INTEGER CHECK (content_size IS NULL OR content_size >= 0),
    mime_type TEXT,
    analysis_data TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(analysis_data) AND json_type(analysis_data) = 'object' AND length(analysis_data) <= 2097152),
    metadata TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(metadata) AND json_type(metadata) = 'object' AND length(metadata) <= 2097152),
    ai_model TEXT,
    generation_prompt TEXT,
    generation_batch_id TEXT,
    idempotency_key TEXT CHECK (idempotency_key IS NULL OR length(idempotency_key) > 0),
    credits_used INTEGER NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    confidence_score REAL CHECK (confidence_score BETWEEN 0 AND 1),
    quality_score REAL CHECK (quality_score BETWEEN 0 AND 1),
    status TEXT NOT NULL DEFAULT 'processing'
        CHECK (status IN ('processing', 'completed', 'failed', 'archived')),
    error_message TEXT,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    parent_file_id TEXT,
    is_latest INTEGER NOT NULL DEFAULT 1 CHECK (is_latest IN (0, 1)),
    created_by TEXT,
    change_description TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT tech_files_first_version_has_no_parent CHECK ((version = 1) = (parent_file_id IS NULL)),
    CONSTRAINT tech_files_first_version_starts_lineage CHECK (version > 1 OR lineage_id = id),
    CONSTRAINT tech_files_lineage_version_key UNIQUE (lineage_id, version),
    CONSTRAINT tech_files_id_user_key UNIQUE (id, user_id),
    CONSTRAINT tech_files_parent_fkey FOREIGN KEY (parent_file_id, user_id)
        REFERENCES tech_files (id, user_id) ON DELETE RESTRICT
);

CREATE TABLE tech_file_versions (
    id TEXT PRIMARY KEY NOT NULL,
    tech_file_id TEXT NOT NULL,
    lineage_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    snapshot TEXT NOT NULL CHECK (json_valid(snapshot) AND json_type(snapshot) = 'object'),
    created_by TEXT,
    change_description TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT tech_file_versions_tech_file_key UNIQUE (tech_file_id),
    CONSTRAINT tech_file_versions_lineage_version_key UNIQUE (lineage_id, version),
    CONSTRAINT tech_file_versions_tech_file_fkey FOREIGN KEY (tech_file_id, user_id)
        REFERENCES tech_files (id, user_id) ON DELETE CASCADE
);

CREATE TABLE tech_file_collections (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    product_idea_id TEXT NOT NULL,
    name TEXT NOT NULL CHECK (length(trim(name)) > 0),
    description TEXT,
    collection_type TEXT NOT NULL DEFAULT 'tech_pack_v2'
        CHECK (collection_type IN ('tech_pack_v2', 'base_views_set', 'sketches_set', 'closeups_set')),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'completed', 'partial', 'failed')),
    completion_percentage INTEGER NOT NULL DEFAULT 0 CHECK (completion_percentage BETWEEN 0 AND 100),
    total_credits INTEGER NOT NULL DEFAULT 0 CHECK (total_credits >= 0),
    generation_batch_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    completed_at TEXT,
    CONSTRAINT tech_file_collections_id_user_key UNIQUE (id, user_id)
);

CREATE TABLE tech_file_collection_items (
    id TEXT PRIMARY KEY NOT NULL,
    collection_id TEXT NOT NULL,
    tech_file_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    display_order INTEGER NOT NULL DEFAULT 0 CHECK (display_order >= 0),
    section TEXT CHECK (section IS NULL OR length(trim(section)) > 0),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT tech_file_collection_items_file_key UNIQUE (collection_id, tech_file_id),
    CONSTRAINT tech_file_collection_items_collection_fkey FOREIGN KEY (collection_id, user_id)
        REFERENCES tech_file_collections (id, user_id) ON DELETE CASCADE,
    CONSTRAINT tech_file_collection_items_file_fkey FOREIGN KEY (tech_file_id, user_id)
        REFERENCES tech_files (id, user_id) ON DELETE CASCADE
);

CREATE TABLE revision_vision_analysis (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    product_idea_id TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    view_type TEXT NOT NULL CHECK (length(trim(view_type)) > 0),
    image_url TEXT,
    image_sha256 TEXT CHECK (image_sha256 IS NULL OR (length(image_sha256) = 64 AND image_sha256 NOT GLOB '*[^0-9a-f]*')),
    analysis_data TEXT NOT NULL CHECK (json_valid(analysis_data) AND json_type(analysis_data) = 'object'),
    model_used TEXT,
    credits_used INTEGER NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX tech_files_product_revision_idx ON tech_files (product_idea_id, revision_id);
CREATE INDEX tech_files_user_id_idx ON tech_files (user_id);
CREATE INDEX tech_files_file_type_idx ON tech_files (file_type);
CREATE INDEX tech_files_product_latest_idx ON tech_files (product_idea_id, created_at DESC, id DESC) WHERE is_latest = 1;
CREATE INDEX tech_files_user_latest_idx ON tech_files (user_id, created_at DESC, id DESC) WHERE is_latest = 1;
CREATE INDEX tech_files_generation_batch_idx ON tech_files (generation_batch_id) WHERE generation_batch_id IS NOT NULL;
CREATE INDEX tech_files_status_idx ON tech_files (status);
CREATE INDEX tech_files_created_at_idx ON tech_files (created_at DESC);
CREATE INDEX tech_files_parent_file_idx ON tech_files (parent_file_id) WHERE parent_file_id IS NOT NULL;
CREATE INDEX tech_files_file_url_idx ON tech_files (file_url) WHERE file_url IS NOT NULL;
CREATE UNIQUE INDEX tech_files_one_latest_per_lineage ON tech_files (lineage_id) WHERE is_latest = 1;
CREATE UNIQUE INDEX tech_files_user_idempotency_key ON tech_files (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tech_file_versions_user_id_idx ON tech_file_versions (user_id);
CREATE INDEX tech_file_collections_user_product_idx ON tech_file_collections (user_id, product_idea_id, created_at DESC);
CREATE INDEX tech_file_collections_status_idx ON tech_file_collections (status);
CREATE INDEX tech_file_collection_items_user_id_idx ON tech_file_collection_items (user_id);
CREATE INDEX tech_file_collection_items_file_idx ON tech_file_collection_items (tech_file_id);
CREATE INDEX tech_file_collection_items_order_idx ON tech_file_collection_items (collection_id, display_order);
CREATE INDEX revision_vision_analysis_lookup_idx ON revision_vision_analysis (user_id, revision_id, view_type, created_at DESC);
CREATE INDEX revision_vision_analysis_user_id_idx ON revision_vision_analysis (user_id);

-- One JSON document per row, the same shape PostgreSQL's to_jsonb(row) gives: the store reads
-- rows through it and the archive trigger snapshots through it, so both agree.
CREATE VIEW tech_files_doc AS
SELECT t.*, json_object(
    'id', t.id, 'lineage_id', t.lineage_id, 'product_idea_id', t.product_idea_id,
    'revision_id', t.revision_id, 'user_id', t.user_id, 'file_type', t.file_type,
    'view_type', t.view_type, 'file_category', t.file_category, 'file_url', t.file_url,
    'content_sha256', t.content_sha256, 'content_size', t.content_size, 'mime_type', t.mime_type,
    'analysis_data', json(t.analysis_data), 'metadata', json(t.metadata), 'ai_model', t.ai_model,
    'generation_prompt', t.generation_prompt, 'generation_batch_id', t.generation_batch_id,
    'idempotency_key', t.idempotency_key, 'credits_used', t.credits_used,
    'confidence_score', t.confidence_score, 'quality_score', t.quality_score, 'status', t.status,
    'error_message', t.error_message, 'version', t.version, 'parent_file_id', t.parent_file_id,
    'is_latest', json(CASE WHEN t.is_latest THEN 'true' ELSE 'false' END),
    'created_by', t.created_by, 'change_description', t.change_description,
    'created_at', t.created_at, 'updated_at', t.updated_at
) AS doc
FROM tech_files AS t;

CREATE VIEW tech_file_versions_doc AS
SELECT v.*, json_object(
    'id', v.id, 'tech_file_id', v.tech_file_id, 'lineage_id', v.lineage_id, 'user_id', v.user_id,
    'version', v.version, 'snapshot', json(v.snapshot), 'created_by', v.created_by,
    'change_description', v.change_description, 'created_at', v.created_at
) AS doc
FROM tech_file_versions AS v;

CREATE VIEW tech_file_collections_doc AS
SELECT c.*, json_object(
    'id', c.id, 'user_id', c.user_id, 'product_idea_id', c.product_idea_id, 'name', c.name,
    'description', c.description, 'collection_type', c.collection_type, 'status', c.status,
    'completion_percentage', c.completion_percentage, 'total_credits', c.total_credits,
    'generation_batch_id', c.generation_batch_id, 'metadata', json(c.metadata),
    'created_at', c.created_at, 'updated_at', c.updated_at, 'completed_at', c.completed_at
) AS doc
FROM tech_file_collections AS c;

CREATE VIEW tech_file_collection_items_doc AS
SELECT i.*, json_object(
    'id', i.id, 'collection_id', i.collection_id, 'tech_file_id', i.tech_file_id,
    'user_id', i.user_id, 'display_order', i.display_order, 'section', i.section,
    'created_at', i.created_at
) AS doc
FROM tech_file_collection_items AS i;

CREATE VIEW revision_vision_analysis_doc AS
SELECT r.*, json_object(
    'id', r.id, 'user_id', r.user_id, 'product_idea_id', r.product_idea_id,
    'revision_id', r.revision_id, 'view_type', r.view_type, 'image_url', r.image_url,
    'image_sha256', r.image_sha256, 'analysis_data', json(r.analysis_data),
    'model_used', r.model_used, 'credits_used', r.credits_used,
    'created_at', r.created_at, 'updated_at', r.updated_at
) AS doc
FROM revision_vision_analysis AS r;

-- A new version supersedes its parent: the parent must be the latest version of the same
-- lineage and owner, one version lower; it is archived, then flipped, in the same statement.
CREATE TRIGGER tech_files_before_insert BEFORE INSERT ON tech_files
WHEN NEW.parent_file_id IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'techpack:conflict: the parent is not the latest version of its file; read the latest version again and create the new version from it')
     WHERE NOT EXISTS (
        SELECT 1 FROM tech_files
         WHERE id = NEW.parent_file_id AND user_id = NEW.user_id AND is_latest = 1
           AND lineage_id = NEW.lineage_id AND version = NEW.version - 1);
    INSERT INTO tech_file_versions
        (id, tech_file_id, lineage_id, user_id, version, snapshot, created_by, change_description)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
           substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
           id, lineage_id, user_id, version, json_set(doc, '$.is_latest', json('false')),
           NEW.created_by, NEW.change_description
      FROM tech_files_doc WHERE id = NEW.parent_file_id;
    UPDATE tech_files SET is_latest = 0 WHERE id = NEW.parent_file_id;
END;

CREATE TRIGGER tech_files_before_insert_first_version BEFORE INSERT ON tech_files
WHEN NEW.parent_file_id IS NULL AND (NEW.version <> 1 OR NEW.is_latest <> 1 OR NEW.lineage_id <> NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'techpack:invalid: a first version has version 1, is latest and starts its own lineage');
END;

CREATE TRIGGER tech_files_guard_update BEFORE UPDATE ON tech_files
WHEN NEW.id IS NOT OLD.id OR NEW.lineage_id IS NOT OLD.lineage_id OR NEW.user_id IS NOT OLD.user_id
  OR NEW.product_idea_id IS NOT OLD.product_idea_id OR NEW.file_type IS NOT OLD.file_type
  OR NEW.version IS NOT OLD.version OR NEW.parent_file_id IS NOT OLD.parent_file_id
  OR NEW.created_at IS NOT OLD.created_at OR (NEW.is_latest = 1 AND OLD.is_latest = 0)
BEGIN
    SELECT RAISE(ABORT, 'techpack:invalid: id, lineage, owner, product, type, version, parent and created_at cannot change, and an old version cannot become latest again; create a new version instead');
END;

CREATE TRIGGER tech_files_touch_updated_at AFTER UPDATE ON tech_files
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE tech_files SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;

CREATE TRIGGER tech_files_after_credits_change AFTER UPDATE OF credits_used ON tech_files
WHEN NEW.credits_used IS NOT OLD.credits_used
BEGIN
    UPDATE tech_file_collections
       SET total_credits = coalesce((
               SELECT sum(f.credits_used) FROM tech_file_collection_items AS i
                 JOIN tech_files AS f ON f.id = i.tech_file_id
                WHERE i.collection_id = tech_file_collections.id), 0)
     WHERE id IN (SELECT collection_id FROM tech_file_collection_items WHERE tech_file_id = NEW.id);
END;

CREATE TRIGGER tech_file_collection_items_after_insert AFTER INSERT ON tech_file_collection_items
BEGIN
    UPDATE tech_file_collections
       SET total_credits = coalesce((
               SELECT sum(f.credits_used) FROM tech_file_collection_items AS i
                 JOIN tech_files AS f ON f.id = i.tech_file_id
                WHERE i.collection_id = NEW.collection_id), 0)
     WHERE id = NEW.collection_id;
END;

CREATE TRIGGER tech_file_collection_items_after_delete AFTER DELETE ON tech_file_collection_items
BEGIN
    UPDATE tech_file_collections
       SET total_credits = coalesce((
               SELECT sum(f.credits_used) FROM tech_file_collection_items AS i
                 JOIN tech_files AS f ON f.id = i.tech_file_id
                WHERE i.collection_id = OLD.collection_id), 0)
     WHERE id = OLD.collection_id;
END;

CREATE TRIGGER tech_file_collections_touch_updated_at AFTER UPDATE ON tech_file_collections
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE tech_file_collections SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;

CREATE TRIGGER revision_vision_analysis_touch_updated_at AFTER UPDATE ON revision_vision_analysis
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE revision_vision_analysis SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
