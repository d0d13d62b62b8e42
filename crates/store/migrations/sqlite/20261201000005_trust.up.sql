-- techpack: what the system must be able to trust (see the PostgreSQL migration of the same
-- version for the reasons): the database's identity, the blob references every row needs (kept
-- by triggers, in the same transaction as the row), job identity and batch, one version of a
-- file per collection, a finished pack's progress following its files, and nothing left
-- processing by a job that ended.

CREATE TABLE techpack_instance (
    id TEXT PRIMARY KEY NOT NULL,
    singleton INTEGER NOT NULL DEFAULT 1 UNIQUE CHECK (singleton = 1),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO techpack_instance (id)
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
       substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));

CREATE TABLE blob_references (
    source TEXT NOT NULL CHECK (source IN ('tech_file', 'job', 'collection', 'legacy')),
    source_id TEXT NOT NULL,
    name TEXT NOT NULL CHECK (length(name) > 0),
    user_id TEXT NOT NULL,
    blob_key TEXT NOT NULL CHECK (length(blob_key) > 0),
    sha256 TEXT,
    size INTEGER,
    live INTEGER NOT NULL CHECK (live IN (0, 1)),
    changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (source, source_id, name)
);
CREATE INDEX blob_references_key_idx ON blob_references (blob_key);
CREATE INDEX blob_references_user_idx ON blob_references (user_id);

-- The references each row needs, as one row per (source row, name) with the position that
-- decides which entry of a name wins. Written as UNION ALL of one arm per place a key can be,
-- so a lookup by source_id reaches each arm's primary key.
CREATE VIEW tech_files_blob_entries AS
SELECT t.id AS source_id, t.user_id, t.status <> 'archived' AS live, 'content' AS name,
       t.file_url AS blob_key, t.content_sha256 AS sha256, t.content_size AS size, 0 AS position
  FROM tech_files AS t WHERE coalesce(t.file_url, '') <> ''
UNION ALL
SELECT t.id, t.user_id, t.status <> 'archived', 'png', json_extract(t.metadata, '$.png_key'),
       json_extract(t.metadata, '$.png_sha256'),
       CASE WHEN json_type(t.metadata, '$.png_size') = 'integer' THEN json_extract(t.metadata, '$.png_size') END, 1
  FROM tech_files AS t WHERE coalesce(json_extract(t.metadata, '$.png_key'), '') <> ''
UNION ALL
SELECT t.id, t.user_id, t.status <> 'archived', b.key, json_extract(b.value, '$.key'),
       json_extract(b.value, '$.sha256'),
       CASE WHEN json_type(b.value, '$.size') = 'integer' THEN json_extract(b.value, '$.size') END, 2
  FROM tech_files AS t,
       json_each(CASE WHEN json_type(t.metadata, '$.blobs') = 'object' THEN json_extract(t.metadata, '$.blobs') ELSE '{}' END) AS b
 WHERE b.type = 'object' AND coalesce(json_extract(b.value, '$.key'), '') <> '';

CREATE VIEW tech_file_collections_blob_entries AS
SELECT t.id AS source_id, t.user_id, 1 AS live, 'photo:' || json_extract(v.value, '$.view') AS name,
       json_extract(v.value, '$.photo_key') AS blob_key, json_extract(v.value, '$.photo_sha256') AS sha256,
       NULL AS size, 0 AS position
  FROM tech_file_collections AS t,
       json_each(CASE WHEN json_type(t.metadata, '$.request.views') = 'array' THEN json_extract(t.metadata, '$.request.views') ELSE '[]' END) AS v
 WHERE coalesce(json_extract(v.value, '$.view'), '') <> '' AND coalesce(json_extract(v.value, '$.photo_key'), '') <> ''
UNION ALL
SELECT t.id, t.user_id, 1, 'primary_image', json_extract(t.metadata, '$.primary_image'), NULL, NULL, 1
  FROM tech_file_collections AS t WHERE coalesce(json_extract(t.metadata, '$.primary_image'), '') <> ''
UNION ALL
SELECT t.id, t.user_id, 1, b.key, json_extract(b.value, '$.key'), json_extract(b.value, '$.sha256'),
       CASE WHEN json_type(b.value, '$.size') = 'integer' THEN json_extract(b.value, '$.size') END, 2
  FROM tech_file_collections AS t,
       json_each(CASE WHEN json_type(t.metadata, '$.blobs') = 'object' THEN json_extract(t.metadata, '$.blobs') ELSE '{}' END) AS b
 WHERE b.type = 'object' AND coalesce(json_extract(b.value, '$.key'), '') <> '';

-- A job's photos are live while it may still run.
CREATE VIEW generation_jobs_blob_entries AS
SELECT t.id AS source_id, t.user_id, t.state IN ('queued', 'running') AS live,
       'photo:' || json_extract(v.value, '$.view') AS name, json_extract(v.value, '$.photo_key') AS blob_key,
       json_extract(v.value, '$.photo_sha256') AS sha256, NULL AS size, 0 AS position
  FROM generation_jobs AS t,
       json_each(CASE WHEN json_type(t.request, '$.work.views') = 'array' THEN json_extract(t.request, '$.work.views') ELSE '[]' END) AS v
 WHERE coalesce(json_extract(v.value, '$.view'), '') <> '' AND coalesce(json_extract(v.value, '$.photo_key'), '') <> ''
UNION ALL
SELECT t.id, t.user_id, t.state IN ('queued', 'running'), b.key, json_extract(b.value, '$.key'),
       json_extract(b.value, '$.sha256'),
       CASE WHEN json_type(b.value, '$.size') = 'integer' THEN json_extract(b.value, '$.size') END, 2
  FROM generation_jobs AS t,
       json_each(CASE WHEN json_type(t.request, '$.blobs') = 'object' THEN json_extract(t.request, '$.blobs') ELSE '{}' END) AS b
 WHERE b.type = 'object' AND coalesce(json_extract(b.value, '$.key'), '') <> '';

-- Each trigger makes the row's references exactly what its entries view says: upserts the
-- entries (the first of a name wins; a reference that stays as it was keeps its changed_at),
-- then drops the names that are gone.
CREATE TRIGGER tech_files_blob_references_insert AFTER INSERT ON tech_files
BEGIN
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
    SELECT 'tech_file', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
      FROM tech_files_blob_entries AS e WHERE e.source_id = NEW.id ORDER BY e.name, e.position
        ON CONFLICT (source, source_id, name) DO NOTHING;
END;

CREATE TRIGGER tech_files_blob_references_update AFTER UPDATE OF file_url, content_sha256, content_size, metadata, status ON tech_files
WHEN NEW.file_url IS NOT OLD.file_url OR NEW.content_sha256 IS NOT OLD.content_sha256
  OR NEW.content_size IS NOT OLD.content_size OR NEW.metadata IS NOT OLD.metadata
  OR (NEW.status = 'archived') IS NOT (OLD.status = 'archived')
BEGIN
    DELETE FROM blob_references
     WHERE source = 'tech_file' AND source_id = NEW.id
       AND NOT EXISTS (SELECT 1 FROM tech_files_blob_entries AS e
                        WHERE e.source_id = NEW.id AND e.name = blob_references.name
                          AND e.blob_key = blob_references.blob_key AND e.live = blob_references.live);
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
    SELECT 'tech_file', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
      FROM tech_files_blob_entries AS e WHERE e.source_id = NEW.id ORDER BY e.name, e.position
        ON CONFLICT (source, source_id, name) DO NOTHING;
END;

CREATE TRIGGER tech_files_blob_references_delete AFTER DELETE ON tech_files
BEGIN
    DELETE FROM blob_references WHERE source = 'tech_file' AND source_id = OLD.id;
END;

CREATE TRIGGER tech_file_collections_blob_references_insert AFTER INSERT ON tech_file_collections
BEGIN
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
    SELECT 'collection', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
      FROM tech_file_collections_blob_entries AS e WHERE e.source_id = NEW.id ORDER BY e.name, e.position
        ON CONFLICT (source, source_id, name) DO NOTHING;
END;

CREATE TRIGGER tech_file_collections_blob_references_update AFTER UPDATE OF metadata ON tech_file_collections
WHEN NEW.metadata IS NOT OLD.metadata
BEGIN
    DELETE FROM blob_references
     WHERE source = 'collection' AND source_id = NEW.id
       AND NOT EXISTS (SELECT 1 FROM tech_file_collections_blob_entries AS e
                        WHERE e.source_id = NEW.id AND e.name = blob_references.name
                          AND e.blob_key = blob_references.blob_key);
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
    SELECT 'collection', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
      FROM tech_file_collections_blob_entries AS e WHERE e.source_id = NEW.id ORDER BY e.name, e.position
        ON CONFLICT (source, source_id, name) DO NOTHING;
END;

CREATE TRIGGER tech_file_collections_blob_references_delete AFTER DELETE ON tech_file_collections
BEGIN
    DELETE FROM blob_references WHERE source = 'collection' AND source_id = OLD.id;
END;

CREATE TRIGGER generation_jobs_blob_references_insert AFTER INSERT ON generation_jobs
BEGIN
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
    SELECT 'job', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
      FROM generation_jobs_blob_entries AS e WHERE e.source_id = NEW.id ORDER BY e.name, e.position
        ON CONFLICT (source, source_id, name) DO NOTHING;
END;

CREATE TRIGGER generation_jobs_blob_references_update AFTER UPDATE OF request, state ON generation_jobs
WHEN NEW.request IS NOT OLD.request
  OR (NEW.state IN ('queued', 'running')) IS NOT (OLD.state IN ('queued', 'running'))
BEGIN
    DELETE FROM blob_references
     WHERE source = 'job' AND source_id = NEW.id
       AND NOT EXISTS (SELECT 1 FROM generation_jobs_blob_entries AS e
                        WHERE e.source_id = NEW.id AND e.name = blob_references.name
                          AND e.blob_key = blob_references.blob_key AND e.live = blob_references.live);
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
    SELECT 'job', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
      FROM generation_jobs_blob_entries AS e WHERE e.source_id = NEW.id ORDER BY e.name, e.position
        ON CONFLICT (source, source_id, name) DO NOTHING;
END;

CREATE TRIGGER generation_jobs_blob_references_delete AFTER DELETE ON generation_jobs
BEGIN
    DELETE FROM blob_references WHERE source = 'job' AND source_id = OLD.id;
END;

CREATE TRIGGER revision_vision_analysis_blob_references_insert AFTER INSERT ON revision_vision_analysis
WHEN coalesce(NEW.image_url, '') <> ''
BEGIN
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, live)
    VALUES ('legacy', NEW.id, 'image', NEW.user_id, NEW.image_url, NEW.image_sha256, 1)
        ON CONFLICT (source, source_id, name) DO NOTHING;
END;

CREATE TRIGGER revision_vision_analysis_blob_references_update AFTER UPDATE OF image_url, image_sha256 ON revision_vision_analysis
WHEN NEW.image_url IS NOT OLD.image_url OR NEW.image_sha256 IS NOT OLD.image_sha256
BEGIN
    DELETE FROM blob_references WHERE source = 'legacy' AND source_id = NEW.id;
    INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, live)
    SELECT 'legacy', NEW.id, 'image', NEW.user_id, NEW.image_url, NEW.image_sha256, 1
     WHERE coalesce(NEW.image_url, '') <> '';
END;

CREATE TRIGGER revision_vision_analysis_blob_references_delete AFTER DELETE ON revision_vision_analysis
BEGIN
    DELETE FROM blob_references WHERE source = 'legacy' AND source_id = OLD.id;
END;

-- Jobs: identity, batch, the code of the last error.
ALTER TABLE generation_jobs ADD COLUMN request_key TEXT
    CHECK (request_key IS NULL OR length(request_key) BETWEEN 1 AND 200);
ALTER TABLE generation_jobs ADD COLUMN idempotency_key TEXT
    CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 200);
ALTER TABLE generation_jobs ADD COLUMN batch_id TEXT;
ALTER TABLE generation_jobs ADD COLUMN error_code TEXT
    CHECK (error_code IS NULL OR length(error_code) BETWEEN 1 AND 64);
UPDATE generation_jobs SET batch_id = json_extract(request, '$.batch_id')
 WHERE json_type(request, '$.batch_id') = 'text';
CREATE UNIQUE INDEX generation_jobs_active_request_key ON generation_jobs (user_id, request_key)
    WHERE request_key IS NOT NULL AND state IN ('queued', 'running');
CREATE UNIQUE INDEX generation_jobs_user_idempotency_key ON generation_jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX generation_jobs_product_running_idx ON generation_jobs (user_id, product_idea_id)
    WHERE state = 'running';
CREATE INDEX generation_jobs_batch_idx ON generation_jobs (batch_id) WHERE batch_id IS NOT NULL;

DROP VIEW generation_jobs_doc;
CREATE VIEW generation_jobs_doc AS
SELECT j.*, json_object(
    'id', j.id, 'user_id', j.user_id, 'product_idea_id', j.product_idea_id, 'kind', j.kind,
    'request', json(j.request), 'state', j.state, 'attempts', j.attempts,
    'max_attempts', j.max_attempts, 'worker_id', j.worker_id, 'lease_token', j.lease_token,
    'lease_expires_at', j.lease_expires_at, 'heartbeat_at', j.heartbeat_at,
    'cancel_requested', json(CASE WHEN j.cancel_requested THEN 'true' ELSE 'false' END),
    'collection_id', j.collection_id, 'progress', json(j.progress), 'result', json(j.result),
    'last_error', j.last_error, 'run_after', j.run_after, 'created_at', j.created_at,
    'updated_at', j.updated_at, 'started_at', j.started_at, 'finished_at', j.finished_at,
    'request_key', j.request_key, 'idempotency_key', j.idempotency_key, 'batch_id', j.batch_id,
    'error_code', j.error_code
) AS doc
FROM generation_jobs AS j;

-- One version of a file per collection: collections that listed two keep the newest, and
-- adding a version replaces the one the collection held.
DELETE FROM tech_file_collection_items
 WHERE EXISTS (
    SELECT 1 FROM tech_files AS f, tech_file_collection_items AS other, tech_files AS g
     WHERE f.id = tech_file_collection_items.tech_file_id
       AND other.collection_id = tech_file_collection_items.collection_id
       AND other.id <> tech_file_collection_items.id
       AND g.id = other.tech_file_id AND g.lineage_id = f.lineage_id
       AND (g.version > f.version OR (g.version = f.version AND other.id > tech_file_collection_items.id)));

CREATE TRIGGER tech_file_collection_items_one_version BEFORE INSERT ON tech_file_collection_items
BEGIN
    DELETE FROM tech_file_collection_items
     WHERE collection_id = NEW.collection_id AND tech_file_id <> NEW.tech_file_id
       AND tech_file_id IN (SELECT f.id FROM tech_files AS f, tech_files AS added
                             WHERE added.id = NEW.tech_file_id AND f.lineage_id = added.lineage_id);
END;

CREATE TRIGGER tech_file_collection_items_one_version_move BEFORE UPDATE OF collection_id, tech_file_id ON tech_file_collection_items
BEGIN
    DELETE FROM tech_file_collection_items
     WHERE collection_id = NEW.collection_id AND id <> NEW.id AND tech_file_id <> NEW.tech_file_id
       AND tech_file_id IN (SELECT f.id FROM tech_files AS f, tech_files AS added
                             WHERE added.id = NEW.tech_file_id AND f.lineage_id = added.lineage_id);
END;

-- A finished pack's progress follows its files.
ALTER TABLE tech_file_collections ADD COLUMN planned_steps INTEGER
    CHECK (planned_steps IS NULL OR planned_steps >= 0);

DROP VIEW tech_file_collections_doc;
CREATE VIEW tech_file_collections_doc AS
SELECT c.*, json_object(
    'id', c.id, 'user_id', c.user_id, 'product_idea_id', c.product_idea_id, 'name', c.name,
    'description', c.description, 'collection_type', c.collection_type, 'status', c.status,
    'completion_percentage', c.completion_percentage, 'total_credits', c.total_credits,
    'generation_batch_id', c.generation_batch_id, 'metadata', json(c.metadata),
    'created_at', c.created_at, 'updated_at', c.updated_at, 'completed_at', c.completed_at,
    'planned_steps', c.planned_steps
) AS doc
FROM tech_file_collections AS c;

-- The progress a collection's files give it: the share of its steps (files other than the
-- manifest, or the planned steps when more) that are completed.
CREATE VIEW tech_file_collections_progress AS
SELECT c.id AS collection_id, counted.steps, counted.done,
       CASE WHEN counted.steps = 0 THEN 0 ELSE (100 * counted.done) / counted.steps END AS percentage,
       CASE WHEN counted.done = 0 THEN 'failed' WHEN counted.done >= counted.steps THEN 'completed'
            ELSE 'partial' END AS status
  FROM tech_file_collections AS c
  JOIN (
    SELECT c2.id,
           max(coalesce(c2.planned_steps, 0),
               (SELECT count(*) FROM tech_file_collection_items AS i JOIN tech_files AS f ON f.id = i.tech_file_id
                 WHERE i.collection_id = c2.id AND f.file_type <> 'complete_pack')) AS steps,
           (SELECT count(*) FROM tech_file_collection_items AS i JOIN tech_files AS f ON f.id = i.tech_file_id
             WHERE i.collection_id = c2.id AND f.file_type <> 'complete_pack' AND f.status = 'completed') AS done
      FROM tech_file_collections AS c2
  ) AS counted ON counted.id = c.id;

CREATE TRIGGER tech_files_after_status_change AFTER UPDATE OF status ON tech_files
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE tech_file_collections
       SET completion_percentage = (SELECT p.percentage FROM tech_file_collections_progress AS p WHERE p.collection_id = tech_file_collections.id),
           status = (SELECT p.status FROM tech_file_collections_progress AS p WHERE p.collection_id = tech_file_collections.id),
           completed_at = coalesce(completed_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
     WHERE status IN ('completed', 'partial', 'failed')
       AND id IN (SELECT collection_id FROM tech_file_collection_items WHERE tech_file_id = NEW.id)
       AND EXISTS (SELECT 1 FROM tech_file_collections_progress AS p
                    WHERE p.collection_id = tech_file_collections.id
                      AND (p.percentage IS NOT tech_file_collections.completion_percentage
                           OR p.status IS NOT tech_file_collections.status));
END;

-- A job that ends without finishing its run leaves nothing processing.
CREATE TRIGGER generation_jobs_after_end AFTER UPDATE OF state ON generation_jobs
WHEN NEW.state IN ('failed', 'cancelled') AND OLD.state IS NOT NEW.state AND NEW.batch_id IS NOT NULL
BEGIN
    UPDATE tech_files
       SET status = 'failed', credits_used = 0,
           error_message = 'not finished: job ' || NEW.id || ' ended ' || NEW.state || ' before this step ran to its end'
     WHERE generation_batch_id = NEW.batch_id AND user_id = NEW.user_id AND status = 'processing';
    UPDATE tech_file_collections
       SET completion_percentage = (SELECT p.percentage FROM tech_file_collections_progress AS p WHERE p.collection_id = tech_file_collections.id),
           status = (SELECT p.status FROM tech_file_collections_progress AS p WHERE p.collection_id = tech_file_collections.id),
           completed_at = coalesce(completed_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
     WHERE generation_batch_id = NEW.batch_id AND user_id = NEW.user_id
       AND status IN ('pending', 'in_progress');
END;

-- The rows written before this migration.
INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live, changed_at)
SELECT 'tech_file', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live, f.updated_at
  FROM tech_files_blob_entries AS e JOIN tech_files AS f ON f.id = e.source_id
 WHERE true ORDER BY e.source_id, e.name, e.position
    ON CONFLICT (source, source_id, name) DO NOTHING;
INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
SELECT 'collection', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
  FROM tech_file_collections_blob_entries AS e
 WHERE true ORDER BY e.source_id, e.name, e.position
    ON CONFLICT (source, source_id, name) DO NOTHING;
INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, size, live)
SELECT 'job', e.source_id, e.name, e.user_id, e.blob_key, e.sha256, e.size, e.live
  FROM generation_jobs_blob_entries AS e
 WHERE true ORDER BY e.source_id, e.name, e.position
    ON CONFLICT (source, source_id, name) DO NOTHING;
INSERT INTO blob_references (source, source_id, name, user_id, blob_key, sha256, live)
SELECT 'legacy', r.id, 'image', r.user_id, r.image_url, r.image_sha256, 1
  FROM revision_vision_analysis AS r WHERE coalesce(r.image_url, '') <> '';

-- One JSON document per reference, the shape PostgreSQL's to_jsonb(row) gives.
CREATE VIEW blob_references_doc AS
SELECT b.*, json_object(
    'source', b.source, 'source_id', b.source_id, 'name', b.name, 'user_id', b.user_id,
    'blob_key', b.blob_key, 'sha256', b.sha256, 'size', b.size,
    'live', json(CASE WHEN b.live THEN 'true' ELSE 'false' END), 'changed_at', b.changed_at
) AS doc
FROM blob_references AS b;
