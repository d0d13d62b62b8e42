-- techpack: back to before the trust migration. Items that were replaced by a newer version of
-- their file are not brought back.
DROP TRIGGER IF EXISTS generation_jobs_after_end ON public.generation_jobs;
DROP FUNCTION IF EXISTS public.techpack_generation_jobs_after_end();
DROP TRIGGER IF EXISTS tech_files_after_status_change ON public.tech_files;
DROP FUNCTION IF EXISTS public.techpack_tech_files_after_status_change();
DROP FUNCTION IF EXISTS public.techpack_recount_collection_progress(uuid[], boolean);
ALTER TABLE public.tech_file_collections DROP COLUMN IF EXISTS planned_steps;

DROP TRIGGER IF EXISTS tech_file_collection_items_one_version ON public.tech_file_collection_items;
DROP FUNCTION IF EXISTS public.techpack_one_version_per_collection();

DROP INDEX IF EXISTS public.generation_jobs_batch_idx;
DROP INDEX IF EXISTS public.generation_jobs_product_running_idx;
DROP INDEX IF EXISTS public.generation_jobs_user_idempotency_key;
DROP INDEX IF EXISTS public.generation_jobs_active_request_key;
ALTER TABLE public.generation_jobs
    DROP COLUMN IF EXISTS error_code,
    DROP COLUMN IF EXISTS batch_id,
    DROP COLUMN IF EXISTS idempotency_key,
    DROP COLUMN IF EXISTS request_key;

DROP TRIGGER IF EXISTS revision_vision_analysis_blob_references ON public.revision_vision_analysis;
DROP TRIGGER IF EXISTS generation_jobs_blob_references ON public.generation_jobs;
DROP TRIGGER IF EXISTS tech_file_collections_blob_references ON public.tech_file_collections;
DROP TRIGGER IF EXISTS tech_files_blob_references ON public.tech_files;
DROP FUNCTION IF EXISTS public.techpack_legacy_blob_references();
DROP FUNCTION IF EXISTS public.techpack_jobs_blob_references();
DROP FUNCTION IF EXISTS public.techpack_collections_blob_references();
DROP FUNCTION IF EXISTS public.techpack_tech_files_blob_references();
DROP FUNCTION IF EXISTS public.techpack_replace_blob_references(text, uuid, uuid, boolean, jsonb);
DROP FUNCTION IF EXISTS public.techpack_job_blob_entries(public.generation_jobs);
DROP FUNCTION IF EXISTS public.techpack_collection_blob_entries(public.tech_file_collections);
DROP FUNCTION IF EXISTS public.techpack_file_blob_entries(public.tech_files);
DROP FUNCTION IF EXISTS public.techpack_view_photo_entries(jsonb);
DROP FUNCTION IF EXISTS public.techpack_blob_entries(jsonb);
DROP TABLE IF EXISTS public.blob_references;
DROP TABLE IF EXISTS public.techpack_instance;
