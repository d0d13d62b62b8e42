-- techpack rollback of 20261125000003: puts back create_tech_file_version exactly as
-- 20261125000001 defined it (every unset column copied from the parent, whatever the status).
-- CREATE OR REPLACE keeps the function's grants.
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
