-- techpack rollback: drops only techpack's own objects. The roles `authenticated` and
-- `service_role` stay: on Supabase they belong to the platform.
DROP TABLE IF EXISTS public.tech_file_collection_items CASCADE;
DROP TABLE IF EXISTS public.tech_file_versions CASCADE;
DROP TABLE IF EXISTS public.tech_file_collections CASCADE;
DROP TABLE IF EXISTS public.tech_files CASCADE;
DROP TABLE IF EXISTS public.revision_vision_analysis CASCADE;
DROP FUNCTION IF EXISTS public.create_tech_file_version(uuid, jsonb, text);
DROP FUNCTION IF EXISTS public.tech_files_after_credits_change();
DROP FUNCTION IF EXISTS public.tech_file_collection_items_after_change();
DROP FUNCTION IF EXISTS public.tech_file_collections_recount_credits(uuid[]);
DROP FUNCTION IF EXISTS public.tech_files_guard_update();
DROP FUNCTION IF EXISTS public.tech_files_before_insert();
DROP FUNCTION IF EXISTS public.techpack_touch_updated_at();
DROP FUNCTION IF EXISTS public.techpack_current_user_id();
