-- techpack: durable generation jobs on SQLite. Same columns, checks and indexes as the
-- PostgreSQL migration; UUIDs are TEXT, JSON is TEXT checked with json_valid, timestamps are
-- RFC 3339 TEXT in UTC with milliseconds (the form the store compares lease times in).
-- Claims need no row locks here: every write runs under BEGIN IMMEDIATE, the single writer lock.

CREATE TABLE generation_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    product_idea_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (length(trim(kind)) > 0 AND length(kind) <= 64),
    request TEXT NOT NULL
        CHECK (json_valid(request) AND json_type(request) = 'object' AND length(request) <= 2097152),
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    worker_id TEXT,
    lease_token TEXT,
    lease_expires_at TEXT,
    heartbeat_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    collection_id TEXT,
    progress TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(progress) AND json_type(progress) = 'object' AND length(progress) <= 2097152),
    result TEXT CHECK (result IS NULL OR (json_valid(result) AND length(result) <= 2097152)),
    last_error TEXT,
    run_after TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at TEXT,
    finished_at TEXT,
    -- A lease exists exactly while the job runs: the token is the fence, so a job that is not
    -- running must have none for a stale worker to match.
    CONSTRAINT generation_jobs_lease_while_running CHECK (
        (state = 'running') = (lease_token IS NOT NULL)
        AND (state = 'running') = (lease_expires_at IS NOT NULL)
        AND (state <> 'running' OR worker_id IS NOT NULL)),
    CONSTRAINT generation_jobs_finished_when_terminal CHECK (
        (state IN ('succeeded', 'partial', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);

CREATE INDEX generation_jobs_claim_idx ON generation_jobs (state, run_after, created_at)
    WHERE state IN ('queued', 'running');
CREATE INDEX generation_jobs_user_running_idx ON generation_jobs (user_id) WHERE state = 'running';
CREATE INDEX generation_jobs_user_created_idx ON generation_jobs (user_id, created_at DESC);

-- One JSON document per row, the same shape PostgreSQL's to_jsonb(row) gives.
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

CREATE TRIGGER generation_jobs_touch_updated_at AFTER UPDATE ON generation_jobs
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE generation_jobs SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
