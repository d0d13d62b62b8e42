-- techpack: back to before the trust migration. Items that were replaced by a newer version of
-- their file are not brought back.
DROP TRIGGER IF EXISTS generation_jobs_after_end;
DROP TRIGGER IF EXISTS tech_files_after_status_change;
DROP VIEW IF EXISTS tech_file_collections_progress;
DROP TRIGGER IF EXISTS tech_file_collection_items_one_version_move;
DROP TRIGGER IF EXISTS tech_file_collection_items_one_version;

DROP VIEW IF EXISTS tech_file_collections_doc;
ALTER TABLE tech_file_collections DROP COLUMN planned_steps;
CREATE VIEW tech_file_collections_doc AS
SELECT c.*, json_object(
    'id', c.id, 'user_id', c.user_id, 'product_idea_id', c.product_idea_id, 'name', c.name,
    'description', c.description, 'collection_type', c.collection_type, 'status', c.status,
    'completion_percentage', c.completion_percentage, 'total_credits', c.total_credits,
    'generation_batch_id', c.generation_batch_id, 'metadata', json(c.metadata),
    'created_at', c.created_at, 'updated_at', c.updated_at, 'completed_at', c.completed_at
) AS doc
FROM tech_file_collections AS c;

DROP VIEW IF EXISTS generation_jobs_doc;
DROP INDEX IF EXISTS generation_jobs_batch_idx;
DROP INDEX IF EXISTS generation_jobs_product_running_idx;
DROP INDEX IF EXISTS generation_jobs_user_idempotency_key;
DROP INDEX IF EXISTS generation_jobs_active_request_key;
DROP TRIGGER IF EXISTS generation_jobs_blob_references_insert;
DROP TRIGGER IF EXISTS generation_jobs_blob_references_update;
DROP TRIGGER IF EXISTS generation_jobs_blob_references_delete;
DROP VIEW IF EXISTS generation_jobs_blob_entries;
ALTER TABLE generation_jobs DROP COLUMN error_code;
ALTER TABLE generation_jobs DROP COLUMN batch_id;
ALTER TABLE generation_jobs DROP COLUMN idempotency_key;
ALTER TABLE generation_jobs DROP COLUMN request_key;
CREATE VIEW generation_jobs_doc AS
SELECT j.*, json_object(
    'id', j.id, 'user_id', j.user_id, 'product_idea_id', j.product_idea_id, 'kind', j.kind,
    'request', json(j.request), 'state', j.state, 'attempts', j.attempts,
    'max_attempts', j.max_attempts, 'worker_id', j.worker_id, 'lease_token', j.lease_token,
    'lease_expires_at', j.lease_expires_at, 'heartbeat_at', j.heartbeat_at,
    'cancel_requested', json(CASE WHEN j.cancel_requested THEN 'true' ELSE 'false' END),
    'collection_id', j.collection_id, 'progress', json(j.progress), 'result', json(j.result),
    'last_error', j.last_error, 'run_after', j.run_after, 'created_at', j.created_at,
    'updated_at', j.updated_at, 'started_at', j.started_at, 'finished_at', j.finished_at
) AS doc
FROM generation_jobs AS j;

DROP TRIGGER IF EXISTS revision_vision_analysis_blob_references_insert;
DROP TRIGGER IF EXISTS revision_vision_analysis_blob_references_update;
DROP TRIGGER IF EXISTS revision_vision_analysis_blob_references_delete;
DROP TRIGGER IF EXISTS tech_file_collections_blob_references_insert;
DROP TRIGGER IF EXISTS tech_file_collections_blob_references_update;
DROP TRIGGER IF EXISTS tech_file_collections_blob_references_delete;
DROP TRIGGER IF EXISTS tech_files_blob_references_insert;
DROP TRIGGER IF EXISTS tech_files_blob_references_update;
DROP TRIGGER IF EXISTS tech_files_blob_references_delete;
DROP VIEW IF EXISTS tech_file_collections_blob_entries;
DROP VIEW IF EXISTS tech_files_blob_entries;
DROP VIEW IF EXISTS blob_references_doc;
DROP TABLE IF EXISTS blob_references;
DROP TABLE IF EXISTS techpack_instance;
