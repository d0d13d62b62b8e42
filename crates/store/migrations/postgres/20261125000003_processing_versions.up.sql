-- techpack: a new version that starts `processing` starts with no output. The first
-- migration's create_tech_file_version copied every unset column from the parent, so a
-- regeneration that failed left a version showing the parent's file_url, hash, size, MIME type,
-- analysis, model, prompt and scores. Now, when the new version's status is `processing`, those
-- columns (and error_message) are NULL and analysis_data is '{}' unless p_changes gives them;
-- lineage, product, revision, owner, type, view, category, metadata and generation batch are
-- inherited as before, and every other status still copies everything (a restore, say).
-- Same signature, so CREATE OR REPLACE keeps the grants of 20261125000001. The SQLite backend
-- applies the same rule in Rust (FileChanges::apply_to).
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
