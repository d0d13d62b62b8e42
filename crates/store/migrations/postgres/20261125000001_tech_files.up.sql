-- techpack: the tech files system (tables, triggers, functions, row level security).
-- Applies unchanged on plain PostgreSQL (14+) and on a Supabase project: roles are created only
-- where missing, and the policies read the same JWT claims that Supabase's auth.uid() reads.

-- Roles ------------------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        BEGIN
            CREATE ROLE authenticated NOLOGIN NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by another migration in the same cluster
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        BEGIN
            CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- The login that runs techpack switches to these roles per transaction
    -- (set_config('role', …, true)), which needs membership.
    IF NOT pg_has_role(current_user, 'authenticated', 'MEMBER') THEN
        EXECUTE format('GRANT authenticated TO %I', current_user);
    END IF;
    IF NOT pg_has_role(current_user, 'service_role', 'MEMBER') THEN
        EXECUTE format('GRANT service_role TO %I', current_user);
    END IF;
END
$$;

-- The acting user: the Supabase JWT `sub`, read the way auth.uid() reads it.
CREATE OR REPLACE FUNCTION public.techpack_current_user_id() RETURNS uuid
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    )::uuid
$$;

-- Tables -----------------------------------------------------------------------------------
CREATE TABLE public.tech_files (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lineage_id uuid NOT NULL,
    product_idea_id uuid NOT NULL,
    revision_id uuid,
    user_id uuid NOT NULL,
    file_type text NOT NULL
        CHECK (file_type IN ('base_view', 'closeup', 'sketch', 'category', 'complete_pack')),
    view_type text CHECK (view_type IS NULL OR length(btrim(view_type)) > 0),
    file_category text CHECK (file_category IS NULL OR length(btrim(file_category)) > 0),
    file_url text CHECK (file_url IS NULL OR length(btrim(file_url)) > 0),
    content_sha256 text CHECK (content_sha256 IS NULL OR content_sha256 ~ '^[0-9a-f]{64}$'),
    content_size bigint CHECK (content_size IS NULL OR content_size >= 0),
    mime_type text,
    analysis_data jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(analysis_data) = 'object' AND octet_length(analysis_data::text) <= 2097152),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(metadata) = 'object' AND octet_length(metadata::text) <= 2097152),
    ai_model text,
    generation_prompt text,
    generation_batch_id uuid,
    idempotency_key text CHECK (idempotency_key IS NULL OR length(idempotency_key) > 0),
    credits_used bigint NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    confidence_score double precision CHECK (confidence_score BETWEEN 0 AND 1),
    quality_score double precision CHECK (quality_score BETWEEN 0 AND 1),
    status text NOT NULL DEFAULT 'processing'
        CHECK (status IN ('processing', 'completed', 'failed', 'archived')),
    error_message text,
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    parent_file_id uuid,
    is_latest boolean NOT NULL DEFAULT true,
    created_by uuid,
    change_description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tech_files_first_version_has_no_parent CHECK ((version = 1) = (parent_file_id IS NULL)),
    CONSTRAINT tech_files_first_version_starts_lineage CHECK (version > 1 OR lineage_id = id),
    CONSTRAINT tech_files_lineage_version_key UNIQUE (lineage_id, version),
    CONSTRAINT tech_files_id_user_key UNIQUE (id, user_id),
    CONSTRAINT tech_files_parent_fkey FOREIGN KEY (parent_file_id, user_id)
        REFERENCES public.tech_files (id, user_id) ON DELETE RESTRICT
);

CREATE TABLE public.tech_file_versions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tech_file_id uuid NOT NULL,
    lineage_id uuid NOT NULL,
    user_id uuid NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    snapshot jsonb NOT NULL CHECK (jsonb_typeof(snapshot) = 'object'),
    created_by uuid,
    change_description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tech_file_versions_tech_file_key UNIQUE (tech_file_id),
    CONSTRAINT tech_file_versions_lineage_version_key UNIQUE (lineage_id, version),
    CONSTRAINT tech_file_versions_tech_file_fkey FOREIGN KEY (tech_file_id, user_id)
        REFERENCES public.tech_files (id, user_id) ON DELETE CASCADE
);

CREATE TABLE public.tech_file_collections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    product_idea_id uuid NOT NULL,
    name text NOT NULL CHECK (length(btrim(name)) > 0),
    description text,
    collection_type text NOT NULL DEFAULT 'tech_pack_v2'
        CHECK (collection_type IN ('tech_pack_v2', 'base_views_set', 'sketches_set', 'closeups_set')),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'completed', 'partial', 'failed')),
    completion_percentage integer NOT NULL DEFAULT 0 CHECK (completion_percentage BETWEEN 0 AND 100),
    total_credits bigint NOT NULL DEFAULT 0 CHECK (total_credits >= 0),
    generation_batch_id uuid,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CONSTRAINT tech_file_collections_id_user_key UNIQUE (id, user_id)
);

CREATE TABLE public.tech_file_collection_items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    collection_id uuid NOT NULL,
    tech_file_id uuid NOT NULL,
    user_id uuid NOT NULL,
    display_order integer NOT NULL DEFAULT 0 CHECK (display_order >= 0),
    section text CHECK (section IS NULL OR length(btrim(section)) > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tech_file_collection_items_file_key UNIQUE (collection_id, tech_file_id),
    -- Composite keys: an item, its collection and its file always share one owner.
    CONSTRAINT tech_file_collection_items_collection_fkey FOREIGN KEY (collection_id, user_id)
        REFERENCES public.tech_file_collections (id, user_id) ON DELETE CASCADE,
    CONSTRAINT tech_file_collection_items_file_fkey FOREIGN KEY (tech_file_id, user_id)
        REFERENCES public.tech_files (id, user_id) ON DELETE CASCADE
);

-- The legacy cache table the seed's generation functions keep writing.
CREATE TABLE public.revision_vision_analysis (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    product_idea_id uuid NOT NULL,
    revision_id uuid NOT NULL,
    view_type text NOT NULL CHECK (length(btrim(view_type)) > 0),
    image_url text,
    image_sha256 text CHECK (image_sha256 IS NULL OR image_sha256 ~ '^[0-9a-f]{64}$'),
    analysis_data jsonb NOT NULL CHECK (jsonb_typeof(analysis_data) = 'object'),
    model_used text,
    credits_used bigint NOT NULL DEFAULT 0 CHECK (credits_used >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Indexes ----------------------------------------------------------------------------------
CREATE INDEX tech_files_product_revision_idx ON public.tech_files (product_idea_id, revision_id);
CREATE INDEX tech_files_user_id_idx ON public.tech_files (user_id);
CREATE INDEX tech_files_file_type_idx ON public.tech_files (file_type);
CREATE INDEX tech_files_product_latest_idx ON public.tech_files (product_idea_id, created_at DESC, id DESC) WHERE is_latest;
CREATE INDEX tech_files_user_latest_idx ON public.tech_files (user_id, created_at DESC, id DESC) WHERE is_latest;
CREATE INDEX tech_files_generation_batch_idx ON public.tech_files (generation_batch_id) WHERE generation_batch_id IS NOT NULL;
CREATE INDEX tech_files_status_idx ON public.tech_files (status);
CREATE INDEX tech_files_created_at_idx ON public.tech_files (created_at DESC);
CREATE INDEX tech_files_parent_file_idx ON public.tech_files (parent_file_id) WHERE parent_file_id IS NOT NULL;
CREATE INDEX tech_files_file_url_idx ON public.tech_files (file_url) WHERE file_url IS NOT NULL;
CREATE UNIQUE INDEX tech_files_one_latest_per_lineage ON public.tech_files (lineage_id) WHERE is_latest;
CREATE UNIQUE INDEX tech_files_user_idempotency_key ON public.tech_files (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tech_file_versions_user_id_idx ON public.tech_file_versions (user_id);
CREATE INDEX tech_file_collections_user_product_idx ON public.tech_file_collections (user_id, product_idea_id, created_at DESC);
CREATE INDEX tech_file_collections_status_idx ON public.tech_file_collections (status);
CREATE INDEX tech_file_collection_items_user_id_idx ON public.tech_file_collection_items (user_id);
CREATE INDEX tech_file_collection_items_file_idx ON public.tech_file_collection_items (tech_file_id);
CREATE INDEX tech_file_collection_items_order_idx ON public.tech_file_collection_items (collection_id, display_order);
CREATE INDEX revision_vision_analysis_lookup_idx ON public.revision_vision_analysis (user_id, revision_id, view_type, created_at DESC);
CREATE INDEX revision_vision_analysis_user_id_idx ON public.revision_vision_analysis (user_id);

-- Triggers ---------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION public.techpack_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- A new version supersedes its parent: flip the parent's is_latest and archive the parent into
-- tech_file_versions, in the same statement. SECURITY DEFINER so the archive insert is not
-- refused by the versions table's RLS; it checks ownership itself.
CREATE OR REPLACE FUNCTION public.tech_files_before_insert() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    parent public.tech_files;
BEGIN
    IF NEW.parent_file_id IS NULL THEN
        NEW.lineage_id := coalesce(NEW.lineage_id, NEW.id);
        NEW.version := 1;
        NEW.is_latest := true;
        RETURN NEW;
    END IF;
    -- Row lock on the parent: a concurrent writer of the same lineage waits here, then finds the
    -- parent no longer latest and gets a conflict instead of a second "latest".
    UPDATE public.tech_files
       SET is_latest = false
     WHERE id = NEW.parent_file_id
       AND user_id = NEW.user_id
       AND is_latest
    RETURNING * INTO parent;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'version conflict: tech file % is not the latest version of its file', NEW.parent_file_id
            USING ERRCODE = 'TP409',
                  HINT = 'Read the latest version again and create the new version from it.';
    END IF;
    NEW.lineage_id := parent.lineage_id;
    NEW.version := parent.version + 1;
    NEW.is_latest := true;
    INSERT INTO public.tech_file_versions
        (tech_file_id, lineage_id, user_id, version, snapshot, created_by, change_description)
    VALUES
        (parent.id, parent.lineage_id, parent.user_id, parent.version, to_jsonb(parent),
         NEW.created_by, NEW.change_description);
    RETURN NEW;
END
$$;

-- Keys, ownership and history are immutable; is_latest changes only through a new version.
CREATE OR REPLACE FUNCTION public.tech_files_guard_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id
       OR NEW.lineage_id IS DISTINCT FROM OLD.lineage_id
       OR NEW.user_id IS DISTINCT FROM OLD.user_id
       OR NEW.product_idea_id IS DISTINCT FROM OLD.product_idea_id
       OR NEW.file_type IS DISTINCT FROM OLD.file_type
       OR NEW.version IS DISTINCT FROM OLD.version
       OR NEW.parent_file_id IS DISTINCT FROM OLD.parent_file_id
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'tech file % : id, lineage, owner, product, type, version, parent and created_at cannot change; create a new version instead', OLD.id
            USING ERRCODE = 'TP422';
    END IF;
    IF NEW.is_latest IS DISTINCT FROM OLD.is_latest AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'tech file % : is_latest changes only when a new version is created', OLD.id
            USING ERRCODE = 'TP422';
    END IF;
    RETURN NEW;
END
$$;

-- Keeps every collection's total equal to the sum of its files' credits.
CREATE OR REPLACE FUNCTION public.tech_file_collections_recount_credits(p_collection_ids uuid[]) RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$
    UPDATE public.tech_file_collections AS c
       SET total_credits = coalesce((
               SELECT sum(f.credits_used)
                 FROM public.tech_file_collection_items AS i
                 JOIN public.tech_files AS f ON f.id = i.tech_file_id
                WHERE i.collection_id = c.id), 0)
     WHERE c.id = ANY (p_collection_ids)
$$;

CREATE OR REPLACE FUNCTION public.tech_file_collection_items_after_change() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM public.tech_file_collections_recount_credits(ARRAY[OLD.collection_id]);
        RETURN OLD;
    END IF;
    PERFORM public.tech_file_collections_recount_credits(ARRAY[NEW.collection_id]);
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.tech_files_after_credits_change() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    PERFORM public.tech_file_collections_recount_credits(ARRAY(
        SELECT i.collection_id FROM public.tech_file_collection_items AS i WHERE i.tech_file_id = NEW.id));
    RETURN NEW;
END
$$;

CREATE TRIGGER tech_files_before_insert BEFORE INSERT ON public.tech_files
    FOR EACH ROW EXECUTE FUNCTION public.tech_files_before_insert();
CREATE TRIGGER tech_files_guard_update BEFORE UPDATE ON public.tech_files
    FOR EACH ROW EXECUTE FUNCTION public.tech_files_guard_update();
CREATE TRIGGER tech_files_touch_updated_at BEFORE UPDATE ON public.tech_files
    FOR EACH ROW EXECUTE FUNCTION public.techpack_touch_updated_at();
CREATE TRIGGER tech_files_after_credits_change AFTER UPDATE OF credits_used ON public.tech_files
    FOR EACH ROW WHEN (NEW.credits_used IS DISTINCT FROM OLD.credits_used)
    EXECUTE FUNCTION public.tech_files_after_credits_change();
CREATE TRIGGER tech_file_collections_touch_updated_at BEFORE UPDATE ON public.tech_file_collections
    FOR EACH ROW EXECUTE FUNCTION public.techpack_touch_updated_at();
CREATE TRIGGER tech_file_collection_items_after_change AFTER INSERT OR DELETE ON public.tech_file_collection_items
    FOR EACH ROW EXECUTE FUNCTION public.tech_file_collection_items_after_change();
CREATE TRIGGER revision_vision_analysis_touch_updated_at BEFORE UPDATE ON public.revision_vision_analysis
    FOR EACH ROW EXECUTE FUNCTION public.techpack_touch_updated_at();

-- The seed's "database function for version creation": a new version of p_file_id with the
-- given changes (a JSON object of column → value). Runs as the caller, so RLS applies.
CREATE OR REPLACE FUNCTION public.create_tech_file_version(
    p_file_id uuid,
    p_changes jsonb DEFAULT '{}'::jsonb,
    p_change_description text DEFAULT NULL
) RETURNS public.tech_files
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    parent public.tech_files;
    created public.tech_files;
    next_status text;
BEGIN
    SELECT * INTO parent FROM public.tech_files WHERE id = p_file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tech file % not found', p_file_id USING ERRCODE = 'TP404';
    END IF;
    IF NOT parent.is_latest THEN
        RAISE EXCEPTION 'version conflict: tech file % is not the latest version of its file', p_file_id
            USING ERRCODE = 'TP409',
                  HINT = 'Read the latest version again and create the new version from it.';
    END IF;
    next_status := coalesce(p_changes ->> 'status',
                            CASE WHEN parent.status = 'archived' THEN 'completed' ELSE parent.status END);
    INSERT INTO public.tech_files (
        id, lineage_id, product_idea_id, revision_id, user_id, file_type, view_type, file_category,
        file_url, content_sha256, content_size, mime_type, analysis_data, metadata, ai_model,
        generation_prompt, generation_batch_id, idempotency_key, credits_used, confidence_score,
        quality_score, status, error_message, version, parent_file_id, is_latest, created_by,
        change_description)
    VALUES (
        coalesce((p_changes ->> 'id')::uuid, gen_random_uuid()),
        parent.lineage_id,
        parent.product_idea_id,
        parent.revision_id,
        parent.user_id,
        parent.file_type,
        coalesce(p_changes ->> 'view_type', parent.view_type),
        coalesce(p_changes ->> 'file_category', parent.file_category),
        coalesce(p_changes ->> 'file_url', parent.file_url),
        coalesce(p_changes ->> 'content_sha256', parent.content_sha256),
        coalesce((p_changes ->> 'content_size')::bigint, parent.content_size),
        coalesce(p_changes ->> 'mime_type', parent.mime_type),
        coalesce(p_changes -> 'analysis_data', parent.analysis_data),
        coalesce(p_changes -> 'metadata', parent.metadata),
        coalesce(p_changes ->> 'ai_model', parent.ai_model),
        coalesce(p_changes ->> 'generation_prompt', parent.generation_prompt),
        coalesce((p_changes ->> 'generation_batch_id')::uuid, parent.generation_batch_id),
        p_changes ->> 'idempotency_key',
        coalesce((p_changes ->> 'credits_used')::bigint, 0),
        coalesce((p_changes ->> 'confidence_score')::double precision, parent.confidence_score),
        coalesce((p_changes ->> 'quality_score')::double precision, parent.quality_score),
        next_status,
        CASE WHEN next_status = 'failed'
             THEN coalesce(p_changes ->> 'error_message', parent.error_message)
             ELSE p_changes ->> 'error_message' END,
        parent.version + 1,
        parent.id,
        true,
        coalesce((p_changes ->> 'created_by')::uuid, public.techpack_current_user_id()),
        p_change_description)
    RETURNING * INTO created;
    RETURN created;
END
$$;

-- Row level security ------------------------------------------------------------------------
ALTER TABLE public.tech_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tech_file_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tech_file_collections ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tech_file_collection_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.revision_vision_analysis ENABLE ROW LEVEL SECURITY;

CREATE POLICY tech_files_select_own ON public.tech_files FOR SELECT TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_files_insert_own ON public.tech_files FOR INSERT TO authenticated
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_files_update_own ON public.tech_files FOR UPDATE TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()))
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));

CREATE POLICY tech_file_versions_select_own ON public.tech_file_versions FOR SELECT TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));

CREATE POLICY tech_file_collections_select_own ON public.tech_file_collections FOR SELECT TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_file_collections_insert_own ON public.tech_file_collections FOR INSERT TO authenticated
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_file_collections_update_own ON public.tech_file_collections FOR UPDATE TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()))
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_file_collections_delete_own ON public.tech_file_collections FOR DELETE TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));

CREATE POLICY tech_file_collection_items_select_own ON public.tech_file_collection_items FOR SELECT TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_file_collection_items_insert_own ON public.tech_file_collection_items FOR INSERT TO authenticated
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_file_collection_items_update_own ON public.tech_file_collection_items FOR UPDATE TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()))
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY tech_file_collection_items_delete_own ON public.tech_file_collection_items FOR DELETE TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));

CREATE POLICY revision_vision_analysis_select_own ON public.revision_vision_analysis FOR SELECT TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY revision_vision_analysis_insert_own ON public.revision_vision_analysis FOR INSERT TO authenticated
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));
CREATE POLICY revision_vision_analysis_update_own ON public.revision_vision_analysis FOR UPDATE TO authenticated
    USING (user_id = (SELECT public.techpack_current_user_id()))
    WITH CHECK (user_id = (SELECT public.techpack_current_user_id()));

-- Privileges: files are soft-deleted (archived), never deleted by users; history is read-only.
GRANT USAGE ON SCHEMA public TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE ON public.tech_files TO authenticated;
GRANT SELECT ON public.tech_file_versions TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.tech_file_collections TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.tech_file_collection_items TO authenticated;
GRANT SELECT, INSERT, UPDATE ON public.revision_vision_analysis TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.tech_files, public.tech_file_versions,
    public.tech_file_collections, public.tech_file_collection_items,
    public.revision_vision_analysis TO service_role;
GRANT EXECUTE ON FUNCTION public.techpack_current_user_id() TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION public.create_tech_file_version(uuid, jsonb, text) TO authenticated, service_role;
