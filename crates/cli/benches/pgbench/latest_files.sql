-- latest-50-files (GET /api/v1/files?limit=50) as PostgresStore::get_latest_tech_files runs
-- it: the transaction start of begin_with (role techpack_app and the user's claims), the page
-- query sql::latest_files builds with no filter (row level security, not a WHERE clause,
-- keeps the user's rows; one row more than the page tells whether a next page exists),
-- COMMIT. Run by crates/cli/benches/serve.rs with `pgbench -M prepared`; keep it in step with
-- crates/store/src/sql.rs (the bench checks the query against that file before it runs).
\set u random(1, :users)
\set limit 51
BEGIN;
SELECT set_config('role', 'techpack_app', true),
       set_config('request.jwt.claims', '{"role":"authenticated","sub":"00000000-0000-4000-8000-' || lpad(:u::text, 12, '0') || '"}', true),
       set_config('request.jwt.claim.sub', '00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'), true);
SELECT to_jsonb(t)::text AS doc FROM public.tech_files AS t WHERE t.is_latest AND t.status <> 'archived' ORDER BY t.created_at DESC, t.id DESC LIMIT :limit;
COMMIT;
