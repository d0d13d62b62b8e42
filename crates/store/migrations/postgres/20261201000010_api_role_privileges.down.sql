-- techpack rollback of 20261201000010: the grants every role held on techpack's objects before
-- it (recorded by it; on Supabase that includes what the default privileges had granted the API
-- roles, holes and all), the version function back in its place, and no policies, triggers,
-- functions or schema of its own. The role techpack_app stays (roles are cluster-wide) but
-- holds nothing here any more.

-- The version function as the migrations before left it, back in public (before the grants
-- are put back, which name it there).
DROP FUNCTION IF EXISTS public.create_tech_file_version(uuid, jsonb, text);
ALTER FUNCTION techpack_private.create_tech_file_version_as_caller(uuid, jsonb, text)
    RENAME TO create_tech_file_version;
ALTER FUNCTION techpack_private.create_tech_file_version(uuid, jsonb, text) SET SCHEMA public;

DROP TRIGGER IF EXISTS tech_file_collection_items_after_move ON public.tech_file_collection_items;

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

DROP FUNCTION IF EXISTS public.restore_tech_file_version(uuid, integer, text);
DROP SCHEMA IF EXISTS techpack_private CASCADE;
REVOKE ALL ON SCHEMA public FROM techpack_app;
