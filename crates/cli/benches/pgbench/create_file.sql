-- create-file (POST /api/v1/files) as PostgresStore::create_tech_file runs it: the transaction
-- start of begin_with (role techpack_app and the user's claims, transaction-local), the INSERT
-- with the store's columns and clauses, COMMIT. Run by crates/cli/benches/serve.rs with
-- `pgbench -M prepared` (so every :variable is a bound parameter, as sqlx binds them) and the
-- row's values passed with -D; keep it in step with crates/store/src/postgres.rs (the bench
-- checks the column list and the clauses against that file before it runs).
--
-- Users are 00000000-0000-4000-8000-00000000000N and their products
-- 00000000-0000-4000-8001-00000000000N, N = 1..:users, the same ids the bench's HTTP clients
-- sign tokens for. The store makes the id with Uuid::now_v7 (time-ordered); here it is the
-- transaction's start in ms followed by random bits, so both insert at the right edge of the
-- id index, and the same value for id and lineage_id (a first version starts its lineage).
\set u random(1, :users)
\set r random(0, 4611686018427387903)
BEGIN;
SELECT set_config('role', 'techpack_app', true),
       set_config('request.jwt.claims', '{"role":"authenticated","sub":"00000000-0000-4000-8000-' || lpad(:u::text, 12, '0') || '"}', true),
       set_config('request.jwt.claim.sub', '00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'), true);
INSERT INTO public.tech_files AS t (id, lineage_id, product_idea_id, revision_id, user_id, file_type,
    view_type, file_category, file_url, content_sha256, content_size, mime_type, analysis_data, metadata,
    ai_model, generation_prompt, generation_batch_id, idempotency_key, credits_used, confidence_score,
    quality_score, status, error_message, created_by)
VALUES ((lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || lpad(to_hex(:r::bigint), 20, '0'))::uuid,
    (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || lpad(to_hex(:r::bigint), 20, '0'))::uuid,
    ('00000000-0000-4000-8001-' || lpad(:u::text, 12, '0'))::uuid, NULL,
    ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid, :file_type,
    :view_type, NULL, NULL, NULL, NULL, NULL, :analysis_data::jsonb, :metadata::jsonb,
    :ai_model, :generation_prompt, NULL, NULL, 0, :confidence_score::float8,
    NULL, :status, NULL, ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid)
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING to_jsonb(t)::text;
COMMIT;
