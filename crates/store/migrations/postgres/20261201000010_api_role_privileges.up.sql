-- techpack: what each role may do, table by table and column by column, so that Supabase's own
-- API (PostgREST, pg_graphql) reaches only what a user may do, and the system's data — billing,
-- version bookkeeping, job state, leases, queue order — is written only by techpack itself.
--
-- Why: on Supabase the default privileges of schema public grant ALL on every new table,
-- function and sequence to anon, authenticated and service_role, and PostgreSQL lets PUBLIC
-- execute every new function; the earlier migrations' GRANT lines therefore added nothing and
-- row level security was the only barrier. So this migration first revokes everything the API
-- roles (and PUBLIC) hold on techpack's objects, then grants exactly:
--
--   anon           nothing.
--   authenticated  (a Supabase API user, JWT role `authenticated`) reads their own rows and
--                  performs the documented user actions only: archive a file or mark it failed
--                  with a message; make a new version (status/error only, 0 credits, created_by
--                  = the caller) or restore an earlier one; create, rename and delete their
--                  collections (not while a job of theirs is queued or running for it); add,
--                  move, reorder and remove their items (the database recounts both
--                  collections); request cancellation of a queued or running job.
--   techpack_app   techpack acting for one user (its login switches to this role per
--                  transaction): own rows only, but the writes techpack makes.
--   service_role   techpack's workers and administration: every row; on a database where it
--                  was created without BYPASSRLS its policies below let it through.
--
-- Which objects are techpack's: the migrations table, and in schema public every table,
-- sequence and function whose name starts with tech_file, generation_job, revision_vision_
-- analysis, blob_reference or techpack_ (plus create_/restore_tech_file_version), found in the
-- catalog when this runs, so the objects of the migrations before it are covered without being
-- named. A Supabase project may keep its own tables in public: they are left as they are.
-- A column that is not granted below is system-only, including every column added later.
-- A later migration that adds a table or function must REVOKE and GRANT the same way (the
-- default privileges come back for each new object); crates/store/tests/supabase_api_roles.rs
-- checks every object in the catalog and fails naming the one that is not locked down.

-- Internal functions live in a schema the Supabase API does not expose (it serves public and
-- graphql_public), so none of them is an RPC endpoint.
CREATE SCHEMA IF NOT EXISTS techpack_private;
REVOKE ALL ON SCHEMA techpack_private FROM PUBLIC;

-- What every role but the owner held on techpack's objects before this migration, so that its
-- rollback puts back exactly that (on Supabase: the default privileges' grants too).
CREATE TABLE techpack_private.privileges_before_api_roles (
    object_kind text NOT NULL CHECK (object_kind IN ('TABLE', 'SEQUENCE', 'FUNCTION')),
    object_name text NOT NULL,
    column_name name,
    grantee text NOT NULL,
    privilege text NOT NULL,
    grantable boolean NOT NULL
);
REVOKE ALL ON techpack_private.privileges_before_api_roles FROM PUBLIC;
INSERT INTO techpack_private.privileges_before_api_roles
SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, format('public.%I', c.relname), NULL,
       coalesce(r.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_class AS c
 CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(c.relacl, pg_catalog.acldefault(
           CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) AS a
  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
 WHERE c.relnamespace = 'public'::regnamespace
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND (c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
        OR c.relname = '_sqlx_migrations')
   AND a.grantee <> c.relowner
UNION ALL
SELECT 'TABLE', format('public.%I', c.relname), t.attname, coalesce(r.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_attribute AS t ON t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped
 CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) AS a
  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
 WHERE c.relnamespace = 'public'::regnamespace
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
   AND t.attacl IS NOT NULL
   AND a.grantee <> c.relowner
UNION ALL
SELECT 'FUNCTION', format('public.%I(%s)', p.proname, pg_catalog.oidvectortypes(p.proargtypes)), NULL, coalesce(r.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_proc AS p
 CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_|create_tech_file_version$|restore_tech_file_version$)'
   AND a.grantee <> p.proowner;

-- The API roles exist on Supabase; elsewhere the test harness or an administrator creates them.
-- Referring to a missing role is an error, so the statements below only name existing ones.
DO $$
DECLARE
    api_roles text;
    object record;
BEGIN
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO api_roles
      FROM pg_catalog.pg_roles
     WHERE rolname IN ('anon', 'authenticated', 'service_role', 'techpack_app');

    -- Tables (and views), the migrations table included.
    FOR object IN
        SELECT c.oid::regclass AS name
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND (c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
                OR c.relname = '_sqlx_migrations')
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE %s FROM PUBLIC, %s', object.name, api_roles);
    END LOOP;

    FOR object IN
        SELECT c.oid::regclass AS name
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind = 'S'
           AND c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
    LOOP
        EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC, %s', object.name, api_roles);
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO techpack_app, service_role', object.name);
    END LOOP;

    FOR object IN
        SELECT p.oid::regprocedure AS name
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = 'public'::regnamespace
           AND p.proname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_|create_tech_file_version$|restore_tech_file_version$)'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, %s', object.name, api_roles);
    END LOOP;
END
$$;

-- sqlx creates its table in public, where Supabase's defaults had granted it to every API
-- role. Row level security without policies also hides it from any role granted it later; its
-- owner (the login that migrates) is not subject to it. (Applied by another tool than sqlx,
-- there is no such table.)
DO $$
BEGIN
    IF to_regclass('public._sqlx_migrations') IS NOT NULL THEN
        ALTER TABLE public._sqlx_migrations ENABLE ROW LEVEL SECURITY;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO authenticated, techpack_app, service_role;
GRANT USAGE ON SCHEMA techpack_private TO authenticated, techpack_app, service_role;

-- techpack_app and service_role ---------------------------------------------------------------
-- Exactly what techpack's own statements need (what `authenticated` held before), nothing that
-- neither does: no TRUNCATE, REFERENCES or TRIGGER, and no DELETE of files, versions, jobs or
-- the legacy cache.
GRANT SELECT, INSERT, UPDATE ON public.tech_files TO techpack_app;
GRANT SELECT ON public.tech_file_versions TO techpack_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.tech_file_collections TO techpack_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.tech_file_collection_items TO techpack_app;
GRANT SELECT, INSERT, UPDATE ON public.revision_vision_analysis TO techpack_app;
GRANT SELECT, INSERT, UPDATE ON public.generation_jobs TO techpack_app;

-- Every other techpack table (those of the migrations just before this one, which are
-- techpack's own bookkeeping) and every table for service_role: read and write, RLS deciding
-- the rows; policies for both roles, keyed on user_id where the table has one.
DO $$
DECLARE
    known constant text[] := ARRAY['tech_files', 'tech_file_versions', 'tech_file_collections',
                                   'tech_file_collection_items', 'revision_vision_analysis',
                                   'generation_jobs'];
    t record;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS name, c.relname::text AS relname, c.relrowsecurity AS rls,
               EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                        WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped) AS owned
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p')
           AND c.relname ~ '^(tech_file|generation_job|revision_vision_analysis|blob_reference|techpack_)'
         ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO service_role', t.name);
        IF NOT t.relname = ANY (known) THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO techpack_app', t.name);
        END IF;
        CONTINUE WHEN NOT t.rls;
        EXECUTE format('CREATE POLICY %I ON %s FOR ALL TO service_role USING (true) WITH CHECK (true)',
                       t.relname || '_service_role', t.name);
        IF t.owned THEN
            EXECUTE format('CREATE POLICY %I ON %s FOR ALL TO techpack_app '
                           'USING (user_id = (SELECT public.techpack_current_user_id())) '
                           'WITH CHECK (user_id = (SELECT public.techpack_current_user_id()))',
                           t.relname || '_techpack_app', t.name);
        ELSE
            RAISE NOTICE 'techpack: table % has no user_id column: techpack_app gets no policy on it', t.name;
        END IF;
    END LOOP;
END
$$;

-- authenticated (Supabase API users) -----------------------------------------------------------
-- Reads: their own rows (the policies of 20261125000001/02 decide which).
GRANT SELECT ON public.tech_files, public.tech_file_versions, public.tech_file_collections,
    public.tech_file_collection_items, public.revision_vision_analysis, public.generation_jobs
    TO authenticated;

-- Files: archive, or mark failed with a message. Files are made by techpack; credits, outputs,
-- versions and keys are not theirs to write.
GRANT UPDATE (status, error_message) ON public.tech_files TO authenticated;
CREATE POLICY tech_files_api_status_change ON public.tech_files AS RESTRICTIVE FOR UPDATE TO authenticated
    USING (true)
    WITH CHECK (status IN ('archived', 'failed'));

-- Collections: their own, named and described by them; status, progress, credits, the run and
-- the metadata (where techpack records a pack's request and photos) are techpack's.
GRANT INSERT (id, user_id, product_idea_id, name, description, collection_type)
    ON public.tech_file_collections TO authenticated;
GRANT UPDATE (name, description) ON public.tech_file_collections TO authenticated;
GRANT DELETE ON public.tech_file_collections TO authenticated;
-- A collection a job is filling stays until the job ends (cancel it first).
CREATE POLICY tech_file_collections_api_delete_idle ON public.tech_file_collections AS RESTRICTIVE
    FOR DELETE TO authenticated
    USING (NOT EXISTS (SELECT 1 FROM public.generation_jobs AS j
                        WHERE j.collection_id = tech_file_collections.id
                          AND j.state IN ('queued', 'running')));

-- Items: add, move between their collections, reorder, remove. The composite foreign keys keep
-- the collection and the file the caller's; the trigger below keeps both totals right.
GRANT INSERT (id, collection_id, tech_file_id, user_id, display_order, section)
    ON public.tech_file_collection_items TO authenticated;
GRANT UPDATE (collection_id, display_order, section) ON public.tech_file_collection_items TO authenticated;
GRANT DELETE ON public.tech_file_collection_items TO authenticated;

-- Jobs: enqueued only through techpack (a request names blobs and providers, which techpack
-- checks); a user may only ask a queued or running job to stop, and never take that back.
GRANT UPDATE (cancel_requested) ON public.generation_jobs TO authenticated;
CREATE POLICY generation_jobs_api_cancel_only ON public.generation_jobs AS RESTRICTIVE FOR UPDATE TO authenticated
    USING (state IN ('queued', 'running'))
    WITH CHECK (cancel_requested);

-- Moving an item (UPDATE of collection_id) recounts the collection it left and the one it
-- joined; the earlier trigger recounts on INSERT and DELETE only. A trigger of its own, so the
-- earlier one stays as the migrations before this left it.
CREATE FUNCTION techpack_private.tech_file_collection_items_after_move() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    PERFORM public.tech_file_collections_recount_credits(ARRAY[OLD.collection_id, NEW.collection_id]);
    RETURN NULL;
END
$$;
CREATE TRIGGER tech_file_collection_items_after_move
    AFTER UPDATE OF collection_id, tech_file_id ON public.tech_file_collection_items
    FOR EACH ROW
    WHEN (OLD.collection_id IS DISTINCT FROM NEW.collection_id OR OLD.tech_file_id IS DISTINCT FROM NEW.tech_file_id)
    EXECUTE FUNCTION techpack_private.tech_file_collection_items_after_move();

-- Versions through the API ---------------------------------------------------------------------
-- One insert of a new version, as the owner of the tables (so the row is not refused for want
-- of privileges the caller does not have). Only the two functions after it call it; nobody
-- else may.
CREATE OR REPLACE FUNCTION techpack_private.insert_version(next public.tech_files)
RETURNS public.tech_files
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    created public.tech_files;
BEGIN
    INSERT INTO public.tech_files (
        id, lineage_id, product_idea_id, revision_id, user_id, file_type, view_type, file_category,
        file_url, content_sha256, content_size, mime_type, analysis_data, metadata, ai_model,
        generation_prompt, generation_batch_id, idempotency_key, credits_used, confidence_score,
        quality_score, status, error_message, version, parent_file_id, is_latest, created_by,
        change_description)
    VALUES (
        next.id, next.lineage_id, next.product_idea_id, next.revision_id, next.user_id,
        next.file_type, next.view_type, next.file_category, next.file_url, next.content_sha256,
        next.content_size, next.mime_type, next.analysis_data, next.metadata, next.ai_model,
        next.generation_prompt, next.generation_batch_id, NULL, 0, next.confidence_score,
        next.quality_score, next.status, next.error_message, next.version, next.parent_file_id,
        true, next.created_by, next.change_description)
    RETURNING * INTO created;
    RETURN created;
END
$$;

-- The caller's latest version of p_file_id's file, locked (a concurrent new version of the
-- lineage waits, then sees the new latest).
CREATE OR REPLACE FUNCTION techpack_private.latest_for_api(p_file_id uuid, caller uuid)
RETURNS public.tech_files
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    found_file public.tech_files;
BEGIN
    IF caller IS NULL THEN
        RAISE EXCEPTION 'no acting user: the request carries no JWT sub' USING ERRCODE = '42501';
    END IF;
    -- A SECURITY DEFINER function is not held by row level security: the owner check is here.
    SELECT * INTO found_file FROM public.tech_files WHERE id = p_file_id AND user_id = caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tech file % not found', p_file_id USING ERRCODE = 'TP404';
    END IF;
    SELECT * INTO found_file FROM public.tech_files
     WHERE lineage_id = found_file.lineage_id AND is_latest FOR UPDATE;
    RETURN found_file;
END
$$;

-- create_tech_file_version for an API user: a new version of their latest, the same outputs,
-- and only status (completed or failed) and error_message changeable. 0 credits and created_by
-- the caller, whatever p_changes says.
CREATE OR REPLACE FUNCTION techpack_private.create_tech_file_version_for_api(
    p_file_id uuid,
    p_changes jsonb,
    p_change_description text
) RETURNS public.tech_files
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    caller constant uuid := public.techpack_current_user_id();
    parent public.tech_files;
    next public.tech_files;
    refused text;
BEGIN
    IF jsonb_typeof(coalesce(p_changes, '{}'::jsonb)) <> 'object' THEN
        RAISE EXCEPTION 'p_changes must be a JSON object' USING ERRCODE = 'TP422';
    END IF;
    SELECT string_agg(key, ', ' ORDER BY key) INTO refused
      FROM jsonb_object_keys(coalesce(p_changes, '{}'::jsonb)) AS key
     WHERE key NOT IN ('status', 'error_message');
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'through the API a new version may change only status and error_message, not %', refused
            USING ERRCODE = 'TP422',
                  HINT = 'Outputs, credits and keys are written by techpack; restore_tech_file_version brings back an earlier version.';
    END IF;
    IF p_changes ->> 'status' IS NOT NULL AND p_changes ->> 'status' NOT IN ('completed', 'failed') THEN
        RAISE EXCEPTION 'through the API a new version is completed or failed, not %', p_changes ->> 'status'
            USING ERRCODE = 'TP422';
    END IF;
    parent := techpack_private.latest_for_api(p_file_id, caller);
    IF parent.id <> p_file_id THEN
        RAISE EXCEPTION 'version conflict: tech file % is not the latest version of its file', p_file_id
            USING ERRCODE = 'TP409',
                  HINT = 'Read the latest version again and create the new version from it.';
    END IF;
    next := parent;
    next.id := gen_random_uuid();
    next.parent_file_id := parent.id;
    next.version := parent.version + 1;
    next.status := coalesce(p_changes ->> 'status',
                            CASE WHEN parent.status = 'failed' THEN 'failed' ELSE 'completed' END);
    next.error_message := CASE WHEN next.status = 'failed'
                               THEN coalesce(p_changes ->> 'error_message', parent.error_message) END;
    next.created_by := caller;
    next.change_description := p_change_description;
    RETURN techpack_private.insert_version(next);
END
$$;

-- The seed's version function, as the migrations before this one left it, moves out of the
-- API's reach and runs for techpack, whose role may insert files (so the insert runs as the
-- caller, under row level security). In its place a function of the same signature sends a
-- caller who may not insert files (an API user) to the version above, so the one RPC works for
-- both and the body is not copied here.
ALTER FUNCTION public.create_tech_file_version(uuid, jsonb, text) SET SCHEMA techpack_private;
ALTER FUNCTION techpack_private.create_tech_file_version(uuid, jsonb, text)
    RENAME TO create_tech_file_version_as_caller;
CREATE FUNCTION public.create_tech_file_version(
    p_file_id uuid,
    p_changes jsonb DEFAULT '{}'::jsonb,
    p_change_description text DEFAULT NULL
) RETURNS public.tech_files
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF pg_catalog.has_table_privilege('public.tech_files', 'INSERT') THEN
        RETURN techpack_private.create_tech_file_version_as_caller(p_file_id, p_changes, p_change_description);
    END IF;
    RETURN techpack_private.create_tech_file_version_for_api(p_file_id, p_changes, p_change_description);
END
$$;

-- Restore for an API user: version p_version of the caller's file (any version's id) becomes
-- a new latest version with that version's content, 0 credits, created_by the caller. The
-- same as techpack's own restore (an archived version comes back completed).
CREATE OR REPLACE FUNCTION public.restore_tech_file_version(
    p_file_id uuid,
    p_version integer,
    p_change_description text DEFAULT NULL
) RETURNS public.tech_files
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    caller constant uuid := public.techpack_current_user_id();
    latest public.tech_files;
    old public.tech_files;
    next public.tech_files;
BEGIN
    latest := techpack_private.latest_for_api(p_file_id, caller);
    IF p_version = latest.version THEN
        RAISE EXCEPTION 'version % is already the latest version', p_version USING ERRCODE = 'TP422';
    END IF;
    -- On top of the latest row, so a column the snapshot predates keeps a valid value.
    SELECT (jsonb_populate_record(latest, v.snapshot)).* INTO old
      FROM public.tech_file_versions AS v
     WHERE v.lineage_id = latest.lineage_id AND v.version = p_version AND v.user_id = caller;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'version % of tech file % not found', p_version, p_file_id USING ERRCODE = 'TP404';
    END IF;
    IF old.status = 'processing' THEN
        RAISE EXCEPTION 'version % was never completed: there is nothing to restore', p_version
            USING ERRCODE = 'TP422';
    END IF;
    next := old;
    next.id := gen_random_uuid();
    next.lineage_id := latest.lineage_id;
    next.product_idea_id := latest.product_idea_id;
    next.revision_id := latest.revision_id;
    next.user_id := latest.user_id;
    next.file_type := latest.file_type;
    next.parent_file_id := latest.id;
    next.version := latest.version + 1;
    next.status := CASE WHEN old.status = 'archived' THEN 'completed' ELSE old.status END;
    next.error_message := CASE WHEN next.status = 'failed' THEN old.error_message END;
    next.created_by := caller;
    next.change_description := coalesce(p_change_description, format('restored from version %s', p_version));
    RETURN techpack_private.insert_version(next);
END
$$;

-- Functions: nobody but the owner executes the new ones unless granted here (and the older
-- ones were revoked at the top).
DO $$
DECLARE
    api_roles text;
    fn text;
BEGIN
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO api_roles
      FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role', 'techpack_app');
    FOREACH fn IN ARRAY ARRAY[
        'techpack_private.insert_version(public.tech_files)',
        'techpack_private.latest_for_api(uuid, uuid)',
        'techpack_private.create_tech_file_version_for_api(uuid, jsonb, text)',
        'techpack_private.tech_file_collection_items_after_move()',
        'public.restore_tech_file_version(uuid, integer, text)',
        'public.create_tech_file_version(uuid, jsonb, text)']
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, %s', fn, api_roles);
    END LOOP;
END
$$;
-- Policies call this as the querying role.
GRANT EXECUTE ON FUNCTION public.techpack_current_user_id() TO authenticated, techpack_app, service_role;
GRANT EXECUTE ON FUNCTION public.create_tech_file_version(uuid, jsonb, text) TO authenticated, techpack_app, service_role;
GRANT EXECUTE ON FUNCTION public.restore_tech_file_version(uuid, integer, text) TO authenticated, techpack_app, service_role;
-- Reached only through create_tech_file_version: by a role that may not insert files, and by
-- the roles that may.
GRANT EXECUTE ON FUNCTION techpack_private.create_tech_file_version_for_api(uuid, jsonb, text) TO authenticated;
GRANT EXECUTE ON FUNCTION techpack_private.create_tech_file_version_as_caller(uuid, jsonb, text) TO techpack_app, service_role;
-- Every other techpack function is a trigger or an internal helper (the credit recount runs as
-- its owner and touches any collection): nobody but the owner executes them. A trigger fires
-- whatever the acting role's EXECUTE privilege.
