-- techpack: the roles every later migration and every request relies on, created (where
-- missing) and granted to the login that migrates, before anything else.
--
-- Its version is lower than the first shipped migration's on purpose: sqlx applies every
-- migration it has not applied yet, in version order, also below the newest applied one, so a
-- database migrated before this file existed runs it on its next `migrate up`, and a fresh one
-- runs it first. The first migration creates service_role WITH BYPASSRLS when it is missing,
-- which only a superuser may do (managed PostgreSQL services refuse it); here it falls back to a
-- role without BYPASSRLS, and 20261201000010 gives service_role policies that let it through
-- either way. An owner that may not create or grant roles gets one error that names exactly
-- what an administrator must run first.
--
-- Roles are cluster-wide and may be created by a concurrent migration of another database:
-- duplicates are ignored. This migration never drops or alters an existing role: on Supabase
-- they belong to the platform.
--
--   authenticated  a Supabase API user (and PostgREST's role for one); RLS keeps them to their
--                  own rows, 20261201000010 keeps them to the user actions.
--   service_role   Supabase's admin role, and techpack's workers and administration.
--   techpack_app   techpack itself acting for one user (its login switches to it per
--                  transaction): own rows only, but the writes techpack needs (billing,
--                  versions, jobs). Never granted to Supabase's `authenticator`, so no API
--                  client can become it.
DO $$
DECLARE
    -- PostgreSQL 16 splits membership into ADMIN, INHERIT and SET: a CREATEROLE user is a
    -- member of the roles it creates but may not switch to them unless SET is granted too.
    switch_mode text := CASE WHEN current_setting('server_version_num')::int >= 160000
                             THEN 'SET' ELSE 'MEMBER' END;
    wanted constant text[] := ARRAY['authenticated', 'service_role', 'techpack_app'];
    create_sql constant text[] := ARRAY[
        'CREATE ROLE authenticated NOLOGIN NOINHERIT',
        'CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS',
        'CREATE ROLE techpack_app NOLOGIN NOINHERIT NOBYPASSRLS'];
    must_create text[] := '{}';
    must_grant text[] := '{}';
    i integer;
BEGIN
    FOR i IN 1 .. cardinality(wanted) LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = wanted[i]);
        BEGIN
            EXECUTE create_sql[i];
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- created meanwhile by a migration of another database
            WHEN insufficient_privilege THEN
                IF wanted[i] = 'service_role' THEN
                    -- Not a superuser: the role without BYPASSRLS, which its policies let
                    -- through every techpack table instead.
                    BEGIN
                        EXECUTE 'CREATE ROLE service_role NOLOGIN NOINHERIT';
                        RAISE NOTICE 'techpack: created service_role without BYPASSRLS (only a superuser may give it); its row level security policies let it see every row of techpack''s tables';
                    EXCEPTION
                        WHEN duplicate_object OR unique_violation THEN NULL;
                        WHEN insufficient_privilege THEN must_create := must_create || create_sql[i];
                    END;
                ELSE
                    must_create := must_create || create_sql[i];
                END IF;
        END;
    END LOOP;
    IF cardinality(must_create) > 0 THEN
        -- The statements are in the message itself: it is what a migration tool shows.
        RAISE EXCEPTION '%', format(
                'techpack: the role %I may not create the roles techpack needs; ask an administrator to run: %s; GRANT %s TO %I; then migrate again',
                current_user, array_to_string(must_create, '; '), array_to_string(wanted, ', '), current_user)
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    -- The login that migrates is the login techpack runs as: it switches to these roles per
    -- transaction (set_config('role', …, true)). Supabase's postgres already holds
    -- authenticated and service_role.
    FOR i IN 1 .. cardinality(wanted) LOOP
        CONTINUE WHEN pg_catalog.pg_has_role(current_user, wanted[i], switch_mode);
        BEGIN
            EXECUTE format('GRANT %I TO %I', wanted[i], current_user);
        EXCEPTION
            WHEN unique_violation THEN NULL; -- granted meanwhile by a concurrent migration
            WHEN insufficient_privilege OR invalid_grant_operation THEN
                must_grant := must_grant || wanted[i];
        END;
    END LOOP;
    IF cardinality(must_grant) > 0 THEN
        RAISE EXCEPTION '%', format(
                'techpack: the role %I is not a member of %s and may not grant them to itself; ask an administrator to run: GRANT %s TO %I; then migrate again',
                current_user, array_to_string(must_grant, ', '), array_to_string(must_grant, ', '), current_user)
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    -- PostgREST logs in as authenticator and may switch to any role it is a member of: a
    -- member of techpack_app would let a forged JWT claim `role: techpack_app`.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticator')
       AND pg_catalog.pg_has_role('authenticator', 'techpack_app', 'MEMBER') THEN
        RAISE EXCEPTION 'techpack: the role authenticator (the Supabase API''s login) is a member of techpack_app, so any API client could act as techpack; run: REVOKE techpack_app FROM authenticator'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;
