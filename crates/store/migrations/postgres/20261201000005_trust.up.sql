-- techpack: what the system must be able to trust.
--
-- 1. techpack_instance: this database's identity. A blob store records which databases write
--    to it, so cleanup never deletes from a store that another database also uses.
-- 2. blob_references: every blob key that rows of this database need — a file's content and
--    its other outputs (a sketch's PNG), the photos of queued and running jobs, the photos a
--    pack's collection recorded for `--retry-failed`, the legacy table's images — kept by
--    triggers in the same transaction as the row that needs them, so cleanup, fsck and export
--    read one set. JSON documents name their blobs under a top-level `blobs` object
--    ({"name": {"key", "sha256", "size"}}); the shapes written before it are read too.
-- 3. Jobs get an identity (request_key: identical requests join one active job; the caller's
--    idempotency_key: the same key is the same job), their batch and the code of their last
--    error; at most one job per product runs at a time (enforced by claims).
-- 4. A collection lists one version of each file: adding a version replaces the one it held.
-- 5. A finished collection's progress follows its files: a file marked failed or archived
--    later makes the pack partial. planned_steps records how many steps its run planned.
-- 6. A job that ends without finishing its run (failed for good, cancelled) leaves nothing
--    processing: its batch's unfinished files are marked failed.

-- 1. -------------------------------------------------------------------------------------------
CREATE TABLE public.techpack_instance (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    singleton boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.techpack_instance DEFAULT VALUES;
-- Read by techpack's service role only (no API user needs it).
ALTER TABLE public.techpack_instance ENABLE ROW LEVEL SECURITY;

-- 2. -------------------------------------------------------------------------------------------
CREATE TABLE public.blob_references (
    source text NOT NULL CHECK (source IN ('tech_file', 'job', 'collection', 'legacy')),
    source_id uuid NOT NULL,
    name text NOT NULL CHECK (length(name) > 0),
    user_id uuid NOT NULL,
    blob_key text NOT NULL CHECK (length(blob_key) > 0),
    sha256 text,
    size bigint,
    -- Whether the row needs the blob now: false for an archived file and a job that ended.
    live boolean NOT NULL,
    -- When the reference last started or stopped being live (or moved to another key).
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_id, name)
);
CREATE INDEX blob_references_key_idx ON public.blob_references (blob_key);
CREATE INDEX blob_references_user_idx ON public.blob_references (user_id);
ALTER TABLE public.blob_references ENABLE ROW LEVEL SECURITY;

-- The `blobs` object of a document as reference entries.
CREATE OR REPLACE FUNCTION public.techpack_blob_entries(doc jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', e.key, 'key', e.value ->> 'key', 'sha256', e.value ->> 'sha256',
               'size', CASE WHEN jsonb_typeof(e.value -> 'size') = 'number' THEN e.value -> 'size' END)
               ORDER BY e.key), '[]'::jsonb)
      FROM jsonb_each(CASE WHEN jsonb_typeof(doc -> 'blobs') = 'object' THEN doc -> 'blobs'
                           ELSE '{}'::jsonb END) AS e
     WHERE jsonb_typeof(e.value) = 'object'
$$;

-- The views of a recorded pack request (a collection's metadata.request, a job's
-- request.work): one photo each.
CREATE OR REPLACE FUNCTION public.techpack_view_photo_entries(views jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', 'photo:' || (v ->> 'view'), 'key', v ->> 'photo_key',
               'sha256', v ->> 'photo_sha256')), '[]'::jsonb)
      FROM jsonb_array_elements(CASE WHEN jsonb_typeof(views) = 'array' THEN views
                                     ELSE '[]'::jsonb END) AS v
     WHERE coalesce(v ->> 'photo_key', '') <> '' AND coalesce(v ->> 'view', '') <> ''
$$;

CREATE OR REPLACE FUNCTION public.techpack_file_blob_entries(f public.tech_files) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT jsonb_build_array(jsonb_build_object(
               'name', 'content', 'key', f.file_url, 'sha256', f.content_sha256, 'size', f.content_size))
        || jsonb_build_array(jsonb_build_object(
               'name', 'png', 'key', f.metadata ->> 'png_key', 'sha256', f.metadata ->> 'png_sha256',
               'size', CASE WHEN jsonb_typeof(f.metadata -> 'png_size') = 'number' THEN f.metadata -> 'png_size' END))
        || public.techpack_blob_entries(f.metadata)
$$;

CREATE OR REPLACE FUNCTION public.techpack_collection_blob_entries(c public.tech_file_collections) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT public.techpack_view_photo_entries(c.metadata -> 'request' -> 'views')
        || jsonb_build_array(jsonb_build_object('name', 'primary_image', 'key', c.metadata ->> 'primary_image'))
        || public.techpack_blob_entries(c.metadata)
$$;

CREATE OR REPLACE FUNCTION public.techpack_job_blob_entries(j public.generation_jobs) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT public.techpack_view_photo_entries(j.request -> 'work' -> 'views')
        || public.techpack_blob_entries(j.request)
$$;

-- Makes the references of one row exactly `entries` (entries without a key are dropped; the
-- first entry of a name wins). A reference whose key and liveness did not change is not
-- rewritten, so the writers of unchanged rows do not contend on it.
CREATE OR REPLACE FUNCTION public.techpack_replace_blob_references(
    p_source text, p_source_id uuid, p_user uuid, p_live boolean, entries jsonb
) RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$
    WITH wanted AS (
        SELECT DISTINCT ON (e.value ->> 'name')
               e.value ->> 'name' AS name, e.value ->> 'key' AS blob_key,
               e.value ->> 'sha256' AS sha256,
               CASE WHEN jsonb_typeof(e.value -> 'size') = 'number' THEN (e.value ->> 'size')::bigint END AS size
          FROM jsonb_array_elements(entries) WITH ORDINALITY AS e(value, position)
         WHERE coalesce(e.value ->> 'key', '') <> '' AND coalesce(e.value ->> 'name', '') <> ''
         ORDER BY e.value ->> 'name', e.position
    ), gone AS (
        DELETE FROM public.blob_references AS b
         WHERE b.source = p_source AND b.source_id = p_source_id
           AND NOT EXISTS (SELECT 1 FROM wanted AS w WHERE w.name = b.name)
    )
    INSERT INTO public.blob_references AS b
        (source, source_id, name, user_id, blob_key, sha256, size, live, changed_at)
    SELECT p_source, p_source_id, w.name, p_user, w.blob_key, w.sha256, w.size, p_live, now()
      FROM wanted AS w
    ON CONFLICT (source, source_id, name) DO UPDATE
       SET blob_key = excluded.blob_key, sha256 = excluded.sha256, size = excluded.size,
           live = excluded.live, user_id = excluded.user_id,
           changed_at = CASE WHEN b.live IS DISTINCT FROM excluded.live
                               OR b.blob_key IS DISTINCT FROM excluded.blob_key
                             THEN now() ELSE b.changed_at END
     WHERE b.blob_key IS DISTINCT FROM excluded.blob_key OR b.live IS DISTINCT FROM excluded.live
        OR b.sha256 IS DISTINCT FROM excluded.sha256 OR b.size IS DISTINCT FROM excluded.size
$$;

CREATE OR REPLACE FUNCTION public.techpack_tech_files_blob_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM public.blob_references WHERE source = 'tech_file' AND source_id = OLD.id;
        RETURN OLD;
    END IF;
    PERFORM public.techpack_replace_blob_references('tech_file', NEW.id, NEW.user_id,
        NEW.status <> 'archived', public.techpack_file_blob_entries(NEW));
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.techpack_collections_blob_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM public.blob_references WHERE source = 'collection' AND source_id = OLD.id;
        RETURN OLD;
    END IF;
    PERFORM public.techpack_replace_blob_references('collection', NEW.id, NEW.user_id, true,
        public.techpack_collection_blob_entries(NEW));
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.techpack_jobs_blob_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM public.blob_references WHERE source = 'job' AND source_id = OLD.id;
        RETURN OLD;
    END IF;
    PERFORM public.techpack_replace_blob_references('job', NEW.id, NEW.user_id,
        NEW.state IN ('queued', 'running'), public.techpack_job_blob_entries(NEW));
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.techpack_legacy_blob_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM public.blob_references WHERE source = 'legacy' AND source_id = OLD.id;
        RETURN OLD;
    END IF;
    PERFORM public.techpack_replace_blob_references('legacy', NEW.id, NEW.user_id, true,
        jsonb_build_array(jsonb_build_object('name', 'image', 'key', NEW.image_url,
                                             'sha256', NEW.image_sha256)));
    RETURN NEW;
END
$$;

CREATE TRIGGER tech_files_blob_references
    AFTER INSERT OR DELETE OR UPDATE OF file_url, content_sha256, content_size, metadata, status
    ON public.tech_files FOR EACH ROW EXECUTE FUNCTION public.techpack_tech_files_blob_references();
CREATE TRIGGER tech_file_collections_blob_references
    AFTER INSERT OR DELETE OR UPDATE OF metadata
    ON public.tech_file_collections FOR EACH ROW EXECUTE FUNCTION public.techpack_collections_blob_references();
CREATE TRIGGER generation_jobs_blob_references
    AFTER INSERT OR DELETE OR UPDATE OF request, state
    ON public.generation_jobs FOR EACH ROW EXECUTE FUNCTION public.techpack_jobs_blob_references();
CREATE TRIGGER revision_vision_analysis_blob_references
    AFTER INSERT OR DELETE OR UPDATE OF image_url, image_sha256
    ON public.revision_vision_analysis FOR EACH ROW EXECUTE FUNCTION public.techpack_legacy_blob_references();

-- The rows written before this migration. An archived file stopped being live when it was
-- last updated.
INSERT INTO public.blob_references (source, source_id, name, user_id, blob_key, sha256, size, live, changed_at)
SELECT DISTINCT ON (f.id, e.value ->> 'name') 'tech_file', f.id, e.value ->> 'name', f.user_id,
       e.value ->> 'key', e.value ->> 'sha256',
       CASE WHEN jsonb_typeof(e.value -> 'size') = 'number' THEN (e.value ->> 'size')::bigint END,
       f.status <> 'archived', f.updated_at
  FROM public.tech_files AS f
 CROSS JOIN LATERAL jsonb_array_elements(public.techpack_file_blob_entries(f)) WITH ORDINALITY AS e(value, position)
 WHERE coalesce(e.value ->> 'key', '') <> ''
 ORDER BY f.id, e.value ->> 'name', e.position;
DO $$
BEGIN
    PERFORM public.techpack_replace_blob_references('collection', c.id, c.user_id, true,
                public.techpack_collection_blob_entries(c))
       FROM public.tech_file_collections AS c;
    PERFORM public.techpack_replace_blob_references('job', j.id, j.user_id,
                j.state IN ('queued', 'running'), public.techpack_job_blob_entries(j))
       FROM public.generation_jobs AS j;
    PERFORM public.techpack_replace_blob_references('legacy', r.id, r.user_id, true,
                jsonb_build_array(jsonb_build_object('name', 'image', 'key', r.image_url,
                                                     'sha256', r.image_sha256)))
       FROM public.revision_vision_analysis AS r;
END
$$;

-- 3. -------------------------------------------------------------------------------------------
ALTER TABLE public.generation_jobs
    ADD COLUMN request_key text CHECK (request_key IS NULL OR length(request_key) BETWEEN 1 AND 200),
    ADD COLUMN idempotency_key text CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 200),
    ADD COLUMN batch_id uuid,
    ADD COLUMN error_code text CHECK (error_code IS NULL OR length(error_code) BETWEEN 1 AND 64);
UPDATE public.generation_jobs
   SET batch_id = (request ->> 'batch_id')::uuid
 WHERE request ->> 'batch_id' ~ '^[0-9a-fA-F-]{36}$';
-- Identical requests of one user join the job that is queued or running for them.
CREATE UNIQUE INDEX generation_jobs_active_request_key
    ON public.generation_jobs (user_id, request_key)
    WHERE request_key IS NOT NULL AND state IN ('queued', 'running');
-- A caller's key names one job for good.
CREATE UNIQUE INDEX generation_jobs_user_idempotency_key
    ON public.generation_jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Claims check that no other job of the product runs.
CREATE INDEX generation_jobs_product_running_idx
    ON public.generation_jobs (user_id, product_idea_id)
    WHERE state = 'running';
CREATE INDEX generation_jobs_batch_idx ON public.generation_jobs (batch_id) WHERE batch_id IS NOT NULL;

-- 4. -------------------------------------------------------------------------------------------
-- Collections that listed two versions of one file keep the newest.
DELETE FROM public.tech_file_collection_items AS i
 USING public.tech_files AS f, public.tech_file_collection_items AS other, public.tech_files AS g
 WHERE f.id = i.tech_file_id
   AND other.collection_id = i.collection_id AND other.id <> i.id
   AND g.id = other.tech_file_id AND g.lineage_id = f.lineage_id
   AND (g.version, other.id) > (f.version, i.id);

CREATE OR REPLACE FUNCTION public.techpack_one_version_per_collection() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    DELETE FROM public.tech_file_collection_items AS i
     USING public.tech_files AS f, public.tech_files AS added
     WHERE i.collection_id = NEW.collection_id
       AND i.tech_file_id <> NEW.tech_file_id
       AND (TG_OP = 'INSERT' OR i.id <> NEW.id)
       AND f.id = i.tech_file_id
       AND added.id = NEW.tech_file_id
       AND f.lineage_id = added.lineage_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER tech_file_collection_items_one_version
    BEFORE INSERT OR UPDATE OF collection_id, tech_file_id ON public.tech_file_collection_items
    FOR EACH ROW EXECUTE FUNCTION public.techpack_one_version_per_collection();

-- 5. -------------------------------------------------------------------------------------------
ALTER TABLE public.tech_file_collections
    ADD COLUMN planned_steps integer CHECK (planned_steps IS NULL OR planned_steps >= 0);

-- Recomputes the progress of collections from their files: the share of steps (files other than
-- the pack's manifest, or the planned steps when more) that are completed. Only collections
-- whose run is over, unless `include_running` (a job that ended without closing its run).
CREATE OR REPLACE FUNCTION public.techpack_recount_collection_progress(
    p_collection_ids uuid[], include_running boolean
) RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$
    WITH counted AS (
        SELECT c.id,
               greatest(coalesce(c.planned_steps, 0),
                        count(i.id) FILTER (WHERE f.file_type <> 'complete_pack')) AS steps,
               count(i.id) FILTER (WHERE f.file_type <> 'complete_pack' AND f.status = 'completed') AS done
          FROM public.tech_file_collections AS c
          LEFT JOIN public.tech_file_collection_items AS i ON i.collection_id = c.id
          LEFT JOIN public.tech_files AS f ON f.id = i.tech_file_id
         WHERE c.id = ANY (p_collection_ids)
           AND (c.status IN ('completed', 'partial', 'failed') OR include_running)
         GROUP BY c.id
    ), computed AS (
        SELECT id,
               CASE WHEN steps = 0 THEN 0 ELSE (100 * done / steps)::integer END AS percentage,
               CASE WHEN done = 0 THEN 'failed' WHEN done >= steps THEN 'completed' ELSE 'partial' END AS status
          FROM counted
    )
    UPDATE public.tech_file_collections AS c
       SET completion_percentage = computed.percentage,
           status = computed.status,
           completed_at = coalesce(c.completed_at, now())
      FROM computed
     WHERE computed.id = c.id
       AND (c.completion_percentage, c.status) IS DISTINCT FROM (computed.percentage, computed.status)
$$;

CREATE OR REPLACE FUNCTION public.techpack_tech_files_after_status_change() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    PERFORM public.techpack_recount_collection_progress(ARRAY(
        SELECT DISTINCT i.collection_id
          FROM new_rows AS n
          JOIN old_rows AS o ON o.id = n.id
          JOIN public.tech_file_collection_items AS i ON i.tech_file_id = n.id
         WHERE n.status IS DISTINCT FROM o.status), false);
    RETURN NULL;
END
$$;
CREATE TRIGGER tech_files_after_status_change AFTER UPDATE ON public.tech_files
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.techpack_tech_files_after_status_change();

-- 6. -------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION public.techpack_generation_jobs_after_end() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF NEW.batch_id IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE public.tech_files
       SET status = 'failed', credits_used = 0,
           error_message = format('not finished: job %s ended %s before this step ran to its end', NEW.id, NEW.state)
     WHERE generation_batch_id = NEW.batch_id AND user_id = NEW.user_id AND status = 'processing';
    PERFORM public.techpack_recount_collection_progress(ARRAY(
        SELECT c.id FROM public.tech_file_collections AS c
         WHERE c.generation_batch_id = NEW.batch_id AND c.user_id = NEW.user_id
           AND c.status IN ('pending', 'in_progress')), true);
    RETURN NULL;
END
$$;
CREATE TRIGGER generation_jobs_after_end AFTER UPDATE OF state ON public.generation_jobs
    FOR EACH ROW WHEN (NEW.state IN ('failed', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION public.techpack_generation_jobs_after_end();
