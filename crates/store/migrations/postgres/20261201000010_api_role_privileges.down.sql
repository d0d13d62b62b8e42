-- techpack rollback of 20261201000010: the grants every role held on techpack's objects before
-- it (recorded by it; on Supabase that includes what the default privileges had granted the API
-- roles, holes and all), the version function, the item trigger as they were, and no policies,
-- functions or schema of its own. The role techpack_app stays (roles are cluster-wide) but holds
-- nothing here any more.

DROP POLICY IF EXISTS tech_files_api_status_change ON public.tech_files;
DROP POLICY IF EXISTS tech_file_collections_api_delete_idle ON public.tech_file_collections;
DROP POLICY IF EXISTS generation_jobs_api_cancel_only ON public.generation_jobs;

DO $$
DECLARE
    api_roles text;
    object record;
BEGIN
    FOR object IN
        SELECT c.oid::regclass AS name, c.relname::text AS relname
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p')
           AND c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON %s', object.relname || '_service_role', object.name);
        EXECUTE format('DROP POLICY IF EXISTS %I ON %s', object.relname || '_techpack_app', object.name);
    END LOOP;

    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO api_roles
      FROM pg_catalog.pg_roles
     WHERE rolname IN ('anon', 'authenticated', 'service_role', 'techpack_app');
    FOR object IN
        SELECT c.oid::regclass AS name, c.relkind = 'S' AS is_sequence
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND (c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
                OR c.relname = '_sqlx_migrations')
    LOOP
        EXECUTE format('REVOKE ALL ON %s %s FROM PUBLIC, %s',
                       CASE WHEN object.is_sequence THEN 'SEQUENCE' ELSE 'TABLE' END, object.name, api_roles);
    END LOOP;
    FOR object IN
        SELECT p.oid::regprocedure AS name
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = 'public'::regnamespace
           AND p.proname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_|create_tech_file_version$)'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, %s', object.name, api_roles);
    END LOOP;

    -- Objects dropped since (none, unless a later migration was rolled back badly) are skipped.
    FOR object IN
        SELECT b.*
          FROM techpack_private.privileges_before_api_roles AS b
         WHERE ((b.object_kind = 'FUNCTION' AND to_regprocedure(b.object_name) IS NOT NULL)
                OR (b.object_kind <> 'FUNCTION' AND to_regclass(b.object_name) IS NOT NULL))
           AND (b.grantee = 'PUBLIC' OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = b.grantee))
    LOOP
        EXECUTE format('GRANT %s%s ON %s %s TO %s%s',
                       object.privilege,
                       CASE WHEN object.column_name IS NULL THEN '' ELSE format(' (%I)', object.column_name) END,
                       object.object_kind, object.object_name,
                       CASE WHEN object.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(object.grantee) END,
                       CASE WHEN object.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;

    IF to_regclass('public._sqlx_migrations') IS NOT NULL THEN
        ALTER TABLE public._sqlx_migrations DISABLE ROW LEVEL SECURITY;
    END IF;
END
$$;

-- The item trigger recounts on INSERT and DELETE only, as 20261125000001 made it.
DROP TRIGGER IF EXISTS tech_file_collection_items_after_change ON public.tech_file_collection_items;
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
CREATE TRIGGER tech_file_collection_items_after_change AFTER INSERT OR DELETE ON public.tech_file_collection_items
    FOR EACH ROW EXECUTE FUNCTION public.tech_file_collection_items_after_change();

-- create_tech_file_version exactly as 20261125000003 left it (CREATE OR REPLACE keeps the grants
-- restored above).
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
    -- What an unset column is copied from: the parent, without its outputs for a version
    -- that is being generated.
    inherited public.tech_files;
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
    inherited := parent;
    IF next_status = 'processing' THEN
        -- A processing version has produced nothing yet: if its generation fails it must not
        -- show the parent's blob, hash, analysis, model or scores as if they were its own.
        inherited.file_url := NULL;
        inherited.content_sha256 := NULL;
        inherited.content_size := NULL;
        inherited.mime_type := NULL;
        inherited.analysis_data := '{}'::jsonb;
        inherited.ai_model := NULL;
        inherited.generation_prompt := NULL;
        inherited.confidence_score := NULL;
        inherited.quality_score := NULL;
        inherited.error_message := NULL;
    END IF;
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
        coalesce(p_changes ->> 'file_url', inherited.file_url),
        coalesce(p_changes ->> 'content_sha256', inherited.content_sha256),
        coalesce((p_changes ->> 'content_size')::bigint, inherited.content_size),
        coalesce(p_changes ->> 'mime_type', inherited.mime_type),
        coalesce(p_changes -> 'analysis_data', inherited.analysis_data),
        coalesce(p_changes -> 'metadata', parent.metadata),
        coalesce(p_changes ->> 'ai_model', inherited.ai_model),
        coalesce(p_changes ->> 'generation_prompt', inherited.generation_prompt),
        coalesce((p_changes ->> 'generation_batch_id')::uuid, parent.generation_batch_id),
        p_changes ->> 'idempotency_key',
        coalesce((p_changes ->> 'credits_used')::bigint, 0),
        coalesce((p_changes ->> 'confidence_score')::double precision, inherited.confidence_score),
        coalesce((p_changes ->> 'quality_score')::double precision, inherited.quality_score),
        next_status,
        CASE WHEN next_status = 'failed'
             THEN coalesce(p_changes ->> 'error_message', inherited.error_message)
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

DROP FUNCTION IF EXISTS public.restore_tech_file_version(uuid, integer, text);
DROP SCHEMA IF EXISTS techpack_private CASCADE;
REVOKE ALL ON SCHEMA public FROM techpack_app;
